//! A Server-Sent Events (`text/event-stream`) decoder.
//!
//! [`SseDecoder`] turns the raw bytes of an HTTP response body into
//! events, following the WHATWG HTML rules for *parsing* and *interpreting*
//! an event stream. It does no I/O: the caller owns the body stream and
//! drives the decoder with three calls.
//!
//! # Model
//!
//! 1. [`SseDecoder::feed`] appends each body chunk exactly as it arrived.
//!    Chunks may split lines, line terminators (`\r` | `\n`) or multibyte
//!    UTF-8 characters anywhere; the result does not depend on where.
//! 2. [`SseDecoder::next_event`] returns the next complete event, borrowed
//!    from the decoder, or `None` when more bytes are needed. Call it in a
//!    loop after every `feed`.
//! 3. [`SseDecoder::finish`] marks the end of the body. Keep calling
//!    `next_event` afterwards to drain events that were already complete.
//!
//! # Lines and fields
//!
//! * A line ends with CRLF, a lone LF or a lone CR; nothing else (not
//!   U+2028, U+0085, VT or FF) ends a line. A CR is acted on as soon as it is
//!   seen, and an LF that immediately follows it — even in a later chunk — is
//!   swallowed as part of the same line end.
//! * One UTF-8 byte order mark at the very start of the stream is dropped.
//!   A BOM anywhere else is ordinary text.
//! * A line starting with `:` is a comment. Otherwise the field name is
//!   everything before the first `:` and the value everything after it, minus
//!   one leading space; a line without `:` is a field name with an empty
//!   value.
//! * `event` sets the event type, `data` appends the value and an LF to the
//!   data buffer, `id` sets the last event ID buffer (ignored if the value
//!   contains NUL), `retry` sets the reconnection time if the value is all
//!   ASCII digits. Other fields are ignored.
//! * A blank line dispatches: the event source's last event ID
//!   ([`SseDecoder::last_event_id`]) is set from the ID buffer; then, if the
//!   data buffer is non-empty, one trailing LF is removed and an event is
//!   produced with type `"message"` unless an `event` field said otherwise.
//!   The data and event type buffers are reset; the ID buffer persists.
//!
//! # End of input
//!
//! After [`SseDecoder::finish`], a final line with no terminator is dropped,
//! and so is an event whose closing blank line never arrived (its `id` lines
//! reached the ID buffer but, with no dispatch, never the event source's last
//! event ID). Because a CR is acted on immediately, a body ending in
//! `"data: x\r\r"` yields its event without waiting for a possible LF.
//!
//! # Invalid UTF-8
//!
//! Each complete line is validated as UTF-8 on its own; invalid sequences
//! become U+FFFD. Invalid bytes never stall or abort decoding, and a
//! character split across chunks is decoded whole because only complete
//! lines are decoded.
//!
//! # Performance
//!
//! * `feed` is one `extend_from_slice` into a pending buffer. The consumed
//!   prefix of that buffer is dropped only when it outweighs the unread rest,
//!   so the copying stays amortised O(1) per byte.
//! * `next_event` searches for line terminators with `memchr2` and remembers
//!   how far it has searched, so one-byte chunks cost a one-byte search each
//!   rather than a rescan of the pending line.
//! * Lines are parsed in place. An event of a single `data` line (every
//!   chunk of a chat stream) borrows its data straight from the pending
//!   buffer, so its bytes are copied once, by `feed`, and validated as
//!   UTF-8 once. Events of several data lines are joined in a data string;
//!   it, the event type and ID strings are cleared and reused rather than
//!   reallocated, so once the buffers have grown to the largest event,
//!   decoding allocates nothing per event. Only lines holding invalid UTF-8
//!   allocate (for the lossy copy).
//!
//! # Example
//!
//! ```
//! use mistral_events::sse::SseDecoder;
//!
//! // A Mistral-style body, arriving in awkwardly split chunks.
//! let chunks: [&[u8]; 4] = [
//!     b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel",
//!     b"lo\"}}]}\r\n\r\n: keep-alive\r\n\r\ndata: {\"choices\":[{\"del",
//!     b"ta\":{\"content\":\"!\"}}]}\n\ndata: [DONE]\n",
//!     b"\n",
//! ];
//!
//! let mut decoder = SseDecoder::new();
//! let mut data = Vec::new();
//! for chunk in chunks {
//!     decoder.feed(chunk);
//!     while let Some(event) = decoder.next_event() {
//!         assert_eq!(event.event, "message");
//!         data.push(event.data.to_owned());
//!     }
//! }
//! // End of body: drain whatever became complete.
//! decoder.finish();
//! while let Some(event) = decoder.next_event() {
//!     data.push(event.data.to_owned());
//! }
//!
//! assert_eq!(
//!     data,
//!     [
//!         r#"{"choices":[{"delta":{"content":"Hello"}}]}"#,
//!         r#"{"choices":[{"delta":{"content":"!"}}]}"#,
//!         "[DONE]",
//!     ]
//! );
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The UTF-8 encoding of U+FEFF, stripped once from the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The event type used when no `event` field named one.
const DEFAULT_EVENT_TYPE: &str = "message";

/// An incremental, allocation-frugal Server-Sent Events decoder.
///
/// See the [module documentation](self) for the protocol rules and the
/// calling pattern.
#[derive(Default)]
pub struct SseDecoder {
    /// Bytes fed but not yet consumed start at `pos`; earlier bytes are
    /// already processed and wait to be compacted away.
    buf: Vec<u8>,
    /// Start of the current (unfinished) line in `buf`.
    pos: usize,
    /// `buf[pos..scanned]` is known to hold no line terminator.
    scanned: usize,
    /// The last line ended with CR, so an LF that comes next belongs to it.
    skip_lf: bool,
    /// Whether the start of the stream has been checked for a BOM.
    bom_checked: bool,
    /// `finish` has been called.
    finished: bool,
    /// The protocol state the lines act on.
    state: State,
}

/// The buffers of the WHATWG event stream interpretation.
#[derive(Default)]
struct State {
    /// The data buffer: each `data` value followed by LF.
    data: String,
    /// A block's first `data` value, while it is the only one, as a range
    /// of the decoder's `buf` (not yet copied into `data`, which stays
    /// empty meanwhile).
    data_line: Option<(usize, usize)>,
    /// The event type buffer; empty means `"message"`.
    event_type: String,
    /// The last event ID buffer, set by `id` lines.
    id_buffer: String,
    /// The event source's last event ID string, copied from `id_buffer` on
    /// every dispatch.
    last_event_id: String,
    /// `id_buffer` was set since the last dispatch.
    id_changed: bool,
    /// The reconnection time set by the latest valid `retry` line.
    retry: Option<Duration>,
    /// An event was handed out from `data`/`event_type`; they must be
    /// cleared before the next line is processed.
    dispatched: bool,
}

impl SseDecoder {
    /// Creates a decoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes from the body.
    ///
    /// Cheap: one buffer append, with no per-byte work or per-byte
    /// allocation. Nothing is parsed until [`next_event`](Self::next_event).
    /// Bytes fed after [`finish`](Self::finish) are ignored.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.finished || bytes.is_empty() {
            return;
        }
        // The caller is done with the last event (this takes `&mut self`);
        // a data line still pending points into `buf`, which may move.
        self.state.clear_dispatched();
        self.state.take_data_line(&self.buf);
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if one is ready.
    ///
    /// The event borrows the decoder's buffers, so the hot path allocates
    /// nothing per event; use [`SseEventRef::to_owned`] to keep it. Returns
    /// `None` when more bytes are needed (or, after
    /// [`finish`](Self::finish), when the stream is exhausted).
    pub fn next_event(&mut self) -> Option<SseEventRef<'_>> {
        self.state.clear_dispatched();
        if !self.bom_checked && !self.check_bom() {
            return None;
        }
        while let Some((start, end)) = self.next_line() {
            if self.state.process_line(&self.buf, start, end) {
                return Some(self.event());
            }
        }
        if self.finished {
            self.discard_pending();
        }
        None
    }

    /// Marks the end of the body.
    ///
    /// Events that are already complete stay available through
    /// [`next_event`](Self::next_event). Beyond them, a last line without a
    /// terminator and an event without its closing blank line are discarded.
    /// A trailing lone CR needs no special care: it was already acted on as a
    /// line end when it was seen.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The last event ID of the event source: the ID in effect at the latest
    /// dispatch (blank line), which is what a reconnect sends as
    /// `Last-Event-ID`. Empty if none was set.
    ///
    /// An `id` line whose event block never ended does not count, and a
    /// block holding only an `id` line still does.
    pub fn last_event_id(&self) -> &str {
        &self.state.last_event_id
    }

    /// The reconnection time requested by the latest valid `retry` field,
    /// if any.
    pub fn reconnection_time(&self) -> Option<Duration> {
        self.state.retry
    }

    /// Strips a leading BOM once enough bytes have arrived to tell.
    ///
    /// Returns `false` while the pending bytes are still a proper prefix of
    /// the BOM (such bytes cannot hold a line yet anyway).
    fn check_bom(&mut self) -> bool {
        let pending = &self.buf[self.pos..];
        if pending.len() < BOM.len() && BOM.starts_with(pending) && !self.finished {
            return false;
        }
        if pending.starts_with(BOM) {
            self.pos += BOM.len();
            self.scanned = self.pos;
        }
        self.bom_checked = true;
        true
    }

    /// Consumes the next complete line, returning its bounds in `buf`
    /// without the terminator.
    fn next_line(&mut self) -> Option<(usize, usize)> {
        // The LF of a CRLF may arrive in a later chunk than its CR.
        if self.skip_lf && self.pos < self.buf.len() {
            self.skip_lf = false;
            if self.buf[self.pos] == b'\n' {
                self.pos += 1;
                self.scanned = self.pos;
            }
        }
        let Some(offset) = memchr::memchr2(b'\n', b'\r', &self.buf[self.scanned..]) else {
            self.scanned = self.buf.len();
            return None;
        };
        let (start, end) = (self.pos, self.scanned + offset);
        // Act on a CR right away rather than waiting to see whether an LF
        // follows; `skip_lf` takes care of the LF if it does.
        self.skip_lf = self.buf[end] == b'\r';
        self.pos = end + 1;
        self.scanned = self.pos;
        Some((start, end))
    }

    /// End of input: drops the unterminated last line and the incomplete
    /// event.
    fn discard_pending(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.scanned = 0;
        self.state.data.clear();
        self.state.data_line = None;
        self.state.event_type.clear();
    }

    /// The event just dispatched, borrowed from the buffers.
    ///
    /// An event of one `data` line borrows it from `buf`, where it is
    /// validated as UTF-8 here, once; a line that is not valid is copied
    /// with U+FFFD replacements instead.
    fn event(&mut self) -> SseEventRef<'_> {
        let state = &mut self.state;
        let data: &str = match state.data_line {
            Some((start, end)) => match std::str::from_utf8(&self.buf[start..end]) {
                Ok(text) => text,
                Err(_) => {
                    state.data = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
                    state.data_line = None;
                    &state.data
                }
            },
            None => &state.data,
        };
        SseEventRef {
            event: if state.event_type.is_empty() {
                DEFAULT_EVENT_TYPE
            } else {
                &state.event_type
            },
            data,
            id: &state.last_event_id,
        }
    }

    /// Drops the consumed prefix of `buf` when that is cheap enough to be
    /// amortised: always when everything was consumed, and otherwise only
    /// when the consumed part outweighs the part still to be read.
    fn compact(&mut self) {
        if self.pos == 0 {
            return;
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
        } else if self.pos >= self.buf.len() - self.pos {
            self.buf.drain(..self.pos);
        } else {
            return;
        }
        self.scanned -= self.pos;
        self.pos = 0;
    }
}

impl fmt::Debug for SseDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseDecoder")
            .field("pending_bytes", &(self.buf.len() - self.pos))
            .field("event_type", &self.state.event_type)
            .field("data", &self.state.data)
            .field("id_buffer", &self.state.id_buffer)
            .field("last_event_id", &self.state.last_event_id)
            .field("reconnection_time", &self.state.retry)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Resets the buffers an event was borrowed from, once the caller is
    /// done with it.
    fn clear_dispatched(&mut self) {
        if self.dispatched {
            self.dispatched = false;
            self.data.clear();
            self.data_line = None;
            self.event_type.clear();
        }
    }

    /// Moves a pending single data line out of `buf` into the data buffer
    /// (as a `data` line normally lands there: the value and an LF).
    fn take_data_line(&mut self, buf: &[u8]) {
        if let Some((start, end)) = self.data_line.take() {
            self.data.push_str(&decode(&buf[start..end]));
            self.data.push('\n');
        }
    }

    /// Applies one line (terminator removed). Returns `true` when it
    /// dispatched an event, which [`State::event`] then describes.
    fn process_line(&mut self, buf: &[u8], start: usize, end: usize) -> bool {
        let line = &buf[start..end];
        if line.is_empty() {
            return self.dispatch();
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) => return false, // comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            // The first data line of a block is only noted, as a range of
            // `buf`: an event of one line (every chunk of a chat stream) is
            // then handed out without a copy. A second line joins the
            // buffer as usual.
            b"data" if self.data.is_empty() && self.data_line.is_none() => {
                let value_start = end - value.len();
                self.data_line = Some((value_start, end));
            }
            b"data" => {
                self.take_data_line(buf);
                self.data.push_str(&decode(value));
                self.data.push('\n');
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.push_str(&decode(value));
            }
            // An ID containing NUL is ignored outright.
            b"id" if !value.contains(&0) => {
                self.id_buffer.clear();
                self.id_buffer.push_str(&decode(value));
                self.id_changed = true;
            }
            b"retry" => {
                if let Some(millis) = parse_digits(value) {
                    self.retry = Some(Duration::from_millis(millis));
                }
            }
            _ => {}
        }
        false
    }

    /// The blank-line step. The event source's last event ID is updated
    /// *before* the empty-data check, so an `id`-only block still moves it.
    fn dispatch(&mut self) -> bool {
        // Only an `id` line changes the ID buffer, so a flag stands in for
        // comparing the two strings on every event (a `memcmp` call even
        // when both are empty, as they are in every Mistral stream).
        if self.id_changed {
            self.id_changed = false;
            self.last_event_id.clone_from(&self.id_buffer);
        }
        if self.data_line.is_some() {
            // One data line, kept in `buf`: no LF was added for it.
            self.dispatched = true;
            return true;
        }
        if self.data.is_empty() {
            self.event_type.clear();
            return false;
        }
        // Every data line appended an LF; the last one is not part of the
        // event.
        self.data.pop();
        self.dispatched = true;
        true
    }
}

/// Decodes a field value, replacing invalid UTF-8 with U+FFFD. Borrows in
/// the (overwhelmingly common) valid case.
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Parses a non-empty run of ASCII digits as base ten, saturating on
/// overflow; `None` if anything else is present.
fn parse_digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0u64, |acc, &digit| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    }))
}

/// A decoded event, borrowed from the [`SseDecoder`] that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEventRef<'a> {
    /// The event type: the last `event` field of the block, or `"message"`
    /// when there was none (or it was empty).
    pub event: &'a str,
    /// The `data` lines of the block joined with LF.
    pub data: &'a str,
    /// The last event ID in effect when the event was dispatched (empty if
    /// none).
    pub id: &'a str,
}

impl SseEventRef<'_> {
    /// Copies the event into an owned [`SseEvent`].
    pub fn to_owned(&self) -> SseEvent {
        SseEvent {
            event: self.event.to_owned(),
            data: self.data.to_owned(),
            id: self.id.to_owned(),
        }
    }
}

impl From<SseEventRef<'_>> for SseEvent {
    fn from(event: SseEventRef<'_>) -> Self {
        event.to_owned()
    }
}

/// An owned decoded event; see [`SseEventRef`] for the meaning of the
/// fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`"message"` unless the stream named another).
    pub event: String,
    /// The `data` lines joined with LF.
    pub data: String,
    /// The last event ID in effect at dispatch.
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        decoder.feed(input);
        decoder.finish();
        let mut events = Vec::new();
        while let Some(event) = decoder.next_event() {
            events.push(event.to_owned());
        }
        events
    }

    #[test]
    fn parse_digits_accepts_only_digits() {
        assert_eq!(parse_digits(b"0"), Some(0));
        assert_eq!(parse_digits(b"1500"), Some(1500));
        assert_eq!(parse_digits(b"99999999999999999999999"), Some(u64::MAX));
        assert_eq!(parse_digits(b""), None);
        assert_eq!(parse_digits(b" 1"), None);
        assert_eq!(parse_digits(b"-1"), None);
        assert_eq!(parse_digits(b"1.5"), None);
    }

    #[test]
    fn compaction_keeps_unread_bytes() {
        let mut decoder = SseDecoder::new();
        decoder.feed(b"data: a\n\ndata: b");
        assert_eq!(
            decoder.next_event().map(|e| e.data.to_owned()),
            Some("a".into())
        );
        assert!(decoder.next_event().is_none());
        // The consumed "data: a\n\n" outweighs the unread "data: b".
        decoder.feed(b"c\n\n");
        assert_eq!(decoder.pos, 0);
        assert_eq!(
            decoder.next_event().map(|e| e.data.to_owned()),
            Some("bc".into())
        );
    }

    #[test]
    fn a_lone_data_line_is_borrowed_and_survives_a_feed() {
        let mut decoder = SseDecoder::new();
        decoder.feed(b"data: one\n\ndata: a");
        assert_eq!(
            decoder.next_event().map(|e| e.data.to_owned()).as_deref(),
            Some("one")
        );
        assert!(
            decoder.state.data.is_empty(),
            "no copy for a one-line event"
        );
        assert!(decoder.next_event().is_none());
        // The pending line moves into the buffer before `buf` is compacted.
        decoder.feed(b"\ndata: b\n");
        assert!(decoder.next_event().is_none());
        decoder.feed(b"\ndata: \xffc\n\n");
        let data = |decoder: &mut SseDecoder| decoder.next_event().map(|e| e.data.to_owned());
        assert_eq!(data(&mut decoder).as_deref(), Some("a\nb"));
        assert_eq!(data(&mut decoder).as_deref(), Some("\u{fffd}c"));
    }

    #[test]
    fn buffers_are_reused_across_events() {
        let mut decoder = SseDecoder::new();
        decoder.feed(b"event: e\ndata: 0123456789\n\n");
        assert!(decoder.next_event().is_some());
        let capacity = (decoder.state.data.capacity(), decoder.buf.capacity());
        for _ in 0..100 {
            decoder.feed(b"event: e\ndata: 0123456789\n\n");
            let event = decoder.next_event().expect("event");
            assert_eq!((event.event, event.data), ("e", "0123456789"));
        }
        assert_eq!(
            (decoder.state.data.capacity(), decoder.buf.capacity()),
            capacity
        );
    }

    #[test]
    fn partial_bom_at_end_of_input_is_not_a_line() {
        assert!(decode_all(b"\xEF\xBB").is_empty());
        assert_eq!(decode_all(b"\xEF\n\n").len(), 0);
    }

    #[test]
    fn compaction_waits_while_the_unread_part_is_larger() {
        let mut decoder = SseDecoder::new();
        decoder.feed(b"\ndata: long pending line");
        assert!(decoder.next_event().is_none());
        decoder.feed(b"...");
        assert_eq!(decoder.pos, 1);
        assert_eq!(decoder.scanned, decoder.buf.len() - 3);
    }

    #[test]
    fn finish_releases_the_incomplete_event() {
        let mut decoder = SseDecoder::new();
        decoder.feed(b"event: e\ndata: a\ndata: partial");
        decoder.finish();
        assert!(decoder.next_event().is_none());
        assert!(decoder.state.data.is_empty() && decoder.state.event_type.is_empty());
        assert!(decoder.buf.is_empty());
    }

    #[test]
    fn feed_after_finish_is_ignored() {
        let mut decoder = SseDecoder::new();
        decoder.finish();
        decoder.feed(b"data: x\n\n");
        assert!(decoder.next_event().is_none());
    }

    #[test]
    fn debug_does_not_dump_raw_bytes() {
        let mut decoder = SseDecoder::new();
        decoder.feed(b"data: x");
        let text = format!("{decoder:?}");
        assert!(text.contains("pending_bytes: 7"), "{text}");
    }
}
