//! The state one simulator's handlers and handles share.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::answer::SplitMix;
use super::fault::Fault;
use super::record::Recorder;
use super::stream::ShutdownSignal;

/// Settings fixed when the simulator starts.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) chunk_delay: Duration,
    pub(crate) padding: bool,
}

/// The state behind the router and every [`Simulator`](super::Simulator)
/// handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) recorder: Arc<Recorder>,
    /// Fault sets, one taken per chat request.
    script: Mutex<VecDeque<Vec<Fault>>>,
    /// Flips to true once, on shutdown.
    stopping: watch::Sender<bool>,
    /// Makes each correlation id different.
    correlation_counter: AtomicU64,
    correlation_salt: u64,
}

impl Shared {
    pub(crate) fn new(settings: Settings, script: VecDeque<Vec<Fault>>) -> Self {
        let salt = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            settings,
            recorder: Arc::new(Recorder::default()),
            script: Mutex::new(script),
            stopping: watch::Sender::new(false),
            correlation_counter: AtomicU64::new(0),
            correlation_salt: salt,
        }
    }

    pub(crate) fn push_faults(&self, faults: Vec<Fault>) {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(faults);
    }

    /// The next scripted fault set, or none when the script is empty.
    pub(crate) fn next_faults(&self) -> Vec<Fault> {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
            .unwrap_or_default()
    }

    /// Tells the server, and every body it is sending, to stop.
    pub(crate) fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// A future that resolves once [`Shared::stop`] is called.
    pub(crate) fn stopped(&self) -> ShutdownSignal {
        let mut watcher = self.stopping.subscribe();
        Box::pin(async move {
            // An error means the sender is gone, which is a stop too.
            let _ = watcher.wait_for(|stopping| *stopping).await;
        })
    }

    /// A fresh id shaped like Mistral's UUIDv7 correlation ids.
    pub(crate) fn correlation_id(&self) -> String {
        let count = self.correlation_counter.fetch_add(1, Ordering::Relaxed);
        let mut rng = SplitMix::new(self.correlation_salt ^ count.rotate_left(32));
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_millis() as u64)
            .unwrap_or(0);
        let random_a = rng.next_u64();
        let random_b = rng.next_u64();
        format!(
            "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
            (millis >> 16) & 0xffff_ffff,
            millis & 0xffff,
            random_a & 0xfff,
            0x8000 | ((random_a >> 12) & 0x3fff),
            random_b & 0xffff_ffff_ffff,
        )
    }
}
