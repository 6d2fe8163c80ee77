//! `run`: keep the live version up to date, following `current` (promotions and rollbacks),
//! with the background rebuild (`auto_rebuild`) and the previous version kept writable
//! (`versions.retain_previous`).
//!
//! Invariant: at most one version is written as current at a time; a version `run` leaves is
//! written (in its own consumer group) only until `retain_previous` has passed, then frozen.

use crate::error::{Error, Result};
use crate::pipeline::handle::TableHandle;
use crate::pipeline::ingest::{self, IngestReport, Mode};
use crate::pipeline::maintenance::AutoMaintenance;
use crate::pipeline::rebuild;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::table::VersionDefinition;
use crate::table::plan::Plan;
use crate::table::version;

/// How `run` reads and when it ends.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Kafka: stop once every assigned partition has reached its end (files sources always
    /// stop at their end).
    pub stop_at_end: bool,
    /// The raw archive the table names (`[table.source] archive`), opened from the same
    /// config: what an `auto_rebuild` replays before the topic.
    pub archive: Option<TableHandle>,
}

impl TableHandle {
    /// `run` for this table: materialize the live version until shutdown (or the source's
    /// end: always for files, with `stop_at_end` for Kafka).
    ///
    /// The service follows the pointer: when `current` moves (a promotion or a rollback), it
    /// commits, then writes the version the pointer names from the offsets stored in it, as
    /// that version's frozen definition says. The version it leaves stays writable (a second
    /// consumer, in that version's own group) for `versions.retain_previous`, so a rollback
    /// finds it up to date; then it is frozen.
    pub async fn run(&self, shutdown: Shutdown, opts: RunOptions) -> Result<IngestReport> {
        let (lake, layout) = (&self.lake, &self.layout);
        let live = self.live_version().await?;
        let mut def = live.def;
        let mut auto = live.rebuild.map(|reasons| {
            AutoRebuild::start(self.clone(), opts.archive.clone(), &reasons, &shutdown)
        });
        let current_mode = Mode::Live {
            stop_at_end: opts.stop_at_end,
        };
        let mut previous: Option<Previous> = None;
        let maintenance = AutoMaintenance::start(self, &shutdown);
        let outcome = loop {
            if let Some(p) = previous.take_if(|p| p.version == def.version) {
                // Back to the version we kept writing (a rollback): it becomes current.
                p.stop().await;
            }
            let report = match ingest::materialize(
                lake,
                layout,
                &def,
                &self.cfg,
                shutdown.clone(),
                current_mode,
            )
            .await
            {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            let to = match (report.moved_to, auto.take()) {
                (Some(to), auto_rebuild) => {
                    // Promoted (by our background rebuild or anyone): it has nothing left to do.
                    if let Some(a) = auto_rebuild {
                        a.stop().await;
                    }
                    to
                }
                (None, Some(a)) if !report.interrupted && !shutdown.is_triggered() => {
                    // The source ended (files; Kafka with --stop-at-end): the job is done once
                    // the new version is built and promoted, so wait for it and write it to
                    // the end too.
                    match a.finish().await {
                        Some(to) => to,
                        None => break Ok(report),
                    }
                }
                (None, auto_rebuild) => {
                    if let Some(a) = auto_rebuild {
                        a.stop().await;
                    }
                    break Ok(report);
                }
            };
            let left = std::mem::replace(
                &mut def,
                match version::load(lake, layout, to).await {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        break Err(Error::Corrupt {
                            path: layout.version_definition(to),
                            source: format!(
                                "current.json points at v{to} but its definition is missing"
                            )
                            .into(),
                        });
                    }
                    Err(e) => break Err(e),
                },
            );
            if def.definition_hash != self.definition()?.hash()? {
                tracing::warn!(table = %self.cfg.name, version = to, "the config's definition differs from v{to}'s; writing v{to} as frozen (update the config to match)");
            }
            tracing::info!(table = %self.cfg.name, from = left.version, to, "now writing v{to}");
            if let Some(p) = previous.take() {
                p.stop().await;
            }
            let retain = self.cfg.versions.retain_previous;
            if !retain.is_zero() {
                let previous_mode = Mode::Retained {
                    stop_at_end: opts.stop_at_end,
                };
                previous = Some(Previous::start(
                    self.clone(),
                    left,
                    &shutdown,
                    retain,
                    previous_mode,
                ));
            }
        };
        if let Some(p) = previous {
            p.stop().await;
        }
        if let Some(m) = maintenance {
            m.stop().await;
        }
        outcome
    }
}

/// How long a background rebuild waits before trying again after a failure.
const AUTO_REBUILD_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// `auto_rebuild`: the rebuild (with promotion) `run` does in the background.
struct AutoRebuild {
    stop: ShutdownTrigger,
    task: tokio::task::JoinHandle<Option<u32>>,
}

impl AutoRebuild {
    fn start(
        table: TableHandle,
        archive: Option<TableHandle>,
        reasons: &[String],
        shutdown: &Shutdown,
    ) -> AutoRebuild {
        let (stop, mut stopped) = shutdown.child();
        tracing::info!(table = %table.cfg.name, reasons = %reasons.join("; "), "the config's definition needs a new version: rebuilding it in the background (auto_rebuild); the live version keeps being written meanwhile");
        let task = tokio::spawn(async move {
            let opts = rebuild::RebuildOptions {
                promote: true,
                archive,
                ..Default::default()
            };
            loop {
                let error = match rebuild::rebuild(&table, opts.clone(), stopped.clone()).await {
                    Ok(r) if r.promoted.is_some() => {
                        let to = r.ingest.version;
                        tracing::info!(table = %table.cfg.name, version = to, rows = r.ingest.rows, "background rebuild caught up and promoted");
                        return Some(to);
                    }
                    Ok(_) if stopped.is_triggered() => return None,
                    Ok(r) => Error::Behind(format!(
                        "v{} ended its replay without being promoted",
                        r.ingest.version
                    )),
                    Err(e) if stopped.is_triggered() => {
                        tracing::warn!(table = %table.cfg.name, error = %e, "background rebuild stopped");
                        return None;
                    }
                    Err(e) => e,
                };
                // E.g. another process rebuilding the same version took a commit, the live
                // version kept moving ahead, or the store was unreachable: the next attempt
                // resumes from the offsets the new version holds.
                tracing::warn!(table = %table.cfg.name, error = %error, retry_in = ?AUTO_REBUILD_RETRY, "background rebuild failed; trying again");
                tokio::select! {
                    () = stopped.wait() => return None,
                    () = tokio::time::sleep(AUTO_REBUILD_RETRY) => {}
                }
                match table.plan().await {
                    Ok(Plan::Rebuild { .. }) => {}
                    Ok(_) => {
                        tracing::info!(table = %table.cfg.name, "the live version has the config's definition now; nothing left to rebuild");
                        return None;
                    }
                    Err(e) => {
                        tracing::warn!(table = %table.cfg.name, error = %e, "cannot compare the config with the live version");
                    }
                }
            }
        });
        AutoRebuild { stop, task }
    }

    /// Waits for the rebuild to promote; the version it promoted.
    async fn finish(self) -> Option<u32> {
        match self.task.await {
            Ok(to) => to,
            Err(e) => {
                tracing::error!(error = %e, "the background rebuild panicked");
                None
            }
        }
    }

    /// Stops it (a later `run` resumes it from its stored offsets).
    async fn stop(self) {
        self.stop.trigger();
        let _ = self.finish().await;
    }
}

/// A version `run` keeps writing after `current` moved away from it.
struct Previous {
    version: u32,
    stop: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<IngestReport>>,
}

impl Previous {
    fn start(
        table: TableHandle,
        def: VersionDefinition,
        shutdown: &Shutdown,
        retain: std::time::Duration,
        mode: Mode,
    ) -> Previous {
        let version = def.version;
        let (stop, stopped) = shutdown.child();
        let (expire, expired) = stopped.child();
        tracing::info!(table = %table.cfg.name, version, retain = %humantime::format_duration(retain), "keeping the previous version writable");
        let task = tokio::spawn(async move {
            let ingest =
                ingest::materialize(&table.lake, &table.layout, &def, &table.cfg, expired, mode);
            tokio::pin!(ingest);
            tokio::select! {
                r = &mut ingest => r,
                () = tokio::time::sleep(retain) => {
                    tracing::info!(table = %table.cfg.name, version, "retain_previous has passed: freezing the previous version");
                    expire.trigger();
                    ingest.await
                }
            }
        });
        Previous {
            version,
            stop,
            task,
        }
    }

    /// Commits and stops writing it.
    async fn stop(self) {
        self.stop.trigger();
        match self.task.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(version = self.version, error = %e, "writing the previous version failed")
            }
            Err(e) => {
                tracing::warn!(version = self.version, error = %e, "the previous version's writer panicked")
            }
        }
    }
}
