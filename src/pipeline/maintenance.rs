//! `[table.maintenance]`: `run`'s background maintenance of the current Delta version.
//! `compact = "auto"`: every `compact_after / 4` (1 s to 5 min) it compacts the partitions no
//! file was added to for `compact_after`, beside the live writer ([`compact::compact`]).
//! `vacuum = "auto"`: every `vacuum_every` it deletes the data files no snapshot within the
//! version's `delta.deletedFileRetentionDuration` references ([`vacuum::vacuum`], never with a
//! shorter retention).
//!
//! Invariant: it never takes from ingestion the CPU that ingestion wants. All of its work
//! (reading, sorting and encoding Parquet, its object-store calls) runs on one thread of its
//! own: a one-thread rayon pool whose thread drives a tokio runtime of its own, at a lower
//! scheduling priority (nice [`NICE`] on Linux: about a tenth of an ingest thread's share of
//! a core when they compete, all of an idle core otherwise). It never runs on the ingest's
//! tokio workers or rayon pool, and it holds at most one commit batch of bins in memory (see
//! [`compact::compact`]).

use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Unsupported};
use crate::metrics::Metrics;
use crate::pipeline::compact::{self, CompactOptions};
use crate::pipeline::handle::TableHandle;
use crate::pipeline::vacuum;
use crate::shutdown::{Shutdown, ShutdownTrigger};

/// The nice value of the maintenance thread (0 is the ingest's; 19 the lowest).
pub const NICE: i32 = 10;

/// The background maintenance of one table, started by `run`.
pub struct AutoMaintenance {
    stop: ShutdownTrigger,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl AutoMaintenance {
    /// Starts maintaining `table`'s current version in the background until `shutdown` or
    /// [`AutoMaintenance::stop`]; `None` when its config turns both compaction and vacuum off.
    pub fn start(table: &TableHandle, shutdown: &Shutdown) -> Option<AutoMaintenance> {
        let m = &table.cfg.maintenance;
        if !m.compact && !m.vacuum {
            return None;
        }
        let (stop, stopped) = shutdown.child();
        let (finished, done) = tokio::sync::oneshot::channel();
        let table = table.clone();
        Metrics::global().compaction(&table.cfg.name, 0, 0, 0);
        Metrics::global().vacuum(&table.cfg.name, 0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "kappa-lake-compact".into())
            .start_handler(|_| lower_priority())
            .build();
        match pool {
            // The pool ends once its one job, the whole background task, has returned.
            Ok(pool) => pool.spawn(move || {
                maintain_in_background(&table, stopped);
                // The receiver is gone only if `run` is gone.
                let _ = finished.send(());
            }),
            Err(e) => {
                tracing::warn!(table = %table.cfg.name, error = %e, "cannot start the background maintenance's thread; not compacting or vacuuming");
                let _ = finished.send(());
            }
        }
        Some(AutoMaintenance { stop, done })
    }

    /// Stops it (a pass is dropped where it is: like a killed `compact`, it leaves at most
    /// uncommitted files, invisible to readers, which `vacuum` removes) and waits for it.
    pub async fn stop(self) {
        self.stop.trigger();
        if self.done.await.is_err() {
            tracing::error!("the background maintenance panicked");
        }
    }
}

/// The background task, on the maintenance thread: a tokio runtime of its own drives it, so
/// its I/O and its CPU stay off the ingest's threads.
fn maintain_in_background(table: &TableHandle, stopped: Shutdown) {
    let name = &table.cfg.name;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("kappa-lake-compact-io")
        .on_thread_start(lower_priority)
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(table = %name, error = %e, "cannot start the background maintenance's runtime; not compacting or vacuuming");
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
            tracing::warn!(table = %name, error = %e, "cannot open the table for the background maintenance; not compacting or vacuuming");
            return;
        }
    };
    runtime.block_on(maintain(&own, stopped));
}

/// Looks a few times per `compact_after`, so a partition waits at most ~1.25 times it; vacuums
/// on the first look and then once per `vacuum_every`.
async fn maintain(table: &TableHandle, mut stopped: Shutdown) {
    let m = &table.cfg.maintenance;
    let every = if m.compact {
        (m.compact_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(300))
    } else {
        m.vacuum_every
    };
    let opts = CompactOptions {
        min_files: m.compact_min_files,
        idle_for: Some(m.compact_after),
        ..CompactOptions::default()
    };
    let mut vacuumed_at: Option<Instant> = None;
    loop {
        tokio::select! {
            () = stopped.wait() => return,
            () = tokio::time::sleep(every) => {}
        }
        if m.compact {
            tokio::select! {
                () = stopped.wait() => return,
                () = compact_once(table, &opts, every) => {}
            }
        }
        if m.vacuum && vacuumed_at.is_none_or(|at| at.elapsed() >= m.vacuum_every) {
            vacuumed_at = Some(Instant::now());
            tokio::select! {
                () = stopped.wait() => return,
                () = vacuum_once(table) => {}
            }
        }
    }
}

/// One compaction pass; its outcome goes to the metrics and the log.
async fn compact_once(table: &TableHandle, opts: &CompactOptions, every: Duration) {
    let name = &table.cfg.name;
    match compact::compact(table, opts).await {
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

/// One vacuum at the version's own retention; its outcome goes to the metrics and the log.
async fn vacuum_once(table: &TableHandle) {
    let name = &table.cfg.name;
    let every = table.cfg.maintenance.vacuum_every;
    match vacuum::vacuum(table, None, None, false, false).await {
        Ok(r) => {
            Metrics::global().vacuum(name, r.files.len() as u64);
            if !r.files.is_empty() {
                tracing::info!(table = %name, version = r.version, files = r.files.len(), "vacuumed unreferenced files");
            }
        }
        Err(Error::Unsupported(Unsupported::VacuumParquet { version })) => {
            tracing::debug!(table = %name, version, "plain-Parquet version: no automatic vacuum");
        }
        Err(e) => {
            tracing::warn!(table = %name, error = %e, retry_in = ?every, "automatic vacuum failed; trying again");
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
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower the maintenance thread's priority");
        }
    }
}
