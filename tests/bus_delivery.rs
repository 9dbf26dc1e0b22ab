//! How the bus delivers: lag for lossy subscribers, back-pressure and
//! detaching for reliable ones, isolation of failing subscribers, filtered
//! streams, shutdown and stats.
//!
//! Events are built by hand and published directly. Nothing here asserts a
//! duration: a "gate" holds a subscriber still, and the tests check what
//! has or has not happened while it is shut.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use mistral_events::bus::{
    Delivery, EventFilter, Lagged, MistralEventBus, SubscribeOptions, Subscriber,
};
use mistral_events::error::BoxError;
use mistral_events::event::{Event, EventPayload, EventType};
use mistral_events::{Client, RequestId};
use tokio::sync::{Notify, Semaphore};
use tokio::time::timeout;

/// The one place that knows how to build a client for tests.
fn client() -> Client {
    Client::builder().build().expect("a default client")
}

fn bus() -> MistralEventBus {
    MistralEventBus::new(client())
}

fn bus_with_capacity(events: usize) -> MistralEventBus {
    MistralEventBus::builder(client()).capacity(events).build()
}

fn request(text: &str) -> RequestId {
    RequestId::new(text).unwrap()
}

fn chunk(id: &RequestId, seq: u64) -> Event {
    Event::for_request(id, seq, EventPayload::chunk(seq, "x"))
}

fn complete(id: &RequestId, seq: u64) -> Event {
    Event::for_request(id, seq, EventPayload::Complete(Box::default()))
}

/// A gate that starts shut; `add_permits(1)` opens it.
fn gate() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(0))
}

/// Long enough for a publisher that could finish to have finished; a
/// publisher that is held back stays pending however long this is.
const SETTLE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
enum Record {
    Event(Arc<Event>),
    Lagged(u64),
    Shutdown,
}

/// What a test subscriber saw, shared with the test.
#[derive(Clone, Default)]
struct Log {
    records: Arc<Mutex<Vec<Record>>>,
    changed: Arc<Notify>,
}

impl Log {
    fn push(&self, record: Record) {
        self.records.lock().unwrap().push(record);
        self.changed.notify_waiters();
    }

    fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<Arc<Event>> {
        self.records()
            .into_iter()
            .filter_map(|record| match record {
                Record::Event(event) => Some(event),
                _ => None,
            })
            .collect()
    }

    fn seqs(&self) -> Vec<u64> {
        self.events().iter().map(|event| event.seq).collect()
    }

    async fn wait_until(&self, done: impl Fn(&[Record]) -> bool) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if done(&self.records.lock().unwrap()) {
                return;
            }
            changed.await;
        }
    }
}

fn saw_terminal(records: &[Record]) -> bool {
    records
        .iter()
        .any(|record| matches!(record, Record::Event(event) if event.is_terminal()))
}

/// Records everything; when gated, waits for the gate before handling its
/// first event.
struct Recorder {
    log: Log,
    gate: Option<Arc<Semaphore>>,
}

impl Recorder {
    fn new(log: &Log) -> Self {
        Self {
            log: log.clone(),
            gate: None,
        }
    }

    fn gated(log: &Log, gate: &Arc<Semaphore>) -> Self {
        Self {
            log: log.clone(),
            gate: Some(gate.clone()),
        }
    }
}

#[async_trait::async_trait]
impl Subscriber for Recorder {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        if let Some(gate) = self.gate.take() {
            let _permit = gate.acquire().await?;
        }
        self.log.push(Record::Event(event));
        Ok(())
    }

    async fn on_lagged(&mut self, missed: u64) {
        self.log.push(Record::Lagged(missed));
    }

    async fn on_shutdown(&mut self) {
        self.log.push(Record::Shutdown);
    }
}

/// Panics on every third event (seq 2, 5, 8, …), after noting it.
struct Panicker {
    seen: Arc<Mutex<Vec<u64>>>,
}

#[async_trait::async_trait]
impl Subscriber for Panicker {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        self.seen.lock().unwrap().push(event.seq);
        if event.seq % 3 == 2 {
            panic!("test subscriber panics on seq {}", event.seq);
        }
        Ok(())
    }
}

/// Fails on events with an even seq.
struct Failing;

#[async_trait::async_trait]
impl Subscriber for Failing {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        if event.seq % 2 == 0 {
            return Err("even seq refused".into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_subscriber_lags_without_holding_up_the_publisher() {
    let bus = bus_with_capacity(1024);
    let (log, gate) = (Log::default(), gate());
    let subscriber = bus.register(Recorder::gated(&log, &gate), SubscribeOptions::lossy());
    let id = request("lossy");

    // All of it goes out while the subscriber is held at its gate.
    for seq in 0..10_000 {
        bus.publish(chunk(&id, seq)).await;
    }
    bus.publish(complete(&id, 10_000)).await;

    gate.add_permits(1);
    log.wait_until(saw_terminal).await;
    bus.shutdown().await;

    let records = log.records();
    let told: u64 = records
        .iter()
        .map(|record| match record {
            Record::Lagged(missed) => *missed,
            _ => 0,
        })
        .sum();
    assert!(told > 0, "the subscriber was told it lagged");
    let events = log.events();
    assert!(
        events.last().unwrap().is_terminal(),
        "the terminal event comes last"
    );
    assert!(events.windows(2).all(|pair| pair[0].seq < pair[1].seq));

    let stats = bus.stats();
    let stats = stats.subscriber(subscriber).unwrap();
    assert_eq!(stats.lagged, told);
    assert_eq!(stats.delivered, events.len() as u64);
    assert_eq!(
        stats.delivered + stats.lagged,
        10_001,
        "every event is accounted for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliable_subscriber_holds_the_publisher_back_until_it_has_room() {
    let bus = bus();
    let (log, gate) = (Log::default(), gate());
    bus.register(
        Recorder::gated(&log, &gate),
        SubscribeOptions::reliable().queue(64),
    );
    let id = request("reliable");

    let mut publisher = tokio::spawn({
        let bus = bus.clone();
        async move {
            for seq in 0..10_000 {
                bus.publish(chunk(&id, seq)).await;
            }
        }
    });

    // The queue holds 64 events and the subscriber one: the rest must wait.
    assert!(
        timeout(SETTLE, &mut publisher).await.is_err(),
        "the publisher waits for the gated subscriber"
    );

    gate.add_permits(1);
    publisher.await.unwrap();
    bus.shutdown().await;
    assert_eq!(log.seqs(), (0..10_000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_reliable_subscriber_is_detached_and_reported() {
    let bus = bus();
    let feed = bus.subscribe();
    let (stuck_log, never) = (Log::default(), gate());
    let stuck = bus.register(
        Recorder::gated(&stuck_log, &never),
        SubscribeOptions::reliable()
            .queue(8)
            .max_wait(Duration::from_millis(50))
            .name("stuck-store"),
    );
    let healthy_log = Log::default();
    let healthy = bus.register(Recorder::new(&healthy_log), SubscribeOptions::reliable());
    let id = request("detach");

    for seq in 0..200 {
        bus.publish(chunk(&id, seq)).await;
    }

    let stats = bus.stats();
    assert!(stats.subscriber(stuck).unwrap().detached);
    assert!(!stats.subscriber(healthy).unwrap().detached);

    // The stuck subscriber never opens its gate; shutdown must not wait.
    bus.shutdown().await;

    let healthy_events = healthy_log.events();
    let notices: Vec<_> = healthy_events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::SubscriberFailed { subscriber, .. } => Some(subscriber.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(notices, ["stuck-store"]);
    let chunk_seqs: Vec<u64> = healthy_events
        .iter()
        .filter(|event| event.event_type() == EventType::Chunk)
        .map(|event| event.seq)
        .collect();
    assert_eq!(chunk_seqs, (0..200).collect::<Vec<_>>());
    assert_eq!(bus.stats().subscriber(healthy).unwrap().delivered, 201);

    let seen_on_feed: Vec<EventType> = feed.map(|item| item.unwrap().event_type()).collect().await;
    assert!(seen_on_feed.contains(&EventType::SubscriberFailed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_panicking_subscribers_are_isolated() {
    let bus = bus();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let panicker = bus.register(
        Panicker { seen: seen.clone() },
        SubscribeOptions::reliable(),
    );
    let failing = bus.register(Failing, SubscribeOptions::lossy());
    let healthy_log = Log::default();
    let healthy = bus.register(Recorder::new(&healthy_log), SubscribeOptions::reliable());
    let id = request("isolation");

    for seq in 0..30 {
        bus.publish(chunk(&id, seq)).await;
    }
    bus.shutdown().await;

    let stats = bus.stats();
    let panicker = stats.subscriber(panicker).unwrap();
    assert_eq!((panicker.delivered, panicker.failed), (20, 10));
    assert_eq!(
        *seen.lock().unwrap(),
        (0..30).collect::<Vec<_>>(),
        "it kept receiving"
    );
    let failing = stats.subscriber(failing).unwrap();
    assert_eq!((failing.delivered, failing.failed), (15, 15));
    let healthy = stats.subscriber(healthy).unwrap();
    assert_eq!((healthy.delivered, healthy.failed), (30, 0));
    assert_eq!(healthy_log.seqs(), (0..30).collect::<Vec<_>>());
}

#[tokio::test]
async fn filtered_stream_yields_only_matching_events() {
    let bus = bus();
    let (mine, other) = (request("mine"), request("other"));
    let stream = bus.subscribe_with(
        EventFilter::all()
            .request(mine.clone())
            .types([EventType::Chunk]),
    );

    let start = EventPayload::Start { model: "m".into() };
    bus.publish(Event::for_request(&mine, 0, start)).await;
    bus.publish(chunk(&mine, 1)).await;
    bus.publish(chunk(&other, 1)).await;
    bus.publish(chunk(&mine, 2)).await;
    bus.publish(complete(&mine, 3)).await;
    bus.shutdown().await;

    let got: Vec<Arc<Event>> = stream.map(Result::unwrap).collect().await;
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .all(|event| event.request_id.as_ref() == Some(&mine)
            && event.event_type() == EventType::Chunk));
    assert_eq!(
        got.iter().map(|event| event.seq).collect::<Vec<_>>(),
        [1, 2]
    );
}

#[tokio::test]
async fn slow_stream_is_told_it_lagged() {
    let bus = bus_with_capacity(16);
    let stream = bus.subscribe();
    let id = request("slow");

    // Nobody polls the stream while 100 events go out.
    for seq in 0..100 {
        bus.publish(chunk(&id, seq)).await;
    }
    bus.shutdown().await;

    let items: Vec<Result<Arc<Event>, Lagged>> = stream.collect().await;
    let Err(Lagged { missed }) = items[0] else {
        panic!("the first item is the lag, got {:?}", items[0]);
    };
    assert!(missed > 0);
    let events: Vec<_> = items[1..]
        .iter()
        .map(|item| item.clone().unwrap())
        .collect();
    assert_eq!(missed + events.len() as u64, 100);
    assert_eq!(events.last().unwrap().seq, 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_reliable_queues_and_is_idempotent() {
    let bus = bus();
    let (log, gate) = (Log::default(), gate());
    bus.register(Recorder::gated(&log, &gate), SubscribeOptions::reliable());
    let id = request("drain");

    for seq in 0..1000 {
        bus.publish(chunk(&id, seq)).await;
    }

    let mut shutting_down = tokio::spawn({
        let bus = bus.clone();
        async move { bus.shutdown().await }
    });
    assert!(
        timeout(SETTLE, &mut shutting_down).await.is_err(),
        "shutdown waits for the queued events"
    );
    gate.add_permits(1);
    shutting_down.await.unwrap();

    let records = log.records();
    assert_eq!(log.seqs(), (0..1000).collect::<Vec<_>>());
    assert!(matches!(records.last(), Some(Record::Shutdown)));
    assert_eq!(
        records.len(),
        1001,
        "on_shutdown once, after the last event"
    );

    // Again: nothing more happens, and publishing is a quiet no-op.
    bus.shutdown().await;
    bus.publish(chunk(&id, 1000)).await;
    assert_eq!(log.records().len(), 1001);
    assert_eq!(bus.stats().published, 1000);
    assert!(bus.is_closed());
}

#[tokio::test]
async fn late_streams_and_subscribers_see_a_closed_bus() {
    let bus = bus();
    bus.shutdown().await;

    let late_stream = bus.subscribe();
    assert_eq!(late_stream.count().await, 0);

    let log = Log::default();
    bus.register(Recorder::new(&log), SubscribeOptions::lossy());
    log.wait_until(|records| !records.is_empty()).await;
    assert!(matches!(log.records()[..], [Record::Shutdown]));
}

#[tokio::test]
async fn dropping_every_handle_ends_the_subscribers() {
    let bus = bus();
    let (lossy, reliable) = (Log::default(), Log::default());
    bus.register(Recorder::new(&lossy), SubscribeOptions::lossy());
    bus.register(Recorder::new(&reliable), SubscribeOptions::reliable());
    bus.publish(chunk(&request("dropped"), 0)).await;
    drop(bus);

    for log in [lossy, reliable] {
        log.wait_until(|records| matches!(records.last(), Some(Record::Shutdown)))
            .await;
        assert_eq!(log.seqs(), [0]);
    }
}

#[tokio::test]
async fn stats_count_published_and_each_subscribers_outcomes() {
    let bus = bus();
    let log = Log::default();
    let chunks = bus.register(
        Recorder::new(&log),
        SubscribeOptions::lossy()
            .filter(EventFilter::all().types([EventType::Chunk]))
            .name("chunks"),
    );
    let failing = bus.register(Failing, SubscribeOptions::reliable());
    let id = request("stats");

    let start = EventPayload::Start { model: "m".into() };
    bus.publish(Event::for_request(&id, 0, start)).await;
    for seq in 1..=5 {
        bus.publish(chunk(&id, seq)).await;
    }
    bus.publish(complete(&id, 6)).await;
    bus.shutdown().await;

    let stats = bus.stats();
    assert_eq!(stats.published, 7);
    assert_eq!(stats.subscribers.len(), 2);

    let chunks = stats.subscriber(chunks).unwrap();
    assert_eq!(chunks.name, "chunks");
    assert_eq!(chunks.delivery, Delivery::Lossy);
    assert_eq!((chunks.delivered, chunks.lagged, chunks.failed), (5, 0, 0));

    let failing = stats.subscriber(failing).unwrap();
    assert_eq!(failing.name, "Failing");
    assert!(failing.delivery.is_reliable());
    // Seqs 0, 2, 4 and 6 are refused.
    assert_eq!((failing.delivered, failing.failed), (3, 4));
    assert!(!failing.detached);
}

#[tokio::test]
async fn publishing_with_no_subscribers_is_fine() {
    let bus = bus();
    let id = request("alone");
    for seq in 0..10 {
        bus.publish(chunk(&id, seq)).await;
    }
    bus.publish_shared(Arc::new(complete(&id, 10))).await;

    let stats = bus.stats();
    assert_eq!(stats.published, 11);
    assert!(stats.subscribers.is_empty());
    bus.shutdown().await;
}

#[test]
fn publishing_and_shutdown_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let bus = bus();
    let id = request("send");
    assert_send(&bus.publish(chunk(&id, 0)));
    assert_send(&bus.shutdown());
    assert_send(&bus.subscribe());
}
