//! The API key never appears in Debug output, errors, events or logs, at
//! any log level.
//!
//! This file holds one test because it installs a process-wide log
//! collector at TRACE level (including records from crates that log
//! through `log`).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mistral_events::bus::{MistralEventBus, SubscribeOptions};
use mistral_events::client::RetryPolicy;
use mistral_events::sim::{Fault, Simulator};
use mistral_events::subscribers::{Collector, TracingLogger};
use mistral_events::wire::{ChatRequest, Message};
use mistral_events::Client;

const KEY: &str = "sk-SECRET-7Hq2Vx9Lp4Zr";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_never_printed_logged_or_published() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber of this test binary");

    let sim = Simulator::start().await.unwrap();
    let client = Client::builder()
        .base_url(sim.base_url())
        .api_key(KEY)
        .retry_policy(RetryPolicy::default().initial_delay(Duration::from_millis(10)))
        .build()
        .unwrap();
    let bus = MistralEventBus::new(client.clone());
    let collector = Collector::new();
    bus.register(collector.clone(), SubscribeOptions::reliable());
    bus.register(TracingLogger::new(), SubscribeOptions::reliable());

    let request = || ChatRequest::new("mistral-small-latest", vec![Message::user("hello")]);
    let mut shown = Vec::new();

    // A success, a retried 429, and a 401 that is not retried.
    let outcome = bus.stream_chat(request()).await.unwrap();
    shown.push(format!("{outcome:?}"));
    sim.push_fault(Fault::status(429).with_retry_after("0"));
    bus.stream_chat(request()).await.unwrap();
    sim.push_fault(Fault::status(401).with_body(r#"{"detail":"Unauthorized"}"#));
    let error = bus.stream_chat(request()).await.unwrap_err();
    shown.push(format!("{error} {error:?}"));
    let error = client
        .chat(request().max_tokens(1))
        .await
        .map(|r| r.response.text());
    shown.push(format!("{error:?}"));

    // A connection that cannot be made.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = Client::builder()
        .base_url(format!("http://{dead}"))
        .api_key(KEY)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let error = unreachable.chat(request()).await.unwrap_err();
    let mut chain = format!("{error} {error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    shown.push(chain);
    shown.push(format!("{client:?} {unreachable:?}"));
    bus.shutdown().await;

    for event in collector.events() {
        shown.push(event.to_json());
        shown.push(format!("{event:?}"));
    }
    for request in sim.requests() {
        shown.push(format!("{request:?}"));
    }
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("mistral_events"),
        "the logs were captured: {logs}"
    );
    assert!(collector.events().len() > 10);

    for text in shown.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains(KEY), "the key leaked into: {text}");
        assert!(
            !text.contains("7Hq2Vx9Lp4Zr"),
            "part of the key leaked into: {text}"
        );
    }
    assert!(
        sim.requests().iter().all(|request| request.authorization),
        "the key was sent"
    );
}
