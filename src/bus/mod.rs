//! The event bus: events in from producers, out to every subscriber.
//!
//! A [`MistralEventBus`] takes each [`Event`] that a chat or your own code
//! publishes and hands it to everyone listening. There are three ways to
//! listen:
//!
//! - [`MistralEventBus::subscribe`] gives an [`EventStream`] that you poll;
//! - [`MistralEventBus::register`] with [`SubscribeOptions::lossy`] runs a
//!   [`Subscriber`] in a task of its own, reading the same ring as streams;
//! - `register` with [`SubscribeOptions::reliable`] runs one fed from a
//!   queue of its own.
//!
//! # Ordering
//!
//! Events that one task publishes reach every subscriber in the order they
//! were published. Events that several tasks publish at once interleave,
//! and two subscribers may see different interleavings. A subscriber
//! handles one event at a time.
//!
//! # Lag: lossy delivery
//!
//! Lossy subscribers and streams share one broadcast ring holding the
//! latest [`BusBuilder::capacity`] events. Publishing never waits for them.
//! A reader that falls a whole ring behind loses the oldest events it has
//! not read: it is told how many ([`Subscriber::on_lagged`], or
//! `Err(`[`Lagged`]`)` from a stream) and goes on with the oldest event the
//! ring still holds. A slow UI or log thus sees a gap, then recent events,
//! and never holds up a chat.
//!
//! # Back-pressure: reliable delivery
//!
//! Each reliable subscriber has a bounded queue. When it is full, `publish`
//! waits for room, for at most the subscriber's maximum wait. A slow store
//! therefore slows the chat that feeds it, and loses nothing. A store that
//! stays full past its maximum wait is detached: the bus logs a warning,
//! publishes a `subscriber_failed` event to everyone else, and goes on
//! without it. A dead database never stalls a chat.
//!
//! # Failures
//!
//! A subscriber whose [`Subscriber::on_event`] returns an error or panics is
//! counted in [`SubscriberStats::failed`] and keeps receiving. Neither the
//! publisher nor the other subscribers notice.
//!
//! # Shutdown
//!
//! [`MistralEventBus::shutdown`] stops the bus taking events. Each lossy
//! subscriber handles what the ring still holds for it, each reliable one
//! its whole queue; then each gets [`Subscriber::on_shutdown`], and
//! `shutdown` returns once they have all finished. Streams end after their
//! last buffered event. Publishing afterwards does nothing.
//!
//! # Examples
//!
//! A reliable transcript and a stream see the same events:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! use futures_util::StreamExt;
//! use mistral_events::bus::{MistralEventBus, SubscribeOptions, Subscriber};
//! use mistral_events::error::BoxError;
//! use mistral_events::event::{Event, EventPayload};
//! use mistral_events::{Client, RequestId};
//!
//! /// Keeps the answer text.
//! struct Transcript(Arc<Mutex<String>>);
//!
//! #[async_trait::async_trait]
//! impl Subscriber for Transcript {
//!     async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
//!         if let EventPayload::Chunk { content, .. } = &event.payload {
//!             self.0.lock().unwrap().push_str(content);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mistral_events::Error> {
//! let bus = MistralEventBus::new(Client::builder().build()?);
//! let feed = bus.subscribe();
//! let text = Arc::new(Mutex::new(String::new()));
//! bus.register(Transcript(text.clone()), SubscribeOptions::reliable());
//!
//! let id = RequestId::new("r1").unwrap();
//! let start = EventPayload::Start { model: "mistral-small-latest".into() };
//! bus.publish(Event::for_request(&id, 0, start)).await;
//! bus.publish(Event::for_request(&id, 1, EventPayload::chunk(0, "Hel"))).await;
//! bus.publish(Event::for_request(&id, 2, EventPayload::chunk(1, "lo"))).await;
//! bus.publish(Event::for_request(&id, 3, EventPayload::Complete(Box::default()))).await;
//! bus.shutdown().await;
//!
//! assert_eq!(*text.lock().unwrap(), "Hello");
//! let types: Vec<_> = feed.map(|event| event.unwrap().event_type()).collect().await;
//! assert_eq!(types.len(), 4);
//! # Ok(())
//! # }
//! ```
//!
//! A store that stops answering is detached, and the others are told:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use futures_util::StreamExt;
//! use mistral_events::bus::{MistralEventBus, SubscribeOptions, Subscriber};
//! use mistral_events::error::BoxError;
//! use mistral_events::event::{Event, EventPayload, EventType};
//! use mistral_events::{Client, RequestId};
//!
//! /// A store whose database hangs.
//! struct DeadStore;
//!
//! #[async_trait::async_trait]
//! impl Subscriber for DeadStore {
//!     async fn on_event(&mut self, _event: Arc<Event>) -> Result<(), BoxError> {
//!         std::future::pending().await
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mistral_events::Error> {
//! let bus = MistralEventBus::new(Client::builder().build()?);
//! let feed = bus.subscribe();
//! let options = SubscribeOptions::reliable()
//!     .queue(1)
//!     .max_wait(Duration::from_millis(20));
//! let store = bus.register(DeadStore, options);
//!
//! // The chat goes on: after one wait of 20 ms, the store is dropped.
//! let id = RequestId::new("r1").unwrap();
//! for index in 0..4 {
//!     bus.publish(Event::for_request(&id, index, EventPayload::chunk(index, "x"))).await;
//! }
//! assert!(bus.stats().subscriber(store).unwrap().detached);
//!
//! // The stuck store is abandoned, not awaited.
//! bus.shutdown().await;
//! let types: Vec<_> = feed.map(|event| event.unwrap().event_type()).collect().await;
//! assert!(types.contains(&EventType::SubscriberFailed));
//! # Ok(())
//! # }
//! ```

mod chat;
mod dispatch;
mod queue;
mod resume;
mod stats;
mod stream;
mod subscriber;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{broadcast, mpsc};
use tokio::task::{AbortHandle, JoinHandle};

/// The attribute for implementing [`Subscriber`], re-exported so that
/// `#[mistral_events::bus::async_trait]` works without a dependency of
/// your own.
pub use async_trait::async_trait;
pub use chat::{ChatHandle, ChatOptions, ChatOutcome};
pub use resume::ResumePolicy;
pub use stats::{BusStats, SubscriberStats};
pub use stream::{EventFilter, EventStream, Lagged};
pub use subscriber::{Delivery, SubscribeOptions, Subscriber, SubscriberId, MAX_QUEUE};

use crate::client::Client;
use crate::event::{Event, EventPayload};
use dispatch::TaskContext;
use queue::{Offer, QueueFailure, ReliableQueue};
use stats::Counters;

/// The target of the bus's own log lines.
const LOG_TARGET: &str = "mistral_events::bus";

/// The broadcast ring's capacity unless [`BusBuilder::capacity`] says
/// otherwise.
pub const DEFAULT_CAPACITY: usize = 1024;

/// What travels the broadcast ring.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    Event(Arc<Event>),
    /// Sent once, by shutdown. Readers stop here.
    Closed,
}

/// The event bus: a cheap handle, cloned freely; clones share one bus.
///
/// See the [module documentation](self) for how events are delivered.
#[derive(Clone, Debug)]
pub struct MistralEventBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    capacity: usize,
    ring: broadcast::Sender<Signal>,
    /// Set once, by shutdown; every publish reads it without a lock.
    closed: AtomicBool,
    published: AtomicU64,
    /// How many reliable queues there are, so that publishing takes no lock
    /// when there are none.
    reliable_count: AtomicUsize,
    registry: Mutex<Registry>,
    /// The tasks shutdown still waits for. The lock is async so that
    /// concurrent shutdowns queue behind the one draining.
    draining: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

struct Registry {
    next_id: u64,
    entries: Vec<Entry>,
    /// Replaced whole on register and detach, so a publisher clones one
    /// `Arc` and delivers without holding the lock.
    reliable: Arc<[Arc<ReliableQueue>]>,
}

/// A registered subscriber, as the bus keeps it.
struct Entry {
    id: SubscriberId,
    name: String,
    delivery: Delivery,
    counters: Arc<Counters>,
    /// Taken by shutdown, which awaits it.
    task: Option<JoinHandle<()>>,
    abort: AbortHandle,
}

impl MistralEventBus {
    /// A bus with the default ring capacity of 1024 events.
    pub fn new(client: Client) -> Self {
        Self::builder(client).build()
    }

    /// A builder, to set the ring capacity.
    pub fn builder(client: Client) -> BusBuilder {
        BusBuilder {
            client,
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// The client that producers on this bus use.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Publishes `event` to every subscriber and stream.
    ///
    /// Lossy readers get it through the broadcast ring, which never waits.
    /// Each reliable subscriber gets it through its own queue: when that is
    /// full, this waits for room, for at most the subscriber's maximum
    /// wait, and past it detaches the subscriber (a warning on
    /// `mistral_events::bus` and a `subscriber_failed` event to the others)
    /// and goes on. With no reliable subscriber this never waits.
    ///
    /// Publishing with no subscribers is fine. After shutdown the event is
    /// dropped silently.
    ///
    /// # Cancel safety
    ///
    /// Cancelling stops delivery part way: the ring and some reliable
    /// queues may have the event while others never get it.
    pub async fn publish(&self, event: Event) {
        self.publish_shared(Arc::new(event)).await;
    }

    /// [`publish`](Self::publish) for an event that is already shared.
    ///
    /// # Cancel safety
    ///
    /// As for [`publish`](Self::publish).
    pub async fn publish_shared(&self, event: Arc<Event>) {
        let inner = &*self.inner;
        // Having no reader is normal, so a failed send is not an error.
        if inner.reliable_count.load(Ordering::Acquire) == 0 {
            if inner.is_closed() {
                return;
            }
            inner.published.fetch_add(1, Ordering::Relaxed);
            let _ = inner.ring.send(Signal::Event(event));
            return;
        }
        // The closed check and the snapshot share one lock: a snapshot taken
        // before shutdown keeps its queues open until this event is in, so
        // shutdown's drain delivers it.
        let Some(queues) = inner.open_reliable_queues() else {
            return;
        };
        inner.published.fetch_add(1, Ordering::Relaxed);
        let _ = inner.ring.send(Signal::Event(Arc::clone(&event)));
        self.deliver_reliable(&queues, &event).await;
    }

    /// Every event from now on, as a lossy stream.
    pub fn subscribe(&self) -> EventStream {
        self.subscribe_with(EventFilter::all())
    }

    /// The events `filter` matches from now on, as a lossy stream.
    ///
    /// Lag is counted over all events, matching or not, since the ring
    /// holds them all.
    pub fn subscribe_with(&self, filter: EventFilter) -> EventStream {
        // Under the lock, so that shutdown cannot send its end marker
        // between the check and the subscription.
        let _registry = self.inner.registry();
        if self.inner.is_closed() {
            return EventStream::ended(filter);
        }
        EventStream::new(self.inner.ring.subscribe(), filter)
    }

    /// Starts `subscriber` in a task of its own and returns its id, for
    /// [`stats`](Self::stats).
    ///
    /// It gets the events published after this returns. A subscriber
    /// registered after shutdown gets none, only its `on_shutdown`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, since the task is spawned on it.
    pub fn register<S: Subscriber>(
        &self,
        subscriber: S,
        options: SubscribeOptions,
    ) -> SubscriberId {
        let (delivery, filter, name) = options.into_parts();
        let name = name.unwrap_or_else(|| subscriber.name());
        let counters = Arc::new(Counters::default());

        let mut registry = self.inner.registry();
        let id = SubscriberId(registry.next_id);
        registry.next_id += 1;
        let task = TaskContext {
            id,
            name: name.clone(),
            counters: Arc::clone(&counters),
        };
        let handle = self
            .inner
            .start(&mut registry, subscriber, delivery, filter, task);

        tracing::trace!(target: LOG_TARGET, subscriber = %name, %id, ?delivery, "subscriber registered");
        registry.entries.push(Entry {
            id,
            name,
            delivery,
            counters,
            abort: handle.abort_handle(),
            task: Some(handle),
        });
        id
    }

    /// A snapshot of the counters: events published, and each registered
    /// subscriber's delivered, lagged and failed counts.
    pub fn stats(&self) -> BusStats {
        let registry = self.inner.registry();
        BusStats {
            published: self.inner.published.load(Ordering::Relaxed),
            subscribers: registry.entries.iter().map(Entry::stats).collect(),
        }
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Stops the bus and waits for its subscribers to finish.
    ///
    /// The bus takes no more events. Lossy subscribers handle what the ring
    /// still holds for them; reliable ones handle every event queued before
    /// the call, including those of a publish still in flight. Each then
    /// gets `on_shutdown`. This returns once every attached subscriber has
    /// finished; detached ones are aborted, not awaited.
    ///
    /// Streams are not waited for: each ends once it has read what the ring
    /// held. The end marker takes one slot of the ring, so a reader already
    /// a whole ring behind loses one more event, and is told so.
    ///
    /// Calls still streaming publish nothing after this, so a subscriber
    /// may see a call without its terminal event: await or cancel the
    /// [`ChatHandle`]s first.
    ///
    /// Calling it again waits for the same drain and does nothing more.
    /// A subscriber that never returns from `on_event` keeps this waiting:
    /// wrap the call in [`tokio::time::timeout`] if that matters. Never
    /// await it inside a subscriber, which would wait for itself.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. The bus stays shut down, and a later call waits for the
    /// subscribers still running.
    pub async fn shutdown(&self) {
        // Concurrent calls queue here, so none returns before the drain.
        let mut pending = self.inner.draining.lock().await;
        pending.extend(self.inner.close());
        while let Some(task) = pending.last_mut() {
            // A task that was aborted has finished all the same.
            let _ = task.await;
            pending.pop();
        }
        tracing::trace!(target: LOG_TARGET, "bus shut down");
    }

    /// Offers `event` to each reliable queue in turn.
    async fn deliver_reliable(&self, queues: &[Arc<ReliableQueue>], event: &Arc<Event>) {
        for queue in queues {
            let failure = match queue.try_offer(event) {
                Offer::Done => continue,
                Offer::Failed(failure) => failure,
                // Boxed: the wait holds a timer, which would otherwise
                // weigh on every publish future, and it is rare.
                Offer::Full(event) => match Box::pin(queue.wait_for_room(event)).await {
                    Ok(()) => continue,
                    Err(failure) => failure,
                },
            };
            self.detach(queue, failure).await;
        }
    }

    /// Gives up on a reliable subscriber and tells the others.
    ///
    /// Boxed, with its `Send` spelled out, because the notice it publishes
    /// may in turn detach another subscriber: the future is recursive.
    fn detach<'a>(
        &'a self,
        queue: &'a ReliableQueue,
        failure: QueueFailure,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            // Concurrent publishers may give up on the same queue; one
            // reports it.
            if !queue.counters.mark_detached() {
                return;
            }
            self.inner.remove_reliable(queue.id);
            tracing::warn!(
                target: LOG_TARGET,
                subscriber = %queue.name, id = %queue.id, reason = %failure,
                "reliable subscriber detached; publishing goes on without it"
            );

            let notice = Event::unscoped(EventPayload::SubscriberFailed {
                subscriber: queue.name.clone(),
                reason: failure.to_string(),
            });
            self.publish(notice).await;
        })
    }
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // No code of ours panics under the lock, and subscribers never run
        // under it; the state is sound even if a panic poisoned it.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The reliable queues, or `None` once the bus is closed.
    fn open_reliable_queues(&self) -> Option<Arc<[Arc<ReliableQueue>]>> {
        let registry = self.registry();
        (!self.is_closed()).then(|| Arc::clone(&registry.reliable))
    }

    fn set_reliable(&self, registry: &mut Registry, queues: Arc<[Arc<ReliableQueue>]>) {
        self.reliable_count.store(queues.len(), Ordering::Release);
        registry.reliable = queues;
    }

    /// Hooks a subscriber to its source and spawns its task.
    ///
    /// Called under the registry lock, so that shutdown cannot slip between
    /// the closed check and the hookup.
    fn start<S: Subscriber>(
        &self,
        registry: &mut Registry,
        subscriber: S,
        delivery: Delivery,
        filter: EventFilter,
        task: TaskContext,
    ) -> JoinHandle<()> {
        if self.is_closed() {
            return tokio::spawn(dispatch::run_closed(subscriber, task));
        }
        match delivery {
            Delivery::Lossy => {
                let ring = self.ring.subscribe();
                tokio::spawn(dispatch::run_lossy(subscriber, ring, filter, task))
            }
            Delivery::Reliable { queue, max_wait } => {
                let (sender, receiver) = mpsc::channel(queue);
                let queue = Arc::new(ReliableQueue {
                    id: task.id,
                    name: task.name.clone(),
                    counters: Arc::clone(&task.counters),
                    filter,
                    max_wait,
                    sender,
                });
                // Spawn first: if it panics, no queue is left without a reader.
                let handle = tokio::spawn(dispatch::run_reliable(subscriber, receiver, task));
                let queues = registry.reliable.iter().cloned().chain([queue]).collect();
                self.set_reliable(registry, queues);
                handle
            }
        }
    }

    fn remove_reliable(&self, id: SubscriberId) {
        let mut registry = self.registry();
        let kept = registry
            .reliable
            .iter()
            .filter(|queue| queue.id != id)
            .cloned()
            .collect();
        self.set_reliable(&mut registry, kept);

        // Shutdown may already be waiting for this subscriber; stop it, as
        // nobody waits for a detached one.
        if self.is_closed() {
            if let Some(entry) = registry.entries.iter().find(|entry| entry.id == id) {
                entry.abort.abort();
            }
        }
    }

    /// Marks the bus closed and returns the tasks to wait for; empty after
    /// the first call.
    fn close(&self) -> Vec<JoinHandle<()>> {
        let mut registry = self.registry();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Vec::new();
        }
        tracing::trace!(target: LOG_TARGET, subscribers = registry.entries.len(), "bus shutting down");

        // The marker is the ring's last message: lossy readers handle what
        // they still hold, then stop at it.
        let _ = self.ring.send(Signal::Closed);
        // Dropping the senders closes the queues, and each reliable task
        // drains its queue, then ends. A publish in flight holds its own
        // snapshot, so its event gets in first.
        self.set_reliable(&mut registry, Arc::from([]));

        let mut tasks = Vec::with_capacity(registry.entries.len());
        for entry in &mut registry.entries {
            if entry.counters.is_detached() {
                // It may be stuck for good; nobody waits for it.
                entry.abort.abort();
            } else {
                tasks.extend(entry.task.take());
            }
        }
        tasks
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone without a shutdown. Attached subscribers
        // end on their own as their sources close; a detached one may be
        // stuck for good, and nothing could ever stop it later.
        let registry = self
            .registry
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for entry in &registry.entries {
            if entry.counters.is_detached() {
                entry.abort.abort();
            }
        }
    }
}

impl Entry {
    fn stats(&self) -> SubscriberStats {
        self.counters.snapshot(self.id, &self.name, self.delivery)
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MistralEventBus")
            .field("client", &self.client)
            .field("capacity", &self.capacity)
            .field("closed", &self.is_closed())
            .field("published", &self.published.load(Ordering::Relaxed))
            .field("subscribers", &self.registry().entries.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`MistralEventBus`].
#[derive(Debug)]
#[must_use]
pub struct BusBuilder {
    client: Client,
    capacity: usize,
}

impl BusBuilder {
    /// Sets the broadcast ring's capacity: how many events a lossy
    /// subscriber or stream may fall behind before it lags. Default: 1024.
    ///
    /// It is rounded up to a power of two. Each slot holds one `Arc`, so a
    /// large ring costs little memory.
    ///
    /// # Panics
    ///
    /// When `events` is 0.
    pub fn capacity(mut self, events: usize) -> Self {
        assert!(events > 0, "the broadcast ring needs room for one event");
        self.capacity = events;
        self
    }

    /// Builds the bus. No runtime is needed until a subscriber is
    /// registered.
    pub fn build(self) -> MistralEventBus {
        // The bus keeps a sender only; each reader subscribes its own end.
        let (ring, _) = broadcast::channel(self.capacity);
        MistralEventBus {
            inner: Arc::new(Inner {
                client: self.client,
                capacity: self.capacity,
                ring,
                closed: AtomicBool::new(false),
                published: AtomicU64::new(0),
                reliable_count: AtomicUsize::new(0),
                registry: Mutex::new(Registry {
                    next_id: 0,
                    entries: Vec::new(),
                    reliable: Arc::from([]),
                }),
                draining: tokio::sync::Mutex::new(Vec::new()),
            }),
        }
    }
}
