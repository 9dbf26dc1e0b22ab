//! The HTTP client for Mistral's API.
mod meta;

pub use meta::{RateLimits, ResponseMeta};

/// Placeholder, replaced by the real client.
#[derive(Debug, Clone)]
pub struct Client;
