//! What the CLI prints on stdout while a chat streams.
//!
//! The sink is a reliable subscriber, so `--events jsonl` prints every event
//! even when stdout is slow. A closed pipe (`mistral-events chat … | head`)
//! is not an error to report: the sink raises [`PipeClosed`] and the command
//! cancels the chat and ends quietly.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use mistral_events::bus::Subscriber;
use mistral_events::error::BoxError;
use mistral_events::event::{Event, EventPayload};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::args::EventsMode;

/// Raised once when stdout's reader has gone away.
#[derive(Debug, Clone, Default)]
pub(crate) struct PipeClosed(Arc<Notify>);

impl PipeClosed {
    /// Resolves once the pipe closed.
    pub(crate) async fn wait(&self) {
        self.0.notified().await;
    }

    fn raise(&self) {
        // `notify_one` stores a permit, so a waiter arriving late still wakes.
        self.0.notify_one();
    }
}

/// Prints the answer (`text`) or every event (`jsonl`) on stdout.
#[derive(Debug)]
pub(crate) struct StdoutSink {
    mode: EventsMode,
    closed: PipeClosed,
    broken: bool,
    printed_text: bool,
    out: tokio::io::Stdout,
}

impl StdoutSink {
    pub(crate) fn new(mode: EventsMode, closed: PipeClosed) -> Self {
        Self {
            mode,
            closed,
            broken: false,
            printed_text: false,
            out: tokio::io::stdout(),
        }
    }

    /// Writes what `mode` shows of `event`. Asynchronous, so that a stalled
    /// reader blocks this task only, never a runtime thread.
    async fn write(&mut self, event: &Event) -> io::Result<()> {
        match self.mode {
            EventsMode::Jsonl => {
                let mut line = event.to_json();
                line.push('\n');
                self.out.write_all(line.as_bytes()).await?;
            }
            EventsMode::Text => match &event.payload {
                EventPayload::Chunk { content, .. } => {
                    self.out.write_all(content.as_bytes()).await?;
                    self.printed_text = true;
                }
                _ if event.is_terminal() && self.printed_text => self.out.write_all(b"\n").await?,
                _ => return Ok(()),
            },
            EventsMode::None => return Ok(()),
        }
        self.out.flush().await
    }
}

#[async_trait]
impl Subscriber for StdoutSink {
    fn name(&self) -> String {
        "stdout".to_owned()
    }

    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        if self.broken {
            return Ok(());
        }
        match self.write(&event).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                self.broken = true;
                self.closed.raise();
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }
}
