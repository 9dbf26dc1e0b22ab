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

/// What became of an offered event.
#[derive(Debug)]
pub(crate) enum Offer {
    /// Queued, or not wanted by the filter.
    Done,
    /// The queue is full; the event is handed back for
    /// [`ReliableQueue::wait_for_room`].
    Full(Arc<Event>),
    /// The queue takes no more events.
    Failed(QueueFailure),
}

impl ReliableQueue {
    /// Queues `event` if there is room and the filter wants it.
    ///
    /// Not async: the common case, room in the queue, costs no timer, and
    /// keeps the publish future small.
    pub(crate) fn try_offer(&self, event: &Arc<Event>) -> Offer {
        // A publisher holding an older snapshot may still see a queue that
        // another one detached; it must not wait on it again.
        if !self.filter.matches(event) || self.counters.is_detached() {
            return Offer::Done;
        }
        match self.sender.try_send(Arc::clone(event)) {
            Ok(()) => Offer::Done,
            Err(TrySendError::Full(event)) => Offer::Full(event),
            Err(TrySendError::Closed(_)) => Offer::Failed(QueueFailure::Stopped),
        }
    }

    /// Waits for room in the full queue, up to the maximum wait.
    pub(crate) async fn wait_for_room(&self, event: Arc<Event>) -> Result<(), QueueFailure> {
        match self.sender.send_timeout(event, self.max_wait).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(QueueFailure::Stuck(self.max_wait)),
            Err(SendTimeoutError::Closed(_)) => Err(QueueFailure::Stopped),
        }
    }
}
