//! The publisher's end of a reliable subscriber's queue.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, error::SendTimeoutError, error::TrySendError};

use super::stats::Counters;
use super::stream::EventFilter;
use super::subscriber::SubscriberId;
use crate::event::Event;

/// A reliable subscriber as publishers see it.
#[derive(Debug)]
pub(crate) struct ReliableQueue {
    pub(crate) id: SubscriberId,
    pub(crate) name: String,
    pub(crate) counters: Arc<Counters>,
    pub(crate) filter: EventFilter,
    pub(crate) max_wait: Duration,
    pub(crate) sender: mpsc::Sender<Arc<Event>>,
}

/// Why a queue stopped taking events.
#[derive(Debug, Clone, Copy)]
pub(crate) enum QueueFailure {
    /// It stayed full for the whole maximum wait.
    Stuck(Duration),
    /// Its subscriber's task is gone.
    Stopped,
}

impl fmt::Display for QueueFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stuck(wait) => write!(f, "its queue stayed full for {wait:?}"),
            Self::Stopped => f.write_str("its task stopped"),
        }
    }
}

impl ReliableQueue {
    /// Queues `event` if the filter wants it, waiting up to the maximum for
    /// room.
    pub(crate) async fn offer(&self, event: &Arc<Event>) -> Result<(), QueueFailure> {
        // A publisher holding an older snapshot may still see a queue that
        // another one detached; it must not wait on it again.
        if !self.filter.matches(event) || self.counters.is_detached() {
            return Ok(());
        }

        // The common case, room in the queue, costs no timer.
        let event = match self.sender.try_send(Arc::clone(event)) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(event)) => event,
            Err(TrySendError::Closed(_)) => return Err(QueueFailure::Stopped),
        };

        match self.sender.send_timeout(event, self.max_wait).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(QueueFailure::Stuck(self.max_wait)),
            Err(SendTimeoutError::Closed(_)) => Err(QueueFailure::Stopped),
        }
    }
}
