//! Event-driven streaming for Mistral AI.
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
pub use error::{Error, ErrorKind};
pub use id::RequestId;
