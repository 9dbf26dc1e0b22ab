//! The whole chat path: `bus.stream_chat` over a 100,000-chunk answer from
//! the in-process simulator, against a bare loop doing the minimum a
//! hand-written client would do with the same bytes.
//!
//! **Both sides** send the same request (`metadata: {"sim_tokens":
//! 100000}`, `stream: true`) over HTTP/1.1 to the same simulator, in the
//! same tokio runtime, read the same 100,000 content chunks (about 23 MB of
//! SSE), and hand every piece of text to one receiver in a task of its own,
//! which counts it. Each side's read loop runs in a spawned task.
//!
//! - `bus`: `MistralEventBus::stream_chat` with one lossy subscriber (an
//!   `async fn on_event` that counts), on a bus whose ring holds 131,072
//!   events. This is the crate's whole path: retry and timeout handling,
//!   the SSE decoder, chunk parsing, the assembler (which also joins the
//!   answer for `ChatOutcome`), a `chunk` event per piece (envelope,
//!   sequence, timestamp), the `start` and `complete` events, and the
//!   broadcast ring.
//! - `bare_loop`: `reqwest` `bytes_stream()`, lines split with `memchr`
//!   (carrying a partial line across pieces), `data: ` stripped, `[DONE]`
//!   detected, `serde_json::from_slice` into a borrowed `Chunk<'a>` whose
//!   content is a `Cow<'a, str>` (really borrowed: see `Text`), and each
//!   non-empty content sent as an `Arc<str>` on a `tokio::sync::broadcast`
//!   channel of the same capacity (131,072).
//! - `bytes_only`: the floor both share: the same request, the body read
//!   and dropped. What it costs (the simulator writing the SSE, hyper on
//!   both ends, loopback TCP) is inside both figures above.
//!
//! Neither receiver may lag (that would skip work), so both rings hold the
//! whole answer; one untimed run of each side checks that its receiver saw
//! all 100,000 pieces, and the lag counters are checked again after the
//! timed runs.
//!
//! **Runtimes and measurements.** Criterion's throughput is in chunks.
//!
//! - `chat_path/*`: a tokio current-thread runtime runs everything (the
//!   simulator too) on the bench thread, and the measurement is that
//!   thread's CPU time (`support/cpu.rs`). Both sides do their work the same
//!   way, with no cross-core effects: this is the CPU per chunk the target
//!   is about.
//! - `chat_path_mt_cpu/*`: a multi-thread runtime with 2 workers (the
//!   machine's cores), measured in CPU time of the whole process (every
//!   thread's, so the work done, not how well two cores overlapped it).
//!   Here the figures also carry how tokio spreads the tasks over the two
//!   workers: a receiver on the other core than its publisher pays for
//!   wake-ups, cache-line transfers and malloc's arena lock on every event.
//! - `chat_path_mt_wall/*`: the same runtime, criterion's wall clock.
//!
//! After each group, the bench also runs the two sides in 9 alternating
//! pairs and prints the median ratio `bus / bare_loop`: a pair of
//! back-to-back runs sees the same machine, which on a shared VM is steadier
//! than the ratio of two means measured seconds apart. The README quotes
//! these lines.
//!
//! Run: `cargo bench --bench chat_path` (about 80 s).

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::{Measurement, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use futures_util::StreamExt;
use mistral_events::bus::{MistralEventBus, SubscribeOptions, Subscriber};
use mistral_events::error::BoxError;
use mistral_events::event::{Event, EventPayload};
use mistral_events::sim::Simulator;
use mistral_events::wire::{ChatRequest, Message};
use mistral_events::Client;
use serde::Deserialize;
use tokio::runtime::Runtime;
use tokio::sync::{broadcast, Notify};

#[allow(dead_code)]
#[path = "support/cpu.rs"]
mod cpu;
use cpu::{ProcessCpu, ThreadCpu};

/// Content chunks in the answer.
const CHUNKS: u64 = 100_000;
/// The ring capacity of both sides: room for the whole answer, so that
/// neither receiver can lag however the two workers interleave the
/// publisher, the receiver and the simulator (with the bus's default of
/// 1,024, the publisher can outrun a receiver that shares its cores).
const CAPACITY: usize = 131_072;

/// What the receivers report.
#[derive(Default)]
struct Tally {
    pieces: AtomicU64,
    done: Notify,
    /// Pieces the bare receiver lost to lag (the bus counts its own).
    lagged: AtomicU64,
}

/// Our side's subscriber: counts the chunks; the terminal event ends a run.
struct Counter {
    tally: Arc<Tally>,
    pieces: u64,
    bytes: usize,
}

#[async_trait::async_trait]
impl Subscriber for Counter {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        match &event.payload {
            EventPayload::Chunk { content, .. } => {
                self.bytes += content.len();
                self.pieces += 1;
            }
            _ if event.is_terminal() => {
                black_box(self.bytes);
                self.tally
                    .pieces
                    .store(std::mem::take(&mut self.pieces), Ordering::Release);
                self.tally.done.notify_one();
            }
            _ => {}
        }
        Ok(())
    }
}

/// The bare loop's view of a chunk: only what it needs, borrowed.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Delta<'a>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Text<'a>>,
}

/// The content, borrowed. A bare `Option<Cow<'a, str>>` would not borrow:
/// serde deserializes a `Cow` inside an `Option` as owned, which would
/// cost the baseline an extra allocation per chunk.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

struct Fixture {
    runtime: Runtime,
    _simulator: Simulator,
    url: String,
    request: ChatRequest,
    /// The streamed request's JSON, for the bare loop and the floor.
    body: Bytes,
    http: reqwest::Client,
    bus: MistralEventBus,
    bus_tally: Arc<Tally>,
    ring: broadcast::Sender<Option<Arc<str>>>,
    ring_tally: Arc<Tally>,
}

impl Fixture {
    fn new(multi_thread: bool) -> Self {
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .expect("runtime");
        let simulator = runtime
            .block_on(Simulator::start())
            .expect("simulator starts");
        let url = format!("{}/v1/chat/completions", simulator.base_url());

        let mut request =
            ChatRequest::new("mistral-small-latest", vec![Message::user("Benchmark")]);
        let mut metadata = serde_json::Map::new();
        metadata.insert("sim_tokens".into(), CHUNKS.into());
        request.metadata = Some(metadata);
        let mut streamed = request.clone();
        streamed.stream = Some(true);
        let body = Bytes::from(serde_json::to_vec(&streamed).expect("request JSON"));

        let _guard = runtime.enter();
        let client = Client::builder()
            .base_url(simulator.base_url())
            .build()
            .expect("client");
        let bus = MistralEventBus::builder(client).capacity(CAPACITY).build();
        let bus_tally = Arc::new(Tally::default());
        bus.register(
            Counter {
                tally: Arc::clone(&bus_tally),
                pieces: 0,
                bytes: 0,
            },
            SubscribeOptions::lossy(),
        );

        let (ring, mut receiver) = broadcast::channel::<Option<Arc<str>>>(CAPACITY);
        let ring_tally = Arc::new(Tally::default());
        let tally = Arc::clone(&ring_tally);
        runtime.spawn(async move {
            let (mut pieces, mut bytes) = (0u64, 0usize);
            loop {
                match receiver.recv().await {
                    Ok(Some(text)) => {
                        bytes += text.len();
                        pieces += 1;
                    }
                    Ok(None) => {
                        black_box(bytes);
                        tally
                            .pieces
                            .store(std::mem::take(&mut pieces), Ordering::Release);
                        tally.done.notify_one();
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tally.lagged.fetch_add(missed, Ordering::Relaxed);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });

        Self {
            runtime,
            _simulator: simulator,
            url,
            request,
            body,
            http: reqwest::Client::new(),
            bus,
            bus_tally,
            ring,
            ring_tally,
        }
    }

    /// One `stream_chat`, until the subscriber has seen the end.
    fn run_bus(&self) -> u64 {
        self.runtime.block_on(async {
            let outcome = self
                .bus
                .stream_chat(self.request.clone())
                .await
                .expect("chat completes");
            assert_eq!(outcome.chunks, CHUNKS);
            self.bus_tally.done.notified().await;
        });
        self.bus_tally.pieces.load(Ordering::Acquire)
    }

    /// One bare loop, in a task, until its receiver has seen the end.
    fn run_bare(&self) -> u64 {
        let http = self.http.clone();
        let url = self.url.clone();
        let body = self.body.clone();
        let ring = self.ring.clone();
        self.runtime.block_on(async {
            tokio::spawn(bare_loop(http, url, body, ring))
                .await
                .expect("bare loop");
            self.ring_tally.done.notified().await;
        });
        self.ring_tally.pieces.load(Ordering::Acquire)
    }

    /// Checks, outside timing, that no receiver lagged in any run so far.
    fn assert_no_lag(&self) {
        let lagged: u64 = self.bus.stats().subscribers.iter().map(|s| s.lagged).sum();
        assert_eq!(lagged, 0, "the bus subscriber lagged");
        let lagged = self.ring_tally.lagged.load(Ordering::Relaxed);
        assert_eq!(lagged, 0, "the bare receiver lagged");
    }

    /// The same request, the body read and dropped.
    fn run_bytes(&self) -> usize {
        let http = self.http.clone();
        let url = self.url.clone();
        let body = self.body.clone();
        let task = self.runtime.spawn(async move {
            let response = send(&http, url, body).await;
            let mut stream = response.bytes_stream();
            let mut total = 0;
            while let Some(piece) = stream.next().await {
                total += piece.expect("body").len();
            }
            total
        });
        self.runtime.block_on(task).expect("bytes task")
    }
}

async fn send(http: &reqwest::Client, url: String, body: Bytes) -> reqwest::Response {
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .expect("response");
    assert!(response.status().is_success(), "{}", response.status());
    response
}

/// The hand-written client: bytes, lines, borrowed JSON, broadcast.
async fn bare_loop(
    http: reqwest::Client,
    url: String,
    body: Bytes,
    ring: broadcast::Sender<Option<Arc<str>>>,
) {
    let response = send(&http, url, body).await;
    let mut stream = response.bytes_stream();
    // A line split across pieces waits here for its end.
    let mut carry: Vec<u8> = Vec::new();
    'body: while let Some(piece) = stream.next().await {
        let piece = piece.expect("body");
        let mut rest: &[u8] = &piece;
        if !carry.is_empty() {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                carry.extend_from_slice(rest);
                continue;
            };
            carry.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut carry);
            if !bare_line(&line, &ring) {
                break 'body;
            }
        }
        while let Some(end) = memchr::memchr(b'\n', rest) {
            if !bare_line(&rest[..end], &ring) {
                break 'body;
            }
            rest = &rest[end + 1..];
        }
        carry.extend_from_slice(rest);
    }
    let _ = ring.send(None);
}

/// Handles one line; false at `[DONE]`.
fn bare_line(line: &[u8], ring: &broadcast::Sender<Option<Arc<str>>>) -> bool {
    let Some(data) = line.strip_prefix(b"data: ") else {
        return true;
    };
    if data == b"[DONE]" {
        return false;
    }
    let chunk: Chunk<'_> = serde_json::from_slice(data).expect("chunk JSON");
    for choice in chunk.choices {
        if let Some(Text(content)) = choice.delta.content {
            if !content.is_empty() {
                let _ = ring.send(Some(Arc::from(content.as_ref())));
            }
        }
    }
    true
}

fn configure<M: Measurement>(group: &mut criterion::BenchmarkGroup<'_, M>) {
    group
        .throughput(Throughput::Elements(CHUNKS))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
}

/// A fixture, built once, after an untimed run of each side that checks
/// that neither receiver lagged.
fn checked(multi_thread: bool) -> Fixture {
    let fixture = Fixture::new(multi_thread);
    assert_eq!(fixture.run_bus(), CHUNKS, "the bus subscriber lagged");
    assert_eq!(fixture.run_bare(), CHUNKS, "the bare receiver lagged");
    assert!(fixture.run_bytes() > 0);
    fixture
}

fn current_thread() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| checked(false))
}

fn multi_thread() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| checked(true))
}

fn run_group<M: Measurement>(c: &mut Criterion<M>, measurement: &M, name: &str, fixture: &Fixture) {
    let mut group = c.benchmark_group(name);
    configure(&mut group);
    group.bench_function("bus", |b| b.iter(|| fixture.run_bus()));
    group.bench_function("bare_loop", |b| b.iter(|| fixture.run_bare()));
    group.bench_function("bytes_only", |b| b.iter(|| fixture.run_bytes()));
    group.finish();
    paired(measurement, name, fixture);
    fixture.assert_no_lag();
}

/// Alternating pairs of runs for the ratio.
const ROUNDS: usize = 9;

/// Runs the two sides alternately and prints the median ratio of their
/// costs. On a shared machine whose speed drifts between criterion's runs
/// of one side and of the other, a pair of back-to-back runs sees the same
/// conditions, so this ratio is steadier than one of the two means.
fn paired<M: Measurement>(measurement: &M, name: &str, fixture: &Fixture) {
    let cost = |run: &dyn Fn() -> u64| {
        let start = measurement.start();
        black_box(run());
        measurement.to_f64(&measurement.end(start))
    };
    let mut ratios: Vec<f64> = (0..ROUNDS)
        .map(|_| cost(&|| fixture.run_bus()) / cost(&|| fixture.run_bare()))
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "{name}: bus / bare_loop = {:.2}x (median of {ROUNDS} alternating pairs; {:.2}x to {:.2}x)",
        ratios[ROUNDS / 2],
        ratios[0],
        ratios[ROUNDS - 1],
    );
}

fn chat_path(c: &mut Criterion<ThreadCpu>) {
    run_group(c, &ThreadCpu, "chat_path", current_thread());
}

fn chat_path_mt_cpu(c: &mut Criterion<ProcessCpu>) {
    run_group(c, &ProcessCpu, "chat_path_mt_cpu", multi_thread());
}

fn chat_path_mt_wall(c: &mut Criterion) {
    run_group(c, &WallTime, "chat_path_mt_wall", multi_thread());
}

// No HTML plots: they cost more time than the 10-minute budget of a full
// `cargo bench` leaves; the figures are in the terminal and in
// `target/criterion/*/*/new/estimates.json`.
criterion_group! {
    name = single;
    config = Criterion::default().with_measurement(ThreadCpu).without_plots();
    targets = chat_path
}
criterion_group! {
    name = mt_cpu;
    config = Criterion::default().with_measurement(ProcessCpu).without_plots();
    targets = chat_path_mt_cpu
}
criterion_group! {
    name = mt_wall;
    config = Criterion::default().without_plots();
    targets = chat_path_mt_wall
}
criterion_main!(single, mt_cpu, mt_wall);
