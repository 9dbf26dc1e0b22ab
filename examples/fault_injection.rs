//! Faults on purpose: a 429 that is waited out, and a stream cut mid-answer.
//!
//! Run it with `cargo run --example fault_injection`. It always uses the
//! built-in simulator, whose faults are scripted per request:
//!
//! 1. the first request gets `429` with `Retry-After: 1`; the bus publishes
//!    a `retry` event, waits about a second, and the second attempt
//!    completes;
//! 2. the next request is cut after three chunks; nothing is re-sent, and
//!    the `error` event carries the text that did arrive as `partial`.
//!
//! Every event is printed on stdout as one JSON line.

use std::sync::Arc;

use async_trait::async_trait;
use mistral_events::bus::{MistralEventBus, SubscribeOptions, Subscriber};
use mistral_events::error::BoxError;
use mistral_events::event::Event;
use mistral_events::sim::{Fault, Simulator};
use mistral_events::wire::{ChatRequest, Message};
use mistral_events::Client;

/// Prints each event as a JSON line.
struct JsonPrinter;

#[async_trait]
impl Subscriber for JsonPrinter {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        println!("{}", event.to_json());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let simulator = Simulator::start().await?;
    eprintln!(
        "fault_injection: the built-in simulator at {}",
        simulator.base_url()
    );
    let client = Client::builder().base_url(simulator.base_url()).build()?;
    let bus = MistralEventBus::new(client);
    bus.register(JsonPrinter, SubscribeOptions::reliable());
    let request = || {
        ChatRequest::new(
            "mistral-small-latest",
            vec![Message::user("Tell me a story")],
        )
    };

    eprintln!("\n1. a 429 with Retry-After: 1, then success");
    simulator.push_fault(Fault::status(429).with_retry_after("1"));
    let outcome = bus.stream_chat(request()).await?;
    eprintln!("   completed after a retry: {:?}", outcome.content);

    eprintln!("\n2. a stream cut after 3 chunks");
    simulator.push_fault(Fault::CutAfter(3));
    match bus.stream_chat(request()).await {
        Ok(_) => eprintln!("   unexpectedly complete"),
        Err(error) => eprintln!(
            "   {} error; partial text kept: {:?}; requests sent in all: {}",
            error.kind(),
            error.partial(),
            simulator.request_count()
        ),
    }

    bus.shutdown().await;
    simulator.shutdown().await;
    Ok(())
}
