//! The HTTP client for Mistral's API.
//!
//! A [`Client`] is built once with [`Client::builder`] (or
//! [`Client::from_env`]) and is cheap to clone: clones share the connection
//! pool. It sends typed requests from [`crate::wire`] and returns typed
//! answers, or an [`Error`] that says what went wrong.
//!
//! - [`Client::chat`] sends one request and waits for the whole answer.
//! - [`Client::chat_stream`] returns a [`ChatStream`]: a `Stream` that
//!   does its work only while it is polled. There is no background task;
//!   dropping the stream closes the connection.
//!
//! Both retry a failed request while no answer has begun (see
//! [`RetryPolicy`]) and apply the three [`Timeouts`]. Results and errors
//! carry the response's [`ResponseMeta`]: its `mistral-correlation-id` and
//! the `x-ratelimit-*` headers.
//!
//! The API key is held as a secret: it is never in `Debug` output, errors,
//! events or logs, and its header is marked sensitive.
//!
//! ```no_run
//! use mistral_events::wire::{ChatRequest, Message};
//! use mistral_events::Client;
//!
//! # async fn demo() -> Result<(), mistral_events::Error> {
//! let client = Client::from_env()?;
//! let request = ChatRequest::new("mistral-small-latest", vec![Message::user("Say hi")]);
//! let answer = client.chat(request).await?;
//! println!("{}", answer.response.text());
//! # Ok(())
//! # }
//! ```

mod assemble;
mod chunk;
mod config;
mod meta;
pub(crate) mod retry;
mod stream;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT,
};
use secrecy::{ExposeSecret, SecretString};

pub use assemble::{ChatAssembler, ChoiceState, Piece, MAX_CHOICES};
pub use config::{RetryPolicy, Timeouts};
pub use meta::{RateLimits, ResponseMeta};
pub(crate) use stream::Polled;
pub use stream::{ChatStream, RetryNotice, StreamEvent};

use crate::error::Error;
use crate::wire::{ChatRequest, ChatResponse, ModelList};
use retry::{parse_retry_after, RetryState};

/// The API's origin when `MISTRAL_BASE_URL` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.mistral.ai";

/// The largest error body read, in bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A client for Mistral's HTTP API. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<SecretString>,
    headers: HeaderMap,
    timeouts: Timeouts,
    retry: RetryPolicy,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field(
                "api_key",
                &self.inner.api_key.as_ref().map(|_| "[redacted]"),
            )
            .field("timeouts", &self.inner.timeouts)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// An answer from [`Client::chat`], with what its headers said.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChatResult {
    /// The parsed answer.
    pub response: ChatResponse,
    /// The correlation id and rate limits.
    pub meta: ResponseMeta,
}

impl Client {
    /// A builder with every option at its default.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured from the environment: `MISTRAL_API_KEY` sets the
    /// key and `MISTRAL_BASE_URL` the origin (an empty value counts as
    /// unset).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `MISTRAL_BASE_URL` is not a valid origin.
    pub fn from_env() -> Result<Self, Error> {
        ClientBuilder::default().from_env().build()
    }

    /// The origin requests go to, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Whether a key is set.
    pub fn has_api_key(&self) -> bool {
        self.inner.api_key.is_some()
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.inner.timeouts
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// Sends a chat request and waits for the whole answer.
    ///
    /// `stream` is forced to false.
    ///
    /// # Errors
    ///
    /// An [`Error`] when every attempt failed, the body was not a chat
    /// completion, or a timeout elapsed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the request and closes its connection.
    pub async fn chat(&self, mut request: ChatRequest) -> Result<ChatResult, Error> {
        request.stream = None;
        let body = encode(&request)?;
        let response = self.send_with_retries("/v1/chat/completions", body).await?;
        let meta = ResponseMeta::from_parts(response.status().as_u16(), response.headers());
        let bytes = self.read_body(response, usize::MAX).await?;
        let response = serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            source,
            partial: String::new(),
        })?;
        Ok(ChatResult { response, meta })
    }

    /// Starts a streamed chat. Nothing is sent until the stream is first
    /// polled.
    ///
    /// `stream` is forced to true. The stream yields
    /// [`StreamEvent`]s: a notice before each retry wait, one
    /// `Connected` once the answer starts, then the chunks. It ends after
    /// `[DONE]`, or after yielding one error.
    pub fn chat_stream(&self, mut request: ChatRequest) -> ChatStream {
        request.stream = Some(true);
        match encode(&request) {
            Ok(body) => ChatStream::new(self.clone(), body),
            Err(error) => ChatStream::failed(error),
        }
    }

    /// Lists the models the key can use.
    ///
    /// # Errors
    ///
    /// An [`Error`] when the request failed or the answer did not parse.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the request.
    pub async fn models(&self) -> Result<ModelList, Error> {
        let response = self.send_once_get("/v1/models").await?;
        let bytes = self.read_body(response, usize::MAX).await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            source,
            partial: String::new(),
        })
    }

    /// Sends a POST with retries until a 2xx response starts.
    async fn send_with_retries(&self, path: &str, body: Bytes) -> Result<reqwest::Response, Error> {
        let mut retries = RetryState::new(self.inner.retry);
        loop {
            match self.send_once(path, body.clone()).await {
                Ok(response) => return Ok(response),
                Err(error) => match retries.plan(&error) {
                    Some(plan) => tokio::time::sleep(plan.delay).await,
                    None => return Err(error),
                },
            }
        }
    }

    /// One POST attempt: a 2xx response, or the error it turned into.
    pub(crate) async fn send_once(
        &self,
        path: &str,
        body: Bytes,
    ) -> Result<reqwest::Response, Error> {
        let request = self
            .inner
            .http
            .post(self.url(path))
            .headers(self.request_headers())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.finish_send(request).await
    }

    async fn send_once_get(&self, path: &str) -> Result<reqwest::Response, Error> {
        let request = self
            .inner
            .http
            .get(self.url(path))
            .headers(self.request_headers());
        self.finish_send(request).await
    }

    /// Sends, applies the first-byte timeout, and turns non-2xx answers into
    /// errors.
    async fn finish_send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let timeouts = self.inner.timeouts;
        tracing::trace!(target: "mistral_events::client", "sending request");
        let response = match tokio::time::timeout(timeouts.first_byte, request.send()).await {
            Err(_) => {
                return Err(Error::Timeout {
                    phase: crate::error::TimeoutPhase::FirstByte,
                    limit: timeouts.first_byte,
                    partial: String::new(),
                })
            }
            Ok(Err(error)) => return Err(Error::from_reqwest(error, timeouts.connect)),
            Ok(Ok(response)) => response,
        };
        if response.status().is_success() {
            return Ok(response);
        }

        let status = response.status().as_u16();
        let meta = ResponseMeta::from_parts(status, response.headers());
        let retry_after = parse_retry_after(response.headers());
        // A body that cannot be read still leaves the status to report.
        let body = self
            .read_body(response, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        tracing::debug!(target: "mistral_events::client", status, "error response");
        Err(Error::from_response(status, meta, &body, retry_after))
    }

    /// Reads a whole body, at most `limit` bytes, with the idle timeout
    /// between reads.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, Error> {
        let idle = self.inner.timeouts.idle;
        let mut body = Vec::new();
        loop {
            let next = tokio::time::timeout(idle, response.chunk())
                .await
                .map_err(|_| Error::Timeout {
                    phase: crate::error::TimeoutPhase::Idle,
                    limit: idle,
                    partial: String::new(),
                })?;
            match next.map_err(|error| Error::from_reqwest(error, self.inner.timeouts.connect))? {
                Some(piece) => {
                    let room = limit.saturating_sub(body.len());
                    body.extend_from_slice(&piece[..piece.len().min(room)]);
                    if body.len() >= limit {
                        return Ok(body);
                    }
                }
                None => return Ok(body),
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base_url)
    }

    fn request_headers(&self) -> HeaderMap {
        let mut headers = self.inner.headers.clone();
        if let Some(key) = &self.inner.api_key {
            // Built per request from the secret; marked sensitive so that
            // hyper and reqwest never print it.
            if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
            {
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
        }
        headers
    }
}

fn encode(request: &ChatRequest) -> Result<Bytes, Error> {
    serde_json::to_vec(request)
        .map(Bytes::from)
        .map_err(|error| Error::Config(format!("request does not serialise: {error}")))
}

/// Builds a [`Client`]. Every setter states its default.
#[must_use]
#[derive(Default)]
pub struct ClientBuilder {
    api_key: Option<SecretString>,
    base_url: Option<String>,
    timeouts: Timeouts,
    retry: RetryPolicy,
    headers: Vec<(String, String)>,
    user_agent: Option<String>,
    http: Option<reqwest::Client>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Reads `MISTRAL_API_KEY` and `MISTRAL_BASE_URL`, when set and not
    /// empty, over what was set before.
    pub fn from_env(mut self) -> Self {
        if let Some(key) = env_value("MISTRAL_API_KEY") {
            self.api_key = Some(SecretString::from(key));
        }
        if let Some(url) = env_value("MISTRAL_BASE_URL") {
            self.base_url = Some(url);
        }
        self
    }

    /// The API key, sent as a bearer token. Default: none.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(SecretString::from(key.into()));
        self
    }

    /// The origin, `scheme://host[:port][/prefix]` without `/v1` (the client
    /// appends `/v1/…`); a trailing slash is ignored. Default:
    /// `https://api.mistral.ai`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// All three timeouts at once. Default: [`Timeouts::default`].
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The connect timeout. Default 10 s. Ignored with
    /// [`http_client`](Self::http_client), whose own setting applies.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self
    }

    /// The first-byte timeout. Default 120 s.
    pub fn first_byte_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.first_byte = timeout;
        self
    }

    /// The idle timeout between body reads. Default 60 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.idle = timeout;
        self
    }

    /// The retry policy. Default: [`RetryPolicy::default`] (2 retries).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Retries after the first attempt. Default 2.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.retry.max_retries = retries;
        self
    }

    /// A header sent with every request. Default: none.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The `User-Agent`. Default: `mistral-events/<version>`.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = Some(agent.into());
        self
    }

    /// Your own `reqwest::Client`, for proxies, TLS roots and pool settings.
    /// Default: a client built with the connect timeout and rustls.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a base URL that is not an http(s) origin, a
    /// key or header that cannot be sent in HTTP, or a TLS setup failure.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(key) = &self.api_key {
            // Checked here, so that a key with a newline fails loudly
            // instead of being left out of every request. The message
            // must not quote the key.
            if HeaderValue::from_str(&format!("Bearer {}", key.expose_secret())).is_err() {
                return Err(Error::Config(
                    "the API key holds characters that cannot be sent in a header".to_owned(),
                ));
            }
        }
        let base_url = normalise_base_url(self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))?;
        let headers = self.header_map()?;
        let http = match self.http {
            Some(http) => http,
            // Redirects are not followed: a 3xx would turn the POST into a
            // GET and hide where the request went. It surfaces as an error.
            None => reqwest::Client::builder()
                .connect_timeout(self.timeouts.connect)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|error| Error::Config(format!("HTTP client setup failed: {error}")))?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                api_key: self.api_key,
                headers,
                timeouts: self.timeouts,
                retry: self.retry,
            }),
        })
    }

    fn header_map(&self) -> Result<HeaderMap, Error> {
        let mut headers = HeaderMap::new();
        let agent = self
            .user_agent
            .clone()
            .unwrap_or_else(|| concat!("mistral-events/", env!("CARGO_PKG_VERSION")).to_owned());
        let agent = HeaderValue::from_str(&agent)
            .map_err(|_| Error::Config("user agent is not a valid header value".to_owned()))?;
        headers.insert(USER_AGENT, agent);
        for (name, value) in &self.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Config(format!("invalid header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::Config(format!("invalid value for header {name:?}")))?;
            headers.append(header, value);
        }
        Ok(headers)
    }
}

/// An environment variable's value; empty counts as unset.
pub(crate) fn env_value(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Checks an origin and strips its trailing slash.
fn normalise_base_url(raw: &str) -> Result<String, Error> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed)
        .map_err(|error| Error::Config(format!("base URL {trimmed:?} is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::Config(format!(
            "base URL {trimmed:?} must look like http(s)://host[:port][/prefix]"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
            "base URL {trimmed:?} must not have a query or fragment"
        )));
    }
    if url.path().trim_end_matches('/').ends_with("/v1") {
        return Err(Error::Config(format!(
            "base URL {trimmed:?} ends in /v1; give the origin only, the client appends /v1/…"
        )));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_drops_the_trailing_slash_and_keeps_a_prefix() {
        assert_eq!(
            normalise_base_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalise_base_url("https://proxy.example/mistral").unwrap(),
            "https://proxy.example/mistral"
        );
    }

    #[test]
    fn base_url_rejects_v1_other_schemes_and_junk() {
        for bad in [
            "https://api.mistral.ai/v1",
            "ftp://host",
            "not a url",
            "http://h/?q=1",
        ] {
            assert!(
                matches!(normalise_base_url(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let client = Client::builder()
            .api_key("sk-very-secret-key")
            .build()
            .unwrap();
        let shown = format!(
            "{client:?} {:?}",
            Client::builder().api_key("sk-very-secret-key")
        );
        assert!(!shown.contains("sk-very-secret-key"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_refused_without_quoting_it() {
        let error = Client::builder()
            .api_key("sk-abc\ndef")
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Config);
        assert!(!error.to_string().contains("sk-abc"));
    }

    #[test]
    fn authorization_header_is_sensitive() {
        let client = Client::builder().api_key("sk-abc").build().unwrap();
        let headers = client.request_headers();
        assert!(headers[AUTHORIZATION].is_sensitive());
        assert!(!format!("{headers:?}").contains("sk-abc"));
    }
}
