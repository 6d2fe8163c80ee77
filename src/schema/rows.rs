//! The decoded rows of a version: the event schema's fields, then the source metadata columns
//! (`_source_file`/`_source_line` for files, `_kafka_*` for Kafka). This is what a transform
//! reads as `events`, and what the data files hold when there is no transform.
//!
//! Invariant: a pure function of the Arrow event schema and the metadata setting; the config
//! check (`Config::load`) and the writers compute the same row schema from the same inputs.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::domain::SourceKind;

/// Metadata column: the source file of a row (files source).
pub const SOURCE_FILE_COLUMN: &str = "_source_file";
/// Metadata column: the 1-based line of a row in its source file (files source).
pub const SOURCE_LINE_COLUMN: &str = "_source_line";
/// Metadata column: the Kafka topic of a row.
pub const KAFKA_TOPIC_COLUMN: &str = "_kafka_topic";
/// Metadata column: the Kafka partition of a row.
pub const KAFKA_PARTITION_COLUMN: &str = "_kafka_partition";
/// Metadata column: the Kafka offset of a row.
pub const KAFKA_OFFSET_COLUMN: &str = "_kafka_offset";
/// Metadata column: the Kafka timestamp of a row.
pub const KAFKA_TIMESTAMP_COLUMN: &str = "_kafka_timestamp";

/// The source metadata columns a version's rows carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    /// None (`metadata_columns = false`).
    None,
    /// `_source_file`, `_source_line`.
    File,
    /// `_kafka_topic`, `_kafka_partition`, `_kafka_offset`, `_kafka_timestamp`.
    Kafka,
}

impl Metadata {
    /// The metadata columns of a source of `kind`, when `metadata_columns` asks for them.
    pub fn new(metadata_columns: bool, kind: SourceKind) -> Metadata {
        match (metadata_columns, kind) {
            (false, _) => Metadata::None,
            (true, SourceKind::Kafka) => Metadata::Kafka,
            (true, SourceKind::Files) => Metadata::File,
        }
    }
}

/// The decoded rows of a version: the event fields, then the metadata columns. This is what a
/// transform reads as `events`, and what the files hold when there is no transform.
pub fn row_schema(event: &SchemaRef, metadata: Metadata) -> SchemaRef {
    let extra = match metadata {
        Metadata::None => return event.clone(),
        Metadata::File => vec![
            Field::new(SOURCE_FILE_COLUMN, DataType::Utf8, false),
            Field::new(SOURCE_LINE_COLUMN, DataType::Int64, false),
        ],
        Metadata::Kafka => vec![
            Field::new(KAFKA_TOPIC_COLUMN, DataType::Utf8, false),
            Field::new(KAFKA_PARTITION_COLUMN, DataType::Int32, false),
            Field::new(KAFKA_OFFSET_COLUMN, DataType::Int64, false),
            Field::new(
                KAFKA_TIMESTAMP_COLUMN,
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ],
    };
    let mut fields: Vec<Arc<Field>> = event.fields().iter().cloned().collect();
    fields.extend(extra.into_iter().map(Arc::new));
    Arc::new(Schema::new(fields))
}
