//! What the CLI prints on stdout while a chat streams.
//!
//! The sink is a reliable subscriber, so `--events jsonl` prints every event
//! even when stdout is slow. A closed pipe (`mistral-events chat … | head`)
//! is not an error to report: the sink raises [`PipeClosed`] and the command
//! cancels the chat and ends quietly.

use std::io::{self, Write};
use std::sync::Arc;

use async_trait::async_trait;
use mistral_events::bus::Subscriber;
use mistral_events::error::BoxError;
use mistral_events::event::{Event, EventPayload};
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
}

impl StdoutSink {
    pub(crate) fn new(mode: EventsMode, closed: PipeClosed) -> Self {
        Self {
            mode,
            closed,
            broken: false,
            printed_text: false,
        }
    }

    fn write(&mut self, event: &Event) -> io::Result<()> {
        let mut out = io::stdout().lock();
        match self.mode {
            EventsMode::Jsonl => {
                out.write_all(event.to_json().as_bytes())?;
                out.write_all(b"\n")?;
            }
            EventsMode::Text => match &event.payload {
                EventPayload::Chunk { content, .. } => {
                    out.write_all(content.as_bytes())?;
                    self.printed_text = true;
                }
                _ if event.is_terminal() && self.printed_text => out.write_all(b"\n")?,
                _ => return Ok(()),
            },
            EventsMode::None => return Ok(()),
        }
        out.flush()
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
        match self.write(&event) {
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
