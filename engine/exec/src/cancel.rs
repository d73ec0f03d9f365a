//! Cancelling a run: a handle the caller keeps (Ctrl-C, a daemon's shutdown) and the tasks watch.

use std::sync::Arc;

use tokio::sync::watch;

/// A run's cancel handle: cheap to clone; cancelling is permanent.
#[derive(Debug, Clone)]
pub struct Cancel {
    tx: Arc<watch::Sender<bool>>,
    abandon: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    /// A handle that is not cancelled.
    pub fn new() -> Cancel {
        Cancel { tx: Arc::new(watch::channel(false).0), abandon: Arc::new(watch::channel(false).0) }
    }

    /// Interrupts the run: running tasks are stopped, nothing half-done is cached, the rest is
    /// skipped.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// The hard level (a second Ctrl-C): cancels, and the run stops waiting for its running
    /// tasks: they are abandoned (plugins are told to stop, commands killed when dropped), the
    /// record is closed as `interrupted` and the run's staging removed, then `Engine::run`
    /// returns at once.
    pub fn abandon(&self) {
        self.tx.send_replace(true);
        self.abandon.send_replace(true);
    }

    /// Whether [`Cancel::abandon`] was called.
    pub fn is_abandoned(&self) -> bool {
        *self.abandon.borrow()
    }

    pub(crate) fn receiver(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    pub(crate) fn abandon_receiver(&self) -> watch::Receiver<bool> {
        self.abandon.subscribe()
    }
}

/// Resolves once the run is interrupted.
pub(crate) async fn cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_reaches_every_receiver() {
        let c = Cancel::new();
        let mut rx = c.receiver();
        assert!(!c.is_cancelled());
        c.clone().cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), cancelled(&mut rx)).await.unwrap();
        assert!(c.is_cancelled());
    }
}
