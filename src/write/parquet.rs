//! Rolling, partitioned Parquet writer.
//!
//! One open file per time partition, streamed to the object store as row groups fill (a
//! multipart `BufWriter`). Files roll at `target_file_size`; when the bytes held in memory by
//! all open files pass `max_buffer_bytes`, the least recently written are closed early (the
//! partitions late events trickle into, not the one being filled), so memory stays bounded
//! however many partitions are open. Those early closes start a sixteenth below the budget and
//! run in the background (at most [`MAX_CLOSING`] at a time, their bytes still counted), so
//! the batches behind them keep being encoded; only at the budget itself does a write wait
//! for one. The writer never commits: closing returns
//! [`FileEntry`]s, and [`crate::write::commit`] makes them visible.
//!
//! What an open file holds counts its zstd contexts: each column writer keeps its own once it
//! has compressed a page (1.3 MB at level 3), which for a wide schema is more than its data.
//!
//! Encoding uses every core: the columns of every file a batch touches are encoded in
//! parallel on rayon's pool (each column writer drains its own queue of leaf columns, see
//! [`columns`]), which is where the ingest spends most of its time (dictionary and page
//! encoding, zstd). [`PartitionedWriter::write`] returns once the batch is queued, so the next
//! batch is split and queued while this one's biggest columns still encode; at most about one
//! batch more waits in the queues. Ending a row group or a file waits for its columns.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory, ArrowWriterOptions,
    compute_leaves,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;
use tokio::io::AsyncWriteExt;

use crate::config::{Granularity, WriterConfig};
use crate::error::{BoxError, Error, Result};
use crate::partition::{partition_path, partition_values, split_batches_by_bucket};
use crate::storage::Lake;
use crate::write::FileEntry;

mod columns;
use columns::{Backlog, Columns};

/// Bytes an upload buffers before it becomes a multipart upload (S3's minimum part size).
const UPLOAD_BUFFER: usize = 5 << 20;
/// Parquet's page limits (parquet-rs defaults, which the writer keeps): a column writer has
/// compressed a page, and holds a zstd context, once its file passed either.
const PAGE_ROWS: u64 = parquet::file::properties::DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT as u64;
const PAGE_BYTES: usize = parquet::file::properties::DEFAULT_PAGE_SIZE;

/// How a time bucket is named: `(column, value)` pairs, in path order.
pub type PartitionNaming = fn(i64, Granularity) -> Vec<(String, String)>;

/// Files an early close may have in flight at once (each holds its buffers until it is done).
const MAX_CLOSING: usize = 2;

/// A file closing in the background (see [`PartitionedWriter::close_early`]): the bytes it
/// held when it was handed over, and its task, aborted if the writer is dropped first.
struct Closing {
    bytes: usize,
    task: tokio::task::JoinHandle<Result<Vec<WrittenFile>>>,
}

impl Closing {
    async fn done(mut self) -> Result<Vec<WrittenFile>> {
        (&mut self.task).await.map_err(|source| Error::Task {
            task: "closing a data file",
            source,
        })?
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A closed data file: its summary and its Parquet footer (Delta's statistics come from it).
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// What the commit lists.
    pub entry: FileEntry,
    /// The file's metadata as written.
    pub metadata: ParquetMetaData,
}

/// One open data file: its row groups are encoded column by column (in parallel) and each
/// finished row group is handed to the upload.
struct OpenFile {
    file: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    /// The in-progress row group's column writers, one per Parquet leaf column.
    columns: Columns,
    group_rows: usize,
    upload: BufWriter,
    /// Bytes handed to the upload so far.
    uploaded: usize,
    path: Path,
    rel: String,
    rows: u64,
    partition: Vec<(String, String)>,
    /// The writer's write count when this file was last written, and the rows it got then.
    last_write: u64,
    last_rows: usize,
    /// Memory of one column writer's zstd context.
    context_bytes: usize,
}

impl OpenFile {
    /// Memory the file holds: its in-progress row group (encoded pages, values not yet
    /// encoded, dictionaries), the encoded bytes not yet handed over, the upload buffer, and
    /// the column writers' zstd contexts once pages were compressed.
    fn buffered(&self) -> usize {
        let contexts = if self.rows >= PAGE_ROWS || self.size() >= PAGE_BYTES {
            self.columns.len() * self.context_bytes
        } else {
            0
        };
        self.columns.memory_size()
            + self.file.inner().len()
            + self.uploaded.min(UPLOAD_BUFFER)
            + contexts
    }

    /// The file's size once its in-progress row group is written (anticipated).
    fn size(&self) -> usize {
        self.file.bytes_written() + self.columns.estimated_total_bytes()
    }

    /// Writes the in-progress row group into the file (its columns closed in parallel) and,
    /// unless it is the `last`, starts the next one. Call it once [`Columns::settled`]
    /// returned: with leaves still queued it fails.
    fn end_row_group(&mut self, last: bool) -> parquet::errors::Result<()> {
        if self.group_rows == 0 {
            return Ok(());
        }
        let next = if last {
            Vec::new()
        } else {
            self.factory
                .create_column_writers(self.file.flushed_row_groups().len() + 1)?
        };
        let chunks = self
            .columns
            .take(next)?
            .into_par_iter()
            .map(ArrowColumnWriter::close)
            .collect::<parquet::errors::Result<Vec<_>>>()?;
        let mut group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.group_rows = 0;
        Ok(())
    }

    /// Hands the encoded bytes to the upload.
    async fn upload(&mut self) -> object_store::Result<()> {
        let bytes = std::mem::take(self.file.inner_mut());
        if bytes.is_empty() {
            return Ok(());
        }
        self.uploaded += bytes.len();
        self.upload.put(Bytes::from(bytes)).await
    }
}

/// Parquet writer settings of a table's `[table.writer]` section (both formats use them).
pub fn writer_properties(
    cfg: &WriterConfig,
) -> std::result::Result<WriterProperties, parquet::errors::ParquetError> {
    let level = ZstdLevel::try_new(cfg.zstd_level)?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(cfg.row_group_rows))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("kappa-lake {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// `batch` with `schema`'s columns, matched by name and cast to its types (same values); the
/// columns the batch lacks (added by a schema evolution after it was written) are null.
pub fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    if batch.schema() == *schema {
        return Ok(batch.clone());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => arrow::compute::cast(c, f.data_type()),
            None => Ok(arrow::array::new_null_array(
                f.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// Writes batches into per-partition files under one version directory.
pub struct PartitionedWriter {
    lake: Lake,
    dir: Path,
    schema: SchemaRef,
    props: WriterProperties,
    cfg: WriterConfig,
    granularity: Granularity,
    naming: PartitionNaming,
    open: HashMap<i64, OpenFile>,
    /// Files closed early, still closing, oldest first.
    closing: VecDeque<Closing>,
    closed: Vec<WrittenFile>,
    writer_id: String,
    /// Calls of [`PartitionedWriter::write`] so far (orders the open files by last write).
    writes: u64,
    context_bytes: usize,
    /// Leaves queued in every open file's columns, and how many the last write queued.
    backlog: Arc<Backlog>,
    last_jobs: usize,
    /// Per string column judged so far: whether it is compressed at [`FAST_LEVEL`].
    fast_columns: HashMap<Vec<String>, bool>,
}

impl std::fmt::Debug for PartitionedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedWriter")
            .field("dir", &self.dir)
            .field("open", &self.open.len())
            .field("closed", &self.closed.len())
            .finish()
    }
}

impl PartitionedWriter {
    /// A writer for files of `schema` under `dir` (the version directory).
    pub fn new(
        lake: Lake,
        dir: Path,
        schema: SchemaRef,
        cfg: WriterConfig,
        granularity: Granularity,
        writer_id: &str,
    ) -> Result<Self> {
        let props = writer_properties(&cfg).map_err(|e| Error::Write {
            path: dir.clone(),
            source: e.into(),
        })?;
        Ok(PartitionedWriter {
            lake,
            dir,
            schema,
            props,
            granularity,
            naming: partition_values,
            open: HashMap::new(),
            closing: VecDeque::new(),
            closed: Vec::new(),
            writer_id: writer_id.to_string(),
            writes: 0,
            context_bytes: zstd_context_bytes(cfg.zstd_level),
            backlog: Arc::default(),
            last_jobs: 0,
            fast_columns: HashMap::new(),
            cfg,
        })
    }

    /// Names partitions (directories and [`FileEntry::partition`]) with `naming` instead of
    /// [`partition_values`].
    pub fn with_naming(mut self, naming: PartitionNaming) -> Self {
        self.naming = naming;
        self
    }

    /// Bytes currently held in memory by open files (and files still closing).
    pub fn buffered_bytes(&self) -> usize {
        self.open.values().map(OpenFile::buffered).sum::<usize>() + self.closing_bytes()
    }

    fn closing_bytes(&self) -> usize {
        self.closing.iter().map(|c| c.bytes).sum()
    }

    /// Appends `batch`; `buckets[i]` is the time partition of row `i`.
    ///
    /// The parts of every partition the batch touches are encoded together: one parallel job
    /// per file and leaf column. A part that would overfill its file's row group is written
    /// in rounds (the row group is ended between them).
    pub async fn write(&mut self, batch: &RecordBatch, buckets: &[i64]) -> Result<()> {
        self.write_parts(&[(batch, buckets)]).await
    }

    /// [`PartitionedWriter::write`] of several batches at once (of the writer's schema), each
    /// with its rows' time partitions: split together, so a partition's rows from all of them
    /// are one part and one job per column.
    pub async fn write_parts(&mut self, batches: &[(&RecordBatch, &[i64])]) -> Result<()> {
        if batches.iter().all(|(b, _)| b.num_rows() == 0) {
            return Ok(());
        }
        let mut parts: HashMap<i64, RecordBatch> = split_batches_by_bucket(batches)
            .map_err(|e| self.err(e))?
            .into_iter()
            .collect();
        // At most about one write's leaves still encoding before this one queues its own.
        self.backlog.at_most(self.last_jobs).await;
        self.last_jobs = 0;
        self.writes += 1;
        let max_group = self.cfg.row_group_rows.max(1);
        while !parts.is_empty() {
            // (Again in every round: a file that reached the target size was closed.)
            for (bucket, part) in &parts {
                if !self.open.contains_key(bucket) {
                    let file = self.open_file(*bucket, part)?;
                    self.open.insert(*bucket, file);
                }
            }
            let mut rest = HashMap::new();
            for (bucket, file) in &mut self.open {
                let Some(part) = parts.remove(bucket) else {
                    continue;
                };
                let room = max_group - file.group_rows;
                let now = if part.num_rows() > room {
                    rest.insert(*bucket, part.slice(room, part.num_rows() - room));
                    part.slice(0, room)
                } else {
                    part
                };
                let leaves = leaves_of(&now).map_err(|e| Error::Write {
                    path: file.path.clone(),
                    source: e.into(),
                })?;
                file.group_rows += now.num_rows();
                file.rows += now.num_rows() as u64;
                if file.last_write != self.writes {
                    file.last_write = self.writes;
                    file.last_rows = 0;
                }
                file.last_rows += now.num_rows();
                self.last_jobs += leaves.len();
                file.columns.push(leaves, now.get_array_memory_size());
            }
            let full: Vec<i64> = self
                .open
                .iter()
                .filter(|(_, f)| f.group_rows >= max_group)
                .map(|(b, _)| *b)
                .collect();
            for bucket in full {
                self.end_row_group(bucket).await?;
            }
            parts = rest;
        }
        self.keep_to_budget().await
    }

    /// Closes the least recently written files while the buffers are above the budget, and
    /// starts closing them in the background from a sixteenth below it.
    async fn keep_to_budget(&mut self) -> Result<()> {
        while self.closing.front().is_some_and(|c| c.task.is_finished()) {
            if let Some(c) = self.closing.pop_front() {
                self.closed.extend(c.done().await?);
            }
        }
        let budget = usize::try_from(self.cfg.max_buffer_bytes).unwrap_or(usize::MAX);
        let early = budget - budget / 16;
        if self.buffered_bytes() > budget {
            // Over the budget counting queued leaves at their Arrow size: let them be encoded
            // and decide on the writers' own figures.
            self.backlog.at_most(0).await;
        }
        loop {
            let held = self.buffered_bytes();
            if held > budget {
                // Only a finished close frees memory: the oldest, else the coldest file now.
                if let Some(c) = self.closing.pop_front() {
                    self.closed.extend(c.done().await?);
                    continue;
                }
            } else if held - self.closing_bytes() <= early || self.closing.len() >= MAX_CLOSING {
                // (A file still closing is as good as closed for starting the next early.)
                return Ok(());
            }
            // The least recently written first; within one write, the one that got the fewest
            // rows (late events, not the partition being filled).
            let Some(coldest) = self
                .open
                .iter()
                .min_by_key(|(_, f)| (f.last_write, f.last_rows))
                .map(|(b, _)| *b)
            else {
                return Ok(());
            };
            if held > budget {
                self.close(coldest).await?;
            } else {
                self.close_early(coldest).await?;
            }
        }
    }

    /// Closes `bucket`'s file in the background, so the writes behind it go on meanwhile; on
    /// a rayon pool's thread (compaction's one-thread pool, whose limit a task would escape)
    /// it is closed in place.
    async fn close_early(&mut self, bucket: i64) -> Result<()> {
        if rayon::current_thread_index().is_some() {
            return self.close(bucket).await;
        }
        let Some(file) = self.open.remove(&bucket) else {
            return Ok(());
        };
        self.closing.push_back(Closing {
            bytes: file.buffered(),
            task: tokio::spawn(close_files(vec![file])),
        });
        Ok(())
    }

    /// Ends `bucket`'s row group, uploads it and rolls the file at the target size.
    async fn end_row_group(&mut self, bucket: i64) -> Result<()> {
        let Some(file) = self.open.get_mut(&bucket) else {
            return Ok(());
        };
        let write_err = |path: &Path, e: BoxError| Error::Write {
            path: path.clone(),
            source: e,
        };
        file.columns
            .settled()
            .await
            .and_then(|()| file.end_row_group(false))
            .map_err(|e| write_err(&file.path, e.into()))?;
        file.upload()
            .await
            .map_err(|e| write_err(&file.path, e.into()))?;
        if file.size() as u64 >= self.cfg.target_file_size {
            self.close(bucket).await?;
        }
        Ok(())
    }

    /// Opens `bucket`'s next file; `first` is the first rows it will get.
    fn open_file(&mut self, bucket: i64, first: &RecordBatch) -> Result<OpenFile> {
        let partition = (self.naming)(bucket, self.granularity);
        let mut rel = partition_path(&partition);
        if !rel.is_empty() {
            rel.push('/');
        }
        rel += &format!(
            "part-{}-{}.zstd.parquet",
            self.writer_id,
            uuid::Uuid::new_v4().simple()
        );
        let path = Path::parse(format!("{}/{rel}", self.dir)).map_err(|e| Error::Write {
            path: self.dir.clone(),
            source: e.into(),
        })?;
        let err = |e: parquet::errors::ParquetError| Error::Write {
            path: path.clone(),
            source: e.into(),
        };
        // Through `ArrowWriter`, so the file carries the Arrow schema and the same properties
        // as one `ArrowWriter` writes.
        let options = ArrowWriterOptions::new().with_properties(self.props_for(first));
        let (file, factory) =
            ArrowWriter::try_new_with_options(Vec::new(), self.schema.clone(), options)
                .and_then(ArrowWriter::into_serialized_writer)
                .map_err(err)?;
        let columns = Columns::new(
            factory.create_column_writers(0).map_err(err)?,
            self.backlog.clone(),
        );
        let upload = BufWriter::with_capacity(self.lake.store.clone(), path.clone(), UPLOAD_BUFFER);
        Ok(OpenFile {
            file,
            factory,
            columns,
            group_rows: 0,
            upload,
            uploaded: 0,
            path,
            rel,
            rows: 0,
            partition,
            last_write: self.writes,
            last_rows: 0,
            context_bytes: self.context_bytes,
        })
    }

    async fn close(&mut self, bucket: i64) -> Result<()> {
        let Some(file) = self.open.remove(&bucket) else {
            return Ok(());
        };
        let closed = close_files(vec![file]).await?;
        self.closed.extend(closed);
        Ok(())
    }

    /// Closes every open file and hands back all files written since the last call.
    pub async fn finish(&mut self) -> Result<Vec<FileEntry>> {
        Ok(self
            .finish_files()
            .await?
            .into_iter()
            .map(|f| f.entry)
            .collect())
    }

    /// [`PartitionedWriter::finish`], with each file's Parquet metadata.
    pub async fn finish_files(&mut self) -> Result<Vec<WrittenFile>> {
        while let Some(c) = self.closing.pop_front() {
            self.closed.extend(c.done().await?);
        }
        let files: Vec<OpenFile> = self.open.drain().map(|(_, f)| f).collect();
        let closed = close_files(files).await?;
        self.closed.extend(closed);
        Ok(std::mem::take(&mut self.closed))
    }

    /// The properties of a file whose first rows are `first`: without dictionary encoding
    /// for the string, integer and time columns whose values are mostly distinct (ids, URLs,
    /// amounts, timestamps). A string column's dictionary would fill Parquet's dictionary page
    /// limit and be dropped for plain encoding anyway, after hashing every value until then;
    /// a numeric column's stays under the limit but its indexes compress worse than the plain
    /// values do under zstd (the files DuckDB writes, plain for such columns, are smaller).
    ///
    /// A string column of them is compressed at zstd's fastest level instead of the
    /// configured one when its sampled values come out no more than 1 % bigger there: random
    /// identifiers (UUIDs, hashes, tokens) leave zstd's match finders nothing to find, and a
    /// higher level only spends more time looking (a UUID column takes about half the time at
    /// level 1 and comes out smaller). Each column is judged once per writer, on the first
    /// sample big enough (its files share their data's kind); a sample of numbers is too
    /// small to show what the configured level gains on a whole page, so they keep it.
    fn props_for(&mut self, first: &RecordBatch) -> WriterProperties {
        let mut distinct = Vec::new();
        for (field, column) in self.schema.fields().iter().zip(first.columns()) {
            mostly_distinct(field, column, &mut Vec::new(), &mut distinct);
        }
        if distinct.is_empty() {
            return self.props.clone();
        }
        let level = self.cfg.zstd_level;
        let fast = ZstdLevel::try_new(FAST_LEVEL).map(Compression::ZSTD).ok();
        let mut props = self.props.clone().into_builder();
        for Distinct { path, strings } in distinct {
            let is_fast = match (&strings, self.fast_columns.get(&path)) {
                (_, Some(judged)) => *judged,
                (Some(values), None) if level > FAST_LEVEL => match plain_sample(values) {
                    Some(plain) => {
                        let judged = fast_level_pays(&plain, level);
                        self.fast_columns.insert(path.clone(), judged);
                        judged
                    }
                    None => false,
                },
                _ => false,
            };
            let column = ColumnPath::new(path);
            props = props.set_column_dictionary_enabled(column.clone(), false);
            if let (true, Some(fast)) = (is_fast, fast) {
                props = props.set_column_compression(column, fast);
            }
        }
        props.build()
    }

    fn err(&self, e: impl Into<BoxError>) -> Error {
        Error::Write {
            path: self.dir.clone(),
            source: e.into(),
        }
    }

    /// The schema of the files.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// Values sampled per column when a file is opened, and the least of them that make a
/// judgement.
const SAMPLE_VALUES: usize = 2048;
const SAMPLE_MIN: usize = 256;
/// zstd's fastest regular level.
const FAST_LEVEL: i32 = 1;
/// The least sample (PLAIN-encoded) on which a column's zstd level is judged.
const JUDGED_BYTES: usize = 32 << 10;

/// A column whose sampled values are mostly distinct: its path, and for a string column the
/// sampled values.
#[derive(Debug)]
struct Distinct<'a> {
    path: Vec<String>,
    strings: Option<Vec<&'a [u8]>>,
}

/// Collects the string, integer and time columns of `column` (top-level or inside structs)
/// whose sampled values are at least three quarters distinct.
fn mostly_distinct<'a>(
    field: &Field,
    column: &'a ArrayRef,
    path: &mut Vec<String>,
    out: &mut Vec<Distinct<'a>>,
) {
    path.push(field.name().clone());
    match field.data_type() {
        DataType::Struct(children) => {
            if let Some(s) = column.as_struct_opt() {
                for (child, array) in children.iter().zip(s.columns()) {
                    mostly_distinct(child, array, path, out);
                }
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            fn sample<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Vec<&'a [u8]> {
                values
                    .flatten()
                    .map(str::as_bytes)
                    .take(SAMPLE_VALUES)
                    .collect()
            }
            let values = if let Some(a) = column.as_string_opt::<i32>() {
                sample(a.iter())
            } else if let Some(a) = column.as_string_opt::<i64>() {
                sample(a.iter())
            } else if let Some(a) = column.as_string_view_opt() {
                sample(a.iter())
            } else {
                Vec::new()
            };
            let distinct: HashSet<&[u8]> = values.iter().copied().collect();
            if values.len() >= SAMPLE_MIN && distinct.len() * 4 >= values.len() * 3 {
                out.push(Distinct {
                    path: path.clone(),
                    strings: Some(values),
                });
            }
        }
        t if t.is_integer() || t.is_temporal() => {
            // Every integer, date and timestamp type casts to Int64 as its stored value.
            let head = column.slice(0, column.len().min(SAMPLE_VALUES));
            let values = arrow::compute::cast(&head, &DataType::Int64)
                .ok()
                .and_then(|a| a.as_primitive_opt::<arrow::datatypes::Int64Type>().cloned());
            if let Some(values) = values {
                let sampled: Vec<i64> = values.iter().flatten().collect();
                let distinct: HashSet<&i64> = sampled.iter().collect();
                if sampled.len() >= SAMPLE_MIN && distinct.len() * 4 >= sampled.len() * 3 {
                    out.push(Distinct {
                        path: path.clone(),
                        strings: None,
                    });
                }
            }
        }
        _ => {}
    }
    path.pop();
}

/// `values` as Parquet's PLAIN encoding lays them out (what zstd compresses): each value
/// after its length (4 bytes, little-endian); `None` if that is under [`JUDGED_BYTES`].
fn plain_sample(values: &[&[u8]]) -> Option<Vec<u8>> {
    let len: usize = values.iter().map(|v| v.len() + 4).sum();
    if len < JUDGED_BYTES {
        return None;
    }
    let mut plain = Vec::with_capacity(len);
    for v in values {
        plain.extend_from_slice(&(v.len() as u32).to_le_bytes());
        plain.extend_from_slice(v);
    }
    Some(plain)
}

/// Whether `plain` compresses at [`FAST_LEVEL`] to at most 1 % more than at `level`.
fn fast_level_pays(plain: &[u8], level: i32) -> bool {
    let size = |level| zstd::bulk::compress(plain, level).map(|c| c.len());
    match (size(FAST_LEVEL), size(level)) {
        (Ok(fast), Ok(at_level)) => fast * 100 <= at_level * 101,
        _ => false,
    }
}

/// Memory of a zstd compression context at `level` once it has compressed a page of
/// Parquet's page size (measured: the context is sized by level and input size).
fn zstd_context_bytes(level: i32) -> usize {
    let Ok(mut compressor) = zstd::bulk::Compressor::new(level) else {
        return 0;
    };
    match compressor.compress(&vec![0; PAGE_BYTES]) {
        Ok(_) => compressor.context_mut().sizeof(),
        Err(_) => 0,
    }
}

/// The Parquet leaf columns of `batch`, in the order of its files' column writers.
fn leaves_of(batch: &RecordBatch) -> parquet::errors::Result<Vec<ArrowLeafColumn>> {
    let mut leaves = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        leaves.extend(compute_leaves(field, column)?);
    }
    Ok(leaves)
}

/// Ends the files' last row groups and footers (all in parallel), then completes their
/// uploads.
async fn close_files(mut files: Vec<OpenFile>) -> Result<Vec<WrittenFile>> {
    // Before the pool's threads end the row groups (see `OpenFile::end_row_group`).
    for f in &mut files {
        f.columns.settled().await.map_err(|e| Error::Write {
            path: f.path.clone(),
            source: e.into(),
        })?;
    }
    let metadata = files
        .par_iter_mut()
        .map(|f| {
            f.end_row_group(true)
                .and_then(|()| f.file.finish())
                .map_err(|e| Error::Write {
                    path: f.path.clone(),
                    source: e.into(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    // The uploads together: each ends with a blocking write of the file's last bytes (a local
    // lake) or a request (a store), which overlap.
    let uploads = files
        .into_iter()
        .zip(metadata)
        .map(|(mut f, metadata)| async move {
            let path = f.path.clone();
            let err = |e: BoxError| Error::Write {
                path: path.clone(),
                source: e,
            };
            f.upload().await.map_err(|e| err(e.into()))?;
            f.upload.shutdown().await.map_err(|e| err(e.into()))?;
            Ok::<_, Error>(WrittenFile {
                entry: FileEntry {
                    path: f.rel,
                    size: f.file.bytes_written() as u64,
                    rows: f.rows,
                    partition: f.partition,
                },
                metadata,
            })
        });
    futures::future::try_join_all(uploads).await
}

#[cfg(test)]
mod tests;
