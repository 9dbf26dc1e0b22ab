//! The event contract: what the bus publishes, and its JSON.
//!
//! Every [`Event`] has an envelope and a payload:
//!
//! - `type`: the payload's snake_case tag ([`EventType`]);
//! - `seq`: per subject, from 0 and strictly increasing;
//! - `ts`: RFC 3339 UTC with milliseconds;
//! - the subject id: `request_id` for the events of one model call;
//! - correlation ids when they apply (`job_id`, `thread_id`,
//!   `conversation_id`, `batch_id`, `run_id`).
//!
//! The events of one model call start with `start` and end with exactly one
//! terminal event (`complete`, `error` or `cancelled`); nothing follows it.
//! Chunk `index`es run from 0 with no gaps, and the chunks joined equal
//! `complete.content`.
//!
//! The JSON of an event is the one format for the CLI's `--events jsonl`,
//! recordings and bridges to other processes:
//!
//! ```
//! use mistral_events::event::{Event, EventPayload};
//! use mistral_events::RequestId;
//!
//! let id = RequestId::new("r1").unwrap();
//! let event = Event::for_request(&id, 2, EventPayload::chunk(0, "Hel"));
//! let json: serde_json::Value = serde_json::to_value(&event).unwrap();
//! assert_eq!(json["type"], "chunk");
//! assert_eq!(json["request_id"], "r1");
//! assert_eq!(json["seq"], 2);
//! assert_eq!(json["content"], "Hel");
//!
//! let back: Event = serde_json::from_value(json).unwrap();
//! assert_eq!(back.payload, event.payload);
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client::RateLimits;
use crate::error::{Error, ErrorKind};
use crate::id::RequestId;
use crate::wire::{FinishReason, ToolCall, Usage};

/// One published event: envelope and payload.
///
/// The bus hands events out as `Arc<Event>`, so a clone per subscriber
/// costs a reference count, not a copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// What happened; serialised flat, with its `type` tag first.
    #[serde(flatten)]
    pub payload: EventPayload,
    /// The model call this event belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// Position within the subject, from 0.
    pub seq: u64,
    /// When the event was made.
    pub ts: Timestamp,
    /// Ids that tie the event to a job, thread, conversation, batch or run.
    #[serde(flatten)]
    pub correlation: Correlation,
}

impl Event {
    /// An event of the model call `request_id`, stamped now.
    pub fn for_request(request_id: &RequestId, seq: u64, payload: EventPayload) -> Self {
        Self {
            payload,
            request_id: Some(request_id.clone()),
            seq,
            ts: Timestamp::now(),
            correlation: Correlation::default(),
        }
    }

    /// An event with no subject id, such as `subscriber_failed`.
    pub fn unscoped(payload: EventPayload) -> Self {
        Self {
            payload,
            request_id: None,
            seq: 0,
            ts: Timestamp::now(),
            correlation: Correlation::default(),
        }
    }

    /// The payload's type.
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// Whether this event ends its model call.
    pub fn is_terminal(&self) -> bool {
        self.event_type().is_terminal()
    }

    /// The event as one line of JSON, without the newline.
    pub fn to_json(&self) -> String {
        // Serialising an event cannot fail: every field is plain data.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Correlation ids carried next to the subject id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Correlation {
    /// The queued job this call is an attempt of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The stored chat thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// The Conversations API conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The batch job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// A tool loop or bulk run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl Correlation {
    /// Whether no correlation id is set.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// The payload of an event, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventPayload {
    /// The call began. Always the first event of a call.
    Start {
        /// The requested model.
        model: String,
    },
    /// An attempt failed before any output and the call waits to try again.
    Retry {
        /// The attempt about to start, from 2.
        attempt: u32,
        /// How long the wait is.
        delay_ms: u64,
        /// Why, such as `HTTP 429`.
        reason: String,
    },
    /// A piece of answer text. Empty deltas make no event.
    Chunk {
        /// Position among this choice's chunks, from 0 with no gaps.
        index: u64,
        /// The text.
        content: String,
        /// The choice, when the request asked for several (`n` > 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        choice: Option<u32>,
    },
    /// A piece of reasoning text. Never part of the answer's content.
    Thinking {
        /// The reasoning text.
        content: String,
        /// The choice, when the request asked for several.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        choice: Option<u32>,
    },
    /// A whole tool call, once its arguments are complete.
    ToolCall {
        /// The call's id.
        id: String,
        /// The function's name.
        name: String,
        /// The arguments, as a JSON string.
        arguments: String,
        /// The choice, when the request asked for several.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        choice: Option<u32>,
    },
    /// The call finished. Terminal.
    Complete(Box<Completion>),
    /// The call failed. Terminal.
    Error(Box<ErrorInfo>),
    /// The call was cancelled. Terminal.
    Cancelled {
        /// Answer text received before the cancel.
        partial: String,
    },
    /// A reliable subscriber was detached, or stopped.
    SubscriberFailed {
        /// The subscriber's name.
        subscriber: String,
        /// What happened.
        reason: String,
    },
}

impl EventPayload {
    /// A chunk of choice 0.
    pub fn chunk(index: u64, content: impl Into<String>) -> Self {
        Self::Chunk {
            index,
            content: content.into(),
            choice: None,
        }
    }

    /// The payload's type.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Start { .. } => EventType::Start,
            Self::Retry { .. } => EventType::Retry,
            Self::Chunk { .. } => EventType::Chunk,
            Self::Thinking { .. } => EventType::Thinking,
            Self::ToolCall { .. } => EventType::ToolCall,
            Self::Complete(_) => EventType::Complete,
            Self::Error(_) => EventType::Error,
            Self::Cancelled { .. } => EventType::Cancelled,
            Self::SubscriberFailed { .. } => EventType::SubscriberFailed,
        }
    }
}

/// The payload of a `complete` event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Completion {
    /// The whole answer text: the chunks joined.
    pub content: String,
    /// The reasoning text, when the model reasoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Why the model stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Token counts as the API reported them; absent when it sent none.
    /// After a resume, the sum over the attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Each attempt's reported usage (`null` for an attempt cut short),
    /// when the call took more than one request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage_per_attempt: Vec<Option<Usage>>,
    /// Every tool call, in order.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// Milliseconds from the start to the first chunk of output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// The `mistral-correlation-id` of the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The response's `x-ratelimit-*` headers.
    #[serde(default, skip_serializing_if = "RateLimits::is_empty")]
    pub rate_limits: RateLimits,
    /// The other choices' answers, when the request asked for several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<ChoiceCompletion>,
}

/// One choice's answer, for requests with `n` > 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChoiceCompletion {
    /// The choice's index.
    pub choice: u32,
    /// Its answer text.
    pub content: String,
    /// Why it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
}

/// The payload of an `error` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorInfo {
    /// What failed, from a closed set.
    pub kind: ErrorKind,
    /// The HTTP status, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Mistral's error `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Mistral's error `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The message.
    pub message: String,
    /// Answer text received before the failure.
    pub partial: String,
    /// The `mistral-correlation-id` of the failed response, when one
    /// arrived: on an error answer, or on a stream that broke later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl From<&Error> for ErrorInfo {
    fn from(error: &Error) -> Self {
        Self {
            kind: error.kind(),
            status: error.status(),
            code: error.code().map(str::to_owned),
            error_type: error.error_type().map(str::to_owned),
            message: error.to_string(),
            partial: error.partial().to_owned(),
            correlation_id: error.meta().and_then(|meta| meta.correlation_id.clone()),
        }
    }
}

/// The `type` of an event, for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventType {
    /// `start`
    Start,
    /// `retry`
    Retry,
    /// `chunk`
    Chunk,
    /// `thinking`
    Thinking,
    /// `tool_call`
    ToolCall,
    /// `complete`
    Complete,
    /// `error`
    Error,
    /// `cancelled`
    Cancelled,
    /// `subscriber_failed`
    SubscriberFailed,
}

impl EventType {
    /// Every type, in contract order.
    pub const ALL: [EventType; 9] = [
        Self::Start,
        Self::Retry,
        Self::Chunk,
        Self::Thinking,
        Self::ToolCall,
        Self::Complete,
        Self::Error,
        Self::Cancelled,
        Self::SubscriberFailed,
    ];

    /// The snake_case tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Retry => "retry",
            Self::Chunk => "chunk",
            Self::Thinking => "thinking",
            Self::ToolCall => "tool_call",
            Self::Complete => "complete",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
            Self::SubscriberFailed => "subscriber_failed",
        }
    }

    /// Whether an event of this type ends its model call.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Complete | Self::Error | Self::Cancelled)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| format!("unknown event type {text:?}"))
    }
}

/// A wall-clock instant, serialised as RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// Now.
    pub fn now() -> Self {
        Self(SystemTime::now())
    }

    /// The instant as a [`SystemTime`].
    pub fn as_system_time(self) -> SystemTime {
        self.0
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> u64 {
        self.0
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64
    }
}

impl From<SystemTime> for Timestamp {
    fn from(value: SystemTime) -> Self {
        Self(value)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        humantime::parse_rfc3339_weak(&text)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_rfc3339_utc_with_millis() {
        let ts = Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        assert_eq!(ts.to_string(), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn type_tag_comes_first_and_envelope_follows() {
        let id = RequestId::new("r1").unwrap();
        let event = Event::for_request(
            &id,
            1,
            EventPayload::Retry {
                attempt: 2,
                delay_ms: 1000,
                reason: "HTTP 429".into(),
            },
        );
        let json = event.to_json();
        assert!(json.starts_with(r#"{"type":"retry","#), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["delay_ms"], 1000);
        assert_eq!(value["request_id"], "r1");
        assert!(value.get("job_id").is_none());
    }

    #[test]
    fn every_event_type_round_trips_its_name() {
        for kind in EventType::ALL {
            assert_eq!(kind.as_str().parse::<EventType>().unwrap(), kind);
        }
    }

    #[test]
    fn error_payload_uses_the_closed_kind_set() {
        let error = Error::Truncated {
            partial: "He".into(),
        };
        let id = RequestId::new("r1").unwrap();
        let event = Event::for_request(&id, 3, EventPayload::Error(Box::new((&error).into())));
        let value: serde_json::Value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["kind"], "truncated");
        assert_eq!(value["partial"], "He");
    }
}
