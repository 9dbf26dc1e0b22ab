//! The command line, as clap parses it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mistral_events::sim::Fault;
use mistral_events::RequestId;

/// Stream Mistral chats as typed events, or run the offline simulator.
#[derive(Debug, Parser)]
#[command(name = "mistral-events", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Stream one chat through the event bus.
    ///
    /// With neither MISTRAL_API_KEY nor MISTRAL_BASE_URL set, it starts the
    /// built-in simulator and says so on stderr. With MISTRAL_BASE_URL set it
    /// talks to that server (sending the key if one is set); with only the
    /// key set, to api.mistral.ai.
    Chat(ChatArgs),
    /// Run the Mistral API simulator until interrupted.
    Sim(SimArgs),
    /// Run a captured SSE response body through the decoder and the bus.
    Replay(ReplayArgs),
}

/// What is printed while a chat streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EventsMode {
    /// The answer on stdout as it arrives, and a summary on stderr.
    Text,
    /// Every bus event as one JSON line on stdout, and nothing else.
    Jsonl,
    /// One summary line on stdout.
    None,
}

#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    /// What to print: the answer (text), every event as JSON lines (jsonl),
    /// or one summary line (none).
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) events: EventsMode,
}

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// The user message.
    pub(crate) prompt: String,
    /// The model.
    #[arg(long, default_value = "mistral-small-latest")]
    pub(crate) model: String,
    /// A system message sent before the prompt.
    #[arg(long)]
    pub(crate) system: Option<String>,
    /// The most tokens to generate.
    #[arg(long)]
    pub(crate) max_tokens: Option<u32>,
    /// The request id stamped on every event ([A-Za-z0-9_-], 1 to 64).
    #[arg(long, value_parser = parse_request_id)]
    pub(crate) request_id: Option<RequestId>,
    /// Retries after the first attempt, before any output.
    #[arg(long, default_value_t = 2)]
    pub(crate) max_retries: u32,
    /// Resumes allowed when the stream is cut after output began: each one
    /// continues from the text received (assistant prefix). 0 turns it off.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) resume: u32,
    /// Connect timeout, such as 2s or 500ms.
    #[arg(long, value_parser = positive_duration, default_value = "10s")]
    pub(crate) connect_timeout: Duration,
    /// Time allowed for the response to start.
    #[arg(long, value_parser = positive_duration, default_value = "120s")]
    pub(crate) first_byte_timeout: Duration,
    /// Time allowed between two pieces of the stream.
    #[arg(long, value_parser = positive_duration, default_value = "60s")]
    pub(crate) idle_timeout: Duration,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// The port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// A fault for the next chat request, in order: status=429,retry-after=1,
    /// cut-after=3, stall-after=3, malformed-after=2, no-done,
    /// first-byte-delay=2s, chunk-delay=50ms. Join several for one request
    /// with ';'. Repeatable.
    #[arg(long = "fault", value_parser = parse_faults)]
    pub(crate) faults: Vec<Vec<Fault>>,
    /// A delay before every streamed chunk of every answer.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) chunk_delay: Option<Duration>,
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The captured body: the raw bytes of an SSE response; '-' reads stdin.
    pub(crate) file: PathBuf,
    /// The request id stamped on every event.
    #[arg(long, value_parser = parse_request_id)]
    pub(crate) request_id: Option<RequestId>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// A duration such as `2s` or `500ms`; zero is refused, since a zero
/// timeout could never be met.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be longer than zero".to_owned()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

fn parse_request_id(text: &str) -> Result<RequestId, String> {
    text.parse().map_err(|error| format!("{error}"))
}

fn parse_faults(text: &str) -> Result<Vec<Fault>, String> {
    Fault::parse_list(text).map_err(|error| error.to_string())
}
