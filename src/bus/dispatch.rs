//! The task each registered subscriber runs in, and how it keeps a failing
//! subscriber from taking anything else down.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use super::stats::Counters;
use super::stream::EventFilter;
use super::subscriber::{Subscriber, SubscriberId};
use super::{Signal, LOG_TARGET};
use crate::error::BoxError;
use crate::event::{Event, EventType};

/// What a subscriber's task knows about itself.
#[derive(Debug)]
pub(crate) struct TaskContext {
    pub(crate) id: SubscriberId,
    pub(crate) name: String,
    pub(crate) counters: Arc<Counters>,
}

/// Feeds a lossy subscriber from the broadcast ring until the end marker.
pub(crate) async fn run_lossy<S: Subscriber>(
    mut subscriber: S,
    mut ring: broadcast::Receiver<Signal>,
    filter: EventFilter,
    task: TaskContext,
) {
    tracing::trace!(target: LOG_TARGET, subscriber = %task.name, id = %task.id, "lossy subscriber started");
    loop {
        match ring.recv().await {
            Ok(Signal::Event(event)) => {
                if filter.matches(&event) {
                    if let Some(event) = task.handle_now(&mut subscriber, event) {
                        task.handle(&mut subscriber, event).await;
                    }
                }
            }
            Err(RecvError::Lagged(missed)) => task.lagged(&mut subscriber, missed).await,
            // The end marker, or every bus handle dropped without a shutdown.
            Ok(Signal::Closed) | Err(RecvError::Closed) => break,
        }
    }
    // Give up the place in the ring before the subscriber's flush, which
    // may take a while.
    drop(ring);
    task.finish(&mut subscriber).await;
}

/// Feeds a reliable subscriber from its queue until the queue is closed and
/// empty.
pub(crate) async fn run_reliable<S: Subscriber>(
    mut subscriber: S,
    mut queue: mpsc::Receiver<Arc<Event>>,
    task: TaskContext,
) {
    tracing::trace!(target: LOG_TARGET, subscriber = %task.name, id = %task.id, "reliable subscriber started");
    while let Some(event) = queue.recv().await {
        if let Some(event) = task.handle_now(&mut subscriber, event) {
            task.handle(&mut subscriber, event).await;
        }
    }
    task.finish(&mut subscriber).await;
}

/// Runs a subscriber registered after shutdown: it gets no events, only
/// its `on_shutdown`.
pub(crate) async fn run_closed<S: Subscriber>(mut subscriber: S, task: TaskContext) {
    task.finish(&mut subscriber).await;
}

impl TaskContext {
    /// Offers one event to the subscriber's synchronous hook, counting the
    /// outcome; gives the event back when the hook declined it, for
    /// [`handle`](Self::handle). Plain code, not a future, so the common
    /// case costs no state machine and no allocation.
    #[inline]
    fn handle_now<S: Subscriber>(
        &self,
        subscriber: &mut S,
        event: Arc<Event>,
    ) -> Option<Arc<Event>> {
        // Every arm takes its part by value, so nothing is left to drop.
        match std::panic::catch_unwind(AssertUnwindSafe(|| subscriber.try_on_event(&event))) {
            Ok(None) => Some(event),
            Ok(Some(Ok(()))) => {
                self.counters.add_delivered();
                None
            }
            Ok(Some(Err(error))) => {
                self.failed_with(event.seq, event.event_type(), &error);
                None
            }
            Err(panic) => {
                self.counters.add_failed();
                self.log_panic("try_on_event", panic.as_ref());
                None
            }
        }
    }

    /// Hands one event to `on_event`, counting the outcome. A panic is
    /// caught here so the task, and with it the subscriber, lives on.
    async fn handle<S: Subscriber>(&self, subscriber: &mut S, event: Arc<Event>) {
        let (seq, kind) = (event.seq, event.event_type());
        match AssertUnwindSafe(subscriber.on_event(event))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => self.counters.add_delivered(),
            Ok(Err(error)) => self.failed_with(seq, kind, &error),
            Err(panic) => {
                self.counters.add_failed();
                self.log_panic("on_event", panic.as_ref());
            }
        }
    }

    #[cold]
    fn failed_with(&self, seq: u64, kind: EventType, error: &BoxError) {
        self.counters.add_failed();
        tracing::debug!(
            target: LOG_TARGET,
            subscriber = %self.name, id = %self.id, seq, r#type = %kind, %error,
            "subscriber failed to handle an event"
        );
    }

    /// Counts what a lossy subscriber missed and tells it.
    async fn lagged<S: Subscriber>(&self, subscriber: &mut S, missed: u64) {
        self.counters.add_lagged(missed);
        tracing::debug!(
            target: LOG_TARGET,
            subscriber = %self.name, id = %self.id, missed,
            "lossy subscriber fell behind; the oldest events were dropped for it"
        );
        let outcome = AssertUnwindSafe(subscriber.on_lagged(missed))
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            self.counters.add_failed();
            self.log_panic("on_lagged", panic.as_ref());
        }
    }

    /// Lets the subscriber flush, then ends its task.
    async fn finish<S: Subscriber>(&self, subscriber: &mut S) {
        let outcome = AssertUnwindSafe(subscriber.on_shutdown())
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            self.counters.add_failed();
            self.log_panic("on_shutdown", panic.as_ref());
        }
        tracing::trace!(target: LOG_TARGET, subscriber = %self.name, id = %self.id, "subscriber finished");
    }

    fn log_panic(&self, method: &str, panic: &(dyn Any + Send)) {
        tracing::warn!(
            target: LOG_TARGET,
            subscriber = %self.name, id = %self.id, method, panic = panic_message(panic),
            "subscriber panicked; it stays registered"
        );
    }
}

/// The text a panic was raised with, when it was text.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-text panic payload")
}
