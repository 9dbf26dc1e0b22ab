//! Counters shared by the bus and each subscriber's task, and the snapshot
//! [`MistralEventBus::stats`](super::MistralEventBus::stats) returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::subscriber::{Delivery, SubscriberId};

/// A snapshot of the bus's counters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BusStats {
    /// Events accepted by `publish` since the bus was built.
    pub published: u64,
    /// Every subscriber ever registered, detached or not, in registration
    /// order. Event streams are not listed.
    pub subscribers: Vec<SubscriberStats>,
}

impl BusStats {
    /// The stats of the subscriber `id`, if it was registered on this bus.
    pub fn subscriber(&self, id: SubscriberId) -> Option<&SubscriberStats> {
        self.subscribers.iter().find(|stats| stats.id == id)
    }
}

/// One subscriber's counters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// Its id.
    pub id: SubscriberId,
    /// Its name.
    pub name: String,
    /// How it is delivered to.
    pub delivery: Delivery,
    /// Events it handled successfully.
    pub delivered: u64,
    /// Events dropped because it fell behind (lossy only).
    pub lagged: u64,
    /// Events whose handling returned an error or panicked.
    pub failed: u64,
    /// Whether the bus gave up on it because its queue stayed full.
    pub detached: bool,
}

/// The live counters behind [`SubscriberStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    delivered: AtomicU64,
    lagged: AtomicU64,
    failed: AtomicU64,
    detached: AtomicBool,
}

impl Counters {
    /// Only the subscriber's own task counts its deliveries, so a plain
    /// load and store will do: no locked read-modify-write per event.
    pub(crate) fn add_delivered(&self) {
        let delivered = self.delivered.load(Ordering::Relaxed);
        self.delivered.store(delivered + 1, Ordering::Relaxed);
    }

    pub(crate) fn add_lagged(&self, missed: u64) {
        self.lagged.fetch_add(missed, Ordering::Relaxed);
    }

    pub(crate) fn add_failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the subscriber detached; true for the caller that did it.
    pub(crate) fn mark_detached(&self) -> bool {
        !self.detached.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(
        &self,
        id: SubscriberId,
        name: &str,
        delivery: Delivery,
    ) -> SubscriberStats {
        SubscriberStats {
            id,
            name: name.to_owned(),
            delivery,
            delivered: self.delivered.load(Ordering::Relaxed),
            lagged: self.lagged.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            detached: self.is_detached(),
        }
    }
}
