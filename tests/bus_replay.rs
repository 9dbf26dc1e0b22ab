//! Recorded-style stream bodies replayed through the decoder and the bus.
//!
//! Each fixture under `tests/fixtures/streams/` is a raw SSE body in the
//! shapes Mistral sends. Every replay is checked against the event contract:
//! `start` first, exactly one terminal event last, `seq` strictly
//! increasing, chunk indices from 0 with no gaps, and the chunks joined
//! equal `complete.content`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use mistral_events::bus::{ChatOptions, MistralEventBus, SubscribeOptions};
use mistral_events::event::{Completion, Event, EventPayload, EventType};
use mistral_events::subscribers::Collector;
use mistral_events::wire::FinishReason;
use mistral_events::{Client, Error, ErrorKind, RequestId};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/streams/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Replays `body` cut into pieces of `piece` bytes and returns the events
/// and the handle's result.
async fn replay(
    body: &[u8],
    piece: usize,
) -> (
    Vec<Arc<Event>>,
    Result<mistral_events::bus::ChatOutcome, Error>,
) {
    let bus = MistralEventBus::new(Client::builder().build().unwrap());
    let collector = Collector::new();
    bus.register(collector.clone(), SubscribeOptions::reliable());

    let pieces: Vec<Result<Bytes, Error>> = body
        .chunks(piece)
        .map(|part| Ok(Bytes::copy_from_slice(part)))
        .collect();
    let id = RequestId::new("replay-1").unwrap();
    let handle = bus.replay(
        stream::iter(pieces),
        "fixture",
        ChatOptions::new().request_id(id.clone()),
    );
    let result = handle.await;
    bus.shutdown().await;
    (collector.events_for(&id), result)
}

/// Checks the contract every call's events keep, and returns the
/// terminal event.
fn check_contract(events: &[Arc<Event>]) -> Arc<Event> {
    assert_eq!(
        events.first().map(|e| e.event_type()),
        Some(EventType::Start)
    );
    let terminals: Vec<_> = events.iter().filter(|event| event.is_terminal()).collect();
    assert_eq!(terminals.len(), 1, "exactly one terminal event");
    assert!(
        events.last().unwrap().is_terminal(),
        "terminal event comes last"
    );

    for (position, event) in events.iter().enumerate() {
        assert_eq!(event.seq, position as u64, "seq runs from 0 with no gaps");
    }

    let indices: Vec<u64> = events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::Chunk { index, content, .. } => {
                assert!(!content.is_empty(), "no event for an empty delta");
                Some(*index)
            }
            _ => None,
        })
        .collect();
    assert_eq!(indices, (0..indices.len() as u64).collect::<Vec<_>>());
    events.last().unwrap().clone()
}

fn joined_chunks(events: &[Arc<Event>]) -> String {
    events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::Chunk { content, .. } => Some(content.as_str()),
            _ => None,
        })
        .collect()
}

/// The `(id, name, arguments)` of every `tool_call` event.
fn tool_calls(events: &[Arc<Event>]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::ToolCall {
                id,
                name,
                arguments,
                ..
            } => Some((id.clone(), name.clone(), arguments.clone())),
            _ => None,
        })
        .collect()
}

fn completion(event: &Event) -> &Completion {
    match &event.payload {
        EventPayload::Complete(completion) => completion,
        other => panic!("expected complete, got {other:?}"),
    }
}

/// Replays a fixture whole and in small pieces; both must give the same
/// events, which keep the contract and end in `complete`.
async fn replay_fixture(name: &str) -> (Vec<Arc<Event>>, Completion) {
    let body = fixture(name);
    let (whole, result) = replay(&body, body.len()).await;
    let outcome = result.expect("replay completes");
    let terminal = check_contract(&whole);
    let done = completion(&terminal).clone();
    assert_eq!(
        joined_chunks(&whole),
        done.content,
        "chunks joined equal complete.content"
    );
    assert_eq!(outcome.content, done.content);

    for piece in [1, 7, 64] {
        let (split, _) = replay(&body, piece).await;
        let payloads = |events: &[Arc<Event>]| -> Vec<String> {
            events
                .iter()
                .map(|event| match &event.payload {
                    EventPayload::Complete(c) => format!("complete {:?}", c.content),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            payloads(&split),
            payloads(&whole),
            "{name} split every {piece} bytes"
        );
    }
    (whole, done)
}

#[tokio::test]
async fn role_only_first_chunk_and_padding_field_are_ignored() {
    let (events, done) = replay_fixture("text_with_padding.sse").await;
    assert_eq!(done.content, "The river bends eastward.");
    assert_eq!(done.finish_reason, Some(FinishReason::Stop));
    let usage = done.usage.expect("usage from the last chunk");
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (12, 5, 17)
    );
    assert_eq!(usage.extra["service_tier"], "standard");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type() == EventType::Chunk)
            .count(),
        5,
        "the role-only chunk makes no event"
    );
}

#[tokio::test]
async fn thinking_goes_to_thinking_events_not_content() {
    let (events, done) = replay_fixture("reasoning.sse").await;
    assert_eq!(done.content, "You have five apples.");
    assert_eq!(
        done.thinking.as_deref(),
        Some("Two apples plus three is five.")
    );
    let thinking: String = events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::Thinking { content, .. } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(thinking, "Two apples plus three is five.");
    assert!(!joined_chunks(&events).contains("apples plus"));
}

#[tokio::test]
async fn last_text_in_the_finishing_chunk_is_kept() {
    let (_, done) = replay_fixture("last_text_with_finish.sse").await;
    assert_eq!(done.content, "Count: 100");
    assert_eq!(done.usage.map(|u| u.total_tokens), Some(13));
}

#[tokio::test]
async fn whole_tool_call_in_one_chunk_gives_one_event() {
    let (events, done) = replay_fixture("tool_call_whole.sse").await;
    let calls = tool_calls(&events);
    assert_eq!(
        calls,
        [(
            "Qx7Lm2Pz9".to_owned(),
            "get_weather".to_owned(),
            r#"{"city": "Lyon"}"#.to_owned()
        )]
    );
    assert_eq!(done.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(done.tool_calls.len(), 1);
    assert_eq!(done.tool_calls[0].function.name, "get_weather");
    assert_eq!(done.content, "");
}

#[tokio::test]
async fn fragmented_tool_call_is_joined_by_index_into_one_event() {
    let (events, done) = replay_fixture("tool_call_fragments.sse").await;
    let calls = tool_calls(&events);
    assert_eq!(
        calls,
        [(
            "Ab12Cd34E".to_owned(),
            "search_docs".to_owned(),
            r#"{"query": "tides", "limit": 3}"#.to_owned()
        )]
    );
    assert_eq!(done.tool_calls.len(), 1);
    let arguments: serde_json::Value =
        serde_json::from_str(&done.tool_calls[0].function.arguments).unwrap();
    assert_eq!(arguments["limit"], 3);
}

#[tokio::test]
async fn absent_usage_stays_absent() {
    let (events, done) = replay_fixture("no_usage.sse").await;
    assert_eq!(done.content, "No usage here.");
    assert!(done.usage.is_none());
    let json: serde_json::Value = serde_json::from_str(&events.last().unwrap().to_json()).unwrap();
    assert!(
        json.get("usage").is_none(),
        "no usage key in the complete event: {json}"
    );
}

#[tokio::test]
async fn body_without_done_ends_truncated_with_the_partial_text() {
    let body = fixture("text_with_padding.sse");
    let text = String::from_utf8(body).unwrap();
    let cut = text.replace("data: [DONE]\n\n", "");
    let (events, result) = replay(cut.as_bytes(), 16).await;
    let terminal = check_contract(&events);
    let error = result.expect_err("no [DONE] is an error");
    assert_eq!(error.kind(), ErrorKind::Truncated);
    assert_eq!(error.partial(), "The river bends eastward.");
    match &terminal.payload {
        EventPayload::Error(info) => {
            assert_eq!(info.kind, ErrorKind::Truncated);
            assert_eq!(info.partial, "The river bends eastward.");
        }
        other => panic!("expected an error event, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_chunk_ends_in_decode_and_keeps_the_partial_text() {
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
                data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n\
                data: {\"choices\":[{\"delta\":\n\n\
                data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" never\"}}]}\n\n\
                data: [DONE]\n\n";
    let (events, result) = replay(body.as_bytes(), 5).await;
    check_contract(&events);
    let error = result.expect_err("malformed chunk");
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert_eq!(error.partial(), "Hello");
    assert_eq!(joined_chunks(&events), "Hello");
}

#[tokio::test]
async fn in_stream_finish_reason_error_is_an_api_error() {
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Par\"}}]}\n\n\
                data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n\
                data: [DONE]\n\n";
    let (events, result) = replay(body.as_bytes(), 1000).await;
    check_contract(&events);
    let error = result.expect_err("finish_reason error");
    assert_eq!(error.kind(), ErrorKind::Api);
    assert_eq!(error.partial(), "Par");
}

#[tokio::test]
async fn unknown_fields_and_enum_values_parse() {
    let body = "data: {\"id\":\"x\",\"model\":\"m\",\"object\":null,\"usage\":null,\"brand_new\":{\"a\":1},\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\",\"metadata\":{}},\"logprobs\":null}]}\n\n\
                data: {\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"hologram\",\"beam\":true},{\"type\":\"text\",\"text\":\"!\"}]},\"finish_reason\":\"dreamt_off\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3,\"quantum_tokens\":9}}\n\n\
                data: [DONE]\n\n";
    let (events, result) = replay(body.as_bytes(), 1000).await;
    check_contract(&events);
    let outcome = result.expect("unknown things parse");
    assert_eq!(outcome.content, "Hi!");
    assert_eq!(
        outcome.finish_reason,
        Some(FinishReason::Other("dreamt_off".into()))
    );
    assert_eq!(outcome.usage.unwrap().extra["quantum_tokens"], 9);
}

#[tokio::test]
async fn invalid_utf8_becomes_replacement_characters() {
    let mut body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf".to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(b"\"}}]}\n\ndata: [DONE]\n\n");
    let (events, result) = replay(&body, 3).await;
    check_contract(&events);
    assert_eq!(result.expect("decodes").content, "caf\u{fffd}\u{fffd}");
}

#[tokio::test]
async fn idle_gap_in_a_recorded_body_is_a_timeout() {
    // A body that sends one chunk and then nothing: the idle timeout ends it.
    let bus = MistralEventBus::new(
        Client::builder()
            .idle_timeout(Duration::from_millis(100))
            .build()
            .unwrap(),
    );
    let first = Bytes::from_static(
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
    );
    let body = stream::iter([Ok(first)]).chain(stream::pending());
    let result = bus.replay(body, "fixture", ChatOptions::new()).await;
    let error = result.expect_err("stalled body");
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.partial(), "Hi");
}

use futures_util::StreamExt as _;

#[tokio::test]
async fn explicit_nulls_in_chunk_fields_parse() {
    let body = "data: {\"id\":null,\"model\":null,\"created\":null,\"choices\":[{\"index\":null,\"delta\":null}]}\n\n\
                data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\",\"tool_calls\":[{\"id\":null,\"type\":null,\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":null,\"completion_tokens\":2,\"total_tokens\":2}}\n\n\
                data: [DONE]\n\n";
    let (events, result) = replay(body.as_bytes(), 1000).await;
    check_contract(&events);
    let outcome = result.expect("nulls are defaults");
    assert_eq!(outcome.content, "ok");
    assert_eq!(outcome.tool_calls[0].kind, "function");
    assert_eq!(outcome.usage.unwrap().prompt_tokens, 0);
}

#[tokio::test]
async fn error_objects_in_a_stream_end_it_with_an_api_error() {
    let named = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
                 event: error\ndata: {\"message\":\"upstream overloaded\",\"type\":\"server_error\"}\n\n\
                 data: [DONE]\n\n";
    let wrapped = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
                   data: {\"error\":{\"message\":\"upstream overloaded\",\"type\":\"server_error\"}}\n\n\
                   data: [DONE]\n\n";
    for body in [named, wrapped] {
        let (events, result) = replay(body.as_bytes(), 1000).await;
        check_contract(&events);
        let error = result.expect_err("an error in the stream is an error");
        assert_eq!(error.kind(), ErrorKind::Api);
        assert_eq!(error.error_type(), Some("server_error"));
        assert!(error.to_string().contains("upstream overloaded"));
        assert_eq!(error.partial(), "Hi");
    }
}
