//! `[table.maintenance] compact = "auto"`: `run`'s background compaction. Every
//! `compact_after / 4` (1 s to 5 min) it compacts the current Delta version's partitions no
//! file was added to for `compact_after`, beside the live writer ([`compact::compact`]).
//!
//! Invariant: it never takes from ingestion the CPU that ingestion wants. All of its work
//! (reading, sorting and encoding Parquet, its object-store calls) runs on one thread of its
//! own: a one-thread rayon pool whose thread drives a tokio runtime of its own, at a lower
//! scheduling priority (nice [`NICE`] on Linux: about a tenth of an ingest thread's share of
//! a core when they compete, all of an idle core otherwise). It never runs on the ingest's
//! tokio workers or rayon pool, and it holds at most one commit batch of bins in memory (see
//! [`compact::compact`]).

use std::time::Duration;

use crate::error::{Error, Unsupported};
use crate::metrics::Metrics;
use crate::pipeline::compact::{self, CompactOptions};
use crate::pipeline::handle::TableHandle;
use crate::shutdown::{Shutdown, ShutdownTrigger};

/// The nice value of the compaction's thread (0 is the ingest's; 19 the lowest).
pub const NICE: i32 = 10;

/// The background compaction of one table, started by `run`.
pub struct AutoCompact {
    stop: ShutdownTrigger,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl AutoCompact {
    /// Starts compacting `table`'s current version in the background until `shutdown` or
    /// [`AutoCompact::stop`].
    pub fn start(table: &TableHandle, shutdown: &Shutdown) -> AutoCompact {
        let (stop, stopped) = shutdown.child();
        let (finished, done) = tokio::sync::oneshot::channel();
        let table = table.clone();
        Metrics::global().compaction(&table.cfg.name, 0, 0, 0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "kappa-lake-compact".into())
            .start_handler(|_| lower_priority())
            .build();
        match pool {
            // The pool ends once its one job, the whole background task, has returned.
            Ok(pool) => pool.spawn(move || {
                compact_in_background(&table, stopped);
                // The receiver is gone only if `run` is gone.
                let _ = finished.send(());
            }),
            Err(e) => {
                tracing::warn!(table = %table.cfg.name, error = %e, "cannot start the automatic compaction's thread; not compacting");
                let _ = finished.send(());
            }
        }
        AutoCompact { stop, done }
    }

    /// Stops it (a pass is dropped where it is: like a killed `compact`, it leaves at most
    /// uncommitted files, invisible to readers, which `vacuum` removes) and waits for it.
    pub async fn stop(self) {
        self.stop.trigger();
        if self.done.await.is_err() {
            tracing::error!("the automatic compaction panicked");
        }
    }
}

/// The background task, on the compaction's own thread: a tokio runtime of its own drives it,
/// so its I/O and its CPU stay off the ingest's threads.
fn compact_in_background(table: &TableHandle, stopped: Shutdown) {
    let name = &table.cfg.name;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("kappa-lake-compact-io")
        .on_thread_start(lower_priority)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(table = %name, error = %e, "cannot start the automatic compaction's runtime; not compacting");
            return;
        }
    };
    // A store client of its own: an HTTP connection belongs to the runtime that opened it.
    let own = match TableHandle::open(&table.cfg) {
        Ok(mut own) => {
            own.lake.clock = table.lake.clock.clone();
            own
        }
        Err(e) => {
            tracing::warn!(table = %name, error = %e, "cannot open the table for the automatic compaction; not compacting");
            return;
        }
    };
    runtime.block_on(compact_every(&own, stopped));
}

/// Looks a few times per `compact_after`, so a partition waits at most ~1.25 times it.
async fn compact_every(table: &TableHandle, mut stopped: Shutdown) {
    let m = &table.cfg.maintenance;
    let every = (m.compact_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(300));
    let name = &table.cfg.name;
    let opts = CompactOptions {
        min_files: m.compact_min_files,
        idle_for: Some(m.compact_after),
        ..CompactOptions::default()
    };
    loop {
        tokio::select! {
            () = stopped.wait() => return,
            () = tokio::time::sleep(every) => {}
        }
        let result = tokio::select! {
            () = stopped.wait() => return,
            r = compact::compact(table, &opts) => r,
        };
        match result {
            Ok(r) => {
                Metrics::global().compaction(
                    name,
                    r.files_removed as u64,
                    r.bytes_rewritten,
                    r.partitions_waiting,
                );
                if r.files_removed > 0 {
                    tracing::info!(table = %name, version = r.version, partitions = r.partitions.len(), files_removed = r.files_removed, files_added = r.files_added, bytes = r.bytes_rewritten, "compacted idle partitions");
                }
            }
            Err(Error::Unsupported(Unsupported::CompactParquet { version })) => {
                tracing::debug!(table = %name, version, "plain-Parquet version: no automatic compaction");
            }
            Err(e) => {
                tracing::warn!(table = %name, error = %e, retry_in = ?every, "automatic compaction failed; trying again");
            }
        }
    }
}

/// Lowers the calling thread's scheduling priority to [`NICE`] (Linux: the nice value is
/// per thread). Elsewhere, or if refused, the thread keeps the default priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; `who = 0` with PRIO_PROCESS
        // names the calling thread under Linux's per-thread nice values.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower the compaction thread's priority");
        }
    }
}
