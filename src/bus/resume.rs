//! Resuming a cut stream from the text already received.
//!
//! Re-sending a request whose stream was cut bills it again and repeats the
//! text. Mistral instead continues an assistant message marked
//! `prefix: true`, so a cut stream can carry on where it stopped: the bus
//! sends the original messages plus an assistant message holding the
//! partial answer, and subscribers see one unbroken answer under the same
//! `request_id`, with `seq` and chunk `index` running on.
//!
//! The policy is opt-in ([`ChatOptions::resume`](super::ChatOptions::resume)).
//! With it, a stream that ends in a connection error, an idle timeout or a
//! body without `[DONE]`:
//!
//! - **after some content**, waits (exponential backoff, each wait between
//!   half and all of its step, published as a `retry` event whose reason
//!   starts with `resume`) and
//!   resumes, until the answer completes or the resumes run out; then the
//!   error's `partial` holds everything received;
//! - **before any content**, is sent again under the client's ordinary
//!   retry policy: nothing was shown, so nothing can repeat;
//! - **while a tool call is in flight**, or for a request with `n` > 1, is
//!   not resumed, and the error says why.
//!
//! Nothing is resumed after a cancel, an API error or a malformed chunk.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::client::retry::RetryState;
use crate::client::{ChatAssembler, RetryPolicy};
use crate::error::{Error, TimeoutPhase};
use crate::wire::{ChatRequest, Message};

/// How many times, and how soon, a cut stream is resumed.
///
/// ```
/// use std::time::Duration;
/// use mistral_events::bus::ResumePolicy;
///
/// let policy = ResumePolicy::new(3).initial_delay(Duration::from_millis(100));
/// assert_eq!(policy.max_resumes, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumePolicy {
    /// Resumes allowed for one call. 0 resumes nothing.
    pub max_resumes: u32,
    /// The first wait before a resume. Default 250 ms.
    pub initial_delay: Duration,
    /// The largest wait. Default 5 s.
    pub max_delay: Duration,
}

impl ResumePolicy {
    /// Up to `max_resumes` resumes, with the default waits.
    pub fn new(max_resumes: u32) -> Self {
        Self {
            max_resumes,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }

    /// Sets the first wait; later waits double, up to the largest.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Sets the largest wait.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }
}

/// What to do after a stream failed.
#[derive(Debug)]
pub(crate) enum Next {
    /// Wait `delay`, then send `request`.
    Attempt {
        delay: Duration,
        reason: String,
        request: Box<ChatRequest>,
    },
    /// End the call with this error.
    GiveUp(Error),
}

/// The resume state of one call.
#[derive(Debug)]
pub(crate) struct Resumer {
    policy: ResumePolicy,
    steps: ExponentialBackoff,
    resumed: u32,
    retries: RetryState,
    original: ChatRequest,
}

impl Resumer {
    pub(crate) fn new(policy: ResumePolicy, retry: RetryPolicy, original: ChatRequest) -> Self {
        let steps = ExponentialBuilder::default()
            .with_min_delay(policy.initial_delay)
            .with_max_delay(policy.max_delay)
            .with_factor(2.0)
            .without_max_times()
            .build();
        Self {
            policy,
            steps,
            resumed: 0,
            retries: RetryState::new(retry),
            original,
        }
    }

    /// Decides what follows `error`, given what the call has received.
    pub(crate) fn next(&mut self, error: Error, received: &ChatAssembler) -> Next {
        if !is_cut(&error) {
            return Next::GiveUp(error);
        }
        let content = received.content();
        let first = received.choices().first();
        if first.is_some_and(|choice| choice.finish_reason.is_some()) {
            return not_resumed(
                error,
                "the answer had finished; only the end of the stream was missing",
            );
        }
        if received.has_open_tool_calls() {
            return not_resumed(
                error,
                "a tool call was in flight, and its arguments cannot be continued",
            );
        }
        let other_output = first
            .is_some_and(|choice| !choice.thinking.is_empty() || !choice.tool_calls.is_empty());
        if content.is_empty() && other_output {
            return not_resumed(
                error,
                "only reasoning or tool calls had arrived, and only text can be continued",
            );
        }
        if content.is_empty() {
            // Nothing was shown yet: an ordinary retry repeats nothing.
            return match self.retries.plan_any(&error) {
                Some(plan) => Next::Attempt {
                    delay: plan.delay,
                    reason: format!("{} before any output", error.kind()),
                    request: Box::new(self.original.clone()),
                },
                None => Next::GiveUp(error),
            };
        }
        if self.original.n.unwrap_or(1) > 1 {
            return not_resumed(error, "the request asked for several choices");
        }
        if self.resumed >= self.policy.max_resumes {
            return Next::GiveUp(error);
        }
        let Some(step) = self.steps.next() else {
            return Next::GiveUp(error);
        };
        self.resumed += 1;
        Next::Attempt {
            // Half of the step is fixed and half is random: resumes of many
            // streams cut at once spread out, yet never fire at once.
            delay: step / 2 + (step / 2).mul_f64(fastrand::f64()),
            reason: format!(
                "resume {} of {} after {}",
                self.resumed,
                self.policy.max_resumes,
                error.kind()
            ),
            request: Box::new(continuation(&self.original, content)),
        }
    }
}

/// A cut: the stream stopped without the server saying it failed.
fn is_cut(error: &Error) -> bool {
    match error {
        Error::Connection { .. } | Error::Truncated { .. } => true,
        Error::Timeout { phase, .. } => *phase == TimeoutPhase::Idle,
        _ => false,
    }
}

fn not_resumed(error: Error, reason: &str) -> Next {
    Next::GiveUp(Error::NotResumed {
        reason: reason.to_owned(),
        cause: Box::new(error),
    })
}

/// The original request plus the partial answer as an assistant prefix.
/// When the request already ended in a prefix, the answer continued that
/// text, so the partial answer extends it rather than adding a second one.
fn continuation(original: &ChatRequest, content: &str) -> ChatRequest {
    let mut request = original.clone();
    let earlier = match request.messages.last() {
        Some(message @ Message::Assistant { prefix: true, .. }) => {
            let text = message.text();
            request.messages.pop();
            text
        }
        _ => String::new(),
    };
    request
        .messages
        .push(Message::assistant_prefix(earlier + content));
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resumer(max: u32) -> Resumer {
        let request = ChatRequest::new("m", vec![Message::user("hi")]);
        Resumer::new(ResumePolicy::new(max), RetryPolicy::default(), request)
    }

    fn cut() -> Error {
        Error::Truncated {
            partial: String::new(),
        }
    }

    /// An assembler fed `lines` of chunk JSON.
    fn received(lines: &[&str]) -> ChatAssembler {
        let mut assembler = ChatAssembler::with_choices(1);
        let mut pieces = Vec::new();
        for line in lines {
            assembler.push(serde_json::from_str(line).unwrap(), &mut pieces);
        }
        assembler
    }

    fn text(text: &str) -> ChatAssembler {
        received(&[&format!(
            r#"{{"choices":[{{"index":0,"delta":{{"content":"{text}"}}}}]}}"#
        )])
    }

    #[test]
    fn resumes_with_the_partial_text_as_prefix_until_the_budget_runs_out() {
        let mut resumer = resumer(2);
        for round in 1..=2 {
            let Next::Attempt {
                request, reason, ..
            } = resumer.next(cut(), &text("Hello"))
            else {
                panic!("round {round} resumes");
            };
            assert!(reason.starts_with("resume"));
            assert_eq!(
                request.messages.last(),
                Some(&Message::assistant_prefix("Hello"))
            );
            assert_eq!(request.messages.len(), 2);
        }
        assert!(matches!(
            resumer.next(cut(), &text("Hello")),
            Next::GiveUp(_)
        ));
    }

    #[test]
    fn api_errors_are_not_resumed() {
        let mut resumer = resumer(5);
        let api = Error::stream_failed(Default::default());
        assert!(matches!(
            resumer.next(api, &text("Hi")),
            Next::GiveUp(Error::Api(_))
        ));
    }

    #[test]
    fn a_cut_before_content_is_an_ordinary_retry_of_the_original() {
        let mut resumer = resumer(5);
        let Next::Attempt {
            request, reason, ..
        } = resumer.next(cut(), &ChatAssembler::with_choices(1))
        else {
            panic!("retried");
        };
        assert_eq!(request.messages.len(), 1);
        assert!(!reason.starts_with("resume"));
    }

    #[test]
    fn an_open_tool_call_refuses_with_a_reason() {
        let mut resumer = resumer(5);
        let open_call = received(&[
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"abcdefghi","index":0,"function":{"name":"f","arguments":"{"}}]}}]}"#,
        ]);
        let Next::GiveUp(error) = resumer.next(cut(), &open_call) else {
            panic!("refused");
        };
        assert!(error.to_string().contains("tool call was in flight"));
        assert_eq!(error.kind(), crate::ErrorKind::Truncated);
    }

    #[test]
    fn a_finished_answer_is_not_resumed() {
        let mut resumer = resumer(5);
        let finished = received(&[
            r#"{"choices":[{"index":0,"delta":{"content":"Done"},"finish_reason":"length"}]}"#,
        ]);
        let Next::GiveUp(error) = resumer.next(cut(), &finished) else {
            panic!("refused");
        };
        assert!(error.to_string().contains("had finished"), "{error}");
    }

    #[test]
    fn reasoning_alone_is_neither_retried_nor_resumed() {
        let mut resumer = resumer(5);
        let thought = received(&[
            r#"{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"Let me think."}]}]}}]}"#,
        ]);
        let Next::GiveUp(error) = resumer.next(cut(), &thought) else {
            panic!("refused, so the thinking is not sent twice");
        };
        assert!(error.to_string().contains("only reasoning"), "{error}");
    }

    #[test]
    fn an_existing_prefix_is_extended_not_doubled() {
        let request = ChatRequest::new(
            "m",
            vec![Message::user("hi"), Message::assistant_prefix("Once")],
        );
        let resumed = continuation(&request, " upon");
        assert_eq!(resumed.messages.len(), 2);
        assert_eq!(resumed.messages[1], Message::assistant_prefix("Once upon"));
    }
}
