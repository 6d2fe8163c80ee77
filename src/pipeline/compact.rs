//! `compact`: rewrites the small files of a Delta version into few large ones, partition by
//! partition, while `run` keeps appending to it (the transactions are
//! [`DeltaLog::commit_compaction`]'s).
//!
//! A compaction holds a writer lease while it writes, like any writer, so its files carry a
//! writer id. Killed, it leaves only files no commit lists: invisible to readers, removed by
//! `vacuum`; run again, it plans afresh from the log and finishes the job.
//!
//! Invariant: the version's rows, their source coordinates and its stored offsets are the same
//! before and after; only the files that hold the rows change.

use serde::Serialize;

use crate::config::Format;
use crate::domain::TimeSpec;
use crate::error::{Error, Result, Unsupported};
use crate::partition;
use crate::pipeline::handle::TableHandle;
use crate::schema::rows::KAFKA_TIMESTAMP_COLUMN;
use crate::write::delta::{Bin, BinOutcome, CompactionLimits, PartitionPlan, Rewritten};
use crate::write::lease::{self, WriterLease, WriterState};
use crate::write::{DeltaFileWriter, DeltaLog};

/// Bins swapped in by one transaction at most.
const MAX_BINS_PER_COMMIT: usize = 256;

/// What to compact.
#[derive(Debug, Clone, Default)]
pub struct CompactOptions {
    /// The version (default: the current one).
    pub version: Option<u32>,
    /// Only this partition, or the partitions under it (`date=2026-11-26`).
    pub partition: Option<String>,
    /// Plan only: say what would be rewritten.
    pub dry_run: bool,
    /// Partitions with fewer small files are left alone (at least 2).
    pub min_files: usize,
    /// Only partitions no file was added to for this long (`run`'s automatic compaction);
    /// the others are counted as waiting.
    pub idle_for: Option<std::time::Duration>,
}

/// One partition's compaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    /// `date=2026-11-26/hour=5`.
    pub partition: String,
    /// Data files before.
    pub files_before: usize,
    /// Data files after (in a dry run: what the plan implies).
    pub files_after: usize,
    /// Bytes of the files rewritten.
    pub bytes_rewritten: u64,
}

/// What `compact` did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// The table.
    pub table: String,
    /// The version compacted.
    pub version: u32,
    /// Nothing was changed.
    pub dry_run: bool,
    /// The partitions rewritten, in order.
    pub partitions: Vec<PartitionReport>,
    /// Files removed from the snapshot.
    pub files_removed: usize,
    /// Files added to it.
    pub files_added: usize,
    /// Bytes read and rewritten.
    pub bytes_rewritten: u64,
    /// Rows moved into new files.
    pub rows_rewritten: u64,
    /// Bins another compaction rewrote first (nothing lost: they are compacted).
    pub superseded: usize,
    /// Partitions with small files to compact that were written to too recently
    /// ([`CompactOptions::idle_for`]).
    pub partitions_waiting: usize,
    /// A plain-Parquet version is compacted into a new version (see
    /// [`crate::pipeline::compact_parquet`]): that version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub into_version: Option<u32>,
    /// Whether `current` moved to [`CompactReport::into_version`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub promoted: bool,
}

/// Compacts a Delta version of `table`.
pub async fn compact(table: &TableHandle, opts: &CompactOptions) -> Result<CompactReport> {
    let (lake, layout) = (&table.lake, &table.layout);
    let def = table.version_or_current(opts.version).await?;
    let version = def.version;
    if def.definition.format != Format::Delta {
        return Err(Unsupported::CompactParquet { version }.into());
    }
    let granularity = def.definition.partitioning.granularity;
    let writer_cfg = &table.cfg.writer;
    let limits = CompactionLimits {
        target_file_size: writer_cfg.target_file_size,
        // The rows of a bin are sorted in memory; a quarter of the ingest's buffer budget
        // of compressed input keeps a compaction beside `run` within a similar bound.
        max_bin_bytes: (writer_cfg.max_buffer_bytes / 4).max(1 << 20),
        min_files: opts.min_files.max(2),
    };
    let mut log = DeltaLog::open(lake, layout, version, None).await?;
    let mut plans = log.plan_compaction(&limits, granularity, opts.partition.as_deref())?;
    let planned = plans.len();
    if let Some(idle) = opts.idle_for {
        let cutoff = lake.clock.now().timestamp_millis()
            - i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        plans.retain(|p| p.last_added_ms <= cutoff);
    }
    let mut report = CompactReport {
        table: table.cfg.name.clone(),
        version,
        dry_run: opts.dry_run,
        partitions: Vec::new(),
        files_removed: 0,
        files_added: 0,
        bytes_rewritten: 0,
        rows_rewritten: 0,
        superseded: 0,
        partitions_waiting: planned - plans.len(),
        into_version: None,
        promoted: false,
    };
    if opts.dry_run {
        for p in &plans {
            let inputs: usize = p.bins.iter().map(|b| b.inputs).sum();
            let bytes: u64 = p.bins.iter().map(|b| b.bytes).sum();
            report.partitions.push(PartitionReport {
                partition: p.partition.clone(),
                files_before: p.files,
                files_after: p.files - inputs + p.bins.len(),
                bytes_rewritten: bytes,
            });
            report.files_removed += inputs;
            report.files_added += p.bins.len();
            report.bytes_rewritten += bytes;
        }
        return Ok(report);
    }
    if plans.is_empty() {
        return Ok(report);
    }
    let ttl = (writer_cfg.max_age.as_secs() * 3).max(30);
    let mut lease = WriterLease::new(ttl, lake.clock.now());
    lease.refresh(lake, layout, version).await?;
    let mut writer = DeltaFileWriter::new(&log, writer_cfg, granularity, &lease.writer)?;
    let sort_key = |batch: &arrow::record_batch::RecordBatch| {
        let time = def.definition.partitioning.time.as_ref()?;
        event_times(batch, time)
    };
    // Bins are committed in batches: few transactions keep the log short for readers, and a
    // batch holds at most `max_buffer_bytes` of rewritten input (what a kill leaves behind,
    // uncommitted, for `vacuum`).
    let batch_bytes = writer_cfg.max_buffer_bytes;
    let result = async {
        let mut staged: Vec<(usize, &Bin, Rewritten)> = Vec::new();
        let mut staged_bytes = 0;
        let mut parts: Vec<PartitionReport> = plans
            .iter()
            .map(|p| PartitionReport {
                partition: p.partition.clone(),
                files_before: p.files,
                files_after: p.files,
                bytes_rewritten: 0,
            })
            .collect();
        // Collected: an iterator of closures held across the awaits below would make this
        // future not `Send` (`run` spawns it).
        let mut bins: Vec<(usize, &PartitionPlan, &Bin)> = Vec::new();
        for (i, p) in plans.iter().enumerate() {
            bins.extend(p.bins.iter().map(|b| (i, p, b)));
        }
        let total = bins.len();
        for (n, (i, p, bin)) in bins.into_iter().enumerate() {
            let mut rewritten = log.rewrite_bin(p, bin, &mut writer, &sort_key).await?;
            if def.definition.changes.is_upsert() {
                rewritten.conflict_with_upserts();
            }
            staged_bytes += bin.bytes;
            staged.push((i, bin, rewritten));
            lease.refresh(lake, layout, version).await?;
            if staged_bytes < batch_bytes && staged.len() < MAX_BINS_PER_COMMIT && n + 1 < total {
                continue;
            }
            let batch = std::mem::take(&mut staged);
            staged_bytes = 0;
            let outcomes = log
                .commit_compaction(
                    batch.iter().map(|(_, _, r)| r.clone()).collect(),
                    limits.target_file_size,
                )
                .await?;
            for ((i, bin, _), outcome) in batch.into_iter().zip(outcomes) {
                let part = &mut parts[i];
                match outcome {
                    BinOutcome::Compacted { files, bytes: _, rows } => {
                        part.files_after = part.files_after + files - bin.inputs;
                        part.bytes_rewritten += bin.bytes;
                        report.files_removed += bin.inputs;
                        report.files_added += files;
                        report.bytes_rewritten += bin.bytes;
                        report.rows_rewritten += rows;
                    }
                    BinOutcome::Superseded => report.superseded += 1,
                }
            }
            lease.refresh(lake, layout, version).await?;
        }
        for part in parts {
            tracing::info!(table = %table.cfg.name, version, partition = %part.partition, files_before = part.files_before, files_after = part.files_after, "compacted");
            report.partitions.push(part);
        }
        Ok::<_, Error>(())
    }
    .await;
    lease.state = WriterState::Stopped;
    if let Err(e) = lease.refresh(lake, layout, version).await {
        tracing::warn!(error = %e, "could not mark the compaction's writer lease stopped");
    }
    // `run` compacts every few minutes, each pass with a lease of its own: keep few.
    if let Err(e) = lease::prune(lake, layout, version).await {
        tracing::warn!(error = %e, "could not prune finished writers' leases");
    }
    result.map(|()| report)
}

/// Event time per row (µs) as the version defines it, for sorting a partition's rows; `None`
/// when the stored rows do not carry it (a transform dropped the field).
pub(crate) fn event_times(
    batch: &arrow::record_batch::RecordBatch,
    time: &TimeSpec,
) -> Option<Vec<i64>> {
    let times = match time {
        TimeSpec::Field { name, unit } => partition::field_times(batch, name, *unit),
        TimeSpec::SourceTimestamp => {
            partition::field_times(batch, KAFKA_TIMESTAMP_COLUMN, crate::domain::EpochUnit::Ms)
        }
    };
    if times.iter().all(|t| t.is_err()) {
        return None;
    }
    Some(times.into_iter().map(|t| t.unwrap_or(i64::MIN)).collect())
}
