//! One configured table with its opened root ([`TableHandle`]), and the version `run` writes
//! ([`TableHandle::live_version`]: the current one, created, evolved in place or flagged for a
//! rebuild as the config's definition asks).
//!
//! Invariant: this module never writes data; it only reads and moves the table's metadata
//! (versions, the first pointer) and imports nothing from the jobs that use it, so every
//! pipeline module can take a `TableHandle` without an import cycle.

use crate::config::{ConfigError, TableConfig};
use crate::error::{Error, Missing, Refusal, Result};
use crate::storage::Lake;
use crate::table::plan::{self, Plan};
use crate::table::version::{self, Definition};
use crate::table::{Pointer, TableLayout, VersionDefinition, VersionState, pointer};
use crate::write::DeltaLog;

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
            updated_at: lake.clock.now(),
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

    /// The frozen definition of `version`, or of the current version when `None`: the
    /// version a maintenance command (`compact`, `vacuum`, …) works on.
    pub async fn version_or_current(&self, version: Option<u32>) -> Result<VersionDefinition> {
        let table = || self.cfg.name.clone();
        match version {
            None => self
                .current_definition()
                .await?
                .ok_or_else(|| Missing::Current { table: table() }.into()),
            Some(version) => version::load(&self.lake, &self.layout, version)
                .await?
                .ok_or_else(|| {
                    Missing::TargetVersion {
                        table: table(),
                        version,
                    }
                    .into()
                }),
        }
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
