//! Prints answer text as it streams.

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use async_trait::async_trait;

use super::OutputClosed;
use crate::bus::Subscriber;
use crate::error::BoxError;
use crate::event::{Event, EventPayload};

/// Writes each chunk's text to a writer as it arrives, and a newline when
/// the call ends.
///
/// Register it reliable, so that no chunk is skipped. It prints the chunks
/// of every call on the bus, in arrival order; filter on one request
/// ([`EventFilter::request`]) to print one answer. With several choices
/// (`n` > 1) it prints the first.
///
/// The writer is a blocking [`std::io::Write`], flushed after every chunk:
/// fine for a terminal or a pipe, where a write takes microseconds. A write
/// that blocks holds a runtime thread meanwhile; on a `current_thread`
/// runtime that stalls everything, including the timer that would detach
/// the printer. For a slow sink, use
/// [`JsonlRecorder`](super::JsonlRecorder), which writes asynchronously.
///
/// A write error makes [`on_event`](Subscriber::on_event) fail, so it is
/// counted. A broken pipe also raises [`closed`](Self::closed), after which
/// the printer writes nothing more and fails no more.
///
/// # Examples
///
/// ```
/// use mistral_events::bus::{EventFilter, MistralEventBus, SubscribeOptions};
/// use mistral_events::subscribers::TerminalPrinter;
/// use mistral_events::{Client, RequestId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mistral_events::Error> {
/// let bus = MistralEventBus::new(Client::builder().build()?);
/// let id = RequestId::new("r1").unwrap();
/// let printer = TerminalPrinter::stdout().show_thinking(true);
/// let closed = printer.closed();
/// let options = SubscribeOptions::reliable().filter(EventFilter::all().request(id));
/// bus.register(printer, options);
/// // ... run the chat, stopping it early if `closed.is_closed()`.
/// # bus.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// [`EventFilter::request`]: crate::bus::EventFilter::request
pub struct TerminalPrinter {
    out: Box<dyn Write + Send>,
    show_thinking: bool,
    /// Whether a `[` of reasoning text is open.
    in_thinking: bool,
    closed: OutputClosed,
}

impl TerminalPrinter {
    /// A printer to standard output.
    pub fn stdout() -> Self {
        Self::new(io::stdout())
    }

    /// A printer to `writer`.
    pub fn new(writer: impl Write + Send + 'static) -> Self {
        Self {
            out: Box::new(writer),
            show_thinking: false,
            in_thinking: false,
            closed: OutputClosed::default(),
        }
    }

    /// Also prints reasoning text, in square brackets before the answer.
    /// Default: false.
    #[must_use]
    pub fn show_thinking(mut self, show: bool) -> Self {
        self.show_thinking = show;
        self
    }

    /// A handle that tells when the output's reader went away.
    pub fn closed(&self) -> OutputClosed {
        self.closed.clone()
    }

    fn print(&mut self, event: &Event) -> io::Result<()> {
        match &event.payload {
            EventPayload::Chunk {
                content, choice, ..
            } if is_first_choice(*choice) => {
                self.end_thinking()?;
                self.out.write_all(content.as_bytes())?;
            }
            EventPayload::Thinking { content, choice }
                if self.show_thinking && is_first_choice(*choice) =>
            {
                if !self.in_thinking {
                    self.out.write_all(b"[")?;
                    self.in_thinking = true;
                }
                self.out.write_all(content.as_bytes())?;
            }
            _ if event.is_terminal() => {
                self.end_thinking()?;
                self.out.write_all(b"\n")?;
            }
            _ => return Ok(()),
        }
        self.out.flush()
    }

    fn end_thinking(&mut self) -> io::Result<()> {
        if self.in_thinking {
            self.in_thinking = false;
            self.out.write_all(b"]")?;
        }
        Ok(())
    }
}

/// Whether a chunk belongs to the first (or only) choice.
fn is_first_choice(choice: Option<u32>) -> bool {
    choice.unwrap_or(0) == 0
}

#[async_trait]
impl Subscriber for TerminalPrinter {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        // Once the reader is gone there is nothing left to do, and nothing
        // more to report.
        if self.closed.is_closed() {
            return Ok(());
        }
        let printed = self.print(&event);
        if let Err(error) = &printed {
            if error.kind() == io::ErrorKind::BrokenPipe {
                self.closed.raise();
            }
        }
        Ok(printed?)
    }
}

impl fmt::Debug for TerminalPrinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminalPrinter")
            .field("show_thinking", &self.show_thinking)
            .field("closed", &self.closed.is_closed())
            .finish_non_exhaustive()
    }
}
