//! The simulator over real loopback HTTP, checked with a plain HTTP client.

use std::time::{Duration, Instant};

use mistral_events::sim::{answer_text, answer_tokens, Fault, Simulator};
use mistral_events::wire::{ChatRequest, Message, ModelList};
use serde_json::{json, Value};

const MODEL: &str = "mistral-small-latest";

fn chat_body(text: &str) -> Value {
    json!({ "model": MODEL, "messages": [{ "role": "user", "content": text }] })
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

fn streaming(body: Value) -> Value {
    with(body, "stream", json!(true))
}

fn as_request(body: &Value) -> ChatRequest {
    serde_json::from_value(body.clone()).expect("a valid chat request")
}

async fn post(sim: &Simulator, body: &Value) -> reqwest::Response {
    post_with_header(sim, body, None).await
}

async fn post_with_header(sim: &Simulator, body: &Value, fault: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", sim.base_url()))
        .bearer_auth("sk-test")
        .json(body);
    if let Some(fault) = fault {
        request = request.header("x-sim-fault", fault);
    }
    request.send().await.expect("the simulator answers")
}

/// The `data:` payloads of an SSE body, split on the blank lines.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("every event is one data line: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// The chunks before `[DONE]`, parsed, and whether `[DONE]` came last.
fn chunks(body: &str) -> (Vec<Value>, bool) {
    let events = events(body);
    let done = events.last().map(String::as_str) == Some("[DONE]");
    let chunks = events
        .iter()
        .filter(|event| *event != "[DONE]")
        .map(|event| serde_json::from_str(event).expect("each chunk is JSON"))
        .collect();
    (chunks, done)
}

/// The text of the content chunks of choice 0.
fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// Chunks after the role chunk that carry text.
fn content_chunks(chunks: &[Value]) -> Vec<&Value> {
    chunks
        .iter()
        .skip(1)
        .filter(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|text| !text.is_empty())
        })
        .collect()
}

async fn stream_body(sim: &Simulator, body: &Value) -> String {
    let response = post(sim, &streaming(body.clone())).await;
    assert_eq!(response.status(), 200);
    response.text().await.expect("a complete body")
}

/// Reads a streamed response until it fails; returns the text read before
/// the failure.
async fn read_until_error(mut response: reqwest::Response) -> String {
    let mut read = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => read.extend_from_slice(&bytes),
            Ok(None) => panic!("the body ended cleanly: {}", String::from_utf8_lossy(&read)),
            Err(_) => return String::from_utf8(read).expect("UTF-8"),
        }
    }
}

#[tokio::test]
async fn model_list_parses_with_the_wire_types() {
    let sim = Simulator::start().await.unwrap();
    let response = reqwest::get(format!("{}/v1/models", sim.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("mistral-correlation-id"));
    let list: ModelList = response.json().await.unwrap();
    assert_eq!(list.object, "list");
    assert!(list.data.len() >= 5);
    for card in &list.data {
        assert_eq!(card.kind, "base");
        assert_eq!(card.object, "model");
        assert_eq!(card.owned_by, "mistralai");
        assert_eq!(card.capabilities["completion_chat"], true);
        assert!(card.extra.contains_key("default_model_temperature"));
    }
    let ids: Vec<&str> = list.data.iter().map(|card| card.id.as_str()).collect();
    assert!(ids.contains(&"mistral-small-latest") && ids.contains(&"codestral-latest"));
    sim.shutdown().await;
}

#[tokio::test]
async fn plain_and_streamed_answers_have_the_same_text() {
    let sim = Simulator::start().await.unwrap();
    let body = chat_body("Tell me about rivers");

    let plain: Value = post(&sim, &body).await.json().await.unwrap();
    let plain_text = plain["choices"][0]["message"]["content"].as_str().unwrap();
    let (chunks, done) = chunks(&stream_body(&sim, &body).await);

    assert!(done);
    assert_eq!(streamed_text(&chunks), plain_text);
    assert_eq!(answer_text(&as_request(&body)), plain_text);
    assert_eq!(
        plain["id"], chunks[0]["id"],
        "the id is derived from the request"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn stream_follows_mistral_framing() {
    let sim = Simulator::start().await.unwrap();
    let response = post(&sim, &streaming(chat_body("Hi"))).await;
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert!(response.headers().contains_key("mistral-correlation-id"));
    let body = response.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"));
    let (chunks, done) = chunks(&body);
    assert!(done, "[DONE] is the last event");

    let first = &chunks[0];
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(first["choices"][0]["finish_reason"].is_null());

    let (last, middle) = chunks[1..].split_last().unwrap();
    assert!(!middle.is_empty());
    for chunk in middle {
        assert!(
            chunk.get("usage").is_none(),
            "usage only at the end: {chunk}"
        );
        assert!(chunk["choices"][0]["finish_reason"].is_null());
        assert!(chunk["choices"][0]["delta"].get("role").is_none());
        let padding = chunk["p"].as_str().expect("content chunks carry p");
        assert!(!padding.is_empty() && padding.bytes().all(|b| b.is_ascii_lowercase()));
    }
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"]["content"], "");
    let usage = &last["usage"];
    assert_eq!(usage["completion_tokens"], middle.len());
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap() + middle.len() as u64)
    );
    for chunk in &chunks {
        assert_eq!(chunk["id"], first["id"]);
        assert_eq!(chunk["created"], first["created"]);
        assert_eq!(chunk["model"], MODEL);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn plain_answer_has_mistral_shape_and_rate_limit_headers() {
    let sim = Simulator::start().await.unwrap();
    let first = post(&sim, &chat_body("Hi")).await;
    let second = post(&sim, &chat_body("Hi again")).await;
    let remaining = |response: &reqwest::Response| -> u64 {
        response.headers()["x-ratelimit-remaining-req-minute"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(remaining(&second) < remaining(&first));
    for name in [
        "x-ratelimit-limit-req-minute",
        "x-ratelimit-limit-tokens-minute",
        "x-ratelimit-remaining-tokens-minute",
        "mistral-correlation-id",
    ] {
        assert!(second.headers().contains_key(name), "{name}");
    }
    assert_eq!(second.headers()["content-type"], "application/json");
    let cost: u64 = second.headers()["x-ratelimit-tokens-query-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let body: Value = second.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["usage"]["total_tokens"], cost);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["tool_calls"].is_null());
    assert!(choice["message"].get("tool_calls").is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn answers_are_deterministic_and_depend_on_the_prompt() {
    let first = Simulator::start().await.unwrap();
    let second = Simulator::start().await.unwrap();
    let body = chat_body("What is a bridge?");
    let one = stream_body(&first, &body).await;
    let two = stream_body(&second, &body).await;
    assert_eq!(
        streamed_text(&chunks(&one).0),
        streamed_text(&chunks(&two).0)
    );

    let other = answer_text(&as_request(&chat_body("What is a boat?")));
    assert_ne!(other, answer_text(&as_request(&body)));
    let seeded = answer_text(&as_request(&with(body.clone(), "random_seed", json!(7))));
    assert_ne!(seeded, answer_text(&as_request(&body)));
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn max_tokens_cuts_with_finish_reason_length() {
    let sim = Simulator::start().await.unwrap();
    let body = with(chat_body("Count"), "max_tokens", json!(5));
    let (chunks, done) = chunks(&stream_body(&sim, &body).await);
    assert!(done);
    assert_eq!(content_chunks(&chunks).len(), 5);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["usage"]["completion_tokens"], 5);

    let plain: Value = post(&sim, &body).await.json().await.unwrap();
    assert_eq!(plain["choices"][0]["finish_reason"], "length");
    let roomy: Value = post(&sim, &with(chat_body("Count"), "max_tokens", json!(1000)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(roomy["choices"][0]["finish_reason"], "stop");
    sim.shutdown().await;
}

#[tokio::test]
async fn sim_tokens_sets_the_length_exactly() {
    let sim = Simulator::start().await.unwrap();
    let body = with(chat_body("Long"), "metadata", json!({ "sim_tokens": 1000 }));
    let (chunks, done) = chunks(&stream_body(&sim, &body).await);
    assert!(done);
    assert_eq!(content_chunks(&chunks).len(), 1000);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 1000);
    assert_eq!(answer_tokens(&as_request(&body)).len(), 1000);
    sim.shutdown().await;
}

#[tokio::test]
async fn assistant_prefix_is_continued_byte_for_byte() {
    let sim = Simulator::start().await.unwrap();
    let body = chat_body("Continue me");
    let tokens = answer_tokens(&as_request(&body));
    let answer = tokens.concat();
    let boundary: usize = tokens[..3].iter().map(String::len).sum();
    let inside = boundary + 2;
    assert!(tokens[3].len() > 2, "the split falls inside token 3");

    for split in [boundary, inside] {
        let mut prefixed = body.clone();
        prefixed["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "role": "assistant", "content": &answer[..split], "prefix": true }));
        let (chunks, done) = chunks(&stream_body(&sim, &prefixed).await);
        assert!(done);
        let continuation = streamed_text(&chunks);
        assert_eq!(continuation, answer[split..], "split at {split}");
        assert_eq!(format!("{}{continuation}", &answer[..split]), answer);

        let plain: Value = post(&sim, &prefixed).await.json().await.unwrap();
        assert_eq!(plain["choices"][0]["message"]["content"], answer[split..]);
    }

    let mut unrelated = body.clone();
    unrelated["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "role": "assistant", "content": "Something else", "prefix": true }));
    let plain: Value = post(&sim, &unrelated).await.json().await.unwrap();
    assert_eq!(plain["choices"][0]["message"]["content"], answer);
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_requests_get_the_real_error_shapes() {
    let sim = Simulator::start().await.unwrap();

    let extra = post(
        &sim,
        &with(
            chat_body("Hi"),
            "stream_options",
            json!({"include_usage": true}),
        ),
    )
    .await;
    assert_eq!(extra.status(), 422);
    let detail: Value = extra.json().await.unwrap();
    assert_eq!(detail["detail"][0]["type"], "extra_forbidden");
    assert_eq!(
        detail["detail"][0]["loc"],
        json!(["body", "stream_options"])
    );
    assert_eq!(detail["detail"][0]["msg"], "Extra inputs are not permitted");
    assert_eq!(detail["detail"][0]["input"], json!({"include_usage": true}));

    let missing: Value = post(&sim, &json!({ "model": MODEL }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(missing["detail"][0]["type"], "missing");
    assert_eq!(missing["detail"][0]["loc"], json!(["body", "messages"]));

    let wrong_type = post(&sim, &with(chat_body("Hi"), "max_tokens", json!("lots"))).await;
    assert_eq!(wrong_type.status(), 422);

    let not_json = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", sim.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 422);

    let order = post(
        &sim,
        &json!({ "model": MODEL, "messages": [
            { "role": "user", "content": "Hi" },
            { "role": "assistant", "content": "Hello" },
        ]}),
    )
    .await;
    assert_eq!(order.status(), 400);
    let error: Value = order.json().await.unwrap();
    assert_eq!(error["object"], "error");
    assert_eq!(error["type"], "invalid_request_message_order");
    assert_eq!(error["code"], "3230");
    assert!(error["param"].is_null());

    let unknown = reqwest::get(format!("{}/v1/nothing", sim.base_url()))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap(),
        json!({"detail": "Not Found"})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn status_faults_send_status_body_and_retry_after() {
    let sim = Simulator::start().await.unwrap();
    sim.push_fault(Fault::status(429).with_retry_after("1"));
    sim.push_fault(Fault::status(503));
    sim.push_fault(Fault::status(500).with_body("upstream exploded"));

    let limited = post(&sim, &chat_body("Hi")).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["type"], "rate_limited");
    assert_eq!(body["code"], "1300");

    let unavailable = post(&sim, &chat_body("Hi")).await;
    assert_eq!(unavailable.status(), 503);
    assert!(unavailable.headers().get("retry-after").is_none());
    assert_eq!(
        unavailable.json::<Value>().await.unwrap()["object"],
        "error"
    );

    let custom = post(&sim, &chat_body("Hi")).await;
    assert_eq!(custom.status(), 500);
    assert_eq!(custom.text().await.unwrap(), "upstream exploded");

    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    let dated = post_with_header(
        &sim,
        &chat_body("Hi"),
        Some(&format!("status=503,retry-after={date}")),
    )
    .await;
    assert_eq!(dated.status(), 503);
    assert_eq!(dated.headers()["retry-after"], date);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_script_is_consumed_in_order() {
    let sim = Simulator::builder()
        .fault(Fault::status(429))
        .start()
        .await
        .unwrap();
    assert_eq!(post(&sim, &chat_body("Hi")).await.status(), 429);
    assert_eq!(post(&sim, &chat_body("Hi")).await.status(), 200);
    assert_eq!(sim.request_count(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_fault_header_wins_and_leaves_the_script_alone() {
    let sim = Simulator::start().await.unwrap();
    sim.push_fault(Fault::status(503));
    let headed = post_with_header(&sim, &chat_body("Hi"), Some("status=418")).await;
    assert_eq!(headed.status(), 418);
    assert_eq!(
        post(&sim, &chat_body("Hi")).await.status(),
        503,
        "the script entry is still there"
    );
    assert_eq!(post(&sim, &chat_body("Hi")).await.status(), 200);

    let bad = post_with_header(&sim, &chat_body("Hi"), Some("explode=now")).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("x-sim-fault"));

    let models = reqwest::Client::new()
        .get(format!("{}/v1/models", sim.base_url()))
        .header("x-sim-fault", "status=500")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 500);
    sim.shutdown().await;
}

#[tokio::test]
async fn cut_after_aborts_the_body_after_n_chunks() {
    let sim = Simulator::start().await.unwrap();
    sim.push_fault(Fault::CutAfter(3));
    let response = post(&sim, &streaming(chat_body("Hi"))).await;
    assert_eq!(response.status(), 200);
    let read = read_until_error(response).await;
    assert!(
        read.ends_with("\n\n"),
        "whole events were sent before the cut"
    );
    let (chunks, done) = chunks(&read);
    assert!(!done);
    assert_eq!(
        chunks.len(),
        1 + 3,
        "the role chunk and three content chunks"
    );

    // A delay and a cut for one request, from the header.
    let response = post_with_header(
        &sim,
        &streaming(chat_body("Hi")),
        Some("chunk-delay=5ms;cut-after=2"),
    )
    .await;
    let (chunks, _) = self::chunks(&read_until_error(response).await);
    assert_eq!(chunks.len(), 3);
    assert_eq!(sim.closed_streams(), 0, "a cut is the server's doing");

    // On a plain answer the cut falls inside the JSON.
    let plain = post_with_header(&sim, &chat_body("Hi"), Some("cut-after=0")).await;
    assert_eq!(plain.status(), 200);
    assert!(plain.bytes().await.is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn stall_after_goes_quiet_after_n_chunks() {
    let sim = Simulator::start().await.unwrap();
    sim.push_fault(Fault::StallAfter(2));
    let mut response = post(&sim, &streaming(chat_body("Hi"))).await;
    let mut read = String::new();
    while events(&read).len() < 3 {
        let bytes = response
            .chunk()
            .await
            .unwrap()
            .expect("more data before the stall");
        read.push_str(std::str::from_utf8(&bytes).unwrap());
    }
    assert_eq!(events(&read).len(), 3, "role and two content chunks");
    let quiet = tokio::time::timeout(Duration::from_millis(300), response.chunk()).await;
    assert!(quiet.is_err(), "nothing arrives after the stall");
    assert_eq!(sim.open_streams(), 1);
    drop(response);
    tokio::time::timeout(Duration::from_secs(5), sim.wait_for_closed_streams(1))
        .await
        .expect("the stalled body is dropped when the client leaves");
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_after_sends_broken_json_then_done() {
    let sim = Simulator::start().await.unwrap();
    sim.push_fault(Fault::MalformedAfter(2));
    let body = stream_body(&sim, &chat_body("Hi")).await;
    let events = events(&body);
    assert_eq!(
        events.len(),
        5,
        "role, two chunks, the broken one, [DONE]: {events:?}"
    );
    assert!(serde_json::from_str::<Value>(&events[2]).is_ok());
    assert!(serde_json::from_str::<Value>(&events[3]).is_err());
    assert_eq!(events[4], "[DONE]");
    sim.shutdown().await;
}

#[tokio::test]
async fn no_done_ends_cleanly_without_the_marker() {
    let sim = Simulator::start().await.unwrap();
    sim.push_fault(Fault::NoDone);
    let body = stream_body(&sim, &chat_body("Hi")).await;
    let (chunks, done) = chunks(&body);
    assert!(!done);
    assert!(chunks.last().unwrap().get("usage").is_some());
    assert_eq!(
        streamed_text(&chunks),
        answer_text(&as_request(&chat_body("Hi")))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn delays_slow_the_first_byte_and_the_chunks() {
    let sim = Simulator::start().await.unwrap();
    sim.push_fault(Fault::FirstByteDelay(Duration::from_millis(150)));
    let started = Instant::now();
    let response = post(&sim, &chat_body("Hi")).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let body = with(chat_body("Hi"), "max_tokens", json!(4));
    sim.push_fault(Fault::ChunkDelay(Duration::from_millis(20)));
    let started = Instant::now();
    let (chunks, done) = chunks(&stream_body(&sim, &body).await);
    assert!(done);
    // Six events after the first: four content, the final chunk, [DONE].
    assert!(
        started.elapsed() >= Duration::from_millis(6 * 20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(content_chunks(&chunks).len(), 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_leaving_is_counted_as_a_closed_stream() {
    let sim = Simulator::builder()
        .chunk_delay(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    let body = with(chat_body("Hi"), "metadata", json!({ "sim_tokens": 1000 }));
    let mut response = post(&sim, &streaming(body)).await;
    let first = response.chunk().await.unwrap().expect("one chunk");
    assert!(first.starts_with(b"data: "));
    assert_eq!(sim.open_streams(), 1);
    assert_eq!(sim.closed_streams(), 0);
    drop(response);
    tokio::time::timeout(Duration::from_secs(5), sim.wait_for_closed_streams(1))
        .await
        .expect("the dropped body is noticed");
    assert_eq!(sim.closed_streams(), 1);
    assert_eq!(sim.open_streams(), 0);

    // A body that finished is not a closed stream.
    let done = stream_body(&sim, &with(chat_body("Hi"), "max_tokens", json!(1))).await;
    assert!(done.ends_with("data: [DONE]\n\n"));
    assert_eq!(sim.closed_streams(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn forced_tool_choice_answers_with_a_tool_call() {
    let sim = Simulator::start().await.unwrap();
    let body = json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": "Weather in Paris?" }],
        "tools": [{ "type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": { "type": "object", "properties": {} },
        }}],
        "tool_choice": "any",
    });

    let plain: Value = post(&sim, &body).await.json().await.unwrap();
    let choice = &plain["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["index"], 0);
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{}");
    let id = call["id"].as_str().unwrap();
    assert!(id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()));

    let (chunks, done) = chunks(&stream_body(&sim, &body).await);
    assert!(done);
    assert_eq!(
        chunks.len(),
        2,
        "the role chunk and one chunk with the whole call"
    );
    let chunk = &chunks[1];
    let delta = &chunk["choices"][0]["delta"];
    assert!(delta["content"].is_null());
    let streamed_call = &delta["tool_calls"][0];
    assert_eq!(streamed_call["id"], id);
    assert!(streamed_call.get("index").is_none() && streamed_call.get("type").is_none());
    assert_eq!(streamed_call["function"]["name"], "get_weather");
    assert_eq!(chunk["choices"][0]["finish_reason"], "tool_calls");
    assert!(chunk["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let named = with(
        body.clone(),
        "tool_choice",
        json!({"type": "function", "function": {"name": "get_weather"}}),
    );
    let plain: Value = post(&sim, &named).await.json().await.unwrap();
    assert_eq!(plain["choices"][0]["finish_reason"], "tool_calls");
    let auto: Value = post(&sim, &with(body, "tool_choice", json!("auto")))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(auto["choices"][0]["finish_reason"], "stop");
    sim.shutdown().await;
}

#[tokio::test]
async fn several_choices_stream_with_their_indexes() {
    let sim = Simulator::start().await.unwrap();
    let body = with(chat_body("Two please"), "n", json!(2));
    let plain: Value = post(&sim, &body).await.json().await.unwrap();
    assert_eq!(plain["choices"].as_array().unwrap().len(), 2);
    assert_eq!(plain["choices"][1]["index"], 1);

    let (chunks, done) = chunks(&stream_body(&sim, &body).await);
    assert!(done);
    let text_of = |index: u64| -> String {
        chunks
            .iter()
            .flat_map(|chunk| chunk["choices"].as_array().unwrap())
            .filter(|choice| choice["index"] == index)
            .filter_map(|choice| choice["delta"]["content"].as_str())
            .collect()
    };
    assert_eq!(text_of(0), plain["choices"][0]["message"]["content"]);
    assert_eq!(text_of(1), plain["choices"][1]["message"]["content"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn requests_are_recorded_without_the_key() {
    let sim = Simulator::start().await.unwrap();
    post_with_header(&sim, &chat_body("Hi"), Some("")).await;
    reqwest::get(format!("{}/v1/models?page=2", sim.base_url()))
        .await
        .unwrap();
    let requests = sim.requests();
    assert_eq!(requests.len(), 2);
    let chat = &requests[0];
    assert_eq!(chat.method, "POST");
    assert_eq!(chat.path, "/v1/chat/completions");
    assert!(chat.authorization);
    assert_eq!(chat.header("Content-Type"), Some("application/json"));
    assert_eq!(chat.header("x-sim-fault"), Some(""));
    assert!(chat.header("authorization").is_none());
    assert_eq!(chat.body["messages"][0]["content"], "Hi");
    assert!(!format!("{chat:?}").contains("sk-test"));

    let models = &requests[1];
    assert_eq!(models.method, "GET");
    assert_eq!(models.query.as_deref(), Some("page=2"));
    assert!(!models.authorization);
    assert!(models.body.is_null());
    assert_eq!(sim.request_count(), 1, "only chat requests are counted");
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_stalled_streams() {
    let sim = Simulator::start().await.unwrap();
    sim.push_fault(Fault::StallAfter(1));
    let mut response = post(&sim, &streaming(chat_body("Hi"))).await;
    response.chunk().await.unwrap().expect("the first events");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), sim.clone().shutdown())
        .await
        .expect("shutdown does not wait for the stalled body");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        response.chunk().await.is_err(),
        "the stalled body was aborted"
    );
    assert_eq!(
        sim.closed_streams(),
        0,
        "the server ended it, not the client"
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let sim = Simulator::start().await.unwrap();
    let addr = sim.local_addr();
    assert_eq!(sim.base_url(), format!("http://127.0.0.1:{}", addr.port()));
    let clone = sim.clone();
    drop(sim);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_ok(),
        "a clone keeps it running"
    );
    drop(clone);
    let stopped = tokio::time::timeout(Duration::from_secs(2), async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(stopped.is_ok(), "the listener closes");
}

#[test]
fn fault_text_round_trips_and_rejects_junk() {
    let faults = [
        Fault::status(429).with_retry_after("1"),
        Fault::status(503),
        Fault::FirstByteDelay(Duration::from_secs(2)),
        Fault::ChunkDelay(Duration::from_millis(50)),
        Fault::CutAfter(3),
        Fault::StallAfter(3),
        Fault::MalformedAfter(2),
        Fault::NoDone,
    ];
    for fault in faults {
        let text = fault.to_string();
        assert_eq!(text.parse::<Fault>().unwrap(), fault, "{text}");
    }
    assert_eq!(
        "status=429,retry-after=1"
            .parse::<Fault>()
            .unwrap()
            .to_string(),
        "status=429,retry-after=1"
    );
    assert_eq!(
        Fault::parse_list("chunk-delay=10ms;cut-after=3").unwrap(),
        vec![
            Fault::ChunkDelay(Duration::from_millis(10)),
            Fault::CutAfter(3)
        ]
    );
    for junk in [
        "",
        "status=",
        "status=99",
        "cut-after=many",
        "chunk-delay=soon",
        "boom",
    ] {
        let error = junk.parse::<Fault>().unwrap_err();
        assert!(!error.to_string().is_empty());
    }
    let message = "explode".parse::<Fault>().unwrap_err().to_string();
    assert!(message.contains("expected one of"), "{message}");
}

#[test]
fn answer_helpers_agree_with_each_other() {
    let request = ChatRequest::new(MODEL, vec![Message::user("Hello")]);
    let tokens = answer_tokens(&request);
    assert!((12..=40).contains(&tokens.len()));
    assert_eq!(tokens.concat(), answer_text(&request));
    let streamed = request.clone();
    let mut streamed_json = serde_json::to_value(&streamed).unwrap();
    streamed_json["stream"] = json!(true);
    assert_eq!(
        answer_text(&as_request(&streamed_json)),
        answer_text(&request)
    );
}
