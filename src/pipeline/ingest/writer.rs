//! The version writer: one job, for one version — decode → shape (transform, event time,
//! partition) → write Parquet → commit the files with the offsets they cover and the dead
//! letters, in one commit-log entry.
//!
//! It resumes from the offsets stored in the version's commit log: at open it deletes the
//! files no commit lists whose writer is gone (see [`lease`]). Every commit closes the open
//! files, so a commit's offsets cover exactly the rows in the files it lists. Invariant: a
//! refused commit (another writer committed the same offsets first, or this writer's lease
//! expired) deletes its files and returns [`Error::Conflict`]; nothing it wrote stays visible.

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;
use rayon::prelude::*;
use tokio::time::Instant;

use crate::config::{BadRecords, SourceConfig, TableConfig};
use crate::decode::json::Decoded;
use crate::decode::{DeadLetter, DeadLetterBuffer, RecordDecoder, Stage};
use crate::error::{Error, Result, Unusable};
use crate::failpoints::crash_point;
use crate::metrics::{CommitFigures, Metrics, VersionMetrics};
use crate::pipeline::ingest::report::{IngestReport, Stop};
use crate::pipeline::shape::Shaper;
use crate::registry::SchemaRegistry;
use crate::source::SourceBatch;
use crate::storage::Lake;
use crate::table::{TableLayout, VersionDefinition};
use crate::write::commit::OffsetRange;
use crate::write::lease::{self, PartitionMetrics, WriterLease, WriterState};
use crate::write::upsert::UpsertBuffer;
use crate::write::{self, FileWriter, PendingCommit, SourcePosition, VersionLog};

/// Uncommitted offsets and dead letters (an append table's rows are in the writer's files;
/// an upsert table's wait in `upserts` until the commit applies them).
#[derive(Default)]
struct Pending {
    ranges: BTreeMap<String, OffsetRange>,
    dead_letters: DeadLetterBuffer,
    upserts: Option<UpsertBuffer>,
}

/// One writer of one version: decodes, shapes and writes batches, and commits them with their
/// offsets and dead letters. It does not read a source: the drivers hand it batches.
pub(super) struct VersionWriter<'a> {
    pub(super) lake: &'a Lake,
    pub(super) layout: &'a TableLayout,
    pub(super) def: &'a VersionDefinition,
    pub(super) table: &'a TableConfig,
    pub(super) log: VersionLog,
    pub(super) writer: FileWriter,
    pub(super) decoder: RecordDecoder,
    /// Where Confluent-framed records' writer schemas are looked up.
    pub(super) registry: Option<SchemaRegistry>,
    pub(super) shaper: Shaper,
    pending: Pending,
    pub(super) report: IngestReport,
    pub(super) lease: WriterLease,
    /// `dead-letters replay`: records failing again are counted here (by `stage: reason`)
    /// instead of becoming dead letters a second time.
    pub(super) replay_failures: Option<BTreeMap<String, u64>>,
    pub(super) metrics: VersionMetrics,
}

impl<'a> VersionWriter<'a> {
    pub(super) async fn open(
        lake: &'a Lake,
        layout: &'a TableLayout,
        def: &'a VersionDefinition,
        table: &'a TableConfig,
    ) -> Result<VersionWriter<'a>> {
        let version = def.version;
        let ttl = (table.writer.max_age.as_secs() * 3).max(30);
        let mut lease = WriterLease::new(ttl, lake.clock.now());
        let event_schema = def.definition.event_schema()?.arrow;
        let decoder = RecordDecoder::for_source(
            &table.source,
            &def.definition.changes,
            &def.definition.schema.to_string(),
            event_schema.clone(),
        )?;
        let registry = match &table.source {
            SourceConfig::Kafka(k) => k.registry.as_deref().map(SchemaRegistry::new).transpose()?,
            SourceConfig::Files(_) => None,
        };
        let shaper = Shaper::new(&event_schema, &def.definition)?;
        let (log, writer) = write::open_for_writing(
            lake,
            layout,
            def,
            shaper.output_schema(),
            &table.writer,
            &lease.writer,
        )
        .await?;
        let upserts = match def.definition.changes.is_upsert() {
            true => Some(
                UpsertBuffer::new(shaper.output_schema(), &def.definition.changes.key).map_err(
                    |e| Error::Write {
                        path: layout.version_dir(version),
                        source: e.into(),
                    },
                )?,
            ),
            false => None,
        };
        let live = lease::live_writers(lake, layout, version).await?;
        let removed = log.remove_uncommitted(&live).await?;
        if removed > 0 {
            tracing::info!(table = %layout.table(), version, removed, "removed files no commit lists (their writer is gone)");
        }
        lease.refresh(lake, layout, version).await?;
        lease::prune(lake, layout, version).await?;
        tracing::info!(table = %layout.table(), version, writer = %lease.writer, "writer started");
        Ok(VersionWriter {
            lake,
            layout,
            def,
            table,
            log,
            writer,
            decoder,
            registry,
            shaper,
            pending: Pending {
                upserts,
                ..Pending::default()
            },
            report: IngestReport {
                table: table.name.clone(),
                version,
                removed_uncommitted: removed,
                ..Default::default()
            },
            lease,
            replay_failures: None,
            metrics: Metrics::global().version(&table.name, version),
        })
    }

    pub(super) fn version(&self) -> u32 {
        self.def.version
    }

    /// Whether only a commit brings memory back under `max_buffer_bytes`: an upsert table's
    /// pending changes (with the open files beside them), or the dead letters.
    ///
    /// An append table's open files are the file writer's own to bound: each write closes the
    /// least recently written above the budget. Its figure can pass the budget by what is still
    /// being encoded when a write returns (~0.2 % measured at 256 MiB); committing then would
    /// close every open file early, for more and smaller files and commits.
    pub(super) fn over_budget(&self) -> bool {
        only_a_commit_frees(
            self.table.writer.max_buffer_bytes as usize,
            self.writer.buffered_bytes(),
            self.upsert_bytes(),
            self.pending.dead_letters.buffered_bytes(),
        )
    }

    /// Memory held by what is not committed yet.
    pub(super) fn buffered_bytes(&self) -> usize {
        self.writer.buffered_bytes()
            + self.pending.dead_letters.buffered_bytes()
            + self.upsert_bytes()
    }

    fn upsert_bytes(&self) -> usize {
        self.pending
            .upserts
            .as_ref()
            .map_or(0, UpsertBuffer::buffered_bytes)
    }

    /// An upsert table's commit: the files holding the changed keys rewritten without them,
    /// and each key's last row written; the `remove`s of the replaced files.
    async fn apply_upserts(&mut self) -> Result<Vec<deltalake::kernel::Remove>> {
        let Some(buffer) = self.pending.upserts.as_mut().filter(|b| !b.is_empty()) else {
            return Ok(Vec::new());
        };
        let dir = self.layout.version_dir(self.def.version);
        let drained = buffer.drain().map_err(|e| Error::Write {
            path: dir.clone(),
            source: e.into(),
        })?;
        let (VersionLog::Delta(log), FileWriter::Delta(writer)) = (&self.log, &mut self.writer)
        else {
            return Err(Error::Write {
                path: dir,
                source: "an upsert table is a Delta table".into(),
            });
        };
        let granularity = self.def.definition.partitioning.granularity;
        let rewrite = log
            .rewrite_without(&drained.touched, writer, granularity)
            .await?;
        if let Some((rows, buckets)) = &drained.rows {
            writer.write(rows, buckets).await?;
        }
        tracing::debug!(
            table = %self.table.name,
            keys = drained.touched.keys.len(),
            deleted = drained.deleted,
            files_replaced = rewrite.removes.len(),
            rows_dropped = rewrite.rows_dropped,
            rows_kept = rewrite.rows_kept,
            "upserts applied"
        );
        Ok(rewrite.removes)
    }

    /// Records the end of the run in the lease; hands back the report.
    pub(super) async fn finish(mut self, outcome: Result<Stop>) -> Result<IngestReport> {
        self.lease.state = WriterState::Stopped;
        self.sync_metrics(None);
        if let Err(e) = self
            .lease
            .refresh(self.lake, self.layout, self.version())
            .await
        {
            tracing::warn!(error = %e, "could not record the end of the run in the writer lease");
        }
        if outcome.is_err() {
            self.remove_own_uncommitted().await;
        }
        match outcome? {
            Stop::Interrupted => self.report.interrupted = true,
            Stop::End => {}
            Stop::CaughtUp => self.report.caught_up = true,
            Stop::Moved(v) => self.report.moved_to = Some(v),
        }
        Ok(self.report)
    }

    /// Stopping on an error (e.g. a full disk): deletes the files this writer wrote but could
    /// not commit, which a path glob would see until the next writer's start removes them. The
    /// log is re-read first, so a commit whose outcome was unknown and that did land keeps its
    /// files; other live writers' files are kept. Best effort: a failure is only logged.
    async fn remove_own_uncommitted(&mut self) {
        let result = async {
            self.log.refresh().await?;
            let mut others = lease::live_writers(self.lake, self.layout, self.version()).await?;
            others.remove(&self.lease.writer);
            self.log.remove_uncommitted(&others).await
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(table = %self.table.name, version = self.version(), removed, "removed the files no commit lists");
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not remove the files no commit lists; the next writer removes them at its start");
            }
        }
    }

    fn sync_metrics(&mut self, partitions: Option<BTreeMap<String, PartitionMetrics>>) {
        let m = &mut self.lease.metrics;
        m.events_in = self.report.records;
        m.events_skipped = self.report.skipped;
        m.rows_written = self.report.rows;
        m.dead_lettered = self.report.dead_letters;
        m.files = self.report.files;
        m.commits = self.report.commits;
        m.conflicts = self.report.conflicts;
        if let Some(p) = partitions {
            m.partitions = p;
        }
    }

    /// Refreshes the lease, with the run's metrics. A failure is logged, not fatal: the next
    /// commit checks the lease is still fresh.
    pub(super) async fn heartbeat(
        &mut self,
        partitions: Option<BTreeMap<String, PartitionMetrics>>,
    ) {
        self.sync_metrics(partitions);
        if let Err(e) = self
            .lease
            .refresh(self.lake, self.layout, self.version())
            .await
        {
            tracing::warn!(error = %e, "could not refresh the writer lease");
        }
    }

    /// A driver's commit rule: commits everything written (and refreshes the lease) when
    /// `deadline` has passed or the buffers are over budget. The next deadline.
    pub(super) async fn commit_when_due(&mut self, deadline: Instant) -> Result<Instant> {
        if Instant::now() < deadline && !self.over_budget() {
            return Ok(deadline);
        }
        self.commit().await?;
        self.heartbeat(None).await;
        Ok(Instant::now() + self.table.writer.max_age)
    }

    /// Commits everything written since the last commit. A refused commit deletes its files
    /// and returns the conflict.
    pub(super) async fn commit(&mut self) -> Result<()> {
        let started = Instant::now();
        let version = self.version();
        let removes = self.apply_upserts().await?;
        let (files, adds) = self.writer.finish().await?;
        let dead = self.pending.dead_letters.len() as u64;
        let dead_by_stage = self.pending.dead_letters.by_stage();
        let dead_letters = self
            .pending
            .dead_letters
            .flush(self.lake, self.layout, version, &self.lease.writer)
            .await?;
        let commit = PendingCommit {
            files,
            dead_letters: dead_letters.into_iter().collect(),
            ranges: std::mem::take(&mut self.pending.ranges),
            adds,
            removes,
        };
        if commit.is_empty() {
            return Ok(());
        }
        crash_point!("ingest.after_files");
        let result = if self.lease.may_commit(self.lake.clock.now()) {
            self.log.commit(commit.clone()).await
        } else {
            Err(Error::Conflict {
                path: self.layout.writer_lease(version, &self.lease.writer),
                reason: "this writer's lease expired (was the process paused?); its files may have been removed".into(),
            })
        };
        let seq = match result {
            Ok(seq) => seq,
            Err(e) => {
                self.metrics.buffered(self.buffered_bytes());
                if matches!(e, Error::Conflict { .. }) {
                    self.report.conflicts += 1;
                    self.metrics.conflict();
                    delete_files(self.lake, self.layout, version, &commit).await?;
                }
                return Err(e);
            }
        };
        let rows: u64 = commit.files.iter().map(|f| f.rows).sum();
        let files = commit.files.len() as u64;
        self.metrics.committed(
            &CommitFigures {
                rows,
                bytes: commit.files.iter().map(|f| f.size).sum(),
                files,
                dead_letters: dead_by_stage,
            },
            started.elapsed(),
        );
        self.metrics.buffered(self.buffered_bytes());
        self.metrics.committing();
        self.report.commits += 1;
        self.report.rows += rows;
        self.report.files += files;
        self.report.dead_letters += dead;
        tracing::info!(table = %self.layout.table(), version, seq, rows, files, dead_letters = dead, "commit");
        crash_point!("ingest.after_commit");
        Ok(())
    }

    /// Decodes `batches` (of several partitions, say) on both cores, off the async workers,
    /// then writes them in order.
    pub(super) async fn write_all(&mut self, batches: Vec<SourceBatch>) -> Result<()> {
        for batch in &batches {
            self.decoder
                .resolve(&batch.records, self.registry.as_ref())
                .await?;
        }
        let decoder = self.decoder.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let decoded: Vec<Decoded> = batches
                .par_iter()
                .map(|b| decoder.decode_parallel(&b.records))
                .collect();
            batches.into_iter().zip(decoded).collect::<Vec<_>>()
        })
        .await
        .map_err(|source| Error::Task {
            task: "decoding a burst",
            source,
        })?;
        // One write for the whole burst: a partition's batch of a burst is small, and every
        // write is a round of encoding jobs over the files it touches.
        let mut staged = Vec::new();
        for (batch, decoded) in decoded {
            staged.extend(self.stage_decoded(&batch, decoded, &batch.partition)?);
        }
        self.write_staged(staged).await
    }

    /// [`VersionWriter::write`] of a batch already decoded; `key` is the position the batch advances
    /// (its source partition, or a replayed dead-letter file's key).
    pub(super) async fn write_decoded(
        &mut self,
        batch: &SourceBatch,
        decoded: Decoded,
        key: &str,
    ) -> Result<()> {
        let staged = self.stage_decoded(batch, decoded, key)?;
        self.write_staged(staged).await
    }

    /// Writes shaped rows of append tables (each batch with its rows' time partitions).
    async fn write_staged(&mut self, staged: Vec<(RecordBatch, Vec<i64>)>) -> Result<()> {
        let parts: Vec<(&RecordBatch, &[i64])> = staged
            .iter()
            .map(|(b, buckets)| (b, &buckets[..]))
            .collect();
        if !parts.is_empty() {
            self.writer.write_parts(&parts).await?;
        }
        self.metrics.buffered(self.buffered_bytes());
        Ok(())
    }

    /// The bookkeeping of a decoded batch — offsets, dead letters, shaping, an upsert table's
    /// changes — without writing: the shaped rows of an append table, for
    /// [`VersionWriter::write_staged`].
    fn stage_decoded(
        &mut self,
        batch: &SourceBatch,
        decoded: Decoded,
        key: &str,
    ) -> Result<Vec<(RecordBatch, Vec<i64>)>> {
        self.metrics.consumed(batch.records.len() as u64, 0);
        let range = self
            .pending
            .ranges
            .entry(key.to_string())
            .or_insert_with(|| OffsetRange {
                start: batch.start,
                end: batch.start,
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
                offset: rec.offset,
                raw: rec.bytes.clone(),
                raw_len: rec.oversized.unwrap_or(rec.bytes.len() as u64),
                timestamp_ms: rec.timestamp_ms,
                key: rec.key.clone(),
                headers: rec.headers.clone(),
            }
        };
        for r in decoded.rejected {
            self.reject(dead(r.index, r.stage, r.reason))?;
        }
        let deletes = decoded.deletes;
        let mut upserted = Vec::new();
        let mut staged = Vec::new();
        let mut rows = decoded.rows.as_slice();
        for events in decoded.batches {
            let (these, rest) = rows.split_at(events.num_rows());
            rows = rest;
            let mut rejected = Vec::new();
            let shaped = self
                .shaper
                .shape(events, batch, these, &mut |i, stage, reason| {
                    rejected.push(dead(i, stage, reason))
                })
                .map_err(|e| self.write_err(e))?
                .ok_or_else(|| {
                    Error::from(Unusable::SourceKind {
                        version: self.def.version,
                    })
                })?;
            for letter in rejected {
                self.reject(letter)?;
            }
            if self.pending.upserts.is_some() {
                upserted.push((shaped.batch, shaped.buckets, shaped.rows));
            } else {
                staged.push((shaped.batch, shaped.buckets));
            }
        }
        if let Some(buffer) = &mut self.pending.upserts {
            buffer
                .apply(upserted, &deletes.keys, &deletes.rows)
                .map_err(|e| Error::Write {
                    path: self.layout.version_dir(self.def.version),
                    source: e.into(),
                })?;
        }
        Ok(staged)
    }

    /// A record that cannot be materialized, handled as the table's `bad_records` says.
    pub(super) fn reject(&mut self, letter: DeadLetter) -> Result<()> {
        if let Some(failures) = &mut self.replay_failures {
            let reason = format!("{}: {}", letter.stage.as_str(), letter.reason);
            *failures.entry(reason).or_default() += 1;
            return Ok(());
        }
        match self.table.bad_records {
            BadRecords::DeadLetter => {
                self.pending.dead_letters.push(letter);
                Ok(())
            }
            BadRecords::Skip => {
                tracing::warn!(
                    table = %self.table.name,
                    version = self.version(),
                    source = %letter.source,
                    offset = letter.offset,
                    stage = letter.stage.as_str(),
                    reason = %letter.reason,
                    "bad record skipped"
                );
                self.metrics.skipped_bad_record(letter.stage);
                self.report.bad_records_skipped += 1;
                Ok(())
            }
            BadRecords::Fail => Err(Error::BadRecord {
                source_partition: letter.source.to_string(),
                offset: letter.offset,
                stage: letter.stage.as_str(),
                reason: letter.reason,
            }),
        }
    }

    fn write_err(&self, e: impl Into<crate::error::BoxError>) -> Error {
        Error::Write {
            path: self.layout.version_dir(self.version()),
            source: e.into(),
        }
    }
}

/// Deletes the files of a commit that was refused.
async fn delete_files(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
    commit: &PendingCommit,
) -> Result<()> {
    let data = commit
        .files
        .iter()
        .map(|f| layout.version_dir(version).join_rel(&f.path));
    let dead = commit
        .dead_letters
        .iter()
        .map(|f| layout.dead_letter_dir(version).join_rel(&f.path));
    for path in data.chain(dead) {
        lake.delete_if_exists(&path).await?;
    }
    Ok(())
}

/// Joins a relative path (with `/`) under a directory.
trait JoinRel {
    fn join_rel(&self, rel: &str) -> object_store::path::Path;
}

impl JoinRel for object_store::path::Path {
    fn join_rel(&self, rel: &str) -> object_store::path::Path {
        rel.split('/').fold(self.clone(), |p, part| p.join(part))
    }
}

/// [`VersionWriter::over_budget`]'s rule, from the bytes held by the open files, the pending
/// upserts and the dead letters.
fn only_a_commit_frees(budget: usize, files: usize, upserts: usize, dead_letters: usize) -> bool {
    (upserts > 0 && files + upserts > budget) || dead_letters > budget / 4
}

#[cfg(test)]
mod tests;

/// Decodes `batch` with `decoder` on the blocking pool (a driver decoding ahead of the writer).
pub(super) async fn decode_blocking(
    decoder: RecordDecoder,
    batch: SourceBatch,
) -> Result<(SourceBatch, Decoded)> {
    tokio::task::spawn_blocking(move || {
        let decoded = decoder.decode(&batch.records);
        (batch, decoded)
    })
    .await
    .map_err(|source| Error::Task {
        task: "decoding a batch",
        source,
    })
}
