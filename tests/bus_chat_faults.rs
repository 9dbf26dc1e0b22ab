//! Streamed chats through the bus against the simulator with faults
//! injected: status errors, retries, cut, stalled and malformed streams,
//! and cancelling.

mod support;

use std::sync::Arc;
use std::time::Duration;

use mistral_events::bus::ChatOptions;
use mistral_events::client::RetryPolicy;
use mistral_events::event::{Event, EventPayload, EventType};
use mistral_events::sim::{answer_text, Fault};
use mistral_events::{ErrorKind, RequestId};
use support::{chunks, joined, request, setup, setup_with};

fn types(events: &[Arc<Event>]) -> Vec<EventType> {
    events.iter().map(|event| event.event_type()).collect()
}

fn id(text: &str) -> RequestId {
    RequestId::new(text).unwrap()
}

#[tokio::test]
async fn non_2xx_ends_in_an_error_with_status_code_and_message_and_no_chunk() {
    let s = setup().await;
    s.sim.push_fault(Fault::status(400).with_body(
        r#"{"object":"error","message":"Invalid model: mistral-nope","type":"invalid_model","param":null,"code":"1500"}"#,
    ));
    let result = s
        .bus
        .stream_chat_with(request(10), ChatOptions::new().request_id(id("bad-model")))
        .await;
    let error = result.unwrap_err();
    assert_eq!(error.status(), Some(400));

    let events = s.collector.events_for(&id("bad-model"));
    assert_eq!(types(&events), [EventType::Start, EventType::Error]);
    let EventPayload::Error(info) = &events[1].payload else {
        unreachable!()
    };
    assert_eq!(info.kind, ErrorKind::Api);
    assert_eq!(info.status, Some(400));
    assert_eq!(info.code.as_deref(), Some("1500"));
    assert_eq!(info.error_type.as_deref(), Some("invalid_model"));
    assert!(info.message.contains("Invalid model: mistral-nope"));
    assert_eq!(info.partial, "");
    assert_eq!(s.sim.request_count(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_completes() {
    let s = setup().await;
    s.sim.push_fault(Fault::status(429).with_retry_after("1"));
    let outcome = s
        .bus
        .stream_chat_with(request(5), ChatOptions::new().request_id(id("limited")))
        .await
        .unwrap();
    let events = s.collector.events_for(&id("limited"));
    let retries: Vec<_> = events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::Retry {
                attempt,
                delay_ms,
                reason,
            } => Some((*attempt, *delay_ms, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 1, "{retries:?}");
    let (attempt, delay_ms, reason) = &retries[0];
    assert_eq!(*attempt, 2);
    assert!(
        (1000..=1100).contains(delay_ms),
        "Retry-After: 1 gives about 1000 ms, got {delay_ms}"
    );
    assert_eq!(reason, "HTTP 429");
    assert_eq!(events.last().unwrap().event_type(), EventType::Complete);
    assert_eq!(outcome.content, answer_text(&request(5)));
    assert_eq!(s.sim.request_count(), 2);
}

#[tokio::test]
async fn two_503s_then_success_give_two_retries() {
    let s = setup_with(|b| {
        b.retry_policy(RetryPolicy::default().initial_delay(Duration::from_millis(20)))
    })
    .await;
    s.sim.push_fault(Fault::status(503));
    s.sim.push_fault(Fault::status(503));
    s.bus
        .stream_chat_with(request(5), ChatOptions::new().request_id(id("flaky")))
        .await
        .unwrap();
    let events = s.collector.events_for(&id("flaky"));
    let kinds = types(&events);
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == EventType::Retry)
            .count(),
        2
    );
    assert_eq!(
        kinds[..3],
        [EventType::Start, EventType::Retry, EventType::Retry]
    );
    assert_eq!(*kinds.last().unwrap(), EventType::Complete);
    assert_eq!(s.sim.request_count(), 3);
}

#[tokio::test]
async fn retries_run_out_into_the_last_error() {
    let s = setup_with(|b| {
        b.retry_policy(
            RetryPolicy::default()
                .max_retries(1)
                .initial_delay(Duration::from_millis(10)),
        )
    })
    .await;
    for _ in 0..3 {
        s.sim.push_fault(Fault::status(503));
    }
    let error = s.bus.stream_chat(request(5)).await.unwrap_err();
    assert_eq!(error.status(), Some(503));
    assert_eq!(s.sim.request_count(), 2, "one attempt and one retry");
}

#[tokio::test]
async fn a_cut_stream_errors_with_the_partial_text_and_is_never_resent() {
    let s = setup().await;
    s.sim.push_fault(Fault::CutAfter(3));
    let result = s
        .bus
        .stream_chat_with(request(20), ChatOptions::new().request_id(id("cut")))
        .await;
    let error = result.unwrap_err();
    let events = s.collector.events_for(&id("cut"));
    let received = chunks(&events);
    assert_eq!(received.len(), 3);
    assert_eq!(error.partial(), joined(&events));
    assert_eq!(error.kind(), ErrorKind::Connection);
    let EventPayload::Error(info) = &events.last().unwrap().payload else {
        panic!("error event last")
    };
    assert_eq!(info.partial, joined(&events));
    assert!(
        info.correlation_id.is_some(),
        "the broken response's correlation id is kept"
    );
    assert_eq!(
        s.sim.request_count(),
        1,
        "nothing is re-sent after output began"
    );
}

#[tokio::test]
async fn a_stall_past_the_idle_timeout_ends_in_timeout() {
    let s = setup_with(|b| b.idle_timeout(Duration::from_millis(300))).await;
    s.sim.push_fault(Fault::StallAfter(2));
    let error = s
        .bus
        .stream_chat_with(request(20), ChatOptions::new().request_id(id("stall")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    let events = s.collector.events_for(&id("stall"));
    assert_eq!(error.partial(), joined(&events));
    assert_eq!(chunks(&events).len(), 2);
    assert_eq!(s.sim.request_count(), 1);
}

#[tokio::test]
async fn a_malformed_chunk_ends_in_decode_and_keeps_the_partial_text() {
    let s = setup().await;
    s.sim.push_fault(Fault::MalformedAfter(4));
    let error = s
        .bus
        .stream_chat_with(request(20), ChatOptions::new().request_id(id("bad-json")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode);
    let events = s.collector.events_for(&id("bad-json"));
    assert_eq!(chunks(&events).len(), 4);
    assert_eq!(error.partial(), joined(&events));
}

#[tokio::test]
async fn a_missing_done_ends_truncated() {
    let s = setup().await;
    s.sim.push_fault(Fault::NoDone);
    let error = s.bus.stream_chat(request(6)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Truncated);
    assert_eq!(error.partial(), answer_text(&request(6)));
}

#[tokio::test]
async fn dropping_the_handle_closes_the_connection_and_publishes_cancelled() {
    let s = setup().await;
    s.sim
        .push_faults(vec![Fault::ChunkDelay(Duration::from_millis(20))]);
    let handle = s
        .bus
        .stream_chat_with(request(1000), ChatOptions::new().request_id(id("dropped")));

    // Wait for the first chunk, then drop the handle.
    let mut events = s.bus.subscribe_with(
        mistral_events::bus::EventFilter::all()
            .request(id("dropped"))
            .types([EventType::Chunk]),
    );
    futures_util::StreamExt::next(&mut events)
        .await
        .unwrap()
        .unwrap();
    drop(handle);

    tokio::time::timeout(Duration::from_secs(5), s.sim.wait_for_closed_streams(1))
        .await
        .expect("the simulator saw the connection close");
    let terminal = tokio::time::timeout(
        Duration::from_secs(5),
        s.collector.wait_for_terminal(&id("dropped")),
    )
    .await
    .unwrap();
    let EventPayload::Cancelled { partial } = &terminal.payload else {
        panic!("expected cancelled, got {terminal:?}")
    };
    assert!(!partial.is_empty());
    assert_eq!(s.sim.request_count(), 1);
}

#[tokio::test]
async fn cancel_ends_the_call_with_cancelled() {
    let s = setup().await;
    s.sim
        .push_faults(vec![Fault::ChunkDelay(Duration::from_millis(20))]);
    let handle = s.bus.stream_chat_with(
        request(1000),
        ChatOptions::new().request_id(id("cancel-me")),
    );
    let mut events = s.bus.subscribe_with(
        mistral_events::bus::EventFilter::all()
            .request(id("cancel-me"))
            .types([EventType::Chunk]),
    );
    futures_util::StreamExt::next(&mut events)
        .await
        .unwrap()
        .unwrap();
    handle.cancel();
    let error = handle.await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Cancelled);
    let all = s.collector.events_for(&id("cancel-me"));
    assert_eq!(all.last().unwrap().event_type(), EventType::Cancelled);
    assert_eq!(all.iter().filter(|e| e.is_terminal()).count(), 1);
}

#[tokio::test]
async fn a_completed_stream_equals_the_plain_answer_and_carries_meta() {
    let s = setup().await;
    let plain = s.bus.client().chat(request(30)).await.unwrap();
    let outcome = s
        .bus
        .stream_chat_with(request(30), ChatOptions::new().request_id(id("same")))
        .await
        .unwrap();
    assert_eq!(outcome.content, plain.response.text());
    assert_eq!(outcome.chunks, 30);
    assert!(outcome.usage.is_some());
    assert!(outcome.time_to_first_chunk.is_some());
    assert!(
        outcome.correlation_id.is_some(),
        "mistral-correlation-id is kept"
    );
    assert!(plain
        .meta
        .rate_limits
        .remaining_requests_per_minute()
        .is_some());
    let events = s.collector.events_for(&id("same"));
    assert_eq!(joined(&events), outcome.content);
}
