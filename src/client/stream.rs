//! [`ChatStream`]: a streamed chat completion, polled by its owner.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use super::retry::{RetryPlan, RetryState};
use super::{Client, ResponseMeta};
use crate::error::{Error, TimeoutPhase};
use crate::sse::SseDecoder;
use crate::wire::CompletionChunk;

/// What a [`ChatStream`] yields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// An attempt failed before any answer; the stream waits `delay`, then
    /// tries again.
    Retrying(RetryNotice),
    /// The answer started: a 2xx response with these headers.
    Connected(ResponseMeta),
    /// One chunk of the answer.
    Chunk(CompletionChunk),
}

/// A wait before another attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryNotice {
    /// The attempt about to start, counting the first as 1.
    pub attempt: u32,
    /// How long the stream waits first.
    pub delay: Duration,
    /// Why: `HTTP 429`, `connection`, `timeout`.
    pub reason: String,
}

impl From<RetryPlan> for RetryNotice {
    fn from(plan: RetryPlan) -> Self {
        Self {
            attempt: plan.attempt,
            delay: plan.delay,
            reason: plan.reason,
        }
    }
}

/// What [`ChatStream::poll_next_with`] yields.
pub(crate) enum Polled<T> {
    /// A retry notice or the response's meta: never a chunk. Boxed, as it
    /// is rare and large, and the item is moved a few times per chunk.
    Event(Box<StreamEvent>),
    /// What the parser made of one chunk.
    Chunk(T),
}

type Connecting = Pin<Box<dyn Future<Output = Result<reqwest::Response, Error>> + Send>>;

/// The bytes of a response body, from HTTP or from a recording.
pub(crate) type ByteStream = BoxStream<'static, Result<Bytes, Error>>;

/// A streamed chat completion, polled by its owner.
///
/// The stream is a state machine driven only by `poll_next`: connecting,
/// waiting before a retry, then reading the body through the SSE decoder.
/// No task runs behind it, so a slow consumer slows the reads (TCP
/// back-pressure does the rest), and dropping it closes the connection.
///
/// What it yields, in order:
///
/// 1. a [`StreamEvent::Retrying`] before each retry wait, while no answer
///    has begun;
/// 2. one [`StreamEvent::Connected`] with the response's meta;
/// 3. a [`StreamEvent::Chunk`] for every `data:` event up to `[DONE]`.
///
/// It ends after `[DONE]`, or after yielding exactly one error: a cut
/// connection ([`Error::Connection`]), an idle timeout, a malformed chunk
/// ([`Error::Decode`]) or a body that ended without `[DONE]`
/// ([`Error::Truncated`]). Events after `[DONE]` are ignored.
///
/// # Cancel safety
///
/// Dropping the stream at any point closes its connection; nothing is left
/// running.
pub struct ChatStream {
    state: State,
    decoder: SseDecoder,
    idle_limit: Duration,
}

enum State {
    /// Ready to send the next attempt.
    Start {
        client: Client,
        body: Bytes,
        retries: Box<RetryState>,
    },
    /// An attempt is in flight.
    Connecting {
        client: Client,
        body: Bytes,
        retries: Box<RetryState>,
        attempt: Connecting,
    },
    /// Waiting before the next attempt.
    Waiting {
        client: Client,
        body: Bytes,
        retries: Box<RetryState>,
        sleep: Pin<Box<Sleep>>,
    },
    /// Reading the body.
    Reading {
        body: ByteStream,
        idle: Pin<Box<Sleep>>,
        ended: bool,
    },
    /// An error to yield before ending.
    Failed(Error),
    /// Finished.
    Done,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start { .. } => "start",
            State::Connecting { .. } => "connecting",
            State::Waiting { .. } => "waiting",
            State::Reading { .. } => "reading",
            State::Failed(_) => "failed",
            State::Done => "done",
        };
        f.debug_struct("ChatStream").field("state", &state).finish()
    }
}

impl ChatStream {
    pub(crate) fn new(client: Client, body: Bytes) -> Self {
        let retries = Box::new(RetryState::new(client.retry_policy()));
        let idle_limit = client.timeouts().idle;
        Self {
            state: State::Start {
                client,
                body,
                retries,
            },
            decoder: SseDecoder::new(),
            idle_limit,
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        Self {
            state: State::Failed(error),
            decoder: SseDecoder::new(),
            idle_limit: Duration::MAX,
        }
    }

    /// A stream over a recorded SSE body, as if it had come from the API:
    /// the same decoder, framing rules and errors, with `idle_limit` between
    /// pieces. It yields no `Connected` item: a recording has no headers.
    pub fn from_body(
        body: impl Stream<Item = Result<Bytes, Error>> + Send + 'static,
        idle_limit: Duration,
    ) -> Self {
        Self {
            state: State::Reading {
                body: body.boxed(),
                idle: Box::pin(tokio::time::sleep(idle_limit)),
                ended: false,
            },
            decoder: SseDecoder::new(),
            idle_limit,
        }
    }

    /// Only the chunks, for callers who do not care about retries and meta.
    pub fn chunks(self) -> impl Stream<Item = Result<CompletionChunk, Error>> + Send {
        self.filter_map(|item| async move {
            match item {
                Ok(StreamEvent::Chunk(chunk)) => Some(Ok(chunk)),
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            }
        })
    }

    /// Drives the request phase: sending, retry waits, and the switch to
    /// reading once a 2xx answer starts.
    fn poll_request(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<StreamEvent, Error>>> {
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Start {
                    client,
                    body,
                    retries,
                } => {
                    let attempt = {
                        let client = client.clone();
                        let body = body.clone();
                        Box::pin(
                            async move { client.send_once("/v1/chat/completions", body).await },
                        )
                    };
                    self.state = State::Connecting {
                        client,
                        body,
                        retries,
                        attempt,
                    };
                }
                State::Connecting {
                    client,
                    body,
                    mut retries,
                    mut attempt,
                } => match attempt.as_mut().poll(cx) {
                    Poll::Pending => {
                        self.state = State::Connecting {
                            client,
                            body,
                            retries,
                            attempt,
                        };
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(response)) => {
                        let meta = ResponseMeta::from_parts(
                            response.status().as_u16(),
                            response.headers(),
                        );
                        let connect = client.timeouts().connect;
                        let bytes = response.bytes_stream().map(move |piece| {
                            piece.map_err(|error| Error::from_reqwest(error, connect))
                        });
                        self.state = State::Reading {
                            body: bytes.boxed(),
                            idle: Box::pin(tokio::time::sleep(self.idle_limit)),
                            ended: false,
                        };
                        return Poll::Ready(Some(Ok(StreamEvent::Connected(meta))));
                    }
                    Poll::Ready(Err(error)) => match retries.plan(&error) {
                        Some(plan) => {
                            self.state = State::Waiting {
                                client,
                                body,
                                retries,
                                sleep: Box::pin(tokio::time::sleep(plan.delay)),
                            };
                            return Poll::Ready(Some(Ok(StreamEvent::Retrying(plan.into()))));
                        }
                        None => return Poll::Ready(Some(Err(error))),
                    },
                },
                State::Waiting {
                    client,
                    body,
                    retries,
                    mut sleep,
                } => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        self.state = State::Waiting {
                            client,
                            body,
                            retries,
                            sleep,
                        };
                        return Poll::Pending;
                    }
                    self.state = State::Start {
                        client,
                        body,
                        retries,
                    };
                }
                State::Failed(error) => return Poll::Ready(Some(Err(error))),
                State::Done => return Poll::Ready(None),
                reading @ State::Reading { .. } => {
                    self.state = reading;
                    return Poll::Ready(None);
                }
            }
        }
    }

    /// [`Stream::poll_next`], with each chunk's `data:` payload handed to
    /// `parse` rather than parsed into a [`CompletionChunk`]: the bus reads
    /// chunks this way, borrowed from the decoder's buffer.
    pub(crate) fn poll_next_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut parse: impl FnMut(&str) -> Result<T, Error>,
    ) -> Poll<Option<Result<Polled<T>, Error>>> {
        if matches!(self.state, State::Reading { .. }) {
            self.poll_body(cx, &mut parse).map_ok(Polled::Chunk)
        } else {
            self.poll_request(cx)
                .map_ok(|event| Polled::Event(Box::new(event)))
        }
    }

    /// Drives the body: decoded events first, then more bytes, then the
    /// idle timer.
    fn poll_body<T>(
        &mut self,
        cx: &mut Context<'_>,
        parse: &mut impl FnMut(&str) -> Result<T, Error>,
    ) -> Poll<Option<Result<T, Error>>> {
        let Self {
            state,
            decoder,
            idle_limit,
        } = self;
        let State::Reading { body, idle, ended } = state else {
            return Poll::Ready(None);
        };
        loop {
            if let Some(event) = decoder.next_event() {
                // `[DONE]` ends the answer; whatever follows is ignored.
                if event.data == "[DONE]" {
                    *state = State::Done;
                    return Poll::Ready(None);
                }
                // Chat streams send unnamed events; a gateway may name an
                // error one.
                if event.event == "error" {
                    *state = State::Done;
                    return Poll::Ready(Some(Err(Error::from_stream_body(event.data.as_bytes()))));
                }
                return match parse(event.data) {
                    Ok(chunk) => Poll::Ready(Some(Ok(chunk))),
                    Err(error) => {
                        *state = State::Done;
                        Poll::Ready(Some(Err(error)))
                    }
                };
            }
            if *ended {
                *state = State::Done;
                return Poll::Ready(Some(Err(Error::Truncated {
                    partial: String::new(),
                })));
            }
            match body.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    decoder.feed(&bytes);
                    idle.as_mut().reset(Instant::now() + *idle_limit);
                }
                Poll::Ready(Some(Err(error))) => {
                    *state = State::Done;
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => {
                    // The body is over: a last event may complete now.
                    decoder.finish();
                    *ended = true;
                }
                Poll::Pending => {
                    ready!(idle.as_mut().poll(cx));
                    *state = State::Done;
                    return Poll::Ready(Some(Err(Error::Timeout {
                        phase: TimeoutPhase::Idle,
                        limit: *idle_limit,
                        partial: String::new(),
                    })));
                }
            }
        }
    }
}

/// Parses one `data:` payload as a chunk. An error object sent in place of
/// a chunk becomes an [`Error::Api`].
fn parse_chunk(data: &str) -> Result<CompletionChunk, Error> {
    let chunk: CompletionChunk = serde_json::from_str(data).map_err(|source| Error::Decode {
        source,
        partial: String::new(),
    })?;
    if chunk.object == "error" || chunk.error.is_some() {
        return Err(Error::from_stream_body(data.as_bytes()));
    }
    Ok(chunk)
}

impl Stream for ChatStream {
    type Item = Result<StreamEvent, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_next_with(cx, parse_chunk)
            .map_ok(|polled| match polled {
                Polled::Event(event) => *event,
                Polled::Chunk(chunk) => StreamEvent::Chunk(chunk),
            })
    }
}
