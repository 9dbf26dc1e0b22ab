//! The HTTP side: routes, fault selection, and the response shapes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{HeaderName, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};

use super::answer::{self, TokenSource};
use super::fault::{Ending, Fault, FaultPlan, StatusFault};
use super::record::{RecordedRequest, StreamGuard};
use super::state::Shared;
use super::stream::{ChunkHeader, Guarded, SseBody, SsePlan, StreamContent, StreamToolCall};
use super::validate::{self, mistral_error};
use crate::wire::ChatRequest;

/// The request header that injects faults into one request.
pub(crate) const FAULT_HEADER: &str = "x-sim-fault";

/// Request bodies up to this size are read.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The rate limits the simulator reports; the remaining counts fall with
/// each request and never refill.
const REQUESTS_PER_MINUTE: u64 = 720;
const TOKENS_PER_MINUTE: u64 = 2_000_000;

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream; charset=utf-8";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(chat_completions).fallback(method_not_allowed),
        )
        .route("/v1/models", get(list_models).fallback(method_not_allowed))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// Logs the request and returns its body as JSON, if it was JSON.
fn record(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Value> {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let logged = parsed.clone().unwrap_or(Value::Null);
    shared
        .recorder
        .record(RecordedRequest::new(method, uri, headers, logged));
    parsed
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = record(&shared, &method, &uri, &headers, &body);
    let request_number = shared.recorder.count_chat();
    let correlation = shared.correlation_id();

    let faults = match request_faults(&shared, &headers) {
        Ok(faults) => faults,
        Err(message) => {
            let body = mistral_error(&message, "invalid_request_error", None);
            return json_response(400, &body, &correlation);
        }
    };
    let plan = FaultPlan::from_faults(&faults);
    if let Some(response) = apply_early_faults(&shared, &plan, &correlation).await {
        return response;
    }

    let request = match validate::chat_request(&body, parsed.as_ref()) {
        Ok(request) => request,
        Err(rejection) => {
            return json_response(rejection.status(), &rejection.body(), &correlation)
        }
    };
    let completion = Completion::new(&request);
    let tokens = completion.prompt_tokens + completion.completion_tokens;
    let tokens_used = shared.recorder.use_tokens(tokens);
    if request.stream == Some(true) {
        streamed(&shared, completion, &plan, &correlation)
    } else {
        let limits = RateLimits {
            request_number,
            tokens_used,
            query_cost: tokens,
        };
        plain(&shared, completion, &plan, &correlation, &limits)
    }
}

/// The faults for this request: the `x-sim-fault` header's when it is
/// present (the script is left alone), else the next scripted set.
fn request_faults(shared: &Shared, headers: &HeaderMap) -> Result<Vec<Fault>, String> {
    let mut values = headers.get_all(FAULT_HEADER).iter().peekable();
    if values.peek().is_none() {
        return Ok(shared.next_faults());
    }
    let mut faults = Vec::new();
    for value in values {
        let text = value
            .to_str()
            .map_err(|_| format!("the {FAULT_HEADER} header must be visible ASCII text"))?;
        let parsed = Fault::parse_list(text)
            .map_err(|error| format!("bad {FAULT_HEADER} header: {error}"))?;
        faults.extend(parsed);
    }
    Ok(faults)
}

/// The first-byte delay, then a status fault; `Some` when the request is
/// answered here.
async fn apply_early_faults(
    shared: &Shared,
    plan: &FaultPlan,
    correlation: &str,
) -> Option<Response> {
    if let Some(delay) = plan.first_byte_delay {
        if !sleep_unless_stopped(shared, delay).await {
            let body = mistral_error(
                "The simulator is shutting down",
                "service_unavailable",
                None,
            );
            return Some(json_response(503, &body, correlation));
        }
    }
    plan.status
        .as_ref()
        .map(|status| status_response(status, correlation))
}

/// Sleeps for `delay`; false when the simulator began shutting down first.
async fn sleep_unless_stopped(shared: &Shared, delay: Duration) -> bool {
    let stopped = shared.stopped();
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stopped => false,
    }
}

/// The answer to a valid chat request, before it is framed.
#[derive(Debug)]
struct Completion {
    seed: u64,
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u64,
    completion_tokens: u64,
    content: StreamContent,
}

impl Completion {
    fn new(request: &ChatRequest) -> Self {
        let seed = answer::request_seed(request);
        let content = match answer::forced_tool(request) {
            Some(name) => StreamContent::Tool(StreamToolCall {
                id: answer::tool_call_id(seed),
                name,
                arguments: "{}".to_owned(),
            }),
            None => {
                let choices = request.n.unwrap_or(1).max(1);
                StreamContent::Text(
                    (0..choices)
                        .map(|index| TokenSource::new(request, index))
                        .collect(),
                )
            }
        };
        let completion_tokens = match &content {
            StreamContent::Text(choices) => choices.iter().map(TokenSource::len).sum(),
            // A call costs a few tokens, more for a longer name.
            StreamContent::Tool(call) => 8 + call.name.len() as u64 / 4,
        };
        Self {
            seed,
            id: answer::completion_id(seed),
            created: unix_now(),
            model: request.model.clone(),
            prompt_tokens: answer::prompt_tokens(request),
            completion_tokens,
            content,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}

/// The rate-limit numbers of one plain response.
#[derive(Debug, Clone, Copy)]
struct RateLimits {
    request_number: usize,
    tokens_used: u64,
    query_cost: u64,
}

impl RateLimits {
    /// Mistral's names: `req` and a window suffix.
    fn apply(&self, response: &mut Response) {
        let remaining_requests = REQUESTS_PER_MINUTE.saturating_sub(self.request_number as u64);
        let remaining_tokens = TOKENS_PER_MINUTE.saturating_sub(self.tokens_used);
        let pairs = [
            ("x-ratelimit-limit-req-minute", REQUESTS_PER_MINUTE),
            ("x-ratelimit-remaining-req-minute", remaining_requests),
            ("x-ratelimit-limit-tokens-minute", TOKENS_PER_MINUTE),
            ("x-ratelimit-remaining-tokens-minute", remaining_tokens),
            ("x-ratelimit-tokens-query-cost", self.query_cost),
        ];
        for (name, value) in pairs {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
}

#[derive(Serialize)]
struct PlainResponse<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    usage: UsageBody,
    choices: Vec<PlainChoice>,
}

#[derive(Serialize)]
struct UsageBody {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct PlainChoice {
    index: u32,
    finish_reason: &'static str,
    message: PlainMessage,
}

#[derive(Serialize)]
struct PlainMessage {
    role: &'static str,
    content: String,
    /// `null` for a text answer, as Mistral sends it.
    tool_calls: Option<Vec<PlainToolCall>>,
}

#[derive(Serialize)]
struct PlainToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    function: PlainFunction,
}

#[derive(Serialize)]
struct PlainFunction {
    name: String,
    arguments: String,
}

fn plain_choices(content: StreamContent) -> Vec<PlainChoice> {
    match content {
        StreamContent::Tool(call) => vec![PlainChoice {
            index: 0,
            finish_reason: "tool_calls",
            message: PlainMessage {
                role: "assistant",
                // Mistral sends an empty string, not null, beside tool calls.
                content: String::new(),
                tool_calls: Some(vec![PlainToolCall {
                    id: call.id,
                    kind: "function",
                    index: 0,
                    function: PlainFunction {
                        name: call.name,
                        arguments: call.arguments,
                    },
                }]),
            },
        }],
        StreamContent::Text(choices) => choices
            .into_iter()
            .zip(0u32..)
            .map(|(source, index)| {
                let finish_reason = source.finish().as_str();
                PlainChoice {
                    index,
                    finish_reason,
                    message: PlainMessage {
                        role: "assistant",
                        content: source.collect(),
                        tool_calls: None,
                    },
                }
            })
            .collect(),
    }
}

/// A `chat.completion` JSON answer.
fn plain(
    shared: &Shared,
    completion: Completion,
    plan: &FaultPlan,
    correlation: &str,
    limits: &RateLimits,
) -> Response {
    let usage = UsageBody {
        prompt_tokens: completion.prompt_tokens,
        completion_tokens: completion.completion_tokens,
        total_tokens: completion.prompt_tokens + completion.completion_tokens,
    };
    let body = PlainResponse {
        id: &completion.id,
        object: "chat.completion",
        created: completion.created,
        model: &completion.model,
        usage,
        choices: plain_choices(completion.content),
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let body = match plan.ending {
        Some(ending @ (Ending::Cut(_) | Ending::Stall(_) | Ending::Malformed(_))) => {
            faulty_plain_body(shared, json, ending)
        }
        _ => Body::from(json),
    };
    let mut response = response(200, JSON, body, correlation);
    limits.apply(&mut response);
    response
}

/// On a plain answer, the stream faults act on the JSON: half of it is sent,
/// then the connection is cut, stalls, or the body just ends.
fn faulty_plain_body(shared: &Shared, mut json: Vec<u8>, ending: Ending) -> Body {
    json.truncate(json.len() / 2);
    let half = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(json)) });
    let body = match ending {
        Ending::Cut(_) => half
            .chain(stream::once(async {
                // Let the half be flushed before the abort.
                tokio::task::yield_now().await;
                Err(std::io::Error::other("simulated connection cut"))
            }))
            .boxed(),
        Ending::Stall(_) => half.chain(stream::pending()).boxed(),
        _ => half.boxed(),
    };
    Body::from_stream(Guarded::new(body, shared.stopped(), None))
}

/// A `text/event-stream` answer, generated as it is sent.
fn streamed(
    shared: &Shared,
    completion: Completion,
    plan: &FaultPlan,
    correlation: &str,
) -> Response {
    let sse = SseBody::new(SsePlan {
        header: ChunkHeader::new(&completion.id, completion.created, &completion.model),
        content: completion.content,
        prompt_tokens: completion.prompt_tokens,
        completion_tokens: completion.completion_tokens,
        padding: shared
            .settings
            .padding
            .then(|| answer::padding_rng(completion.seed)),
        chunk_delay: plan.chunk_delay.unwrap_or(shared.settings.chunk_delay),
        ending: plan.ending,
    });
    let guard = StreamGuard::new(Arc::clone(&shared.recorder));
    let body = Body::from_stream(Guarded::new(sse, shared.stopped(), Some(guard)));
    response(200, EVENT_STREAM, body, correlation)
}

/// The answer to a [`Fault::Status`].
fn status_response(fault: &StatusFault, correlation: &str) -> Response {
    let (content_type, body) = match &fault.body {
        Some(body) => {
            let is_json = serde_json::from_str::<Value>(body).is_ok();
            let content_type = if is_json {
                JSON
            } else {
                "text/plain; charset=utf-8"
            };
            (content_type, body.clone())
        }
        None => (JSON, default_error_body(fault.status).to_string()),
    };
    let mut response = response(fault.status, content_type, Body::from(body), correlation);
    if let Some(retry_after) = &fault.retry_after {
        match HeaderValue::from_str(retry_after) {
            Ok(value) => {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
            Err(_) => tracing::warn!(
                retry_after,
                "retry-after fault value is not a valid header; left out"
            ),
        }
    }
    response
}

/// The body Mistral sends with a status, when the fault names none.
fn default_error_body(status: u16) -> Value {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Error");
    match status {
        429 => mistral_error("Requests rate limit exceeded", "rate_limited", Some("1300")),
        401 => json!({ "detail": "Unauthorized" }),
        404 => json!({ "detail": "Not Found" }),
        500..=599 => mistral_error(reason, "internal_server_error", None),
        _ => mistral_error(reason, "invalid_request_error", None),
    }
}

async fn list_models(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&shared, &method, &uri, &headers, &body);
    let correlation = shared.correlation_id();
    // Only the header's faults apply here; the script is for chat requests.
    if headers.contains_key(FAULT_HEADER) {
        match request_faults(&shared, &headers) {
            Ok(faults) => {
                let plan = FaultPlan::from_faults(&faults);
                if let Some(response) = apply_early_faults(&shared, &plan, &correlation).await {
                    return response;
                }
            }
            Err(message) => {
                let body = mistral_error(&message, "invalid_request_error", None);
                return json_response(400, &body, &correlation);
            }
        }
    }
    json_response(200, &super::models::model_list(unix_now()), &correlation)
}

async fn not_found(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&shared, &method, &uri, &headers, &body);
    let correlation = shared.correlation_id();
    json_response(404, &json!({ "detail": "Not Found" }), &correlation)
}

async fn method_not_allowed(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&shared, &method, &uri, &headers, &body);
    let correlation = shared.correlation_id();
    json_response(
        405,
        &json!({ "detail": "Method Not Allowed" }),
        &correlation,
    )
}

fn json_response(status: u16, body: &impl Serialize, correlation: &str) -> Response {
    let json = serde_json::to_vec(body).unwrap_or_default();
    response(status, JSON, Body::from(json), correlation)
}

/// A response with the headers every answer carries.
fn response(status: u16, content_type: &'static str, body: Body, correlation: &str) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(correlation) {
        headers.insert(
            HeaderName::from_static("mistral-correlation-id"),
            value.clone(),
        );
        // Mistral's gateway repeats the id under its own name.
        headers.insert(HeaderName::from_static("x-kong-request-id"), value);
    }
    response
}
