//! The Delta representation of a version's rows and time partitions.
//!
//! Invariant: a Delta table's schema is the row schema (timestamps as µs UTC) followed by the
//! partition columns: `date` (and `hour` at hour granularity), `key_bucket` (key buckets), or
//! none (unpartitioned); a bucket's partition values
//! are derived here and nowhere else, so paths, `add` actions and the table agree.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use delta_kernel::expressions::Scalar;
use deltalake::kernel::scalars::ScalarExt;
use deltalake::kernel::schema::cast::normalize_for_delta;
use indexmap::IndexMap;

use crate::config::Granularity;
use crate::domain::KEY_BUCKET_COLUMN;

/// The partition columns of a version at `granularity`, with their Delta types.
pub(super) fn partition_fields(granularity: Granularity) -> Vec<Field> {
    match granularity {
        Granularity::Day => vec![Field::new("date", DataType::Date32, true)],
        Granularity::Hour => vec![
            Field::new("date", DataType::Date32, true),
            Field::new("hour", DataType::Int32, true),
        ],
        Granularity::KeyBuckets(_) => vec![Field::new(KEY_BUCKET_COLUMN, DataType::Int32, true)],
        Granularity::Unpartitioned => Vec::new(),
    }
}

/// The Delta table schema: the row schema, then the partition columns. Delta timestamps are
/// microseconds in UTC; rows are cast on write.
pub fn table_schema(file_schema: &SchemaRef, granularity: Granularity) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = file_schema.fields().iter().map(delta_field).collect();
    fields.extend(partition_fields(granularity).into_iter().map(Arc::new));
    normalize_for_delta(&Arc::new(Schema::new(fields)))
}

pub(super) fn delta_field(field: &Arc<Field>) -> Arc<Field> {
    Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(delta_type(field.data_type())),
    )
}

fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, tz) => DataType::Timestamp(
            arrow::datatypes::TimeUnit::Microsecond,
            tz.as_ref().map(|_| "UTC".into()),
        ),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(delta_field).collect()),
        DataType::List(f) => DataType::List(delta_field(f)),
        DataType::LargeList(f) => DataType::LargeList(delta_field(f)),
        DataType::Map(f, sorted) => DataType::Map(delta_field(f), *sorted),
        other => other.clone(),
    }
}

/// The Delta partition values of a bucket.
pub(super) fn bucket_values(bucket: i64, granularity: Granularity) -> IndexMap<String, Scalar> {
    // Buckets are days or hours since the epoch, within the years 0000–9999, or key buckets
    // below a u32 (so the casts cannot truncate).
    let (day, hour) = match granularity {
        Granularity::Day => (bucket, None),
        Granularity::Hour => (bucket.div_euclid(24), Some(bucket.rem_euclid(24))),
        Granularity::KeyBuckets(_) => {
            return IndexMap::from([(
                KEY_BUCKET_COLUMN.to_string(),
                Scalar::Integer(bucket as i32),
            )]);
        }
        Granularity::Unpartitioned => return IndexMap::new(),
    };
    let mut out = IndexMap::from([("date".to_string(), Scalar::Date(day as i32))]);
    if let Some(h) = hour {
        out.insert("hour".to_string(), Scalar::Integer(h as i32));
    }
    out
}

/// A time bucket's Delta partition values as strings, for paths and `add` actions: Delta's
/// serialization of [`bucket_values`] (`date=2026-11-26`, `hour=5`).
pub(super) fn partition_strings(bucket: i64, granularity: Granularity) -> Vec<(String, String)> {
    bucket_values(bucket, granularity)
        .into_iter()
        .map(|(k, v)| (k, v.serialize()))
        .collect()
}
