//! A raw archive table (`encoding = "raw"`) read back as the Kafka records it keeps: what a
//! rebuild replays before it reads the topic (`[table.source] archive`), so its input is the
//! whole history even where the topic's retention has dropped it.
//!
//! Reading plans from an index of the archive's committed files: per Kafka partition, the
//! offset span each file holds, taken from the files' `_kafka_partition`/`_kafka_offset`
//! columns alone (read in parallel, a few files at a time). The plan is a sequence of steps,
//! each a few files read once for every partition: files whose spans overlap in a partition
//! (its records spread over several day partitions) are read in one step and sorted, and the
//! steps are ordered so that every partition's offsets increase from step to step. A step's
//! files are decoded on the blocking pool, and rows become records without copying their
//! bytes (slices of the Arrow buffers). A file whose rows are in offset order in every
//! partition (as `run` writes them; the index notes which) is read as a stream, a Parquet
//! batch at a time, so neither memory nor the first record waits for a whole file.
//!
//! Invariant: per Kafka partition, the pieces [`ArchiveFiles::read_steps`] sends for the
//! steps of [`ArchiveReader::steps`] hold the archive's committed records in the ranges asked
//! for, in strictly increasing offset order, each once, and only below the offset the archive's
//! commits store for that partition: exactly the records the archive holds as the topic held
//! them (key, value and its null-ness, headers, timestamp and its type).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use bytes::Bytes;
use futures::future::try_join_all;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::domain::Encoding;
use crate::error::{BoxError, ContextError, Error, Result};
use crate::pipeline::handle::TableHandle;
use crate::pipeline::shape::{KAFKA_OFFSET_COLUMN, KAFKA_PARTITION_COLUMN};
use crate::source::{Record, kafka_partition_key};
use crate::storage::Lake;
use crate::table::{TableLayout, pointer, version};
use crate::write::VersionLog;

mod columns;
mod order;
#[cfg(test)]
mod tests;

use columns::Columns;
use order::Sets;

/// Files read at once, when indexing and within a step.
const PARALLEL_READS: usize = 4;

/// Rows per decoded Parquet batch (a piece of a file read as a stream).
const PARQUET_BATCH_ROWS: usize = 8192;

/// Records per Kafka partition, in offset order.
pub type Piece = BTreeMap<i32, Vec<Record>>;

/// The offsets of one Kafka partition that one archive file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    file: String,
    first: u64,
    last: u64,
}

/// What the index knows of one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileIndex {
    /// Per Kafka partition, its first and last offset in the file.
    spans: BTreeMap<i32, (u64, u64)>,
    /// Whether every partition's offsets increase row after row.
    in_order: bool,
}

/// The index as it is kept beside the archive version (`_kappa_archive/index.json`): files
/// never change once committed, so what was read of one holds for good.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedIndex {
    files: BTreeMap<String, FileIndex>,
}

/// The current version of a raw archive table, indexed for replay.
#[derive(Debug)]
pub struct ArchiveReader {
    files: ArchiveFiles,
    /// The archive table's name.
    name: String,
    /// Per committed file, what the index knows of it; and whether that differs from the
    /// saved index.
    index: BTreeMap<String, FileIndex>,
    index_changed: bool,
    /// Per Kafka partition, the next offset the archive's commits store.
    ends: BTreeMap<i32, u64>,
    /// Per Kafka partition, its spans by first offset.
    spans: BTreeMap<i32, Vec<Span>>,
}

impl ArchiveReader {
    /// The current version of archive table `archive` (a raw table of `topic`), indexed;
    /// `None` when it has no current version yet.
    pub async fn open(archive: &TableHandle, topic: &str) -> Result<Option<ArchiveReader>> {
        let (lake, layout) = (&archive.lake, &archive.layout);
        let Some(current) = pointer::read(lake, layout).await? else {
            return Ok(None);
        };
        let v = current.version;
        let def = version::load(lake, layout, v)
            .await?
            .ok_or_else(|| corrupt(layout, v, "the current version has no definition"))?;
        if def.definition.source.encoding() != Some(Encoding::Raw) {
            return Err(corrupt(
                layout,
                v,
                "the archive's current version is not a raw table (encoding = \"raw\")",
            ));
        }
        let log = VersionLog::read(lake, layout, v, def.definition.format).await?;
        let prefix = format!("{topic}/");
        let ends = log
            .state()
            .offsets()
            .into_iter()
            .filter_map(|(key, next)| {
                let p = key.strip_prefix(&prefix)?.parse::<i32>().ok()?;
                Some((p, next))
            })
            .collect();
        let mut files: Vec<String> = log.state().files.iter().cloned().collect();
        files.sort();
        let mut reader = ArchiveReader {
            files: ArchiveFiles {
                lake: lake.clone(),
                layout: layout.clone(),
                version: v,
                topic: topic.to_string(),
                in_order: Arc::default(),
            },
            name: archive.cfg.name.clone(),
            index: BTreeMap::new(),
            index_changed: false,
            ends,
            spans: BTreeMap::new(),
        };
        // The saved index's entries of committed files, and the files it does not have yet.
        let mut saved = reader.files.saved_index().await.files;
        let saved_count = saved.len();
        let missing: Vec<&String> = files.iter().filter(|f| !saved.contains_key(*f)).collect();
        for chunk in missing.chunks(PARALLEL_READS) {
            let read = try_join_all(chunk.iter().map(|f| reader.files.index_file(f))).await?;
            for (f, index) in chunk.iter().zip(read) {
                reader.index.insert((*f).clone(), index);
            }
        }
        for f in &files {
            if let Some(index) = saved.remove(f) {
                reader.index.insert(f.clone(), index);
            }
        }
        reader.index_changed = !missing.is_empty() || saved_count != files.len();
        let in_order: BTreeSet<String> = reader
            .index
            .iter()
            .filter(|(_, index)| index.in_order)
            .map(|(f, _)| f.clone())
            .collect();
        reader.files.in_order = Arc::new(in_order);
        for (file, index) in &reader.index {
            for (&p, &(first, last)) in &index.spans {
                reader.spans.entry(p).or_default().push(Span {
                    file: file.clone(),
                    first,
                    last,
                });
            }
        }
        for spans in reader.spans.values_mut() {
            spans.sort_by_key(|s| (s.first, s.last));
        }
        tracing::info!(
            archive = %reader.name, version = v, files = files.len(), read = missing.len(),
            partitions = reader.ends.len(), "archive indexed"
        );
        Ok(Some(reader))
    }

    /// Saves the index beside the archive version when it read files the saved one lacked
    /// (or lists files no longer committed), so the next reader reads only newer files. A
    /// rebuild does this; `status` and `plan` only read it.
    pub async fn save_index(&self) -> Result<()> {
        if !self.index_changed {
            return Ok(());
        }
        let saved = SavedIndex {
            files: self.index.clone(),
        };
        self.files
            .lake
            .put_json(&self.files.index_path(), &saved)
            .await
    }

    /// The archive's topic.
    pub fn topic(&self) -> &str {
        &self.files.topic
    }

    /// The position key of `partition` of the topic (`topic/partition`).
    pub fn key(&self, partition: i32) -> Arc<str> {
        self.files.key(partition)
    }

    /// `<archive table> v<N>`, for messages.
    pub fn label(&self) -> String {
        format!("{} v{}", self.name, self.files.version)
    }

    /// The Kafka partitions the archive has stored offsets for.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.ends.keys().copied()
    }

    /// The next offset of `partition` the archive's commits store (0 when none).
    pub fn end(&self, partition: i32) -> u64 {
        self.ends.get(&partition).copied().unwrap_or(0)
    }

    /// The first offset at or after `from` the archive holds of `partition` (`from` itself
    /// when a file's span covers it), if any.
    pub fn first_offset(&self, partition: i32, from: u64) -> Option<u64> {
        self.spans
            .get(&partition)?
            .iter()
            .filter(|s| s.last >= from)
            .map(|s| s.first.max(from))
            .min()
    }

    /// The files holding records of `partition` in `[from, to)`, grouped into clusters whose
    /// offset spans overlap, in offset order.
    fn clusters(&self, partition: i32, from: u64, to: u64) -> Vec<Vec<&str>> {
        let mut out: Vec<(u64, Vec<&str>)> = Vec::new();
        let spans = self.spans.get(&partition).map(Vec::as_slice).unwrap_or(&[]);
        for s in spans.iter().filter(|s| s.last >= from && s.first < to) {
            match out.last_mut() {
                Some((last, files)) if s.first <= *last => {
                    *last = (*last).max(s.last);
                    files.push(&s.file);
                }
                _ => out.push((s.last, vec![&s.file])),
            }
        }
        out.into_iter().map(|(_, files)| files).collect()
    }

    /// How to read `ranges` (per Kafka partition, `[from, to)`): steps of files read together,
    /// each file in one step only, so every file is read once for all partitions. A step holds
    /// the files whose offset spans overlap in some partition (they must be sorted together)
    /// and, rarely, files that follow each other in different orders in two partitions; the
    /// steps are in an order that keeps every partition's offsets increasing from step to
    /// step.
    pub fn steps(&self, ranges: &BTreeMap<i32, (u64, u64)>) -> Vec<Vec<String>> {
        let mut files: Vec<&str> = Vec::new();
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        let mut sets = Sets::default();
        // Per partition, its clusters in offset order, each by one of its files.
        let mut sequences: Vec<Vec<usize>> = Vec::new();
        for (&p, &(from, to)) in ranges {
            let mut sequence = Vec::new();
            for cluster in self.clusters(p, from, to) {
                let ids: Vec<usize> = cluster
                    .into_iter()
                    .map(|f| {
                        *index.entry(f).or_insert_with(|| {
                            files.push(f);
                            sets.add()
                        })
                    })
                    .collect();
                for &id in &ids[1..] {
                    sets.union(ids[0], id);
                }
                sequence.push(ids[0]);
            }
            sequences.push(sequence);
        }
        let order = loop {
            match sets.order(&sequences) {
                Ok(order) => break order,
                // Files in one partition's order and another's reversed: read together.
                Err(cycle) => {
                    for pair in cycle.windows(2) {
                        sets.union(pair[0], pair[1]);
                    }
                }
            }
        };
        let mut steps: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (id, file) in files.iter().enumerate() {
            steps
                .entry(sets.find(id))
                .or_default()
                .push(file.to_string());
        }
        order
            .into_iter()
            .filter_map(|root| steps.remove(&root))
            .collect()
    }

    /// What reads the archive's files, apart from its index (for a task of its own).
    pub fn files(&self) -> ArchiveFiles {
        self.files.clone()
    }
}

/// Reads an archive version's files (cheap to clone, for a task of its own).
#[derive(Debug, Clone)]
pub struct ArchiveFiles {
    lake: Lake,
    layout: TableLayout,
    version: u32,
    topic: String,
    /// The files whose rows are in offset order in every partition (as `run` writes them):
    /// read as a stream, a Parquet batch at a time.
    in_order: Arc<BTreeSet<String>>,
}

impl ArchiveFiles {
    /// Where the index of the archive version is kept.
    fn index_path(&self) -> object_store::path::Path {
        self.layout.archive_index(self.version)
    }

    /// The saved index; empty when there is none or it cannot be read (it is only a cache:
    /// the files are indexed again).
    async fn saved_index(&self) -> SavedIndex {
        let path = self.index_path();
        let bytes = match self.lake.read_all(&path).await {
            Ok(bytes) => bytes,
            Err(Error::Storage {
                source: object_store::Error::NotFound { .. },
                ..
            }) => {
                return SavedIndex::default();
            }
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "cannot read the archive's saved index; indexing its files again");
                return SavedIndex::default();
            }
        };
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path, error = %e, "the archive's saved index does not parse; indexing its files again");
            SavedIndex::default()
        })
    }

    /// The position key of `partition` of the topic (`topic/partition`).
    pub fn key(&self, partition: i32) -> Arc<str> {
        kafka_partition_key(&self.topic, partition).into()
    }

    /// The archive version's directory, for errors.
    pub fn dir(&self) -> object_store::path::Path {
        self.layout.version_dir(self.version)
    }

    /// The records of one step of [`ArchiveReader::steps`] that fall in `ranges` (per Kafka
    /// partition, `[from, to)`), per partition in offset order; the files are read in
    /// parallel and decoded on the blocking pool.
    async fn read_step(
        &self,
        files: &[String],
        ranges: Arc<BTreeMap<i32, (u64, u64)>>,
    ) -> Result<BTreeMap<i32, Vec<Record>>> {
        let mut out: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for chunk in files.chunks(PARALLEL_READS) {
            let read = try_join_all(chunk.iter().map(|f| self.read_file(f, ranges.clone())));
            for per_partition in read.await? {
                for (p, records) in per_partition {
                    out.entry(p).or_default().extend(records);
                }
            }
        }
        for (p, records) in &mut out {
            if files.len() > 1 {
                records.sort_unstable_by_key(|r| r.offset);
            }
            if let Some(w) = records.windows(2).find(|w| w[0].offset == w[1].offset) {
                return Err(Error::Corrupt {
                    path: self.layout.version_dir(self.version),
                    source: format!(
                        "the archive holds offset {} of {} twice",
                        w[0].offset,
                        kafka_partition_key(&self.topic, *p)
                    )
                    .into(),
                });
            }
        }
        Ok(out)
    }

    /// Per Kafka partition, the first and last offset in `file`; and whether every
    /// partition's offsets increase row after row.
    async fn index_file(&self, file: &str) -> Result<FileIndex> {
        let mut out: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
        let mut last_of: BTreeMap<i32, u64> = BTreeMap::new();
        let mut in_order = true;
        for batch in self
            .batches(file, &[KAFKA_PARTITION_COLUMN, KAFKA_OFFSET_COLUMN])
            .await?
        {
            let (parts, offsets) = self.coordinates(file, &batch)?;
            for i in 0..batch.num_rows() {
                let (p, o) = (parts.value(i), offset_of(offsets.value(i)));
                if last_of.insert(p, o).is_some_and(|before| before >= o) {
                    in_order = false;
                }
                out.entry(p)
                    .and_modify(|(first, last)| {
                        *first = (*first).min(o);
                        *last = (*last).max(o);
                    })
                    .or_insert((o, o));
            }
        }
        Ok(FileIndex {
            spans: out,
            in_order,
        })
    }

    /// Reads `steps` (of [`ArchiveReader::steps`]) in order and sends their records in
    /// `ranges` as pieces (per partition, in offset order, each partition's offsets increasing
    /// from piece to piece): a file in offset order as it is decoded, a Parquet batch at a
    /// time; a step that must be sorted as a whole. Ends when the receiver is gone.
    pub async fn read_steps(
        self,
        steps: Vec<Vec<String>>,
        ranges: Arc<BTreeMap<i32, (u64, u64)>>,
        tx: mpsc::Sender<Result<Piece>>,
    ) -> Result<()> {
        for step in steps {
            let open = match step.as_slice() {
                [file] if self.in_order.contains(file) => file,
                _ => {
                    let piece = self.read_step(&step, ranges.clone()).await?;
                    if tx.send(Ok(piece)).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            let bytes = self.lake.read_all(&self.path(open)).await?;
            let (this, file, ranges, tx) = (self.clone(), open.clone(), ranges.clone(), tx.clone());
            let sent = tokio::task::spawn_blocking(move || {
                for batch in this.reader(&file, bytes, &[])? {
                    let batch = batch.map_err(|e| this.read_err(&file, e))?;
                    let piece = this.records(&file, &batch, &ranges)?;
                    if tx.blocking_send(Ok(piece)).is_err() {
                        return Ok(false);
                    }
                }
                Ok::<_, Error>(true)
            })
            .await
            .map_err(|source| Error::Task {
                task: "reading the raw archive",
                source,
            })??;
            if !sent {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The records of `batch` (of `file`) in `ranges`, per partition, in the batch's order.
    fn records(
        &self,
        file: &str,
        batch: &RecordBatch,
        ranges: &BTreeMap<i32, (u64, u64)>,
    ) -> Result<Piece> {
        let mut out: Piece = BTreeMap::new();
        let (parts, offsets) = self.coordinates(file, batch)?;
        let cols = Columns::of(batch).map_err(|e| self.read_err(file, e))?;
        for i in 0..batch.num_rows() {
            let (p, offset) = (parts.value(i), offset_of(offsets.value(i)));
            match ranges.get(&p) {
                Some(&(from, to)) if offset >= from && offset < to => {
                    out.entry(p).or_default().push(cols.record(i, offset));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The records of `file` in `ranges`, per partition, in offset order.
    async fn read_file(
        &self,
        file: &str,
        ranges: Arc<BTreeMap<i32, (u64, u64)>>,
    ) -> Result<BTreeMap<i32, Vec<Record>>> {
        let bytes = self.lake.read_all(&self.path(file)).await?;
        let this = self.clone();
        let file = file.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out: Piece = BTreeMap::new();
            for batch in this.decode(&file, bytes, &[])? {
                for (p, records) in this.records(&file, &batch, &ranges)? {
                    out.entry(p).or_default().extend(records);
                }
            }
            for records in out.values_mut() {
                if !records.is_sorted_by_key(|r| r.offset) {
                    records.sort_unstable_by_key(|r| r.offset);
                }
            }
            Ok(out)
        })
        .await
        .map_err(|source| Error::Task {
            task: "reading the raw archive",
            source,
        })?
    }

    /// The rows of `file`, only the columns `only` when not empty.
    async fn batches(&self, file: &str, only: &[&str]) -> Result<Vec<RecordBatch>> {
        let bytes = self.lake.read_all(&self.path(file)).await?;
        self.decode(file, bytes, only)
    }

    fn path(&self, file: &str) -> object_store::path::Path {
        let dir = self.layout.version_dir(self.version);
        file.split('/').fold(dir, |p, part| p.join(part))
    }

    /// `file`'s rows from its bytes, only the columns `only` when not empty.
    fn decode(&self, file: &str, bytes: Bytes, only: &[&str]) -> Result<Vec<RecordBatch>> {
        self.reader(file, bytes, only)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.read_err(file, e))
    }

    /// A reader of `file`'s rows from its bytes, only the columns `only` when not empty.
    fn reader(&self, file: &str, bytes: Bytes, only: &[&str]) -> Result<ParquetRecordBatchReader> {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| self.read_err(file, e))?;
        let builder = if only.is_empty() {
            builder
        } else {
            let leaves: Vec<usize> = builder
                .parquet_schema()
                .columns()
                .iter()
                .enumerate()
                .filter(|(_, c)| only.contains(&c.path().string().as_str()))
                .map(|(i, _)| i)
                .collect();
            let mask = ProjectionMask::leaves(builder.parquet_schema(), leaves);
            builder.with_projection(mask)
        };
        builder
            .with_batch_size(PARQUET_BATCH_ROWS)
            .build()
            .map_err(|e| self.read_err(file, e))
    }

    fn coordinates<'b>(
        &self,
        file: &str,
        batch: &'b RecordBatch,
    ) -> Result<(&'b arrow::array::Int32Array, &'b arrow::array::Int64Array)> {
        let parts = batch
            .column_by_name(KAFKA_PARTITION_COLUMN)
            .and_then(|c| c.as_primitive_opt::<Int32Type>());
        let offsets = batch
            .column_by_name(KAFKA_OFFSET_COLUMN)
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        match (parts, offsets) {
            (Some(p), Some(o)) => Ok((p, o)),
            _ => Err(self.read_err(file, "no _kafka_partition / _kafka_offset columns")),
        }
    }

    fn read_err(&self, file: &str, e: impl Into<BoxError>) -> Error {
        Error::Corrupt {
            path: self.path(file),
            source: ContextError::new("reading the raw archive", e).into(),
        }
    }
}

fn corrupt(layout: &TableLayout, version: u32, why: &'static str) -> Error {
    Error::Corrupt {
        path: layout.version_dir(version),
        source: why.into(),
    }
}

/// Offsets are stored as Kafka gives them (never negative).
fn offset_of(o: i64) -> u64 {
    u64::try_from(o).unwrap_or(0)
}
