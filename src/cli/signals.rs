//! SIGINT/SIGTERM → a [`Shutdown`] for the long-running commands (`run`, `rebuild`, `demo`).
//!
//! Invariant: the first signal only asks for a drain (finish the current commit, then stop);
//! a second signal, or a passed deadline, exits the process at once — safe because the
//! offsets are in the commits, so uncommitted records are re-read on restart.

use std::time::Duration;

use kappa_lake::shutdown::{self, Shutdown};

/// SIGINT/SIGTERM → drain and stop; a second signal exits at once (offsets are in the commits).
pub fn shutdown_on_signals() -> Shutdown {
    shutdown_on_signals_within(None)
}

/// Like [`shutdown_on_signals`], and exits with status 1 if draining takes longer than
/// `deadline`.
pub fn shutdown_on_signals_within(deadline: Option<Duration>) -> Shutdown {
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "shutting down: finishing the current commit (signal again to exit at once)"
        );
        trigger.trigger();
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait_for_signal() => {
                tracing::warn!("second signal: exiting now; uncommitted records will be re-read");
                std::process::exit(130);
            }
            () = expired => {
                tracing::error!("shutdown deadline passed: exiting now; uncommitted records will be re-read");
                std::process::exit(1);
            }
        }
    });
    shutdown
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
