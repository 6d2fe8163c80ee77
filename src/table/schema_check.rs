//! `schema check`: what a schema change means for a version, judged twice — the Avro
//! compatibility level a schema registry would give it ([`crate::schema::compat`]) and whether
//! a version can evolve in place ([`schema_diff`]: only added nullable fields).
//!
//! Invariant: pure. Both schemas are already parsed; finding them (files, the table's current
//! version, a registry) is the caller's job, and so is printing.

use std::fmt;

use crate::schema::EventSchema;
use crate::schema::compat::{self, Compatibility, Level};
use crate::table::plan::{SchemaDiff, schema_diff};

/// Two schemas compared, each named as the user should read it (a path, `v3 of `orders``, a
/// registry subject).
#[derive(Debug, Clone)]
pub struct SchemaCheck {
    /// What the old schema is.
    pub old_name: String,
    /// What the new schema is.
    pub new_name: String,
    /// The Avro compatibility of new with old.
    pub compat: Compatibility,
    /// The Arrow-level difference: what an in-place evolution would add or break.
    pub diff: SchemaDiff,
}

/// Why a [`SchemaCheck`] fails its requirement (`schema check` exits 1 with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaCheckFailed {
    /// The required `--level` does not hold.
    #[error("{new} is not {required} compatible with {old} (it is {actual})")]
    Level {
        /// The new schema's name.
        new: String,
        /// The required level.
        required: Level,
        /// The old schema's name.
        old: String,
        /// The level that holds.
        actual: &'static str,
    },
    /// No level was required and the change is not additive.
    #[error("{new} is not an additive change of {old}: a version needs a rebuild to take it")]
    NotAdditive {
        /// The new schema's name.
        new: String,
        /// The old schema's name.
        old: String,
    },
}

impl SchemaCheck {
    /// Compares `new` with `old`.
    pub fn compare(
        old_name: String,
        old: &EventSchema,
        new_name: String,
        new: &EventSchema,
    ) -> Self {
        SchemaCheck {
            old_name,
            new_name,
            compat: compat::check(&old.avro, &new.avro),
            diff: schema_diff(&old.arrow, &new.arrow),
        }
    }

    /// The `--json` report: `old`, `new`, `level`, `backward`, `forward`, `evolve_in_place`,
    /// `added`, `breaking`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "old": self.old_name,
            "new": self.new_name,
            "level": self.compat.level(),
            "backward": self.compat.backward,
            "forward": self.compat.forward,
            "evolve_in_place": self.diff.is_compatible(),
            "added": self.diff.added,
            "breaking": self.diff.breaking,
        })
    }

    /// Whether the check passes: `required` holds, or without one, the change is additive.
    pub fn verdict(&self, required: Option<Level>) -> Result<(), SchemaCheckFailed> {
        match required {
            Some(level) if !self.compat.holds(level) => Err(SchemaCheckFailed::Level {
                new: self.new_name.clone(),
                required: level,
                old: self.old_name.clone(),
                actual: self.compat.level(),
            }),
            Some(_) => Ok(()),
            None if !self.diff.is_compatible() => Err(SchemaCheckFailed::NotAdditive {
                new: self.new_name.clone(),
                old: self.old_name.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// The text report: the level, then one line per finding.
impl fmt::Display for SchemaCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} against {}: {}",
            self.new_name,
            self.old_name,
            self.compat.level()
        )?;
        for b in &self.compat.backward {
            writeln!(f, "not BACKWARD: {b}")?;
        }
        for w in &self.compat.forward {
            writeln!(f, "not FORWARD: {w}")?;
        }
        for a in &self.diff.added {
            writeln!(f, "added nullable field `{a}`")?;
        }
        for b in &self.diff.breaking {
            writeln!(f, "incompatible: {b}")?;
        }
        if self.diff.is_compatible() {
            writeln!(f, "compatible: a Delta version can evolve in place")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"long"}]}"#;
    const ADDED: &str = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"long"},
        {"name":"c","type":["null","string"],"default":null}]}"#;
    const RETYPED: &str =
        r#"{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}"#;

    fn check(old: &str, new: &str) -> SchemaCheck {
        let parse = |s: &str| EventSchema::parse(s).expect("a valid schema");
        SchemaCheck::compare("old".into(), &parse(old), "new".into(), &parse(new))
    }

    #[test]
    fn an_added_nullable_field_evolves_in_place() {
        let c = check(OLD, ADDED);
        assert_eq!(c.verdict(None), Ok(()));
        assert_eq!(c.verdict(Some(Level::Full)), Ok(()));
        assert_eq!(
            c.to_string(),
            "new against old: FULL\nadded nullable field `c`\n\
             compatible: a Delta version can evolve in place\n"
        );
        assert_eq!(c.to_json()["evolve_in_place"], true);
    }

    #[test]
    fn a_changed_type_fails_either_requirement() {
        let c = check(OLD, RETYPED);
        assert_eq!(
            c.verdict(None).map_err(|e| e.to_string()),
            Err(
                "new is not an additive change of old: a version needs a rebuild to take it".into()
            )
        );
        assert!(c.verdict(Some(Level::Backward)).is_err());
        assert_eq!(c.verdict(Some(Level::None)), Ok(()));
        assert_eq!(c.to_json()["level"], "NONE");
    }
}
