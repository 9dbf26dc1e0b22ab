//! A subscriber of your own: word counts per request, and a filtered event
//! stream beside it.
//!
//! Run it with `cargo run --example custom_subscriber`. It uses the built-in
//! simulator unless `MISTRAL_API_KEY` or `MISTRAL_BASE_URL` is set.
//!
//! The subscriber implements the async `Subscriber` trait: `on_event` for
//! each event, `on_shutdown` to report once the bus has drained. It is
//! registered reliable, so it sees every event even when it is slow.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use mistral_events::backend::Backend;
use mistral_events::bus::{
    async_trait, EventFilter, MistralEventBus, SubscribeOptions, Subscriber,
};
use mistral_events::error::BoxError;
use mistral_events::event::{Event, EventPayload, EventType};
use mistral_events::wire::{ChatRequest, Message};

/// Counts the words of each request's answer.
#[derive(Default)]
struct WordCounter {
    words: BTreeMap<String, usize>,
}

#[async_trait]
impl Subscriber for WordCounter {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        if let (EventPayload::Chunk { content, .. }, Some(id)) = (&event.payload, &event.request_id)
        {
            *self.words.entry(id.to_string()).or_default() += content.split_whitespace().count();
        }
        Ok(())
    }

    async fn on_shutdown(&mut self) {
        for (request, words) in &self.words {
            eprintln!("word counter: {request} had about {words} words");
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = Backend::from_env().await?;
    eprintln!("custom_subscriber: talking to {}", backend.describe());
    let bus = MistralEventBus::new(backend.client_builder().build()?);
    bus.register(WordCounter::default(), SubscribeOptions::reliable());

    // A stream of the terminal events only, read in a task of its own.
    let mut endings =
        bus.subscribe_with(EventFilter::all().types([EventType::Complete, EventType::Error]));
    let reader = tokio::spawn(async move {
        while let Some(Ok(event)) = endings.next().await {
            println!("{}", event.to_json());
        }
    });

    for prompt in ["Name a river.", "Name a mountain.", "Name a sea."] {
        let request = ChatRequest::new("mistral-small-latest", vec![Message::user(prompt)]);
        bus.stream_chat(request).await?;
    }

    bus.shutdown().await;
    reader.await?;
    backend.shutdown().await;
    Ok(())
}
