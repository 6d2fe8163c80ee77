//! The Avro → Arrow type mapping of event schemas (the table in the [parent module](super)'s
//! docs): named types are resolved by their fully qualified names, and every Avro construct
//! without a mapping is rejected with the path of the field that uses it.
//!
//! Invariant: a pure function of the parsed Avro schema; the same schema always maps to the
//! same Arrow fields, in declaration order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use apache_avro::Schema as AvroSchema;
use apache_avro::schema::{Name, Namespace, RecordField, RecordSchema};
use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

use super::{DOC_METADATA_KEY, ROOT_PATH, SchemaError, UTC_TIME_ZONE, describe};

/// Largest decimal precision representable by `Decimal128`.
const DECIMAL128_MAX_PRECISION: usize = 38;
/// Largest decimal precision representable by `Decimal256`.
const DECIMAL256_MAX_PRECISION: usize = 76;

/// Walk `schema` and record every named type definition under its fully
/// qualified name, so that `Schema::Ref`s can be resolved later.
pub(super) fn collect_names<'s>(
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
pub(super) struct Converter<'s> {
    /// Named type definitions by fully qualified name.
    pub(super) names: &'s HashMap<Name, &'s AvroSchema>,
    /// Named types currently being converted (for recursion detection).
    pub(super) in_progress: HashSet<Name>,
}

impl Converter<'_> {
    /// Convert the fields of `record` (defined in `namespace`), prefixing
    /// error paths with `prefix`.
    pub(super) fn record_fields(
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
/// Build an [`SchemaError::Unsupported`].
pub(super) fn unsupported(path: &str, reason: impl Into<String>) -> SchemaError {
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
pub(super) fn recursive(path: &str, name: &Name) -> SchemaError {
    unsupported(
        path,
        format!("recursive type `{name}` cannot be mapped to Arrow"),
    )
}
