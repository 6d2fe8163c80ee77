//! SQL transforms: a version's "code", a `SELECT … FROM events` over each decoded batch.
//!
//! A transform is parsed, checked and planned once, when its version is created or a writer
//! starts ([`Transform::compile`]). Planning uses DataFusion's SQL planner and analyzer (type
//! coercion); the plan is then lowered to a short list of physical expressions — filters and
//! projections — that [`Transform::apply`] evaluates on every batch, with no re-planning and no
//! query engine in between. The output schema is known before the first event: it is the table
//! schema of the version.
//!
//! Transforms are stateless per record. Anything that relates rows to each other (aggregates,
//! `GROUP BY`, `DISTINCT`, window functions, joins, subqueries, `ORDER BY`, `LIMIT`, set
//! operations) is rejected when the transform is compiled, with the position in the SQL text.
//!
//! A row whose expressions fail (a cast that does not fit, say) does not fail the batch: the
//! failing rows are isolated by bisection and reported in [`Applied::failed`]; the caller
//! dead-letters them and writes the rest.
//!
//! This module needs the `sql` cargo feature (on by default). Without it, compiling any
//! transform fails with [`TransformError::Unavailable`].

use arrow::datatypes::DataType;
#[cfg(not(feature = "sql"))]
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// The name the transform's input is known by in SQL: `SELECT … FROM events`.
pub const INPUT_TABLE: &str = "events";

/// Why a transform cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// The SQL is invalid or not a per-record transform; `line`/`column` are 1-based.
    #[error("{}{reason}", position(*.line, *.column))]
    Invalid {
        /// Line of the offending text, when known.
        line: Option<u64>,
        /// Column of the offending text, when known.
        column: Option<u64>,
        /// What is wrong, and how to fix it when that is not obvious.
        reason: String,
    },
    /// This binary was built without the `sql` feature.
    #[error(
        "this kappa-lake was built without SQL transforms (cargo feature `sql`); rebuild it with default features"
    )]
    Unavailable,
}

fn position(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) if l > 0 => format!("line {l}, column {c}: "),
        (Some(l), _) if l > 0 => format!("line {l}: "),
        _ => String::new(),
    }
}

impl TransformError {
    /// An error without a position.
    #[cfg_attr(not(feature = "sql"), allow(dead_code))] // used by the engine
    fn invalid(reason: impl Into<String>) -> TransformError {
        TransformError::Invalid {
            line: None,
            column: None,
            reason: reason.into(),
        }
    }
}

/// The result of applying a transform to one batch.
#[derive(Debug)]
pub struct Applied {
    /// The output rows (schema = [`Transform::output_schema`]), in input order.
    pub batch: RecordBatch,
    /// For each output row, the index of the input row it came from.
    pub rows: Vec<usize>,
    /// Input rows whose evaluation failed, with the error; they are not in `batch`.
    pub failed: Vec<(usize, String)>,
}

/// Whether `t` can be stored in every format kappa-lake writes (Parquet and Delta) as it is.
#[cfg_attr(not(feature = "sql"), allow(dead_code))] // used by the engine
fn storable(t: &DataType) -> bool {
    match t {
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::FixedSizeBinary(_)
        | DataType::Date32
        | DataType::Timestamp(_, _)
        | DataType::Decimal128(_, _) => true,
        DataType::List(f) | DataType::LargeList(f) => storable(f.data_type()),
        DataType::Struct(fields) => fields.iter().all(|f| storable(f.data_type())),
        DataType::Map(entry, _) => storable(entry.data_type()),
        _ => false,
    }
}

/// The storable form of a column type the transform produced: string and binary views become
/// plain strings and binaries (same values); anything else is kept (and checked by
/// [`storable`]).
#[cfg_attr(not(feature = "sql"), allow(dead_code))] // used by the engine
fn stored_type(t: &DataType) -> DataType {
    use std::sync::Arc;
    let field = |f: &arrow::datatypes::FieldRef| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(stored_type(f.data_type())),
        )
    };
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) | DataType::ListView(f) => DataType::List(field(f)),
        DataType::LargeList(f) | DataType::LargeListView(f) => DataType::LargeList(field(f)),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::Map(entry, sorted) => DataType::Map(field(entry), *sorted),
        other => other.clone(),
    }
}

/// Output column names become Parquet/Delta column names: keep them plain.
#[cfg_attr(not(feature = "sql"), allow(dead_code))] // used by the engine
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(feature = "sql")]
mod engine;

#[cfg(feature = "sql")]
pub use engine::Transform;

/// Without the `sql` feature: a transform can be named but never compiled.
#[cfg(not(feature = "sql"))]
#[derive(Debug)]
pub struct Transform {
    output: SchemaRef,
}

#[cfg(not(feature = "sql"))]
impl Transform {
    /// Always [`TransformError::Unavailable`] in this build.
    pub fn compile(_sql: &str, _input: SchemaRef) -> Result<Transform, TransformError> {
        Err(TransformError::Unavailable)
    }

    /// The output schema.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output
    }

    /// Never called: no transform compiles in this build.
    pub fn apply(&self, batch: &RecordBatch) -> Applied {
        Applied {
            batch: RecordBatch::new_empty(self.output.clone()),
            rows: Vec::new(),
            failed: (0..batch.num_rows())
                .map(|i| (i, TransformError::Unavailable.to_string()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_shown_when_known() {
        let e = TransformError::Invalid {
            line: Some(2),
            column: Some(8),
            reason: "boom".into(),
        };
        assert_eq!(e.to_string(), "line 2, column 8: boom");
        assert_eq!(TransformError::invalid("boom").to_string(), "boom");
    }

    #[test]
    fn plain_names_only() {
        assert!(plain_name("amount_eur"));
        assert!(!plain_name("CAST(events.amount AS Float64)"));
        assert!(!plain_name("1st"));
        assert!(!plain_name(""));
    }
}
