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
//! Each call's events are printed on stdout as JSON lines once it ends,
//! after a heading on stderr.

use mistral_events::bus::{ChatHandle, MistralEventBus, SubscribeOptions};
use mistral_events::sim::{Fault, Simulator};
use mistral_events::subscribers::Collector;
use mistral_events::wire::{ChatRequest, Message};
use mistral_events::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let simulator = Simulator::start().await?;
    eprintln!(
        "fault_injection: the built-in simulator at {}",
        simulator.base_url()
    );
    let client = Client::builder().base_url(simulator.base_url()).build()?;
    let bus = MistralEventBus::new(client);
    let collector = Collector::new();
    bus.register(collector.clone(), SubscribeOptions::reliable());
    let request = || {
        ChatRequest::new(
            "mistral-small-latest",
            vec![Message::user("Tell me a story")],
        )
    };

    eprintln!("\n1. a 429 with Retry-After: 1, then success");
    simulator.push_fault(Fault::status(429).with_retry_after("1"));
    let outcome = show(&collector, bus.stream_chat(request())).await?;
    eprintln!("   completed after a retry: {:?}", outcome.content);

    eprintln!("\n2. a stream cut after 3 chunks");
    simulator.push_fault(Fault::CutAfter(3));
    match show(&collector, bus.stream_chat(request())).await {
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

/// Awaits a call, then prints its events in order.
async fn show(
    collector: &Collector,
    handle: ChatHandle,
) -> Result<mistral_events::bus::ChatOutcome, mistral_events::Error> {
    let id = handle.request_id().clone();
    let result = handle.await;
    // The collector may still be handling the last event.
    collector.wait_for_terminal(&id).await;
    for event in collector.events_for(&id) {
        println!("{}", event.to_json());
    }
    result
}
