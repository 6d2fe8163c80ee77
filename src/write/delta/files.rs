//! Writing a version's Delta data files (without committing them).
//!
//! Invariant: the files written here are invisible to Delta readers until
//! [`DeltaLog::commit`](super::DeltaLog::commit) lists their `add` actions; rows are cast to the
//! table's row schema before they are written.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::Utc;
use deltalake::kernel::Add;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use object_store::path::Path;

use super::schema::partition_strings;
use super::{DeltaLog, delta_err};
use crate::config::{Granularity, WriterConfig};
use crate::error::{Missing, Result};
use crate::write::{FileEntry, PartitionedWriter, stats};

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

    /// The table's row schema (without partition columns) that rows are written in.
    pub(super) fn row_schema(&self) -> &SchemaRef {
        &self.rows
    }

    /// Bytes held in memory by the open files.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.buffered_bytes()
    }

    /// Appends `batch`; `buckets[i]` is the time partition of row `i`.
    pub async fn write(&mut self, batch: &RecordBatch, buckets: &[i64]) -> Result<()> {
        self.write_parts(&[(batch, buckets)]).await
    }

    /// Appends several batches at once (one split, one round of encoding jobs), each with the
    /// time partitions of its rows.
    pub async fn write_parts(&mut self, parts: &[(&RecordBatch, &[i64])]) -> Result<()> {
        let conformed = parts
            .iter()
            .map(|(batch, _)| self.conform(batch))
            .collect::<Result<Vec<_>>>()?;
        let parts: Vec<(&RecordBatch, &[i64])> = conformed
            .iter()
            .zip(parts)
            .map(|(batch, (_, buckets))| (batch, *buckets))
            .collect();
        self.inner.write_parts(&parts).await
    }

    /// Casts `batch` to the table's row types (same values, Delta's representation); columns
    /// the batch lacks are null.
    pub(super) fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        // By name: columns added by a schema evolution come last in the table.
        crate::write::parquet::conform(batch, &self.rows).map_err(|e| delta_err(&self.dir, e))
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
