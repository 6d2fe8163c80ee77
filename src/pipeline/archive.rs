//! A raw archive table (`encoding = "raw"`) read back as the Kafka records it keeps: what a
//! rebuild replays before it reads the topic (`[table.source] archive`), so its input is the
//! whole history even where the topic's retention has dropped it.
//!
//! Reading plans from an index of the archive's committed files: per Kafka partition, the
//! offset span each file holds, taken from the files' `_kafka_partition`/`_kafka_offset`
//! columns alone (read in parallel, a few files at a time). Files whose spans overlap (the
//! same partition's records spread over several day partitions) form a cluster that is read
//! together and sorted; clusters follow each other in offset order.
//!
//! Invariant: per Kafka partition, [`ArchiveReader::read_cluster`] over the clusters of
//! [`ArchiveReader::clusters`] yields the archive's committed records in strictly increasing
//! offset order, each once, and only below the offset the archive's commits store for that
//! partition: exactly the records the archive holds as the topic held them (key, value and
//! its null-ness, headers, timestamp and its type).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimeUnit, TimestampMillisecondType};
use bytes::Bytes;
use futures::future::try_join_all;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::domain::{Encoding, TimestampType};
use crate::error::{BoxError, ContextError, Error, Result};
use crate::pipeline::handle::TableHandle;
use crate::pipeline::shape::{KAFKA_OFFSET_COLUMN, KAFKA_PARTITION_COLUMN, KAFKA_TIMESTAMP_COLUMN};
use crate::source::{Headers, Record, kafka_partition_key};
use crate::storage::Lake;
use crate::table::{TableLayout, pointer, version};
use crate::write::VersionLog;

/// Files read at once, when indexing and within a cluster.
const PARALLEL_READS: usize = 4;

/// The offsets of one Kafka partition that one archive file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    file: String,
    first: u64,
    last: u64,
}

/// The current version of a raw archive table, indexed for replay.
#[derive(Debug)]
pub struct ArchiveReader {
    lake: Lake,
    layout: TableLayout,
    /// The archive table's name and the version read.
    name: String,
    version: u32,
    topic: String,
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
            lake: lake.clone(),
            layout: layout.clone(),
            name: archive.cfg.name.clone(),
            version: v,
            topic: topic.to_string(),
            ends,
            spans: BTreeMap::new(),
        };
        let mut indexed: Vec<BTreeMap<i32, (u64, u64)>> = Vec::with_capacity(files.len());
        for chunk in files.chunks(PARALLEL_READS) {
            indexed.extend(try_join_all(chunk.iter().map(|f| reader.index_file(f))).await?);
        }
        for (file, per_partition) in files.into_iter().zip(indexed) {
            for (p, (first, last)) in per_partition {
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
            archive = %reader.name, version = v, files = reader.spans.values().map(Vec::len).sum::<usize>(),
            partitions = reader.ends.len(), "archive indexed"
        );
        Ok(Some(reader))
    }

    /// The archive's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The position key of `partition` of the topic (`topic/partition`).
    pub fn key(&self, partition: i32) -> Arc<str> {
        kafka_partition_key(&self.topic, partition).into()
    }

    /// `<archive table> v<N>`, for messages.
    pub fn label(&self) -> String {
        format!("{} v{}", self.name, self.version)
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
    pub fn clusters(&self, partition: i32, from: u64, to: u64) -> Vec<Vec<String>> {
        let mut out: Vec<(u64, Vec<String>)> = Vec::new();
        let spans = self.spans.get(&partition).map(Vec::as_slice).unwrap_or(&[]);
        for s in spans.iter().filter(|s| s.last >= from && s.first < to) {
            match out.last_mut() {
                Some((last, files)) if s.first <= *last => {
                    *last = (*last).max(s.last);
                    files.push(s.file.clone());
                }
                _ => out.push((s.last, vec![s.file.clone()])),
            }
        }
        out.into_iter().map(|(_, files)| files).collect()
    }

    /// The records of `partition` with offsets in `[from, to)` that `files` (one cluster)
    /// hold, in offset order.
    pub async fn read_cluster(
        &self,
        partition: i32,
        files: &[String],
        from: u64,
        to: u64,
    ) -> Result<Vec<Record>> {
        let mut records: Vec<Record> = Vec::new();
        for chunk in files.chunks(PARALLEL_READS) {
            let read = try_join_all(chunk.iter().map(|f| self.read_file(f, partition, from, to)));
            records.extend(read.await?.into_iter().flatten());
        }
        records.sort_by_key(|r| r.offset);
        if let Some(w) = records.windows(2).find(|w| w[0].offset == w[1].offset) {
            let path = self.layout.version_dir(self.version);
            return Err(Error::Corrupt {
                path,
                source: format!(
                    "the archive holds offset {} of {} twice",
                    w[0].offset,
                    kafka_partition_key(&self.topic, partition)
                )
                .into(),
            });
        }
        Ok(records)
    }

    /// Per Kafka partition, the first and last offset in `file`.
    async fn index_file(&self, file: &str) -> Result<BTreeMap<i32, (u64, u64)>> {
        let mut out: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
        for batch in self
            .batches(file, &[KAFKA_PARTITION_COLUMN, KAFKA_OFFSET_COLUMN])
            .await?
        {
            let (parts, offsets) = self.coordinates(file, &batch)?;
            for i in 0..batch.num_rows() {
                let o = offset_of(offsets.value(i));
                out.entry(parts.value(i))
                    .and_modify(|(first, last)| {
                        *first = (*first).min(o);
                        *last = (*last).max(o);
                    })
                    .or_insert((o, o));
            }
        }
        Ok(out)
    }

    async fn read_file(
        &self,
        file: &str,
        partition: i32,
        from: u64,
        to: u64,
    ) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for batch in self.batches(file, &[]).await? {
            let (parts, offsets) = self.coordinates(file, &batch)?;
            let cols = Columns::of(&batch).map_err(|e| self.read_err(file, e))?;
            for i in 0..batch.num_rows() {
                let offset = offset_of(offsets.value(i));
                if parts.value(i) != partition || offset < from || offset >= to {
                    continue;
                }
                out.push(cols.record(i, offset));
            }
        }
        Ok(out)
    }

    /// The rows of `file`, only the columns `only` when not empty.
    async fn batches(&self, file: &str, only: &[&str]) -> Result<Vec<RecordBatch>> {
        let dir = self.layout.version_dir(self.version);
        let path = file.split('/').fold(dir, |p, part| p.join(part));
        let bytes = self.lake.read_all(&path).await?;
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
            .build()
            .map_err(|e| self.read_err(file, e))?
            .collect::<std::result::Result<Vec<_>, _>>()
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
        let dir = self.layout.version_dir(self.version);
        let path = file.split('/').fold(dir, |p, part| p.join(part));
        Error::Corrupt {
            path,
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

/// The raw columns of one archive batch (`schemas/kafka-record.avsc`).
struct Columns<'b> {
    key: &'b arrow::array::BinaryArray,
    value: &'b arrow::array::BinaryArray,
    headers: &'b arrow::array::ListArray,
    timestamp_type: &'b arrow::array::StringArray,
    timestamp: arrow::array::TimestampMillisecondArray,
}

impl<'b> Columns<'b> {
    fn of(batch: &'b RecordBatch) -> std::result::Result<Columns<'b>, String> {
        let col = |name: &str, ty: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("no column `{name}` ({ty})"))
        };
        let wrong = |name: &str| format!("column `{name}` has another type than the raw schema's");
        let headers = col("headers", "list")?;
        let header_fields = match headers.data_type() {
            DataType::List(item) => match item.data_type() {
                DataType::Struct(fields) => fields
                    .iter()
                    .map(|f| f.data_type().clone())
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if header_fields != [DataType::Utf8, DataType::Binary] {
            return Err(wrong("headers"));
        }
        // Delta stores timestamps in microseconds: back to the record's milliseconds.
        let timestamp = col(KAFKA_TIMESTAMP_COLUMN, "timestamp")?;
        if !matches!(timestamp.data_type(), DataType::Timestamp(_, _)) {
            return Err(wrong(KAFKA_TIMESTAMP_COLUMN));
        }
        let timestamp =
            arrow::compute::cast(timestamp, &DataType::Timestamp(TimeUnit::Millisecond, None))
                .map_err(|e| format!("column `{KAFKA_TIMESTAMP_COLUMN}`: {e}"))?;
        Ok(Columns {
            key: col("key", "binary")?
                .as_binary_opt()
                .ok_or_else(|| wrong("key"))?,
            value: col("value", "binary")?
                .as_binary_opt()
                .ok_or_else(|| wrong("value"))?,
            headers: headers.as_list_opt().ok_or_else(|| wrong("headers"))?,
            timestamp_type: col("timestamp_type", "string")?
                .as_string_opt()
                .ok_or_else(|| wrong("timestamp_type"))?,
            timestamp: timestamp
                .as_primitive_opt::<TimestampMillisecondType>()
                .ok_or_else(|| wrong(KAFKA_TIMESTAMP_COLUMN))?
                .clone(),
        })
    }

    /// Row `i` as the record it archives.
    fn record(&self, i: usize, offset: u64) -> Record {
        let tombstone = self.value.is_null(i);
        let bytes = if tombstone {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(self.value.value(i))
        };
        let headers: Option<Headers> =
            (self.headers.is_valid(i) && self.headers.value_length(i) > 0).then(|| {
                let entries = self.headers.value(i);
                let entries = entries.as_struct();
                let names = entries.column(0).as_string::<i32>();
                let values = entries.column(1).as_binary::<i32>();
                (0..entries.len())
                    .map(|j| {
                        let value = values
                            .is_valid(j)
                            .then(|| Bytes::copy_from_slice(values.value(j)));
                        (names.value(j).to_string(), value)
                    })
                    .collect::<Vec<_>>()
                    .into()
            });
        Record {
            bytes,
            oversized: None,
            offset,
            timestamp_ms: self.timestamp.is_valid(i).then(|| self.timestamp.value(i)),
            timestamp_type: self
                .timestamp_type
                .is_valid(i)
                .then(|| TimestampType::parse(self.timestamp_type.value(i)))
                .flatten(),
            tombstone,
            key: self
                .key
                .is_valid(i)
                .then(|| Bytes::copy_from_slice(self.key.value(i))),
            headers,
        }
    }
}
