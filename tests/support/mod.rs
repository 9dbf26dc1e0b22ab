//! Set-up shared by the tests that stream from the simulator.
// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use mistral_events::bus::{MistralEventBus, SubscribeOptions};
use mistral_events::client::ClientBuilder;
use mistral_events::event::{Event, EventPayload};
use mistral_events::sim::Simulator;
use mistral_events::subscribers::Collector;
use mistral_events::wire::{ChatRequest, Message};
use mistral_events::Client;

/// A simulator, a bus whose client talks to it, and a reliable collector.
pub(crate) struct Setup {
    pub(crate) sim: Simulator,
    pub(crate) bus: MistralEventBus,
    pub(crate) collector: Collector,
}

/// [`Setup`] with the client as `configure` leaves it.
pub(crate) async fn setup_with(configure: impl FnOnce(ClientBuilder) -> ClientBuilder) -> Setup {
    let sim = Simulator::start().await.unwrap();
    let builder = Client::builder()
        .base_url(sim.base_url())
        .api_key("sk-test");
    let bus = MistralEventBus::new(configure(builder).build().unwrap());
    let collector = Collector::new();
    bus.register(collector.clone(), SubscribeOptions::reliable());
    Setup {
        sim,
        bus,
        collector,
    }
}

/// [`Setup`] with the default client.
pub(crate) async fn setup() -> Setup {
    setup_with(|builder| builder).await
}

/// A request the simulator answers with exactly `tokens` chunks.
pub(crate) fn request(tokens: u32) -> ChatRequest {
    let mut request = ChatRequest::new(
        "mistral-small-latest",
        vec![Message::user("Tell me about rivers")],
    );
    let mut metadata = serde_json::Map::new();
    metadata.insert("sim_tokens".into(), tokens.into());
    request.metadata = Some(metadata);
    request
}

/// The `(index, content)` of every chunk event, in order.
pub(crate) fn chunks(events: &[Arc<Event>]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::Chunk { index, content, .. } => Some((*index, content.clone())),
            _ => None,
        })
        .collect()
}

/// The chunks' text, joined.
pub(crate) fn joined(events: &[Arc<Event>]) -> String {
    chunks(events).into_iter().map(|(_, text)| text).collect()
}
