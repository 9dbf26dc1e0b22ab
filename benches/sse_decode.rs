//! SSE decoding throughput: our `SseDecoder` against `eventsource-stream`.
//!
//! **Input.** A Mistral chat stream built here: `data: {…}` events shaped
//! exactly like the API's chunks (a 32-hex id, `object`, `created`, `model`,
//! one choice whose delta holds a word, `finish_reason: null`, and the `p`
//! padding field of 1 to 26 letters), each followed by a blank line, and a
//! final `data: [DONE]`. It is cut into `Bytes` pieces the way a socket
//! delivers them: 1,460 bytes (one TCP segment), 16 KiB (one large read),
//! and one byte at a time (the worst case for any incremental decoder).
//! Each piece is its own allocation, as a network read would be.
//!
//! **What each side does, per run**, both inside one tokio current-thread
//! runtime `block_on`, both consuming a `futures_util::stream::iter` over
//! the pieces (so the stream-polling cost is the same on both sides):
//!
//! - `eventsource-stream`: `.eventsource()` on the stream, then every
//!   event's `data: String` is handed to `black_box`. The crate yields an
//!   owned `Event` (data, event type and id strings) per event.
//! - `ours_owned`: for each piece `SseDecoder::feed`, then `next_event`
//!   until `None`, and each event's data copied into an owned `String`
//!   handed to `black_box`: the same output as the baseline.
//! - `ours_borrowed`: the same loop, handing the borrowed `&str` to
//!   `black_box`; this is what `ChatStream` does (it parses the JSON straight
//!   from the borrowed data).
//!
//! Every side must produce the same number of events and the same data
//! bytes; this is checked once, outside timing. Throughput is in bytes of
//! SSE input per second of the bench thread's CPU time
//! (`Throughput::Bytes`; see `support/cpu.rs`), where all the work runs.
//!
//! Run: `cargo bench --bench sse_decode` (about 35 s).

use std::convert::Infallible;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use eventsource_stream::Eventsource;
use futures_util::stream::{self, StreamExt};
use mistral_events::sse::SseDecoder;

#[allow(dead_code)]
#[path = "support/cpu.rs"]
mod cpu;
use cpu::ThreadCpu;

/// Words for the deltas, as short as real tokens.
const WORDS: [&str; 12] = [
    "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".", " It",
    " was",
];

/// A Mistral-shaped SSE body of `chunks` content events and `[DONE]`.
fn mistral_body(chunks: usize) -> Vec<u8> {
    let mut body = String::new();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        // xorshift64: deterministic, cheap.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let id = format!("{:016x}{:016x}", next(), next());
    for index in 0..chunks {
        let word = WORDS[index % WORDS.len()];
        let padding = &"abcdefghijklmnopqrstuvwxyz"[..1 + (next() % 26) as usize];
        let _ = write!(
            body,
            "data: {{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"created\":1760000000,\
             \"model\":\"mistral-small-latest\",\"choices\":[{{\"index\":0,\"delta\":\
             {{\"content\":\"{word}\"}},\"finish_reason\":null}}],\"p\":\"{padding}\"}}\n\n"
        );
    }
    body.push_str("data: [DONE]\n\n");
    body.into_bytes()
}

/// The body cut into pieces of `size` bytes, each its own buffer.
fn pieces(body: &[u8], size: usize) -> Vec<Bytes> {
    body.chunks(size).map(Bytes::copy_from_slice).collect()
}

/// (events, data bytes) through eventsource-stream.
async fn eventsource(pieces: Vec<Bytes>) -> (usize, usize) {
    let mut events = stream::iter(pieces.into_iter().map(Ok::<Bytes, Infallible>)).eventsource();
    let (mut count, mut bytes) = (0, 0);
    while let Some(event) = events.next().await {
        let data: String = event.expect("valid stream").data;
        bytes += data.len();
        count += 1;
        black_box(data);
    }
    (count, bytes)
}

/// (events, data bytes) through our decoder, each event's data copied out.
async fn ours_owned(pieces: Vec<Bytes>) -> (usize, usize) {
    let mut body = stream::iter(pieces.into_iter().map(Ok::<Bytes, Infallible>));
    let mut decoder = SseDecoder::new();
    let (mut count, mut bytes) = (0, 0);
    while let Some(piece) = body.next().await {
        let Ok(piece) = piece;
        decoder.feed(&piece);
        while let Some(event) = decoder.next_event() {
            let data: String = event.data.to_owned();
            bytes += data.len();
            count += 1;
            black_box(data);
        }
    }
    decoder.finish();
    while let Some(event) = decoder.next_event() {
        bytes += event.data.len();
        count += 1;
        black_box(event.data.to_owned());
    }
    (count, bytes)
}

/// (events, data bytes) through our decoder, data borrowed.
async fn ours_borrowed(pieces: Vec<Bytes>) -> (usize, usize) {
    let mut body = stream::iter(pieces.into_iter().map(Ok::<Bytes, Infallible>));
    let mut decoder = SseDecoder::new();
    let (mut count, mut bytes) = (0, 0);
    while let Some(piece) = body.next().await {
        let Ok(piece) = piece;
        decoder.feed(&piece);
        while let Some(event) = decoder.next_event() {
            bytes += event.data.len();
            count += 1;
            black_box(event.data);
        }
    }
    decoder.finish();
    while let Some(event) = decoder.next_event() {
        bytes += event.data.len();
        count += 1;
        black_box(event.data);
    }
    (count, bytes)
}

fn sse_decode(c: &mut Criterion<ThreadCpu>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // 4,000 chunks (about 0.9 MB) in network-sized pieces; 400 chunks
    // (about 90 KB, 90,000 pieces) one byte at a time.
    let cases = [
        ("1460B", mistral_body(4_000), 1460),
        ("16KiB", mistral_body(4_000), 16 * 1024),
        ("1B", mistral_body(400), 1),
    ];
    for (label, body, size) in cases {
        let input = pieces(&body, size);

        // Once, outside timing: all three sides see the same events.
        let expected = runtime.block_on(eventsource(input.clone()));
        assert_eq!(runtime.block_on(ours_owned(input.clone())), expected);
        assert_eq!(runtime.block_on(ours_borrowed(input.clone())), expected);

        let mut group = c.benchmark_group(format!("sse_decode/{label}"));
        group
            .throughput(Throughput::Bytes(body.len() as u64))
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("eventsource-stream", |b| {
            b.iter_batched(
                || input.clone(),
                |pieces| runtime.block_on(eventsource(pieces)),
                BatchSize::LargeInput,
            );
        });
        group.bench_function("ours_owned", |b| {
            b.iter_batched(
                || input.clone(),
                |pieces| runtime.block_on(ours_owned(pieces)),
                BatchSize::LargeInput,
            );
        });
        group.bench_function("ours_borrowed", |b| {
            b.iter_batched(
                || input.clone(),
                |pieces| runtime.block_on(ours_borrowed(pieces)),
                BatchSize::LargeInput,
            );
        });
        group.finish();
    }
}

// No HTML plots: they cost more time than the 10-minute budget of a full
// `cargo bench` leaves.
criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu).without_plots();
    targets = sse_decode
}
criterion_main!(benches);
