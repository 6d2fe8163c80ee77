//! Event time → hive partition (`date=YYYY-MM-DD[/hour=HH]`, UTC); an upsert table's key →
//! its key bucket ([`key_buckets`]).
//!
//! Event time comes from a field of the decoded batch (Arrow timestamp of any unit, `date`,
//! an RFC 3339 string, or an epoch number in the configured unit) or from the record's source
//! timestamp. A partition is identified by its bucket: whole hours or days since the epoch.
//! Values are formatted from integers, so a partition path can never contain `/`, `..` or
//! anything else that escapes the version directory; years outside 0000–9999 are rejected.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Datelike, Timelike};

use crate::domain::{EpochUnit, Granularity, KEY_BUCKET_COLUMN};

mod key;

pub use key::{hashable, key_buckets};

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, in µs since the epoch.
const MIN_MICROS: i64 = -62_167_219_200_000_000;
const MAX_MICROS: i64 = 253_402_300_799_999_999;

/// Why a row has no usable event time (the text its dead letter carries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventTimeError {
    /// The batch has no such column.
    #[error("event time field `{field}` is missing")]
    Missing {
        /// The configured field.
        field: String,
    },
    /// The row's value is null.
    #[error("event time field `{field}` is null or missing")]
    Null {
        /// The configured field.
        field: String,
    },
    /// The column's type cannot hold a time.
    #[error("event time field `{field}` has type {data_type}")]
    Type {
        /// The configured field.
        field: String,
        /// The column's type.
        data_type: DataType,
    },
    /// The value does not fit in µs since the epoch.
    #[error("event time {value} overflows")]
    Overflow {
        /// The value, in the field's unit.
        value: i64,
    },
    /// A string that is not an RFC 3339 time.
    #[error("event time `{text}` is not RFC 3339: {source}")]
    NotRfc3339 {
        /// The string.
        text: String,
        /// chrono's reason.
        #[source]
        source: chrono::ParseError,
    },
    /// `time = { source = … }` and the record has no timestamp.
    #[error("the record has no source timestamp")]
    NoSourceTimestamp,
    /// A source timestamp that does not fit in µs since the epoch.
    #[error("timestamp {ms} overflows")]
    TimestampOverflow {
        /// The timestamp, in ms.
        ms: i64,
    },
    /// A record timestamp (ms) that does not fit in µs since the epoch.
    #[error("record timestamp {ms} ms is out of range")]
    RecordTimestamp {
        /// The timestamp, in ms.
        ms: i64,
    },
    /// A time outside the years a partition path can name.
    #[error("event time {micros}µs is outside the years 0000–9999")]
    OutOfRange {
        /// The time, in µs since the epoch.
        micros: i64,
    },
}

/// Event time of each row in µs since the epoch, or why it has none (boxed: most rows have a
/// time, and a row's slot stays 16 bytes).
pub type EventTimes = Vec<Result<i64, Box<EventTimeError>>>;

/// Reads the event time of every row from column `field`.
pub fn field_times(batch: &RecordBatch, field: &str, unit: EpochUnit) -> EventTimes {
    let Some(col) = batch.column_by_name(field) else {
        let missing = EventTimeError::Missing {
            field: field.to_string(),
        };
        return vec![Err(Box::new(missing)); batch.num_rows()];
    };
    let epoch_mult = match unit {
        EpochUnit::S => 1_000_000,
        EpochUnit::Ms => 1_000,
        EpochUnit::Us => 1,
    };
    let scaled = |v: i64, mult: i64| {
        v.checked_mul(mult)
            .ok_or_else(|| Box::new(EventTimeError::Overflow { value: v }))
    };
    let null = || {
        Err(Box::new(EventTimeError::Null {
            field: field.to_string(),
        }))
    };
    let rows = 0..col.len();
    let times: EventTimes = match col.data_type() {
        DataType::Timestamp(u, _) => {
            let (vals, div, mult): (Vec<Option<i64>>, i64, i64) = match u {
                TimeUnit::Second => (
                    col.as_primitive::<TimestampSecondType>().iter().collect(),
                    1,
                    1_000_000,
                ),
                TimeUnit::Millisecond => (
                    col.as_primitive::<TimestampMillisecondType>()
                        .iter()
                        .collect(),
                    1,
                    1_000,
                ),
                TimeUnit::Microsecond => (
                    col.as_primitive::<TimestampMicrosecondType>()
                        .iter()
                        .collect(),
                    1,
                    1,
                ),
                TimeUnit::Nanosecond => (
                    col.as_primitive::<TimestampNanosecondType>()
                        .iter()
                        .collect(),
                    1_000,
                    1,
                ),
            };
            vals.into_iter()
                .map(|v| v.map_or_else(null, |v| scaled(v.div_euclid(div), mult)))
                .collect()
        }
        DataType::Int64 => col
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map_or_else(null, |v| scaled(v, epoch_mult)))
            .collect(),
        DataType::Int32 => col
            .as_primitive::<Int32Type>()
            .iter()
            .map(|v| v.map_or_else(null, |v| scaled(i64::from(v), epoch_mult)))
            .collect(),
        DataType::Date32 => col
            .as_primitive::<Date32Type>()
            .iter()
            .map(|v| v.map_or_else(null, |v| scaled(i64::from(v), MICROS_PER_DAY)))
            .collect(),
        DataType::Utf8 => {
            let strings = col.as_string::<i32>();
            rows.map(|i| {
                if strings.is_null(i) {
                    return null();
                }
                let s = strings.value(i);
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.timestamp_micros())
                    .map_err(|source| {
                        Box::new(EventTimeError::NotRfc3339 {
                            text: s.to_string(),
                            source,
                        })
                    })
            })
            .collect()
        }
        other => {
            let wrong = EventTimeError::Type {
                field: field.to_string(),
                data_type: other.clone(),
            };
            vec![Err(Box::new(wrong)); batch.num_rows()]
        }
    };
    times
}

/// Event times from source timestamps in milliseconds (e.g. Kafka record timestamps).
pub fn source_times(timestamps_ms: &[Option<i64>]) -> EventTimes {
    timestamps_ms
        .iter()
        .map(|t| {
            t.ok_or_else(|| Box::new(EventTimeError::NoSourceTimestamp))
                .and_then(|ms| {
                    ms.checked_mul(1_000)
                        .ok_or_else(|| Box::new(EventTimeError::TimestampOverflow { ms }))
                })
        })
        .collect()
}

/// Maps an event time to its partition bucket, rejecting years outside 0000–9999.
pub fn bucket(micros: i64, granularity: Granularity) -> Result<i64, EventTimeError> {
    if !(MIN_MICROS..=MAX_MICROS).contains(&micros) {
        return Err(EventTimeError::OutOfRange { micros });
    }
    // Partitions that are not spans of time hold every event time in one bucket's worth.
    Ok(width(granularity).map_or(0, |w| micros.div_euclid(w)))
}

fn width(granularity: Granularity) -> Option<i64> {
    match granularity {
        Granularity::Day => Some(MICROS_PER_DAY),
        Granularity::Hour => Some(MICROS_PER_HOUR),
        Granularity::KeyBuckets(_) | Granularity::Unpartitioned => None,
    }
}

/// Hive partition values of a bucket, in path order: `[("date", "2026-11-26"), ("hour", "15")]`,
/// `[("key_bucket", "7")]`, or none (unpartitioned).
pub fn partition_values(bucket: i64, granularity: Granularity) -> Vec<(String, String)> {
    let Some(width) = width(granularity) else {
        return match granularity {
            Granularity::KeyBuckets(_) => vec![(KEY_BUCKET_COLUMN.into(), bucket.to_string())],
            _ => Vec::new(),
        };
    };
    let micros = bucket * width;
    // In range by construction of `bucket`.
    let t = DateTime::from_timestamp_micros(micros).unwrap_or_default();
    let date = format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day());
    match granularity {
        Granularity::Day => vec![("date".into(), date)],
        _ => vec![
            ("date".into(), date),
            ("hour".into(), format!("{:02}", t.hour())),
        ],
    }
}

/// Splits `batch` by bucket (`buckets[i]` is row `i`'s); a batch in one bucket is not copied.
pub fn split_by_bucket(
    batch: &RecordBatch,
    buckets: &[i64],
) -> Result<Vec<(i64, RecordBatch)>, arrow::error::ArrowError> {
    let Some(&first) = buckets.first() else {
        return Ok(Vec::new());
    };
    if buckets.iter().all(|b| *b == first) {
        return Ok(vec![(first, batch.clone())]);
    }
    let mut groups: std::collections::BTreeMap<i64, Vec<u32>> = Default::default();
    for (i, b) in buckets.iter().enumerate() {
        groups.entry(*b).or_default().push(i as u32);
    }
    groups
        .into_iter()
        .map(|(bucket, rows)| {
            let part =
                arrow::compute::take_record_batch(batch, &arrow::array::UInt32Array::from(rows))?;
            Ok((bucket, part))
        })
        .collect()
}

/// Splits several batches of one schema by bucket at once (`parts[k].1[i]` is the bucket of
/// row `i` of `parts[k].0`): one batch per bucket, its rows in the order of `parts` and then of
/// their rows, copied once. One part is [`split_by_bucket`].
pub fn split_batches_by_bucket(
    parts: &[(&RecordBatch, &[i64])],
) -> Result<Vec<(i64, RecordBatch)>, arrow::error::ArrowError> {
    if let [(batch, buckets)] = parts {
        return split_by_bucket(batch, buckets);
    }
    let mut groups: std::collections::BTreeMap<i64, Vec<(usize, usize)>> = Default::default();
    for (k, (_, buckets)) in parts.iter().enumerate() {
        for (i, b) in buckets.iter().enumerate() {
            groups.entry(*b).or_default().push((k, i));
        }
    }
    let batches: Vec<&RecordBatch> = parts.iter().map(|(b, _)| *b).collect();
    groups
        .into_iter()
        .map(|(bucket, rows)| {
            let part = arrow::compute::interleave_record_batch(&batches, &rows)?;
            Ok((bucket, part))
        })
        .collect()
}

/// `date=…/hour=…` for a bucket.
pub fn partition_path(values: &[(String, String)]) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch(col: Arc<dyn Array>) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("ts", col.data_type().clone(), true)]);
        RecordBatch::try_new(Arc::new(schema), vec![col]).unwrap()
    }

    #[test]
    fn batches_split_together_keep_their_rows_in_order() {
        let a = batch(Arc::new(Int64Array::from(vec![1, 2, 3, 4])));
        let b = batch(Arc::new(Int64Array::from(vec![5, 6, 7])));
        let parts =
            split_batches_by_bucket(&[(&a, &[10, 20, 10, 30]), (&b, &[20, 10, 20])]).unwrap();
        let got: Vec<(i64, Vec<i64>)> = parts
            .iter()
            .map(|(bucket, part)| {
                let values = part
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                (*bucket, values.values().to_vec())
            })
            .collect();
        assert_eq!(
            got,
            vec![(10, vec![1, 3, 6]), (20, vec![2, 5, 7]), (30, vec![4])]
        );
        // One batch: the same as `split_by_bucket` (and not copied when in one bucket).
        let one = split_batches_by_bucket(&[(&a, &[7, 7, 7, 7])]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].1.column(0).to_data(), a.column(0).to_data());
    }

    #[test]
    fn all_time_encodings_agree() {
        let want = 1_764_169_200_000_000i64; // 2025-11-26T15:00:00Z
        let ts = batch(Arc::new(
            TimestampMillisecondArray::from(vec![want / 1000]).with_timezone("UTC"),
        ));
        let ms = batch(Arc::new(Int64Array::from(vec![want / 1000])));
        let s = batch(Arc::new(Int64Array::from(vec![want / 1_000_000])));
        let rfc = batch(Arc::new(StringArray::from(vec![
            "2025-11-26T16:00:00+01:00",
        ])));
        assert_eq!(field_times(&ts, "ts", EpochUnit::Ms), vec![Ok(want)]);
        assert_eq!(field_times(&ms, "ts", EpochUnit::Ms), vec![Ok(want)]);
        assert_eq!(field_times(&s, "ts", EpochUnit::S), vec![Ok(want)]);
        assert_eq!(field_times(&rfc, "ts", EpochUnit::Ms), vec![Ok(want)]);
        let b = bucket(want, Granularity::Hour).unwrap();
        assert_eq!(
            partition_path(&partition_values(b, Granularity::Hour)),
            "date=2025-11-26/hour=15"
        );
        let b = bucket(want, Granularity::Day).unwrap();
        assert_eq!(
            partition_path(&partition_values(b, Granularity::Day)),
            "date=2025-11-26"
        );
    }

    #[test]
    fn bad_times_are_reasons_not_panics() {
        let b = batch(Arc::new(StringArray::from(vec![
            Some("yesterday"),
            None,
            Some("../../etc"),
        ])));
        let t = field_times(&b, "ts", EpochUnit::Ms);
        assert!(t.iter().all(Result::is_err));
        let b = batch(Arc::new(Int64Array::from(vec![i64::MAX])));
        assert!(field_times(&b, "ts", EpochUnit::S)[0].is_err());
        assert!(bucket(MAX_MICROS + 1, Granularity::Hour).is_err());
        assert!(bucket(MIN_MICROS - 1, Granularity::Day).is_err());
        // Pre-epoch times floor into the right partition.
        let b = bucket(-1, Granularity::Hour).unwrap();
        assert_eq!(
            partition_path(&partition_values(b, Granularity::Hour)),
            "date=1969-12-31/hour=23"
        );
    }
}
