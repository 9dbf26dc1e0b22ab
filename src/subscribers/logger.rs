//! Logs every event with `tracing`, without its text.

use std::sync::Arc;

use async_trait::async_trait;

use super::LOG_TARGET;
use crate::bus::Subscriber;
use crate::error::BoxError;
use crate::event::{Event, EventPayload};
use crate::id::RequestId;
use crate::wire::FinishReason;

/// The target of the event lines.
const EVENTS_TARGET: &str = "mistral_events::events";

/// Logs each event on the target `mistral_events::events`, as structured
/// fields.
///
/// Every line has `request_id`, `seq` and `type`, and the numbers that
/// matter for its type: `attempt` and `delay_ms` for a retry,
/// `finish_reason` and the usage counts for `complete`, `kind` and
/// `status` for an error. The levels:
///
/// | events | level |
/// | --- | --- |
/// | `start`, `retry`, `complete`, `cancelled`, `subscriber_failed` | info |
/// | `error` | warn |
/// | `chunk`, `thinking`, `tool_call` | trace |
///
/// Answer, reasoning and message text is never logged, at any level: a
/// chunk's line gives its `index` and `len`, a tool call's the length of
/// its arguments, an error's its kind and codes. Record the text with a
/// [`JsonlRecorder`](super::JsonlRecorder) where that is wanted.
///
/// Register it lossy ([`SubscribeOptions::lossy`]): a log must never slow a
/// chat. If it falls behind, it logs how many events it missed.
///
/// # Examples
///
/// ```
/// use mistral_events::bus::{MistralEventBus, SubscribeOptions};
/// use mistral_events::subscribers::TracingLogger;
/// use mistral_events::Client;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mistral_events::Error> {
/// let bus = MistralEventBus::new(Client::builder().build()?);
/// bus.register(TracingLogger::new(), SubscribeOptions::lossy());
/// # bus.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// [`SubscribeOptions::lossy`]: crate::bus::SubscribeOptions::lossy
#[derive(Debug, Clone, Default)]
pub struct TracingLogger {
    _private: (),
}

impl TracingLogger {
    /// A logger.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Subscriber for TracingLogger {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        log_event(&event);
        Ok(())
    }

    async fn on_lagged(&mut self, missed: u64) {
        tracing::debug!(target: LOG_TARGET, missed, "event log fell behind; events went unlogged");
    }
}

fn log_event(event: &Event) {
    let request_id = event.request_id.as_ref().map(RequestId::as_str);
    let seq = event.seq;
    let event_type = event.event_type().as_str();
    match &event.payload {
        EventPayload::Start { model } => tracing::info!(
            target: EVENTS_TARGET, request_id, seq, r#type = event_type, model = model.as_str(),
            "call started"
        ),
        EventPayload::Retry {
            attempt,
            delay_ms,
            reason,
        } => tracing::info!(
            target: EVENTS_TARGET, request_id, seq, r#type = event_type, attempt, delay_ms,
            reason = reason.as_str(),
            "retrying"
        ),
        EventPayload::Chunk {
            index,
            content,
            choice,
        } => tracing::trace!(
            target: EVENTS_TARGET, request_id, seq, r#type = event_type, index, len = content.len(), choice,
            "chunk"
        ),
        EventPayload::Thinking { content, choice } => tracing::trace!(
            target: EVENTS_TARGET, request_id, seq, r#type = event_type, len = content.len(), choice,
            "reasoning"
        ),
        EventPayload::ToolCall {
            id,
            name,
            arguments,
            choice,
        } => tracing::trace!(
            target: EVENTS_TARGET, request_id, seq, r#type = event_type, call_id = id.as_str(),
            name = name.as_str(), arguments_len = arguments.len(), choice,
            "tool call"
        ),
        EventPayload::Complete(done) => {
            let usage = done.usage.as_ref();
            tracing::info!(
                target: EVENTS_TARGET, request_id, seq, r#type = event_type,
                finish_reason = done.finish_reason.as_ref().map(FinishReason::as_str),
                prompt_tokens = usage.map(|usage| usage.prompt_tokens),
                completion_tokens = usage.map(|usage| usage.completion_tokens),
                total_tokens = usage.map(|usage| usage.total_tokens),
                ttft_ms = done.ttft_ms, len = done.content.len(), tool_calls = done.tool_calls.len(),
                "call complete"
            );
        }
        EventPayload::Error(error) => tracing::warn!(
            target: EVENTS_TARGET, request_id, seq, r#type = event_type, kind = error.kind.as_str(),
            status = error.status, code = error.code.as_deref(),
            error_type = error.error_type.as_deref(), partial_len = error.partial.len(),
            "call failed"
        ),
        EventPayload::Cancelled { partial } => tracing::info!(
            target: EVENTS_TARGET, request_id, seq, r#type = event_type, partial_len = partial.len(),
            "call cancelled"
        ),
        EventPayload::SubscriberFailed { subscriber, reason } => tracing::info!(
            target: EVENTS_TARGET, request_id, seq, r#type = event_type, subscriber = subscriber.as_str(),
            reason = reason.as_str(),
            "subscriber failed"
        ),
    }
}
