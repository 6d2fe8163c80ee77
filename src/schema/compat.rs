//! Avro schema compatibility as a schema registry judges it: BACKWARD (the new schema can read
//! what the old one wrote), FORWARD (the old schema can read what the new one writes), FULL
//! (both). Checked field by field, so that every finding names its field; the type rules
//! (promotions, unions, enums, fixed, named types) are `apache_avro`'s schema resolution.

use apache_avro::Schema as AvroSchema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde::Serialize;

use super::describe;

/// What [`check`] found: why each direction fails; an empty list means it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Compatibility {
    /// Why the new schema cannot read data written with the old one.
    pub backward: Vec<String>,
    /// Why the old schema cannot read data written with the new one.
    pub forward: Vec<String>,
}

impl Compatibility {
    /// The strongest level that holds: `FULL`, `BACKWARD`, `FORWARD` or `NONE`.
    pub fn level(&self) -> &'static str {
        match (self.backward.is_empty(), self.forward.is_empty()) {
            (true, true) => "FULL",
            (true, false) => "BACKWARD",
            (false, true) => "FORWARD",
            (false, false) => "NONE",
        }
    }

    /// Whether `level` holds.
    pub fn holds(&self, level: Level) -> bool {
        match level {
            Level::None => true,
            Level::Backward => self.backward.is_empty(),
            Level::Forward => self.forward.is_empty(),
            Level::Full => self.backward.is_empty() && self.forward.is_empty(),
        }
    }
}

/// A compatibility level, as schema registries name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// The new schema reads data written with the old one.
    Backward,
    /// The old schema reads data written with the new one.
    Forward,
    /// Both.
    Full,
    /// No requirement.
    None,
}

impl std::str::FromStr for Level {
    type Err = String;

    /// `backward`, `forward`, `full` or `none`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "backward" => Ok(Level::Backward),
            "forward" => Ok(Level::Forward),
            "full" => Ok(Level::Full),
            "none" => Ok(Level::None),
            _ => Err(format!(
                "`{s}` is not a compatibility level; use backward, forward, full or none"
            )),
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Backward => "BACKWARD",
            Level::Forward => "FORWARD",
            Level::Full => "FULL",
            Level::None => "NONE",
        })
    }
}

/// Compares `new` with `old` in both directions.
pub fn check(old: &AvroSchema, new: &AvroSchema) -> Compatibility {
    Compatibility {
        backward: problems(old, new, ""),
        forward: problems(new, old, ""),
    }
}

/// Why `reader` cannot read data written with `writer`, one sentence per field.
fn problems(writer: &AvroSchema, reader: &AvroSchema, path: &str) -> Vec<String> {
    match (writer, reader) {
        (AvroSchema::Record(w), AvroSchema::Record(r)) => {
            let mut out = Vec::new();
            for rf in &r.fields {
                let name = if path.is_empty() {
                    rf.name.clone()
                } else {
                    format!("{path}.{}", rf.name)
                };
                let aliases = rf.aliases.as_deref().unwrap_or_default();
                let written = w
                    .fields
                    .iter()
                    .find(|wf| wf.name == rf.name || aliases.contains(&wf.name));
                match written {
                    Some(wf) => out.extend(problems(&wf.schema, &rf.schema, &name)),
                    None if rf.default.is_none() => out.push(format!(
                        "field `{name}` ({}) is not in the writer's schema and has no default in the reader's",
                        describe(&rf.schema)
                    )),
                    None => {}
                }
            }
            out
        }
        _ => match SchemaCompatibility::can_read(writer, reader) {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!(
                "field `{path}`: {} cannot be read as {} ({e})",
                describe(writer),
                describe(reader)
            )],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> AvroSchema {
        AvroSchema::parse_str(&format!(
            r#"{{"type":"record","name":"Order","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    const ID: &str = r#"{"name":"id","type":"long"}"#;
    const NAME: &str = r#"{"name":"name","type":"string"}"#;

    #[test]
    fn an_added_optional_field_is_fully_compatible() {
        let old = schema(&format!("{ID},{NAME}"));
        let new = schema(&format!(
            r#"{ID},{NAME},{{"name":"note","type":["null","string"],"default":null}}"#
        ));
        let c = check(&old, &new);
        assert_eq!(c.level(), "FULL", "{c:?}");
    }

    #[test]
    fn a_removed_field_without_default_breaks_forward_and_is_named() {
        let old = schema(&format!("{ID},{NAME}"));
        let new = schema(ID);
        let c = check(&old, &new);
        assert!(c.backward.is_empty(), "{c:?}");
        assert_eq!(c.level(), "BACKWARD");
        assert_eq!(c.forward.len(), 1, "{c:?}");
        assert!(c.forward[0].contains("`name`"), "{c:?}");
        assert!(c.forward[0].contains("no default"), "{c:?}");
    }

    #[test]
    fn a_type_change_breaks_both_and_is_named() {
        let old = schema(&format!("{ID},{NAME}"));
        let new = schema(&format!(r#"{ID},{{"name":"name","type":"int"}}"#));
        let c = check(&old, &new);
        assert_eq!(c.level(), "NONE", "{c:?}");
        for finding in c.backward.iter().chain(&c.forward) {
            assert!(finding.contains("field `name`"), "{finding}");
        }
        assert!(
            c.backward[0].contains("\"string\" cannot be read as \"int\""),
            "{c:?}"
        );
    }

    #[test]
    fn promotions_and_nested_fields_follow_avro_resolution() {
        // int → long is a promotion: the new schema reads old data, not the other way round.
        let old = schema(r#"{"name":"n","type":"int"}"#);
        let new = schema(r#"{"name":"n","type":"long"}"#);
        assert_eq!(check(&old, &new).level(), "BACKWARD");
        // A required field added inside a nested record is named by its path.
        let addr = |extra: &str| {
            schema(&format!(
                r#"{{"name":"addr","type":{{"type":"record","name":"Addr","fields":[{{"name":"city","type":"string"}}{extra}]}}}}"#
            ))
        };
        let c = check(&addr(""), &addr(r#",{"name":"zip","type":"string"}"#));
        assert_eq!(c.level(), "FORWARD", "{c:?}");
        assert!(c.backward[0].contains("field `addr.zip`"), "{c:?}");
    }
}
