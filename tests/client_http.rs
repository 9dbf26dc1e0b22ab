//! The HTTP client against a mock server: what it sends, and how it reads
//! answers, error bodies and headers.

use std::time::Duration;

use futures_util::StreamExt;
use mistral_events::client::{RetryPolicy, StreamEvent};
use mistral_events::wire::{ChatRequest, Message};
use mistral_events::{Client, ErrorKind};
use mockito::Matcher;

fn request() -> ChatRequest {
    ChatRequest::new("mistral-small-latest", vec![Message::user("Say hi")]).max_tokens(8)
}

fn client(server: &mockito::Server) -> Client {
    Client::builder()
        .base_url(server.url())
        .api_key("sk-test-key")
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

const PLAIN_ANSWER: &str = r#"{"id":"5d1e0c9a4b7f4c2e9a3b8c7d6e5f4a3b","object":"chat.completion","created":1769000000,"model":"mistral-small-latest","usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10},"choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Hi!","tool_calls":null}}]}"#;

#[tokio::test]
async fn chat_sends_the_key_agent_and_headers_and_reads_meta() {
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .match_header("authorization", "Bearer sk-test-key")
        .match_header("content-type", "application/json")
        .match_header("user-agent", Matcher::Regex("^mistral-events/".into()))
        .match_header("x-team", "blue")
        .match_body(Matcher::Json(serde_json::json!({
            "model": "mistral-small-latest",
            "messages": [{"role": "user", "content": "Say hi"}],
            "max_tokens": 8
        })))
        .with_header("content-type", "application/json")
        .with_header(
            "mistral-correlation-id",
            "019a0000-0000-7000-8000-000000000001",
        )
        .with_header("x-ratelimit-limit-req-minute", "720")
        .with_header("x-ratelimit-remaining-req-minute", "717")
        .with_header("x-ratelimit-tokens-query-cost", "10")
        .with_body(PLAIN_ANSWER)
        .create_async()
        .await;

    let client = Client::builder()
        .base_url(format!("{}/", server.url()))
        .api_key("sk-test-key")
        .header("x-team", "blue")
        .build()
        .unwrap();
    let answer = client.chat(request()).await.unwrap();
    mock.assert_async().await;

    assert_eq!(answer.response.text(), "Hi!");
    assert_eq!(
        answer.meta.correlation_id.as_deref(),
        Some("019a0000-0000-7000-8000-000000000001")
    );
    assert_eq!(answer.meta.rate_limits.get("limit-req-minute"), Some(720));
    assert_eq!(
        answer.meta.rate_limits.remaining_requests_per_minute(),
        Some(717)
    );
    assert_eq!(answer.meta.rate_limits.query_cost(), Some(10));
}

#[tokio::test]
async fn chat_stream_asks_for_a_stream_and_sends_nothing_mistral_rejects() {
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .match_body(Matcher::PartialJson(serde_json::json!({"stream": true})))
        .with_header("content-type", "text/event-stream; charset=utf-8")
        .with_body("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
        .create_async()
        .await;

    let mut stream = client(&server).chat_stream(request());
    let mut chunks = 0;
    while let Some(item) = stream.next().await {
        if let StreamEvent::Chunk(_) = item.unwrap() {
            chunks += 1;
        }
    }
    mock.assert_async().await;
    assert_eq!(chunks, 1);

    let body = serde_json::to_string(&ChatRequest::new("m", vec![Message::user("x")])).unwrap();
    assert!(!body.contains("stream_options") && !body.contains("\"user\":"));
}

/// Status, body, and the message, code and type the error must carry.
type ErrorCase = (
    usize,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// Each error body shape Mistral and its proxies send, with what the
/// error must say.
#[tokio::test]
async fn every_error_body_shape_fills_message_code_and_type() {
    let cases: &[ErrorCase] = &[
        (
            400,
            r#"{"object":"error","message":"Unexpected role 'user' after role 'tool'","type":"invalid_request_message_order","param":null,"code":"3230"}"#,
            "Unexpected role 'user' after role 'tool'",
            Some("3230"),
            Some("invalid_request_message_order"),
        ),
        (
            401,
            r#"{"message":"Unauthorized","request_id":"0123456789abcdef0123456789abcdef"}"#,
            "Unauthorized",
            None,
            None,
        ),
        (
            401,
            r#"{"detail":"Unauthorized"}"#,
            "Unauthorized",
            None,
            None,
        ),
        (
            422,
            r#"{"detail":[{"type":"extra_forbidden","loc":["body","max_completion_tokens"],"msg":"Extra inputs are not permitted","input":32000}]}"#,
            "body.max_completion_tokens: Extra inputs are not permitted",
            None,
            Some("extra_forbidden"),
        ),
        (
            422,
            r#"{"object":"error","message":{"detail":[{"type":"missing","loc":["body","model"],"msg":"Field required","input":{}}]},"type":"invalid_request_error","param":null,"code":null}"#,
            "body.model: Field required",
            None,
            Some("invalid_request_error"),
        ),
        (
            429,
            r#"{"object":"error","message":"Requests rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}"#,
            "Requests rate limit exceeded",
            Some("1300"),
            Some("rate_limited"),
        ),
        (
            429,
            r#"{"message":"Requests rate limit exceeded"}"#,
            "Requests rate limit exceeded",
            None,
            None,
        ),
        (
            503,
            r#"{"object":"error","message":"Service tier capacity exceeded for this model.","type":"service_tier_capacity_exceeded","param":null,"code":"3505"}"#,
            "Service tier capacity exceeded for this model.",
            Some("3505"),
            Some("service_tier_capacity_exceeded"),
        ),
        (
            502,
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "502 Bad Gateway",
            None,
            None,
        ),
    ];
    let mut server = mockito::Server::new_async().await;
    for (status, body, message, code, error_type) in cases {
        let mock = server
            .mock("POST", "/v1/chat/completions")
            .with_status(*status)
            .with_header("mistral-correlation-id", "corr-1")
            .with_header("x-ratelimit-remaining-req-minute", "0")
            .with_body(*body)
            .create_async()
            .await;
        let error = client(&server).chat(request()).await.unwrap_err();
        assert_eq!(error.status(), Some(*status as u16), "{body}");
        assert!(
            error.to_string().contains(message),
            "{error} lacks {message}"
        );
        assert_eq!(error.code(), *code, "{body}");
        assert_eq!(error.error_type(), *error_type, "{body}");
        let meta = error.meta().expect("meta on API errors");
        assert_eq!(meta.correlation_id.as_deref(), Some("corr-1"));
        assert_eq!(meta.rate_limits.remaining_requests_per_minute(), Some(0));
        let expected = if *status == 429 {
            ErrorKind::RateLimited
        } else {
            ErrorKind::Api
        };
        assert_eq!(error.kind(), expected);
        mock.remove_async().await;
    }
}

#[tokio::test]
async fn stream_error_status_yields_one_error_and_no_chunk() {
    let mut server = mockito::Server::new_async().await;
    server
        .mock("POST", "/v1/chat/completions")
        .with_status(400)
        .with_body(r#"{"object":"error","message":"Invalid model: nope","type":"invalid_model","param":null,"code":"1500"}"#)
        .create_async()
        .await;
    let items: Vec<_> = client(&server).chat_stream(request()).collect().await;
    assert_eq!(items.len(), 1);
    let error = items.into_iter().next().unwrap().unwrap_err();
    assert_eq!(error.code(), Some("1500"));
    assert_eq!(error.kind(), ErrorKind::Api);
}

#[tokio::test]
async fn retry_after_header_is_read_from_429s() {
    let mut server = mockito::Server::new_async().await;
    server
        .mock("POST", "/v1/chat/completions")
        .with_status(429)
        .with_header("retry-after", "3")
        .with_body(r#"{"message":"Requests rate limit exceeded"}"#)
        .create_async()
        .await;
    let error = client(&server).chat(request()).await.unwrap_err();
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn first_byte_timeout_is_a_timeout_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and never answer.
    let _server = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let client = Client::builder()
        .base_url(format!("http://{addr}"))
        .first_byte_timeout(Duration::from_millis(200))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let error = client.chat(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(error.is_retryable(), "a first-byte timeout may be retried");
}

#[tokio::test]
async fn refused_connection_is_a_connection_error() {
    // Bind and drop to find a port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::builder()
        .base_url(format!("http://{addr}"))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let error = client.chat(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connection);
    assert!(
        std::error::Error::source(&error).is_some(),
        "the transport error is kept as source"
    );
}

#[tokio::test]
async fn models_parse_from_the_list() {
    let mut server = mockito::Server::new_async().await;
    server
        .mock("GET", "/v1/models")
        .with_body(r#"{"object":"list","data":[{"id":"mistral-small-latest","object":"model","created":1,"owned_by":"mistralai","type":"base","capabilities":{"completion_chat":true}}]}"#)
        .create_async()
        .await;
    let list = client(&server).models().await.unwrap();
    assert_eq!(list.data[0].id, "mistral-small-latest");
}

#[test]
fn from_env_reads_key_and_base_url_and_treats_empty_as_unset() {
    // One test owns the process environment, so nothing races it.
    std::env::set_var("MISTRAL_BASE_URL", "http://127.0.0.1:9/prefix/");
    std::env::set_var("MISTRAL_API_KEY", "sk-env");
    let client = Client::from_env().unwrap();
    assert_eq!(client.base_url(), "http://127.0.0.1:9/prefix");
    assert!(client.has_api_key());

    std::env::set_var("MISTRAL_BASE_URL", "");
    std::env::set_var("MISTRAL_API_KEY", "");
    let client = Client::from_env().unwrap();
    assert_eq!(client.base_url(), "https://api.mistral.ai");
    assert!(!client.has_api_key());

    std::env::set_var("MISTRAL_BASE_URL", "https://api.mistral.ai/v1");
    assert_eq!(Client::from_env().unwrap_err().kind(), ErrorKind::Config);
    std::env::remove_var("MISTRAL_BASE_URL");
    std::env::remove_var("MISTRAL_API_KEY");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let mut server = mockito::Server::new_async().await;
    server
        .mock("POST", "/v1/chat/completions")
        .with_status(302)
        .with_header("location", "/elsewhere")
        .create_async()
        .await;
    let elsewhere = server
        .mock("GET", "/elsewhere")
        .expect(0)
        .create_async()
        .await;
    let error = client(&server).chat(request()).await.unwrap_err();
    assert_eq!(error.status(), Some(302));
    elsewhere.assert_async().await;
}
