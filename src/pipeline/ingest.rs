//! Materializing a source into one version: decode → event time → partitioned Parquet →
//! commit (files + dead letters + offsets).
//!
//! The loop resumes from the offsets stored in the version's commit log (after deleting files
//! of commits that never happened), and commits at least every `max_age`, when dead letters
//! pile up, at the end of the source and on shutdown. Every commit closes the open files, so a
//! commit's offsets cover exactly the rows in the files it lists.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use tokio::time::Instant;

use crate::config::{SourceConfig, TableConfig, TimeSpec};
use crate::decode::{DeadLetter, DeadLetterBuffer, JsonDecoder, Stage};
use crate::error::{Error, Result};
use crate::partition;
use crate::shutdown::Shutdown;
use crate::source::SourceBatch;
use crate::source::files::FilesSource;
use crate::storage::Lake;
use crate::table::{TableLayout, VersionDefinition};
use crate::write::commit::OffsetRange;
use crate::write::{CommitLog, PartitionedWriter, PendingCommit, SourcePosition};

/// Metadata column: the source file of a row (files source).
pub const SOURCE_FILE_COLUMN: &str = "_source_file";
/// Metadata column: the 1-based line of a row in its source file (files source).
pub const SOURCE_LINE_COLUMN: &str = "_source_line";

/// What one materialization did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestReport {
    /// Table name.
    pub table: String,
    /// Version written.
    pub version: u32,
    /// Records read from the source.
    pub records: u64,
    /// Rows committed.
    pub rows: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// Commits made.
    pub commits: u64,
    /// Data files committed.
    pub files: u64,
    /// Uncommitted files from an earlier crash that were removed at start.
    pub removed_uncommitted: usize,
    /// Whether it stopped because of a shutdown request.
    pub interrupted: bool,
}

/// The schema of a version's data files: the event fields, then the metadata columns.
pub fn file_schema(event: &SchemaRef, def: &VersionDefinition) -> SchemaRef {
    if !def.definition.metadata_columns {
        return event.clone();
    }
    let mut fields: Vec<Arc<Field>> = event.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        SOURCE_FILE_COLUMN,
        DataType::Utf8,
        false,
    )));
    fields.push(Arc::new(Field::new(
        SOURCE_LINE_COLUMN,
        DataType::Int64,
        false,
    )));
    Arc::new(Schema::new(fields))
}

struct Pending {
    ranges: BTreeMap<String, OffsetRange>,
    dead_letters: DeadLetterBuffer,
}

/// Writes the records of `table`'s source into version `def`, until the source ends or
/// `shutdown` fires.
pub async fn materialize(
    lake: &Lake,
    layout: &TableLayout,
    def: &VersionDefinition,
    table: &TableConfig,
    mut shutdown: Shutdown,
) -> Result<IngestReport> {
    let version = def.version;
    let mut log = CommitLog::open(lake, layout, version).await?;
    let removed = log.remove_uncommitted().await?;
    if removed > 0 {
        tracing::info!(table = %layout.table(), version, removed, "removed files of an unfinished commit");
    }
    let event_schema = def.definition.event_schema()?.arrow;
    let schema = file_schema(&event_schema, def);
    let decoder = JsonDecoder::new(event_schema, table.source.max_record_bytes());
    let mut writer = PartitionedWriter::new(
        lake.clone(),
        layout.version_dir(version),
        schema.clone(),
        table.writer.clone(),
        def.definition.partitioning.granularity,
    )?;
    let SourceConfig::Files(files_cfg) = &table.source else {
        return Err(Error::Refused(format!(
            "table `{}`: only the files source is available in this build",
            table.name
        )));
    };
    let mut source = FilesSource::start(files_cfg, &log.state().positions)?;
    let mut report = IngestReport {
        table: table.name.clone(),
        version,
        removed_uncommitted: removed,
        ..Default::default()
    };
    let mut pending = Pending {
        ranges: BTreeMap::new(),
        dead_letters: DeadLetterBuffer::default(),
    };
    let max_age = table.writer.max_age;
    let dead_letter_limit = (table.writer.max_buffer_bytes / 4) as usize;
    let mut deadline = Instant::now() + max_age;
    let batch_ctx = BatchContext {
        decoder: &decoder,
        def,
        schema: &schema,
    };
    loop {
        let next = tokio::select! {
            biased;
            () = shutdown.wait() => {
                report.interrupted = true;
                break;
            }
            () = tokio::time::sleep_until(deadline) => None,
            b = source.next() => match b {
                Some(b) => Some(b?),
                None => break,
            },
        };
        if let Some(batch) = next {
            report.records += batch.records.len() as u64;
            batch_ctx.write(&batch, &mut writer, &mut pending).await?;
        }
        if Instant::now() >= deadline || pending.dead_letters.buffered_bytes() > dead_letter_limit {
            commit(
                lake,
                layout,
                version,
                &mut log,
                &mut writer,
                &mut pending,
                &mut report,
            )
            .await?;
            deadline = Instant::now() + max_age;
        }
    }
    commit(
        lake,
        layout,
        version,
        &mut log,
        &mut writer,
        &mut pending,
        &mut report,
    )
    .await?;
    Ok(report)
}

async fn commit(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
    log: &mut CommitLog,
    writer: &mut PartitionedWriter,
    pending: &mut Pending,
    report: &mut IngestReport,
) -> Result<()> {
    let files = writer.finish().await?;
    let dead = pending.dead_letters.len() as u64;
    let dead_letters = pending.dead_letters.flush(lake, layout, version).await?;
    let commit = PendingCommit {
        files,
        dead_letters: dead_letters.into_iter().collect(),
        ranges: std::mem::take(&mut pending.ranges),
    };
    if commit.is_empty() {
        return Ok(());
    }
    let rows: u64 = commit.files.iter().map(|f| f.rows).sum();
    let files = commit.files.len() as u64;
    let seq = log.commit(commit).await?;
    report.commits += 1;
    report.rows += rows;
    report.files += files;
    report.dead_letters += dead;
    tracing::info!(table = %layout.table(), version, seq, rows, files, dead_letters = dead, "commit");
    Ok(())
}

struct BatchContext<'a> {
    decoder: &'a JsonDecoder,
    def: &'a VersionDefinition,
    schema: &'a SchemaRef,
}

impl BatchContext<'_> {
    async fn write(
        &self,
        batch: &SourceBatch,
        writer: &mut PartitionedWriter,
        pending: &mut Pending,
    ) -> Result<()> {
        let range = pending
            .ranges
            .entry(batch.partition.to_string())
            .or_insert_with(|| OffsetRange {
                start: batch.first_offset,
                end: batch.first_offset,
                end_byte: None,
                eof: false,
            });
        let SourcePosition {
            offset,
            end_byte,
            eof,
        } = batch.position;
        range.end = offset;
        range.end_byte = end_byte;
        range.eof = eof;

        let dead = |index: usize, stage: Stage, reason: String| {
            let rec = &batch.records[index];
            DeadLetter {
                stage,
                reason,
                source: batch.partition.clone(),
                offset: batch.first_offset + index as u64,
                raw: rec.bytes.clone(),
                raw_len: rec.oversized.unwrap_or(rec.bytes.len() as u64),
            }
        };
        let decoded = self.decoder.decode(&batch.records);
        for r in decoded.rejected {
            pending.dead_letters.push(dead(r.index, r.stage, r.reason));
        }
        let mut rows = decoded.rows.as_slice();
        for events in decoded.batches {
            let (these, rest) = rows.split_at(events.num_rows());
            rows = rest;
            let events = self.with_metadata(events, batch, these)?;
            let mut keep = Vec::with_capacity(these.len());
            let mut buckets = Vec::with_capacity(these.len());
            for (i, t) in self.event_times(&events).into_iter().enumerate() {
                match t.and_then(|t| {
                    partition::bucket(t, self.def.definition.partitioning.granularity)
                }) {
                    Ok(b) => {
                        keep.push(true);
                        buckets.push(b);
                    }
                    Err(reason) => {
                        keep.push(false);
                        pending
                            .dead_letters
                            .push(dead(these[i], Stage::EventTime, reason));
                    }
                }
            }
            let events = if buckets.len() == events.num_rows() {
                events
            } else {
                filter_record_batch(&events, &BooleanArray::from(keep))
                    .map_err(|e| write_err(self, e))?
            };
            writer.write(&events, &buckets).await?;
        }
        Ok(())
    }

    fn event_times(&self, events: &RecordBatch) -> partition::EventTimes {
        match &self.def.definition.partitioning.time {
            TimeSpec::Field { name, unit } => partition::field_times(events, name, *unit),
            TimeSpec::SourceTimestamp => {
                vec![
                    Err("the files source has no record timestamps".to_string());
                    events.num_rows()
                ]
            }
        }
    }

    fn with_metadata(
        &self,
        events: RecordBatch,
        batch: &SourceBatch,
        rows: &[usize],
    ) -> Result<RecordBatch> {
        if !self.def.definition.metadata_columns {
            return Ok(events);
        }
        let mut columns: Vec<ArrayRef> = events.columns().to_vec();
        let n = events.num_rows();
        columns.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(&*batch.partition, n),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter()
                .map(|i| (batch.first_offset + *i as u64 + 1) as i64),
        )));
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| write_err(self, e))
    }
}

fn write_err(ctx: &BatchContext<'_>, e: impl std::fmt::Display) -> Error {
    Error::Write {
        path: format!("v{}", ctx.def.version).as_str().into(),
        reason: e.to_string(),
    }
}
