//! Conformance tests for `mistral_events::sse::SseDecoder`.
//!
//! Every table case is decoded several ways — whole, in the listed pieces,
//! split in two at every byte boundary, one byte at a time (draining after
//! each byte, and only at the end) — and every way must give the same events
//! and the same final decoder state.

use std::time::Duration;

use mistral_events::sse::{SseDecoder, SseEvent};

/// One conformance case.
struct Case {
    name: &'static str,
    input: &'static [u8],
    /// Extra chunking to try, besides the generic ones.
    pieces: &'static [&'static [u8]],
    /// Expected `(event, data, id)` triples, in order.
    events: &'static [(&'static str, &'static str, &'static str)],
    /// Expected `last_event_id()` at the end, when the case pins it.
    last_event_id: Option<&'static str>,
    /// Expected `reconnection_time()` in milliseconds at the end.
    retry_ms: Option<u64>,
}

const BASE: Case = Case {
    name: "",
    input: b"",
    pieces: &[],
    events: &[],
    last_event_id: None,
    retry_ms: None,
};

/// `str::as_bytes`, short enough for table rows.
const fn s(text: &'static str) -> &'static [u8] {
    text.as_bytes()
}

const CASES: &[Case] = &[
    Case {
        name: "01 single data line",
        input: b"data: hello\n\n",
        events: &[("message", "hello", "")],
        ..BASE
    },
    Case {
        name: "02 two data lines join with LF",
        input: b"data: first line\ndata: second line\n\n",
        events: &[("message", "first line\nsecond line", "")],
        ..BASE
    },
    Case {
        name: "03 CR, LF and CRLF line ends",
        input: b"data: one\r\rdata: two\n\ndata: three\r\n\r\n",
        events: &[
            ("message", "one", ""),
            ("message", "two", ""),
            ("message", "three", ""),
        ],
        ..BASE
    },
    Case {
        name: "04 only one leading space is stripped",
        input: b"data:\ttab kept\rdata: \ndata:  two spaces\n\n",
        events: &[("message", "\ttab kept\n\n two spaces", "")],
        ..BASE
    },
    Case {
        name: "05 empty data values",
        input: b"data:\n\ndata\ndata\n\ndata:end\n\n",
        events: &[
            ("message", "", ""),
            ("message", "\n", ""),
            ("message", "end", ""),
        ],
        ..BASE
    },
    Case {
        name: "06 unknown fields and comments are ignored",
        input: b"data:alpha\n data\ndata\nfoo:bar\njustsometext\n:a comment\ndata:omega\n\n",
        events: &[("message", "alpha\n\nomega", "")],
        ..BASE
    },
    Case {
        name: "07 NUL in data is kept",
        input: b"data:\0\n\n",
        events: &[("message", "\0", "")],
        ..BASE
    },
    Case {
        name: "08 only the first colon splits",
        input: b"data: key: value: more\n\n",
        events: &[("message", "key: value: more", "")],
        ..BASE
    },
    Case {
        name: "09 event type applies to one event",
        input: b"event: add\ndata: 73\n\ndata: 74\n\n",
        events: &[("add", "73", ""), ("message", "74", "")],
        ..BASE
    },
    Case {
        name: "10 empty event type means message",
        input: b"event: \ndata: x\n\n",
        events: &[("message", "x", "")],
        ..BASE
    },
    Case {
        name: "11 event type of a data-less block is reset",
        input: b"event: ping\n\ndata: x\n\n",
        events: &[("message", "x", "")],
        ..BASE
    },
    Case {
        name: "12 id persists across events",
        input: b"id: 1\ndata: a\n\ndata: b\n\n",
        events: &[("message", "a", "1"), ("message", "b", "1")],
        last_event_id: Some("1"),
        ..BASE
    },
    Case {
        name: "13 id is replaced",
        input: b"id: 1\ndata: a\n\nid: 2\ndata: b\n\ndata: c\n\n",
        events: &[
            ("message", "a", "1"),
            ("message", "b", "2"),
            ("message", "c", "2"),
        ],
        last_event_id: Some("2"),
        ..BASE
    },
    Case {
        name: "14 bare id resets the id",
        input: b"id: 1\ndata: a\n\nid\ndata: b\n\ndata: c\n\n",
        events: &[
            ("message", "a", "1"),
            ("message", "b", ""),
            ("message", "c", ""),
        ],
        last_event_id: Some(""),
        ..BASE
    },
    Case {
        name: "15 id-only block still sets the last event id",
        input: b"id: 5\n\ndata: a\n\n",
        events: &[("message", "a", "5")],
        last_event_id: Some("5"),
        ..BASE
    },
    Case {
        name: "16 id after data in the same block",
        input: b"data: a\nid: 9\n\n",
        events: &[("message", "a", "9")],
        last_event_id: Some("9"),
        ..BASE
    },
    Case {
        name: "17 id of an undispatched block does not count",
        input: b"data: first\n\nid: later\ndata: second\n",
        events: &[("message", "first", "")],
        last_event_id: Some(""),
        ..BASE
    },
    Case {
        name: "18 only a leading BOM is stripped",
        input: s("\u{feff}data: a\n\n\u{feff}data: b\n\ndata: c\n\n"),
        events: &[("message", "a", ""), ("message", "c", "")],
        ..BASE
    },
    Case {
        name: "19 extra blank lines",
        input: b"\n\n\ndata: a\n\n\n\ndata: b\n\n",
        events: &[("message", "a", ""), ("message", "b", "")],
        ..BASE
    },
    Case {
        name: "20 comments only",
        input: b": keep-alive\n\n: ping\n\n",
        events: &[],
        ..BASE
    },
    Case {
        name: "21 multibyte UTF-8",
        input: s("data: ok… café 😀\n\n"),
        events: &[("message", "ok… café 😀", "")],
        ..BASE
    },
    Case {
        name: "22 listed pieces",
        input: b"data: hello world\n\n",
        pieces: &[b"da", b"ta: hel", b"lo world\n", b"\n"],
        events: &[("message", "hello world", "")],
        ..BASE
    },
    Case {
        name: "23 Mistral chunk then [DONE]",
        input: b"data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n",
        events: &[
            (
                "message",
                "{\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}",
                "",
            ),
            ("message", "[DONE]", ""),
        ],
        ..BASE
    },
    // --- Our own cases. ---
    Case {
        name: "retry sets the reconnection time",
        input: b"retry: 1500\ndata: x\n\n",
        events: &[("message", "x", "")],
        retry_ms: Some(1500),
        ..BASE
    },
    Case {
        name: "invalid retry values are ignored",
        input: b"retry: 15x\nretry:\nretry: -1\nretry: 1 \ndata: x\n\n",
        events: &[("message", "x", "")],
        retry_ms: None,
        ..BASE
    },
    Case {
        name: "an invalid retry keeps the earlier one",
        input: b"retry: 250\nretry: 3s\n\n",
        retry_ms: Some(250),
        ..BASE
    },
    Case {
        name: "id containing NUL is ignored",
        input: b"id: 1\n\nid: a\0b\ndata: x\n\n",
        events: &[("message", "x", "1")],
        last_event_id: Some("1"),
        ..BASE
    },
    Case {
        name: "lone CR at end of input ends the blank line",
        input: b"data: x\r\r",
        events: &[("message", "x", "")],
        ..BASE
    },
    Case {
        name: "one lone CR at end of input is not a blank line",
        input: b"data: x\r",
        events: &[],
        ..BASE
    },
    Case {
        name: "unterminated last line is dropped",
        input: b"data: a\n\ndata: b\n\ndata: c",
        events: &[("message", "a", ""), ("message", "b", "")],
        ..BASE
    },
    Case {
        name: "terminated id without dispatch at end of input",
        input: b"id: 1\ndata: a\n\nid: 7\r",
        events: &[("message", "a", "1")],
        last_event_id: Some("1"),
        ..BASE
    },
    Case {
        name: "id-only block at end of input",
        input: b"id: 7\r\r",
        last_event_id: Some("7"),
        ..BASE
    },
    Case {
        name: "CRLF split across pieces is one line end",
        input: b"data: a\r\n\r\n",
        pieces: &[b"data: a\r", b"\n\r\n"],
        events: &[("message", "a", "")],
        ..BASE
    },
    Case {
        name: "CRLF inside an event block is one line end",
        input: b"data: a\r\ndata: b\r\n\r\n",
        pieces: &[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"],
        events: &[("message", "a\nb", "")],
        ..BASE
    },
    Case {
        name: "CR line ends inside an event block",
        input: b"event: e\rdata: a\rdata: b\r\rdata: c\r\r",
        events: &[("e", "a\nb", ""), ("message", "c", "")],
        ..BASE
    },
    Case {
        name: "LF CR is two line ends",
        input: b"data: a\n\rdata: b\r\n\n",
        events: &[("message", "a", ""), ("message", "b", "")],
        ..BASE
    },
    Case {
        name: "invalid UTF-8 becomes U+FFFD",
        input: b"data: a\xffb\n\n",
        events: &[("message", "a\u{FFFD}b", "")],
        ..BASE
    },
    Case {
        name: "invalid UTF-8 does not stall the stream",
        input: b"\xff\xfe\n\xc3\r\ndata: \xe2\x82\n\nevent: \xc0x\ndata: ok\n\n",
        events: &[("message", "\u{FFFD}", ""), ("\u{FFFD}x", "ok", "")],
        ..BASE
    },
    Case {
        name: "truncated BOM is not a BOM",
        input: b"\xef\xbbdata: a\n\ndata: b\n\n",
        events: &[("message", "b", "")],
        ..BASE
    },
    Case {
        name: "double BOM strips only one",
        input: s("\u{feff}\u{feff}data: a\n\ndata: b\n\n"),
        events: &[("message", "b", "")],
        ..BASE
    },
    Case {
        name: "only CR and LF end lines",
        input: s("data: a\u{2028}b\u{2029}c\u{85}d\x0be\x0cf\n\n"),
        events: &[("message", "a\u{2028}b\u{2029}c\u{85}d\x0be\x0cf", "")],
        ..BASE
    },
    Case {
        name: "field names are exact and case-sensitive",
        input: b"Data: x\ndata : y\n data: z\nDATA\n\ndata: ok\n\n",
        events: &[("message", "ok", "")],
        ..BASE
    },
    Case {
        name: "event value keeps inner and extra spaces",
        input: b"event:  two words \ndata: x\n\n",
        events: &[(" two words ", "x", "")],
        ..BASE
    },
    Case {
        name: "last event field wins",
        input: b"event: a\nevent: b\ndata: x\n\n",
        events: &[("b", "x", "")],
        ..BASE
    },
    Case {
        name: "empty input",
        input: b"",
        events: &[],
        last_event_id: Some(""),
        ..BASE
    },
];

/// The outcome of decoding one input: events plus final decoder state.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<SseEvent>,
    last_event_id: String,
    retry: Option<Duration>,
}

/// Feeds `pieces` in order, optionally draining after each one, then
/// finishes and drains.
fn decode<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, drain_each: bool) -> Outcome {
    fn drain(decoder: &mut SseDecoder, events: &mut Vec<SseEvent>) {
        while let Some(event) = decoder.next_event() {
            events.push(event.to_owned());
        }
    }
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece);
        if drain_each {
            drain(&mut decoder, &mut events);
        }
    }
    decoder.finish();
    drain(&mut decoder, &mut events);
    // Once exhausted, the decoder stays exhausted.
    assert!(decoder.next_event().is_none());
    Outcome {
        events,
        last_event_id: decoder.last_event_id().to_owned(),
        retry: decoder.reconnection_time(),
    }
}

/// Decodes `input` every way and asserts each way agrees with the whole-input
/// result, which is returned.
fn decode_every_way(name: &str, input: &[u8], pieces: &[&[u8]]) -> Outcome {
    let whole = decode([input], true);
    if !pieces.is_empty() {
        assert_eq!(
            pieces.concat(),
            input,
            "{name}: pieces must add up to the input"
        );
        assert_eq!(
            decode(pieces.iter().copied(), true),
            whole,
            "{name}: listed pieces"
        );
    }
    for k in 0..=input.len() {
        let (head, tail) = input.split_at(k);
        assert_eq!(
            decode([head, tail], true),
            whole,
            "{name}: split at byte {k}"
        );
    }
    let bytes = || input.chunks(1);
    assert_eq!(decode(bytes(), true), whole, "{name}: one byte at a time");
    assert_eq!(
        decode(bytes(), false),
        whole,
        "{name}: one byte at a time, drained at the end"
    );
    whole
}

fn owned(events: &[(&str, &str, &str)]) -> Vec<SseEvent> {
    events
        .iter()
        .map(|&(event, data, id)| SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.into(),
        })
        .collect()
}

#[test]
fn conformance_table() {
    for case in CASES {
        let outcome = decode_every_way(case.name, case.input, case.pieces);
        assert_eq!(outcome.events, owned(case.events), "{}: events", case.name);
        if let Some(id) = case.last_event_id {
            assert_eq!(outcome.last_event_id, id, "{}: last event id", case.name);
        }
        assert_eq!(
            outcome.retry,
            case.retry_ms.map(Duration::from_millis),
            "{}: reconnection time",
            case.name
        );
    }
}

#[test]
fn lone_trailing_cr_dispatches_once_finished() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"data: x\r\r");
    decoder.finish();
    let event = decoder.next_event().expect("one event").to_owned();
    assert_eq!(event.data, "x");
    assert!(decoder.next_event().is_none());

    let mut decoder = SseDecoder::new();
    decoder.feed(b"data: x\r");
    decoder.finish();
    assert!(decoder.next_event().is_none());
}

#[test]
fn cr_is_acted_on_without_waiting_for_more_input() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"data: x\r\r");
    assert_eq!(
        decoder.next_event().map(|e| e.data.to_owned()).as_deref(),
        Some("x")
    );
    // The LF completing the CRLF arrives later and must not add a blank line.
    decoder.feed(b"\ndata: y\r");
    assert!(decoder.next_event().is_none());
    decoder.feed(b"\n\r");
    assert_eq!(
        decoder.next_event().map(|e| e.data.to_owned()).as_deref(),
        Some("y")
    );
}

#[test]
fn crlf_split_across_feeds_is_one_line_end() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"data: a\r");
    assert!(decoder.next_event().is_none());
    decoder.feed(b"\n\r\n");
    assert_eq!(
        decoder.next_event().map(|e| e.data.to_owned()).as_deref(),
        Some("a")
    );
    assert!(decoder.next_event().is_none());
    decoder.finish();
    assert!(decoder.next_event().is_none());
}

#[test]
fn multibyte_char_split_across_feeds_is_intact() {
    let emoji = "😀".as_bytes();
    let mut decoder = SseDecoder::new();
    decoder.feed(b"data: caf\xc3");
    assert!(decoder.next_event().is_none());
    decoder.feed(b"\xa9 ");
    decoder.feed(&emoji[..1]);
    decoder.feed(&emoji[1..3]);
    assert!(decoder.next_event().is_none());
    decoder.feed(&emoji[3..]);
    decoder.feed(b"\n\n");
    assert_eq!(
        decoder.next_event().map(|e| e.data.to_owned()).as_deref(),
        Some("café 😀")
    );
}

#[test]
fn invalid_bytes_then_valid_event() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"\xff\xff\xff");
    assert!(decoder.next_event().is_none());
    decoder.feed(b"\n\x80\x80data: nope\n\n");
    assert!(decoder.next_event().is_none());
    decoder.feed(b"data: fine\n\n");
    assert_eq!(
        decoder.next_event().map(|e| e.data.to_owned()).as_deref(),
        Some("fine")
    );
}

#[test]
fn event_ref_borrows_and_converts() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"event: add\nid: 42\ndata: 1\ndata: 2\n\n");
    let event = decoder.next_event().expect("event");
    assert_eq!((event.event, event.data, event.id), ("add", "1\n2", "42"));
    let owned = event.to_owned();
    assert_eq!(SseEvent::from(event), owned);
    assert_eq!(
        owned,
        SseEvent {
            event: "add".into(),
            data: "1\n2".into(),
            id: "42".into(),
        }
    );
    assert_eq!(decoder.last_event_id(), "42");
    assert!(format!("{decoder:?}").starts_with("SseDecoder"));
}

#[test]
fn default_matches_new() {
    let mut decoder = SseDecoder::default();
    assert_eq!(decoder.last_event_id(), "");
    assert_eq!(decoder.reconnection_time(), None);
    assert!(decoder.next_event().is_none());
}

/// A realistic Mistral streaming body: `count` chunk events then `[DONE]`.
fn mistral_body(count: usize) -> (Vec<u8>, Vec<String>) {
    let mut body = Vec::new();
    let mut expected = Vec::new();
    for n in 0..count {
        let data = format!(
            "{{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1733251200,\
             \"model\":\"mistral-small-latest\",\"choices\":[{{\"index\":0,\
             \"delta\":{{\"content\":\"word {n}\"}},\"finish_reason\":null}}],\"p\":\"abcdef\"}}"
        );
        body.extend_from_slice(b"data: ");
        body.extend_from_slice(data.as_bytes());
        body.extend_from_slice(b"\n\n");
        expected.push(data);
        if n % 100 == 99 {
            body.extend_from_slice(b": keep-alive\n\n");
        }
    }
    body.extend_from_slice(b"data: [DONE]\n\n");
    expected.push("[DONE]".to_owned());
    (body, expected)
}

#[test]
fn large_mistral_stream_in_network_and_byte_pieces() {
    let (body, expected) = mistral_body(1_000);
    for piece_len in [1_500, 1, body.len()] {
        let outcome = decode(body.chunks(piece_len), true);
        assert_eq!(
            outcome.events.len(),
            expected.len(),
            "pieces of {piece_len}"
        );
        for (n, (event, data)) in outcome.events.iter().zip(&expected).enumerate() {
            assert_eq!(event.event, "message", "pieces of {piece_len}, event {n}");
            assert_eq!(&event.data, data, "pieces of {piece_len}, event {n}");
            assert_eq!(event.id, "", "pieces of {piece_len}, event {n}");
        }
    }
}

#[test]
fn large_stream_with_crlf_ends_in_odd_pieces() {
    let (body, expected) = mistral_body(200);
    let mut crlf = Vec::with_capacity(body.len() * 2);
    for &byte in &body {
        if byte == b'\n' {
            crlf.extend_from_slice(b"\r\n");
        } else {
            crlf.push(byte);
        }
    }
    // Piece lengths that keep landing between CR and LF at different points.
    for piece_len in [7, 13, 1_499] {
        let outcome = decode(crlf.chunks(piece_len), true);
        let data: Vec<_> = outcome.events.iter().map(|e| e.data.clone()).collect();
        assert_eq!(data, expected, "pieces of {piece_len}");
    }
}
