//! `mistral-events chat` and `mistral-events replay`: one call through the
//! bus, printed as `--events` asks.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use mistral_events::backend::Backend;
use mistral_events::bus::{
    ChatHandle, ChatOptions, ChatOutcome, MistralEventBus, ResumePolicy, SubscribeOptions,
    SubscriberId,
};
use mistral_events::subscribers::TracingLogger;
use mistral_events::wire::{ChatRequest, Message};
use mistral_events::{Client, Error, ErrorKind};

use crate::args::{ChatArgs, EventsMode, ReplayArgs};
use crate::output::{PipeClosed, StdoutSink};
use crate::Exit;

pub(crate) async fn chat(args: ChatArgs) -> Exit {
    let backend = match Backend::from_env().await {
        Ok(backend) => backend,
        Err(error) => {
            eprintln!("mistral-events: cannot start the simulator: {error}");
            return Exit::Failed;
        }
    };
    let client = backend
        .client_builder()
        .max_retries(args.max_retries)
        .connect_timeout(args.connect_timeout)
        .first_byte_timeout(args.first_byte_timeout)
        .idle_timeout(args.idle_timeout)
        .build();
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            eprintln!("mistral-events: {error}");
            return Exit::Usage;
        }
    };
    if backend.is_simulator() {
        eprintln!("mistral-events: talking to {}", backend.describe());
    } else {
        eprintln!(
            "mistral-events: talking to {}",
            shown_url(client.base_url())
        );
    }

    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(Message::system(system));
    }
    messages.push(Message::user(args.prompt));
    let mut request = ChatRequest::new(args.model, messages);
    request.max_tokens = args.max_tokens;

    let bus = MistralEventBus::new(client);
    let output = attach_output(&bus, args.output.events);
    let mut options = ChatOptions::new();
    if let Some(id) = args.request_id {
        options = options.request_id(id);
    }
    if args.resume > 0 {
        options = options.resume(ResumePolicy::new(args.resume));
    }
    let handle = bus.stream_chat_with(request, options);
    let exit = finish(&bus, handle, args.output.events, output).await;

    backend.shutdown().await;
    exit
}

pub(crate) async fn replay(args: ReplayArgs) -> Exit {
    let body = match read_body(&args.file).await {
        Ok(body) => body,
        Err(error) => {
            eprintln!(
                "mistral-events: cannot read {}: {error}",
                args.file.display()
            );
            return Exit::Usage;
        }
    };
    // A replay never touches the network; the client only lends its idle
    // timeout.
    let client = match Client::builder().build() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("mistral-events: {error}");
            return Exit::Failed;
        }
    };
    let bus = MistralEventBus::new(client);
    let output = attach_output(&bus, args.output.events);

    // Feed the body in network-sized pieces, as a socket would.
    let pieces: Vec<Result<Bytes, Error>> = body
        .chunks(16 * 1024)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    let mut options = ChatOptions::new();
    if let Some(id) = args.request_id {
        options = options.request_id(id);
    }
    let handle = bus.replay(stream::iter(pieces), "replay", options);
    finish(&bus, handle, args.output.events, output).await
}

async fn read_body(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut body).await?;
        return Ok(body);
    }
    tokio::fs::read(path).await
}

/// A URL for a notice: any user name and password in it are left out.
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.as_str().trim_end_matches('/').to_owned()
        }
        Err(_) => url.to_owned(),
    }
}

/// The stdout sink, as registered for one command.
struct Output {
    closed: PipeClosed,
    sink: Option<SubscriberId>,
}

impl Output {
    /// Whether the sink was detached for falling behind its maximum wait.
    fn fell_behind(&self, bus: &MistralEventBus) -> bool {
        self.sink
            .and_then(|id| bus.stats().subscriber(id).map(|stats| stats.detached))
            .unwrap_or(false)
    }
}

/// The sink waits for a slow reader, as a pipe would, for this long.
const SINK_PATIENCE: Duration = Duration::from_secs(24 * 60 * 60);

/// Registers the stdout sink for `mode`, and the event logger when
/// `RUST_LOG` asks for logs (the CLI reports the outcome itself).
fn attach_output(bus: &MistralEventBus, mode: EventsMode) -> Output {
    let closed = PipeClosed::default();
    let sink = (mode != EventsMode::None).then(|| {
        bus.register(
            StdoutSink::new(mode, closed.clone()),
            SubscribeOptions::reliable().max_wait(SINK_PATIENCE),
        )
    });
    if std::env::var_os("RUST_LOG").is_some() {
        bus.register(TracingLogger::new(), SubscribeOptions::lossy());
    }
    Output { closed, sink }
}

/// Waits for the call, a Ctrl-C or a closed stdout; then drains the bus and
/// prints the summary.
async fn finish(
    bus: &MistralEventBus,
    mut handle: ChatHandle,
    mode: EventsMode,
    output: Output,
) -> Exit {
    let mut stopped_early = false;
    let result = tokio::select! {
        result = &mut handle => result,
        _ = tokio::signal::ctrl_c() => {
            stopped_early = true;
            cancel(handle).await
        }
        () = output.closed.wait() => {
            // The reader is gone: stop quietly, as `head` expects.
            shutdown_within(bus, GRACE).await;
            return Exit::Complete;
        }
    };
    if stopped_early {
        // A stalled stdout must not hold up an interrupt.
        shutdown_within(bus, GRACE).await;
    } else {
        bus.shutdown().await;
    }

    if output.fell_behind(bus) {
        eprintln!("mistral-events: stdout fell too far behind and events were lost");
        return Exit::Failed;
    }
    match result {
        Ok(outcome) => {
            print_summary(mode, &outcome);
            Exit::Complete
        }
        Err(error) if error.kind() == ErrorKind::Cancelled => {
            eprintln!("mistral-events: interrupted");
            Exit::Interrupted
        }
        Err(error) => {
            print_error(&error);
            Exit::Failed
        }
    }
}

/// How long an interrupted command waits for its output to drain.
const GRACE: Duration = Duration::from_secs(1);

/// Cancels the call and waits a little for its `cancelled` event.
async fn cancel(handle: ChatHandle) -> Result<ChatOutcome, Error> {
    handle.cancel();
    tokio::time::timeout(GRACE, handle)
        .await
        .unwrap_or(Err(Error::Cancelled {
            partial: String::new(),
        }))
}

/// Shuts the bus down, giving up on subscribers still busy after `limit`.
async fn shutdown_within(bus: &MistralEventBus, limit: Duration) {
    let _ = tokio::time::timeout(limit, bus.shutdown()).await;
}

fn print_summary(mode: EventsMode, outcome: &ChatOutcome) {
    let prompt = outcome
        .usage
        .as_ref()
        .map_or(0, |usage| usage.prompt_tokens);
    let completion = outcome
        .usage
        .as_ref()
        .map_or(0, |usage| usage.completion_tokens);
    let ttft = outcome.time_to_first_chunk.map_or(0, millis);
    let total = millis(outcome.elapsed);
    match mode {
        EventsMode::None => {
            let line = format!(
                "complete chunks={} chars={} prompt_tokens={prompt} completion_tokens={completion} ttft_ms={ttft} total_ms={total}\n",
                outcome.chunks,
                outcome.content.chars().count(),
            );
            // A closed pipe here has nothing left to stop.
            let _ = std::io::stdout().write_all(line.as_bytes());
        }
        EventsMode::Text => {
            let usage = match &outcome.usage {
                Some(_) => format!("{prompt} prompt + {completion} completion tokens"),
                None => "no usage reported".to_owned(),
            };
            let finish = outcome
                .finish_reason
                .as_ref()
                .map_or("none".to_owned(), ToString::to_string);
            eprintln!(
                "-- complete: {} chunks, {usage}, finish {finish}, first chunk {ttft} ms, total {total} ms",
                outcome.chunks
            );
        }
        EventsMode::Jsonl => {}
    }
}

fn print_error(error: &Error) {
    eprintln!("mistral-events: {} error: {error}", error.kind());
    if !error.partial().is_empty() {
        eprintln!(
            "mistral-events: {} characters arrived before the failure",
            error.partial().chars().count()
        );
    }
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}
