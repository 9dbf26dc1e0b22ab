//! Streaming chats through the bus: [`MistralEventBus::stream_chat`], the
//! [`ChatHandle`] it returns, and the [`ChatOutcome`] the handle resolves to.
//!
//! Each call runs in a task of its own that reads the [`ChatStream`] and
//! publishes the events of the contract: `start`, then `retry`, `chunk`,
//! `thinking` and `tool_call` as they happen, then exactly one of
//! `complete`, `error` or `cancelled`. Publishing waits for reliable
//! subscribers, so a reliable subscriber that falls behind slows the read
//! of the stream rather than lose an event.
//!
//! Dropping the handle, or calling [`ChatHandle::cancel`], ends the call at
//! once: the connection is closed and `cancelled` is published with the
//! text received so far. [`ChatHandle::detach`] lets a call run on without
//! its handle.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::MistralEventBus;
use crate::client::{ChatAssembler, ChatStream, Piece, RateLimits, StreamEvent};
use crate::error::Error;
use crate::event::{ChoiceCompletion, Completion, Correlation, ErrorInfo, Event, EventPayload};
use crate::id::RequestId;
use crate::wire::{ChatRequest, FinishReason, ToolCall, Usage};

/// Options for one streamed chat.
#[derive(Debug, Clone, Default)]
#[must_use]
#[non_exhaustive]
pub struct ChatOptions {
    /// The call's id. Default: a fresh random id.
    pub request_id: Option<RequestId>,
    /// Correlation ids stamped on every event of the call. Default: none.
    pub correlation: Correlation,
}

impl ChatOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the call's id.
    pub fn request_id(mut self, id: RequestId) -> Self {
        self.request_id = Some(id);
        self
    }

    /// Sets the correlation ids.
    pub fn correlation(mut self, correlation: Correlation) -> Self {
        self.correlation = correlation;
        self
    }
}

/// The final result of a streamed chat.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChatOutcome {
    /// The call's id.
    pub request_id: RequestId,
    /// The model that answered (from the chunks, else the request).
    pub model: String,
    /// The answer text: every chunk joined.
    pub content: String,
    /// The reasoning text, when the model reasoned.
    pub thinking: Option<String>,
    /// Every tool call, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Token counts as the API reported them; `None` when it sent none.
    pub usage: Option<Usage>,
    /// Why the model stopped.
    pub finish_reason: Option<FinishReason>,
    /// How many `chunk` events were published.
    pub chunks: u64,
    /// Time from the start to the first piece of output.
    pub time_to_first_chunk: Option<Duration>,
    /// Time from the start to the end.
    pub elapsed: Duration,
    /// The response's `mistral-correlation-id`.
    pub correlation_id: Option<String>,
    /// The response's `x-ratelimit-*` headers.
    pub rate_limits: RateLimits,
    /// The other choices, when the request asked for several.
    pub choices: Vec<ChoiceCompletion>,
}

/// A running chat. Await it for the [`ChatOutcome`].
///
/// Dropping the handle cancels the chat; use [`detach`](Self::detach) to
/// let it run on.
///
/// # Cancel safety
///
/// Dropping the future cancels the chat, which publishes `cancelled`.
#[must_use = "dropping a ChatHandle cancels the chat"]
pub struct ChatHandle {
    request_id: RequestId,
    cancel: watch::Sender<bool>,
    task: Option<JoinHandle<Result<ChatOutcome, Error>>>,
}

impl fmt::Debug for ChatHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatHandle")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl ChatHandle {
    /// The call's id: the `request_id` of its events.
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    /// Whether the chat has ended (its outcome is ready).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Cancels the chat: the connection closes and `cancelled` is
    /// published. Awaiting the handle then gives [`Error::Cancelled`].
    pub fn cancel(&self) {
        self.cancel.send_replace(true);
    }

    /// Lets the chat run to its end without the handle. Its events are
    /// still published; the returned task gives the outcome.
    pub fn detach(mut self) -> JoinHandle<Result<ChatOutcome, Error>> {
        // Taking the task disarms the drop-cancel; the driver reads a
        // dropped sender as "never cancelled".
        self.task
            .take()
            .expect("a handle owns its task until detached")
    }
}

impl Drop for ChatHandle {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.cancel.send_replace(true);
        }
    }
}

impl Future for ChatHandle {
    type Output = Result<ChatOutcome, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Err(Error::Cancelled {
                partial: String::new(),
            }));
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            // The task ends only by returning, unless the runtime shuts down.
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::Cancelled {
                partial: String::new(),
            })),
        }
    }
}

impl MistralEventBus {
    /// Streams `request` through the bus with default options.
    ///
    /// Must be called within a tokio runtime: the chat runs in a task.
    ///
    /// ```no_run
    /// use mistral_events::bus::MistralEventBus;
    /// use mistral_events::wire::{ChatRequest, Message};
    /// use mistral_events::Client;
    ///
    /// # async fn demo() -> Result<(), mistral_events::Error> {
    /// let bus = MistralEventBus::new(Client::from_env()?);
    /// let request = ChatRequest::new("mistral-small-latest", vec![Message::user("Hi")]);
    /// let outcome = bus.stream_chat(request).await?;
    /// println!("{} ({} chunks)", outcome.content, outcome.chunks);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stream_chat(&self, request: ChatRequest) -> ChatHandle {
        self.stream_chat_with(request, ChatOptions::default())
    }

    /// Streams `request` through the bus with `options`.
    pub fn stream_chat_with(&self, request: ChatRequest, options: ChatOptions) -> ChatHandle {
        let model = request.model.clone();
        let multi = request.n.unwrap_or(1) > 1;
        let stream = self.client().chat_stream(request);
        self.spawn_chat(stream, model, multi, options)
    }

    /// Runs a recorded SSE body through the same decoder and events as a
    /// live chat. `model` fills the `start` event.
    pub fn replay<S>(&self, body: S, model: impl Into<String>, options: ChatOptions) -> ChatHandle
    where
        S: Stream<Item = Result<Bytes, Error>> + Send + 'static,
    {
        let stream = ChatStream::from_body(body, self.client().timeouts().idle);
        self.spawn_chat(stream, model.into(), false, options)
    }

    fn spawn_chat(
        &self,
        stream: ChatStream,
        model: String,
        multi: bool,
        options: ChatOptions,
    ) -> ChatHandle {
        let request_id = options.request_id.unwrap_or_else(RequestId::generate);
        let (cancel, cancelled) = watch::channel(false);
        let driver = Driver {
            bus: self.clone(),
            request_id: request_id.clone(),
            correlation: options.correlation,
            seq: 0,
            multi,
        };
        let task = tokio::spawn(driver.run(stream, model, cancelled));
        ChatHandle {
            request_id,
            cancel,
            task: Some(task),
        }
    }
}

/// The task behind one chat: reads the stream and publishes its events.
struct Driver {
    bus: MistralEventBus,
    request_id: RequestId,
    correlation: Correlation,
    seq: u64,
    multi: bool,
}

/// What the read loop ended with.
enum Ending {
    Done,
    Failed(Error),
    Cancelled,
}

impl Driver {
    async fn run(
        mut self,
        mut stream: ChatStream,
        model: String,
        mut cancelled: watch::Receiver<bool>,
    ) -> Result<ChatOutcome, Error> {
        let started = Instant::now();
        self.publish(EventPayload::Start {
            model: model.clone(),
        })
        .await;

        let mut assembler = ChatAssembler::new();
        let mut pieces = Vec::new();
        let mut meta = None;
        let mut first_output = None;
        let ending = loop {
            let item = tokio::select! {
                biased;
                () = wait_for_cancel(&mut cancelled) => break Ending::Cancelled,
                item = stream.next() => item,
            };
            match item {
                None => break Ending::Done,
                Some(Err(error)) => break Ending::Failed(error),
                Some(Ok(StreamEvent::Connected(response))) => meta = Some(response),
                Some(Ok(StreamEvent::Retrying(notice))) => {
                    self.publish(EventPayload::Retry {
                        attempt: notice.attempt,
                        delay_ms: notice.delay.as_millis() as u64,
                        reason: notice.reason,
                    })
                    .await;
                }
                Some(Ok(StreamEvent::Chunk(chunk))) => {
                    assembler.push(chunk, &mut pieces);
                    if first_output.is_none() && !pieces.is_empty() {
                        first_output = Some(started.elapsed());
                    }
                    if let Some(error) = self.publish_pieces(&mut pieces, meta.as_ref()).await {
                        break Ending::Failed(error);
                    }
                }
            }
        };
        // Close the connection before announcing the end.
        drop(stream);

        let partial = assembler.content().to_owned();
        match ending {
            Ending::Cancelled => {
                self.publish(EventPayload::Cancelled {
                    partial: partial.clone(),
                })
                .await;
                Err(Error::Cancelled { partial })
            }
            Ending::Failed(error) => {
                let error = error.with_partial(partial);
                self.publish(EventPayload::Error(Box::new(ErrorInfo::from(&error))))
                    .await;
                Err(error)
            }
            Ending::Done => {
                assembler.finish(&mut pieces);
                self.publish_pieces(&mut pieces, meta.as_ref()).await;
                let meta = meta.unwrap_or_default();
                let outcome = ChatOutcome {
                    request_id: self.request_id.clone(),
                    model: assembler.model().unwrap_or(&model).to_owned(),
                    content: partial,
                    thinking: first_choice(&assembler)
                        .map(|state| state.thinking.clone())
                        .filter(|text| !text.is_empty()),
                    tool_calls: first_choice(&assembler)
                        .map(|state| state.tool_calls.clone())
                        .unwrap_or_default(),
                    usage: assembler.usage().cloned(),
                    finish_reason: first_choice(&assembler)
                        .and_then(|state| state.finish_reason.clone()),
                    chunks: assembler.choices().iter().map(|state| state.chunks).sum(),
                    time_to_first_chunk: first_output,
                    elapsed: started.elapsed(),
                    correlation_id: meta.correlation_id,
                    rate_limits: meta.rate_limits,
                    choices: other_choices(&assembler),
                };
                self.publish(EventPayload::Complete(Box::new(completion(&outcome))))
                    .await;
                Ok(outcome)
            }
        }
    }

    /// Publishes what one chunk contributed. A choice that finished with
    /// `"error"` ends the call with an API error, returned here.
    async fn publish_pieces(
        &mut self,
        pieces: &mut Vec<Piece>,
        meta: Option<&crate::client::ResponseMeta>,
    ) -> Option<Error> {
        let mut failure = None;
        for piece in pieces.drain(..) {
            let payload = match piece {
                Piece::Text {
                    choice,
                    index,
                    text,
                } => EventPayload::Chunk {
                    index,
                    content: text,
                    choice: self.choice_tag(choice),
                },
                Piece::Thinking { choice, text } => EventPayload::Thinking {
                    content: text,
                    choice: self.choice_tag(choice),
                },
                Piece::ToolCall { choice, call } => EventPayload::ToolCall {
                    id: call.id,
                    name: call.function.name,
                    arguments: call.function.arguments,
                    choice: self.choice_tag(choice),
                },
                Piece::Finished {
                    reason: FinishReason::Error,
                    ..
                } => {
                    failure = Some(Error::stream_failed(meta.cloned().unwrap_or_default()));
                    continue;
                }
                Piece::Finished { .. } => continue,
            };
            self.publish(payload).await;
        }
        failure
    }

    fn choice_tag(&self, choice: u32) -> Option<u32> {
        self.multi.then_some(choice)
    }

    async fn publish(&mut self, payload: EventPayload) {
        let mut event = Event::for_request(&self.request_id, self.seq, payload);
        if !self.correlation.is_empty() {
            event.correlation = self.correlation.clone();
        }
        self.seq += 1;
        self.bus.publish(event).await;
    }
}

fn first_choice(assembler: &ChatAssembler) -> Option<&crate::client::ChoiceState> {
    assembler.choices().first()
}

fn other_choices(assembler: &ChatAssembler) -> Vec<ChoiceCompletion> {
    if assembler.choices().len() < 2 {
        return Vec::new();
    }
    assembler
        .choices()
        .iter()
        .enumerate()
        .map(|(index, state)| ChoiceCompletion {
            choice: index as u32,
            content: state.content.clone(),
            finish_reason: state.finish_reason.clone(),
        })
        .collect()
}

fn completion(outcome: &ChatOutcome) -> Completion {
    Completion {
        content: outcome.content.clone(),
        thinking: outcome.thinking.clone(),
        finish_reason: outcome.finish_reason.clone(),
        usage: outcome.usage.clone(),
        tool_calls: outcome.tool_calls.clone(),
        ttft_ms: outcome
            .time_to_first_chunk
            .map(|ttft| ttft.as_millis() as u64),
        correlation_id: outcome.correlation_id.clone(),
        rate_limits: outcome.rate_limits.clone(),
        choices: outcome.choices.clone(),
    }
}

/// Resolves once the handle asks for a cancel; never, if the handle is gone
/// without asking.
async fn wait_for_cancel(cancelled: &mut watch::Receiver<bool>) {
    if cancelled.wait_for(|flag| *flag).await.is_err() {
        std::future::pending::<()>().await;
    }
}
