//! The pure part of the data path, shared by the writers and `kappa-lake transform`: decoded
//! events → rows with their source metadata columns → the version's SQL transform → event time
//! and its partition bucket. A row that fails a step becomes a dead letter of that step; the
//! others go on.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::decode::Stage;
use crate::domain::{Granularity, TimeSpec};
use crate::error::{Result, Unusable};
use crate::partition::{self, EventTimeError};
use crate::source::{Origin, SourceBatch};
use crate::table::{Definition, VersionDefinition};
use crate::transform::Transform;

pub use crate::schema::rows::{
    KAFKA_OFFSET_COLUMN, KAFKA_PARTITION_COLUMN, KAFKA_TIMESTAMP_COLUMN, KAFKA_TOPIC_COLUMN,
    Metadata, SOURCE_FILE_COLUMN, SOURCE_LINE_COLUMN, row_schema,
};

/// The schema of a version's data files: its transform's output when it has one, otherwise
/// its [`row_schema`].
pub fn file_schema(event: &SchemaRef, def: &VersionDefinition) -> Result<SchemaRef> {
    Ok(match transform_of(event, &def.definition)? {
        Some(t) => t.output_schema().clone(),
        None => row_schema(event, def.definition.metadata()),
    })
}

/// A version's transform, compiled over its [`row_schema`]; `None` when it has none.
pub fn transform_of(event: &SchemaRef, def: &Definition) -> Result<Option<Transform>> {
    let Some(sql) = &def.transform else {
        return Ok(None);
    };
    let rows = row_schema(event, def.metadata());
    Transform::compile(sql, rows).map(Some).map_err(|e| {
        Unusable::Transform {
            source: Box::new(e),
        }
        .into()
    })
}

/// Rows of one decoded batch, ready for the writer.
#[derive(Debug)]
pub struct Shaped {
    /// The rows (schema = [`Shaper::output_schema`]).
    pub batch: RecordBatch,
    /// Each row's partition bucket (hours or days since the epoch, its key bucket, or 0).
    pub buckets: Vec<i64>,
    /// For each row, the index of its record in the source batch.
    pub rows: Vec<usize>,
}

/// Shapes decoded events into a version's rows.
#[derive(Debug)]
pub struct Shaper {
    metadata: Metadata,
    rows: SchemaRef,
    transform: Option<Transform>,
    time: Option<TimeSpec>,
    granularity: Granularity,
    /// The key columns, for key buckets.
    key: Vec<String>,
}

impl Shaper {
    /// How the version finds event times (`None`: it is not partitioned by time).
    pub fn time(&self) -> Option<&TimeSpec> {
        self.time.as_ref()
    }

    /// The shaper of definition `def`, whose events have schema `event`.
    pub fn new(event: &SchemaRef, def: &Definition) -> Result<Shaper> {
        let metadata = def.metadata();
        Ok(Shaper {
            metadata,
            rows: row_schema(event, metadata),
            transform: transform_of(event, def)?,
            time: def.partitioning.time.clone(),
            granularity: def.partitioning.granularity,
            key: def.changes.key.clone(),
        })
    }

    /// The schema of the rows it hands to the writer (the version's file schema).
    pub fn output_schema(&self) -> &SchemaRef {
        match &self.transform {
            Some(t) => t.output_schema(),
            None => &self.rows,
        }
    }

    /// Shapes `events`, whose row `i` was decoded from record `rows[i]` of `batch`. A row that
    /// fails is passed to `dead` with its record index, its stage and why. `Ok(None)` when
    /// `batch` comes from another kind of source than the version's.
    pub fn shape(
        &self,
        events: RecordBatch,
        batch: &SourceBatch,
        rows: &[usize],
        dead: &mut dyn FnMut(usize, Stage, String),
    ) -> std::result::Result<Option<Shaped>, ArrowError> {
        let Some((events, rows)) = self.transformed(events, batch, rows, dead)? else {
            return Ok(None);
        };
        self.bucketed(events, batch, rows, dead).map(Some)
    }

    /// The first half of [`Shaper::shape`]: metadata columns and transform, no event time.
    /// Returns the rows and, for each, its record index in `batch`.
    pub fn transformed(
        &self,
        events: RecordBatch,
        batch: &SourceBatch,
        rows: &[usize],
        dead: &mut dyn FnMut(usize, Stage, String),
    ) -> std::result::Result<Option<(RecordBatch, Vec<usize>)>, ArrowError> {
        let Some(events) = append_metadata(self.metadata, &self.rows, events, batch, rows)? else {
            return Ok(None);
        };
        Ok(Some(match &self.transform {
            None => (events, rows.to_vec()),
            Some(t) => {
                let applied = t.apply(&events);
                for (i, reason) in applied.failed {
                    dead(rows[i], Stage::Transform, reason);
                }
                let kept = applied.rows.iter().map(|&i| rows[i]).collect();
                (applied.batch, kept)
            }
        }))
    }

    /// The second half of [`Shaper::shape`]: event times and buckets of transformed rows.
    pub fn bucketed(
        &self,
        events: RecordBatch,
        batch: &SourceBatch,
        rows: Vec<usize>,
        dead: &mut dyn FnMut(usize, Stage, String),
    ) -> std::result::Result<Shaped, ArrowError> {
        let time = match (&self.time, self.granularity) {
            (Some(time), g) if g.is_time() => time,
            (_, Granularity::KeyBuckets(n)) => {
                let key = self
                    .key
                    .iter()
                    .map(|k| {
                        events.column_by_name(k).cloned().ok_or_else(|| {
                            ArrowError::SchemaError(format!("the rows have no key column `{k}`"))
                        })
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let buckets = partition::key_buckets(&key, n)?;
                return Ok(Shaped {
                    batch: events,
                    buckets,
                    rows,
                });
            }
            _ => {
                return Ok(Shaped {
                    buckets: vec![0; events.num_rows()],
                    batch: events,
                    rows,
                });
            }
        };
        let mut keep = Vec::with_capacity(rows.len());
        let mut buckets = Vec::with_capacity(rows.len());
        for (i, t) in Self::event_times(time, &events, batch, &rows)
            .into_iter()
            .enumerate()
        {
            match t.and_then(|t| partition::bucket(t, self.granularity).map_err(Box::new)) {
                Ok(b) => {
                    keep.push(true);
                    buckets.push(b);
                }
                Err(reason) => {
                    keep.push(false);
                    dead(rows[i], Stage::EventTime, reason.to_string());
                }
            }
        }
        if buckets.len() == events.num_rows() {
            return Ok(Shaped {
                batch: events,
                buckets,
                rows,
            });
        }
        let rows = rows
            .into_iter()
            .zip(&keep)
            .filter_map(|(r, &k)| k.then_some(r))
            .collect();
        let batch = filter_record_batch(&events, &BooleanArray::from(keep))?;
        Ok(Shaped {
            batch,
            buckets,
            rows,
        })
    }

    fn event_times(
        time: &TimeSpec,
        events: &RecordBatch,
        batch: &SourceBatch,
        rows: &[usize],
    ) -> partition::EventTimes {
        match time {
            TimeSpec::Field { name, unit } => partition::field_times(events, name, *unit),
            TimeSpec::SourceTimestamp => rows
                .iter()
                .map(|&i| match batch.records[i].timestamp_ms {
                    Some(ms) => ms
                        .checked_mul(1000)
                        .ok_or_else(|| Box::new(EventTimeError::RecordTimestamp { ms })),
                    None => Err(Box::new(EventTimeError::NoSourceTimestamp)),
                })
                .collect(),
        }
    }
}

/// The decoded `events` (row `i` is record `rows[i]` of `batch`) with the metadata columns of
/// version `def` appended, as a batch of `schema` (the [`row_schema`] of `def`). `Ok(None)`
/// when `batch` comes from another kind of source than `def`'s. Pure (no I/O); public for the
/// benchmarks (`benches/stages.rs`).
#[doc(hidden)]
pub fn with_metadata_columns(
    def: &VersionDefinition,
    schema: &SchemaRef,
    events: RecordBatch,
    batch: &SourceBatch,
    rows: &[usize],
) -> std::result::Result<Option<RecordBatch>, arrow::error::ArrowError> {
    append_metadata(def.definition.metadata(), schema, events, batch, rows)
}

fn append_metadata(
    metadata: Metadata,
    schema: &SchemaRef,
    events: RecordBatch,
    batch: &SourceBatch,
    rows: &[usize],
) -> std::result::Result<Option<RecordBatch>, arrow::error::ArrowError> {
    let n = events.num_rows();
    let records = rows.iter().map(|&i| &batch.records[i]);
    let extra: Vec<ArrayRef> = match (metadata, &batch.origin) {
        (Metadata::None, _) => return Ok(Some(events)),
        (Metadata::File, Origin::File) => vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                &*batch.partition,
                n,
            ))),
            Arc::new(Int64Array::from_iter_values(
                records.map(|r| r.offset as i64 + 1),
            )),
        ],
        (Metadata::Kafka, Origin::Kafka { topic, partition }) => vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                &**topic, n,
            ))),
            Arc::new(Int32Array::from_iter_values(std::iter::repeat_n(
                *partition, n,
            ))),
            Arc::new(Int64Array::from_iter_values(
                records.clone().map(|r| r.offset as i64),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter(records.map(|r| r.timestamp_ms))
                    .with_timezone("UTC"),
            ),
        ],
        _ => return Ok(None),
    };
    let mut columns: Vec<ArrayRef> = events.columns().to_vec();
    columns.extend(extra);
    RecordBatch::try_new(schema.clone(), columns).map(Some)
}

// Its one test shapes through an SQL transform.
#[cfg(all(test, feature = "sql"))]
mod tests {
    use super::*;
    use crate::decode::JsonDecoder;
    use crate::domain::{EpochUnit, Format, SourceIdentity};
    use crate::source::Record;
    use crate::table::version::Partitioning;
    use crate::write::SourcePosition;

    fn definition(transform: &str) -> Definition {
        Definition {
            schema: serde_json::json!({"type": "record", "name": "E", "fields": [
                {"name": "id", "type": "long"},
                {"name": "created", "type": "string"}]}),
            schema_file: "e.avsc".into(),
            transform: Some(transform.into()),
            partitioning: Partitioning {
                time: Some(TimeSpec::Field {
                    name: "at".into(),
                    unit: EpochUnit::Ms,
                }),
                granularity: Granularity::Hour,
            },
            format: Format::Delta,
            source: SourceIdentity::Kafka {
                topic: "t".into(),
                encoding: None,
            },
            metadata_columns: true,
            changes: Default::default(),
        }
    }

    fn batch(created: &[&str]) -> SourceBatch {
        let records = created
            .iter()
            .enumerate()
            .map(|(i, c)| Record {
                bytes: format!(r#"{{"id":{i},"created":"{c}"}}"#)
                    .into_bytes()
                    .into(),
                oversized: None,
                offset: 100 + i as u64,
                timestamp_ms: Some(0),
                timestamp_type: None,
                tombstone: false,
                key: None,
                headers: None,
            })
            .collect();
        SourceBatch {
            partition: "t/3".into(),
            origin: Origin::Kafka {
                topic: "t".into(),
                partition: 3,
            },
            start: 100,
            records,
            position: SourcePosition {
                offset: 100 + created.len() as u64,
                end_byte: None,
                eof: false,
            },
        }
    }

    #[test]
    fn a_computed_column_is_the_event_time_and_failures_keep_their_record() {
        let def = definition(
            "SELECT id, from_epoch(created, 'auto') AS at, _kafka_offset FROM events WHERE id <> 2",
        );
        let event = def.event_schema().unwrap().arrow;
        let shaper = Shaper::new(&event, &def).unwrap();
        let names: Vec<_> = shaper
            .output_schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["id", "at", "_kafka_offset"]);
        // 1 h (s), 2023-11-14T22:13:20Z (ms), filtered, not a number, out of range.
        let source = batch(&["3600", "1700000000000", "1", "soon", "1e30"]);
        let decoded = JsonDecoder::new(event, 1 << 20).decode(&source.records);
        assert!(decoded.rejected.is_empty());
        let mut dead = Vec::new();
        let shaped = shaper
            .shape(
                decoded.batches[0].clone(),
                &source,
                &decoded.rows,
                &mut |i, stage, reason| dead.push((i, stage, reason)),
            )
            .unwrap()
            .unwrap();
        assert_eq!(shaped.buckets, [1, 1_700_000_000 / 3600]);
        assert_eq!(shaped.rows, [0, 1]);
        assert_eq!(shaped.batch.num_rows(), 2);
        let failed: Vec<_> = dead.iter().map(|(i, s, _)| (*i, *s)).collect();
        assert_eq!(failed, [(3, Stage::Transform), (4, Stage::Transform)]);
        assert!(dead[0].2.contains("soon"), "{}", dead[0].2);
    }
}
