//! The crate's one error type.
//!
//! Every failure of a call is an [`Error`]. Callers ask it questions rather
//! than match on text: [`Error::kind`] gives the closed set that `error`
//! events carry, [`Error::status`], [`Error::is_retryable`] and
//! [`Error::retry_after`] drive retry decisions, and [`Error::partial`] holds
//! the answer text received before a stream failed.
//!
//! Errors never hold the API key: the key lives only in a header marked
//! sensitive, and no error is built from request headers.
//!
//! ```
//! use mistral_events::{Error, ErrorKind};
//!
//! let error = Error::from_response(
//!     429,
//!     Default::default(),
//!     br#"{"object":"error","message":"Requests rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}"#,
//!     None,
//! );
//! assert_eq!(error.kind(), ErrorKind::RateLimited);
//! assert_eq!(error.status(), Some(429));
//! assert_eq!(error.code(), Some("1300"));
//! assert!(error.is_retryable());
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::ResponseMeta;

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to Mistral.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a non-2xx status, or a stream reported
    /// `finish_reason: "error"`.
    #[error("{0}")]
    Api(Box<ApiError>),

    /// A timeout elapsed.
    #[error("timed out: no {phase} within {limit:?}")]
    Timeout {
        /// Which timeout.
        phase: TimeoutPhase,
        /// Its configured length.
        limit: Duration,
        /// Answer text received before the timeout.
        partial: String,
    },

    /// The connection failed or was cut.
    #[error("connection failed: {}", SourceChain(&**source))]
    Connection {
        /// The transport error.
        #[source]
        source: BoxError,
        /// Answer text received before the failure.
        partial: String,
    },

    /// A stream chunk was not valid JSON of the expected shape. The stream
    /// ends there.
    #[error("malformed stream chunk: {source}")]
    Decode {
        /// The parse error.
        #[source]
        source: serde_json::Error,
        /// Answer text received before the malformed chunk.
        partial: String,
    },

    /// The body ended without the `[DONE]` marker.
    #[error("stream ended without [DONE]")]
    Truncated {
        /// Answer text received before the end.
        partial: String,
    },

    /// The call was cancelled by its caller.
    #[error("cancelled")]
    Cancelled {
        /// Answer text received before the cancel.
        partial: String,
    },

    /// A cut stream that the resume policy would have continued, but could
    /// not: the reason says why (a tool call in flight, several choices).
    #[error("{cause} (not resumed: {reason})")]
    NotResumed {
        /// Why the stream was not resumed.
        reason: String,
        /// The failure that cut the stream.
        #[source]
        cause: Box<Error>,
    },

    /// The client or request was set up wrongly (a bad base URL, a bad id, a
    /// header that is not valid HTTP). Nothing was sent.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// The closed set of error kinds, as carried by `error` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// HTTP 429.
    RateLimited,
    /// Any other non-2xx status, or `finish_reason: "error"`.
    Api,
    /// A connect, first-byte or idle timeout.
    Timeout,
    /// A transport failure.
    Connection,
    /// A malformed chunk.
    Decode,
    /// The body ended without `[DONE]`.
    Truncated,
    /// Cancelled by the caller (published as a `cancelled` event, not an
    /// `error` event).
    Cancelled,
    /// A setup error; nothing was sent.
    Config,
}

impl ErrorKind {
    /// The snake_case name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Api => "api",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Decode => "decode",
            Self::Truncated => "truncated",
            Self::Cancelled => "cancelled",
            Self::Config => "config",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the three timeouts elapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutPhase {
    /// Opening the connection.
    Connect,
    /// Waiting for the response to start.
    FirstByte,
    /// Waiting between two pieces of a streamed body.
    Idle,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connection",
            Self::FirstByte => "first byte",
            Self::Idle => "data on an idle stream",
        })
    }
}

/// An error the API reported, with what its body and headers said.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP status; `None` for an in-stream `finish_reason: "error"`.
    pub status: Option<u16>,
    /// The message: Mistral's `message` or `detail`, or the body's text.
    pub message: String,
    /// Mistral's `code`, such as `"1300"`, when the body had one.
    pub code: Option<String>,
    /// Mistral's `type`, such as `rate_limited` or `invalid_request_error`.
    pub error_type: Option<String>,
    /// The `Retry-After` header, parsed.
    pub retry_after: Option<Duration>,
    /// The response's correlation id and rate limits.
    pub meta: ResponseMeta,
    /// Answer text received before the failure.
    pub partial: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "HTTP {status}")?,
            None => f.write_str("stream error")?,
        }
        if let Some(error_type) = &self.error_type {
            write!(f, " {error_type}")?;
        }
        if let Some(code) = &self.code {
            write!(f, " (code {code})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Error {
    /// Builds the error for a non-2xx response from its status, headers'
    /// meta, body and `Retry-After`.
    ///
    /// The body may be any of the shapes Mistral uses: the
    /// `{"object":"error","message",…,"type","code"}` object (with `message`
    /// a string or an object), a `{"detail": …}` validation error, a bare
    /// `{"message": …}`, or plain text and HTML from a proxy.
    pub fn from_response(
        status: u16,
        meta: ResponseMeta,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> Self {
        let parsed = ErrorBody::parse(body);
        Self::Api(Box::new(ApiError {
            status: Some(status),
            message: parsed
                .message
                .unwrap_or_else(|| format!("HTTP {status} with an empty body")),
            code: parsed.code,
            error_type: parsed.error_type,
            retry_after,
            meta,
            partial: String::new(),
        }))
    }

    /// The error for an error object sent inside a 200 stream in place of a
    /// chunk.
    pub(crate) fn from_stream_body(body: &[u8]) -> Self {
        let mut error = Self::from_response(0, ResponseMeta::default(), body, None);
        if let Self::Api(api) = &mut error {
            api.status = None;
        }
        error
    }

    /// The error for a stream whose choice finished with `"error"`.
    pub fn stream_failed(meta: ResponseMeta) -> Self {
        Self::Api(Box::new(ApiError {
            status: None,
            message: "the server ended the stream with finish_reason \"error\"".to_owned(),
            code: None,
            error_type: None,
            retry_after: None,
            meta,
            partial: String::new(),
        }))
    }

    /// The kind, as published in `error` events.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Api(api) if api.status == Some(429) => ErrorKind::RateLimited,
            Self::Api(_) => ErrorKind::Api,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Connection { .. } => ErrorKind::Connection,
            Self::Decode { .. } => ErrorKind::Decode,
            Self::Truncated { .. } => ErrorKind::Truncated,
            Self::Cancelled { .. } => ErrorKind::Cancelled,
            Self::NotResumed { cause, .. } => cause.kind(),
            Self::Config(_) => ErrorKind::Config,
        }
    }

    /// The HTTP status, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api(api) => api.status,
            Self::NotResumed { cause, .. } => cause.status(),
            _ => None,
        }
    }

    /// Mistral's error `code`, when the body had one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api(api) => api.code.as_deref(),
            _ => None,
        }
    }

    /// Mistral's error `type`, when the body had one.
    pub fn error_type(&self) -> Option<&str> {
        match self {
            Self::Api(api) => api.error_type.as_deref(),
            _ => None,
        }
    }

    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api(api) => api.retry_after,
            _ => None,
        }
    }

    /// The response's correlation id and rate limits, for an error answer.
    ///
    /// A stream that fails after a successful start has no meta here: its
    /// meta came with [`StreamEvent::Connected`](crate::client::StreamEvent),
    /// and the bus puts its correlation id in the `error` event.
    pub fn meta(&self) -> Option<&ResponseMeta> {
        match self {
            Self::Api(api) => Some(&api.meta),
            _ => None,
        }
    }

    /// Whether sending the same request again may succeed: 429, 500, 502,
    /// 503, 504, a connection failure, or a connect or first-byte timeout.
    ///
    /// This says nothing of whether a retry is *safe*: once a stream has
    /// produced output, the crate never re-sends it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(api) => matches!(api.status, Some(429 | 500 | 502 | 503 | 504)),
            Self::Connection { .. } => true,
            Self::Timeout { phase, .. } => *phase != TimeoutPhase::Idle,
            _ => false,
        }
    }

    /// Whether a timeout elapsed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// The answer text received before the failure (empty when none).
    pub fn partial(&self) -> &str {
        match self {
            Self::Api(api) => &api.partial,
            Self::Timeout { partial, .. }
            | Self::Connection { partial, .. }
            | Self::Decode { partial, .. }
            | Self::Truncated { partial }
            | Self::Cancelled { partial } => partial,
            Self::NotResumed { cause, .. } => cause.partial(),
            Self::Config(_) => "",
        }
    }

    /// Replaces the partial text, for a layer that tracked it.
    #[must_use]
    pub fn with_partial(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        match &mut self {
            Self::Api(api) => api.partial = text,
            Self::Timeout { partial, .. }
            | Self::Connection { partial, .. }
            | Self::Decode { partial, .. }
            | Self::Truncated { partial }
            | Self::Cancelled { partial } => *partial = text,
            Self::NotResumed { cause, .. } => {
                let inner = std::mem::replace(&mut **cause, Error::Config(String::new()));
                **cause = inner.with_partial(text);
            }
            Self::Config(_) => {}
        }
        self
    }

    /// A connection error from any transport failure.
    pub(crate) fn connection(source: impl Into<BoxError>) -> Self {
        Self::Connection {
            source: source.into(),
            partial: String::new(),
        }
    }

    /// Classifies a reqwest failure: its own timeouts become
    /// [`Error::Timeout`], everything else [`Error::Connection`].
    pub(crate) fn from_reqwest(error: reqwest::Error, connect_limit: Duration) -> Self {
        // reqwest reports its connect timeout as a connect error whose chain
        // holds a timeout; the other timeouts are ours, not reqwest's.
        if error.is_connect() && error.is_timeout() {
            return Self::Timeout {
                phase: TimeoutPhase::Connect,
                limit: connect_limit,
                partial: String::new(),
            };
        }
        // Strip the URL: it is harmless, but a base URL may hold credentials
        // in its user-info part.
        Self::connection(error.without_url())
    }
}

/// Shows an error and its causes as `outer: inner: innermost`, so that a
/// one-line message says what actually failed (say, a DNS lookup).
struct SourceChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for SourceChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(inner) = cause {
            write!(f, ": {inner}")?;
            cause = inner.source();
        }
        Ok(())
    }
}

/// What an error body said, whichever shape it had.
#[derive(Debug, Default)]
struct ErrorBody {
    message: Option<String>,
    code: Option<String>,
    error_type: Option<String>,
}

/// The longest message kept from a non-JSON body.
const MAX_TEXT_MESSAGE: usize = 500;

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Self::from_object(&map),
            Ok(other) => Self {
                message: Some(other.to_string()),
                ..Self::default()
            },
            Err(_) => Self::from_text(&String::from_utf8_lossy(body)),
        }
    }

    fn from_object(map: &serde_json::Map<String, Value>) -> Self {
        // Gateways in front of Mistral may wrap the error: `{"error": {…}}`.
        if !map.contains_key("message") {
            match map.get("error") {
                Some(Value::Object(inner)) => return Self::from_object(inner),
                Some(Value::String(text)) => {
                    return Self {
                        message: Some(text.clone()),
                        ..Self::default()
                    }
                }
                _ => {}
            }
        }
        let mut parsed = Self {
            code: map.get("code").and_then(scalar_text),
            error_type: map.get("type").and_then(Value::as_str).map(str::to_owned),
            message: None,
        };

        // `message` is usually a string, but an old proxy error nests a
        // validation error object inside it.
        let detail = match map.get("message") {
            Some(Value::String(text)) => {
                parsed.message = Some(text.clone());
                None
            }
            Some(Value::Object(inner)) => inner.get("detail"),
            Some(other) if !other.is_null() => {
                parsed.message = Some(other.to_string());
                None
            }
            _ => map.get("detail"),
        };

        if let Some(detail) = detail {
            let (message, first_type) = describe_detail(detail);
            parsed.message = parsed.message.or(message);
            parsed.error_type = parsed.error_type.or(first_type);
        }
        parsed
    }

    fn from_text(text: &str) -> Self {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Self::default();
        }
        let mut message: String = trimmed.chars().take(MAX_TEXT_MESSAGE).collect();
        if message.len() < trimmed.len() {
            message.push('…');
        }
        Self {
            message: Some(message),
            ..Self::default()
        }
    }
}

/// A code may come as a string of digits or as an integer.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Turns a `detail` (a string, or a list of validation items with `loc`,
/// `msg` and `type`) into a message and the first item's type.
fn describe_detail(detail: &Value) -> (Option<String>, Option<String>) {
    match detail {
        Value::String(text) => (Some(text.clone()), None),
        Value::Array(items) => {
            let first_type = items
                .first()
                .and_then(|item| item.get("type"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let lines: Vec<String> = items.iter().map(describe_validation_item).collect();
            let message = (!lines.is_empty()).then(|| lines.join("; "));
            (message, first_type)
        }
        Value::Null => (None, None),
        other => (Some(other.to_string()), None),
    }
}

fn describe_validation_item(item: &Value) -> String {
    let msg = item
        .get("msg")
        .and_then(Value::as_str)
        .unwrap_or("invalid value");
    let location: Vec<String> = item
        .get("loc")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .map(|part| match part {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if location.is_empty() {
        msg.to_owned()
    } else {
        format!("{}: {msg}", location.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> Error {
        Error::from_response(status, ResponseMeta::default(), body.as_bytes(), None)
    }

    #[test]
    fn error_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
    }

    #[test]
    fn shape_a_fills_message_code_and_type() {
        let error = parse(
            400,
            r#"{"object":"error","message":"Unexpected role 'user' after role 'tool'","type":"invalid_request_message_order","param":null,"code":"3230"}"#,
        );
        assert_eq!(error.kind(), ErrorKind::Api);
        assert_eq!(error.code(), Some("3230"));
        assert_eq!(error.error_type(), Some("invalid_request_message_order"));
        assert!(error.to_string().contains("Unexpected role 'user'"));
        assert!(!error.is_retryable());
    }

    #[test]
    fn capacity_429_is_rate_limited_and_retryable() {
        let error = parse(
            429,
            r#"{"object":"error","message":"Service tier capacity exceeded for this model.","type":"service_tier_capacity_exceeded","param":null,"code":"3505","raw_status_code":429}"#,
        );
        assert_eq!(error.kind(), ErrorKind::RateLimited);
        assert_eq!(error.code(), Some("3505"));
        assert_eq!(error.error_type(), Some("service_tier_capacity_exceeded"));
        assert!(error.is_retryable());
    }

    #[test]
    fn bare_gateway_message_and_unauthorized_detail() {
        let old = parse(429, r#"{"message":"Requests rate limit exceeded"}"#);
        assert!(old.to_string().contains("Requests rate limit exceeded"));
        assert_eq!(old.code(), None);

        let kong = parse(
            401,
            r#"{"message":"Unauthorized","request_id":"0123456789abcdef0123456789abcdef"}"#,
        );
        assert!(kong.to_string().contains("Unauthorized"));

        let detail = parse(401, r#"{"detail":"Unauthorized"}"#);
        assert!(detail.to_string().contains("Unauthorized"));
        assert_eq!(detail.status(), Some(401));
    }

    #[test]
    fn shape_b_validation_list_names_the_field() {
        let error = parse(
            422,
            r#"{"detail":[{"type":"extra_forbidden","loc":["body","max_completion_tokens"],"msg":"Extra inputs are not permitted","input":32000}]}"#,
        );
        assert_eq!(error.error_type(), Some("extra_forbidden"));
        assert!(error
            .to_string()
            .contains("body.max_completion_tokens: Extra inputs are not permitted"));
    }

    #[test]
    fn message_object_holding_detail_is_unwrapped() {
        let error = parse(
            422,
            r#"{"object":"error","message":{"detail":[{"type":"missing","loc":["body","model"],"msg":"Field required","input":{}}]},"type":"invalid_request_error","param":null,"code":null}"#,
        );
        assert_eq!(error.error_type(), Some("invalid_request_error"));
        assert!(error.to_string().contains("body.model: Field required"));
        assert_eq!(error.code(), None);
    }

    #[test]
    fn integer_code_and_plain_text_bodies() {
        let error = parse(
            400,
            r#"{"object":"error","message":"bad","type":"invalid_request_error","code":1500}"#,
        );
        assert_eq!(error.code(), Some("1500"));

        let html = parse(502, "<html><body>Bad gateway</body></html>");
        assert!(html.to_string().contains("Bad gateway"));
        assert!(html.is_retryable());

        let empty = parse(503, "");
        assert!(empty.to_string().contains("HTTP 503"));
    }

    #[test]
    fn wrapped_gateway_errors_are_unwrapped() {
        let error = parse(
            502,
            r#"{"error":{"message":"upstream overloaded","type":"server_error","code":"overloaded"}}"#,
        );
        assert_eq!(error.error_type(), Some("server_error"));
        assert_eq!(error.code(), Some("overloaded"));
        assert!(error.to_string().contains("upstream overloaded"));
    }

    #[test]
    fn with_partial_keeps_the_text() {
        let error = Error::Truncated {
            partial: String::new(),
        }
        .with_partial("He");
        assert_eq!(error.partial(), "He");
        assert_eq!(error.kind(), ErrorKind::Truncated);
    }
}
