//! Resuming cut streams from the text already received, against the
//! simulator (which continues an assistant `prefix: true` message
//! deterministically).

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mistral_events::bus::{ChatOptions, EventFilter, MistralEventBus, ResumePolicy};
use mistral_events::event::{Event, EventPayload, EventType};
use mistral_events::sim::answer_text;
use mistral_events::sim::Fault;
use mistral_events::wire::Message;
use mistral_events::{Client, ErrorKind, RequestId};
use serde_json::json;
use support::{chunks, joined, request, setup};

fn quick(resumes: u32) -> ResumePolicy {
    ResumePolicy::new(resumes).initial_delay(Duration::from_millis(2))
}

fn retry_reasons(events: &[Arc<Event>]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match &event.payload {
            EventPayload::Retry { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// The contract holds across attempts: one request id, `seq` from 0 with
/// no gap, chunk indices from 0 with no gap, one terminal event, last.
fn check_one_stream(events: &[Arc<Event>], id: &RequestId) {
    assert!(events
        .iter()
        .all(|event| event.request_id.as_ref() == Some(id)));
    for (position, event) in events.iter().enumerate() {
        assert_eq!(event.seq, position as u64);
    }
    for (position, (index, _)) in chunks(events).iter().enumerate() {
        assert_eq!(
            *index, position as u64,
            "chunk indices continue with no gap or repeat"
        );
    }
    assert_eq!(events.iter().filter(|event| event.is_terminal()).count(), 1);
    assert!(events.last().unwrap().is_terminal());
}

#[tokio::test]
async fn streams_cut_after_5_50_and_500_chunks_resume_to_the_uncut_answer() {
    for cut in [5, 50, 500] {
        let s = setup().await;
        let uncut = answer_text(&request(1000));
        s.sim.push_fault(Fault::CutAfter(cut));
        let id = RequestId::new(format!("cut-{cut}")).unwrap();
        let outcome = s
            .bus
            .stream_chat_with(
                request(1000),
                ChatOptions::new().request_id(id.clone()).resume(quick(2)),
            )
            .await
            .unwrap_or_else(|error| panic!("cut after {cut}: {error}"));

        let events = s.collector.events_for(&id);
        check_one_stream(&events, &id);
        let joined = joined(&events);
        assert_eq!(
            joined, uncut,
            "cut after {cut}: joined chunks equal the uncut answer"
        );
        assert_eq!(outcome.content, uncut);
        assert_eq!(outcome.chunks, 1000);
        assert_eq!(outcome.attempts, 2);

        let reasons = retry_reasons(&events);
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].starts_with("resume"), "{reasons:?}");
        assert_eq!(s.sim.request_count(), 2);

        // Usage: the cut attempt reported none, the resumed one did; the
        // total is their sum.
        assert_eq!(outcome.usage_per_attempt.len(), 2);
        assert!(outcome.usage_per_attempt[0].is_none());
        let last = outcome.usage_per_attempt[1]
            .clone()
            .expect("the resumed attempt reports usage");
        assert_eq!(
            outcome.usage.as_ref().unwrap().completion_tokens,
            last.completion_tokens
        );
        let EventPayload::Complete(done) = &events.last().unwrap().payload else {
            panic!("complete last")
        };
        assert_eq!(done.content, uncut);
        assert_eq!(done.usage_per_attempt.len(), 2);
    }
}

#[tokio::test]
async fn the_resume_request_ends_with_the_partial_text_as_an_assistant_prefix() {
    let s = setup().await;
    s.sim.push_fault(Fault::CutAfter(5));
    let id = RequestId::new("prefix-body").unwrap();
    s.bus
        .stream_chat_with(
            request(40),
            ChatOptions::new().request_id(id.clone()).resume(quick(1)),
        )
        .await
        .unwrap();

    let first_five: String = chunks(&s.collector.events_for(&id))
        .into_iter()
        .take(5)
        .map(|(_, text)| text)
        .collect();
    let requests = s.sim.requests();
    assert_eq!(requests.len(), 2);
    let original = requests[0].body["messages"].as_array().unwrap().clone();
    let resumed = requests[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(resumed.len(), original.len() + 1);
    assert_eq!(
        resumed[..original.len()],
        original[..],
        "the original messages come first"
    );
    assert_eq!(
        resumed.last().unwrap(),
        &json!({"role": "assistant", "content": first_five, "prefix": true})
    );
    assert_eq!(requests[1].body["stream"], true);
}

#[tokio::test]
async fn three_cuts_in_a_row_still_complete() {
    let s = setup().await;
    for _ in 0..3 {
        s.sim.push_fault(Fault::CutAfter(3));
    }
    let id = RequestId::new("three-cuts").unwrap();
    let outcome = s
        .bus
        .stream_chat_with(
            request(30),
            ChatOptions::new().request_id(id.clone()).resume(quick(3)),
        )
        .await
        .unwrap();
    assert_eq!(outcome.content, answer_text(&request(30)));
    let events = s.collector.events_for(&id);
    check_one_stream(&events, &id);
    assert_eq!(retry_reasons(&events).len(), 3);
    assert_eq!(s.sim.request_count(), 4);
}

#[tokio::test]
async fn resumes_running_out_end_in_an_error_holding_everything_received() {
    for resumes in [0, 2] {
        let s = setup().await;
        for _ in 0..=resumes {
            s.sim.push_fault(Fault::CutAfter(3));
        }
        let id = RequestId::new(format!("runs-out-{resumes}")).unwrap();
        let error = s
            .bus
            .stream_chat_with(
                request(30),
                ChatOptions::new()
                    .request_id(id.clone())
                    .resume(quick(resumes)),
            )
            .await
            .unwrap_err();
        let events = s.collector.events_for(&id);
        check_one_stream(&events, &id);
        let received = joined(&events);
        assert_eq!(error.kind(), ErrorKind::Connection);
        assert_eq!(
            error.partial(),
            received,
            "partial is exactly the text received"
        );
        assert_eq!(
            received.len(),
            answer_text(&request(30))[..received.len()].len()
        );
        assert!(answer_text(&request(30)).starts_with(&received));
        assert_eq!(s.sim.request_count(), resumes as usize + 1);
        let EventPayload::Error(info) = &events.last().unwrap().payload else {
            panic!("error last")
        };
        assert_eq!(info.partial, received);
    }
}

#[tokio::test]
async fn cancelling_during_the_wait_before_a_resume_sends_nothing_more() {
    let s = setup().await;
    s.sim.push_fault(Fault::CutAfter(3));
    let id = RequestId::new("cancel-wait").unwrap();
    let mut retries = s.bus.subscribe_with(
        EventFilter::all()
            .request(id.clone())
            .types([EventType::Retry]),
    );
    // Every wait is at least half its step: 30 s here.
    let policy = ResumePolicy::new(3)
        .initial_delay(Duration::from_secs(60))
        .max_delay(Duration::from_secs(60));
    let handle = s.bus.stream_chat_with(
        request(30),
        ChatOptions::new().request_id(id.clone()).resume(policy),
    );

    retries.next().await.unwrap().unwrap();
    handle.cancel();
    let error = handle.await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Cancelled);
    let events = s.collector.events_for(&id);
    assert_eq!(events.last().unwrap().event_type(), EventType::Cancelled);
    assert_eq!(
        s.sim.request_count(),
        1,
        "no further request after the cancel"
    );
}

#[tokio::test]
async fn a_cut_before_any_content_is_an_ordinary_retry() {
    let s = setup().await;
    s.sim.push_fault(Fault::CutAfter(0));
    let id = RequestId::new("cut-at-zero").unwrap();
    let outcome = s
        .bus
        .stream_chat_with(
            request(10),
            ChatOptions::new().request_id(id.clone()).resume(quick(2)),
        )
        .await
        .unwrap();
    assert_eq!(outcome.content, answer_text(&request(10)));
    let reasons = retry_reasons(&s.collector.events_for(&id));
    assert_eq!(reasons.len(), 1);
    assert!(!reasons[0].starts_with("resume"), "{reasons:?}");
    let requests = s.sim.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].body, requests[0].body,
        "the original request, unchanged"
    );
}

#[tokio::test]
async fn without_the_policy_a_cut_is_an_error_after_one_request() {
    let s = setup().await;
    s.sim.push_fault(Fault::NoDone);
    let error = s.bus.stream_chat(request(10)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Truncated);
    assert_eq!(error.partial(), answer_text(&request(10)));
    assert_eq!(s.sim.request_count(), 1);

    s.sim.push_fault(Fault::CutAfter(3));
    let error = s.bus.stream_chat(request(10)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connection);
    assert_eq!(s.sim.request_count(), 2);
}

#[tokio::test]
async fn api_errors_are_not_resumed() {
    let s = setup().await;
    s.sim.push_fault(Fault::MalformedAfter(3));
    let error = s
        .bus
        .stream_chat_with(request(10), ChatOptions::new().resume(quick(3)))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert_eq!(s.sim.request_count(), 1);
}

#[tokio::test]
async fn a_tool_call_in_flight_is_not_resumed_and_the_error_says_why() {
    let mut server = mockito::Server::new_async().await;
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Let me look.\"}}]}\n\n\
                data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"Ab12Cd34E\",\"index\":0,\"function\":{\"name\":\"search\",\"arguments\":\"{\\\"q\\\": \"}}]}}]}\n\n";
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .with_header("content-type", "text/event-stream")
        .with_body(body)
        .expect(1)
        .create_async()
        .await;
    let client = Client::builder().base_url(server.url()).build().unwrap();
    let bus = MistralEventBus::new(client);
    let error = bus
        .stream_chat_with(request(10), ChatOptions::new().resume(quick(3)))
        .await
        .unwrap_err();
    mock.assert_async().await;
    assert_eq!(error.kind(), ErrorKind::Truncated);
    assert!(
        error.to_string().contains("tool call was in flight"),
        "{error}"
    );
    assert_eq!(error.partial(), "Let me look.");
}

#[tokio::test]
async fn a_request_that_already_ends_in_a_prefix_resumes_without_a_seam() {
    let s = setup().await;
    let mut original = request(30);
    original
        .messages
        .push(Message::assistant_prefix("Once upon a time,"));
    let uncut = answer_text(&original);
    s.sim.push_fault(Fault::CutAfter(5));
    let outcome = s
        .bus
        .stream_chat_with(original, ChatOptions::new().resume(quick(1)))
        .await
        .unwrap();
    assert_eq!(outcome.content, uncut, "one answer, no repeat and no seam");
    let requests = s.sim.requests();
    let messages = requests[1].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "the prefix is extended, not doubled");
    let prefix = messages[1]["content"].as_str().unwrap();
    assert!(prefix.starts_with("Once upon a time,"), "{prefix}");
}
