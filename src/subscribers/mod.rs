//! Built-in subscribers: a log, a terminal printer, a JSONL recorder and a
//! collector for tests.
//!
//! Each is an ordinary [`Subscriber`]; the bus knows none of them. Which
//! delivery to register one with follows from what it must not miss:
//!
//! | subscriber | register with | why |
//! | --- | --- | --- |
//! | [`TracingLogger`] | [`SubscribeOptions::lossy`] | a log must never slow a chat; a gap is reported |
//! | [`TerminalPrinter`] | [`SubscribeOptions::reliable`] | a missing chunk would garble the answer |
//! | [`JsonlRecorder`] | [`SubscribeOptions::reliable`] | a recording must hold every event |
//! | [`Collector`] | [`SubscribeOptions::reliable`] | tests assert on every event |
//!
//! None of them writes answer text to a log: the logger records lengths
//! only.
//!
//! # Examples
//!
//! ```
//! use mistral_events::bus::{MistralEventBus, SubscribeOptions};
//! use mistral_events::event::{Event, EventPayload};
//! use mistral_events::subscribers::{Collector, TracingLogger};
//! use mistral_events::{Client, RequestId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mistral_events::Error> {
//! let bus = MistralEventBus::new(Client::builder().build()?);
//! bus.register(TracingLogger::new(), SubscribeOptions::lossy());
//! let collector = Collector::new();
//! bus.register(collector.clone(), SubscribeOptions::reliable());
//!
//! let id = RequestId::new("r1").unwrap();
//! bus.publish(Event::for_request(&id, 0, EventPayload::chunk(0, "Hi"))).await;
//! bus.publish(Event::for_request(&id, 1, EventPayload::Complete(Box::default()))).await;
//!
//! collector.wait_for_terminal(&id).await;
//! assert_eq!(collector.chunks_text(&id), "Hi");
//! bus.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! [`Subscriber`]: crate::bus::Subscriber
//! [`SubscribeOptions::lossy`]: crate::bus::SubscribeOptions::lossy
//! [`SubscribeOptions::reliable`]: crate::bus::SubscribeOptions::reliable

mod closed;
mod collector;
mod jsonl;
mod logger;
mod printer;

pub use closed::OutputClosed;
pub use collector::Collector;
pub use jsonl::JsonlRecorder;
pub use logger::TracingLogger;
pub use printer::TerminalPrinter;

/// The target of the built-in subscribers' own log lines (not the events').
const LOG_TARGET: &str = "mistral_events::subscribers";
