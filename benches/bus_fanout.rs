//! Bus fan-out: the cost per published chunk event of `MistralEventBus`
//! against a raw `tokio::sync::broadcast` channel doing the same job.
//!
//! **Setup, the same on both sides.** One tokio current-thread runtime, so
//! every task runs on the bench thread and the figure is that thread's CPU
//! time per event (see `support/cpu.rs`), with no cross-core wake-up noise
//! and no time spent waiting for a core another process holds. The payload
//! is the crate's own `Event` (a `chunk` with a short word), built before the
//! timer starts; each side wraps it in one `Arc` as it publishes
//! (`bus.publish(event)` does `Arc::new` inside; the baseline calls
//! `Arc::new` itself). Each receiver runs in a task of its own and does the
//! same trivial work per event (`Work::take`: add the chunk's length, count
//! the event, and on the iteration's last event tell the publisher). The
//! ring (and, for the reliable case, the queue) holds 16,384 events, more
//! than one iteration publishes, so no receiver can lag and no publisher
//! waits: both sides deliver every event. That is asserted once per case,
//! outside timing, from the receivers' own counts (and the bus's `lagged`
//! stats).
//!
//! **One iteration** publishes 10,000 events (the brief's 1,000,000 are
//! 100 iterations; per-event cost is the same) and ends once every receiver
//! has handled the last one. Criterion's throughput is in events.
//!
//! - `lossy_N/bus`: N subscribers registered with `SubscribeOptions::lossy()`
//!   on a bus built with `capacity(16_384)`, each doing the work in an
//!   `async fn on_event` (one boxed future per event, as `async_trait`
//!   makes it); `lossy_N/bus_sync`: the same with the work in the
//!   synchronous `Subscriber::try_on_event` hook, which the bus tries
//!   first; `lossy_N/broadcast`: N raw `broadcast::Receiver`s of a channel
//!   of the same capacity.
//! - `reliable_1/bus` and `reliable_1/bus_sync`: one subscriber with
//!   `SubscribeOptions::reliable().queue(16_384)`; `reliable_1/broadcast`:
//!   the baseline the target is measured against (one raw broadcast
//!   receiver); `reliable_1/mpsc`: a raw bounded `tokio::sync::mpsc` of
//!   the same capacity, for reference, since a reliable subscriber is fed
//!   by one.
//!
//! After each case the bench also runs subject and baseline in 15
//! alternating pairs of iterations and prints the median ratio of their CPU
//! times: a pair of back-to-back iterations sees the same machine, which on
//! a shared VM is steadier than the ratio of two means. The README quotes
//! these lines.
//!
//! Run: `cargo bench --bench bus_fanout` (about 50 s).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mistral_events::bus::{MistralEventBus, SubscribeOptions, Subscriber};
use mistral_events::error::BoxError;
use mistral_events::event::{Event, EventPayload};
use mistral_events::{Client, RequestId};
use tokio::runtime::Runtime;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, Notify};

#[allow(dead_code)]
#[path = "support/cpu.rs"]
mod cpu;
use cpu::{thread_cpu, ThreadCpu};

/// Events published per iteration.
const EVENTS: u64 = 10_000;
/// Ring and queue capacity: above `EVENTS`, so nobody lags or waits.
const CAPACITY: usize = 16_384;

/// Where receivers report the end of an iteration.
#[derive(Default)]
struct Tally {
    /// Receivers yet to see the iteration's last event.
    remaining: AtomicUsize,
    done: Notify,
    /// Events seen, added up by every receiver at each iteration's end.
    seen: AtomicU64,
    /// Events lost to lag (baseline receivers only; the bus counts its own).
    lagged: AtomicU64,
}

impl Tally {
    fn arm(&self, receivers: usize) {
        self.remaining.store(receivers, Ordering::Release);
    }

    fn arrive(&self, seen: u64) {
        self.seen.fetch_add(seen, Ordering::Relaxed);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }
}

/// The trivial per-event work every receiver does, on both sides.
struct Work {
    tally: Arc<Tally>,
    seen: u64,
    bytes: usize,
}

impl Work {
    fn new(tally: &Arc<Tally>) -> Self {
        Self {
            tally: Arc::clone(tally),
            seen: 0,
            bytes: 0,
        }
    }

    #[inline]
    fn take(&mut self, event: &Event) {
        if let EventPayload::Chunk { content, .. } = &event.payload {
            self.bytes += content.len();
        }
        self.seen += 1;
        if event.seq == EVENTS - 1 {
            black_box(self.bytes);
            self.tally.arrive(std::mem::take(&mut self.seen));
        }
    }
}

/// A bus subscriber doing [`Work`] in `async fn on_event`: what most
/// subscribers look like, and one boxed future per event.
struct Receiver(Work);

#[async_trait::async_trait]
impl Subscriber for Receiver {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        self.0.take(&event);
        Ok(())
    }
}

/// A bus subscriber doing [`Work`] in the synchronous `try_on_event` hook,
/// as a subscriber that never waits can.
struct SyncReceiver(Work);

#[async_trait::async_trait]
impl Subscriber for SyncReceiver {
    fn try_on_event(&mut self, event: &Arc<Event>) -> Option<Result<(), BoxError>> {
        self.0.take(event);
        Some(Ok(()))
    }

    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        self.0.take(&event);
        Ok(())
    }
}

/// One iteration's events, built before the timer starts.
fn events(id: &RequestId) -> Vec<Event> {
    (0..EVENTS)
        .map(|seq| Event::for_request(id, seq, EventPayload::chunk(seq, " token")))
        .collect()
}

/// A side under test: publishes one iteration's events and waits until
/// every receiver has handled them.
trait Side {
    async fn run(&self, events: Vec<Event>);
}

struct Bus {
    bus: MistralEventBus,
    tally: Arc<Tally>,
    receivers: usize,
}

impl Bus {
    fn new(receivers: usize, options: &SubscribeOptions, sync: bool) -> Self {
        let client = Client::builder().build().expect("client");
        let bus = MistralEventBus::builder(client).capacity(CAPACITY).build();
        let tally = Arc::new(Tally::default());
        for _ in 0..receivers {
            let work = Work::new(&tally);
            if sync {
                bus.register(SyncReceiver(work), options.clone());
            } else {
                bus.register(Receiver(work), options.clone());
            }
        }
        Self {
            bus,
            tally,
            receivers,
        }
    }

    fn lagged(&self) -> u64 {
        self.bus.stats().subscribers.iter().map(|s| s.lagged).sum()
    }
}

impl Side for Bus {
    async fn run(&self, events: Vec<Event>) {
        self.tally.arm(self.receivers);
        for event in events {
            self.bus.publish(event).await;
        }
        self.tally.done.notified().await;
    }
}

struct Broadcast {
    sender: broadcast::Sender<Arc<Event>>,
    tally: Arc<Tally>,
    receivers: usize,
}

impl Broadcast {
    fn new(receivers: usize) -> Self {
        let (sender, _) = broadcast::channel::<Arc<Event>>(CAPACITY);
        let tally = Arc::new(Tally::default());
        for _ in 0..receivers {
            let mut ring = sender.subscribe();
            let mut work = Work::new(&tally);
            tokio::spawn(async move {
                loop {
                    match ring.recv().await {
                        Ok(event) => work.take(&event),
                        Err(RecvError::Lagged(missed)) => {
                            work.tally.lagged.fetch_add(missed, Ordering::Relaxed);
                        }
                        Err(RecvError::Closed) => break,
                    }
                }
            });
        }
        Self {
            sender,
            tally,
            receivers,
        }
    }
}

impl Side for Broadcast {
    async fn run(&self, events: Vec<Event>) {
        self.tally.arm(self.receivers);
        for event in events {
            let _ = self.sender.send(Arc::new(event));
        }
        self.tally.done.notified().await;
    }
}

struct Mpsc {
    sender: mpsc::Sender<Arc<Event>>,
    tally: Arc<Tally>,
}

impl Mpsc {
    fn new() -> Self {
        let (sender, mut queue) = mpsc::channel::<Arc<Event>>(CAPACITY);
        let tally = Arc::new(Tally::default());
        let mut work = Work::new(&tally);
        tokio::spawn(async move {
            while let Some(event) = queue.recv().await {
                work.take(&event);
            }
        });
        Self { sender, tally }
    }
}

impl Side for Mpsc {
    async fn run(&self, events: Vec<Event>) {
        self.tally.arm(1);
        for event in events {
            // The queue never fills (see CAPACITY), so this never waits.
            let _ = self.sender.send(Arc::new(event)).await;
        }
        self.tally.done.notified().await;
    }
}

/// Alternating pairs of iterations for the ratios.
const ROUNDS: usize = 15;

/// A subject or the baseline: runs `iters` timed iterations.
type Run<'a> = &'a dyn Fn(u64) -> Duration;

/// Runs each subject and the baseline alternately, one iteration at a time,
/// and prints the median ratio of their CPU times. A pair of back-to-back
/// iterations sees the same machine, which on a shared VM is steadier than
/// the ratio of two means measured seconds apart.
fn paired(name: &str, subjects: &[(&str, Run<'_>)], baseline: (&str, Run<'_>)) {
    for (subject, run) in subjects {
        let mut ratios: Vec<f64> = (0..ROUNDS)
            .map(|_| run(1).as_secs_f64() / (baseline.1)(1).as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "{name}: {subject} / {} = {:.2}x (median of {ROUNDS} alternating pairs; {:.2}x to {:.2}x)",
            baseline.0,
            ratios[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS - 1],
        );
    }
}

/// Runs one untimed iteration and checks that every receiver saw every
/// event.
fn check(runtime: &Runtime, side: &impl Side, tally: &Tally, receivers: usize, id: &RequestId) {
    let before = tally.seen.load(Ordering::Relaxed);
    runtime.block_on(side.run(events(id)));
    let seen = tally.seen.load(Ordering::Relaxed) - before;
    assert_eq!(seen, EVENTS * receivers as u64, "a receiver missed events");
    assert_eq!(tally.lagged.load(Ordering::Relaxed), 0, "a receiver lagged");
}

/// Criterion's `iter_custom` body: builds each iteration's events outside
/// the timer, and measures the bench thread's CPU time (all the work runs
/// on it).
fn timed(runtime: &Runtime, side: &impl Side, id: &RequestId, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let events = events(id);
        total += runtime.block_on(async {
            let start = thread_cpu();
            side.run(events).await;
            thread_cpu().saturating_sub(start)
        });
    }
    total
}

fn bus_fanout(c: &mut Criterion<ThreadCpu>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let id = RequestId::new("bench").expect("id");

    for receivers in [1, 10, 100] {
        let bus = Bus::new(receivers, &SubscribeOptions::lossy(), false);
        let bus_sync = Bus::new(receivers, &SubscribeOptions::lossy(), true);
        let broadcast = Broadcast::new(receivers);
        check(&runtime, &bus, &bus.tally, receivers, &id);
        check(&runtime, &bus_sync, &bus_sync.tally, receivers, &id);
        check(&runtime, &broadcast, &broadcast.tally, receivers, &id);
        assert_eq!(
            bus.lagged() + bus_sync.lagged(),
            0,
            "a lossy subscriber lagged"
        );

        let mut group = c.benchmark_group(format!("bus_fanout/lossy_{receivers}"));
        group
            .throughput(Throughput::Elements(EVENTS))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        group.bench_function("bus", |b| {
            b.iter_custom(|iters| timed(&runtime, &bus, &id, iters));
        });
        group.bench_function("bus_sync", |b| {
            b.iter_custom(|iters| timed(&runtime, &bus_sync, &id, iters));
        });
        group.bench_function("broadcast", |b| {
            b.iter_custom(|iters| timed(&runtime, &broadcast, &id, iters));
        });
        group.finish();
        paired(
            &format!("bus_fanout/lossy_{receivers}"),
            &[
                ("bus", &|iters| timed(&runtime, &bus, &id, iters)),
                ("bus_sync", &|iters| timed(&runtime, &bus_sync, &id, iters)),
            ],
            ("broadcast", &|iters| {
                timed(&runtime, &broadcast, &id, iters)
            }),
        );
        assert_eq!(
            bus.lagged() + bus_sync.lagged(),
            0,
            "a lossy subscriber lagged"
        );
        runtime.block_on(bus.bus.shutdown());
        runtime.block_on(bus_sync.bus.shutdown());
    }

    let reliable = SubscribeOptions::reliable().queue(CAPACITY);
    let bus = Bus::new(1, &reliable, false);
    let bus_sync = Bus::new(1, &reliable, true);
    let broadcast = Broadcast::new(1);
    let mpsc = Mpsc::new();
    check(&runtime, &bus, &bus.tally, 1, &id);
    check(&runtime, &bus_sync, &bus_sync.tally, 1, &id);
    check(&runtime, &broadcast, &broadcast.tally, 1, &id);
    check(&runtime, &mpsc, &mpsc.tally, 1, &id);

    let mut group = c.benchmark_group("bus_fanout/reliable_1");
    group
        .throughput(Throughput::Elements(EVENTS))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("bus", |b| {
        b.iter_custom(|iters| timed(&runtime, &bus, &id, iters));
    });
    group.bench_function("bus_sync", |b| {
        b.iter_custom(|iters| timed(&runtime, &bus_sync, &id, iters));
    });
    group.bench_function("broadcast", |b| {
        b.iter_custom(|iters| timed(&runtime, &broadcast, &id, iters));
    });
    group.bench_function("mpsc", |b| {
        b.iter_custom(|iters| timed(&runtime, &mpsc, &id, iters));
    });
    group.finish();
    paired(
        "bus_fanout/reliable_1",
        &[
            ("bus", &|iters| timed(&runtime, &bus, &id, iters)),
            ("bus_sync", &|iters| timed(&runtime, &bus_sync, &id, iters)),
            ("mpsc", &|iters| timed(&runtime, &mpsc, &id, iters)),
        ],
        ("broadcast", &|iters| {
            timed(&runtime, &broadcast, &id, iters)
        }),
    );
    runtime.block_on(bus.bus.shutdown());
    runtime.block_on(bus_sync.bus.shutdown());
}

// No HTML plots: they cost more time than the 10-minute budget of a full
// `cargo bench` leaves.
criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu).without_plots();
    targets = bus_fanout
}
criterion_main!(benches);
