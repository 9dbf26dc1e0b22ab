//! Delivery rules with a real 10,000-chunk stream from the simulator and a
//! subscriber that blocks on a gate. No assertion depends on how long
//! anything takes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mistral_events::bus::{ChatOptions, MistralEventBus, SubscribeOptions, Subscriber};
use mistral_events::error::BoxError;
use mistral_events::event::{Event, EventPayload, EventType};
use mistral_events::sim::Simulator;
use mistral_events::subscribers::Collector;
use mistral_events::wire::{ChatRequest, Message};
use mistral_events::{Client, RequestId};
use tokio::sync::{watch, Notify};

const CHUNKS: u32 = 10_000;

fn long_request() -> ChatRequest {
    let mut request = ChatRequest::new("mistral-small-latest", vec![Message::user("Go on")]);
    let mut metadata = serde_json::Map::new();
    metadata.insert("sim_tokens".into(), CHUNKS.into());
    request.metadata = Some(metadata);
    request
}

async fn bus() -> (Simulator, MistralEventBus) {
    let sim = Simulator::start().await.unwrap();
    let client = Client::builder().base_url(sim.base_url()).build().unwrap();
    (sim, MistralEventBus::new(client))
}

/// What a gated subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    chunk_indices: Vec<u64>,
    lagged: Vec<u64>,
    last_type: Option<EventType>,
}

/// Blocks on `gate` before handling each event, records what it saw, and
/// wakes `first` on its first event and `terminal` on the terminal one.
struct Gated {
    gate: watch::Receiver<bool>,
    seen: Arc<Mutex<Seen>>,
    first: Arc<Notify>,
    terminal: Arc<Notify>,
    started: bool,
}

/// The test's side of a [`Gated`] subscriber.
struct Control {
    open: watch::Sender<bool>,
    seen: Arc<Mutex<Seen>>,
    first: Arc<Notify>,
    terminal: Arc<Notify>,
}

impl Gated {
    fn new() -> (Self, Control) {
        let (open, gate) = watch::channel(false);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let first = Arc::new(Notify::new());
        let terminal = Arc::new(Notify::new());
        let subscriber = Self {
            gate,
            seen: seen.clone(),
            first: first.clone(),
            terminal: terminal.clone(),
            started: false,
        };
        let control = Control {
            open,
            seen,
            first,
            terminal,
        };
        (subscriber, control)
    }
}

#[async_trait]
impl Subscriber for Gated {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        if !self.started {
            self.started = true;
            self.first.notify_one();
        }
        // Blocks until the test opens the gate (or the sender is gone).
        let _ = self.gate.wait_for(|open| *open).await;
        let mut seen = self.seen.lock().unwrap();
        if let EventPayload::Chunk { index, .. } = &event.payload {
            seen.chunk_indices.push(*index);
        }
        seen.last_type = Some(event.event_type());
        if event.is_terminal() {
            self.terminal.notify_one();
        }
        Ok(())
    }

    async fn on_lagged(&mut self, missed: u64) {
        self.seen.lock().unwrap().lagged.push(missed);
    }
}

#[tokio::test]
async fn lossy_subscriber_behind_a_closed_gate_never_slows_the_stream() {
    let (_sim, bus) = bus().await;
    let (
        gated,
        Control {
            open,
            seen,
            terminal,
            ..
        },
    ) = Gated::new();
    let id = bus.register(gated, SubscribeOptions::lossy());

    // The whole stream completes while the gate is still closed.
    let outcome = bus.stream_chat(long_request()).await.unwrap();
    assert_eq!(outcome.chunks, u64::from(CHUNKS));

    open.send_replace(true);
    terminal.notified().await;
    let seen = seen.lock().unwrap();
    let missed: u64 = seen.lagged.iter().sum();
    assert!(missed > 0, "the subscriber was told it lagged");
    assert_eq!(
        seen.last_type,
        Some(EventType::Complete),
        "it still sees the terminal event"
    );
    let stats = bus.stats();
    let mine = stats.subscriber(id).unwrap();
    assert_eq!(mine.lagged, missed);
}

#[tokio::test]
async fn reliable_subscriber_holds_the_stream_until_its_gate_opens_then_gets_everything() {
    let (_sim, bus) = bus().await;
    let (
        gated,
        Control {
            open, seen, first, ..
        },
    ) = Gated::new();
    bus.register(
        gated,
        SubscribeOptions::reliable()
            .queue(64)
            .max_wait(Duration::from_secs(60)),
    );

    let handle = bus.stream_chat(long_request());
    first.notified().await;

    // While the gate is closed the stream can get no further than the queue
    // allows: it cannot finish.
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            bus.stats().published < 200,
            "publishing is held by the full queue"
        );
    }
    assert!(
        !handle.is_finished(),
        "the stream cannot finish while the gate is closed"
    );

    open.send_replace(true);
    let outcome = handle.await.unwrap();
    bus.shutdown().await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.chunk_indices.len(), CHUNKS as usize);
    assert!(
        seen.chunk_indices
            .iter()
            .enumerate()
            .all(|(position, index)| *index == position as u64),
        "all chunks arrive in order"
    );
    assert!(seen.lagged.is_empty());
    assert_eq!(outcome.chunks, u64::from(CHUNKS));
}

#[tokio::test]
async fn reliable_subscriber_that_never_opens_is_detached_and_the_stream_completes() {
    let (_sim, bus) = bus().await;
    let (gated, _control) = Gated::new();
    let stuck = bus.register(
        gated,
        SubscribeOptions::reliable()
            .queue(64)
            .max_wait(Duration::from_millis(100)),
    );
    let collector = Collector::new();
    bus.register(collector.clone(), SubscribeOptions::reliable());

    let request_id = RequestId::new("detach-test").unwrap();
    let outcome = bus
        .stream_chat_with(
            long_request(),
            ChatOptions::new().request_id(request_id.clone()),
        )
        .await
        .unwrap();
    assert_eq!(outcome.chunks, u64::from(CHUNKS));

    let stats = bus.stats();
    assert!(
        stats.subscriber(stuck).unwrap().detached,
        "the stuck subscriber was detached"
    );
    let failed: Vec<_> = collector
        .events()
        .into_iter()
        .filter(|event| event.event_type() == EventType::SubscriberFailed)
        .collect();
    assert_eq!(failed.len(), 1, "the detach is reported as an event");
    assert_eq!(
        collector.chunks_text(&request_id),
        outcome.content,
        "the healthy subscriber got everything"
    );
    bus.shutdown().await;
}

/// Panics on every event it is given.
struct Panicker {
    calls: Arc<AtomicBool>,
}

#[async_trait]
impl Subscriber for Panicker {
    async fn on_event(&mut self, _event: Arc<Event>) -> Result<(), BoxError> {
        self.calls.store(true, Ordering::SeqCst);
        panic!("this subscriber always panics");
    }
}

#[tokio::test]
async fn a_panicking_subscriber_stops_neither_the_stream_nor_the_others() {
    let (_sim, bus) = bus().await;
    let calls = Arc::new(AtomicBool::new(false));
    let reliable_panicker = bus.register(
        Panicker {
            calls: calls.clone(),
        },
        SubscribeOptions::reliable(),
    );
    bus.register(
        Panicker {
            calls: calls.clone(),
        },
        SubscribeOptions::lossy(),
    );
    let collector = Collector::new();
    bus.register(collector.clone(), SubscribeOptions::reliable());

    let request_id = RequestId::new("panics").unwrap();
    let outcome = bus
        .stream_chat_with(
            long_request(),
            ChatOptions::new().request_id(request_id.clone()),
        )
        .await
        .unwrap();
    bus.shutdown().await;

    assert!(calls.load(Ordering::SeqCst));
    assert_eq!(collector.chunks_text(&request_id), outcome.content);
    let events = collector.events_for(&request_id);
    assert_eq!(events.last().unwrap().event_type(), EventType::Complete);
    let stats = bus.stats();
    let panicker = stats.subscriber(reliable_panicker).unwrap();
    assert_eq!(
        panicker.failed,
        events.len() as u64,
        "every panic was counted and isolated"
    );
    assert!(!panicker.detached);
}
