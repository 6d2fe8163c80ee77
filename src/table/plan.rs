//! What it takes to bring a table's live version to the config's definition.
//!
//! A version's definition is frozen, with one exception: an *additive* schema change (new
//! top-level fields that are nullable) to a Delta version can be applied in place — Delta
//! records the new columns in its log and existing rows read them as null. Everything else
//! (a removed field, a changed type or nullability, a new required field, a nested change,
//! another partitioning, transform, format or source) needs a rebuild into a new version. An
//! Avro source also needs the new schema to be BACKWARD compatible with the old one (Avro's
//! rules, [`crate::schema::compat`]): a nullable field added without a default could not be
//! read from older events.

use arrow::datatypes::{Field, Schema};
use serde::Serialize;

use crate::domain::Format;
use crate::error::Result;
use crate::table::version::Definition;

/// How two event schemas differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SchemaDiff {
    /// New top-level nullable fields (compatible).
    pub added: Vec<String>,
    /// Incompatible differences, one sentence each, naming the field.
    pub breaking: Vec<String>,
}

impl SchemaDiff {
    /// Whether the new schema only adds nullable fields.
    pub fn is_compatible(&self) -> bool {
        self.breaking.is_empty()
    }
}

fn describe(f: &Field) -> String {
    format!(
        "{}{}",
        f.data_type(),
        if f.is_nullable() { " (nullable)" } else { "" }
    )
}

/// Compares the Arrow mappings of two event schemas, field by field (by name).
pub fn schema_diff(old: &Schema, new: &Schema) -> SchemaDiff {
    let mut diff = SchemaDiff::default();
    for o in old.fields() {
        match new.field_with_name(o.name()) {
            Err(_) => diff
                .breaking
                .push(format!("field `{}` was removed", o.name())),
            Ok(n) if n.data_type() != o.data_type() || n.is_nullable() != o.is_nullable() => {
                diff.breaking.push(format!(
                    "field `{}` changed from {} to {}",
                    o.name(),
                    describe(o),
                    describe(n)
                ));
            }
            Ok(_) => {}
        }
    }
    for n in new.fields() {
        if old.field_with_name(n.name()).is_ok() {
            continue;
        }
        if n.is_nullable() {
            diff.added.push(n.name().clone());
        } else {
            diff.breaking.push(format!(
                "field `{}` is added as required (make it nullable, e.g. [\"null\", …] with default null, to evolve in place)",
                n.name()
            ));
        }
    }
    diff
}

/// What to do with one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Plan {
    /// The table has no version yet: `run` creates v1.
    Create,
    /// The live version has the config's definition.
    Nothing {
        /// Live version.
        version: u32,
    },
    /// Additive schema change: applied to the live version by the next `run`.
    Evolve {
        /// Live version.
        version: u32,
        /// Fields added.
        added: Vec<String>,
    },
    /// Needs a new version.
    Rebuild {
        /// Live version.
        version: u32,
        /// The version a rebuild creates.
        next: u32,
        /// Why, one sentence per difference.
        reasons: Vec<String>,
    },
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Plan::Create => write!(f, "create v1 (the table has no version yet)"),
            Plan::Nothing { version } => {
                write!(f, "nothing to do: live v{version} has this definition")
            }
            Plan::Evolve { version, added } => write!(
                f,
                "evolve in place: v{version} gets the nullable field(s) {} (existing rows read them as null); `run` applies it",
                quoted(added)
            ),
            Plan::Rebuild {
                version,
                next,
                reasons,
            } => write!(
                f,
                "rebuild into v{next} (live v{version} cannot take this change): {}",
                reasons.join("; ")
            ),
        }
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares the live version's definition with the wanted one; `next` is the number a new
/// version would get.
pub fn compare(
    live: &Definition,
    live_version: u32,
    wanted: &Definition,
    next: u32,
) -> Result<Plan> {
    if live.hash()? == wanted.hash()? {
        return Ok(Plan::Nothing {
            version: live_version,
        });
    }
    let mut reasons = Vec::new();
    if live.format != wanted.format {
        reasons.push(format!(
            "format changed from {:?} to {:?}",
            live.format, wanted.format
        ));
    }
    if live.partitioning != wanted.partitioning {
        reasons.push("partitioning (time field, granularity or key buckets) changed".to_string());
    }
    if live.transform != wanted.transform {
        reasons.push("the transform changed".to_string());
    }
    if live.source != wanted.source {
        reasons.push(format!(
            "the source changed from {} to {}",
            live.source, wanted.source
        ));
    }
    if live.metadata_columns != wanted.metadata_columns {
        reasons.push("metadata_columns changed".to_string());
    }
    if live.changes.mode != wanted.changes.mode {
        reasons.push(format!(
            "mode changed from {:?} to {:?}",
            live.changes.mode, wanted.changes.mode
        ));
    }
    if live.changes.key != wanted.changes.key {
        reasons.push(format!(
            "the key changed from {:?} to {:?}",
            live.changes.key, wanted.changes.key
        ));
    }
    if live.changes.changelog != wanted.changes.changelog {
        reasons.push(format!(
            "changelog changed from {} to {}",
            live.changes.changelog, wanted.changes.changelog
        ));
    }
    if live.changes.envelope != wanted.changes.envelope {
        reasons.push(format!(
            "the source's envelope changed from {:?} to {:?}",
            live.changes.envelope, wanted.changes.envelope
        ));
    }
    let (live_schema, wanted_schema) = (live.event_schema()?, wanted.event_schema()?);
    let diff = schema_diff(&live_schema.arrow, &wanted_schema.arrow);
    reasons.extend(diff.breaking.iter().cloned());
    if wanted.reads_avro() {
        // The version's decoder resolves every writer's schema against its own: after an
        // in-place change it must still read what older producers wrote.
        let compat = crate::schema::compat::check(&live_schema.avro, &wanted_schema.avro);
        reasons.extend(
            compat
                .backward
                .iter()
                .map(|b| format!("not BACKWARD compatible (Avro readers of the new schema could not read older events): {b}")),
        );
    }
    if reasons.is_empty() && !diff.added.is_empty() && wanted.transform.is_some() {
        reasons.push(format!(
            "adds {} under a transform: the table's columns are the transform's output, so a rebuild re-derives them",
            quoted(&diff.added)
        ));
    }
    if reasons.is_empty() && !diff.added.is_empty() && wanted.format == Format::Parquet {
        reasons.push(format!(
            "adds {} but Parquet versions cannot evolve in place (use format = \"delta\")",
            quoted(&diff.added)
        ));
    }
    if reasons.is_empty() && diff.added.is_empty() {
        // Same data, different spelling (e.g. field docs): the schema still differs as
        // hashed, so keep the frozen rule.
        reasons.push("the schema changed in a way that does not add fields".to_string());
    }
    Ok(if reasons.is_empty() {
        Plan::Evolve {
            version: live_version,
            added: diff.added,
        }
    } else {
        Plan::Rebuild {
            version: live_version,
            next,
            reasons,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::EventSchema;

    fn arrow(fields: &str) -> std::sync::Arc<Schema> {
        let text = format!(r#"{{"type":"record","name":"E","fields":[{fields}]}}"#);
        EventSchema::parse(&text).unwrap().arrow
    }

    #[test]
    fn only_nullable_additions_are_compatible() {
        let old = arrow(r#"{"name":"id","type":"long"},{"name":"amount","type":"double"}"#);
        let added = arrow(
            r#"{"name":"id","type":"long"},{"name":"amount","type":"double"},
               {"name":"coupon","type":["null","string"],"default":null}"#,
        );
        let d = schema_diff(&old, &added);
        assert!(d.is_compatible(), "{d:?}");
        assert_eq!(d.added, ["coupon"]);

        let retyped = arrow(r#"{"name":"id","type":"long"},{"name":"amount","type":"string"}"#);
        let d = schema_diff(&old, &retyped);
        assert_eq!(d.breaking.len(), 1);
        assert!(
            d.breaking[0].contains("`amount` changed from Float64 to Utf8"),
            "{d:?}"
        );

        let removed = arrow(r#"{"name":"id","type":"long"}"#);
        assert_eq!(
            schema_diff(&old, &removed).breaking,
            ["field `amount` was removed"]
        );

        let required = arrow(
            r#"{"name":"id","type":"long"},{"name":"amount","type":"double"},{"name":"n","type":"int"}"#,
        );
        assert!(schema_diff(&old, &required).breaking[0].contains("`n` is added as required"));
    }
}
