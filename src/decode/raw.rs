//! `encoding = "raw"`: Kafka records as they came → rows of the built-in schema
//! `schemas/kafka-record.avsc` (`key`, `value`, `headers`, `timestamp_type`; the shaper adds
//! the `_kafka_*` coordinates and timestamp). The rows of a raw archive table.
//!
//! Invariant: lossless. Every byte of a record's key, value and headers is kept, and so is
//! whether each is null (a tombstone's value is null, an empty value is empty); headers keep
//! their order and repeated names. Only a record over `max_record_bytes` is rejected, as with
//! every encoding (a read error, dead-lettered whole).

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryBuilder, ListArray, RecordBatch, StringBuilder, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, FieldRef, Fields, SchemaRef};
use arrow::error::ArrowError;
use bytes::Bytes;

use crate::decode::{Decoded, RawRecord, Rejected, Stage};
use crate::domain::TimestampType;

/// What the raw decoder reads from a record besides its value: the rest of a Kafka record.
/// The defaults describe a bare payload (no key, no headers, no timestamp).
pub trait KafkaRecord: RawRecord {
    /// The key; `None` when the record has none.
    fn key(&self) -> Option<&[u8]> {
        None
    }
    /// Whether the value is null (a tombstone), as opposed to empty.
    fn is_tombstone(&self) -> bool {
        false
    }
    /// The headers in order (a header's value may be null).
    fn headers(&self) -> &[(String, Option<Bytes>)] {
        &[]
    }
    /// What the record's timestamp is, when it has one.
    fn timestamp_type(&self) -> Option<TimestampType> {
        None
    }
}

/// A bare payload (tests, benches, fuzzing).
impl KafkaRecord for &[u8] {}

/// Decodes records into the rows of the built-in raw schema.
#[derive(Debug, Clone)]
pub struct RawDecoder {
    schema: SchemaRef,
    header: FieldRef,
    header_fields: Fields,
    max_record_bytes: usize,
}

impl RawDecoder {
    /// A decoder into `schema` (the Arrow mapping of `schemas/kafka-record.avsc`); records
    /// above `max_record_bytes` are rejected. Fails when `schema` is not that mapping.
    pub fn new(schema: SchemaRef, max_record_bytes: usize) -> Result<Self, ArrowError> {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        if names != ["key", "value", "headers", "timestamp_type"] {
            return Err(ArrowError::SchemaError(format!(
                "a raw table's rows are key, value, headers, timestamp_type; this schema has {names:?}"
            )));
        }
        let DataType::List(header) = schema.field(2).data_type() else {
            return Err(ArrowError::SchemaError(
                "a raw table's `headers` must be a list".into(),
            ));
        };
        let DataType::Struct(header_fields) = header.data_type() else {
            return Err(ArrowError::SchemaError(
                "a raw table's `headers` must be a list of {key, value}".into(),
            ));
        };
        Ok(RawDecoder {
            header_fields: header_fields.clone(),
            header: header.clone(),
            schema,
            max_record_bytes,
        })
    }

    /// Decodes `records`; only oversized ones are rejected.
    pub fn decode<R: KafkaRecord>(&self, records: &[R]) -> Decoded {
        let mut out = Decoded {
            batches: Vec::new(),
            rows: Vec::with_capacity(records.len()),
            rejected: Vec::new(),
            deletes: Default::default(),
        };
        let mut keys = BinaryBuilder::new();
        let mut values = BinaryBuilder::new();
        let mut header_keys = StringBuilder::new();
        let mut header_values = BinaryBuilder::new();
        let mut header_counts = Vec::with_capacity(records.len());
        let mut timestamp_types = StringBuilder::new();
        for (i, r) in records.iter().enumerate() {
            let len = r.oversized().unwrap_or(r.bytes().len() as u64);
            if len > self.max_record_bytes as u64 {
                out.rejected.push(Rejected {
                    index: i,
                    stage: Stage::Read,
                    reason: format!(
                        "record of {len} bytes exceeds max_record_bytes ({})",
                        self.max_record_bytes
                    ),
                });
                continue;
            }
            out.rows.push(i);
            keys.append_option(r.key());
            if r.is_tombstone() {
                values.append_null();
            } else {
                values.append_value(r.bytes());
            }
            for (name, value) in r.headers() {
                header_keys.append_value(name);
                header_values.append_option(value.as_deref());
            }
            header_counts.push(r.headers().len());
            timestamp_types.append_option(r.timestamp_type().map(TimestampType::as_str));
        }
        if out.rows.is_empty() {
            return out;
        }
        let built = self.batch(
            keys,
            values,
            (header_keys, header_values, header_counts),
            timestamp_types,
        );
        match built {
            Ok(batch) => out.batches.push(batch),
            // Only a schema that is not the built-in one's mapping gets here (`new` checks
            // names and nesting, not every type): nothing is lost, every record is rejected.
            Err(e) => {
                out.rejected
                    .extend(out.rows.drain(..).map(|index| Rejected {
                        index,
                        stage: Stage::Decode,
                        reason: format!("the raw table's schema does not fit Kafka records: {e}"),
                    }));
            }
        }
        out
    }

    fn batch(
        &self,
        mut keys: BinaryBuilder,
        mut values: BinaryBuilder,
        headers: (StringBuilder, BinaryBuilder, Vec<usize>),
        mut timestamp_types: StringBuilder,
    ) -> Result<RecordBatch, ArrowError> {
        let (mut header_keys, mut header_values, header_counts) = headers;
        let entries = StructArray::try_new(
            self.header_fields.clone(),
            vec![
                Arc::new(header_keys.finish()) as ArrayRef,
                Arc::new(header_values.finish()),
            ],
            None,
        )?;
        let offsets = OffsetBuffer::from_lengths(header_counts);
        let headers = ListArray::try_new(self.header.clone(), offsets, Arc::new(entries), None)?;
        RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(keys.finish()),
                Arc::new(values.finish()),
                Arc::new(headers),
                Arc::new(timestamp_types.finish()),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};

    use super::*;
    use crate::schema::{EventSchema, KAFKA_RECORD_SCHEMA};

    struct Rec {
        value: Option<&'static [u8]>,
        key: Option<&'static [u8]>,
        headers: Vec<(String, Option<Bytes>)>,
        ts: Option<TimestampType>,
    }

    impl RawRecord for Rec {
        fn bytes(&self) -> &[u8] {
            self.value.unwrap_or_default()
        }
        fn oversized(&self) -> Option<u64> {
            None
        }
    }

    impl KafkaRecord for Rec {
        fn key(&self) -> Option<&[u8]> {
            self.key
        }
        fn is_tombstone(&self) -> bool {
            self.value.is_none()
        }
        fn headers(&self) -> &[(String, Option<Bytes>)] {
            &self.headers
        }
        fn timestamp_type(&self) -> Option<TimestampType> {
            self.ts
        }
    }

    fn decoder(max: usize) -> RawDecoder {
        let schema = EventSchema::parse(KAFKA_RECORD_SCHEMA).expect("the built-in schema parses");
        RawDecoder::new(schema.arrow, max).expect("the built-in schema is a raw schema")
    }

    #[test]
    fn keeps_nulls_empties_bytes_and_repeated_headers() {
        let records = [
            Rec {
                value: Some(b"\xff\x00not utf-8"),
                key: Some(b"k1"),
                headers: vec![
                    ("trace".into(), Some(Bytes::from_static(b"a"))),
                    ("trace".into(), None),
                ],
                ts: Some(TimestampType::LogAppendTime),
            },
            Rec {
                value: None,
                key: Some(b""),
                headers: vec![],
                ts: None,
            },
            Rec {
                value: Some(b""),
                key: None,
                headers: vec![("x".into(), Some(Bytes::new()))],
                ts: Some(TimestampType::CreateTime),
            },
        ];
        let out = decoder(1 << 20).decode(&records);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        assert_eq!(out.rows, [0, 1, 2]);
        let b = &out.batches[0];
        let keys = b.column(0).as_binary::<i32>();
        assert_eq!(
            (keys.value(0), keys.value(1), keys.is_null(2)),
            (&b"k1"[..], &b""[..], true)
        );
        let values = b.column(1).as_binary::<i32>();
        assert_eq!(values.value(0), b"\xff\x00not utf-8");
        assert!(values.is_null(1));
        assert!(values.is_valid(2) && values.value(2).is_empty());
        let headers = b.column(2).as_list::<i32>();
        assert_eq!(
            (
                headers.value_length(0),
                headers.value_length(1),
                headers.value_length(2)
            ),
            (2, 0, 1)
        );
        let first = headers.value(0);
        let first = first.as_struct();
        assert_eq!(first.column(0).as_string::<i32>().value(1), "trace");
        assert!(first.column(1).is_null(1));
        let types = b.column(3).as_string::<i32>();
        assert_eq!(
            (types.value(0), types.is_null(1), types.value(2)),
            ("log_append_time", true, "create_time")
        );
    }

    #[test]
    fn rejects_only_oversized_records() {
        let records: [&[u8]; 3] = [b"small", b"far too large", b"ok"];
        let out = decoder(8).decode(&records);
        assert_eq!(out.rows, [0, 2]);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].index, 1);
        assert_eq!(out.rejected[0].stage, Stage::Read);
        assert_eq!(out.batches[0].num_rows(), 2);
    }

    #[test]
    fn refuses_a_schema_that_is_not_the_built_in_one() {
        let other = EventSchema::parse(
            r#"{"type":"record","name":"E","fields":[{"name":"id","type":"long"}]}"#,
        )
        .expect("parses");
        assert!(RawDecoder::new(other.arrow, 1).is_err());
    }
}
