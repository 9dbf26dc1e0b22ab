//! Keeps every event in memory, for tests.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::bus::Subscriber;
use crate::error::BoxError;
use crate::event::{Event, EventPayload};
use crate::id::RequestId;

/// Stores every event it gets, for tests to inspect.
///
/// Clones share the storage: register one clone and keep another to look
/// at. Register it reliable, so that it sees every event. Memory grows with
/// every event; [`clear`](Self::clear) empties it.
///
/// # Examples
///
/// ```
/// use mistral_events::bus::{MistralEventBus, SubscribeOptions};
/// use mistral_events::event::{Event, EventPayload};
/// use mistral_events::subscribers::Collector;
/// use mistral_events::{Client, RequestId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mistral_events::Error> {
/// let bus = MistralEventBus::new(Client::builder().build()?);
/// let collector = Collector::new();
/// bus.register(collector.clone(), SubscribeOptions::reliable());
///
/// let id = RequestId::new("r1").unwrap();
/// bus.publish(Event::for_request(&id, 0, EventPayload::chunk(0, "Hi"))).await;
/// bus.publish(Event::for_request(&id, 1, EventPayload::Cancelled { partial: "Hi".into() })).await;
///
/// let last = collector.wait_for_terminal(&id).await;
/// assert_eq!(last.seq, 1);
/// assert_eq!(collector.events_for(&id).len(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Collector {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    events: Mutex<Vec<Arc<Event>>>,
    arrived: Notify,
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event so far, in arrival order.
    pub fn events(&self) -> Vec<Arc<Event>> {
        self.lock().clone()
    }

    /// The events of the model call `id`, in arrival order.
    pub fn events_for(&self, id: &RequestId) -> Vec<Arc<Event>> {
        self.lock()
            .iter()
            .filter(|event| event.request_id.as_ref() == Some(id))
            .cloned()
            .collect()
    }

    /// The text of the call's chunks (of its first choice), joined in
    /// arrival order.
    pub fn chunks_text(&self, id: &RequestId) -> String {
        let events = self.lock();
        let chunks = events
            .iter()
            .filter(|event| event.request_id.as_ref() == Some(id))
            .filter_map(|event| match &event.payload {
                EventPayload::Chunk {
                    content, choice, ..
                } if choice.unwrap_or(0) == 0 => Some(content.as_str()),
                _ => None,
            });
        chunks.collect()
    }

    /// Waits for the terminal event (`complete`, `error` or `cancelled`) of
    /// the call `id`, and returns it. Returns at once if it already came.
    ///
    /// It waits for ever if the event never comes; wrap it in
    /// [`tokio::time::timeout`] in a test that might fail that way.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_for_terminal(&self, id: &RequestId) -> Arc<Event> {
        loop {
            let arrived = self.shared.arrived.notified();
            let mut arrived = std::pin::pin!(arrived);
            // Register before looking, so an event landing in between still
            // wakes us.
            arrived.as_mut().enable();
            if let Some(event) = self.terminal_of(id) {
                return event;
            }
            arrived.await;
        }
    }

    /// Forgets every event so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn terminal_of(&self, id: &RequestId) -> Option<Arc<Event>> {
        self.lock()
            .iter()
            .find(|event| event.is_terminal() && event.request_id.as_ref() == Some(id))
            .cloned()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Event>>> {
        // A test that panicked while reading must not hide the events from
        // the next look.
        self.shared
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Subscriber for Collector {
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        self.lock().push(event);
        self.shared.arrived.notify_waiters();
        Ok(())
    }
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collector")
            .field("events", &self.lock().len())
            .finish()
    }
}
