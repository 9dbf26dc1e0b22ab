//! Quick start: one streamed chat through the event bus.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example quickstart                    # no key: the built-in simulator
//! cargo run --example quickstart -- "Your prompt"   # your own prompt
//! MISTRAL_API_KEY=… cargo run --example quickstart  # the real API
//! ```
//!
//! It picks its server by the crate's rule (no `MISTRAL_API_KEY` and no
//! `MISTRAL_BASE_URL`: the simulator) and says on stderr which one. Three
//! subscribers are registered: a tracing logger (its lines go to stderr), a
//! terminal printer (the answer goes to stdout as it streams) and a JSON
//! Lines recorder (every event, in a file named on stderr).

use std::io::IsTerminal;
use std::time::Duration;

use mistral_events::backend::Backend;
use mistral_events::bus::{MistralEventBus, SubscribeOptions};
use mistral_events::sim::Simulator;
use mistral_events::subscribers::{JsonlRecorder, TerminalPrinter, TracingLogger};
use mistral_events::wire::{ChatRequest, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mistral_events=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // The simulator answers in a blink; slow its chunks so the answer is
    // seen to stream. A real server keeps its own pace.
    let simulator = Simulator::builder().chunk_delay(Duration::from_millis(40));
    let backend = Backend::from_env_with(simulator).await?;
    eprintln!("quickstart: talking to {}", backend.describe());
    let bus = MistralEventBus::new(backend.client_builder().build()?);

    // Logs may drop events under load; the printer and the recorder may not.
    let recording = std::env::temp_dir().join("mistral-events-quickstart.jsonl");
    bus.register(TracingLogger::new(), SubscribeOptions::lossy());
    bus.register(TerminalPrinter::stdout(), SubscribeOptions::reliable());
    bus.register(
        JsonlRecorder::create(&recording).await?,
        SubscribeOptions::reliable(),
    );

    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Write two sentences about rivers.".to_owned());
    let request = ChatRequest::new("mistral-small-latest", vec![Message::user(prompt)]);
    let result = bus.stream_chat(request).await;

    // Drain the printer and the recorder before reporting.
    bus.shutdown().await;
    backend.shutdown().await;
    match result {
        Ok(outcome) => {
            let tokens = outcome
                .usage
                .map_or("no usage reported".to_owned(), |usage| {
                    format!("{} tokens", usage.total_tokens)
                });
            eprintln!(
                "quickstart: {} chunks, {tokens}; events recorded in {}",
                outcome.chunks,
                recording.display()
            );
            Ok(())
        }
        Err(error) => {
            eprintln!("quickstart: the chat failed: {error}");
            std::process::exit(1);
        }
    }
}
