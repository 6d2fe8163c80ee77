//! Rolling, partitioned Parquet writer.
//!
//! One open file per time partition, streamed to the object store as row groups fill
//! (`AsyncArrowWriter` over a multipart `BufWriter`). Files roll at `target_file_size`; when the
//! bytes held in memory by all open files pass `max_buffer_bytes`, the largest is closed early,
//! so memory stays bounded however many partitions are open. The writer never commits: closing
//! returns [`FileEntry`]s, and [`crate::write::commit`] makes them visible.

use std::collections::HashMap;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::config::{Granularity, WriterConfig};
use crate::error::{Error, Result};
use crate::partition::{partition_path, partition_values, split_by_bucket};
use crate::storage::Lake;
use crate::write::FileEntry;

/// Bytes an upload buffers before it becomes a multipart upload (S3's minimum part size).
const UPLOAD_BUFFER: usize = 5 << 20;

struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
    path: Path,
    rel: String,
    rows: u64,
    partition: Vec<(String, String)>,
}

impl OpenFile {
    /// Memory the file holds: its in-progress row group as buffered (encoded pages, plus
    /// values not yet encoded and dictionaries, which the anticipated encoded size leaves out)
    /// and the upload buffer.
    fn buffered(&self) -> usize {
        self.writer.memory_size() + self.writer.bytes_written().min(UPLOAD_BUFFER)
    }
    fn size(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }
}

/// Parquet writer settings of a table's `[table.writer]` section (both formats use them).
pub fn writer_properties(cfg: &WriterConfig) -> std::result::Result<WriterProperties, String> {
    let level = ZstdLevel::try_new(cfg.zstd_level).map_err(|e| e.to_string())?;
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(cfg.row_group_rows))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("kappa-lake {}", env!("CARGO_PKG_VERSION")))
        .build())
}

/// Writes batches into per-partition files under one version directory.
pub struct PartitionedWriter {
    lake: Lake,
    dir: Path,
    schema: SchemaRef,
    props: WriterProperties,
    cfg: WriterConfig,
    granularity: Granularity,
    open: HashMap<i64, OpenFile>,
    closed: Vec<FileEntry>,
    writer_id: String,
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
        let props = writer_properties(&cfg).map_err(|reason| Error::Write {
            path: dir.clone(),
            reason,
        })?;
        Ok(PartitionedWriter {
            lake,
            dir,
            schema,
            props,
            cfg,
            granularity,
            open: HashMap::new(),
            closed: Vec::new(),
            writer_id: writer_id.to_string(),
        })
    }

    /// Bytes currently held in memory by open files.
    pub fn buffered_bytes(&self) -> usize {
        self.open.values().map(OpenFile::buffered).sum()
    }

    /// Appends `batch`; `buckets[i]` is the time partition of row `i`.
    pub async fn write(&mut self, batch: &RecordBatch, buckets: &[i64]) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        for (bucket, part) in split_by_bucket(batch, buckets).map_err(|e| self.err(e))? {
            self.append(bucket, &part).await?;
        }
        while self.buffered_bytes() as u64 > self.cfg.max_buffer_bytes {
            let Some(largest) = self
                .open
                .iter()
                .max_by_key(|(_, f)| f.buffered())
                .map(|(b, _)| *b)
            else {
                break;
            };
            self.close(largest).await?;
        }
        Ok(())
    }

    async fn append(&mut self, bucket: i64, batch: &RecordBatch) -> Result<()> {
        if !self.open.contains_key(&bucket) {
            let file = self.open_file(bucket)?;
            self.open.insert(bucket, file);
        }
        let Some(file) = self.open.get_mut(&bucket) else {
            return Ok(());
        };
        file.writer.write(batch).await.map_err(|e| Error::Write {
            path: file.path.clone(),
            reason: e.to_string(),
        })?;
        file.rows += batch.num_rows() as u64;
        if file.size() as u64 >= self.cfg.target_file_size {
            self.close(bucket).await?;
        }
        Ok(())
    }

    fn open_file(&self, bucket: i64) -> Result<OpenFile> {
        let partition = partition_values(bucket, self.granularity);
        let rel = format!(
            "{}/part-{}-{}.zstd.parquet",
            partition_path(&partition),
            self.writer_id,
            uuid::Uuid::new_v4().simple()
        );
        let path = Path::parse(format!("{}/{rel}", self.dir)).map_err(|e| Error::Write {
            path: self.dir.clone(),
            reason: e.to_string(),
        })?;
        let upload = BufWriter::with_capacity(self.lake.store.clone(), path.clone(), UPLOAD_BUFFER);
        let writer =
            AsyncArrowWriter::try_new(upload, self.schema.clone(), Some(self.props.clone()))
                .map_err(|e| Error::Write {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
        Ok(OpenFile {
            writer,
            path,
            rel,
            rows: 0,
            partition,
        })
    }

    async fn close(&mut self, bucket: i64) -> Result<()> {
        let Some(mut file) = self.open.remove(&bucket) else {
            return Ok(());
        };
        file.writer.finish().await.map_err(|e| Error::Write {
            path: file.path.clone(),
            reason: e.to_string(),
        })?;
        self.closed.push(FileEntry {
            path: file.rel,
            size: file.writer.bytes_written() as u64,
            rows: file.rows,
            partition: file.partition,
        });
        Ok(())
    }

    /// Closes every open file and hands back all files written since the last call.
    pub async fn finish(&mut self) -> Result<Vec<FileEntry>> {
        let buckets: Vec<i64> = self.open.keys().copied().collect();
        for b in buckets {
            self.close(b).await?;
        }
        Ok(std::mem::take(&mut self.closed))
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Write {
            path: self.dir.clone(),
            reason: e.to_string(),
        }
    }

    /// The schema of the files.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}
