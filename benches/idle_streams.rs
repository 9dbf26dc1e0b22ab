//! Memory of 10,000 concurrent idle streams, by resident set size.
//!
//! A `harness = false` bench: it prints its figures rather than timing
//! anything. Three processes, so that each figure is one side's own memory
//! and so that no process needs more than about 10,000 sockets:
//!
//! 1. the simulator, started by re-running this binary with
//!    `MISTRAL_EVENTS_BENCH_ROLE=sim`; every request carries
//!    `x-sim-fault: stall-after=1`, so each stream sends its role chunk and
//!    one content chunk, then nothing, and stays open;
//! 2. `bus`: one `MistralEventBus` (one reliable subscriber counting the
//!    chunks) running 10,000 `stream_chat` calls, each a driver task with
//!    its `ChatStream`, decoder, idle timer and connection;
//! 3. `reqwest`, the baseline: 10,000 tasks, each holding a bare
//!    `reqwest` `bytes_stream()` after reading the same first chunk.
//!
//! Each client process reads its `VmRSS` from `/proc/self/status` once its
//! runtime and client are built, and again when all 10,000 streams have
//! delivered their content chunk; the difference, over 10,000, is the cost
//! of one idle stream. Both use a tokio multi-thread runtime with 2 workers
//! and open the streams in waves of 500 so the accept queue never
//! overflows. Fresh processes matter: memory freed by an earlier phase
//! would stay in the allocator and hide the next phase's cost.
//!
//! File descriptors: each process needs a little over 10,000 (10,256 are
//! asked for). A child is started through `sh -c 'ulimit -n N; exec …'`
//! when the soft limit is lower, which raises it as far as the hard limit
//! allows (an unprivileged process cannot go past the hard limit; the child
//! then stops and asks for `ulimit -n 10256`).
//!
//! Run: `cargo bench --bench idle_streams` (about 10 s). The count can be
//! changed with `MISTRAL_EVENTS_BENCH_STREAMS`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mistral_events::bus::{ChatHandle, MistralEventBus, SubscribeOptions, Subscriber};
use mistral_events::error::BoxError;
use mistral_events::event::{Event, EventPayload};
use mistral_events::sim::Simulator;
use mistral_events::wire::{ChatRequest, Message};
use mistral_events::Client;

const ROLE: &str = "MISTRAL_EVENTS_BENCH_ROLE";
const URL: &str = "MISTRAL_EVENTS_BENCH_URL";
const STREAMS_VAR: &str = "MISTRAL_EVENTS_BENCH_STREAMS";
/// Streams opened at once before waiting for them to start.
const WAVE: usize = 500;
/// Descriptors beyond the sockets: runtime, epoll, stdio, files.
const FD_MARGIN: u64 = 256;
/// The most a side may take to open all its streams.
const OPEN_LIMIT: Duration = Duration::from_secs(120);
const FAULT: &str = "stall-after=1";

fn streams() -> usize {
    std::env::var(STREAMS_VAR)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(10_000)
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("sim") => run_simulator(),
        Ok("bus") => run_client(Side::Bus),
        Ok("reqwest") => run_client(Side::Reqwest),
        _ => orchestrate(),
    }
}

/// A value from `/proc/<pid>/status`, in KiB.
fn status_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("field in /proc status")
}

/// The soft and hard limits on open files, from `/proc/self/limits`.
fn fd_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("open files limit");
    let mut numbers = line
        .split_whitespace()
        .filter_map(|word| word.parse::<u64>().ok());
    let soft = numbers.next().unwrap_or(u64::MAX);
    let hard = numbers.next().unwrap_or(u64::MAX);
    (soft, hard)
}

/// This binary in another role, with the descriptor limit raised if needed.
fn spawn_role(role: &str, url: Option<&str>) -> Child {
    let exe = std::env::current_exe().expect("current exe");
    let needed = streams() as u64 + FD_MARGIN;
    let (soft, _) = fd_limits();
    let mut command = if soft >= needed {
        Command::new(&exe)
    } else {
        // `ulimit` is a shell builtin: raise the limit, then become the
        // child. Failure is reported by the child's own check.
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {needed} 2>/dev/null; exec \"$0\""))
            .arg(&exe);
        command
    };
    command
        .env(ROLE, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(url) = url {
        command.env(URL, url);
    }
    command.spawn().expect("spawn bench child")
}

/// Fails with a clear message when this process cannot hold the sockets.
fn check_fd_limit() {
    let needed = streams() as u64 + FD_MARGIN;
    let (soft, hard) = fd_limits();
    assert!(
        soft >= needed,
        "idle_streams needs {needed} open files per process; the limit is {soft} \
         (hard {hard}). Run it with `ulimit -n {needed}` or more."
    );
}

fn orchestrate() {
    let count = streams();
    println!("idle_streams: {count} concurrent idle streams (stall-after=1), resident memory");
    let mut simulator = spawn_role("sim", None);
    let mut lines = BufReader::new(simulator.stdout.take().expect("sim stdout")).lines();
    let url = lines
        .next()
        .expect("the simulator prints its URL")
        .expect("sim stdout");
    let sim_pid = simulator.id().to_string();
    let sim_before = status_kib(&sim_pid, "VmRSS");

    let mut results = Vec::new();
    for side in ["bus", "reqwest"] {
        let child = spawn_role(side, Some(&url));
        let output = child.wait_with_output().expect("client child");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{side} side failed: {text}");
        let field = |name: &str| -> u64 {
            text.split_whitespace()
                .find_map(|word| word.strip_prefix(name)?.parse().ok())
                .unwrap_or_else(|| panic!("{side}: no {name} in {text:?}"))
        };
        let (before, after, peak) = (field("before="), field("after="), field("peak="));
        let open_ms = field("open_ms=");
        let delta = after.saturating_sub(before);
        println!(
            "idle_streams/{side:<8} rss before {:>7.1} MiB, after {:>7.1} MiB (peak {:>7.1} MiB): \
             +{:>6.1} MiB, {:>5.1} KiB per stream; opened in {:.1} s",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            peak as f64 / 1024.0,
            delta as f64 / 1024.0,
            delta as f64 / count as f64,
            open_ms as f64 / 1000.0,
        );
        results.push(delta);
    }
    let sim_after = status_kib(&sim_pid, "VmHWM");
    println!(
        "idle_streams/ratio    bus / reqwest = {:.2}x per idle stream; bus total {:.1} MiB \
         (target: under 1024 MiB)",
        results[0] as f64 / results[1].max(1) as f64,
        results[0] as f64 / 1024.0,
    );
    println!(
        "idle_streams/sim      simulator peak rss {:.1} MiB (started at {:.1} MiB; not counted above)",
        sim_after as f64 / 1024.0,
        sim_before as f64 / 1024.0,
    );
    // Closing its stdin stops the simulator.
    drop(simulator.stdin.take());
    let _ = simulator.wait();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The simulator child: prints its URL, serves until stdin closes.
fn run_simulator() {
    check_fd_limit();
    let runtime = runtime();
    runtime.block_on(async {
        let simulator = Simulator::start().await.expect("simulator starts");
        println!("{}", simulator.base_url());
        std::io::stdout().flush().expect("stdout");
        // Block a worker-free thread on stdin; EOF means stop.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .expect("stdin reader");
        simulator.shutdown().await;
    });
}

#[derive(Clone, Copy)]
enum Side {
    Bus,
    Reqwest,
}

/// Counts content chunks across every stream.
struct ChunkCounter(Arc<AtomicU64>);

#[async_trait::async_trait]
impl Subscriber for ChunkCounter {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        if let EventPayload::Chunk { .. } = event.payload {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn request() -> ChatRequest {
    ChatRequest::new("mistral-small-latest", vec![Message::user("Stay a while")])
}

/// A client child: opens the streams, prints its memory figures.
fn run_client(side: Side) {
    check_fd_limit();
    let count = streams();
    let base = std::env::var(URL).expect("simulator URL");
    let runtime = runtime();
    let started = Arc::new(AtomicU64::new(0));

    runtime.block_on(async {
        // Everything but the streams exists before the first reading.
        let bus = match side {
            Side::Bus => {
                let client = Client::builder()
                    .base_url(&base)
                    .header("x-sim-fault", FAULT)
                    // The streams must outlive the measurement.
                    .idle_timeout(Duration::from_secs(3600))
                    .build()
                    .expect("client");
                let bus = MistralEventBus::new(client);
                bus.register(
                    ChunkCounter(Arc::clone(&started)),
                    SubscribeOptions::reliable(),
                );
                Some(bus)
            }
            Side::Reqwest => None,
        };
        let http = reqwest::Client::new();
        let mut streamed = request();
        streamed.stream = Some(true);
        let body = bytes::Bytes::from(serde_json::to_vec(&streamed).expect("JSON"));
        let url = format!("{base}/v1/chat/completions");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = status_kib("self", "VmRSS");

        let opened = Instant::now();
        let mut handles: Vec<ChatHandle> = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        let mut launched = 0;
        while launched < count {
            let wave = WAVE.min(count - launched);
            for _ in 0..wave {
                match &bus {
                    Some(bus) => handles.push(bus.stream_chat(request())),
                    None => tasks.push(tokio::spawn(hold_bare_stream(
                        http.clone(),
                        url.clone(),
                        body.clone(),
                        Arc::clone(&started),
                    ))),
                }
            }
            launched += wave;
            while started.load(Ordering::Relaxed) < launched as u64 {
                assert!(
                    opened.elapsed() < OPEN_LIMIT,
                    "only {} of {launched} streams started",
                    started.load(Ordering::Relaxed)
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let open_ms = opened.elapsed().as_millis();
        // Let the last wave's buffers settle.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = status_kib("self", "VmRSS");
        let peak = status_kib("self", "VmHWM");
        assert!(
            handles.iter().all(|handle| !handle.is_finished()),
            "a stream ended early"
        );
        println!("before={before} after={after} peak={peak} open_ms={open_ms}");
        std::io::stdout().flush().expect("stdout");
        // Leave at once: tearing 10,000 streams down is not measured.
        std::process::exit(0);
    });
}

/// The baseline: a bare reqwest stream, read until its content chunk, then
/// held open.
async fn hold_bare_stream(
    http: reqwest::Client,
    url: String,
    body: bytes::Bytes,
    started: Arc<AtomicU64>,
) {
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-sim-fault", FAULT)
        .body(body)
        .send()
        .await
        .expect("response");
    let mut stream = response.bytes_stream();
    // The role chunk and the content chunk: two events, two blank lines.
    let mut seen = Vec::new();
    while memchr::memmem::find_iter(&seen, b"\n\n").count() < 2 {
        match stream.next().await {
            Some(Ok(piece)) => seen.extend_from_slice(&piece),
            _ => panic!("the stream ended before its content chunk"),
        }
    }
    drop(seen);
    started.fetch_add(1, Ordering::Relaxed);
    // Hold the connection, as the bus's driver does.
    std::future::pending::<()>().await;
    drop(stream);
}
