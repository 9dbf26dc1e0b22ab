//! Timeouts and the retry policy.

use std::time::Duration;

/// The three separate timeouts of a call. There is no limit on a call's
/// total length: a long answer may stream for as long as data keeps coming.
///
/// | timeout | default | covers |
/// | --- | --- | --- |
/// | `connect` | 10 s | opening the TCP and TLS connection |
/// | `first_byte` | 120 s | from sending the request to the response's headers |
/// | `idle` | 60 s | the gap between two reads of a response body |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Opening the connection. Applies to the client this crate builds; a
    /// `reqwest::Client` you supply keeps its own connect timeout.
    pub connect: Duration,
    /// Waiting for the response to start.
    pub first_byte: Duration,
    /// Waiting between two reads of a body.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(60),
        }
    }
}

/// When and how long to wait before sending a failed request again.
///
/// A request is retried only while no response body has begun: on 429, 500,
/// 502, 503 and 504 answers, connection failures and connect or first-byte
/// timeouts. Once a successful response has started, nothing is re-sent.
///
/// Waits grow exponentially (from `initial_delay`, doubling, capped at
/// `max_delay`) with full jitter: each wait is a random duration between
/// zero and the step's length. A `Retry-After` header replaces the step: its
/// value (seconds or an HTTP date), capped at `max_retry_after`, plus up to
/// 10 % jitter. All waits of one call together stay within `budget`; a wait
/// that would exceed it ends the call with the last error instead.
///
/// ```
/// use std::time::Duration;
/// use mistral_events::client::RetryPolicy;
///
/// let policy = RetryPolicy::default().max_retries(5).budget(Duration::from_secs(20));
/// assert_eq!(policy.max_retries, 5);
/// assert_eq!(RetryPolicy::none().max_retries, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt. Default 2; 0 turns retries off.
    pub max_retries: u32,
    /// The first backoff step. Default 500 ms.
    pub initial_delay: Duration,
    /// The largest backoff step. Default 30 s.
    pub max_delay: Duration,
    /// The longest wait a `Retry-After` header may ask for. Default 60 s.
    pub max_retry_after: Duration,
    /// The most time spent waiting across all retries of one call.
    /// Default 90 s.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            budget: Duration::from_secs(90),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Sets the number of retries after the first attempt.
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the first backoff step.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Sets the largest backoff step.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets the cap on waits asked for by `Retry-After`.
    #[must_use]
    pub fn max_retry_after(mut self, delay: Duration) -> Self {
        self.max_retry_after = delay;
        self
    }

    /// Sets the total waiting budget of one call.
    #[must_use]
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }
}
