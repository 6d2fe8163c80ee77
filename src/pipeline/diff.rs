//! `diff`: what a rebuild changed, before anyone reads it.
//!
//! For two versions of a table, per day: the rows and an order-independent checksum over the
//! rows' source coordinates (`_kafka_partition`/`_kafka_offset`, or `_source_file`/
//! `_source_line`), read from the data files each version's log lists. Two versions built
//! from the same records have equal counts and checksums whatever their partitioning, schema
//! or file layout; a transform that drops rows, or records that became dead letters, show up.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::{Int32Type, Int64Type};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::error::{BoxError, ContextError, Error, Missing, Result, Unsupported};
use crate::pipeline::handle::TableHandle;
use crate::pipeline::shape::{
    KAFKA_OFFSET_COLUMN, KAFKA_PARTITION_COLUMN, KAFKA_TOPIC_COLUMN, SOURCE_FILE_COLUMN,
    SOURCE_LINE_COLUMN,
};
use crate::source::kafka_partition_key;
use crate::table::version;
use crate::write::VersionLog;

/// Rows and checksum of one version in one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Side {
    /// Rows.
    pub rows: u64,
    /// Order-independent checksum of the rows' source coordinates.
    pub checksum: u64,
}

/// One day of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayDiff {
    /// `date=YYYY-MM-DD`.
    pub day: String,
    /// The first version.
    pub a: Side,
    /// The second version.
    pub b: Side,
}

impl DayDiff {
    /// Whether both versions hold the same records this day.
    pub fn same(&self) -> bool {
        self.a == self.b
    }
}

/// A diff of two versions.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// First version.
    pub a: u32,
    /// Second version.
    pub b: u32,
    /// Per day, ascending.
    pub days: Vec<DayDiff>,
    /// All days together.
    pub total: DayDiff,
}

impl Diff {
    /// Whether both versions hold the same records.
    pub fn same(&self) -> bool {
        self.total.same()
    }
}

/// SplitMix64: a well-mixed 64-bit hash of one coordinate.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// FNV-1a of a string, for file names and topics.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Only rows before these coordinates count (`topic/partition` or file → next offset).
pub type Limit = BTreeMap<String, u64>;

/// Per-day sides of one version.
async fn sides(
    table: &TableHandle,
    version: u32,
    limit: Option<&Limit>,
) -> Result<BTreeMap<String, Side>> {
    let (lake, layout) = (&table.lake, &table.layout);
    let def = version::load(lake, layout, version).await?.ok_or_else(|| {
        Error::from(Missing::TargetVersion {
            table: table.cfg.name.clone(),
            version,
        })
    })?;
    if !def.definition.metadata_columns {
        return Err(Unsupported::NoMetadataColumns { version }.into());
    }
    let log = VersionLog::read(lake, layout, version, def.definition.format).await?;
    let dir = layout.version_dir(version);
    let mut out: BTreeMap<String, Side> = BTreeMap::new();
    let mut files: Vec<&String> = log.state().files.iter().collect();
    files.sort();
    for rel in files {
        let day = rel.split('/').next().unwrap_or_default().to_string();
        let path = rel.split('/').fold(dir.clone(), |p, part| p.join(part));
        // One file at a time, whole (files are at most `target_file_size`).
        let bytes = lake.read_all(&path).await?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| read_err(&path, e))?;
        let names: Vec<String> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let wanted = [
            KAFKA_TOPIC_COLUMN,
            KAFKA_PARTITION_COLUMN,
            KAFKA_OFFSET_COLUMN,
            SOURCE_FILE_COLUMN,
            SOURCE_LINE_COLUMN,
        ];
        let leaves: Vec<usize> = builder
            .parquet_schema()
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, c)| wanted.contains(&c.path().string().as_str()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::leaves(builder.parquet_schema(), leaves);
        let reader = builder
            .with_projection(mask)
            .build()
            .map_err(|e| read_err(&path, e))?;
        let side = out.entry(day).or_default();
        let kafka = names.iter().any(|n| n == KAFKA_OFFSET_COLUMN);
        for batch in reader {
            let batch = batch.map_err(|e| read_err(&path, e))?;
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| read_err(&path, format!("no column `{name}`")))
            };
            if kafka {
                let topics = col(KAFKA_TOPIC_COLUMN)?;
                let topics = arrow::compute::cast(topics, &arrow::datatypes::DataType::Utf8)
                    .map_err(|e| read_err(&path, e))?;
                let topics = topics.as_string::<i32>();
                let parts = col(KAFKA_PARTITION_COLUMN)?
                    .as_primitive::<Int32Type>()
                    .clone();
                let offsets = col(KAFKA_OFFSET_COLUMN)?
                    .as_primitive::<Int64Type>()
                    .clone();
                for i in 0..batch.num_rows() {
                    let (t, p, o) = (topics.value(i), parts.value(i), offsets.value(i));
                    let o = u64::try_from(o).unwrap_or(0);
                    if let Some(l) = limit {
                        let key = kafka_partition_key(t, p);
                        if o >= l.get(&key).copied().unwrap_or(0) {
                            continue;
                        }
                    }
                    side.rows += 1;
                    side.checksum = side
                        .checksum
                        .wrapping_add(mix(fnv(t) ^ mix(u64::from(p as u32)) ^ mix(o << 1)));
                }
            } else {
                let files = arrow::compute::cast(
                    col(SOURCE_FILE_COLUMN)?,
                    &arrow::datatypes::DataType::Utf8,
                )
                .map_err(|e| read_err(&path, e))?;
                let files = files.as_string::<i32>();
                let lines = col(SOURCE_LINE_COLUMN)?.as_primitive::<Int64Type>().clone();
                for i in 0..batch.num_rows() {
                    let (f, line) = (files.value(i), u64::try_from(lines.value(i)).unwrap_or(0));
                    // Lines are 1-based; a file's offset is the number of lines consumed.
                    if let Some(l) = limit
                        && line > l.get(f).copied().unwrap_or(0)
                    {
                        continue;
                    }
                    side.rows += 1;
                    side.checksum = side.checksum.wrapping_add(mix(fnv(f) ^ mix(line << 1)));
                }
            }
        }
    }
    Ok(out)
}

fn read_err(path: &object_store::path::Path, e: impl Into<BoxError>) -> Error {
    Error::Corrupt {
        path: path.clone(),
        source: ContextError::new("reading for diff", e).into(),
    }
}

/// Diffs versions `a` and `b` of `table`, counting only records before `limit` when given.
pub async fn diff(table: &TableHandle, a: u32, b: u32, limit: Option<&Limit>) -> Result<Diff> {
    let left = sides(table, a, limit).await?;
    let right = sides(table, b, limit).await?;
    let mut days: Vec<String> = left.keys().chain(right.keys()).cloned().collect();
    days.sort();
    days.dedup();
    let mut total = DayDiff {
        day: "total".into(),
        a: Side::default(),
        b: Side::default(),
    };
    let days: Vec<DayDiff> = days
        .into_iter()
        .map(|day| {
            let (sa, sb) = (
                left.get(&day).copied().unwrap_or_default(),
                right.get(&day).copied().unwrap_or_default(),
            );
            for (t, s) in [(&mut total.a, sa), (&mut total.b, sb)] {
                t.rows += s.rows;
                t.checksum = t.checksum.wrapping_add(s.checksum);
            }
            DayDiff { day, a: sa, b: sb }
        })
        .collect();
    Ok(Diff { a, b, days, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_order_independent_and_see_single_records() {
        let coords = [(0u32, 5u64), (1, 5), (0, 6)];
        let sum = |cs: &[(u32, u64)]| {
            cs.iter().fold(0u64, |acc, (p, o)| {
                acc.wrapping_add(mix(fnv("t") ^ mix(u64::from(*p)) ^ mix(o << 1)))
            })
        };
        let mut reversed = coords;
        reversed.reverse();
        assert_eq!(sum(&coords), sum(&reversed));
        assert_ne!(sum(&coords), sum(&coords[..2]));
        // Swapping partition and offset is another record.
        assert_ne!(sum(&[(5, 0)]), sum(&[(0, 5)]));
    }
}
