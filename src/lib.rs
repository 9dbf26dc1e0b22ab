//! Event-driven streaming for Mistral AI.
//!
//! Mistral has no webhooks. This crate turns every streamed chat into a
//! sequence of typed events (`start`, `retry`, `chunk`, `thinking`,
//! `tool_call`, then one of `complete`, `error` or `cancelled`) and fans
//! them out to any number of subscribers: a logger, a terminal, a recorder,
//! a database, or a subscriber of your own.
//!
//! ```text
//!  app ──► MistralEventBus ──► broadcast / reliable queues ──► subscribers
//!               │    ▲
//!               ▼    │ events
//!        client (chat, chat_stream) ── SSE decoder ── retry policy
//!               │
//!   api.mistral.ai │ any compatible server │ the built-in simulator
//! ```
//!
//! # A streamed chat through the bus
//!
//! This runs offline against the built-in [simulator](sim):
//!
//! ```
//! use mistral_events::bus::{MistralEventBus, SubscribeOptions};
//! use mistral_events::sim::Simulator;
//! use mistral_events::subscribers::Collector;
//! use mistral_events::wire::{ChatRequest, Message};
//! use mistral_events::Client;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let simulator = Simulator::start().await?;
//! let client = Client::builder().base_url(simulator.base_url()).build()?;
//! let bus = MistralEventBus::new(client);
//!
//! let collector = Collector::new();
//! bus.register(collector.clone(), SubscribeOptions::reliable());
//!
//! let request = ChatRequest::new("mistral-small-latest", vec![Message::user("Hi")]);
//! let handle = bus.stream_chat(request);
//! let id = handle.request_id().clone();
//! let outcome = handle.await?;
//!
//! bus.shutdown().await;
//! assert_eq!(collector.chunks_text(&id), outcome.content);
//! # simulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! | module | holds |
//! | --- | --- |
//! | [`wire`] | Mistral's request and response types, field by field |
//! | [`client`] | the HTTP client, [`ChatStream`](client::ChatStream), retries, timeouts |
//! | [`sse`] | the server-sent events decoder |
//! | [`event`] | the event contract and its JSON |
//! | [`bus`] | [`MistralEventBus`](bus::MistralEventBus), subscribers, delivery |
//! | [`subscribers`] | the built-in subscribers |
//! | `sim` | the offline simulator (feature `sim`) |
//! | `backend` | the rule that picks the server from the environment (feature `sim`) |
//!
//! Dependencies point one way: the wire layer and client know nothing of
//! events; the bus knows no built-in subscriber; neither imports the
//! simulator.
//!
//! # Features
//!
//! | feature | default | adds |
//! | --- | --- | --- |
//! | `sim` | yes | the simulator, on axum |
//! | `cli` | yes | the `mistral-events` binary (implies `sim`) |
//! | `full` | no | everything |
//!
//! With `default-features = false` you get the wire layer, the client, the
//! bus and the built-in subscribers.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "sim")]
pub mod backend;
pub mod bus;
pub mod client;
pub mod error;
pub mod event;
pub mod id;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sse;
pub mod subscribers;
pub mod wire;

pub use client::Client;

/// The README's code blocks, compiled as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use error::{Error, ErrorKind};
pub use id::RequestId;
