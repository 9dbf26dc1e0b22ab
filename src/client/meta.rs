//! What a response's headers say about the call: its correlation id and the
//! account's rate limits.

use std::collections::BTreeMap;

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

/// Facts from a response's status line and headers, kept on results and
/// errors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponseMeta {
    /// The HTTP status.
    pub status: u16,
    /// The `mistral-correlation-id` header, for support requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The parsed `x-ratelimit-*` headers.
    #[serde(default, skip_serializing_if = "RateLimits::is_empty")]
    pub rate_limits: RateLimits,
}

impl ResponseMeta {
    /// Reads the status and the headers this crate knows.
    pub fn from_parts(status: u16, headers: &HeaderMap) -> Self {
        let correlation_id = headers
            .get("mistral-correlation-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Self {
            status,
            correlation_id,
            rate_limits: RateLimits::from_headers(headers),
        }
    }
}

/// The `x-ratelimit-*` headers, by name without the prefix.
///
/// Which windows appear depends on the account: `limit-req-minute`,
/// `remaining-req-10-second`, `limit-tokens-month`, `tokens-query-cost` and
/// so on. Streaming responses often carry none, so every value is optional.
///
/// ```
/// use mistral_events::client::RateLimits;
/// use reqwest::header::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-ratelimit-remaining-req-minute", HeaderValue::from_static("717"));
/// let limits = RateLimits::from_headers(&headers);
/// assert_eq!(limits.get("remaining-req-minute"), Some(717));
/// assert_eq!(limits.remaining_requests_per_minute(), Some(717));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RateLimits(BTreeMap<String, u64>);

const PREFIX: &str = "x-ratelimit-";

impl RateLimits {
    /// Collects every `x-ratelimit-*` header with an integer value.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let entries = headers
            .iter()
            .filter_map(|(name, value)| {
                let key = name.as_str().strip_prefix(PREFIX)?;
                let number = value.to_str().ok()?.trim().parse().ok()?;
                Some((key.to_owned(), number))
            })
            .collect();
        Self(entries)
    }

    /// The value of `x-ratelimit-<key>`, if the response had it.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.0.get(key).copied()
    }

    /// Whether no rate-limit header was present.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every header, by name without the `x-ratelimit-` prefix.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(key, value)| (key.as_str(), *value))
    }

    /// `x-ratelimit-remaining-req-minute`.
    pub fn remaining_requests_per_minute(&self) -> Option<u64> {
        self.get("remaining-req-minute")
    }

    /// `x-ratelimit-remaining-tokens-minute`.
    pub fn remaining_tokens_per_minute(&self) -> Option<u64> {
        self.get("remaining-tokens-minute")
    }

    /// `x-ratelimit-tokens-query-cost`: the tokens this call cost.
    pub fn query_cost(&self) -> Option<u64> {
        self.get("tokens-query-cost")
    }
}
