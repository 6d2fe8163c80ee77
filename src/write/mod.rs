//! Writing a version: data files (which only *write* bytes) and the version's log (which makes
//! them visible together with the source offsets they cover). Parquet versions use kappa-lake's
//! own commit log ([`commit`]); Delta versions use the Delta log through delta-rs ([`delta`]).

pub mod commit;
pub mod delta;
pub mod lease;
pub mod parquet;
pub mod stats;
pub mod upsert;

use std::collections::{BTreeMap, HashSet};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

pub use commit::{
    CommitLog, FileEntry, LogState, PendingCommit, REPLAY_KEY_PREFIX, SourcePosition, is_source_key,
};
pub use delta::{DeltaFileWriter, DeltaLog};
pub use parquet::PartitionedWriter;

use crate::config::{Format, WriterConfig};
use crate::error::Result;
use crate::storage::Lake;
use crate::table::{TableLayout, VersionDefinition};

/// The log of a version, whichever its format.
#[derive(Debug)]
pub enum VersionLog {
    /// kappa-lake's commit log.
    Parquet(CommitLog),
    /// The Delta log.
    Delta(DeltaLog),
}

impl VersionLog {
    /// Opens version `version`'s log for reading (a Delta version nobody wrote yet reads as
    /// empty).
    pub async fn read(
        lake: &Lake,
        layout: &TableLayout,
        version: u32,
        format: Format,
    ) -> Result<VersionLog> {
        Ok(match format {
            Format::Parquet => VersionLog::Parquet(CommitLog::open(lake, layout, version).await?),
            Format::Delta => VersionLog::Delta(DeltaLog::open(lake, layout, version, None).await?),
        })
    }

    /// Just the offsets of version `version` (`topic/partition` → next offset).
    pub async fn offsets_of(
        lake: &Lake,
        layout: &TableLayout,
        version: u32,
        format: Format,
    ) -> Result<BTreeMap<String, u64>> {
        match format {
            Format::Parquet => Ok(CommitLog::open(lake, layout, version)
                .await?
                .state()
                .offsets()),
            Format::Delta => delta::offsets(lake, layout, version).await,
        }
    }

    /// The folded state.
    pub fn state(&self) -> &LogState {
        match self {
            VersionLog::Parquet(l) => l.state(),
            VersionLog::Delta(l) => l.state(),
        }
    }

    /// Re-reads what other writers committed.
    pub async fn refresh(&mut self) -> Result<()> {
        match self {
            VersionLog::Parquet(l) => l.refresh().await.map(drop),
            VersionLog::Delta(l) => l.refresh().await,
        }
    }

    /// Removes files no commit lists, except the files of the writers in `live`.
    pub async fn remove_uncommitted(&self, live: &HashSet<String>) -> Result<usize> {
        match self {
            VersionLog::Parquet(l) => l.remove_uncommitted(live).await,
            VersionLog::Delta(l) => l.remove_uncommitted(live).await,
        }
    }

    /// Commits atomically; returns the commit's sequence number (Delta: table version).
    pub async fn commit(&mut self, pending: PendingCommit) -> Result<u64> {
        match self {
            VersionLog::Parquet(l) => l.commit(pending).await,
            VersionLog::Delta(l) => l.commit(pending).await,
        }
    }

    /// Offsets per partition (`topic/partition` → next offset).
    pub fn offsets(&self) -> BTreeMap<String, u64> {
        self.state().offsets()
    }
}

/// Writes the data files of a version, whichever its format.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per running writer, created once and never moved on the data path"
)]
pub enum FileWriter {
    /// Our own rolling Parquet writer.
    Parquet(PartitionedWriter),
    /// The same writer, with Delta's partition values and `add` actions.
    Delta(DeltaFileWriter),
}

impl FileWriter {
    /// Bytes held in memory by the open files.
    pub fn buffered_bytes(&self) -> usize {
        match self {
            FileWriter::Parquet(w) => w.buffered_bytes(),
            FileWriter::Delta(w) => w.buffered_bytes(),
        }
    }

    /// Appends `batch`; `buckets[i]` is the time partition of row `i`.
    pub async fn write(&mut self, batch: &RecordBatch, buckets: &[i64]) -> Result<()> {
        match self {
            FileWriter::Parquet(w) => w.write(batch, buckets).await,
            FileWriter::Delta(w) => w.write(batch, buckets).await,
        }
    }

    /// Appends several batches at once, each with the time partitions of its rows (fewer,
    /// bigger encoding rounds than one write each).
    pub async fn write_parts(&mut self, parts: &[(&RecordBatch, &[i64])]) -> Result<()> {
        match self {
            FileWriter::Parquet(w) => w.write_parts(parts).await,
            FileWriter::Delta(w) => w.write_parts(parts).await,
        }
    }

    /// Closes the open files: their summaries, and for Delta their `add` actions.
    pub async fn finish(&mut self) -> Result<(Vec<FileEntry>, Vec<deltalake::kernel::Add>)> {
        match self {
            FileWriter::Parquet(w) => Ok((w.finish().await?, Vec::new())),
            FileWriter::Delta(w) => {
                let (adds, files) = w.finish().await?;
                Ok((files, adds))
            }
        }
    }
}

/// Opens a version for writing: its log (creating a Delta table on first use) and a writer.
pub async fn open_for_writing(
    lake: &Lake,
    layout: &TableLayout,
    def: &VersionDefinition,
    file_schema: &SchemaRef,
    cfg: &WriterConfig,
    writer_id: &str,
) -> Result<(VersionLog, FileWriter)> {
    let version = def.version;
    let granularity = def.definition.partitioning.granularity;
    match def.definition.format {
        Format::Parquet => {
            let log = CommitLog::open(lake, layout, version).await?;
            let writer = PartitionedWriter::new(
                lake.clone(),
                layout.version_dir(version),
                file_schema.clone(),
                cfg.clone(),
                granularity,
                writer_id,
            )?;
            Ok((VersionLog::Parquet(log), FileWriter::Parquet(writer)))
        }
        Format::Delta => {
            let spec = delta::CreateSpec {
                file_schema,
                granularity,
                writer: cfg,
            };
            let log = DeltaLog::open(lake, layout, version, Some(spec)).await?;
            let writer = DeltaFileWriter::new(&log, cfg, granularity, writer_id)?;
            Ok((VersionLog::Delta(log), FileWriter::Delta(writer)))
        }
    }
}
