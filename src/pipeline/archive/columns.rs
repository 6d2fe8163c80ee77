//! The raw columns of an archive batch (`schemas/kafka-record.avsc`) read back as records,
//! without copying their bytes: a record's key, value and header values are slices of the
//! batch's Arrow buffers.
//!
//! Invariant: a column of another type than the raw schema's is an error, never a panic.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{ArrowNativeType, DataType, TimeUnit, TimestampMillisecondType};
use bytes::Bytes;

use crate::domain::TimestampType;
use crate::pipeline::shape::KAFKA_TIMESTAMP_COLUMN;
use crate::source::{Headers, Record};

/// An Arrow buffer as the owner of [`Bytes`].
struct ArrowBytes(arrow::buffer::Buffer);

impl AsRef<[u8]> for ArrowBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// A binary column whose rows are handed out as slices of its one values buffer (no copy:
/// the records keep the buffer alive).
struct SharedBinary<'b> {
    array: &'b arrow::array::BinaryArray,
    values: Bytes,
}

impl<'b> SharedBinary<'b> {
    fn new(array: &'b arrow::array::BinaryArray) -> SharedBinary<'b> {
        SharedBinary {
            array,
            values: Bytes::from_owner(ArrowBytes(array.values().clone())),
        }
    }

    /// Row `i`, `None` when null.
    fn get(&self, i: usize) -> Option<Bytes> {
        let offsets = self.array.value_offsets();
        self.array.is_valid(i).then(|| {
            self.values
                .slice(offsets[i].as_usize()..offsets[i + 1].as_usize())
        })
    }
}

/// The raw columns of one archive batch (`schemas/kafka-record.avsc`).
pub(super) struct Columns<'b> {
    key: SharedBinary<'b>,
    value: SharedBinary<'b>,
    headers: &'b arrow::array::ListArray,
    header_names: &'b arrow::array::StringArray,
    header_values: SharedBinary<'b>,
    timestamp_type: &'b arrow::array::StringArray,
    timestamp: arrow::array::TimestampMillisecondArray,
}

impl<'b> Columns<'b> {
    pub(super) fn of(batch: &'b RecordBatch) -> std::result::Result<Columns<'b>, String> {
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
        let headers = headers.as_list_opt().ok_or_else(|| wrong("headers"))?;
        let entries = headers
            .values()
            .as_struct_opt()
            .ok_or_else(|| wrong("headers"))?;
        Ok(Columns {
            key: SharedBinary::new(
                col("key", "binary")?
                    .as_binary_opt()
                    .ok_or_else(|| wrong("key"))?,
            ),
            value: SharedBinary::new(
                col("value", "binary")?
                    .as_binary_opt()
                    .ok_or_else(|| wrong("value"))?,
            ),
            headers,
            header_names: entries
                .column(0)
                .as_string_opt::<i32>()
                .ok_or_else(|| wrong("headers"))?,
            header_values: SharedBinary::new(
                entries
                    .column(1)
                    .as_binary_opt::<i32>()
                    .ok_or_else(|| wrong("headers"))?,
            ),
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
    pub(super) fn record(&self, i: usize, offset: u64) -> Record {
        let value = self.value.get(i);
        let tombstone = value.is_none();
        let headers: Option<Headers> =
            (self.headers.is_valid(i) && self.headers.value_length(i) > 0).then(|| {
                let offsets = self.headers.value_offsets();
                (offsets[i].as_usize()..offsets[i + 1].as_usize())
                    .map(|j| {
                        let name = self.header_names.value(j).to_string();
                        (name, self.header_values.get(j))
                    })
                    .collect::<Vec<_>>()
                    .into()
            });
        Record {
            bytes: value.unwrap_or_default(),
            oversized: None,
            offset,
            timestamp_ms: self.timestamp.is_valid(i).then(|| self.timestamp.value(i)),
            timestamp_type: self
                .timestamp_type
                .is_valid(i)
                .then(|| TimestampType::parse(self.timestamp_type.value(i)))
                .flatten(),
            tombstone,
            key: self.key.get(i),
            headers,
        }
    }
}
