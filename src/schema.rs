//! Event schemas: Avro `.avsc` definitions mapped to Arrow.
//!
//! An event schema is an Avro schema (JSON text, usually a `.avsc` file) whose
//! top level is a `record`. [`EventSchema::parse`] parses it with
//! [`apache_avro`] and derives the Arrow schema of the decoded events: one
//! Arrow field per top-level record field, in declaration order.
//!
//! # Type mapping
//!
//! | Avro                                          | Arrow                                                   |
//! |-----------------------------------------------|---------------------------------------------------------|
//! | `null`-less type `T`                          | `T`, non-nullable                                       |
//! | `["null", T]` / `[T, "null"]`                 | `T`, nullable                                           |
//! | `boolean`                                     | `Boolean`                                               |
//! | `int`                                         | `Int32`                                                 |
//! | `long`                                        | `Int64`                                                 |
//! | `float`                                       | `Float32`                                               |
//! | `double`                                      | `Float64`                                               |
//! | `string`, `enum`, `uuid` (logical)            | `Utf8`                                                  |
//! | `bytes`                                       | `Binary`                                                |
//! | `fixed` (size n)                              | `FixedSizeBinary(n)`                                    |
//! | `decimal(p, s)` on `bytes` or `fixed`         | `Decimal128(p, s)` if p ≤ 38, else `Decimal256(p, s)`   |
//! | `date`                                        | `Date32`                                                |
//! | `time-millis`                                 | `Time32(Millisecond)`                                   |
//! | `time-micros`                                 | `Time64(Microsecond)`                                   |
//! | `timestamp-millis` / `-micros` / `-nanos`     | `Timestamp(Millisecond / Microsecond / Nanosecond, "+00:00")` ([`UTC_TIME_ZONE`]) |
//! | `local-timestamp-millis` / `-micros` / `-nanos` | `Timestamp(Millisecond / Microsecond / Nanosecond)` (no time zone) |
//! | `record` (nested)                             | `Struct` (fields in declaration order)                  |
//! | `array<T>`                                    | `List`, child field `"item"` (nullable iff `T` is)      |
//! | `map<T>`                                      | `Map`, entries struct `"entries"` with non-null `Utf8` `"key"` and `"value"` (nullable iff `T` is); keys not sorted |
//! | reference to a previously defined named type  | the mapping of that type                                |
//!
//! Instant timestamps carry the time zone `"+00:00"` rather than `"UTC"`:
//! without arrow's `chrono-tz` feature (not enabled in this crate) arrow only
//! understands offset-based zones, and `arrow::json` fails to build a decoder
//! for `Timestamp(_, Some("UTC"))` with `Invalid timezone "UTC": only offset
//! based timezones supported without chrono-tz feature`. Both denote UTC
//! (Parquet writes either as `isAdjustedToUTC = true`).
//!
//! A field's Avro `doc`, when present, is stored in the Arrow field metadata
//! under the key `"doc"`.
//!
//! # Rejected
//!
//! These produce [`SchemaError::Unsupported`], naming the offending field path:
//!
//! - a top level that is not a `record` (path `<root>`);
//! - unions other than `["null", T]` / `[T, "null"]` (e.g. `["int", "string"]`,
//!   `["null", "int", "string"]`, `["null"]`);
//! - a bare `null` type (a column that can only ever be null);
//! - recursive types (a named type that refers to itself, directly or indirectly);
//! - `big-decimal` (no fixed precision/scale) and `duration`;
//! - `decimal` with precision > 76;
//! - a `fixed` whose size does not fit an `i32`.
//!
//! Field paths join record field names with `.`; an array's items add `[]`
//! and a map's values add `{}` (e.g. `customer.address.zip`,
//! `items[].sku`, `attributes{}.value`).
//!
//! Invalid JSON or an invalid Avro schema produces [`SchemaError::Invalid`]
//! with `apache_avro`'s message.
//!
//! # JSON decoding notes (`arrow::json`)
//!
//! Every type above can be decoded by `arrow::json::ReaderBuilder` from JSON
//! events. The expected JSON shapes are:
//!
//! - timestamps: RFC 3339 strings (`"2026-11-26T10:00:00Z"`) or integers in the
//!   column's unit since the Unix epoch; dates: `"2026-11-26"` or days since
//!   the epoch; times: `"12:34:56.789"` or integers in the unit since midnight;
//! - decimals: JSON numbers or strings (`12.34` or `"12.34"`);
//! - maps: JSON objects; lists: JSON arrays; structs: JSON objects;
//! - **`bytes` / `fixed` (`Binary` / `FixedSizeBinary`) are decoded from
//!   hex-encoded strings** (`"deadbeef"`), *not* from Avro's JSON encoding
//!   (ISO-8859-1 code points) and not from base64. A `fixed` value must decode
//!   to exactly `n` bytes.
//!
//! A missing or `null` value for a non-nullable field makes the decoder's
//! `flush()` fail. Note that `arrow::json` is lenient about numbers in
//! strings: `"123"` is accepted for an `Int64` column, while `"abc"` fails.
//!
//! Note that the Parsing Canonical Form ([`EventSchema::canonical`]) follows
//! the Avro specification and therefore drops `logicalType` (while keeping
//! `precision`/`scale`): e.g. `long` and `timestamp-millis` have the same
//! canonical form although they map to different Arrow types.
//!
//! # Layout
//! This file parses ([`EventSchema`]); `mapping.rs` maps Avro types to Arrow, `compat.rs`
//! judges compatibility between two schemas, `rows.rs` adds the source metadata columns.

pub mod compat;
mod mapping;
pub mod rows;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use apache_avro::Schema as AvroSchema;
use arrow::datatypes::{Schema as ArrowSchema, SchemaRef};

use mapping::{Converter, collect_names};

/// The built-in event schema of `encoding = "raw"`, the rows of a raw archive table:
/// `schemas/kafka-record.avsc` (key, value, headers, timestamp type; the `_kafka_*` columns
/// carry the coordinates and the timestamp).
pub const KAFKA_RECORD_SCHEMA: &str = include_str!("../schemas/kafka-record.avsc");

/// What a raw table's definition names as its schema file.
pub const KAFKA_RECORD_SCHEMA_FILE: &str = "kafka-record.avsc (built in)";

/// Path used in errors about the top-level schema itself.
const ROOT_PATH: &str = "<root>";

/// Arrow metadata key under which a field's Avro `doc` is stored.
pub const DOC_METADATA_KEY: &str = "doc";

/// Time zone of Arrow timestamps for Avro `timestamp-*` (instant) types.
///
/// This is UTC written as a fixed offset, which arrow can use without its
/// `chrono-tz` feature (named zones such as `"UTC"` need that feature).
pub const UTC_TIME_ZONE: &str = "+00:00";

/// An event schema: the parsed Avro schema and the Arrow schema derived from it.
#[derive(Debug, Clone)]
pub struct EventSchema {
    /// The parsed Avro schema.
    pub avro: AvroSchema,
    /// The Arrow schema of the decoded events (top-level record fields, in order).
    pub arrow: SchemaRef,
    /// The Avro Parsing Canonical Form (stable; used in definition hashes).
    ///
    /// As per the Avro specification it omits `doc`, `default`, `aliases` and
    /// `logicalType` attributes.
    pub canonical: String,
}

impl EventSchema {
    /// Parse `.avsc` text. The top level must be a record.
    ///
    /// Returns [`SchemaError::Invalid`] if the text is not valid JSON or not a
    /// valid Avro schema, and [`SchemaError::Unsupported`] if it uses a
    /// construct that has no Arrow mapping (see the [module docs](self)).
    pub fn parse(text: &str) -> Result<Self, SchemaError> {
        let avro = AvroSchema::parse_str(text).map_err(|e| SchemaError::Invalid(e.to_string()))?;
        let record = match &avro {
            AvroSchema::Record(record) => record,
            other => {
                return Err(SchemaError::Unsupported {
                    path: ROOT_PATH.to_string(),
                    reason: format!(
                        "the top-level schema must be a record, found {}",
                        describe(other)
                    ),
                });
            }
        };

        let mut names = HashMap::new();
        collect_names(&avro, &None, &mut names);
        let mut converter = Converter {
            names: &names,
            in_progress: HashSet::new(),
        };
        let fields = converter.record_fields(record, &None, "")?;
        let arrow = Arc::new(ArrowSchema::new(fields));
        let canonical = avro.canonical_form();
        Ok(Self {
            avro,
            arrow,
            canonical,
        })
    }

    /// [`EventSchema::parse`] of `text` with `fields` (name, Avro type as JSON) appended to
    /// the top-level record. A field of the same name already there is refused.
    pub fn parse_with(text: &str, fields: &[(&str, &str)]) -> Result<Self, SchemaError> {
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| SchemaError::Invalid(e.to_string()))?;
        let Some(list) = value
            .get_mut("fields")
            .and_then(serde_json::Value::as_array_mut)
        else {
            // Not a record: `parse` says what it is.
            return Self::parse(text);
        };
        for (name, avro_type) in fields {
            if list
                .iter()
                .any(|f| f.get("name").and_then(|n| n.as_str()) == Some(*name))
            {
                return Err(SchemaError::Unsupported {
                    path: (*name).to_string(),
                    reason: "the name of a column kappa-lake adds; rename the field".into(),
                });
            }
            let avro_type: serde_json::Value = serde_json::from_str(avro_type)
                .map_err(|e| SchemaError::Invalid(format!("{name}: {e}")))?;
            list.push(serde_json::json!({"name": name, "type": avro_type}));
        }
        Self::parse(&value.to_string())
    }
}

/// Errors produced while parsing an event schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The text is not valid JSON or not a valid Avro schema (message from `apache_avro`).
    #[error("invalid Avro schema: {0}")]
    Invalid(String),
    /// The schema is valid Avro but uses a construct with no Arrow mapping.
    #[error("unsupported Avro type at `{path}`: {reason}")]
    Unsupported {
        /// Field path of the offending type (e.g. `customer.address.zip`).
        path: String,
        /// Why the type is rejected.
        reason: String,
    },
}

/// A short human-readable description of an Avro type, for error messages.
fn describe(schema: &AvroSchema) -> String {
    let s = match schema {
        AvroSchema::Null => "\"null\"",
        AvroSchema::Boolean => "\"boolean\"",
        AvroSchema::Int => "\"int\"",
        AvroSchema::Long => "\"long\"",
        AvroSchema::Float => "\"float\"",
        AvroSchema::Double => "\"double\"",
        AvroSchema::Bytes => "\"bytes\"",
        AvroSchema::String => "\"string\"",
        AvroSchema::Array(_) => "array",
        AvroSchema::Map(_) => "map",
        AvroSchema::Union(_) => "union",
        AvroSchema::Record(r) => return format!("record `{}`", r.name),
        AvroSchema::Enum(e) => return format!("enum `{}`", e.name),
        AvroSchema::Fixed(f) => return format!("fixed `{}`", f.name),
        AvroSchema::Ref { name } => return format!("`{name}`"),
        AvroSchema::Decimal(d) => return format!("decimal({}, {})", d.precision, d.scale),
        AvroSchema::BigDecimal => "big-decimal",
        AvroSchema::Uuid => "uuid",
        AvroSchema::Date => "date",
        AvroSchema::TimeMillis => "time-millis",
        AvroSchema::TimeMicros => "time-micros",
        AvroSchema::TimestampMillis => "timestamp-millis",
        AvroSchema::TimestampMicros => "timestamp-micros",
        AvroSchema::TimestampNanos => "timestamp-nanos",
        AvroSchema::LocalTimestampMillis => "local-timestamp-millis",
        AvroSchema::LocalTimestampMicros => "local-timestamp-micros",
        AvroSchema::LocalTimestampNanos => "local-timestamp-nanos",
        AvroSchema::Duration => "duration",
    };
    s.to_string()
}

#[cfg(test)]
mod tests;
