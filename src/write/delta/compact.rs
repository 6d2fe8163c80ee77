//! Compaction of a Delta version: per time partition, the small files of the current snapshot
//! are bin-packed, each bin is rewritten into files of about `target_file_size` (rows sorted by
//! event time, so readers get tight min/max statistics; zstd; the same schema and metadata
//! columns), and one transaction per batch of bins removes their files and adds the new ones,
//! with `dataChange = false` (an `OPTIMIZE` in the table's history). Few transactions keep the
//! log short: a reader replays every commit since the last checkpoint.
//!
//! delta-rs's own `optimize` needs its `datafusion` feature (all of DataFusion's execution
//! engine in our build); this uses the writer the ingest uses instead, so the new files look
//! exactly like the ingest's, statistics included.
//!
//! Invariant: a reader sees a bin's old files or its new ones, never both or neither; no
//! `txn` (stored offsets) is touched; rows in equal rows out, checked before the commit. The
//! live writer's appends do not conflict with a compaction (delta-rs rebases either over the
//! other); a compaction whose files another compaction removed first commits nothing and
//! deletes what it wrote.

use std::collections::{BTreeMap, HashMap};

use arrow::array::UInt32Array;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Remove};
use deltalake::protocol::DeltaOperation;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use super::{COMMIT_ATTEMPTS, DeltaLog, delta_err};
use crate::config::Granularity;
use crate::domain::KEY_BUCKET_COLUMN;
use crate::error::{Error, Missing, Result};
use crate::failpoints::crash_point;
use crate::write::DeltaFileWriter;

/// What counts as small, and how much one rewrite may read.
#[derive(Debug, Clone, Copy)]
pub struct CompactionLimits {
    /// The size new files roll at (`writer.target_file_size`); files of at least 3/4 of it
    /// are left alone.
    pub target_file_size: u64,
    /// The most compressed input bytes one bin reads (its rows are sorted in memory).
    pub max_bin_bytes: u64,
    /// A partition is compacted only when it has at least this many small files.
    pub min_files: usize,
}

/// A data file of the snapshot that compaction would rewrite.
#[derive(Debug, Clone)]
pub struct SmallFile {
    /// Path relative to the table directory.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Rows (from the `add` action's statistics).
    pub rows: Option<u64>,
    remove: Remove,
}

/// Files rewritten together into new files.
#[derive(Debug, Clone, Serialize)]
pub struct Bin {
    /// The files.
    #[serde(skip)]
    pub files: Vec<SmallFile>,
    /// How many.
    pub inputs: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// The plan for one time partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionPlan {
    /// `date=2026-11-26/hour=5`.
    pub partition: String,
    /// The time bucket (days or hours since the epoch).
    #[serde(skip)]
    pub bucket: i64,
    /// Data files the partition has now.
    pub files: usize,
    /// When its newest file was added (ms since the epoch, the log's `modificationTime`).
    #[serde(skip)]
    pub last_added_ms: i64,
    /// What to rewrite.
    pub bins: Vec<Bin>,
}

/// What became of one bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOutcome {
    /// Committed: this many files replaced the bin's.
    Compacted {
        /// New files.
        files: usize,
        /// Their bytes.
        bytes: u64,
        /// Rows moved.
        rows: u64,
    },
    /// Another compaction removed one of the bin's files first; nothing was committed and
    /// the new files were deleted.
    Superseded,
}

/// A bin rewritten into new files that no commit lists yet.
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// The partition's name.
    pub partition: String,
    removed: Vec<Remove>,
    adds: Vec<deltalake::kernel::Add>,
    /// What committing it achieves.
    pub outcome: BinOutcome,
}

impl Rewritten {
    /// Makes this rewrite conflict with an upsert commit that removes one of the same files,
    /// whichever of the two commits second. delta-rs lets a `remove` that changes no data (a
    /// compaction's, by default) pass a later commit that removes the same file, so an upsert
    /// committed after this rewrite would leave the old rows of its keys alive in the new
    /// files; as data changes, the two removes conflict. (An upsert's `MERGE` without a
    /// predicate also conflicts with any commit that added files since its snapshot, which
    /// covers this today; this keeps it covered should that read ever narrow: with the read
    /// narrowed by hand, `tests/it/cdc.rs`'s compaction race saw old rows come back without
    /// this, and none with it.)
    pub fn conflict_with_upserts(&mut self) {
        for r in &mut self.removed {
            r.data_change = true;
        }
    }
}

/// Orders a bin's rows: event time per row (µs), or `None` to keep them as they are.
pub type SortKey<'a> = &'a (dyn Fn(&RecordBatch) -> Option<Vec<i64>> + Sync);

impl DeltaLog {
    /// The partitions worth compacting now, and their bins. `only` keeps partitions equal to
    /// it or under it (`date=2026-11-26` takes every hour of that day).
    pub fn plan_compaction(
        &self,
        limits: &CompactionLimits,
        granularity: Granularity,
        only: Option<&str>,
    ) -> Result<Vec<PartitionPlan>> {
        let Some(table) = &self.table else {
            return Ok(Vec::new());
        };
        let snapshot = table.snapshot().map_err(|e| delta_err(&self.dir, e))?;
        let small_below = limits.target_file_size / 4 * 3;
        // Partition → (bucket, files in it, newest file's time, its small files).
        let mut parts: BTreeMap<String, (i64, usize, i64, Vec<SmallFile>)> = BTreeMap::new();
        for file in snapshot.log_data().iter() {
            let values = file.partition_values_map();
            let Some(bucket) = bucket_of(&values, granularity) else {
                tracing::warn!(path = %file.path(), "a file without valid partition values is not compacted");
                continue;
            };
            let name = partition_name(&values, granularity);
            if only.is_some_and(|o| name != o && !name.starts_with(&format!("{o}/"))) {
                continue;
            }
            let entry = parts
                .entry(name)
                .or_insert((bucket, 0, i64::MIN, Vec::new()));
            entry.1 += 1;
            entry.2 = entry.2.max(file.modification_time());
            let size = u64::try_from(file.size()).unwrap_or_default();
            if size < small_below && file.deletion_vector_descriptor().is_none() {
                entry.3.push(SmallFile {
                    path: file.path().into_owned(),
                    size,
                    rows: file.num_records().map(|n| n as u64),
                    remove: file.remove_action(false),
                });
            }
        }
        let cap = limits.target_file_size.min(limits.max_bin_bytes).max(1);
        let mut plans = Vec::new();
        for (partition, (bucket, files, last_added_ms, small)) in parts {
            if small.len() < limits.min_files.max(2) {
                continue;
            }
            let bins: Vec<Bin> = pack(small, cap)
                .into_iter()
                .filter(|b| b.len() >= 2)
                .map(|files| Bin {
                    inputs: files.len(),
                    bytes: files.iter().map(|f| f.size).sum(),
                    files,
                })
                .collect();
            if !bins.is_empty() {
                plans.push(PartitionPlan {
                    partition,
                    bucket,
                    files,
                    last_added_ms,
                    bins,
                });
            }
        }
        Ok(plans)
    }

    /// Rewrites `bin` of `partition` with `writer` into new files, not yet committed: what
    /// [`DeltaLog::commit_compaction`] swaps in.
    pub async fn rewrite_bin(
        &self,
        partition: &PartitionPlan,
        bin: &Bin,
        writer: &mut DeltaFileWriter,
        sort_key: SortKey<'_>,
    ) -> Result<Rewritten> {
        let mut batches = Vec::new();
        for f in &bin.files {
            let path = f.path.split('/').fold(self.dir.clone(), |p, s| p.join(s));
            let bytes = self.lake.read_all(&path).await?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .and_then(|b| b.build())
                .map_err(|e| delta_err(&path, e))?;
            for batch in reader {
                batches.push(writer.conform(&batch.map_err(|e| delta_err(&path, e))?)?);
            }
        }
        let rows_in: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if let Some(expected) = bin.files.iter().map(|f| f.rows).sum::<Option<u64>>()
            && expected != rows_in as u64
        {
            return Err(Error::Corrupt {
                path: self.dir.clone(),
                source: format!(
                    "partition {}: the log says its files hold {expected} rows, they hold {rows_in}",
                    partition.partition
                )
                .into(),
            });
        }
        let schema = writer.row_schema().clone();
        let batch = arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| delta_err(&self.dir, e))?;
        drop(batches);
        let batch = match sort_key(&batch) {
            Some(times) => {
                let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
                order.sort_by_key(|&i| times[i as usize]);
                arrow::compute::take_record_batch(&batch, &UInt32Array::from(order))
                    .map_err(|e| delta_err(&self.dir, e))?
            }
            None => batch,
        };
        writer
            .write(&batch, &vec![partition.bucket; batch.num_rows()])
            .await?;
        drop(batch);
        let (mut adds, entries) = writer.finish().await?;
        let rows_out: u64 = entries.iter().map(|e| e.rows).sum();
        if rows_out != rows_in as u64 {
            self.delete_written(&adds).await?;
            return Err(Error::Corrupt {
                path: self.dir.clone(),
                source: format!(
                    "partition {}: rewriting {rows_in} rows wrote {rows_out}; nothing committed",
                    partition.partition
                )
                .into(),
            });
        }
        for a in &mut adds {
            a.data_change = false;
        }
        Ok(Rewritten {
            partition: partition.partition.clone(),
            removed: bin.files.iter().map(|f| f.remove.clone()).collect(),
            outcome: BinOutcome::Compacted {
                files: adds.len(),
                bytes: entries.iter().map(|e| e.size).sum(),
                rows: rows_out,
            },
            adds,
        })
    }

    /// Swaps rewritten bins in with one transaction: their files removed, the new ones added.
    /// A bin one of whose files another compaction removed first is dropped (its new files
    /// deleted, [`BinOutcome::Superseded`]) and the rest committed. Outcomes in `bins`' order.
    pub async fn commit_compaction(
        &mut self,
        mut bins: Vec<Rewritten>,
        target_file_size: u64,
    ) -> Result<Vec<BinOutcome>> {
        let mut outcomes: Vec<Option<BinOutcome>> = vec![None; bins.len()];
        let mut pending: Vec<usize> = (0..bins.len()).collect();
        let now = self.lake.clock.now().timestamp_millis();
        for bin in &mut bins {
            for r in &mut bin.removed {
                r.deletion_timestamp = Some(now);
            }
        }
        let mut partitions: Vec<&str> = bins.iter().map(|b| b.partition.as_str()).collect();
        partitions.dedup();
        let predicate = partitions.join(" OR ");
        crash_point!("compact.before_commit");
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let Some(table) = &mut self.table else {
                return Err(Missing::DeltaTable {
                    version: self.version,
                }
                .into());
            };
            let actions: Vec<Action> = pending
                .iter()
                .flat_map(|&i| {
                    let b = &bins[i];
                    b.removed
                        .iter()
                        .cloned()
                        .map(Action::Remove)
                        .chain(b.adds.iter().cloned().map(Action::Add))
                })
                .collect();
            let snapshot = table.snapshot().map_err(|e| delta_err(&self.dir, e))?;
            let operation = DeltaOperation::Optimize {
                predicate: Some(predicate.clone()),
                target_size: i64::try_from(target_file_size).unwrap_or(i64::MAX),
            };
            let result = CommitBuilder::from(super::transaction::commit_properties(snapshot))
                .with_actions(actions)
                .build(Some(snapshot), table.log_store(), operation)
                .await;
            let error = match result {
                Ok(done) => {
                    crash_point!("compact.after_commit");
                    table.state = Some(done.snapshot());
                    self.read_state(false).await?;
                    for &i in &pending {
                        outcomes[i] = Some(bins[i].outcome);
                    }
                    break;
                }
                Err(e) => e,
            };
            // Decide from the log, not from the error.
            self.refresh().await?;
            let committed = pending.iter().any(|&i| {
                bins[i]
                    .adds
                    .first()
                    .is_some_and(|a| self.state.files.contains(&a.path))
            });
            if committed {
                for &i in &pending {
                    outcomes[i] = Some(bins[i].outcome);
                }
                break;
            }
            let mut still = Vec::new();
            for i in pending {
                let b = &bins[i];
                if b.removed
                    .iter()
                    .any(|r| !self.state.files.contains(&r.path))
                {
                    tracing::info!(partition = %b.partition, error = %error, "another commit (a compaction, an upsert) replaced these files first; dropping this rewrite");
                    self.delete_written(&b.adds).await?;
                    outcomes[i] = Some(BinOutcome::Superseded);
                } else {
                    still.push(i);
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if attempt >= COMMIT_ATTEMPTS {
                for &i in &pending {
                    self.delete_written(&bins[i].adds).await?;
                }
                return Err(delta_err(&self.dir, error));
            }
            tracing::warn!(attempt, error = %error, "compaction commit failed; the log does not hold it, retrying");
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(BinOutcome::Superseded))
            .collect())
    }

    /// Deletes data files written but not committed.
    async fn delete_written(&self, adds: &[deltalake::kernel::Add]) -> Result<()> {
        for a in adds {
            let path = a.path.split('/').fold(self.dir.clone(), |p, s| p.join(s));
            self.lake.delete_if_exists(&path).await?;
        }
        Ok(())
    }
}

/// First-fit decreasing: bins of at most `cap` bytes (a file larger than `cap` alone).
fn pack(mut files: Vec<SmallFile>, cap: u64) -> Vec<Vec<SmallFile>> {
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let mut bins: Vec<(u64, Vec<SmallFile>)> = Vec::new();
    for f in files {
        match bins.iter_mut().find(|(used, _)| used + f.size <= cap) {
            Some((used, bin)) => {
                *used += f.size;
                bin.push(f);
            }
            None => bins.push((f.size, vec![f])),
        }
    }
    bins.into_iter()
        .map(|(_, mut b)| {
            b.sort_by(|x, y| x.path.cmp(&y.path));
            b
        })
        .collect()
}

/// The bucket of a file's partition values (`date` = `2026-11-26`, `hour` = `5`;
/// `key_bucket` = `7`; none, bucket 0, when unpartitioned).
pub fn bucket_of(
    values: &HashMap<String, Option<String>>,
    granularity: Granularity,
) -> Option<i64> {
    match granularity {
        Granularity::KeyBuckets(n) => {
            let b: i64 = values.get(KEY_BUCKET_COLUMN)?.as_deref()?.parse().ok()?;
            return (0..i64::from(n)).contains(&b).then_some(b);
        }
        Granularity::Unpartitioned => return Some(0),
        Granularity::Day | Granularity::Hour => {}
    }
    let date = values.get("date")?.as_deref()?;
    let days = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()?
        .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?)
        .num_days();
    match granularity {
        Granularity::Hour => {
            let hour: i64 = values.get("hour")?.as_deref()?.parse().ok()?;
            (0..24).contains(&hour).then_some(days * 24 + hour)
        }
        _ => Some(days),
    }
}

/// `date=2026-11-26/hour=5`, in path order (`key_bucket=7`; empty when unpartitioned).
fn partition_name(values: &HashMap<String, Option<String>>, granularity: Granularity) -> String {
    let get = |k: &str| values.get(k).cloned().flatten().unwrap_or_default();
    match granularity {
        Granularity::Day => format!("date={}", get("date")),
        Granularity::Hour => format!("date={}/hour={}", get("date"), get("hour")),
        Granularity::KeyBuckets(_) => format!("{KEY_BUCKET_COLUMN}={}", get(KEY_BUCKET_COLUMN)),
        Granularity::Unpartitioned => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::partition_strings;
    use super::*;

    #[test]
    fn a_bucket_reads_back_from_its_partition_values() {
        for granularity in [
            Granularity::Day,
            Granularity::Hour,
            Granularity::KeyBuckets(500_000),
        ] {
            for bucket in [0, 1, 23, 24, 490_000, 20_418 * 24 + 5] {
                let values: HashMap<String, Option<String>> =
                    partition_strings(bucket, granularity)
                        .into_iter()
                        .map(|(k, v)| (k, Some(v)))
                        .collect();
                assert_eq!(bucket_of(&values, granularity), Some(bucket), "{values:?}");
            }
        }
        let bad = HashMap::from([("date".to_string(), Some("yesterday".to_string()))]);
        assert_eq!(bucket_of(&bad, Granularity::Day), None);
    }

    fn file(path: &str, size: u64) -> SmallFile {
        SmallFile {
            path: path.into(),
            size,
            rows: None,
            remove: Remove {
                path: path.into(),
                data_change: false,
                deletion_timestamp: None,
                extended_file_metadata: None,
                partition_values: None,
                size: None,
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
            },
        }
    }

    #[test]
    fn packing_fills_bins_up_to_the_cap_and_keeps_every_file_once() {
        let files: Vec<_> = (0..10).map(|i| file(&format!("f{i}"), 30 + i)).collect();
        let bins = pack(files, 100);
        let mut seen: Vec<_> = bins.iter().flatten().map(|f| f.path.clone()).collect();
        seen.sort();
        assert_eq!(seen.len(), 10);
        seen.dedup();
        assert_eq!(seen.len(), 10, "no file in two bins");
        for b in &bins {
            assert!(b.iter().map(|f| f.size).sum::<u64>() <= 100, "{b:?}");
        }
        assert_eq!(
            bins.len(),
            4,
            "345 bytes in bins of 100: the fewest possible"
        );
    }
}
