//! The built-in subscribers on a real bus: the JSONL recorder's file, the
//! printer's output, what the logger does and does not write, and the
//! collector's waiting.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use mistral_events::bus::{MistralEventBus, SubscribeOptions};
use mistral_events::event::{Completion, Event, EventPayload};
use mistral_events::subscribers::{Collector, JsonlRecorder, TerminalPrinter, TracingLogger};
use mistral_events::wire::{FinishReason, Usage};
use mistral_events::{Client, Error, RequestId};
use tracing_subscriber::fmt::MakeWriter;

/// The one place that knows how to build a client for tests.
fn client() -> Client {
    Client::builder().build().expect("a default client")
}

fn bus() -> MistralEventBus {
    MistralEventBus::new(client())
}

fn request(text: &str) -> RequestId {
    RequestId::new(text).unwrap()
}

/// A call's events: start, the chunks, then `complete` with their text.
fn call(id: &RequestId, chunks: &[&str]) -> Vec<Event> {
    let start = EventPayload::Start {
        model: "mistral-small-latest".into(),
    };
    let mut events = vec![Event::for_request(id, 0, start)];
    for (index, text) in chunks.iter().enumerate() {
        let seq = index as u64 + 1;
        events.push(Event::for_request(
            id,
            seq,
            EventPayload::chunk(index as u64, *text),
        ));
    }
    let mut done = Completion::default();
    done.content = chunks.concat();
    done.finish_reason = Some(FinishReason::Stop);
    done.usage = Some(Usage::new(7, 3));
    let seq = events.len() as u64;
    events.push(Event::for_request(
        id,
        seq,
        EventPayload::Complete(Box::new(done)),
    ));
    events
}

async fn publish_all(bus: &MistralEventBus, events: &[Event]) {
    for event in events {
        bus.publish(event.clone()).await;
    }
}

/// An in-memory writer whose bytes the test can read after the bus has
/// taken the writer.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for SharedBuf {
    type Writer = SharedBuf;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A pipe whose reader has gone.
struct BrokenPipe;

impl Write for BrokenPipe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn jsonl_recorder_holds_every_event_after_shutdown() {
    let path = std::env::temp_dir().join(format!(
        "mistral-events-jsonl-{}-{:?}.jsonl",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let bus = bus();
    let recorder = JsonlRecorder::create(&path).await.unwrap();
    bus.register(recorder, SubscribeOptions::reliable());

    let id = request("jsonl");
    let chunks: Vec<String> = (0..500).map(|n| format!("piece {n} ")).collect();
    let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let events = call(&id, &chunks);
    publish_all(&bus, &events).await;
    bus.shutdown().await;

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let back: Vec<Event> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(back.len(), events.len());
    for (read, sent) in back.iter().zip(&events) {
        assert_eq!(read.payload, sent.payload);
        assert_eq!(read.seq, sent.seq);
        assert_eq!(read.request_id, sent.request_id);
        assert_eq!(read.ts.unix_millis(), sent.ts.unix_millis());
    }
}

#[tokio::test]
async fn terminal_printer_prints_the_answer_then_a_newline() {
    let bus = bus();
    let out = SharedBuf::default();
    bus.register(
        TerminalPrinter::new(out.clone()),
        SubscribeOptions::reliable(),
    );

    let id = request("print");
    let thinking = Event::for_request(
        &id,
        1,
        EventPayload::Thinking {
            content: "hidden".into(),
            choice: None,
        },
    );
    bus.publish(thinking).await;
    publish_all(&bus, &call(&id, &["Hel", "lo", ", world"])).await;
    bus.shutdown().await;

    assert_eq!(out.text(), "Hello, world\n");
}

#[tokio::test]
async fn terminal_printer_shows_thinking_in_brackets_when_asked() {
    let bus = bus();
    let out = SharedBuf::default();
    let printer = TerminalPrinter::new(out.clone()).show_thinking(true);
    bus.register(printer, SubscribeOptions::reliable());

    let id = request("think");
    for (seq, text) in [(0, "Let me "), (1, "see.")] {
        let thinking = EventPayload::Thinking {
            content: text.into(),
            choice: None,
        };
        bus.publish(Event::for_request(&id, seq, thinking)).await;
    }
    bus.publish(Event::for_request(&id, 2, EventPayload::chunk(0, "Yes")))
        .await;
    let cancelled = EventPayload::Cancelled {
        partial: "Yes".into(),
    };
    bus.publish(Event::for_request(&id, 3, cancelled)).await;
    bus.shutdown().await;

    assert_eq!(out.text(), "[Let me see.]Yes\n");
}

#[tokio::test]
async fn terminal_printer_reports_a_closed_pipe_once() {
    let bus = bus();
    let printer = TerminalPrinter::new(BrokenPipe);
    let closed = printer.closed();
    let printer_id = bus.register(printer, SubscribeOptions::reliable());

    publish_all(&bus, &call(&request("pipe"), &["a", "b"])).await;
    closed.wait().await;
    bus.shutdown().await;

    assert!(closed.is_closed());
    let stats = bus.stats();
    assert_eq!(stats.subscriber(printer_id).unwrap().failed, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn tracing_logger_never_logs_answer_text() {
    let captured = SharedBuf::default();
    let log = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // Current-thread runtime: the subscriber tasks run on this thread, under
    // this guard.
    let _guard = tracing::subscriber::set_default(log);

    let bus = bus();
    bus.register(TracingLogger::new(), SubscribeOptions::lossy());
    let id = request("log-1");
    let secret = "SECRET-ANSWER-TEXT";
    publish_all(&bus, &call(&id, &[secret])).await;
    let failure = Error::Truncated {
        partial: secret.into(),
    };
    let failed = Event::for_request(&id, 9, EventPayload::Error(Box::new((&failure).into())));
    bus.publish(failed).await;
    bus.shutdown().await;

    let text = captured.text();
    assert!(!text.contains(secret), "answer text leaked:\n{text}");
    assert!(text.contains("log-1"));
    let line_of = |kind: &str| {
        text.lines()
            .find(|line| line.contains(&format!("type=\"{kind}\"")))
            .unwrap_or_else(|| panic!("no {kind} line in:\n{text}"))
            .to_owned()
    };
    let chunk = line_of("chunk");
    assert!(
        chunk.contains("TRACE") && chunk.contains("len=18"),
        "{chunk}"
    );
    let complete = line_of("complete");
    assert!(complete.contains("INFO"), "{complete}");
    assert!(complete.contains("prompt_tokens=7") && complete.contains("finish_reason"));
    let error = line_of("error");
    assert!(
        error.contains("WARN") && error.contains("truncated"),
        "{error}"
    );
    assert!(line_of("start").contains("mistral_events::events"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_waits_for_the_terminal_event() {
    let bus = bus();
    let collector = Collector::new();
    bus.register(collector.clone(), SubscribeOptions::reliable());
    let id = request("collect");

    // The waiter starts before anything is published.
    let waiter = tokio::spawn({
        let collector = collector.clone();
        let id = id.clone();
        async move { collector.wait_for_terminal(&id).await }
    });
    publish_all(&bus, &call(&request("other"), &["no"])).await;
    publish_all(&bus, &call(&id, &["Hel", "lo"])).await;

    let terminal = waiter.await.unwrap();
    assert!(terminal.is_terminal());
    assert_eq!(terminal.request_id.as_ref(), Some(&id));
    assert_eq!(collector.chunks_text(&id), "Hello");
    assert_eq!(collector.events_for(&id).len(), 4);
    assert_eq!(collector.events().len(), 7);

    // Already there: returns at once.
    assert_eq!(collector.wait_for_terminal(&id).await.seq, terminal.seq);
    collector.clear();
    assert!(collector.events().is_empty());
    bus.shutdown().await;
}
