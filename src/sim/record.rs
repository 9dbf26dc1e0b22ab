//! What the simulator saw: the request log and the stream counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderMap, Method, Uri};
use serde_json::Value;
use tokio::sync::watch;

/// One request the simulator received, as tests see it.
///
/// The API key is never kept: only whether an `Authorization` header was
/// present.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The HTTP method, such as `POST`.
    pub method: String,
    /// The path, such as `/v1/chat/completions`, without the query.
    pub path: String,
    /// The query string without its `?`, when there was one.
    pub query: Option<String>,
    /// Whether the request had an `Authorization` header.
    pub authorization: bool,
    /// The non-secret headers, by lowercase name: `content-type`, `accept`,
    /// `user-agent` and every `x-*` header. Repeated headers are joined with
    /// `", "`.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON, or `Null` when it was empty or not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The value of a recorded header, by name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub(crate) fn new(method: &Method, uri: &Uri, headers: &HeaderMap, body: Value) -> Self {
        let mut kept: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let name = name.as_str();
            if !is_recorded_header(name) {
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            kept.entry(name.to_owned())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(&value);
                })
                .or_insert(value);
        }
        Self {
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            authorization: headers.contains_key(axum::http::header::AUTHORIZATION),
            headers: kept,
            body,
        }
    }
}

/// Header names arrive lowercase from the HTTP layer.
fn is_recorded_header(name: &str) -> bool {
    matches!(name, "content-type" | "accept" | "user-agent") || name.starts_with("x-")
}

/// The request log and counters, shared by the handlers and the handles.
#[derive(Debug)]
pub(crate) struct Recorder {
    requests: Mutex<Vec<RecordedRequest>>,
    chat_requests: AtomicUsize,
    tokens_used: AtomicU64,
    open_streams: AtomicUsize,
    /// The closed-stream count, watched by `wait_for_closed_streams`.
    closed_streams: watch::Sender<usize>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            chat_requests: AtomicUsize::new(0),
            tokens_used: AtomicU64::new(0),
            open_streams: AtomicUsize::new(0),
            closed_streams: watch::Sender::new(0),
        }
    }
}

impl Recorder {
    pub(crate) fn record(&self, request: RecordedRequest) {
        self.lock().push(request);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        // A panic elsewhere cannot leave the log half-written: pushes are
        // single operations, so a poisoned lock is still consistent.
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a chat request and returns how many there have been.
    pub(crate) fn count_chat(&self) -> usize {
        self.chat_requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn chat_requests(&self) -> usize {
        self.chat_requests.load(Ordering::Relaxed)
    }

    /// Adds a request's tokens and returns the total so far.
    pub(crate) fn use_tokens(&self, tokens: u64) -> u64 {
        self.tokens_used.fetch_add(tokens, Ordering::Relaxed) + tokens
    }

    pub(crate) fn open_streams(&self) -> usize {
        self.open_streams.load(Ordering::Relaxed)
    }

    pub(crate) fn closed_streams(&self) -> usize {
        *self.closed_streams.borrow()
    }

    pub(crate) async fn wait_for_closed_streams(&self, count: usize) {
        let mut watcher = self.closed_streams.subscribe();
        // The sender lives in `self`, so the wait cannot fail; it ends when
        // the count is reached.
        let _ = watcher.wait_for(|closed| *closed >= count).await;
    }
}

/// Lives inside a streamed body; counts it open while it exists and, when it
/// is dropped before it finished, as closed by the client.
#[derive(Debug)]
pub(crate) struct StreamGuard {
    recorder: Arc<Recorder>,
    finished: bool,
}

impl StreamGuard {
    pub(crate) fn new(recorder: Arc<Recorder>) -> Self {
        recorder.open_streams.fetch_add(1, Ordering::Relaxed);
        Self {
            recorder,
            finished: false,
        }
    }

    /// Marks the body as ended by the server: done, cut on purpose, or shut
    /// down. Dropping it afterwards is not a client going away.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.recorder.open_streams.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            self.recorder
                .closed_streams
                .send_modify(|closed| *closed += 1);
        }
    }
}
