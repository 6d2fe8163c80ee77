//! Delta Lake versions: `<table>/vN/` is a Delta table, written and committed through delta-rs.
//!
//! # Offsets live in the Delta log
//! Every commit appends its data files *and* one `txn` action per source partition it covers
//! (app id `kappa-lake/<table>/v<N>/<partition>`, version = the next offset to read) in one
//! Delta transaction, so data and offsets become visible together or not at all. Restart and
//! rebalance read the offsets back from the log ([`DeltaLog::refresh`]).
//!
//! A Delta snapshot answers "which version has app id X" but cannot list app ids, so the
//! partitions a version has offsets for are also recorded as empty marker objects in
//! `vN/_kappa_partitions/`, written before the first commit that names them. A marker without
//! a `txn` (a crash in between) means "no offset yet".
//!
//! # Exactly once, with several writers
//! A commit is refused when a partition's range does not start where the snapshot it was
//! prepared against says the partition stands. Between that snapshot and the commit, delta-rs's
//! optimistic concurrency rebases over other writers' commits and fails if one of them carries
//! a `txn` for one of our app ids. Any failure is followed by a re-read: if the log already
//! holds our files (or, for a commit without files, our end offsets), the commit landed (a
//! retry after an unknown outcome) and is not made twice; if it holds other offsets, another
//! writer took the partition and the commit is refused as a conflict — never overwritten.
//!
//! A range starts where the *writer's consumer* stood, which the check above compares with the
//! log: a writer that kept reading a partition another writer committed meanwhile is refused,
//! instead of labelling its records with the other writer's offsets.
//!
//! Files written for a commit that never happened are not in the log, so no Delta reader sees
//! them; `VACUUM` (Delta's own clean-up) removes them later.
//!
//! # Layout
//! This file opens a version's log and folds it into a [`LogState`]; `transaction.rs` commits
//! (the protocol above), `files.rs` writes data files, `offsets.rs` reads offsets without
//! opening the table, `schema.rs` maps rows and time buckets to Delta's representation.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::schema::cast::normalize_for_delta;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, TableProperty};
use futures::TryStreamExt;
use object_store::path::Path;

use crate::config::{Granularity, WriterConfig};
use crate::decode::DeadLetterFile;
use crate::error::{BoxError, ContextError, Error, Result};
use crate::source::SourcePosition;
use crate::storage::Lake;
use crate::table::TableLayout;
use crate::write::commit::LogState;
use crate::write::lease;

mod compact;
mod files;
mod offsets;
mod schema;
mod transaction;
mod upsert;
mod vacuum;

pub use compact::{
    Bin, BinOutcome, CompactionLimits, PartitionPlan, Rewritten, SortKey, bucket_of,
};
pub use files::DeltaFileWriter;
pub use offsets::offsets;
use offsets::{marked_partitions, table_exists};
pub use schema::table_schema;
use schema::{delta_field, partition_fields};
pub use upsert::Rewrite;
pub use vacuum::VacuumOutcome;

/// Directory (inside the version) of the partition markers.
pub const PARTITIONS_DIR: &str = "_kappa_partitions";
/// Commit-info key listing a commit's dead-letter files.
const DEAD_LETTERS_KEY: &str = "kappa.deadLetters";
/// Commit-info key with a commit's offset ranges (informational; the `txn` actions are the
/// truth).
const RANGES_KEY: &str = "kappa.ranges";
/// Commits attempted after an unknown outcome before giving up.
const COMMIT_ATTEMPTS: usize = 4;

/// How to create a version's Delta table on first use.
#[derive(Debug, Clone, Copy)]
pub struct CreateSpec<'a> {
    /// Schema of the rows (event fields and metadata columns, without partition columns).
    pub file_schema: &'a SchemaRef,
    /// Time partitioning.
    pub granularity: Granularity,
    /// Writer settings (target file size, checkpoint interval).
    pub writer: &'a WriterConfig,
}

/// The app id of a source partition's `txn` action in a version.
pub fn app_id(table: &str, version: u32, partition: &str) -> String {
    format!("kappa-lake/{table}/v{version}/{partition}")
}

fn delta_err(path: &Path, e: impl Into<BoxError>) -> Error {
    Error::Write {
        path: path.clone(),
        source: ContextError::new("delta", e).into(),
    }
}

/// Reads of the log retried when a file they listed was removed meanwhile.
const VANISHED_LOG_FILE_RETRIES: usize = 3;

/// Whether `e` comes from a `_delta_log` file that vanished after the log was listed: another
/// process's commit cleaned up expired commit files (`log_retention`) while this one read them.
/// Reading again from the newest checkpoint succeeds.
fn log_file_vanished(e: &Error) -> bool {
    let mut link: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = link {
        if let Some(object_store::Error::NotFound { path, .. }) = err.downcast_ref() {
            return path.contains("_delta_log");
        }
        if let Some(delta_kernel::Error::FileNotFound(path)) = err.downcast_ref() {
            return path.contains("_delta_log");
        }
        link = err.source();
    }
    false
}

/// Runs `read` (a fresh read of version `version`'s log) again, up to
/// [`VANISHED_LOG_FILE_RETRIES`] times, while it fails on a [`log_file_vanished`].
async fn reading_again<T, F: Future<Output = Result<T>>>(
    version: u32,
    mut read: impl FnMut() -> F,
) -> Result<T> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match read().await {
            Err(e) if attempt <= VANISHED_LOG_FILE_RETRIES && log_file_vanished(&e) => {
                tracing::debug!(version, error = %e, "a log file was cleaned up while it was read; reading again");
            }
            other => return other,
        }
    }
}

/// Sets `state`'s files, rows and bytes to those of `snapshot` (an in-memory walk of its
/// file list, no I/O).
fn take_files(snapshot: &deltalake::table::state::DeltaTableState, state: &mut LogState) {
    state.files.clear();
    state.rows = 0;
    state.bytes = 0;
    for file in snapshot.log_data().iter() {
        state.files.insert(file.path().into_owned());
        state.rows += file.num_records().unwrap_or_default() as u64;
        state.bytes += u64::try_from(file.size()).unwrap_or_default();
    }
}

/// A version's Delta log, open for reading and committing.
pub struct DeltaLog {
    lake: Lake,
    layout: TableLayout,
    version: u32,
    dir: Path,
    /// `None` until the table exists (read-only opens of a version nobody wrote yet).
    table: Option<DeltaTable>,
    partition_columns: Vec<String>,
    state: LogState,
    /// Dead-letter files older than this may be listed by commits the log no longer holds.
    judge_since: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for DeltaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaLog")
            .field("dir", &self.dir)
            .field("table_version", &self.table_version())
            .finish()
    }
}

impl DeltaLog {
    /// Opens version `version`'s table, creating it first when `create` is given and it does
    /// not exist yet. Without `create`, a missing table reads as empty. A log file cleaned up
    /// by another process while this one read it is survived by reading again.
    pub async fn open(
        lake: &Lake,
        layout: &TableLayout,
        version: u32,
        create: Option<CreateSpec<'_>>,
    ) -> Result<DeltaLog> {
        reading_again(version, || Self::open_once(lake, layout, version, create)).await
    }

    async fn open_once(
        lake: &Lake,
        layout: &TableLayout,
        version: u32,
        create: Option<CreateSpec<'_>>,
    ) -> Result<DeltaLog> {
        let dir = layout.version_dir(version);
        let table = if table_exists(lake, &dir).await? {
            let builder = lake.delta_table(&dir).map_err(|e| delta_err(&dir, e))?;
            let mut table = builder.build().map_err(|e| delta_err(&dir, e))?;
            table.load().await.map_err(|e| delta_err(&dir, e))?;
            Some(table)
        } else {
            match create {
                Some(spec) => Some(Self::create(lake, &dir, layout.table(), spec).await?),
                None => None,
            }
        };
        let partition_columns = match &table {
            Some(t) => t
                .snapshot()
                .map_err(|e| delta_err(&dir, e))?
                .metadata()
                .partition_columns()
                .to_vec(),
            None => Vec::new(),
        };
        let mut log = DeltaLog {
            lake: lake.clone(),
            layout: layout.clone(),
            version,
            dir,
            table,
            partition_columns,
            state: LogState::default(),
            judge_since: None,
        };
        log.read_state(true).await?;
        Ok(log)
    }

    async fn create(
        lake: &Lake,
        dir: &Path,
        name: &str,
        spec: CreateSpec<'_>,
    ) -> Result<DeltaTable> {
        let schema = table_schema(spec.file_schema, spec.granularity);
        let kernel: StructType = schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| delta_err(dir, e))?;
        let partition_columns: Vec<String> = partition_fields(spec.granularity)
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let table = lake
            .delta_table(dir)
            .and_then(|b| b.build())
            .map_err(|e| delta_err(dir, e))?;
        let mut create = table
            .create()
            .with_table_name(name)
            .with_columns(kernel.fields().cloned())
            .with_partition_columns(partition_columns)
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_configuration_property(
                TableProperty::TargetFileSize,
                Some(spec.writer.target_file_size.to_string()),
            )
            .with_configuration_property(
                TableProperty::CheckpointInterval,
                Some(spec.writer.checkpoint_interval.to_string()),
            )
            .with_configuration_property(
                TableProperty::LogRetentionDuration,
                Some(format!(
                    "interval {} seconds",
                    spec.writer.log_retention.as_secs()
                )),
            );
        if let Some(r) = spec.writer.deleted_file_retention {
            create = create.with_configuration_property(
                TableProperty::DeletedFileRetentionDuration,
                Some(format!("interval {} seconds", r.as_secs())),
            );
        }
        let created = create.await;
        match created {
            Ok(t) => {
                tracing::info!(table = name, path = %dir, "created Delta table");
                Ok(t)
            }
            // Another writer created it first: use theirs.
            Err(first) => {
                let mut t = lake
                    .delta_table(dir)
                    .and_then(|b| b.build())
                    .map_err(|e| delta_err(dir, e))?;
                t.load()
                    .await
                    .map_err(|e| delta_err(dir, ContextError::new(format!("{first}; then"), e)))?;
                Ok(t)
            }
        }
    }

    /// Adds nullable columns (an additive schema evolution); columns the table has already
    /// are skipped, and a version without a table yet has nothing to change.
    pub async fn add_columns(&mut self, fields: &[Arc<Field>]) -> Result<()> {
        let Some(table) = &self.table else {
            return Ok(());
        };
        let dir = self.dir.clone();
        let current = table.snapshot().map_err(|e| delta_err(&dir, e))?.schema();
        let missing: Vec<Arc<Field>> = fields
            .iter()
            .filter(|f| current.field(f.name()).is_none())
            .map(delta_field)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let kernel: StructType = normalize_for_delta(&Arc::new(Schema::new(missing)))
            .as_ref()
            .try_into_kernel()
            .map_err(|e| delta_err(&dir, e))?;
        let evolved = table
            .clone()
            .add_columns()
            .with_fields(kernel.fields().cloned().collect::<Vec<_>>())
            .await
            .map_err(|e| delta_err(&dir, e))?;
        self.table = Some(evolved);
        Ok(())
    }

    /// The folded state.
    pub fn state(&self) -> &LogState {
        &self.state
    }

    /// The Delta table version of the loaded snapshot.
    pub fn table_version(&self) -> Option<u64> {
        self.table.as_ref().and_then(|t| t.version())
    }

    /// The open Delta table, when it exists.
    pub fn table(&self) -> Option<&DeltaTable> {
        self.table.as_ref()
    }

    fn marker_dir(&self) -> Path {
        self.dir.clone().join(PARTITIONS_DIR)
    }

    /// Re-reads the whole state from the log (with `history`, also the dead letters recorded in
    /// commit infos).
    async fn read_state(&mut self, history: bool) -> Result<()> {
        let Some(table) = &self.table else {
            self.state = LogState::default();
            return Ok(());
        };
        let dir = &self.dir;
        let snapshot = table.snapshot().map_err(|e| delta_err(dir, e))?;
        let log_store = table.log_store();
        let mut state = LogState::default();
        for key in marked_partitions(&self.lake, &self.marker_dir()).await? {
            let app = app_id(self.layout.table(), self.version, &key);
            let stored = snapshot
                .transaction_version(log_store.as_ref(), app)
                .await
                .map_err(|e| delta_err(dir, e))?;
            if let Some(v) = stored.and_then(|v| u64::try_from(v).ok()) {
                state.positions.insert(
                    key,
                    SourcePosition {
                        offset: v,
                        end_byte: None,
                        eof: false,
                    },
                );
            }
        }
        take_files(snapshot, &mut state);
        let version = snapshot.version();
        state.next_seq = version + 1;
        // Version 0 creates the table; every later one is a commit.
        state.commits = version;
        state.last_commit_at = snapshot
            .version_timestamp(version)
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        if history {
            let infos: Vec<_> = table
                .history(None)
                .try_collect()
                .await
                .map_err(|e| delta_err(dir, e))?;
            // Log clean-up drops old commits (and their lists of dead-letter files): only
            // files newer than the oldest retained commit can be judged uncommitted.
            let complete = infos
                .iter()
                .any(|i| i.operation.as_deref() == Some("CREATE TABLE"));
            self.judge_since = if complete {
                None
            } else {
                infos
                    .iter()
                    .filter_map(|i| i.timestamp)
                    .min()
                    .and_then(DateTime::<Utc>::from_timestamp_millis)
                    .or(Some(Utc::now()))
            };
            for info in infos {
                let Some(list) = info.info.get(DEAD_LETTERS_KEY) else {
                    continue;
                };
                let files: Vec<DeadLetterFile> =
                    serde_json::from_value(list.clone()).map_err(|e| Error::Corrupt {
                        path: dir.clone().join("_delta_log"),
                        source: ContextError::new(DEAD_LETTERS_KEY, e).into(),
                    })?;
                for f in files {
                    state.dead_letters += f.records;
                    state.dead_letter_files.insert(f.path);
                }
            }
        } else {
            state.dead_letters = self.state.dead_letters;
            state.dead_letter_files = std::mem::take(&mut self.state.dead_letter_files);
        }
        self.state = state;
        Ok(())
    }

    /// Loads the newest table version and re-reads the offsets (again if a log file was
    /// cleaned up by another process while this one read it).
    pub async fn refresh(&mut self) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.refresh_once().await {
                Err(e) if attempt <= VANISHED_LOG_FILE_RETRIES && log_file_vanished(&e) => {
                    tracing::debug!(version = self.version, error = %e, "a log file was cleaned up while it was read; reading again");
                    if let Some(t) = &mut self.table {
                        // Loaded afresh from the newest checkpoint, not updated from the
                        // snapshot whose listing named the vanished file.
                        t.state = None;
                    }
                }
                other => return other,
            }
        }
    }

    async fn refresh_once(&mut self) -> Result<()> {
        if let Some(t) = &mut self.table {
            t.update_incremental(None)
                .await
                .map_err(|e| delta_err(&self.dir, e))?;
        }
        self.read_state(false).await
    }

    /// Deletes dead-letter files of this version no commit lists, except those of the writers
    /// in `live` and those older than the oldest commit the log still holds. (Uncommitted data files are invisible to Delta readers; `VACUUM` removes
    /// them.)
    pub async fn remove_uncommitted(&self, live: &HashSet<String>) -> Result<usize> {
        let dir = self.layout.dead_letter_dir(self.version);
        let metas = self.lake.list_dir(&dir).await?;
        let mut removed = 0;
        for meta in metas {
            let name = meta.location.filename().unwrap_or_default();
            if self.state.dead_letter_files.contains(name)
                || lease::writer_of(name).is_some_and(|w| live.contains(w))
                || self.judge_since.is_some_and(|t| meta.last_modified < t)
            {
                continue;
            }
            tracing::info!(path = %meta.location, "removing uncommitted dead-letter file");
            self.lake.delete_if_exists(&meta.location).await?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
