//! Retry timing: backoff steps, `Retry-After`, jitter and the budget.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::config::RetryPolicy;
use crate::error::Error;

/// The retry state of one call: which attempt comes next and how much of
/// the budget is left.
#[derive(Debug)]
pub(crate) struct RetryState {
    policy: RetryPolicy,
    steps: ExponentialBackoff,
    retries_done: u32,
    waited: Duration,
}

/// A decision to wait and try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetryPlan {
    /// The attempt about to start, counting the first as 1.
    pub(crate) attempt: u32,
    pub(crate) delay: Duration,
    pub(crate) reason: String,
}

impl RetryState {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        // backon gives the capped exponential steps; jitter and the budget
        // are applied here, because full jitter and `Retry-After` need to
        // replace the step rather than add to it.
        let steps = ExponentialBuilder::default()
            .with_min_delay(policy.initial_delay)
            .with_max_delay(policy.max_delay)
            .with_factor(2.0)
            .with_max_times(policy.max_retries as usize)
            .build();
        Self {
            policy,
            steps,
            retries_done: 0,
            waited: Duration::ZERO,
        }
    }

    /// Whether and how long to wait after `error`. `None` means give up and
    /// report the error.
    pub(crate) fn plan(&mut self, error: &Error) -> Option<RetryPlan> {
        if !error.is_retryable() {
            return None;
        }
        self.plan_any(error)
    }

    /// Like [`plan`](Self::plan), for a failure the caller has already
    /// judged safe to retry (a stream cut before any output).
    pub(crate) fn plan_any(&mut self, error: &Error) -> Option<RetryPlan> {
        let step = self.steps.next()?;
        let delay = match error.retry_after() {
            Some(asked) => with_small_jitter(asked.min(self.policy.max_retry_after)),
            None => full_jitter(step),
        };
        if self.waited + delay > self.policy.budget {
            return None;
        }
        self.waited += delay;
        self.retries_done += 1;
        let plan = RetryPlan {
            attempt: self.retries_done + 1,
            delay,
            reason: retry_reason(error),
        };
        tracing::debug!(
            target: "mistral_events::client",
            attempt = plan.attempt,
            delay_ms = plan.delay.as_millis() as u64,
            reason = %plan.reason,
            "retrying"
        );
        Some(plan)
    }
}

/// A random wait between zero and `step`.
fn full_jitter(step: Duration) -> Duration {
    step.mul_f64(fastrand::f64())
}

/// `delay` plus at most 10 % of it.
fn with_small_jitter(delay: Duration) -> Duration {
    delay + delay.mul_f64(fastrand::f64() * 0.1)
}

/// A short reason for `retry` events: `HTTP 429`, `connection`, `timeout`.
fn retry_reason(error: &Error) -> String {
    match error.status() {
        Some(status) => format!("HTTP {status}"),
        None => error.kind().to_string(),
    }
}

/// Reads `Retry-After` as delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = text.parse::<f64>() {
        // Too large for a Duration (`1e20`, or more digits than a u64
        // holds) means "a very long time": the cap applies later.
        return (seconds >= 0.0)
            .then(|| Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ResponseMeta;
    use reqwest::header::HeaderValue;

    fn status_error(status: u16, retry_after: Option<Duration>) -> Error {
        Error::from_response(status, ResponseMeta::default(), b"{}", retry_after)
    }

    #[test]
    fn retries_stop_after_max_retries() {
        let mut state = RetryState::new(RetryPolicy::default());
        let error = status_error(503, None);
        assert_eq!(state.plan(&error).map(|plan| plan.attempt), Some(2));
        assert_eq!(state.plan(&error).map(|plan| plan.attempt), Some(3));
        assert_eq!(state.plan(&error), None);
    }

    #[test]
    fn zero_retries_never_retry() {
        let mut state = RetryState::new(RetryPolicy::none());
        assert_eq!(state.plan(&status_error(503, None)), None);
    }

    #[test]
    fn client_errors_are_not_retried() {
        let mut state = RetryState::new(RetryPolicy::default());
        assert_eq!(state.plan(&status_error(400, None)), None);
        assert_eq!(state.plan(&status_error(401, None)), None);
        assert_eq!(state.plan(&status_error(422, None)), None);
    }

    #[test]
    fn backoff_steps_use_full_jitter_under_the_cap() {
        let policy = RetryPolicy::default()
            .max_retries(10)
            .initial_delay(Duration::from_secs(1))
            .max_delay(Duration::from_secs(4))
            .budget(Duration::from_secs(1000));
        let mut state = RetryState::new(policy);
        let error = status_error(500, None);
        let caps = [1, 2, 4, 4, 4];
        for cap in caps {
            let plan = state.plan(&error).expect("retry");
            assert!(
                plan.delay <= Duration::from_secs(cap),
                "{plan:?} over {cap}s"
            );
        }
    }

    #[test]
    fn retry_after_sets_the_wait_with_at_most_ten_percent_jitter() {
        let mut state = RetryState::new(RetryPolicy::default());
        let plan = state
            .plan(&status_error(429, Some(Duration::from_secs(1))))
            .expect("retry");
        assert!(plan.delay >= Duration::from_secs(1));
        assert!(plan.delay <= Duration::from_millis(1100));
        assert_eq!(plan.reason, "HTTP 429");
    }

    #[test]
    fn retry_after_is_capped() {
        let policy = RetryPolicy::default().max_retry_after(Duration::from_secs(5));
        let mut state = RetryState::new(policy);
        let plan = state
            .plan(&status_error(429, Some(Duration::from_secs(3600))))
            .expect("retry");
        assert!(plan.delay <= Duration::from_millis(5500));
    }

    #[test]
    fn budget_ends_retries() {
        let policy = RetryPolicy::default().budget(Duration::from_secs(2));
        let mut state = RetryState::new(policy);
        let error = status_error(429, Some(Duration::from_secs(3)));
        assert_eq!(state.plan(&error), None);
    }

    #[test]
    fn parses_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(7)));

        let later = SystemTime::now() + Duration::from_secs(30);
        let date = httpdate::fmt_http_date(later);
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let parsed = parse_retry_after(&headers).unwrap();
        assert!(parsed <= Duration::from_secs(30) && parsed >= Duration::from_secs(28));

        for huge in ["99999999999999999999", "1e20", "inf"] {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(huge));
            assert_eq!(parse_retry_after(&headers), Some(Duration::MAX), "{huge}");
        }
        let mut state = RetryState::new(RetryPolicy::default());
        let plan = state
            .plan(&status_error(429, Some(Duration::MAX)))
            .expect("a capped wait");
        assert!(plan.delay <= Duration::from_secs(66));

        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&headers), None);
    }
}
