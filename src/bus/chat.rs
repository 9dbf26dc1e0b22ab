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
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::resume::{Next, ResumePolicy, Resumer};
use super::MistralEventBus;
use crate::client::{
    ChatAssembler, ChatStream, Piece, Polled, RateLimits, ResponseMeta, StreamEvent,
};
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
    /// Whether a cut stream is resumed from the text received. Default:
    /// none; a cut ends the call with an error.
    pub resume: Option<ResumePolicy>,
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

    /// Resumes a cut stream under `policy`; see [`ResumePolicy`].
    pub fn resume(mut self, policy: ResumePolicy) -> Self {
        self.resume = Some(policy);
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
    /// After a resume, the sum over the attempts.
    pub usage: Option<Usage>,
    /// Each attempt's reported usage, in order, when the call took more
    /// than one request; an attempt cut short reports none.
    pub usage_per_attempt: Vec<Option<Usage>>,
    /// How many requests the call sent.
    pub attempts: u32,
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

    /// Polling again after the outcome was taken gives
    /// [`Error::Cancelled`] with no partial text.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Err(Error::Cancelled {
                partial: String::new(),
            }));
        };
        let joined = std::task::ready!(Pin::new(task).poll(cx));
        // The outcome is taken once; a finished task needs no cancel on drop.
        self.task = None;
        Poll::Ready(match joined {
            Ok(result) => result,
            // The task ends only by returning, unless the runtime shuts down.
            Err(_) => Err(Error::Cancelled {
                partial: String::new(),
            }),
        })
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
        let choices = request.n.unwrap_or(1);
        let resumer = options
            .resume
            .map(|policy| Resumer::new(policy, self.client().retry_policy(), request.clone()));
        let stream = self.client().chat_stream(request);
        self.spawn_chat(stream, model, choices, resumer, options)
    }

    /// Runs a recorded SSE body through the same decoder and events as a
    /// live chat. `model` fills the `start` event. Only choice 0 of the
    /// recording is replayed.
    pub fn replay<S>(&self, body: S, model: impl Into<String>, options: ChatOptions) -> ChatHandle
    where
        S: Stream<Item = Result<Bytes, Error>> + Send + 'static,
    {
        let stream = ChatStream::from_body(body, self.client().timeouts().idle);
        self.spawn_chat(stream, model.into(), 1, None, options)
    }

    fn spawn_chat(
        &self,
        stream: ChatStream,
        model: String,
        choices: u32,
        resumer: Option<Resumer>,
        options: ChatOptions,
    ) -> ChatHandle {
        let request_id = options.request_id.unwrap_or_else(RequestId::generate);
        let (cancel, cancelled) = watch::channel(false);
        let driver = Driver {
            bus: self.clone(),
            request_id: request_id.clone(),
            correlation: options.correlation,
            seq: 0,
            choices,
            attempts: 1,
            resumer,
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
    /// The choices the request asked for (`n`).
    choices: u32,
    /// Requests sent so far, counting retries and resumes.
    attempts: u32,
    /// Set when the call resumes cut streams.
    resumer: Option<Resumer>,
}

/// What the read loop ended with.
enum Ending {
    Done,
    Failed(Error),
    Cancelled,
}

/// What a call has received so far, across its attempts.
struct Progress {
    assembler: ChatAssembler,
    pieces: Vec<Piece>,
    meta: Option<ResponseMeta>,
    first_output: Option<Duration>,
    /// The usage each finished attempt reported.
    usages: Vec<Option<Usage>>,
}

impl Progress {
    fn new(choices: u32) -> Self {
        Self {
            assembler: ChatAssembler::with_choices(choices),
            pieces: Vec::new(),
            meta: None,
            first_output: None,
            usages: Vec::new(),
        }
    }

    fn end_attempt(&mut self) {
        self.usages.push(self.assembler.take_usage());
    }
}

/// The usage over all attempts: the counts summed, the extras of the last.
fn sum_usage(usages: &[Option<Usage>]) -> Option<Usage> {
    let mut reported = usages.iter().flatten();
    let mut total = reported.next()?.clone();
    for usage in reported {
        total.prompt_tokens += usage.prompt_tokens;
        total.completion_tokens += usage.completion_tokens;
        total.total_tokens += usage.total_tokens;
        total.extra = usage.extra.clone();
    }
    Some(total)
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

        let mut progress = Progress::new(self.choices);
        let ending = loop {
            let ending = self
                .read_attempt(&mut stream, &mut progress, &mut cancelled, started)
                .await;
            // Close the connection before anything else is announced.
            drop(stream);
            progress.end_attempt();

            let Ending::Failed(error) = ending else {
                break ending;
            };
            match self.next_attempt(error, &progress) {
                Next::GiveUp(error) => break Ending::Failed(error),
                Next::Attempt {
                    delay,
                    reason,
                    request,
                } => {
                    self.attempts += 1;
                    self.publish(EventPayload::Retry {
                        attempt: self.attempts,
                        delay_ms: delay.as_millis() as u64,
                        reason,
                    })
                    .await;
                    // A cancel during the wait sends nothing more.
                    tokio::select! {
                        biased;
                        () = wait_for_cancel(&mut cancelled) => break Ending::Cancelled,
                        () = tokio::time::sleep(delay) => {}
                    }
                    stream = self.bus.client().chat_stream(*request);
                }
            }
        };

        let partial = progress.assembler.content().to_owned();
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
                let mut info = ErrorInfo::from(&error);
                // A stream that broke after a 2xx start still has that
                // response's correlation id, for support requests.
                if info.correlation_id.is_none() {
                    info.correlation_id = progress.meta.and_then(|meta| meta.correlation_id);
                }
                self.publish(EventPayload::Error(Box::new(info))).await;
                Err(error)
            }
            Ending::Done => {
                let Progress {
                    mut assembler,
                    mut pieces,
                    meta,
                    first_output,
                    usages,
                } = progress;
                assembler.finish(&mut pieces);
                self.publish_pieces(&mut pieces, meta.as_ref()).await;
                let meta = meta.unwrap_or_default();
                let first = assembler.choices().first();
                let outcome = ChatOutcome {
                    request_id: self.request_id.clone(),
                    model: assembler.model().unwrap_or(&model).to_owned(),
                    content: partial,
                    thinking: first
                        .map(|state| state.thinking.clone())
                        .filter(|text| !text.is_empty()),
                    tool_calls: first
                        .map(|state| state.tool_calls.clone())
                        .unwrap_or_default(),
                    usage: sum_usage(&usages),
                    usage_per_attempt: if usages.len() > 1 { usages } else { Vec::new() },
                    attempts: self.attempts,
                    finish_reason: first.and_then(|state| state.finish_reason.clone()),
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

    /// Reads one attempt's stream to its end, publishing as it goes.
    async fn read_attempt(
        &mut self,
        stream: &mut ChatStream,
        progress: &mut Progress,
        cancelled: &mut watch::Receiver<bool>,
        started: Instant,
    ) -> Ending {
        // Registered once per attempt; see `unless_cancelled`.
        let mut waiter = cancelled.clone();
        let mut cancel = std::pin::pin!(wait_for_cancel(&mut waiter));
        loop {
            let item = unless_cancelled(cancelled, &mut cancel, |cx| {
                // Chunks are parsed borrowed, straight into the assembler.
                stream.poll_next_with(cx, |data| {
                    progress.assembler.push_data(data, &mut progress.pieces)
                })
            })
            .await;
            let Some(item) = item else {
                return Ending::Cancelled;
            };
            match item {
                None => return Ending::Done,
                Some(Err(error)) => return Ending::Failed(error),
                Some(Ok(Polled::Event(event))) => match *event {
                    StreamEvent::Connected(response) => progress.meta = Some(response),
                    StreamEvent::Retrying(notice) => {
                        self.attempts += 1;
                        self.publish(EventPayload::Retry {
                            attempt: self.attempts,
                            delay_ms: notice.delay.as_millis() as u64,
                            reason: notice.reason,
                        })
                        .await;
                    }
                    // Chunks come as `Polled::Chunk`.
                    StreamEvent::Chunk(_) => {}
                },
                Some(Ok(Polled::Chunk(()))) => {
                    if progress.first_output.is_none() && !progress.pieces.is_empty() {
                        progress.first_output = Some(started.elapsed());
                    }
                    // A reliable subscriber may hold this up; a cancel must
                    // still close the connection at once.
                    let mut publish = std::pin::pin!(
                        self.publish_pieces(&mut progress.pieces, progress.meta.as_ref())
                    );
                    let failed =
                        unless_cancelled(cancelled, &mut cancel, |cx| publish.as_mut().poll(cx))
                            .await;
                    match failed {
                        None => return Ending::Cancelled,
                        Some(Some(error)) => return Ending::Failed(error),
                        Some(None) => {}
                    }
                }
            }
        }
    }

    /// What follows a failed attempt: another request under the resume
    /// policy, or the end of the call.
    fn next_attempt(&mut self, error: Error, progress: &Progress) -> Next {
        match &mut self.resumer {
            Some(resumer) => resumer.next(error, &progress.assembler),
            None => Next::GiveUp(error),
        }
    }

    /// Publishes what one chunk contributed. A choice that finished with
    /// `"error"` ends the call with an API error, returned here.
    async fn publish_pieces(
        &mut self,
        pieces: &mut Vec<Piece>,
        meta: Option<&ResponseMeta>,
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
        (self.choices > 1).then_some(choice)
    }

    async fn publish(&mut self, payload: EventPayload) {
        // Made in its `Arc` at once: an event is 240 bytes, and each move on
        // the way into `publish` was a copy.
        let mut event = Arc::new(Event::for_request(&self.request_id, self.seq, payload));
        if !self.correlation.is_empty() {
            if let Some(event) = Arc::get_mut(&mut event) {
                event.correlation = self.correlation.clone();
            }
        }
        self.seq += 1;
        self.bus.publish_shared(event).await;
    }
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
        usage_per_attempt: outcome.usage_per_attempt.clone(),
        tool_calls: outcome.tool_calls.clone(),
        ttft_ms: outcome
            .time_to_first_chunk
            .map(|ttft| ttft.as_millis() as u64),
        correlation_id: outcome.correlation_id.clone(),
        rate_limits: outcome.rate_limits.clone(),
        choices: outcome.choices.clone(),
    }
}

/// Whether the handle has asked for a cancel: one atomic load until the
/// value changes.
fn cancel_requested(cancelled: &watch::Receiver<bool>) -> bool {
    cancelled.has_changed().unwrap_or(false) && *cancelled.borrow()
}

/// Polls `poll` until it is ready, or gives `None` once the handle cancels.
///
/// As with a `biased` `select!` that puts the cancel first, a cancel wins
/// over a result that is already ready, but this runs once per chunk, so it
/// checks the flag (one atomic load) rather than polling a cancel future:
/// `cancel`, registered once per attempt, is polled only when `poll` has to
/// wait. A fresh `wait_for` future per chunk took locks every time.
async fn unless_cancelled<T>(
    cancelled: &watch::Receiver<bool>,
    cancel: &mut Pin<&mut impl Future<Output = ()>>,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
) -> Option<T> {
    std::future::poll_fn(|cx| {
        if cancel_requested(cancelled) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(value) = poll(cx) {
            return Poll::Ready(Some(value));
        }
        cancel.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Resolves once the handle asks for a cancel; never, if the handle is gone
/// without asking.
async fn wait_for_cancel(cancelled: &mut watch::Receiver<bool>) {
    if cancelled.wait_for(|flag| *flag).await.is_err() {
        std::future::pending::<()>().await;
    }
}
