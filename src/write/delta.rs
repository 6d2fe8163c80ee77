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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use delta_kernel::expressions::Scalar;
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::scalars::ScalarExt;
use deltalake::kernel::schema::cast::normalize_for_delta;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, TableProperty};
use futures::TryStreamExt;
use indexmap::IndexMap;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use percent_encoding::percent_decode_str;

use crate::config::{Granularity, WriterConfig};
use crate::decode::DeadLetterFile;
use crate::error::{BoxError, ContextError, Error, Missing, Result};
use crate::failpoints::crash_point;
use crate::source::SourcePosition;
use crate::storage::Lake;
use crate::table::TableLayout;
use crate::write::commit::{LogState, PendingCommit};
use crate::write::{FileEntry, PartitionedWriter, lease, stats};

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

/// The partition columns of a version at `granularity`, with their Delta types.
fn partition_fields(granularity: Granularity) -> Vec<Field> {
    let mut fields = vec![Field::new("date", DataType::Date32, true)];
    if granularity == Granularity::Hour {
        fields.push(Field::new("hour", DataType::Int32, true));
    }
    fields
}

/// The Delta table schema: the row schema, then the partition columns. Delta timestamps are
/// microseconds in UTC; rows are cast on write.
pub fn table_schema(file_schema: &SchemaRef, granularity: Granularity) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = file_schema.fields().iter().map(delta_field).collect();
    fields.extend(partition_fields(granularity).into_iter().map(Arc::new));
    normalize_for_delta(&Arc::new(Schema::new(fields)))
}

fn delta_field(field: &Arc<Field>) -> Arc<Field> {
    Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(delta_type(field.data_type())),
    )
}

fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, tz) => DataType::Timestamp(
            arrow::datatypes::TimeUnit::Microsecond,
            tz.as_ref().map(|_| "UTC".into()),
        ),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(delta_field).collect()),
        DataType::List(f) => DataType::List(delta_field(f)),
        DataType::LargeList(f) => DataType::LargeList(delta_field(f)),
        DataType::Map(f, sorted) => DataType::Map(delta_field(f), *sorted),
        other => other.clone(),
    }
}

/// The Delta partition values of a time bucket.
fn bucket_values(bucket: i64, granularity: Granularity) -> IndexMap<String, Scalar> {
    // Buckets are days or hours since the epoch, within the years 0000–9999 (so the casts
    // cannot truncate).
    let (day, hour) = match granularity {
        Granularity::Day => (bucket, None),
        Granularity::Hour => (bucket.div_euclid(24), Some(bucket.rem_euclid(24))),
    };
    let mut out = IndexMap::from([("date".to_string(), Scalar::Date(day as i32))]);
    if let Some(h) = hour {
        out.insert("hour".to_string(), Scalar::Integer(h as i32));
    }
    out
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
    /// not exist yet. Without `create`, a missing table reads as empty.
    pub async fn open(
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
        let created = table
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
            .await;
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
        for file in snapshot.log_data().iter() {
            state.files.insert(file.path().into_owned());
            state.rows += file.num_records().unwrap_or_default() as u64;
            state.bytes += u64::try_from(file.size()).unwrap_or_default();
        }
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

    /// Loads the newest table version and re-reads the offsets.
    pub async fn refresh(&mut self) -> Result<()> {
        if let Some(t) = &mut self.table {
            t.update_incremental(None)
                .await
                .map_err(|e| delta_err(&self.dir, e))?;
        }
        self.read_state(false).await
    }

    fn check_ranges(&self, pending: &PendingCommit) -> Result<()> {
        for (p, r) in &pending.ranges {
            let stored = self.state.positions.get(p).map(|s| s.offset);
            if r.end < r.start || stored.is_some_and(|s| s != r.start) {
                return Err(Error::Conflict {
                    path: self.dir.clone().join("_delta_log"),
                    reason: format!(
                        "partition `{p}`: commit covers [{}, {}) but the Delta log holds offset {}; refusing to commit twice or leave a gap",
                        r.start,
                        r.end,
                        stored.map_or("none".into(), |s| s.to_string())
                    ),
                });
            }
        }
        Ok(())
    }

    /// Where the log stands for the partitions of `pending`, read fresh from storage.
    async fn stored_offsets(&mut self, pending: &PendingCommit) -> Result<Vec<Option<u64>>> {
        self.refresh().await?;
        Ok(pending
            .ranges
            .keys()
            .map(|p| self.state.positions.get(p).map(|s| s.offset))
            .collect())
    }

    /// Commits `pending` (its `adds` and one `txn` per range) in one Delta transaction; returns
    /// the Delta table version it became.
    pub async fn commit(&mut self, pending: PendingCommit) -> Result<u64> {
        if self.table.is_none() {
            return Err(Missing::DeltaTable {
                version: self.version,
            }
            .into());
        }
        self.check_ranges(&pending)?;
        for p in pending.ranges.keys() {
            if !self.state.positions.contains_key(p) {
                // The path part percent-encodes what a file name cannot hold (`/`, `%`, …).
                let marker = self.marker_dir().join(p.as_str());
                self.lake
                    .store
                    .put(&marker, bytes::Bytes::new().into())
                    .await
                    .map_err(|e| Error::storage(&marker, e))?;
            }
        }
        let now = Utc::now().timestamp_millis();
        let txns: Vec<Transaction> = pending
            .ranges
            .iter()
            .map(|(p, r)| {
                Transaction::new_with_last_update(
                    app_id(self.layout.table(), self.version, p),
                    r.end as i64,
                    Some(now),
                )
            })
            .collect();
        let info = serde_json::json!({
            DEAD_LETTERS_KEY: pending.dead_letters,
            RANGES_KEY: pending.ranges,
        });
        let info: HashMap<String, serde_json::Value> = match info {
            serde_json::Value::Object(m) => m.into_iter().collect(),
            _ => HashMap::new(),
        };
        let actions: Vec<Action> = pending.adds.iter().cloned().map(Action::Add).collect();
        let ends: Vec<Option<u64>> = pending.ranges.values().map(|r| Some(r.end)).collect();
        let starts: Vec<Option<u64>> = pending
            .ranges
            .keys()
            .map(|p| self.state.positions.get(p).map(|s| s.offset))
            .collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(table) = &mut self.table else {
                // Unreachable: checked above, and a table once opened is never dropped.
                return Err(Missing::DeltaTable {
                    version: self.version,
                }
                .into());
            };
            let snapshot = table.snapshot().map_err(|e| delta_err(&self.dir, e))?;
            let read_version = snapshot.version();
            let operation = DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: (!self.partition_columns.is_empty())
                    .then(|| self.partition_columns.clone()),
                predicate: None,
            };
            let props = CommitProperties::default()
                .with_application_transactions(txns.clone())
                .with_metadata(info.clone());
            crash_point!("commit.before_write");
            let result = CommitBuilder::from(props)
                .with_actions(actions.clone())
                .build(Some(snapshot), table.log_store(), operation)
                .await;
            let error = match result {
                Ok(done) => {
                    crash_point!("commit.after_write");
                    let version = done.version();
                    table.state = Some(done.snapshot());
                    if version == read_version + 1 {
                        self.apply_own(&pending, version);
                    } else {
                        // Rebased over other writers' commits: the new snapshot holds their
                        // offsets too, so read them all (the state must match the snapshot
                        // the next commit is checked against).
                        self.read_state(false).await?;
                        self.read_dead_letters_of(&pending);
                    }
                    return Ok(version);
                }
                Err(e) => e,
            };
            // Decide from the log, not from the error.
            let stored = self.stored_offsets(&pending).await?;
            // Our own files in the log prove the commit landed; without files, our end offsets
            // do (another writer's commit cannot hold our files, but may hold the same ends).
            let landed = match pending.adds.first() {
                Some(add) => self.state.files.contains(&add.path),
                None => !pending.ranges.is_empty() && stored == ends,
            };
            if landed {
                tracing::info!(
                    version = self.version,
                    "commit had landed before the error was reported; not committing twice"
                );
                self.read_dead_letters_of(&pending);
                return Ok(self.state.next_seq.saturating_sub(1));
            }
            if stored != starts {
                return Err(Error::Conflict {
                    path: self.dir.clone().join("_delta_log"),
                    reason: format!(
                        "another writer committed offsets of these partitions ({error}); re-read the log"
                    ),
                });
            }
            if attempt >= COMMIT_ATTEMPTS {
                return Err(delta_err(&self.dir, error));
            }
            tracing::warn!(attempt, error = %error, "Delta commit failed; the log does not hold it, retrying");
        }
    }

    /// Folds our own commit into the state without re-reading the log.
    fn apply_own(&mut self, pending: &PendingCommit, version: u64) {
        let s = &mut self.state;
        for (p, r) in &pending.ranges {
            s.positions.insert(
                p.clone(),
                SourcePosition {
                    offset: r.end,
                    end_byte: None,
                    eof: false,
                },
            );
        }
        for f in &pending.files {
            s.files.insert(f.path.clone());
            s.rows += f.rows;
            s.bytes += f.size;
        }
        self.read_dead_letters_of(pending);
        let s = &mut self.state;
        s.commits = version;
        s.next_seq = s.commits + 1;
        s.last_commit_at = Some(Utc::now());
    }

    fn read_dead_letters_of(&mut self, pending: &PendingCommit) {
        for d in &pending.dead_letters {
            if self.state.dead_letter_files.insert(d.path.clone()) {
                self.state.dead_letters += d.records;
            }
        }
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

/// Writes the data files of a version's Delta table: kappa-lake's own partitioned writer
/// (streamed uploads, the `max_buffer_bytes` budget, parallel encoding), with Delta's partition
/// values and the `add` actions' statistics taken from each file's Parquet footer.
pub struct DeltaFileWriter {
    inner: PartitionedWriter,
    dir: Path,
    /// The table's row schema (without partition columns), which rows are cast to: Delta's
    /// timestamps are µs UTC, its list and map entries have their own field names.
    rows: SchemaRef,
    /// Leading top-level columns with statistics (`delta.dataSkippingNumIndexedCols`).
    indexed: Option<usize>,
}

impl std::fmt::Debug for DeltaFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaFileWriter")
            .field("dir", &self.dir)
            .finish()
    }
}

impl DeltaFileWriter {
    /// A writer for `log`'s table; `writer_id` goes into the file names.
    pub fn new(
        log: &DeltaLog,
        cfg: &WriterConfig,
        granularity: Granularity,
        writer_id: &str,
    ) -> Result<Self> {
        let dir = log.dir.clone();
        let table = log
            .table
            .as_ref()
            .ok_or_else(|| Missing::DeltaTableAt { path: dir.clone() })?;
        let metadata = table.snapshot().map_err(|e| delta_err(&dir, e))?.metadata();
        let all: Schema = (&metadata.parse_schema().map_err(|e| delta_err(&dir, e))?)
            .try_into_arrow()
            .map_err(|e| delta_err(&dir, e))?;
        let indexed = match metadata
            .configuration()
            .get("delta.dataSkippingNumIndexedCols")
            .map(|v| v.parse::<i64>())
        {
            Some(Ok(n)) if n < 0 => None,
            Some(Ok(n)) => Some(usize::try_from(n).unwrap_or_default()),
            _ => Some(stats::DEFAULT_INDEXED_COLUMNS),
        };
        let rows = Arc::new(Schema::new(
            all.fields()
                .iter()
                .filter(|f| !log.partition_columns.contains(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let inner = PartitionedWriter::new(
            log.lake.clone(),
            dir.clone(),
            rows.clone(),
            cfg.clone(),
            granularity,
            writer_id,
        )?
        .with_naming(partition_strings);
        Ok(DeltaFileWriter {
            inner,
            dir,
            rows,
            indexed,
        })
    }

    /// Bytes held in memory by the open files.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.buffered_bytes()
    }

    /// Appends `batch`; `buckets[i]` is the time partition of row `i`.
    pub async fn write(&mut self, batch: &RecordBatch, buckets: &[i64]) -> Result<()> {
        let batch = self.conform(batch)?;
        self.inner.write(&batch, buckets).await
    }

    /// Casts `batch` to the table's row types (same values, Delta's representation); columns
    /// the batch lacks are null.
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if batch.schema() == self.rows {
            return Ok(batch.clone());
        }
        // By name: columns added by a schema evolution come last in the table.
        let columns = self
            .rows
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(c) => arrow::compute::cast(c, f.data_type()),
                None => Ok(arrow::array::new_null_array(
                    f.data_type(),
                    batch.num_rows(),
                )),
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| delta_err(&self.dir, e))?;
        RecordBatch::try_new(self.rows.clone(), columns).map_err(|e| delta_err(&self.dir, e))
    }

    /// Closes the open files; hands back their `add` actions and summaries.
    pub async fn finish(&mut self) -> Result<(Vec<Add>, Vec<FileEntry>)> {
        let files = self.inner.finish_files().await?;
        let modification_time = Utc::now().timestamp_millis();
        let adds = files
            .iter()
            .map(|f| Add {
                path: f.entry.path.clone(),
                size: i64::try_from(f.entry.size).unwrap_or(i64::MAX),
                partition_values: f
                    .entry
                    .partition
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect(),
                modification_time,
                data_change: true,
                stats: Some(stats::stats_json(&f.metadata, self.indexed)),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
                clustering_provider: None,
            })
            .collect();
        Ok((adds, files.into_iter().map(|f| f.entry).collect()))
    }
}

/// A time bucket's Delta partition values as strings, for paths and `add` actions: Delta's
/// serialization of [`bucket_values`] (`date=2026-11-26`, `hour=5`).
fn partition_strings(bucket: i64, granularity: Granularity) -> Vec<(String, String)> {
    bucket_values(bucket, granularity)
        .into_iter()
        .map(|(k, v)| (k, v.serialize()))
        .collect()
}

/// Offsets of a version, by partition, read from its Delta log (empty when it has no table).
///
/// Promotion checks and catch-up read this after every commit, so it stays cheap: it builds a
/// kernel snapshot (protocol, metadata and the log segment, never the list of data files) and
/// resolves each partition's `txn`, newest commit first.
pub async fn offsets(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
) -> Result<BTreeMap<String, u64>> {
    let dir = layout.version_dir(version);
    if !table_exists(lake, &dir).await? {
        return Ok(BTreeMap::new());
    }
    let keys = marked_partitions(lake, &dir.clone().join(PARTITIONS_DIR)).await?;
    let log_store = lake
        .delta_table(&dir)
        .and_then(|b| b.build_storage())
        .map_err(|e| delta_err(&dir, e))?;
    let table = layout.table().to_string();
    let task_dir = dir.clone();
    tokio::task::spawn_blocking(move || {
        let dir = task_dir;
        let engine = log_store.engine(None);
        let mut root = log_store.root_url().clone();
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        let snapshot = delta_kernel::Snapshot::builder_for(root)
            .build(engine.as_ref())
            .map_err(|e| delta_err(&dir, e))?;
        let mut offsets = BTreeMap::new();
        for key in keys {
            let stored = snapshot
                .get_app_id_version(&app_id(&table, version, &key), engine.as_ref())
                .map_err(|e| delta_err(&dir, e))?;
            if let Some(offset) = stored.and_then(|v| u64::try_from(v).ok())
                && crate::source::position::is_source_key(&key)
            {
                offsets.insert(key, offset);
            }
        }
        Ok(offsets)
    })
    .await
    .map_err(|e| delta_err(&dir, e))?
}

/// Whether `dir` holds a Delta table (its log has at least one entry).
async fn table_exists(lake: &Lake, dir: &Path) -> Result<bool> {
    let log_dir = dir.clone().join("_delta_log");
    let mut listing = lake.store.list(Some(&log_dir));
    Ok(listing
        .try_next()
        .await
        .map_err(|e| Error::storage(&log_dir, e))?
        .is_some())
}

/// Source partitions with a marker in `marker_dir`.
async fn marked_partitions(lake: &Lake, marker_dir: &Path) -> Result<Vec<String>> {
    let metas = lake.list_dir(marker_dir).await?;
    Ok(metas
        .iter()
        .filter_map(|m| m.location.filename())
        .filter_map(|name| percent_decode_str(name).decode_utf8().ok())
        .map(|s| s.into_owned())
        .collect())
}

#[cfg(test)]
mod tests;
