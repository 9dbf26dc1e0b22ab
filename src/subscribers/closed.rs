//! A flag an output subscriber raises when its reader went away.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Tells whether a printer's or recorder's output was closed by its reader
/// (a broken pipe, as when `| head` exits).
///
/// Clones share the flag. A command-line tool holds one and stops its chat
/// once the output is gone.
///
/// # Examples
///
/// ```
/// use mistral_events::subscribers::TerminalPrinter;
///
/// let printer = TerminalPrinter::new(Vec::new());
/// let closed = printer.closed();
/// assert!(!closed.is_closed());
/// ```
#[derive(Clone, Default)]
pub struct OutputClosed {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    closed: AtomicBool,
    raised: Notify,
}

impl OutputClosed {
    /// Whether the output was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Waits until the output is closed; returns at once if it already is.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait(&self) {
        loop {
            let raised = self.shared.raised.notified();
            let mut raised = std::pin::pin!(raised);
            // Register before looking, so a close in between still wakes us.
            raised.as_mut().enable();
            if self.is_closed() {
                return;
            }
            raised.await;
        }
    }

    pub(crate) fn raise(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.raised.notify_waiters();
    }
}

impl fmt::Debug for OutputClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OutputClosed")
            .field(&self.is_closed())
            .finish()
    }
}
