//! An offline simulator of Mistral's chat API, for tests, demos and
//! benchmarks (feature `sim`, on by default).
//!
//! # The model
//!
//! The simulator is a real HTTP/1.1 server on `127.0.0.1` that answers the
//! way `https://api.mistral.ai` does, down to the framing of its event
//! streams. A client cannot tell it from the real API except by what it
//! says:
//!
//! - `POST /v1/chat/completions` validates the body as Mistral does (unknown
//!   fields are a 422 `extra_forbidden`, a bad role order a 400) and answers
//!   with a plain `chat.completion` or, with `stream: true`, with
//!   `data: {…}` events: a role-only chunk, one chunk per token carrying a
//!   `p` padding field, a final chunk with `finish_reason` and `usage`, then
//!   `data: [DONE]`. Plain answers carry Mistral's `x-ratelimit-*` headers.
//!   With a function tool and `tool_choice` `any`, `required` or a function
//!   name, the answer is a tool call instead of text.
//! - `GET /v1/models` lists a few base models.
//! - Every other path is a 404 `{"detail":"Not Found"}`.
//!
//! Any `Authorization` header is accepted, and so is none. The request log
//! records whether one was present, never its value.
//!
//! # Determinism
//!
//! An answer depends only on the request: its model, its messages and its
//! `random_seed`. The same request gets the same text plain and streamed,
//! today and tomorrow, and [`answer_text`] computes it without a server.
//! `max_tokens` cuts that text short (`finish_reason: "length"`), and
//! `metadata: {"sim_tokens": N}` makes it exactly `N` tokens long, for
//! benchmarks. A trailing assistant message with `prefix: true` is
//! *continued*: when its text is the start of the answer, only the rest is
//! sent, so `prefix + continuation` is the uncut answer byte for byte.
//!
//! # Faults
//!
//! A [`Fault`] makes one request go wrong: an error status, a slow first
//! byte, slow chunks, a cut or stalled connection, a malformed chunk, or a
//! missing `[DONE]`. Faults come from three places:
//!
//! 1. **The script**, a queue of fault sets: each chat request takes the
//!    next set ([`Simulator::push_fault`], [`Simulator::push_faults`],
//!    [`SimulatorBuilder::fault`]). A request that finds the script empty is
//!    answered normally.
//! 2. **The `x-sim-fault` header** of a request, such as
//!    `x-sim-fault: chunk-delay=10ms;cut-after=3`. It replaces the script
//!    for that request and leaves the script untouched. On `GET /v1/models`
//!    only its status and first-byte-delay faults apply.
//! 3. **A default chunk delay** for every stream
//!    ([`SimulatorBuilder::chunk_delay`]), for demos that should look slow.
//!
//! # Observing
//!
//! [`Simulator::requests`] returns the request log,
//! [`Simulator::open_streams`] and [`Simulator::closed_streams`] count
//! streamed bodies being sent and abandoned by their client, and
//! [`Simulator::wait_for_closed_streams`] waits for a client to go away.
//!
//! # Running it
//!
//! In process, start it on a free port and point a client at
//! [`Simulator::base_url`]:
//!
//! ```
//! use mistral_events::sim::{Fault, Simulator};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let sim = Simulator::start().await?;
//!     let http = reqwest::Client::new();
//!
//!     let models: serde_json::Value = http
//!         .get(format!("{}/v1/models", sim.base_url()))
//!         .send()
//!         .await?
//!         .json()
//!         .await?;
//!     assert_eq!(models["object"], "list");
//!
//!     // The next chat request is rate limited.
//!     sim.push_fault(Fault::status(429).with_retry_after("1"));
//!     let response = http
//!         .post(format!("{}/v1/chat/completions", sim.base_url()))
//!         .json(&serde_json::json!({
//!             "model": "mistral-small-latest",
//!             "messages": [{"role": "user", "content": "Hi"}],
//!         }))
//!         .send()
//!         .await?;
//!     assert_eq!(response.status(), 429);
//!     assert_eq!(response.headers()["retry-after"], "1");
//!
//!     sim.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! From the command line, with faults in the same text syntax as
//! [`Fault`]'s `FromStr`:
//!
//! ```text
//! mistral-events sim --port 8080 --fault status=429,retry-after=1
//! ```

mod answer;
mod fault;
mod models;
mod record;
mod routes;
mod state;
mod stream;
mod validate;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

pub use answer::{answer_text, answer_tokens};
pub use fault::{Fault, FaultParseError};
pub use record::RecordedRequest;

use state::{Settings, Shared};

/// How long [`Simulator::shutdown`] waits for connections to finish before
/// it stops the server outright.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The accept queue length asked for; the system may cap it.
const ACCEPT_BACKLOG: u32 = 8192;

/// A running simulator: a cheap handle to the server and what it saw.
///
/// Clones share the server. It stops on [`Simulator::shutdown`], or once the
/// last handle is dropped.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    server: Arc<ServerTask>,
    addr: SocketAddr,
}

/// Owns the server task; stops the server when the last handle goes.
struct ServerTask {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .field("requests", &self.shared.recorder.chat_requests())
            .field("open_streams", &self.open_streams())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// A builder, to set the port, delays, padding or a fault script.
    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder::default()
    }

    /// Starts a simulator with the default settings on a free port; the same
    /// as `Simulator::builder().start()`.
    pub async fn start() -> io::Result<Simulator> {
        Self::builder().start().await
    }

    /// The base URL, `http://127.0.0.1:PORT`: no `/v1`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends one fault to the script: the next chat request that finds no
    /// earlier entry gets it.
    pub fn push_fault(&self, fault: Fault) {
        self.shared.push_faults(vec![fault]);
    }

    /// Appends a set of faults that one request gets together, such as a
    /// chunk delay and a cut. Within a set, the last fault of each kind wins
    /// (cut, stall, malformed and no-done are one kind). An empty set makes
    /// one request normal.
    pub fn push_faults(&self, faults: Vec<Fault>) {
        self.shared.push_faults(faults);
    }

    /// Every request received so far, on any path, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.requests()
    }

    /// How many chat completion requests were received, valid or not.
    pub fn request_count(&self) -> usize {
        self.shared.recorder.chat_requests()
    }

    /// How many streamed bodies are being sent right now.
    pub fn open_streams(&self) -> usize {
        self.shared.recorder.open_streams()
    }

    /// How many streamed bodies were dropped before they finished: their
    /// client went away. Bodies the simulator ended itself (done, cut by a
    /// fault, or shut down) do not count.
    pub fn closed_streams(&self) -> usize {
        self.shared.recorder.closed_streams()
    }

    /// Waits until [`Simulator::closed_streams`] is at least `count`. It
    /// waits on a notification, not a timer; wrap it in a timeout in tests.
    pub async fn wait_for_closed_streams(&self, count: usize) {
        self.shared.recorder.wait_for_closed_streams(count).await;
    }

    /// Stops the server gracefully: it stops accepting connections, ends the
    /// bodies being streamed (stalled ones too) and waits, at most a few
    /// seconds, for the connections to close. Other handles see it stopped.
    pub async fn shutdown(self) {
        self.shared.stop();
        let task = self
            .server
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut task) = task else {
            return;
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(Ok(Err(error))) => tracing::warn!(%error, "simulator server failed"),
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("simulator connections did not close in time; stopping it");
                task.abort();
            }
        }
    }
}

/// Settings for a [`Simulator`], applied by [`SimulatorBuilder::start`].
#[must_use]
#[derive(Debug, Clone)]
pub struct SimulatorBuilder {
    port: u16,
    chunk_delay: Duration,
    padding: bool,
    script: VecDeque<Vec<Fault>>,
}

impl Default for SimulatorBuilder {
    fn default() -> Self {
        Self {
            port: 0,
            chunk_delay: Duration::ZERO,
            padding: true,
            script: VecDeque::new(),
        }
    }
}

impl SimulatorBuilder {
    /// The port to listen on, on `127.0.0.1`. Default: 0, a free port chosen
    /// by the system (read it back with [`Simulator::local_addr`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// A wait before every streamed event after the first, for every
    /// request. A `chunk-delay` fault overrides it for its request.
    /// Default: zero.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Appends one fault to the starting script (see
    /// [`Simulator::push_fault`]); call it again for the next request.
    /// Default: an empty script.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.script.push_back(vec![fault]);
        self
    }

    /// Appends a set of faults that one request gets together (see
    /// [`Simulator::push_faults`]). Default: an empty script.
    pub fn faults(mut self, faults: Vec<Fault>) -> Self {
        self.script.push_back(faults);
        self
    }

    /// Whether content chunks carry Mistral's `p` padding field. Default:
    /// true.
    pub fn padding(mut self, padding: bool) -> Self {
        self.padding = padding;
        self
    }

    /// Binds the port and starts serving in a background task.
    pub async fn start(self) -> io::Result<Simulator> {
        let listener = bind(self.port)?;
        let addr = listener.local_addr()?;
        let settings = Settings {
            chunk_delay: self.chunk_delay,
            padding: self.padding,
        };
        let shared = Arc::new(Shared::new(settings, self.script));
        let router = routes::router(Arc::clone(&shared));
        // Small events must not wait for Nagle's algorithm.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let stopped = shared.stopped();
        let server = axum::serve(listener, router).with_graceful_shutdown(stopped);
        let task = tokio::spawn(async move { server.await });
        tracing::debug!(%addr, "simulator listening");
        Ok(Simulator {
            server: Arc::new(ServerTask {
                shared: Arc::clone(&shared),
                task: Mutex::new(Some(task)),
            }),
            shared,
            addr,
        })
    }
}

/// Listens on `127.0.0.1:port` with a deep accept queue: benchmarks open
/// thousands of connections at once, and a short queue makes their connects
/// wait for SYN retransmissions.
fn bind(port: u16) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Runs a simulator until `shutdown` resolves, then stops it gracefully; for
/// the command line. It prints nothing itself; the address is logged with
/// `tracing` at info level.
///
/// ```no_run
/// use mistral_events::sim::{serve_until, Fault, Simulator};
///
/// # async fn run() -> std::io::Result<()> {
/// let builder = Simulator::builder()
///     .port(8080)
///     .fault("status=429,retry-after=1".parse::<Fault>().expect("valid fault"));
/// serve_until(builder, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await
/// # }
/// ```
pub async fn serve_until(
    builder: SimulatorBuilder,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let simulator = builder.start().await?;
    tracing::info!(url = %simulator.base_url(), "simulator listening");
    shutdown.await;
    simulator.shutdown().await;
    Ok(())
}
