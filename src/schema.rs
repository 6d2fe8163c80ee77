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

pub mod compat;
pub mod rows;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use apache_avro::Schema as AvroSchema;
use apache_avro::schema::{Name, Namespace, RecordField, RecordSchema};
use arrow::datatypes::{DataType, Field, Fields, Schema as ArrowSchema, SchemaRef, TimeUnit};

/// Path used in errors about the top-level schema itself.
const ROOT_PATH: &str = "<root>";

/// Arrow metadata key under which a field's Avro `doc` is stored.
pub const DOC_METADATA_KEY: &str = "doc";

/// Time zone of Arrow timestamps for Avro `timestamp-*` (instant) types.
///
/// This is UTC written as a fixed offset, which arrow can use without its
/// `chrono-tz` feature (named zones such as `"UTC"` need that feature).
pub const UTC_TIME_ZONE: &str = "+00:00";

/// Largest decimal precision representable by `Decimal128`.
const DECIMAL128_MAX_PRECISION: usize = 38;
/// Largest decimal precision representable by `Decimal256`.
const DECIMAL256_MAX_PRECISION: usize = 76;

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

/// Walk `schema` and record every named type definition under its fully
/// qualified name, so that `Schema::Ref`s can be resolved later.
fn collect_names<'s>(
    schema: &'s AvroSchema,
    namespace: &Namespace,
    names: &mut HashMap<Name, &'s AvroSchema>,
) {
    match schema {
        AvroSchema::Record(record) => {
            let full = record.name.fully_qualified_name(namespace);
            let inner_ns = full.namespace.clone();
            names.entry(full).or_insert(schema);
            for field in &record.fields {
                collect_names(&field.schema, &inner_ns, names);
            }
        }
        AvroSchema::Enum(e) => {
            names
                .entry(e.name.fully_qualified_name(namespace))
                .or_insert(schema);
        }
        AvroSchema::Fixed(f) => {
            names
                .entry(f.name.fully_qualified_name(namespace))
                .or_insert(schema);
        }
        AvroSchema::Decimal(d) => {
            // A decimal on a named `fixed`: references to that name carry the
            // decimal logical type too.
            if let AvroSchema::Fixed(f) = d.inner.as_ref() {
                names
                    .entry(f.name.fully_qualified_name(namespace))
                    .or_insert(schema);
            }
        }
        AvroSchema::Array(a) => collect_names(&a.items, namespace, names),
        AvroSchema::Map(m) => collect_names(&m.types, namespace, names),
        AvroSchema::Union(u) => {
            for variant in u.variants() {
                collect_names(variant, namespace, names);
            }
        }
        _ => {}
    }
}

/// Converts Avro schemas to Arrow types, resolving named references.
struct Converter<'s> {
    /// Named type definitions by fully qualified name.
    names: &'s HashMap<Name, &'s AvroSchema>,
    /// Named types currently being converted (for recursion detection).
    in_progress: HashSet<Name>,
}

impl Converter<'_> {
    /// Convert the fields of `record` (defined in `namespace`), prefixing
    /// error paths with `prefix`.
    fn record_fields(
        &mut self,
        record: &RecordSchema,
        namespace: &Namespace,
        prefix: &str,
    ) -> Result<Fields, SchemaError> {
        let full = record.name.fully_qualified_name(namespace);
        if !self.in_progress.insert(full.clone()) {
            return Err(recursive(prefix, &full));
        }
        let inner_ns = full.namespace.clone();
        let fields = record
            .fields
            .iter()
            .map(|field| self.field(field, &inner_ns, prefix))
            .collect::<Result<Vec<_>, _>>();
        self.in_progress.remove(&full);
        Ok(fields?.into())
    }

    /// Convert one record field.
    fn field(
        &mut self,
        field: &RecordField,
        namespace: &Namespace,
        prefix: &str,
    ) -> Result<Field, SchemaError> {
        let path = if prefix.is_empty() {
            field.name.clone()
        } else {
            format!("{prefix}.{}", field.name)
        };
        let (data_type, nullable) = self.convert(&field.schema, namespace, &path)?;
        let arrow = Field::new(&field.name, data_type, nullable);
        Ok(match &field.doc {
            Some(doc) => {
                arrow.with_metadata(HashMap::from([(DOC_METADATA_KEY.to_string(), doc.clone())]))
            }
            None => arrow,
        })
    }

    /// Convert a schema at `path` to an Arrow type and its nullability.
    fn convert(
        &mut self,
        schema: &AvroSchema,
        namespace: &Namespace,
        path: &str,
    ) -> Result<(DataType, bool), SchemaError> {
        let data_type = match schema {
            AvroSchema::Null => {
                return Err(unsupported(
                    path,
                    "a bare `null` type carries no data; use [\"null\", T]",
                ));
            }
            AvroSchema::Union(union) => return self.union(union.variants(), namespace, path),
            AvroSchema::Boolean => DataType::Boolean,
            AvroSchema::Int => DataType::Int32,
            AvroSchema::Long => DataType::Int64,
            AvroSchema::Float => DataType::Float32,
            AvroSchema::Double => DataType::Float64,
            AvroSchema::String | AvroSchema::Enum(_) | AvroSchema::Uuid => DataType::Utf8,
            AvroSchema::Bytes => DataType::Binary,
            AvroSchema::Fixed(fixed) => {
                let size = i32::try_from(fixed.size).map_err(|_| {
                    unsupported(path, format!("fixed size {} is too large", fixed.size))
                })?;
                DataType::FixedSizeBinary(size)
            }
            AvroSchema::Decimal(decimal) => decimal_type(decimal.precision, decimal.scale, path)?,
            AvroSchema::BigDecimal => {
                return Err(unsupported(
                    path,
                    "big-decimal has no fixed precision and scale; use decimal(p, s)",
                ));
            }
            AvroSchema::Duration => {
                return Err(unsupported(
                    path,
                    "the duration logical type is not supported",
                ));
            }
            AvroSchema::Date => DataType::Date32,
            AvroSchema::TimeMillis => DataType::Time32(TimeUnit::Millisecond),
            AvroSchema::TimeMicros => DataType::Time64(TimeUnit::Microsecond),
            AvroSchema::TimestampMillis => DataType::Timestamp(TimeUnit::Millisecond, utc()),
            AvroSchema::TimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, utc()),
            AvroSchema::TimestampNanos => DataType::Timestamp(TimeUnit::Nanosecond, utc()),
            AvroSchema::LocalTimestampMillis => DataType::Timestamp(TimeUnit::Millisecond, None),
            AvroSchema::LocalTimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, None),
            AvroSchema::LocalTimestampNanos => DataType::Timestamp(TimeUnit::Nanosecond, None),
            AvroSchema::Record(record) => {
                DataType::Struct(self.record_fields(record, namespace, path)?)
            }
            AvroSchema::Array(array) => {
                let (item, nullable) =
                    self.convert(&array.items, namespace, &format!("{path}[]"))?;
                DataType::List(Arc::new(Field::new("item", item, nullable)))
            }
            AvroSchema::Map(map) => {
                let (value, nullable) =
                    self.convert(&map.types, namespace, &format!("{path}{{}}"))?;
                let entries = Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", value, nullable),
                ]);
                DataType::Map(
                    Arc::new(Field::new("entries", DataType::Struct(entries), false)),
                    false,
                )
            }
            AvroSchema::Ref { name } => return self.reference(name, namespace, path),
        };
        Ok((data_type, false))
    }

    /// Convert a union: only `["null", T]` and `[T, "null"]` are supported.
    fn union(
        &mut self,
        variants: &[AvroSchema],
        namespace: &Namespace,
        path: &str,
    ) -> Result<(DataType, bool), SchemaError> {
        let non_null: Vec<&AvroSchema> = variants
            .iter()
            .filter(|v| !matches!(v, AvroSchema::Null))
            .collect();
        match non_null.as_slice() {
            [inner] if variants.len() == 2 => {
                let (data_type, _) = self.convert(inner, namespace, path)?;
                Ok((data_type, true))
            }
            _ => {
                let listed = variants.iter().map(describe).collect::<Vec<_>>().join(", ");
                Err(unsupported(
                    path,
                    format!(
                        "union [{listed}] is not supported; only [\"null\", T] or [T, \"null\"] \
                         (a nullable T) can be mapped to Arrow"
                    ),
                ))
            }
        }
    }

    /// Convert a reference to a previously defined named type.
    fn reference(
        &mut self,
        name: &Name,
        namespace: &Namespace,
        path: &str,
    ) -> Result<(DataType, bool), SchemaError> {
        let full = name.fully_qualified_name(namespace);
        if self.in_progress.contains(&full) {
            return Err(recursive(path, &full));
        }
        let Some(&target) = self.names.get(&full) else {
            return Err(unsupported(
                path,
                format!("reference to unknown named type `{full}`"),
            ));
        };
        // The referenced definition is resolved in its own namespace.
        self.convert(target, &full.namespace, path)
    }
}

/// The Arrow decimal type for an Avro `decimal(precision, scale)`.
fn decimal_type(precision: usize, scale: usize, path: &str) -> Result<DataType, SchemaError> {
    let too_large = || {
        unsupported(
            path,
            format!(
                "decimal precision {precision} (scale {scale}) exceeds the maximum of \
                 {DECIMAL256_MAX_PRECISION}"
            ),
        )
    };
    // apache_avro guarantees 1 <= precision and scale <= precision.
    let p = u8::try_from(precision).map_err(|_| too_large())?;
    let s = i8::try_from(scale).map_err(|_| too_large())?;
    if precision <= DECIMAL128_MAX_PRECISION {
        Ok(DataType::Decimal128(p, s))
    } else if precision <= DECIMAL256_MAX_PRECISION {
        Ok(DataType::Decimal256(p, s))
    } else {
        Err(too_large())
    }
}

/// The time zone of instant timestamps ([`UTC_TIME_ZONE`]).
fn utc() -> Option<Arc<str>> {
    Some(Arc::from(UTC_TIME_ZONE))
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

/// Build an [`SchemaError::Unsupported`].
fn unsupported(path: &str, reason: impl Into<String>) -> SchemaError {
    SchemaError::Unsupported {
        path: if path.is_empty() {
            ROOT_PATH.to_string()
        } else {
            path.to_string()
        },
        reason: reason.into(),
    }
}

/// The error for a recursive type.
fn recursive(path: &str, name: &Name) -> SchemaError {
    unsupported(
        path,
        format!("recursive type `{name}` cannot be mapped to Arrow"),
    )
}

#[cfg(test)]
mod tests;
