//! The subscriber trait and the options it is registered with.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::stream::EventFilter;
use crate::error::BoxError;
use crate::event::Event;

/// The queue of a reliable subscriber unless [`SubscribeOptions::queue`]
/// says otherwise.
const DEFAULT_QUEUE: usize = 1024;

/// How long a publisher waits for room in a full reliable queue unless
/// [`SubscribeOptions::max_wait`] says otherwise.
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);

/// Something that handles the bus's events in a task of its own.
///
/// Register one with [`MistralEventBus::register`]. The bus calls
/// [`on_event`](Subscriber::on_event) once per delivered event, in publish
/// order, never two calls at once, so `&mut self` state needs no locking.
///
/// A subscriber that fails is isolated: an `Err` from `on_event` or a panic
/// inside it is counted in [`SubscriberStats::failed`] and logged, and the
/// subscriber goes on receiving. Neither the publisher nor the other
/// subscribers notice.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
///
/// use mistral_events::bus::Subscriber;
/// use mistral_events::error::BoxError;
/// use mistral_events::event::{Event, EventPayload};
///
/// /// Counts the characters of answer text.
/// struct CharCounter(usize);
///
/// #[async_trait::async_trait]
/// impl Subscriber for CharCounter {
///     async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
///         if let EventPayload::Chunk { content, .. } = &event.payload {
///             self.0 += content.chars().count();
///         }
///         Ok(())
///     }
/// }
///
/// assert_eq!(CharCounter(0).name(), "CharCounter");
/// ```
///
/// [`MistralEventBus::register`]: super::MistralEventBus::register
/// [`SubscriberStats::failed`]: super::SubscriberStats::failed
#[async_trait]
pub trait Subscriber: Send + 'static {
    /// A name for stats and logs.
    ///
    /// The default is the type's name without its module path or generic
    /// parameters. [`SubscribeOptions::name`] overrides it.
    fn name(&self) -> String {
        short_type_name(std::any::type_name::<Self>()).to_owned()
    }

    /// Handles one event.
    ///
    /// # Errors
    ///
    /// An `Err` is counted as a failure and logged at debug level; the
    /// subscriber keeps receiving.
    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError>;

    /// Handles one event at once, without waiting, when the subscriber can:
    /// an optional fast path that the bus tries before
    /// [`on_event`](Subscriber::on_event).
    ///
    /// Return `Some(result)` when the event was handled here (`on_event`
    /// is then not called for it), or `None` to have the bus await
    /// `on_event` instead. The default returns `None`. An `Err` or a panic
    /// counts as it would in `on_event`.
    ///
    /// Worth implementing for a subscriber whose handling never waits
    /// (counting, updating memory, `try_send` into a channel): an
    /// `async fn on_event` costs a boxed future per event, and with many
    /// subscribers that allocation is most of the bus's cost of delivery.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use mistral_events::bus::Subscriber;
    /// use mistral_events::error::BoxError;
    /// use mistral_events::event::{Event, EventPayload};
    ///
    /// /// Counts the bytes of answer text, never waiting.
    /// struct Bytes(usize);
    ///
    /// #[async_trait::async_trait]
    /// impl Subscriber for Bytes {
    ///     fn try_on_event(&mut self, event: &Arc<Event>) -> Option<Result<(), BoxError>> {
    ///         if let EventPayload::Chunk { content, .. } = &event.payload {
    ///             self.0 += content.len();
    ///         }
    ///         Some(Ok(()))
    ///     }
    ///
    ///     async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
    ///         self.try_on_event(&event).unwrap_or(Ok(()))
    ///     }
    /// }
    /// ```
    fn try_on_event(&mut self, event: &Arc<Event>) -> Option<Result<(), BoxError>> {
        let _ = event;
        None
    }

    /// A lossy subscriber fell behind, and the `missed` oldest events were
    /// dropped for it. The next event it gets is the oldest one the bus
    /// still holds.
    ///
    /// The default does nothing. Reliable subscribers never lag.
    async fn on_lagged(&mut self, missed: u64) {
        let _ = missed;
    }

    /// The bus is shutting down, and every event it delivered to this
    /// subscriber has been handled. Flush buffers here.
    ///
    /// Called once, after the last `on_event`. The default does nothing.
    async fn on_shutdown(&mut self) {}
}

/// Boxed subscribers, for picking one at run time.
#[async_trait]
impl Subscriber for Box<dyn Subscriber> {
    fn name(&self) -> String {
        (**self).name()
    }

    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        (**self).on_event(event).await
    }

    fn try_on_event(&mut self, event: &Arc<Event>) -> Option<Result<(), BoxError>> {
        (**self).try_on_event(event)
    }

    async fn on_lagged(&mut self, missed: u64) {
        (**self).on_lagged(missed).await;
    }

    async fn on_shutdown(&mut self) {
        (**self).on_shutdown().await;
    }
}

/// `a::b::Name<c::D>` → `Name`.
fn short_type_name(full: &str) -> &str {
    let without_generics = full.split('<').next().unwrap_or(full);
    without_generics
        .rsplit("::")
        .next()
        .unwrap_or(without_generics)
}

/// The largest reliable queue, in events. The queue is allocated as it
/// fills, but tokio's channel refuses capacities beyond a limit of its own.
pub const MAX_QUEUE: usize = 1 << 24;

/// How the bus hands events to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Through the shared broadcast ring. The publisher never waits; a
    /// subscriber that falls a whole ring behind loses the oldest events and
    /// is told how many.
    Lossy,
    /// Through a bounded queue of the subscriber's own. The publisher waits
    /// for room, up to `max_wait`; past that the subscriber is detached.
    Reliable {
        /// The queue's capacity, in events.
        queue: usize,
        /// How long a publisher waits for room before detaching the
        /// subscriber.
        max_wait: Duration,
    },
}

impl Delivery {
    /// Whether this is [`Delivery::Reliable`].
    pub fn is_reliable(&self) -> bool {
        matches!(self, Self::Reliable { .. })
    }
}

/// How to register a subscriber: its delivery, filter and name.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use mistral_events::bus::{Delivery, EventFilter, SubscribeOptions};
/// use mistral_events::event::EventType;
///
/// let options = SubscribeOptions::reliable()
///     .queue(256)
///     .max_wait(Duration::from_secs(2))
///     .filter(EventFilter::all().types([EventType::Complete]))
///     .name("store");
/// assert_eq!(
///     options.delivery(),
///     Delivery::Reliable { queue: 256, max_wait: Duration::from_secs(2) }
/// );
/// ```
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    delivery: Delivery,
    filter: EventFilter,
    name: Option<String>,
}

impl SubscribeOptions {
    /// Lossy delivery of every event: the default, for UIs and logs.
    pub fn lossy() -> Self {
        Self {
            delivery: Delivery::Lossy,
            filter: EventFilter::all(),
            name: None,
        }
    }

    /// Reliable delivery of every event, with a queue of 1024 events and a
    /// maximum wait of 10 s: for stores, bridges and webhooks.
    pub fn reliable() -> Self {
        Self {
            delivery: Delivery::Reliable {
                queue: DEFAULT_QUEUE,
                max_wait: DEFAULT_MAX_WAIT,
            },
            ..Self::lossy()
        }
    }

    /// Sets the reliable queue's capacity, in events. Default: 1024.
    ///
    /// Setting it makes the delivery reliable.
    ///
    /// Capacities above [`MAX_QUEUE`] are lowered to it.
    ///
    /// # Panics
    ///
    /// When `events` is 0.
    #[must_use]
    pub fn queue(mut self, events: usize) -> Self {
        assert!(events > 0, "a reliable queue needs room for one event");
        self.delivery = Delivery::Reliable {
            queue: events.min(MAX_QUEUE),
            max_wait: self.reliable_parts().1,
        };
        self
    }

    /// Sets how long a publisher waits for room in the full queue before it
    /// detaches the subscriber. Default: 10 s.
    ///
    /// Setting it makes the delivery reliable.
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.delivery = Delivery::Reliable {
            queue: self.reliable_parts().0,
            max_wait: wait,
        };
        self
    }

    /// Delivers only the events `filter` matches; the others are not
    /// delivered and not counted. Default: every event.
    #[must_use]
    pub fn filter(mut self, filter: EventFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Names the subscriber in stats and logs. Default:
    /// [`Subscriber::name`].
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The delivery these options ask for.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The events these options deliver.
    pub fn event_filter(&self) -> &EventFilter {
        &self.filter
    }

    /// The queue and wait in force, or the defaults for a lossy delivery
    /// about to become reliable.
    fn reliable_parts(&self) -> (usize, Duration) {
        match self.delivery {
            Delivery::Reliable { queue, max_wait } => (queue, max_wait),
            Delivery::Lossy => (DEFAULT_QUEUE, DEFAULT_MAX_WAIT),
        }
    }

    /// Splits the options for registration.
    pub(crate) fn into_parts(self) -> (Delivery, EventFilter, Option<String>) {
        (self.delivery, self.filter, self.name)
    }
}

impl Default for SubscribeOptions {
    /// [`SubscribeOptions::lossy`].
    fn default() -> Self {
        Self::lossy()
    }
}

/// Identifies a registered subscriber in [`BusStats`](super::BusStats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(pub(crate) u64);

impl SubscriberId {
    /// The id as a number, unique within its bus.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_name_drops_path_and_generics() {
        assert_eq!(short_type_name("a::b::Printer<std::io::Stdout>"), "Printer");
        assert_eq!(short_type_name("Plain"), "Plain");
    }

    #[test]
    fn queue_or_max_wait_make_lossy_options_reliable() {
        let options = SubscribeOptions::lossy().max_wait(Duration::from_millis(5));
        assert_eq!(
            options.delivery(),
            Delivery::Reliable {
                queue: DEFAULT_QUEUE,
                max_wait: Duration::from_millis(5)
            }
        );
    }
}
