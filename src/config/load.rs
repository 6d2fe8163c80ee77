//! Loading: config text → validated, loaded [`Config`].
//!
//! The phases, in order: parse the TOML, apply the environment's overrides ([`super::env`]),
//! deserialize into the raw structs ([`super::raw`]), validate ([`super::validate`], pure),
//! then load each table: read the files it names (schema, transform `.sql`), check the
//! registry's CA file, compile the transform over the rows and check the time field and the
//! partition column names against them.
//!
//! Invariant: a [`Config`] returned from here has every table's schema loaded and its
//! transform compiled; all I/O of configuration happens here.

use std::path::{Path, PathBuf};

use super::env::apply_env_overrides;
use super::paths::absolute;
use super::raw::RawConfig;
use super::typed::{Config, SourceConfig, TableConfig};
use crate::domain::{CHANGELOG_FIELDS, Format, Granularity, KEY_BUCKET_COLUMN, TimeSpec};
use crate::error::{ConfigError, printable};
use crate::schema::rows::row_schema;
use crate::schema::{EventSchema, KAFKA_RECORD_SCHEMA, KAFKA_RECORD_SCHEMA_FILE};
use crate::transform::{INPUT_TABLE, Transform};

impl Config {
    /// Reads, overrides from the environment, validates, and loads schema files.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_toml(&text, path, &base_dir, std::env::vars())
    }

    /// Parses config text; `env` supplies `KAPPA_LAKE_TABLE__…` overrides.
    pub fn from_toml(
        text: &str,
        file: &Path,
        base_dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            file: file.to_path_buf(),
            message,
        };
        let mut value: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        apply_env_overrides(&mut value, env)?;
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Value::Table(value))
            .map_err(|e| parse_err(format!("key `{}`: {}", e.path(), e.inner())))?;
        let base_dir = absolute(base_dir);
        let mut config = raw.validate(&base_dir)?;
        for table in &mut config.tables {
            load_table(table)?;
        }
        Ok(config)
    }
}

/// The loading phase of one validated table: reads its transform file and schema, checks the
/// registry's CA file, compiles the transform over the rows and checks the time field and the
/// partition column names against the rows.
fn load_table(table: &mut TableConfig) -> Result<(), ConfigError> {
    if let Some(path) = &table.transform_path {
        table.transform = Some(read_transform(path, &table.name)?);
    }
    check_ca_file(table)?;
    let key = format!("table[{}].schema", table.name);
    let schema = match &table.schema_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Schema {
                key: key.clone(),
                path: path.clone(),
                reason: format!("{e}; point `schema` at an existing .avsc file"),
            })?;
            let parsed = if table.changelog {
                EventSchema::parse_with(&text, &CHANGELOG_FIELDS)
            } else {
                EventSchema::parse(&text)
            };
            parsed.map_err(|e| ConfigError::Schema {
                key: key.clone(),
                path: path.clone(),
                reason: e.to_string(),
            })?
        }
        None => EventSchema::parse(KAFKA_RECORD_SCHEMA).map_err(|e| ConfigError::Schema {
            key: key.clone(),
            path: KAFKA_RECORD_SCHEMA_FILE.into(),
            reason: e.to_string(),
        })?,
    };
    let rows = match &table.transform {
        Some(sql) => check_transform(table, sql, &schema)?,
        None => row_schema(&schema.arrow, table.metadata()),
    };
    check_time_field(table, &rows)?;
    check_partition_names(table, &rows)?;
    check_key(table, &schema.arrow, &rows)?;
    table.schema = Some(schema);
    Ok(())
}

/// An upsert table's key columns are event fields of a scalar type, and rows (after any
/// transform) keep them as they are: a delete carries only the key, read from the event.
fn check_key(
    table: &TableConfig,
    events: &arrow::datatypes::Schema,
    rows: &arrow::datatypes::Schema,
) -> Result<(), ConfigError> {
    for name in &table.key {
        let fail = |reason: String, fix: &str| {
            Err(ConfigError::invalid(
                format!("table[{}].key", table.name),
                reason,
                fix.to_string(),
            ))
        };
        let Ok(field) = events.field_with_name(name) else {
            return fail(
                format!("`{}` is not a field of the schema", printable(name)),
                "name fields of the .avsc (the source table's primary key)",
            );
        };
        if field.data_type().is_nested() {
            return fail(
                format!(
                    "`{name}` is {}; a key column is a scalar",
                    field.data_type()
                ),
                "use scalar fields (numbers, strings, times)",
            );
        }
        if matches!(table.granularity, Granularity::KeyBuckets(_))
            && !crate::partition::hashable(field.data_type())
        {
            return fail(
                format!(
                    "`{name}` is {}, which key buckets cannot hash",
                    field.data_type()
                ),
                "partition by key buckets over number, string, time or binary keys, or drop `partition_by`",
            );
        }
        match rows.field_with_name(name) {
            Ok(out) if out.data_type() == field.data_type() => {}
            _ => {
                return fail(
                    format!(
                        "the rows do not keep `{name}` as the event has it ({})",
                        field.data_type()
                    ),
                    "select the key columns unchanged in the transform",
                );
            }
        }
    }
    Ok(())
}

/// The SQL of a table's transform file, at `path`.
fn read_transform(path: &Path, table: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::invalid(
            format!("table[{table}].transform"),
            format!("cannot read transform file `{}`: {e}", path.display()),
            "point `transform` at an existing .sql file (relative to the config), or write the SELECT inline",
        )
    })
}

/// The registry's CA file, when one is set, must be a file.
fn check_ca_file(table: &TableConfig) -> Result<(), ConfigError> {
    let SourceConfig::Kafka(k) = &table.source else {
        return Ok(());
    };
    match k.registry.as_ref().and_then(|r| r.ca_file.as_ref()) {
        Some(f) if !f.is_file() => Err(ConfigError::invalid(
            format!("table[{}].source.schema_registry.ca_file", table.name),
            format!("`{}` is not a file", f.display()),
            "point it at the PEM file of the registry's CA",
        )),
        _ => Ok(()),
    }
}

/// Compiles a table's transform over its input rows; returns the output (the table's rows).
fn check_transform(
    table: &TableConfig,
    sql: &str,
    schema: &EventSchema,
) -> Result<arrow::datatypes::SchemaRef, ConfigError> {
    let input = row_schema(&schema.arrow, table.metadata());
    match Transform::compile(sql, input) {
        Ok(t) => Ok(t.output_schema().clone()),
        Err(e) => {
            let place = match &table.transform_file {
                Some(f) => format!("{f}, "),
                None => String::new(),
            };
            Err(ConfigError::invalid(
                format!("table[{}].transform", table.name),
                format!("{place}{e}"),
                format!(
                    "write one `SELECT … FROM {}` of per-record expressions over the schema's fields and the metadata columns",
                    INPUT_TABLE
                ),
            ))
        }
    }
}

fn check_time_field(
    table: &TableConfig,
    rows: &arrow::datatypes::Schema,
) -> Result<(), ConfigError> {
    use arrow::datatypes::DataType;
    let Some(TimeSpec::Field { name, .. }) = &table.time else {
        return Ok(());
    };
    let key = format!("table[{}].time.field", table.name);
    let field = rows.field_with_name(name).map_err(|_| {
        if table.transform.is_some() {
            ConfigError::invalid(
                &key,
                format!("the transform's output has no column `{name}`"),
                "name a timestamp, string or long column the transform selects",
            )
        } else {
            ConfigError::invalid(
                &key,
                format!("the schema has no top-level field `{name}`"),
                "name a top-level timestamp, string or long field of the schema",
            )
        }
    })?;
    match field.data_type() {
        DataType::Timestamp(..)
        | DataType::Int64
        | DataType::Int32
        | DataType::Utf8
        | DataType::Date32 => Ok(()),
        other => Err(ConfigError::invalid(
            key,
            format!("field `{name}` has type {other}, which is not a time"),
            "use a timestamp-millis/-micros, date, RFC 3339 string or epoch long field",
        )),
    }
}

/// A Delta version's partition columns (`date`, and `hour` for hourly tables) are table
/// columns, so the events cannot have fields of those names.
fn check_partition_names(
    table: &TableConfig,
    rows: &arrow::datatypes::Schema,
) -> Result<(), ConfigError> {
    if table.format != Format::Delta {
        return Ok(());
    }
    let reserved: &[&str] = match table.granularity {
        Granularity::Day => &["date"],
        Granularity::Hour => &["date", "hour"],
        Granularity::KeyBuckets(_) => &[KEY_BUCKET_COLUMN],
        Granularity::Unpartitioned => &[],
    };
    let (key, fix) = if table.transform.is_some() {
        (
            "transform",
            "rename the column in the transform (`AS …`), or use format = \"parquet\"",
        )
    } else {
        (
            "schema",
            "rename the field in the .avsc, or use format = \"parquet\"",
        )
    };
    match rows
        .fields()
        .iter()
        .find(|f| reserved.contains(&f.name().as_str()))
    {
        Some(f) => Err(ConfigError::invalid(
            format!("table[{}].{key}", table.name),
            format!(
                "field `{}` has the name of a partition column of Delta versions",
                f.name()
            ),
            fix,
        )),
        None => Ok(()),
    }
}
