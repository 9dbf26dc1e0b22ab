//! Records events as JSON lines.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use super::{OutputClosed, LOG_TARGET};
use crate::bus::Subscriber;
use crate::error::BoxError;
use crate::event::Event;

/// Writes every event as one line of JSON: the format of the CLI's
/// `--events jsonl`, which parses back into [`Event`].
///
/// Register it reliable to record every event: a lossy recorder that falls
/// behind leaves gaps. Writes are buffered, and flushed at the end of each
/// call (its terminal event) and at shutdown, so after
/// [`MistralEventBus::shutdown`] returns the file holds everything.
///
/// A write error makes [`on_event`](Subscriber::on_event) fail, so it is
/// counted. A broken pipe also raises [`closed`](Self::closed), after which
/// the recorder writes nothing more.
///
/// # Examples
///
/// ```
/// use mistral_events::bus::{MistralEventBus, SubscribeOptions};
/// use mistral_events::subscribers::JsonlRecorder;
/// use mistral_events::Client;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("doc-events-{}.jsonl", std::process::id()));
/// let bus = MistralEventBus::new(Client::builder().build()?);
/// bus.register(JsonlRecorder::create(&path).await?, SubscribeOptions::reliable());
/// // ... run chats ...
/// bus.shutdown().await;
/// # std::fs::remove_file(&path)?;
/// # Ok(())
/// # }
/// ```
///
/// [`MistralEventBus::shutdown`]: crate::bus::MistralEventBus::shutdown
pub struct JsonlRecorder {
    out: BufWriter<Box<dyn AsyncWrite + Unpin + Send>>,
    /// Reused for every line, so recording allocates nothing per event.
    line: Vec<u8>,
    closed: OutputClosed,
}

impl JsonlRecorder {
    /// A recorder into a new file at `path`, replacing any file there.
    ///
    /// # Errors
    ///
    /// When the file cannot be created.
    ///
    /// # Cancel safety
    ///
    /// Cancelling may leave an empty file behind.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = tokio::fs::File::create(path).await?;
        Ok(Self::new(file))
    }

    /// A recorder into `writer`.
    pub fn new(writer: impl AsyncWrite + Unpin + Send + 'static) -> Self {
        let writer: Box<dyn AsyncWrite + Unpin + Send> = Box::new(writer);
        Self {
            out: BufWriter::new(writer),
            line: Vec::with_capacity(256),
            closed: OutputClosed::default(),
        }
    }

    /// A handle that tells when the output's reader went away.
    pub fn closed(&self) -> OutputClosed {
        self.closed.clone()
    }

    async fn record(&mut self, event: &Event) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line).await?;
        if event.is_terminal() {
            self.out.flush().await?;
        }
        Ok(())
    }

    fn note_error(&self, error: &io::Error) {
        if error.kind() == io::ErrorKind::BrokenPipe {
            self.closed.raise();
        }
    }
}

#[async_trait]
impl Subscriber for JsonlRecorder {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        if self.closed.is_closed() {
            return Ok(());
        }
        let recorded = self.record(&event).await;
        if let Err(error) = &recorded {
            self.note_error(error);
        }
        Ok(recorded?)
    }

    async fn on_shutdown(&mut self) {
        if self.closed.is_closed() {
            return;
        }
        if let Err(error) = self.out.flush().await {
            self.note_error(&error);
            // The last events are lost; someone relying on the file must
            // know.
            tracing::warn!(target: LOG_TARGET, %error, "JSONL recorder could not flush at shutdown");
        }
    }
}

impl fmt::Debug for JsonlRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlRecorder")
            .field("buffered", &self.out.buffer().len())
            .field("closed", &self.closed.is_closed())
            .finish_non_exhaustive()
    }
}
