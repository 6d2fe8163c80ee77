//! The jobs: `run` (keep the live version up to date), `rebuild` (replay into a new version),
//! and `promote`/`rollback` (move `current` under the catch-up rule).

pub mod dead_letters;
pub mod diff;
pub mod gc;
pub mod ingest;
pub mod progress;
pub mod promote;
pub mod rebuild;
pub mod sample;
pub mod shape;
pub mod views;

use crate::config::{ConfigError, TableConfig};
use crate::error::{Error, Refusal, Result};
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::storage::Lake;
use crate::table::plan::{self, Plan};
use crate::table::version::{self, Definition};
use crate::table::{Pointer, TableLayout, VersionDefinition, VersionState, pointer};
use crate::write::DeltaLog;

pub use ingest::{IngestOptions, IngestReport};

/// One configured table with its opened root.
#[derive(Debug, Clone)]
pub struct TableHandle {
    /// The validated config.
    pub cfg: TableConfig,
    /// The opened root.
    pub lake: Lake,
    /// Paths of the table.
    pub layout: TableLayout,
}

impl TableHandle {
    /// Opens the table's root (no writes).
    pub fn open(cfg: &TableConfig) -> Result<TableHandle, ConfigError> {
        let lake = Lake::open_with(
            &cfg.root,
            &cfg.storage,
            &format!("table[{}].root", cfg.name),
        )?;
        Ok(TableHandle {
            cfg: cfg.clone(),
            lake,
            layout: TableLayout::new(&cfg.name),
        })
    }

    /// Opens the root and checks it accepts writes, before any work is done.
    pub async fn open_for_writing(cfg: &TableConfig) -> Result<TableHandle, ConfigError> {
        let handle = TableHandle::open(cfg)?;
        handle
            .lake
            .probe_writable(&format!("table[{}].root", cfg.name))
            .await?;
        Ok(handle)
    }

    /// The definition the config asks for.
    pub fn definition(&self) -> Result<Definition> {
        Definition::from_config(&self.cfg)
    }

    /// The version `run` writes: the current one, which must match the config's definition
    /// (with `auto_rebuild`, it may differ: see [`Live::rebuild`]). A table without versions
    /// gets v1, made current at once.
    pub async fn live_version(&self) -> Result<Live> {
        let wanted = self.definition()?;
        let hash = wanted.hash()?;
        let (lake, layout) = (&self.lake, &self.layout);
        if let Some(def) = self.current_definition().await? {
            if def.definition_hash == hash {
                return Ok(Live::of(def));
            }
            let next = version::list(lake, layout)
                .await?
                .last()
                .map_or(def.version + 1, |v| v.version + 1);
            return match plan::compare(&def.definition, def.version, &wanted, next)? {
                Plan::Evolve { added, .. } => self.evolve(def, wanted, added).await.map(Live::of),
                Plan::Rebuild { reasons, .. } if self.cfg.versions.auto_rebuild => Ok(Live {
                    def,
                    rebuild: Some(reasons),
                }),
                Plan::Rebuild { reasons, .. } => Err(Refusal::DefinitionChanged {
                    table: self.cfg.name.clone(),
                    live: def.version,
                    next,
                    reasons,
                }
                .into()),
                Plan::Nothing { .. } | Plan::Create => Ok(Live::of(def)),
            };
        }
        // No pointer yet: first run (or a crash between creating v1 and pointing at it).
        let versions = version::list(lake, layout).await?;
        let def = match versions.iter().find(|v| v.definition_hash == hash) {
            Some(v) => v.clone(),
            None => {
                let next = versions.last().map_or(1, |v| v.version + 1);
                match version::create(lake, layout, next, wanted).await {
                    Ok(def) => def,
                    // Another writer starting at the same time created it: look again.
                    Err(Error::Conflict { .. }) => return Box::pin(self.live_version()).await,
                    Err(e) => return Err(e),
                }
            }
        };
        let first = Pointer {
            version: def.version,
            previous: None,
            updated_at: chrono::Utc::now(),
            reason: "create".into(),
            offsets: Default::default(),
        };
        match pointer::swap(lake, layout, None, &first).await {
            Ok(()) => {
                version::set_state(lake, layout, def.version, VersionState::Live).await?;
                tracing::info!(table = %self.cfg.name, version = def.version, "created the table's first version");
                Ok(Live::of(def))
            }
            // Another process made a version current first: use what it chose.
            Err(Error::Conflict { .. }) => Box::pin(self.live_version()).await,
            Err(e) => Err(e),
        }
    }

    /// Applies an additive schema change to the live version: the new nullable columns go
    /// into its Delta table, then into its definition.
    async fn evolve(
        &self,
        def: VersionDefinition,
        wanted: Definition,
        added: Vec<String>,
    ) -> Result<VersionDefinition> {
        let (lake, layout) = (&self.lake, &self.layout);
        let schema = wanted.event_schema()?.arrow;
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .filter(|f| added.contains(f.name()))
            .cloned()
            .collect();
        let mut log = DeltaLog::open(lake, layout, def.version, None).await?;
        log.add_columns(&fields).await?;
        let evolved = version::evolve(lake, layout, &def, wanted, added.clone()).await?;
        tracing::info!(table = %self.cfg.name, version = def.version, added = ?added, "schema evolved in place");
        Ok(evolved)
    }

    /// Where version `version` lives, for readers: an absolute path for local roots, else a URL.
    pub fn version_location(&self, version: u32) -> String {
        let rel = self.layout.version_dir(version);
        match &self.lake.local_dir {
            Some(dir) => dir.join(rel.as_ref()).display().to_string(),
            None => format!("{}/{rel}", self.lake.display.trim_end_matches('/')),
        }
    }

    /// The current version's frozen definition (`None`: the table has no version yet).
    pub async fn current_definition(&self) -> Result<Option<VersionDefinition>> {
        let (lake, layout) = (&self.lake, &self.layout);
        let Some(p) = pointer::read(lake, layout).await? else {
            return Ok(None);
        };
        let def = version::load(lake, layout, p.version)
            .await?
            .ok_or_else(|| Error::Corrupt {
                path: layout.version_definition(p.version),
                source: format!(
                    "current.json points at v{} but its definition is missing",
                    p.version
                )
                .into(),
            })?;
        Ok(Some(def))
    }

    /// What `plan` says for this table.
    pub async fn plan(&self) -> Result<Plan> {
        let wanted = self.definition()?;
        let Some(live) = self.current_definition().await? else {
            return Ok(Plan::Create);
        };
        let next = version::list(&self.lake, &self.layout)
            .await?
            .last()
            .map_or(live.version + 1, |v| v.version + 1);
        plan::compare(&live.definition, live.version, &wanted, next)
    }

    /// `run` for this table: materialize the live version until shutdown (or the source's
    /// end: always for files, with `stop_at_end` for Kafka).
    ///
    /// The service follows the pointer: when `current` moves (a promotion or a rollback), it
    /// commits, then writes the version the pointer names from the offsets stored in it, as
    /// that version's frozen definition says. The version it leaves stays writable (a second
    /// consumer, in that version's own group) for `versions.retain_previous`, so a rollback
    /// finds it up to date; then it is frozen.
    pub async fn run(&self, shutdown: Shutdown, opts: IngestOptions) -> Result<IngestReport> {
        let (lake, layout) = (&self.lake, &self.layout);
        let live = self.live_version().await?;
        let mut def = live.def;
        let mut auto = live
            .rebuild
            .map(|reasons| AutoRebuild::start(self.clone(), &reasons, &shutdown));
        let current_opts = IngestOptions {
            follow_pointer: true,
            ..opts
        };
        let mut previous: Option<Previous> = None;
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
                current_opts,
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
                let previous_opts = IngestOptions {
                    stop_at_end: opts.stop_at_end,
                    ..Default::default()
                };
                previous = Some(Previous::start(
                    self.clone(),
                    left,
                    &shutdown,
                    retain,
                    previous_opts,
                ));
            }
        };
        if let Some(p) = previous {
            p.stop().await;
        }
        outcome
    }
}

/// What [`TableHandle::live_version`] found.
#[derive(Debug, Clone)]
pub struct Live {
    /// The version to write.
    pub def: VersionDefinition,
    /// With `auto_rebuild`: why the config's definition needs a new version (the live one
    /// keeps being written as frozen meanwhile).
    pub rebuild: Option<Vec<String>>,
}

impl Live {
    fn of(def: VersionDefinition) -> Live {
        Live { def, rebuild: None }
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
    fn start(table: TableHandle, reasons: &[String], shutdown: &Shutdown) -> AutoRebuild {
        let (stop, mut stopped) = shutdown.child();
        tracing::info!(table = %table.cfg.name, reasons = %reasons.join("; "), "the config's definition needs a new version: rebuilding it in the background (auto_rebuild); the live version keeps being written meanwhile");
        let task = tokio::spawn(async move {
            let opts = rebuild::RebuildOptions {
                promote: true,
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
        opts: IngestOptions,
    ) -> Previous {
        let version = def.version;
        let (stop, stopped) = shutdown.child();
        let (expire, expired) = stopped.child();
        tracing::info!(table = %table.cfg.name, version, retain = %humantime::format_duration(retain), "keeping the previous version writable");
        let task = tokio::spawn(async move {
            let ingest =
                ingest::materialize(&table.lake, &table.layout, &def, &table.cfg, expired, opts);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writers_starting_together_agree_on_the_first_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("events.avsc"),
            r#"{"type":"record","name":"E","fields":[{"name":"ts","type":"long"}]}"#,
        )
        .unwrap();
        for round in 0..10 {
            let path = dir.path().join(format!("kappa-lake-{round}.toml"));
            std::fs::write(
                &path,
                format!(
                    "[[table]]\nname = \"t{round}\"\nroot = \"lake\"\nschema = \"events.avsc\"\n\
                     time = {{ field = \"ts\", granularity = \"day\" }}\n\
                     [table.source]\nkind = \"files\"\npath = \"in\"\n"
                ),
            )
            .unwrap();
            let config = crate::config::Config::load(&path).unwrap();
            let racers: Vec<_> = (0..6)
                .map(|_| {
                    let table = TableHandle::open(&config.tables[0]).unwrap();
                    tokio::spawn(async move { table.live_version().await.map(|l| l.def) })
                })
                .collect();
            for r in racers {
                let v = r.await.unwrap().expect("every racer gets a version");
                assert_eq!(v.version, 1, "round {round}");
            }
        }
    }
}
