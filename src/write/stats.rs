//! Delta `add` statistics (`numRecords`, `minValues`, `maxValues`, `nullCount`) of a data file,
//! read off the Parquet footer the writer produced, as delta-rs and Spark write them: nested
//! structs as nested objects, list and map leaves left out, dates as `YYYY-MM-DD`, timestamps
//! truncated to milliseconds, decimals as numbers, binary columns without min/max.

use parquet::basic::{
    ConvertedType, DecimalType, LogicalType, TimeUnit, TimestampType, Type as PhysicalType,
};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnDescriptor;
use serde_json::{Map, Value, json};

/// Delta's default number of leading top-level columns with statistics
/// (`delta.dataSkippingNumIndexedCols`).
pub const DEFAULT_INDEXED_COLUMNS: usize = 32;

/// The `stats` JSON of a file whose footer is `meta`, for the first `indexed` top-level
/// columns (`None`: all).
pub fn stats_json(meta: &ParquetMetaData, indexed: Option<usize>) -> String {
    let schema = meta.file_metadata().schema_descr();
    let mut min_values = Map::new();
    let mut max_values = Map::new();
    let mut null_count = Map::new();
    let mut tops: Vec<&str> = Vec::new();
    for (idx, column) in schema.columns().iter().enumerate() {
        let parts = column.path().parts();
        let Some(top) = parts.first() else { continue };
        if !tops.contains(&top.as_str()) {
            if indexed.is_some_and(|n| tops.len() >= n) {
                break;
            }
            tops.push(top);
        }
        // Leaves inside lists and maps describe nested values, not rows.
        if column.max_rep_level() > 0 {
            continue;
        }
        let mut agg = Aggregate::new();
        for group in meta.row_groups() {
            agg.add(group.column(idx).statistics());
        }
        if let Some(nulls) = agg.nulls {
            insert(&mut null_count, parts, json!(nulls));
        }
        if let Some(v) = agg.min.as_ref().and_then(|s| to_json(s, column, true)) {
            insert(&mut min_values, parts, v);
        }
        if let Some(v) = agg.max.as_ref().and_then(|s| to_json(s, column, false)) {
            insert(&mut max_values, parts, v);
        }
    }
    json!({
        "numRecords": meta.file_metadata().num_rows(),
        "minValues": min_values,
        "maxValues": max_values,
        "nullCount": null_count,
    })
    .to_string()
}

/// A leaf column's statistics over the file's row groups: the row groups holding the minimum
/// and the maximum, and the null count (unknown if a row group does not say).
struct Aggregate<'a> {
    min: Option<&'a Statistics>,
    max: Option<&'a Statistics>,
    nulls: Option<u64>,
}

impl<'a> Aggregate<'a> {
    fn new() -> Self {
        Aggregate {
            min: None,
            max: None,
            nulls: Some(0),
        }
    }

    fn add(&mut self, stats: Option<&'a Statistics>) {
        let Some(stats) = stats else {
            self.nulls = None;
            return;
        };
        self.nulls = self.nulls.zip(stats.null_count_opt()).map(|(a, b)| a + b);
        if has_value(stats, true) && self.min.is_none_or(|m| less(stats, m, true)) {
            self.min = Some(stats);
        }
        if has_value(stats, false) && self.max.is_none_or(|m| less(m, stats, false)) {
            self.max = Some(stats);
        }
    }
}

fn has_value(s: &Statistics, min: bool) -> bool {
    if min {
        s.min_bytes_opt().is_some()
    } else {
        s.max_bytes_opt().is_some()
    }
}

/// Whether `a`'s min (or max) is below `b`'s.
fn less(a: &Statistics, b: &Statistics, min: bool) -> bool {
    macro_rules! cmp {
        ($x:expr, $y:expr) => {
            match (min, $x, $y) {
                (true, x, y) => x.min_opt() < y.min_opt(),
                (false, x, y) => x.max_opt() < y.max_opt(),
            }
        };
    }
    match (a, b) {
        (Statistics::Boolean(x), Statistics::Boolean(y)) => cmp!(x, y),
        (Statistics::Int32(x), Statistics::Int32(y)) => cmp!(x, y),
        (Statistics::Int64(x), Statistics::Int64(y)) => cmp!(x, y),
        (Statistics::Float(x), Statistics::Float(y)) => cmp!(x, y),
        (Statistics::Double(x), Statistics::Double(y)) => cmp!(x, y),
        (Statistics::ByteArray(x), Statistics::ByteArray(y)) => cmp!(x, y),
        (Statistics::FixedLenByteArray(x), Statistics::FixedLenByteArray(y)) => {
            // Decimals: big-endian two's complement of equal width.
            let (x, y) = if min {
                (x.min_bytes_opt(), y.min_bytes_opt())
            } else {
                (x.max_bytes_opt(), y.max_bytes_opt())
            };
            x.map(be_i128) < y.map(be_i128)
        }
        _ => false,
    }
}

fn be_i128(b: &[u8]) -> i128 {
    if b.is_empty() || b.len() > 16 {
        return 0;
    }
    let fill = if b[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut out = [fill; 16];
    out[16 - b.len()..].copy_from_slice(b);
    i128::from_be_bytes(out)
}

fn logical(column: &ColumnDescriptor) -> Option<LogicalType> {
    column
        .logical_type_ref()
        .cloned()
        .or(match column.converted_type() {
            ConvertedType::UTF8 => Some(LogicalType::String),
            ConvertedType::DATE => Some(LogicalType::Date),
            _ => None,
        })
}

/// The min (or max) of `s` as Delta writes it; `None` where Delta keeps no such statistic.
fn to_json(s: &Statistics, column: &ColumnDescriptor, min: bool) -> Option<Value> {
    let logical = logical(column);
    macro_rules! pick {
        ($x:expr) => {
            if min { $x.min_opt() } else { $x.max_opt() }
        };
    }
    let decimal = |unscaled: i128, scale: i32| json!(unscaled as f64 / 10f64.powi(scale));
    match (s, logical) {
        (Statistics::Boolean(x), _) => pick!(x).map(|v| json!(v)),
        (Statistics::Int32(x), Some(LogicalType::Date)) => pick!(x).and_then(|d| {
            chrono::DateTime::from_timestamp(i64::from(*d) * 86_400, 0)
                .map(|t| json!(t.format("%Y-%m-%d").to_string()))
        }),
        (Statistics::Int32(x), Some(LogicalType::Decimal(DecimalType { scale, .. }))) => {
            pick!(x).map(|v| decimal(i128::from(*v), scale))
        }
        (Statistics::Int32(x), _) => pick!(x).map(|v| json!(v)),
        (
            Statistics::Int64(x),
            Some(LogicalType::Timestamp(TimestampType {
                is_adjusted_to_u_t_c,
                unit,
            })),
        ) => {
            let v = *pick!(x)?;
            let t = match unit {
                TimeUnit::MILLIS => chrono::DateTime::from_timestamp_millis(v),
                TimeUnit::MICROS => chrono::DateTime::from_timestamp_micros(v),
                TimeUnit::NANOS => Some(chrono::DateTime::from_timestamp_nanos(v)),
            }?;
            let format = if is_adjusted_to_u_t_c {
                "%Y-%m-%dT%H:%M:%S%.3fZ"
            } else {
                "%Y-%m-%d %H:%M:%S%.3f"
            };
            Some(json!(t.format(format).to_string()))
        }
        (Statistics::Int64(x), Some(LogicalType::Decimal(DecimalType { scale, .. }))) => {
            pick!(x).map(|v| decimal(i128::from(*v), scale))
        }
        (Statistics::Int64(x), _) => pick!(x).map(|v| json!(v)),
        (Statistics::Float(x), _) => pick!(x).filter(|v| v.is_finite()).map(|v| json!(v)),
        (Statistics::Double(x), _) => pick!(x).filter(|v| v.is_finite()).map(|v| json!(v)),
        (Statistics::ByteArray(x), Some(LogicalType::String))
            if column.physical_type() == PhysicalType::BYTE_ARRAY =>
        {
            let b = if min {
                x.min_bytes_opt()
            } else {
                x.max_bytes_opt()
            }?;
            std::str::from_utf8(b).ok().map(|v| json!(v))
        }
        (
            Statistics::FixedLenByteArray(x),
            Some(LogicalType::Decimal(DecimalType { scale, .. })),
        ) => {
            let b = if min {
                x.min_bytes_opt()
            } else {
                x.max_bytes_opt()
            }?;
            (b.len() <= 16).then(|| decimal(be_i128(b), scale))
        }
        _ => None,
    }
}

/// Sets `value` at the nested `path` of `map`.
fn insert(map: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [leaf] => {
            map.insert(leaf.clone(), value);
        }
        [head, rest @ ..] => {
            let child = map
                .entry(head.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(child) = child {
                insert(child, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Date32Array, Decimal128Array, Int64Array, ListArray, StringArray, StructArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema, TimeUnit as ArrowUnit};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    fn footer(batches: &[RecordBatch], rows_per_group: usize) -> ParquetMetaData {
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows_per_group))
            .build();
        let mut w = ArrowWriter::try_new(Vec::new(), batches[0].schema(), Some(props)).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.close().unwrap()
    }

    #[test]
    fn stats_cover_every_row_group_nested_fields_and_delta_formats() {
        let device = Fields::from(vec![Field::new("os", DataType::Utf8, true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(ArrowUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("day", DataType::Date32, true),
            Field::new("amount", DataType::Decimal128(12, 2), true),
            Field::new("device", DataType::Struct(device.clone()), true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
                true,
            ),
        ]));
        let batch = |ids: Vec<i64>, ts: Vec<Option<i64>>, os: Vec<Option<&str>>| {
            let n = ids.len();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
                Arc::new(Date32Array::from(vec![Some(20_418); n])),
                Arc::new(
                    Decimal128Array::from(
                        ids.iter()
                            .map(|i| Some(i128::from(*i) * 150))
                            .collect::<Vec<_>>(),
                    )
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
                ),
                Arc::new(StructArray::new(
                    device.clone(),
                    vec![Arc::new(StringArray::from(os)) as ArrayRef],
                    None,
                )),
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
                    (0..n).map(|i| Some(vec![Some(i as i32)])),
                )),
            ];
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        };
        let meta = footer(
            &[
                batch(
                    vec![5, 7],
                    vec![Some(1_795_651_200_123_456), None],
                    vec![Some("linux"), None],
                ),
                batch(
                    vec![2, 9],
                    vec![Some(1_795_654_800_000_000), None],
                    vec![Some("ios"), Some("zos")],
                ),
            ],
            2,
        );
        assert_eq!(meta.num_row_groups(), 2);
        let stats: Value = serde_json::from_str(&stats_json(&meta, None)).unwrap();
        assert_eq!(stats["numRecords"], 4);
        assert_eq!(stats["minValues"]["id"], 2);
        assert_eq!(stats["maxValues"]["id"], 9);
        assert_eq!(stats["minValues"]["ts"], "2026-11-26T00:00:00.123Z");
        assert_eq!(stats["maxValues"]["ts"], "2026-11-26T01:00:00.000Z");
        assert_eq!(stats["nullCount"]["ts"], 2);
        assert_eq!(stats["minValues"]["day"], "2025-11-26");
        assert_eq!(stats["minValues"]["amount"], 3.0);
        assert_eq!(stats["maxValues"]["amount"], 13.5);
        assert_eq!(stats["minValues"]["device"]["os"], "ios");
        assert_eq!(stats["maxValues"]["device"]["os"], "zos");
        assert_eq!(stats["nullCount"]["device"]["os"], 1);
        assert!(stats["minValues"].get("tags").is_none(), "{stats}");

        let first_two: Value = serde_json::from_str(&stats_json(&meta, Some(2))).unwrap();
        assert_eq!(
            first_two["minValues"].as_object().unwrap().len(),
            2,
            "{first_two}"
        );
    }
}
