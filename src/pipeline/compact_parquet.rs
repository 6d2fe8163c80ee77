//! `compact` of a plain-Parquet version. Glob readers (`read_parquet('vN/**/*.parquet')`,
//! Spark's `read.parquet`) follow no log, so swapping files in place would show them rows
//! twice or not at all. A Parquet version N is compacted into a **new version** M with N's
//! frozen definition instead:
//!
//! 1. **Seed**: M gets N's committed files, the small ones of each partition rewritten into
//!    files of about `target_file_size` sorted by event time (the rest copied as they are),
//!    N's dead-letter files, and N's stored offsets, all in M's first commit. N is only read:
//!    a snapshot of its log fixes which files and which offsets belong together.
//! 2. **Tail and promotion**: M resumes from those offsets like any rebuild (what `run`
//!    committed to N since the snapshot is read from the source again), checks that it holds
//!    N's records (`--require-same-rows`), and moves `current` under the catch-up rule.
//!    `run` follows the pointer to M; N stays writable for `retain_previous`, then `gc`
//!    deletes it.
//!
//! Killed, it starts again where it stopped: M without a commit is seeded again (the files an
//! unfinished seed left are removed first); M with its seed commit resumes its tail.
//!
//! Invariant: N is never written. A glob reader of the current version sees N's files until
//! `current` moves, then M's, which hold the same records (checked before the move).

use std::collections::{BTreeMap, HashMap};

use arrow::array::UInt32Array;
use arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::config::Format;
use crate::error::{Error, Refusal, Result, Unsupported};
use crate::pipeline::compact::{CompactOptions, CompactReport, PartitionReport, event_times};
use crate::pipeline::handle::TableHandle;
use crate::pipeline::rebuild::{self, RebuildOptions, ReplayFrom, ReplaySource};
use crate::pipeline::shape::Shaper;
use crate::shutdown::Shutdown;
use crate::table::version::{self, VersionState};
use crate::table::{VersionDefinition, pointer};
use crate::write::commit::{CommitLog, CommitRecord, FileEntry, OffsetRange, PendingCommit};
use crate::write::delta::bucket_of;
use crate::write::lease::{self, WriterLease, WriterState};
use crate::write::parquet::{PartitionedWriter, conform};

/// One partition of the version being compacted: its committed files.
#[derive(Debug)]
struct Partition {
    /// `date=2026-11-26/hour=5`.
    name: String,
    /// Its time bucket (`None`: partition values we cannot read back; copied as they are).
    bucket: Option<i64>,
    /// Files to rewrite, in bins of at most the bin budget each.
    bins: Vec<Vec<FileEntry>>,
    /// Files copied as they are.
    kept: Vec<FileEntry>,
    /// Files before.
    files: usize,
}

impl Partition {
    fn files_after(&self) -> usize {
        self.kept.len() + self.bins.len()
    }

    fn bytes_rewritten(&self) -> u64 {
        self.bins.iter().flatten().map(|f| f.size).sum()
    }
}

/// Compacts the current version of `table`, a plain-Parquet one, into a new version and
/// promotes it (see the module's doc). With `dry_run`, only plans.
pub async fn compact(
    table: &TableHandle,
    opts: &CompactOptions,
    shutdown: Shutdown,
) -> Result<CompactReport> {
    let (lake, layout) = (&table.lake, &table.layout);
    let source = table.version_or_current(opts.version).await?;
    if source.definition.format != Format::Parquet {
        return Err(Error::Corrupt {
            path: layout.version_definition(source.version),
            source: format!("v{} is not a plain-Parquet version", source.version).into(),
        });
    }
    let current = pointer::read(lake, layout).await?.map(|p| p.version);
    if current != Some(source.version) {
        return Err(Unsupported::CompactParquetNotCurrent {
            version: source.version,
            current: current.map_or("none".into(), |v| format!("v{v}")),
        }
        .into());
    }
    if table.definition()?.hash()? != source.definition_hash {
        return Err(Refusal::CompactOtherDefinition {
            table: table.cfg.name.clone(),
            version: source.version,
        }
        .into());
    }
    // The snapshot: the files and offsets of the same commits.
    let log = CommitLog::open(lake, layout, source.version).await?;
    let records = log.records().await?;
    let partitions = plan(table, &source, &records, opts);
    let mut report = CompactReport {
        table: table.cfg.name.clone(),
        version: source.version,
        dry_run: opts.dry_run,
        partitions: partitions
            .iter()
            .filter(|p| !p.bins.is_empty())
            .map(|p| PartitionReport {
                partition: p.name.clone(),
                files_before: p.files,
                files_after: p.files_after(),
                bytes_rewritten: p.bytes_rewritten(),
            })
            .collect(),
        files_removed: partitions
            .iter()
            .map(|p| p.bins.iter().flatten().count())
            .sum(),
        files_added: partitions.iter().map(|p| p.bins.len()).sum(),
        bytes_rewritten: partitions.iter().map(Partition::bytes_rewritten).sum(),
        rows_rewritten: 0,
        superseded: 0,
        partitions_waiting: 0,
        into_version: None,
        promoted: false,
    };
    if opts.dry_run || report.files_removed == 0 {
        return Ok(report);
    }
    let target = target_version(table, &source).await?;
    report.into_version = Some(target.version);
    let seeded = CommitLog::open(lake, layout, target.version)
        .await?
        .state()
        .commits
        > 0;
    if seeded {
        tracing::info!(table = %table.cfg.name, from = source.version, to = target.version, "resuming an interrupted compaction: its files are in; catching up");
    } else {
        report.rows_rewritten = seed(table, &source, &target, &log, &records, &partitions).await?;
    }
    // The tail since the snapshot, then the promotion (as `rebuild` resumes a version).
    let rebuilt = rebuild::rebuild(
        table,
        RebuildOptions {
            promote: true,
            force: true,
            progress: false,
            require_same_rows: true,
            from: ReplayFrom::Earliest,
            // The snapshot holds the history; only the tail since it is replayed.
            source: ReplaySource::Topic,
            archive: None,
            allow_gap: false,
            shard: None,
        },
        shutdown,
    )
    .await?;
    if rebuilt.ingest.version != target.version {
        return Err(Error::Corrupt {
            path: layout.version_definition(target.version),
            source: format!(
                "compacting into v{} resumed v{} instead",
                target.version, rebuilt.ingest.version
            )
            .into(),
        });
    }
    report.promoted = rebuilt.promoted.is_some();
    Ok(report)
}

/// Groups the committed files by partition and bins each partition's small ones.
fn plan(
    table: &TableHandle,
    source: &VersionDefinition,
    records: &[CommitRecord],
    opts: &CompactOptions,
) -> Vec<Partition> {
    let granularity = source.definition.partitioning.granularity;
    let writer = &table.cfg.writer;
    let small_below = writer.target_file_size.saturating_mul(3) / 4;
    // The rows of a bin are sorted in memory: a quarter of the ingest's buffer budget of
    // compressed input, as for Delta versions.
    let bin_budget = (writer.max_buffer_bytes / 4).max(1 << 20);
    let min_files = opts.min_files.max(2);
    let mut by_name: BTreeMap<String, Vec<FileEntry>> = BTreeMap::new();
    for f in records.iter().flat_map(|r| &r.files) {
        by_name
            .entry(crate::partition::partition_path(&f.partition))
            .or_default()
            .push(f.clone());
    }
    by_name
        .into_iter()
        .map(|(name, files)| {
            let values: HashMap<String, Option<String>> = files[0]
                .partition
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect();
            let bucket = bucket_of(&values, granularity);
            let selected = opts
                .partition
                .as_deref()
                .is_none_or(|p| name == p || name.starts_with(&format!("{p}/")));
            let count = files.len();
            let (small, mut kept): (Vec<_>, Vec<_>) =
                files.into_iter().partition(|f| f.size < small_below);
            let mut bins: Vec<Vec<FileEntry>> = Vec::new();
            if selected && bucket.is_some() && small.len() >= min_files {
                let mut bin_bytes = 0;
                for f in small {
                    if bins.is_empty() || bin_bytes + f.size > bin_budget {
                        bins.push(Vec::new());
                        bin_bytes = 0;
                    }
                    bin_bytes += f.size;
                    if let Some(bin) = bins.last_mut() {
                        bin.push(f);
                    }
                }
                // A bin of one file gains nothing.
                kept.extend(bins.extract_if(.., |b| b.len() < 2).flatten());
            } else {
                kept.extend(small);
            }
            Partition {
                name,
                bucket,
                bins,
                kept,
                files: count,
            }
        })
        .collect()
}

/// The version to compact into: one an interrupted compaction of `source` left (same
/// definition, still being built), or a new one.
async fn target_version(
    table: &TableHandle,
    source: &VersionDefinition,
) -> Result<VersionDefinition> {
    let (lake, layout) = (&table.lake, &table.layout);
    let versions = version::list(lake, layout).await?;
    if let Some(v) = versions.iter().rev().find(|v| {
        v.version > source.version
            && v.definition_hash == source.definition_hash
            && v.state == VersionState::Building
    }) {
        return Ok(v.clone());
    }
    let next = versions.last().map_or(1, |v| v.version + 1);
    tracing::info!(table = %table.cfg.name, from = source.version, to = next, "compacting a plain-Parquet version into a new version");
    version::create(lake, layout, next, source.definition.clone()).await
}

/// Writes `target`'s first commit: `source`'s files (rewritten or copied), its dead-letter
/// files and its offsets, as of `log`'s snapshot. Returns the rows rewritten.
async fn seed(
    table: &TableHandle,
    source: &VersionDefinition,
    target: &VersionDefinition,
    log: &CommitLog,
    records: &[CommitRecord],
    partitions: &[Partition],
) -> Result<u64> {
    let (lake, layout) = (&table.lake, &table.layout);
    let writer_cfg = &table.cfg.writer;
    let ttl = (writer_cfg.max_age.as_secs() * 3).max(30);
    let mut lease = WriterLease::new(ttl, lake.clock.now());
    lease.refresh(lake, layout, target.version).await?;
    let mut target_log = CommitLog::open(lake, layout, target.version).await?;
    let mut live = lease::live_writers(lake, layout, target.version).await?;
    live.remove(&lease.writer);
    if let Some(other) = live.iter().next() {
        // Another compaction is seeding it: two would write twice.
        return Err(Error::Conflict {
            path: layout.writers_dir(target.version),
            reason: format!(
                "writer {other} is compacting v{} into v{} already; wait for it (or for its lease to expire)",
                source.version, target.version
            ),
        });
    }
    live.insert(lease.writer.clone());
    let removed = target_log.remove_uncommitted(&live).await?;
    if removed > 0 {
        tracing::info!(table = %table.cfg.name, version = target.version, removed, "removed the files of an interrupted compaction");
    }
    let event_schema = source.definition.event_schema()?.arrow;
    let schema = Shaper::new(&event_schema, &source.definition)?
        .output_schema()
        .clone();
    let granularity = source.definition.partitioning.granularity;
    let (from_dir, to_dir) = (
        layout.version_dir(source.version),
        layout.version_dir(target.version),
    );
    let mut writer = PartitionedWriter::new(
        lake.clone(),
        to_dir.clone(),
        schema.clone(),
        writer_cfg.clone(),
        granularity,
        &lease.writer,
    )?;
    let under = |dir: &Path, rel: &str| rel.split('/').fold(dir.clone(), |p, s| p.join(s));
    let mut files = Vec::new();
    let mut rows_rewritten = 0;
    for p in partitions {
        for f in &p.kept {
            let (from, to) = (under(&from_dir, &f.path), under(&to_dir, &f.path));
            lake.store
                .copy(&from, &to)
                .await
                .map_err(|e| Error::storage(&from, e))?;
            files.push(f.clone());
        }
        let Some(bucket) = p.bucket else { continue };
        for bin in &p.bins {
            let mut batches = Vec::new();
            for f in bin {
                let path = under(&from_dir, &f.path);
                let bytes = lake.read_all(&path).await?;
                let corrupt = |e: parquet::errors::ParquetError| Error::Corrupt {
                    path: path.clone(),
                    source: e.into(),
                };
                for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .and_then(|b| b.build())
                    .map_err(corrupt)?
                {
                    let batch = batch.map_err(|e| Error::Corrupt {
                        path: path.clone(),
                        source: e.into(),
                    })?;
                    batches.push(conform(&batch, &schema).map_err(|e| Error::Corrupt {
                        path: path.clone(),
                        source: e.into(),
                    })?);
                }
            }
            let batch = sorted(&schema, &batches, source).map_err(|e| Error::Write {
                path: to_dir.clone(),
                source: e.into(),
            })?;
            drop(batches);
            let rows_in: u64 = bin.iter().map(|f| f.rows).sum();
            if batch.num_rows() as u64 != rows_in {
                return Err(Error::Corrupt {
                    path: from_dir.clone(),
                    source: format!(
                        "partition {}: the log says its files hold {rows_in} rows, they hold {}",
                        p.name,
                        batch.num_rows()
                    )
                    .into(),
                });
            }
            writer
                .write(&batch, &vec![bucket; batch.num_rows()])
                .await?;
            let written = writer.finish().await?;
            rows_rewritten += written.iter().map(|f| f.rows).sum::<u64>();
            files.extend(written);
            lease.refresh(lake, layout, target.version).await?;
        }
    }
    let state = log.state();
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    if rows != state.rows {
        return Err(Error::Corrupt {
            path: to_dir,
            source: format!(
                "compacting v{} into v{}: {} rows written for {} committed; nothing committed",
                source.version, target.version, rows, state.rows
            )
            .into(),
        });
    }
    // The dead letters stay with the records they belong to.
    let (from_dl, to_dl) = (
        layout.dead_letter_dir(source.version),
        layout.dead_letter_dir(target.version),
    );
    let mut dead_letters = Vec::new();
    for d in records.iter().flat_map(|r| &r.dead_letters) {
        let (from, to) = (under(&from_dl, &d.path), under(&to_dl, &d.path));
        lake.store
            .copy(&from, &to)
            .await
            .map_err(|e| Error::storage(&from, e))?;
        dead_letters.push(d.clone());
    }
    // Every partition's range, from the first offset the version read to where it stands.
    let mut starts: HashMap<&str, u64> = HashMap::new();
    for (key, r) in records.iter().flat_map(|r| &r.ranges) {
        let start = starts.entry(key.as_str()).or_insert(r.start);
        *start = (*start).min(r.start);
    }
    let ranges = state
        .positions
        .iter()
        .map(|(key, pos)| {
            let range = OffsetRange {
                start: starts.get(key.as_str()).copied().unwrap_or(pos.offset),
                end: pos.offset,
                end_byte: pos.end_byte,
                eof: pos.eof,
            };
            (key.clone(), range)
        })
        .collect();
    target_log
        .commit(PendingCommit {
            files,
            dead_letters,
            ranges,
            ..PendingCommit::default()
        })
        .await?;
    tracing::info!(table = %table.cfg.name, from = source.version, to = target.version, rows, rows_rewritten, "compacted files committed to the new version");
    lease.state = WriterState::Stopped;
    if let Err(e) = lease.refresh(lake, layout, target.version).await {
        tracing::warn!(error = %e, "could not mark the compaction's writer lease stopped");
    }
    Ok(rows_rewritten)
}

/// The rows of `batches` in one batch, sorted by event time as the version defines it.
fn sorted(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    source: &VersionDefinition,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let batch = arrow::compute::concat_batches(schema, batches)?;
    let times =
        (source.definition.partitioning.time.as_ref()).and_then(|time| event_times(&batch, time));
    match times {
        Some(times) => {
            let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
            order.sort_by_key(|&i| times[i as usize]);
            arrow::compute::take_record_batch(&batch, &UInt32Array::from(order))
        }
        None => Ok(batch),
    }
}
