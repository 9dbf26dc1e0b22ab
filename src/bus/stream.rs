//! Event streams read straight off the broadcast ring, and the filter they
//! share with registered subscribers.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_util::stream::{FusedStream, Stream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::Signal;
use crate::event::{Event, EventType};
use crate::id::RequestId;

/// Which events a stream or subscriber gets.
///
/// Built from [`EventFilter::all`] by narrowing it: [`request`] keeps one
/// model call's events, [`types`] keeps some event types. Both together
/// keep the events that pass both.
///
/// # Examples
///
/// ```
/// use mistral_events::bus::EventFilter;
/// use mistral_events::event::{Event, EventPayload, EventType};
/// use mistral_events::RequestId;
///
/// let id = RequestId::new("r1").unwrap();
/// let chunks_of_r1 = EventFilter::all().request(id.clone()).types([EventType::Chunk]);
///
/// let chunk = Event::for_request(&id, 1, EventPayload::chunk(0, "Hi"));
/// let other = Event::for_request(&RequestId::new("r2").unwrap(), 1, EventPayload::chunk(0, "Hi"));
/// assert!(chunks_of_r1.matches(&chunk));
/// assert!(!chunks_of_r1.matches(&other));
/// ```
///
/// [`request`]: EventFilter::request
/// [`types`]: EventFilter::types
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    request: Option<RequestId>,
    types: Option<TypeSet>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Keeps only the events of the model call `id`. Events with no
    /// `request_id` (such as `subscriber_failed`) do not pass.
    #[must_use]
    pub fn request(mut self, id: RequestId) -> Self {
        self.request = Some(id);
        self
    }

    /// Keeps only events of the given types, replacing any earlier set. An
    /// empty set keeps nothing.
    #[must_use]
    pub fn types(mut self, types: impl IntoIterator<Item = EventType>) -> Self {
        self.types = Some(types.into_iter().collect());
        self
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        // The type test is a bit test, so it goes before the id comparison.
        self.types
            .is_none_or(|types| types.contains(event.event_type()))
            && self
                .request
                .as_ref()
                .is_none_or(|id| event.request_id.as_ref() == Some(id))
    }
}

/// A set of event types as a bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TypeSet(u64);

// Each type needs a bit of the mask.
const _: () = assert!(EventType::ALL.len() <= 64);

impl TypeSet {
    fn bit(kind: EventType) -> u64 {
        1 << (kind as u32)
    }

    fn contains(self, kind: EventType) -> bool {
        self.0 & Self::bit(kind) != 0
    }
}

impl FromIterator<EventType> for TypeSet {
    fn from_iter<I: IntoIterator<Item = EventType>>(kinds: I) -> Self {
        Self(
            kinds
                .into_iter()
                .fold(0, |mask, kind| mask | Self::bit(kind)),
        )
    }
}

/// A lossy reader fell behind, and `missed` events were dropped for it.
///
/// The stream goes on with the oldest event the bus still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagged {
    /// How many events were dropped, matching the filter or not.
    pub missed: u64,
}

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fell behind and missed {} events", self.missed)
    }
}

impl std::error::Error for Lagged {}

/// The bus's events as a [`Stream`], from
/// [`MistralEventBus::subscribe`](super::MistralEventBus::subscribe).
///
/// It reads the broadcast ring directly when polled, so it is lossy: a
/// stream polled too slowly yields `Err(Lagged)` and goes on with the
/// oldest event still held. It never slows the publisher. It ends once the
/// bus has shut down and the events published before are read.
///
/// An unpolled stream costs the publisher nothing, but drop streams you no
/// longer read: each one keeps its place in the ring.
///
/// # Examples
///
/// A stream read too late sees the lag, then the events the ring kept:
///
/// ```
/// use futures_util::StreamExt;
/// use mistral_events::bus::{Lagged, MistralEventBus};
/// use mistral_events::event::{Event, EventPayload};
/// use mistral_events::{Client, RequestId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mistral_events::Error> {
/// let bus = MistralEventBus::builder(Client::builder().build()?)
///     .capacity(4)
///     .build();
/// let mut feed = bus.subscribe();
///
/// let id = RequestId::new("r1").unwrap();
/// for index in 0..10 {
///     bus.publish(Event::for_request(&id, index, EventPayload::chunk(index, "x"))).await;
/// }
///
/// // The ring holds the last 4 events; the 6 before them are gone.
/// assert!(matches!(feed.next().await, Some(Err(Lagged { missed: 6 }))));
/// assert_eq!(feed.next().await.unwrap().unwrap().seq, 6);
/// # Ok(())
/// # }
/// ```
#[must_use = "a stream does nothing unless polled"]
pub struct EventStream {
    // `None` once the stream has ended, which also frees its place.
    events: Option<BroadcastStream<Signal>>,
    filter: EventFilter,
}

impl EventStream {
    pub(crate) fn new(receiver: broadcast::Receiver<Signal>, filter: EventFilter) -> Self {
        Self {
            events: Some(BroadcastStream::new(receiver)),
            filter,
        }
    }

    /// A stream that has already ended, for a bus that shut down.
    pub(crate) fn ended(filter: EventFilter) -> Self {
        Self {
            events: None,
            filter,
        }
    }

    /// The events this stream yields.
    pub fn filter(&self) -> &EventFilter {
        &self.filter
    }
}

impl Stream for EventStream {
    type Item = Result<Arc<Event>, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // Skipping events the filter rejects cannot spin forever: the
        // channel's receive draws on tokio's cooperative budget.
        while let Some(events) = this.events.as_mut() {
            match ready!(Pin::new(events).poll_next(cx)) {
                Some(Ok(Signal::Event(event))) if this.filter.matches(&event) => {
                    return Poll::Ready(Some(Ok(event)));
                }
                Some(Ok(Signal::Event(_))) => {}
                Some(Err(BroadcastStreamRecvError::Lagged(missed))) => {
                    return Poll::Ready(Some(Err(Lagged { missed })));
                }
                Some(Ok(Signal::Closed)) | None => this.events = None,
            }
        }
        Poll::Ready(None)
    }
}

impl FusedStream for EventStream {
    fn is_terminated(&self) -> bool {
        self.events.is_none()
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("filter", &self.filter)
            .field("ended", &self.events.is_none())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventPayload;

    #[test]
    fn empty_type_set_keeps_nothing_and_all_keeps_everything() {
        let id = RequestId::new("r1").unwrap();
        let event = Event::for_request(&id, 0, EventPayload::chunk(0, "x"));
        assert!(EventFilter::all().matches(&event));
        assert!(!EventFilter::all().types([]).matches(&event));
        assert!(EventFilter::all()
            .types([EventType::Start, EventType::Chunk])
            .matches(&event));
    }

    #[test]
    fn request_filter_rejects_unscoped_events() {
        let id = RequestId::new("r1").unwrap();
        let event = Event::unscoped(EventPayload::SubscriberFailed {
            subscriber: "s".into(),
            reason: "r".into(),
        });
        assert!(!EventFilter::all().request(id).matches(&event));
    }
}
