//! The streamed body: Mistral's SSE framing, generated lazily.
//!
//! [`SseBody`] is a state machine that writes events as it is polled, so a
//! 100,000-token answer costs a few generator states, not 100,000 strings.
//! Without a chunk delay it packs many events into one frame of about
//! [`FRAME_TARGET`] bytes. A stalled body is a stream that returns `Pending`
//! until shutdown: it owns no task and no timer.
//!
//! [`Guarded`] wraps any body with the stream counters and the shutdown
//! signal, so a graceful shutdown is not held up by stalled bodies.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use super::answer::{SplitMix, TokenSource};
use super::fault::Ending;
use super::record::StreamGuard;

/// Formats into a `BytesMut`, whose `fmt::Write` cannot fail.
macro_rules! put_fmt {
    ($out:expr, $($arg:tt)*) => {{
        let _ = std::fmt::Write::write_fmt($out, format_args!($($arg)*));
    }};
}

/// Events are packed into frames of about this many bytes when no chunk
/// delay is set.
pub(crate) const FRAME_TARGET: usize = 16 * 1024;

/// The longest `p` padding, in letters.
const MAX_PADDING: u64 = 26;

/// The event sent in place of a chunk by a malformed-after fault: its JSON
/// stops in the middle of an object.
const MALFORMED_EVENT: &[u8] = b"data: {\"id\":\"x\",\"choices\":[{\"delta\":\n\n";

const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// Writes `text` as a JSON string, quotes included.
pub(crate) fn put_json_str(out: &mut BytesMut, text: &str) {
    out.put_u8(b'"');
    let mut start = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.put_slice(&text.as_bytes()[start..at]);
        if escape.is_empty() {
            out.put_slice(format!("\\u{byte:04x}").as_bytes());
        } else {
            out.put_slice(escape);
        }
        start = at + 1;
    }
    out.put_slice(&text.as_bytes()[start..]);
    out.put_u8(b'"');
}

/// What every chunk of one response shares.
#[derive(Debug, Clone)]
pub(crate) struct ChunkHeader {
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[`
    opening: Bytes,
}

impl ChunkHeader {
    pub(crate) fn new(id: &str, created: u64, model: &str) -> Self {
        let mut opening = BytesMut::new();
        opening.put_slice(b"data: {\"id\":");
        put_json_str(&mut opening, id);
        opening.put_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        opening.put_slice(created.to_string().as_bytes());
        opening.put_slice(b",\"model\":");
        put_json_str(&mut opening, model);
        opening.put_slice(b",\"choices\":[");
        Self {
            opening: opening.freeze(),
        }
    }
}

/// A tool call answered in one chunk.
#[derive(Debug, Clone)]
pub(crate) struct StreamToolCall {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: String,
}

/// What the body sends: text choices, or one tool call.
#[derive(Debug)]
pub(crate) enum StreamContent {
    Text(Vec<TokenSource>),
    Tool(StreamToolCall),
}

/// Everything an [`SseBody`] needs to know up front.
#[derive(Debug)]
pub(crate) struct SsePlan {
    pub(crate) header: ChunkHeader,
    pub(crate) content: StreamContent,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    /// Generator of padding lengths; `None` sends no `p` field.
    pub(crate) padding: Option<SplitMix>,
    pub(crate) chunk_delay: Duration,
    pub(crate) ending: Option<Ending>,
}

/// Where the body is in its event sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Role,
    Content,
    Final,
    Done,
    /// The body ends cleanly.
    Over,
    /// Abort the connection, once what was written is flushed.
    Cut {
        flushed: bool,
    },
    /// Send nothing more.
    Stalled,
}

/// A streamed chat completion body.
#[derive(Debug)]
pub(crate) struct SseBody {
    plan: SsePlan,
    phase: Phase,
    content_sent: usize,
    events_sent: usize,
    /// Armed between two delayed events.
    sleep: Option<Pin<Box<Sleep>>>,
    token: String,
}

impl SseBody {
    pub(crate) fn new(plan: SsePlan) -> Self {
        Self {
            plan,
            phase: Phase::Role,
            content_sent: 0,
            events_sent: 0,
            sleep: None,
            token: String::new(),
        }
    }

    /// Appends the next event to `out`; false when the phase allows none.
    fn write_event(&mut self, out: &mut BytesMut) -> bool {
        match self.phase {
            Phase::Role => {
                self.write_role(out);
                self.phase = Phase::Content;
            }
            Phase::Content => return self.write_content(out),
            Phase::Final => {
                let wrote = self.write_final(out);
                self.phase = match self.plan.ending {
                    Some(Ending::NoDone) => Phase::Over,
                    _ => Phase::Done,
                };
                if !wrote {
                    return self.write_event(out);
                }
            }
            Phase::Done => {
                out.put_slice(DONE_EVENT);
                self.phase = Phase::Over;
            }
            Phase::Over | Phase::Cut { .. } | Phase::Stalled => return false,
        }
        self.events_sent += 1;
        true
    }

    fn write_content(&mut self, out: &mut BytesMut) -> bool {
        // A fault count reached, or content run out before the count: the
        // fault takes the place of the final chunk.
        let exhausted = self.content_exhausted();
        let sent = self.content_sent;
        let fault_due = move |count: usize| exhausted || count == sent;
        match self.plan.ending {
            Some(Ending::Cut(count)) if fault_due(count) => {
                self.phase = Phase::Cut { flushed: false };
                return false;
            }
            Some(Ending::Stall(count)) if fault_due(count) => {
                self.phase = Phase::Stalled;
                return false;
            }
            Some(Ending::Malformed(count)) if fault_due(count) => {
                out.put_slice(MALFORMED_EVENT);
                self.phase = Phase::Done;
                self.events_sent += 1;
                return true;
            }
            _ => {}
        }
        if exhausted {
            self.phase = Phase::Final;
            return self.write_event(out);
        }
        match &mut self.plan.content {
            StreamContent::Text(_) => self.write_text_chunk(out),
            StreamContent::Tool(_) => self.write_tool_chunk(out),
        }
        self.content_sent += 1;
        self.events_sent += 1;
        true
    }

    fn content_exhausted(&self) -> bool {
        match &self.plan.content {
            StreamContent::Text(choices) => choices.iter().all(|choice| choice.len() == 0),
            // The tool call is the one content chunk; it carries the finish.
            StreamContent::Tool(_) => self.content_sent > 0,
        }
    }

    fn write_role(&mut self, out: &mut BytesMut) {
        out.put_slice(&self.plan.header.opening);
        for index in 0..self.choice_count() {
            if index > 0 {
                out.put_u8(b',');
            }
            put_fmt!(out, "{{\"index\":{index},\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}");
        }
        // The role chunk carries no padding, like Mistral's.
        self.close_chunk(out, false, false);
    }

    fn write_text_chunk(&mut self, out: &mut BytesMut) {
        let StreamContent::Text(choices) = &mut self.plan.content else {
            return;
        };
        out.put_slice(&self.plan.header.opening);
        let mut first = true;
        for (index, choice) in choices.iter_mut().enumerate() {
            if !choice.next_into(&mut self.token) {
                continue;
            }
            if !first {
                out.put_u8(b',');
            }
            first = false;
            put_fmt!(out, "{{\"index\":{index},\"delta\":{{\"content\":");
            put_json_str(out, &self.token);
            out.put_slice(b"},\"finish_reason\":null}");
        }
        self.close_chunk(out, false, true);
    }

    /// Mistral's own models send a whole call in one chunk: `content` null,
    /// no `index` or `type`, with the finish reason and usage.
    fn write_tool_chunk(&mut self, out: &mut BytesMut) {
        let StreamContent::Tool(call) = &self.plan.content else {
            return;
        };
        out.put_slice(&self.plan.header.opening);
        out.put_slice(b"{\"index\":0,\"delta\":{\"content\":null,\"tool_calls\":[{\"id\":");
        put_json_str(out, &call.id);
        out.put_slice(b",\"function\":{\"name\":");
        put_json_str(out, &call.name);
        out.put_slice(b",\"arguments\":");
        put_json_str(out, &call.arguments);
        out.put_slice(b"}}]},\"finish_reason\":\"tool_calls\"}");
        self.close_chunk(out, true, true);
    }

    /// Writes the chunk with the finish reasons and usage; false for a tool
    /// call, whose one chunk already carried them.
    fn write_final(&mut self, out: &mut BytesMut) -> bool {
        let StreamContent::Text(choices) = &self.plan.content else {
            return false;
        };
        out.put_slice(&self.plan.header.opening);
        for (index, choice) in choices.iter().enumerate() {
            if index > 0 {
                out.put_u8(b',');
            }
            let finish = choice.finish().as_str();
            put_fmt!(out, "{{\"index\":{index},\"delta\":{{\"content\":\"\"}},\"finish_reason\":\"{finish}\"}}");
        }
        self.close_chunk(out, true, true);
        true
    }

    /// Ends the `choices` array and the chunk, adding usage and padding.
    fn close_chunk(&mut self, out: &mut BytesMut, usage: bool, padding: bool) {
        out.put_u8(b']');
        if usage {
            let prompt = self.plan.prompt_tokens;
            let completion = self.plan.completion_tokens;
            let total = prompt + completion;
            put_fmt!(out, ",\"usage\":{{\"prompt_tokens\":{prompt},\"total_tokens\":{total},\"completion_tokens\":{completion}}}");
        }
        if padding {
            if let Some(rng) = &mut self.plan.padding {
                let length = 1 + rng.below(MAX_PADDING) as usize;
                out.put_slice(b",\"p\":\"");
                out.put_slice(&b"abcdefghijklmnopqrstuvwxyz"[..length]);
                out.put_u8(b'"');
            }
        }
        out.put_slice(b"}\n\n");
    }

    fn choice_count(&self) -> usize {
        match &self.plan.content {
            StreamContent::Text(choices) => choices.len().max(1),
            StreamContent::Tool(_) => 1,
        }
    }

    /// Waits out the chunk delay before every event but the first.
    fn poll_delay(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let delay = self.plan.chunk_delay;
        if delay.is_zero() || self.events_sent == 0 {
            return Poll::Ready(());
        }
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Re-arm for the next event.
        sleep.as_mut().reset(Instant::now() + delay);
        Poll::Ready(())
    }
}

impl Stream for SseBody {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.phase {
            Phase::Over => return Poll::Ready(None),
            Phase::Stalled => return Poll::Pending,
            Phase::Cut { flushed: false } => {
                // Yield once so the connection flushes the chunks already
                // written; only then fail the body, which aborts it.
                this.phase = Phase::Cut { flushed: true };
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Phase::Cut { flushed: true } => {
                this.phase = Phase::Over;
                return Poll::Ready(Some(Err(io::Error::other("simulated connection cut"))));
            }
            _ => {}
        }
        if this.poll_delay(cx).is_pending() {
            return Poll::Pending;
        }
        let mut out = BytesMut::with_capacity(if this.plan.chunk_delay.is_zero() {
            FRAME_TARGET + 512
        } else {
            512
        });
        // With a delay, one event per frame; without, pack a frame.
        let batch = this.plan.chunk_delay.is_zero();
        while this.write_event(&mut out) && batch && out.len() < FRAME_TARGET {}
        if out.is_empty() {
            // The phase changed to an ending without writing; act on it.
            return Pin::new(this).poll_next(cx);
        }
        Poll::Ready(Some(Ok(out.freeze())))
    }
}

/// A future that resolves when the simulator shuts down.
pub(crate) type ShutdownSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Wraps a body with the shutdown signal and, for streams, the counters.
pub(crate) struct Guarded<S> {
    inner: S,
    shutdown: ShutdownSignal,
    guard: Option<StreamGuard>,
    ended: bool,
}

impl<S> std::fmt::Debug for Guarded<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("guard", &self.guard)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S, shutdown: ShutdownSignal, guard: Option<StreamGuard>) -> Self {
        Self {
            inner,
            shutdown,
            guard,
            ended: false,
        }
    }

    /// The server ended the body; dropping it is no longer a client leaving.
    fn end(&mut self) {
        self.ended = true;
        if let Some(guard) = &mut self.guard {
            guard.finish();
        }
    }
}

impl<S> Stream for Guarded<S>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if this.shutdown.as_mut().poll(cx).is_ready() {
            this.end();
            return Poll::Ready(Some(Err(io::Error::other("simulator shutting down"))));
        }
        let item = Pin::new(&mut this.inner).poll_next(cx);
        if matches!(item, Poll::Ready(None | Some(Err(_)))) {
            this.end();
        }
        item
    }
}
