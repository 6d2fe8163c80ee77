//! Cancellation, passed in (never grabbed globally): `main` wires SIGTERM/SIGINT to a
//! [`ShutdownTrigger`]; tests make their own.

use tokio::sync::watch;

/// The sending half: call [`ShutdownTrigger::trigger`] to ask every task to drain and stop.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// The receiving half, cloned into every task that must stop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger/receiver pair.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Asks every holder of a [`Shutdown`] to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// A receiver that never fires.
    pub fn never() -> Shutdown {
        // With the sender gone, `wait` never resolves.
        Shutdown(watch::channel(false).1)
    }

    /// A new pair whose receiver also fires when this one does (to stop one task early
    /// without stopping the rest). Needs a tokio runtime.
    pub fn child(&self) -> (ShutdownTrigger, Shutdown) {
        let (trigger, child) = channel();
        let mut parent = self.clone();
        let tx = trigger.0.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = parent.wait() => { tx.send_replace(true); }
                () = tx.closed() => {}
            }
        });
        (trigger, child)
    }

    /// Whether shutdown was requested.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested.
    pub async fn wait(&mut self) {
        // An error means the trigger is gone without firing: then never resolve.
        if self.0.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
