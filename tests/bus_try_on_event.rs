//! The synchronous `Subscriber::try_on_event` hook: tried first, errors and
//! panics counted as for `on_event`, `None` falls back to `on_event`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mistral_events::bus::{MistralEventBus, SubscribeOptions, Subscriber};
use mistral_events::error::BoxError;
use mistral_events::event::{Event, EventPayload};
use mistral_events::{Client, RequestId};

/// Handles even events at once (failing on 2, panicking on 4), leaves odd
/// ones to `on_event`.
struct Hooked {
    now: Arc<AtomicU64>,
    later: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl Subscriber for Hooked {
    fn try_on_event(&mut self, event: &Arc<Event>) -> Option<Result<(), BoxError>> {
        match event.seq {
            seq if seq % 2 == 1 => None,
            2 => Some(Err("refused".into())),
            4 => panic!("hook panicked"),
            _ => {
                self.now.fetch_add(1, Ordering::Relaxed);
                Some(Ok(()))
            }
        }
    }

    async fn on_event(&mut self, event: Arc<Event>) -> Result<(), BoxError> {
        assert_eq!(event.seq % 2, 1, "handled at once already");
        self.later.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn run(options: SubscribeOptions) {
    let bus = MistralEventBus::new(Client::builder().build().unwrap());
    let (now, later) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let id = bus.register(
        Hooked {
            now: Arc::clone(&now),
            later: Arc::clone(&later),
        },
        options,
    );
    let request = RequestId::new("r1").unwrap();
    for seq in 0..8 {
        let event = Event::for_request(&request, seq, EventPayload::chunk(seq, "x"));
        bus.publish(event).await;
    }
    bus.shutdown().await;

    // 0 and 6 at once, 1, 3, 5 and 7 later; 2 failed, 4 panicked.
    assert_eq!(now.load(Ordering::Relaxed), 2);
    assert_eq!(later.load(Ordering::Relaxed), 4);
    let stats = bus.stats();
    let stats = stats.subscriber(id).unwrap();
    assert_eq!((stats.delivered, stats.failed), (6, 2));
}

#[tokio::test]
async fn lossy_subscribers_try_the_hook_first() {
    run(SubscribeOptions::lossy()).await;
}

#[tokio::test]
async fn reliable_subscribers_try_the_hook_first() {
    run(SubscribeOptions::reliable()).await;
}
