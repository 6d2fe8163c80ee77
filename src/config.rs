//! Configuration: `kappa-lake.toml`, in two phases.
//!
//! 1. [`RawConfig`] mirrors the file (serde, `deny_unknown_fields`); environment variables
//!    `KAPPA_LAKE_TABLE__<NAME>__<KEY>[__<SUBKEY>…]` override single keys before parsing.
//! 2. [`RawConfig::validate`] is pure: it checks every rule and returns a typed [`Config`].
//!    Every error names the key (`table[orders].writer.max_age`) and says how to fix it.
//!
//! Loading the schema files a config names is I/O and happens in [`Config::load`], after
//! validation. Relative paths (`root`, `schema`, `source.path`) are resolved against the
//! directory of the config file, so a config means the same thing from any working directory.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::schema::EventSchema;

/// Prefix of environment variables that override table keys.
pub const ENV_TABLE_PREFIX: &str = "KAPPA_LAKE_TABLE__";

/// Why a configuration was rejected. Always names the key or file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the expected shape.
    #[error("{file}: {message}")]
    Parse {
        /// The config file.
        file: PathBuf,
        /// The parser's message, including the key path and position.
        message: String,
    },
    /// A key has a value that breaks a rule.
    #[error("`{key}`: {problem}; {fix}")]
    Invalid {
        /// The offending key, e.g. `table[orders].writer.max_age`.
        key: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// A schema file named by `key` is missing or invalid.
    #[error("`{key}`: schema file `{path}`: {reason}")]
    Schema {
        /// The key that names the file.
        key: String,
        /// The resolved path.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The table root is not usable (unwritable, unsupported scheme…).
    #[error("`{key}`: root `{root}` is not usable: {reason}")]
    Root {
        /// The key, e.g. `table[orders].root`.
        key: String,
        /// The root as configured.
        root: String,
        /// Why.
        reason: String,
    },
}

fn invalid(
    key: impl Into<String>,
    problem: impl Into<String>,
    fix: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw, as written in the file.
// ---------------------------------------------------------------------------------------------

/// The config file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Object-store options for every table (`[storage]`): `object_store` config keys such as
    /// `aws_endpoint`, `aws_allow_http`, `azure_storage_account_name`. Credentials belong in
    /// the environment, not here.
    #[serde(default)]
    pub storage: BTreeMap<String, String>,
    /// One `[[table]]` section per materialized table.
    #[serde(default)]
    pub table: Vec<RawTable>,
}

/// A `[[table]]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    /// Table name: letters, digits, `_` and `-`; it becomes a path segment under `root`.
    pub name: String,
    /// Where the table lives: a relative path, `file:///…`, `memory://…` (cloud schemes later).
    pub root: String,
    /// `delta` (default) or `parquet`.
    #[serde(default)]
    pub format: Option<Format>,
    /// Path of the `.avsc` event schema.
    pub schema: String,
    /// Optional SQL transform (`SELECT … FROM events`), a path or inline SQL.
    #[serde(default)]
    pub transform: Option<String>,
    /// Event-time and partitioning rule.
    pub time: RawTime,
    /// Add `_kafka_*` (Kafka) or `_source_file`/`_source_line` (files) columns. Default true.
    #[serde(default)]
    pub metadata_columns: Option<bool>,
    /// Where events come from.
    pub source: RawSource,
    /// What happens to a record that cannot be decoded, timed or transformed: `dead_letter`
    /// (default), `fail` or `skip`.
    #[serde(default)]
    pub bad_records: Option<BadRecords>,
    /// File sizing, flush and memory policy.
    #[serde(default)]
    pub writer: RawWriter,
    /// What happens around promotions: previous version retention, gc grace, a hook.
    #[serde(default)]
    pub versions: RawVersions,
    /// Object-store options for this table's root, over those of `[storage]`.
    #[serde(default)]
    pub storage: BTreeMap<String, String>,
}

/// `[table.versions]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVersions {
    /// After a promotion, `run` keeps writing the previous version this long, so `rollback`
    /// is instant. Default `24h`; `0s` freezes it at once.
    #[serde(default)]
    pub retain_previous: Option<String>,
    /// `gc` never deletes a version that was current less than this ago. Default `1h`.
    #[serde(default)]
    pub gc_grace: Option<String>,
    /// Command (run by `sh -c`) after each promotion or rollback, with `KAPPA_LAKE_TABLE`,
    /// `KAPPA_LAKE_FROM_VERSION`, `KAPPA_LAKE_TO_VERSION`, `KAPPA_LAKE_VERSION_PATH` set.
    #[serde(default)]
    pub on_promote: Option<String>,
    /// When the config's definition needs a rebuild, `run` builds the new version in the
    /// background while it keeps writing the live one, and promotes it once caught up
    /// (instead of refusing to start). Default `false`.
    #[serde(default)]
    pub auto_rebuild: bool,
}

/// Validated `[table.versions]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionsConfig {
    /// How long the previous version stays writable after a promotion.
    pub retain_previous: Duration,
    /// Minimum time since a version was current before `gc` may delete it.
    pub gc_grace: Duration,
    /// Command run after each pointer move.
    pub on_promote: Option<String>,
    /// `run` rebuilds and promotes a changed definition itself.
    pub auto_rebuild: bool,
}

impl Default for VersionsConfig {
    fn default() -> Self {
        VersionsConfig {
            retain_previous: Duration::from_secs(24 * 3600),
            gc_grace: Duration::from_secs(3600),
            on_promote: None,
            auto_rebuild: false,
        }
    }
}

impl RawVersions {
    fn validate(self, label: &str) -> Result<VersionsConfig, ConfigError> {
        let d = VersionsConfig::default();
        let duration = |v: &Option<String>, name: &str, default: Duration| match v {
            Some(s) => humantime::parse_duration(s).map_err(|e| {
                invalid(
                    format!("{label}.versions.{name}"),
                    format!("`{s}` is not a duration ({e})"),
                    "write a duration such as \"24h\", \"30m\" or \"0s\"",
                )
            }),
            None => Ok(default),
        };
        Ok(VersionsConfig {
            retain_previous: duration(&self.retain_previous, "retain_previous", d.retain_previous)?,
            gc_grace: duration(&self.gc_grace, "gc_grace", d.gc_grace)?,
            on_promote: self.on_promote.filter(|c| !c.trim().is_empty()),
            auto_rebuild: self.auto_rebuild,
        })
    }
}

/// What happens to a record that cannot be decoded, given an event time or transformed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRecords {
    /// Into the version's dead-letter table, committed with the data (the default).
    #[default]
    DeadLetter,
    /// Stop with the error and the record's coordinates; nothing from the uncommitted batch is
    /// committed, so a restart meets the record again (until the definition or policy changes).
    Fail,
    /// Drop it: counted (`kappa_lake_bad_records_skipped_total`, the run's report) and
    /// logged with its coordinates and reason.
    Skip,
}

/// Output format of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Delta Lake table (transaction log with `txn` offsets).
    Delta,
    /// Plain hive-partitioned Parquet with kappa-lake's own commit log.
    Parquet,
}

/// Granularity of time partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// `date=YYYY-MM-DD`
    Day,
    /// `date=YYYY-MM-DD/hour=HH`
    Hour,
}

/// Unit of an integer event-time field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpochUnit {
    /// Seconds since the Unix epoch.
    S,
    /// Milliseconds since the Unix epoch.
    Ms,
    /// Microseconds since the Unix epoch.
    Us,
}

/// `time = { field = "ts", granularity = "hour" }` or `{ source = "kafka", … }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTime {
    /// Event field holding the event time (timestamp, RFC 3339 string or epoch number).
    #[serde(default)]
    pub field: Option<String>,
    /// `"kafka"`: use the record's Kafka timestamp instead of a field.
    #[serde(default)]
    pub source: Option<String>,
    /// `day` or `hour`.
    pub granularity: Granularity,
    /// Unit when the field is an epoch number: `s`, `ms` (default) or `us`.
    #[serde(default)]
    pub unit: Option<EpochUnit>,
}

/// Kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A Kafka topic.
    Kafka,
    /// A directory of `.ndjson` / `.ndjson.gz` files, read as an immutable log.
    Files,
}

/// Payload encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// One JSON object per record.
    Json,
    /// Raw Avro binary with the version's schema.
    Avro,
    /// Confluent wire format (magic byte + schema id).
    AvroConfluent,
}

/// `[table.source]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `kafka` or `files`.
    pub kind: SourceKind,
    /// Files: the directory holding the log files.
    #[serde(default)]
    pub path: Option<String>,
    /// Kafka: bootstrap servers.
    #[serde(default)]
    pub brokers: Option<String>,
    /// Kafka: the topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// Kafka: consumer group id prefix; `.v<N>` is appended per version. Default
    /// `kappa-lake.<table>`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// `json` (default), `avro` or `avro-confluent`.
    #[serde(default)]
    pub encoding: Option<Encoding>,
    /// Records larger than this go to the dead-letter path. Default `1MiB`.
    #[serde(default)]
    pub max_record_bytes: Option<String>,
    /// Records decoded per Arrow batch. Default 8192.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// librdkafka settings, passed through verbatim.
    #[serde(default)]
    pub kafka: BTreeMap<String, toml::Value>,
    /// Kafka with `encoding = "avro-confluent"`: where writer schemas are looked up.
    #[serde(default)]
    pub schema_registry: Option<RawRegistry>,
}

/// `[table.source.schema_registry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    /// `http(s)://host:port[/path]`.
    pub url: String,
    /// Basic auth user.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic auth password (better set by `KAPPA_LAKE_TABLE__<T>__SOURCE__SCHEMA_REGISTRY__PASSWORD`).
    #[serde(default)]
    pub password: Option<String>,
    /// PEM file of the CA that signed the registry's certificate (default: the system's roots).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The subject `schema check` compares with. Default `<topic>-value`.
    #[serde(default)]
    pub subject: Option<String>,
}

/// Validated `[table.source.schema_registry]`.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Base URL, without credentials.
    pub url: url::Url,
    /// Basic auth user.
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Option<String>,
    /// CA certificate file.
    pub ca_file: Option<PathBuf>,
    /// The subject of the topic's value schema.
    pub subject: String,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("url", &self.url.as_str())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("subject", &self.subject)
            .finish()
    }
}

/// `[table.writer]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWriter {
    /// Roll a data file when it reaches this size. Default `128MiB`.
    #[serde(default)]
    pub target_file_size: Option<String>,
    /// Commit (and so close open files) at least this often. Default `60s`.
    #[serde(default)]
    pub max_age: Option<String>,
    /// Upper bound of bytes held by open files (their zstd contexts included); above it the least
    /// recently written are closed. Default `256MiB`.
    #[serde(default)]
    pub max_buffer_bytes: Option<String>,
    /// Rows per Parquet row group. Default 131072.
    #[serde(default)]
    pub row_group_rows: Option<usize>,
    /// zstd compression level, 1–22. Default 3.
    #[serde(default)]
    pub zstd_level: Option<i32>,
    /// Delta: write a checkpoint every this many commits (`delta.checkpointInterval`).
    /// Default 100.
    #[serde(default)]
    pub checkpoint_interval: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Typed, after validation.
// ---------------------------------------------------------------------------------------------

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The tables, in file order.
    pub tables: Vec<TableConfig>,
}

/// One validated table definition.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// Table name.
    pub name: String,
    /// Root as configured (relative paths already resolved to absolute `file` roots).
    pub root: Root,
    /// Output format.
    pub format: Format,
    /// Schema file as written in the config.
    pub schema_file: String,
    /// Resolved schema path.
    pub schema_path: PathBuf,
    /// The loaded schema (filled by [`Config::load`]).
    pub schema: Option<EventSchema>,
    /// Transform SQL, if any (read from its file when `transform` names a `.sql` file).
    pub transform: Option<String>,
    /// The `.sql` file the transform came from, as written in the config.
    pub transform_file: Option<String>,
    /// Event time rule.
    pub time: TimeSpec,
    /// Partition granularity.
    pub granularity: Granularity,
    /// Whether to add source metadata columns.
    pub metadata_columns: bool,
    /// The source.
    pub source: SourceConfig,
    /// What happens to bad records.
    pub bad_records: BadRecords,
    /// Writer policy.
    pub writer: WriterConfig,
    /// Promotion-related settings.
    pub versions: VersionsConfig,
    /// Object-store options for the root (`[storage]` and `[table.storage]`).
    pub storage: crate::storage::StorageOptions,
}

impl TableConfig {
    /// The loaded event schema. Present on every config returned by [`Config::load`].
    pub fn event_schema(&self) -> &EventSchema {
        self.schema
            .as_ref()
            .expect("Config::load fills every table's schema before returning")
    }
}

/// Where a table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// A local directory (absolute).
    Local(PathBuf),
    /// An object store URL (`memory://`, `s3://`, `az://`, `abfss://`, `gs://`).
    Url(url::Url),
}

impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Root::Local(p) => write!(f, "{}", p.display()),
            Root::Url(u) => write!(f, "{u}"),
        }
    }
}

/// How a record's event time is found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSpec {
    /// From an event field.
    Field {
        /// Field name.
        name: String,
        /// Unit when the field holds an epoch number.
        unit: EpochUnit,
    },
    /// From the record's source timestamp (Kafka).
    SourceTimestamp,
}

/// A validated source.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Files in a directory.
    Files(FilesSourceConfig),
    /// A Kafka topic.
    Kafka(KafkaSourceConfig),
}

impl SourceConfig {
    /// Records per decoded batch.
    pub fn batch_size(&self) -> usize {
        match self {
            SourceConfig::Files(f) => f.batch_size,
            SourceConfig::Kafka(k) => k.batch_size,
        }
    }
    /// Payload encoding.
    pub fn encoding(&self) -> Encoding {
        match self {
            SourceConfig::Files(f) => f.encoding,
            SourceConfig::Kafka(k) => k.encoding,
        }
    }
    /// Records larger than this are dead-lettered.
    pub fn max_record_bytes(&self) -> usize {
        match self {
            SourceConfig::Files(f) => f.max_record_bytes,
            SourceConfig::Kafka(k) => k.max_record_bytes,
        }
    }
    /// What identifies the source in a version definition (not credentials or hosts).
    pub fn identity(&self) -> serde_json::Value {
        match self {
            SourceConfig::Files(f) => {
                serde_json::json!({"kind": "files", "path": f.path_as_written, "encoding": f.encoding})
            }
            SourceConfig::Kafka(k) => {
                serde_json::json!({"kind": "kafka", "topic": k.topic, "encoding": k.encoding})
            }
        }
    }
}

/// `source.kind = "files"`.
#[derive(Debug, Clone)]
pub struct FilesSourceConfig {
    /// The directory as written in the config.
    pub path_as_written: String,
    /// The resolved directory.
    pub path: PathBuf,
    /// Payload encoding.
    pub encoding: Encoding,
    /// Dead-letter threshold.
    pub max_record_bytes: usize,
    /// Records per batch.
    pub batch_size: usize,
}

/// `source.kind = "kafka"`.
#[derive(Debug, Clone)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topic.
    pub topic: String,
    /// Consumer group id prefix.
    pub group_id: String,
    /// Payload encoding.
    pub encoding: Encoding,
    /// librdkafka settings, as strings.
    pub settings: BTreeMap<String, String>,
    /// The schema registry (`avro-confluent`).
    pub registry: Option<Box<RegistryConfig>>,
    /// Dead-letter threshold.
    pub max_record_bytes: usize,
    /// Records per batch.
    pub batch_size: usize,
}

/// Validated `[table.writer]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// Roll files at this size.
    pub target_file_size: u64,
    /// Commit at least this often.
    pub max_age: Duration,
    /// Bound on buffered bytes.
    pub max_buffer_bytes: u64,
    /// Rows per row group.
    pub row_group_rows: usize,
    /// zstd level.
    pub zstd_level: i32,
    /// Delta: checkpoint every this many commits.
    pub checkpoint_interval: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            target_file_size: 128 << 20,
            max_age: Duration::from_secs(60),
            max_buffer_bytes: 256 << 20,
            row_group_rows: 128 * 1024,
            zstd_level: 3,
            checkpoint_interval: 100,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading.
// ---------------------------------------------------------------------------------------------

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
            let key = format!("table[{}].schema", table.name);
            let text =
                std::fs::read_to_string(&table.schema_path).map_err(|e| ConfigError::Schema {
                    key: key.clone(),
                    path: table.schema_path.clone(),
                    reason: format!("{e}; point `schema` at an existing .avsc file"),
                })?;
            let schema = EventSchema::parse(&text).map_err(|e| ConfigError::Schema {
                key: key.clone(),
                path: table.schema_path.clone(),
                reason: e.to_string(),
            })?;
            let rows = match &table.transform {
                Some(sql) => check_transform(table, sql, &schema)?,
                None => crate::pipeline::shape::row_schema(
                    &schema.arrow,
                    crate::pipeline::shape::Metadata::of_table(table),
                ),
            };
            check_time_field(table, &rows)?;
            check_partition_names(table, &rows)?;
            table.schema = Some(schema);
        }
        Ok(config)
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Result<&TableConfig, ConfigError> {
        self.tables.iter().find(|t| t.name == name).ok_or_else(|| {
            let names: Vec<_> = self.tables.iter().map(|t| t.name.as_str()).collect();
            invalid(
                "--table",
                format!("no table named `{}` in the config", printable(name)),
                format!("use one of: {}", names.join(", ")),
            )
        })
    }
}

/// `transform` (inline SQL, or a `.sql` file relative to the config) → (SQL, file).
fn read_transform(
    value: &str,
    key: &str,
    base_dir: &Path,
) -> Result<(String, Option<String>), ConfigError> {
    let trimmed = value.trim();
    if !trimmed.ends_with(".sql") || trimmed.contains(char::is_whitespace) {
        return Ok((value.to_string(), None));
    }
    let path = base_dir.join(trimmed);
    let sql = std::fs::read_to_string(&path).map_err(|e| {
        invalid(
            key,
            format!("cannot read transform file `{}`: {e}", path.display()),
            "point `transform` at an existing .sql file (relative to the config), or write the SELECT inline",
        )
    })?;
    Ok((sql, Some(trimmed.to_string())))
}

/// Compiles a table's transform over its input rows; returns the output (the table's rows).
fn check_transform(
    table: &TableConfig,
    sql: &str,
    schema: &EventSchema,
) -> Result<arrow::datatypes::SchemaRef, ConfigError> {
    let input = crate::pipeline::shape::row_schema(
        &schema.arrow,
        crate::pipeline::shape::Metadata::of_table(table),
    );
    match crate::transform::Transform::compile(sql, input) {
        Ok(t) => Ok(t.output_schema().clone()),
        Err(e) => {
            let place = match &table.transform_file {
                Some(f) => format!("{f}, "),
                None => String::new(),
            };
            Err(invalid(
                format!("table[{}].transform", table.name),
                format!("{place}{e}"),
                format!(
                    "write one `SELECT … FROM {}` of per-record expressions over the schema's fields and the metadata columns",
                    crate::transform::INPUT_TABLE
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
    let TimeSpec::Field { name, .. } = &table.time else {
        return Ok(());
    };
    let key = format!("table[{}].time.field", table.name);
    let field = rows.field_with_name(name).map_err(|_| {
        if table.transform.is_some() {
            invalid(
                &key,
                format!("the transform's output has no column `{name}`"),
                "name a timestamp, string or long column the transform selects",
            )
        } else {
            invalid(
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
        other => Err(invalid(
            key,
            format!("field `{name}` has type {other}, which is not a time"),
            "use a timestamp-millis/-micros, date, RFC 3339 string or epoch long field",
        )),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Applies `KAPPA_LAKE_TABLE__<NAME>__<KEY>[__<SUBKEY>…]=value` to the parsed TOML.
///
/// Table names and keys match case-insensitively. Under `source.kafka`, `_` in the key
/// stands for `.` (`…__KAFKA__SESSION_TIMEOUT_MS` sets `session.timeout.ms`). A value replacing
/// a string stays a string; otherwise it is parsed as a TOML value when it parses.
fn apply_env_overrides(
    root: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_TABLE_PREFIX))
        .collect();
    overrides.sort();
    for (var, raw_value) in overrides {
        let rest = &var[ENV_TABLE_PREFIX.len()..];
        let mut parts = rest.split("__");
        let bad = |problem: &str| {
            invalid(
                &var,
                problem.to_string(),
                "write KAPPA_LAKE_TABLE__<TABLE>__<KEY>[__<SUBKEY>], e.g. KAPPA_LAKE_TABLE__ORDERS__WRITER__MAX_AGE=30s",
            )
        };
        let table_name = parts
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("no table name"))?;
        let keys: Vec<&str> = parts.collect();
        if keys.is_empty() || keys.iter().any(|k| k.is_empty()) {
            return Err(bad("no key after the table name"));
        }
        let tables = root
            .get_mut("table")
            .and_then(toml::Value::as_array_mut)
            .ok_or_else(|| bad("the config defines no [[table]]"))?;
        let table = tables
            .iter_mut()
            .filter_map(toml::Value::as_table_mut)
            .find(|t| {
                t.get("name")
                    .and_then(toml::Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(table_name))
            })
            .ok_or_else(|| {
                bad(&format!(
                    "no table named `{}` in the config",
                    printable(table_name)
                ))
            })?;
        let mut node = table;
        let mut in_kafka = false;
        for (i, key) in keys.iter().enumerate() {
            let key = if in_kafka {
                key.to_ascii_lowercase().replace('_', ".")
            } else {
                key.to_ascii_lowercase()
            };
            if i + 1 == keys.len() {
                let existing_is_string = node.get(&key).is_some_and(toml::Value::is_str);
                node.insert(key, env_value(&raw_value, existing_is_string));
                break;
            }
            in_kafka = key == "kafka";
            node = node
                .entry(key)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| bad("a key on the path is not a table"))?;
        }
    }
    Ok(())
}

fn env_value(raw: &str, keep_string: bool) -> toml::Value {
    if !keep_string
        && let Ok(mut t) = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    toml::Value::String(raw.to_string())
}

impl RawConfig {
    /// Checks every rule; pure (no I/O). Relative paths are joined to `base_dir`.
    pub fn validate(self, base_dir: &Path) -> Result<Config, ConfigError> {
        if self.table.is_empty() {
            return Err(invalid(
                "table",
                "the config defines no table",
                "add a [[table]] section (see the README's minimal config)",
            ));
        }
        let mut seen = HashSet::new();
        let mut tables = Vec::with_capacity(self.table.len());
        for (i, mut raw) in self.table.into_iter().enumerate() {
            // Checked before the name is used in any key: it may hold anything.
            validate_table_name(&raw.name, &format!("table[{i}].name"))?;
            let label = format!("table[{}]", raw.name);
            if !seen.insert(raw.name.clone()) {
                return Err(invalid(
                    format!("{label}.name"),
                    format!("table `{}` is defined twice", raw.name),
                    "give every [[table]] a unique name",
                ));
            }
            let mut storage = self.storage.clone();
            storage.extend(std::mem::take(&mut raw.storage));
            let mut table = raw.validate(&label, base_dir)?;
            table.storage = crate::storage::StorageOptions::check(
                &table.root,
                storage,
                &format!("{label}.storage"),
            )?;
            tables.push(table);
        }
        Ok(Config { tables })
    }
}

/// Table names become path segments: restrict them so they can never escape the root.
pub fn validate_table_name(name: &str, key: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(['_', '.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{}` is not a valid table name", printable(name)),
            "use 1–128 ASCII letters, digits, `_` or `-`, starting with a letter or digit",
        ))
    }
}

/// A user-supplied value for an error message: control characters escaped (a name must not
/// forge log lines or drive a terminal), at most 64 characters.
fn printable(value: &str) -> String {
    let mut shown: String = value
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(64).is_some() {
        shown.push('…');
    }
    shown
}

impl RawTable {
    fn validate(self, label: &str, base_dir: &Path) -> Result<TableConfig, ConfigError> {
        let format = self.format.unwrap_or(Format::Delta);
        let (transform, transform_file) = match self.transform {
            Some(t) => {
                let (sql, file) = read_transform(&t, &format!("{label}.transform"), base_dir)?;
                (Some(sql), file)
            }
            None => (None, None),
        };
        let root = parse_root(&self.root, &format!("{label}.root"), base_dir)?;
        let schema_path = base_dir.join(&self.schema);
        let (time, granularity) = self.time.validate(label)?;
        let source = self.source.validate(label, &self.name, base_dir)?;
        if matches!(time, TimeSpec::SourceTimestamp) && matches!(source, SourceConfig::Files(_)) {
            return Err(invalid(
                format!("{label}.time.source"),
                "file sources carry no record timestamps",
                "use time = { field = \"<event time field>\", granularity = … }",
            ));
        }
        let writer = self.writer.validate(label)?;
        let versions = self.versions.validate(label)?;
        Ok(TableConfig {
            name: self.name,
            root,
            format,
            schema_file: self.schema,
            schema_path,
            schema: None,
            transform,
            transform_file,
            time,
            granularity,
            metadata_columns: self.metadata_columns.unwrap_or(true),
            source,
            bad_records: self.bad_records.unwrap_or_default(),
            writer,
            versions,
            storage: crate::storage::StorageOptions::default(),
        })
    }
}

fn parse_root(root: &str, key: &str, base_dir: &Path) -> Result<Root, ConfigError> {
    if root.trim().is_empty() {
        return Err(invalid(
            key,
            "the root is empty",
            "set root = \"./lake\" or a URL",
        ));
    }
    match url::Url::parse(root) {
        Ok(url) if url.scheme() == "file" => {
            let path = url.to_file_path().map_err(|()| {
                invalid(
                    key,
                    format!("`{root}` is not a local file URL"),
                    "write file:///absolute/path",
                )
            })?;
            Ok(Root::Local(path))
        }
        // (abfss://container@account.… names the container where a user name would be.)
        Ok(url)
            if url.password().is_some()
                || (!url.username().is_empty() && !url.scheme().starts_with("abfs")) =>
        {
            Err(invalid(
                key,
                "the root URL carries credentials",
                "remove them from the URL and set them in the environment (AWS_ACCESS_KEY_ID, AZURE_STORAGE_ACCOUNT_KEY, GOOGLE_SERVICE_ACCOUNT, …)",
            ))
        }
        Ok(url) if crate::storage::Cloud::of(&url).is_some() || url.scheme() == "memory" => {
            Ok(Root::Url(url))
        }
        Ok(url) if url.scheme().len() > 1 => Err(ConfigError::Root {
            key: key.to_string(),
            root: root.to_string(),
            reason: format!(
                "the `{}` scheme is not supported; use a local path, file://, memory://, s3://, az://, abfss:// or gs://",
                url.scheme()
            ),
        }),
        // Not a URL (or a Windows drive letter): a path.
        _ => Ok(Root::Local(absolute(&base_dir.join(root)))),
    }
}

impl RawTime {
    fn validate(self, label: &str) -> Result<(TimeSpec, Granularity), ConfigError> {
        let key = format!("{label}.time");
        let spec = match (self.field, self.source) {
            (Some(field), None) if !field.is_empty() => TimeSpec::Field {
                name: field,
                unit: self.unit.unwrap_or(EpochUnit::Ms),
            },
            (None, Some(source)) if source == "kafka" => {
                if self.unit.is_some() {
                    return Err(invalid(
                        format!("{key}.unit"),
                        "`unit` applies to `field` only",
                        "remove `unit` when time.source = \"kafka\"",
                    ));
                }
                TimeSpec::SourceTimestamp
            }
            (None, Some(other)) => {
                return Err(invalid(
                    format!("{key}.source"),
                    format!("unknown time source `{other}`"),
                    "use source = \"kafka\" or field = \"<name>\"",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    key,
                    "both `field` and `source` are set",
                    "set exactly one of them",
                ));
            }
            _ => {
                return Err(invalid(
                    key,
                    "neither `field` nor `source` is set",
                    "write time = { field = \"ts\", granularity = \"hour\" } or { source = \"kafka\", granularity = \"day\" }",
                ));
            }
        };
        Ok((spec, self.granularity))
    }
}

impl RawRegistry {
    fn validate(
        self,
        key: &str,
        topic: &str,
        base_dir: &Path,
    ) -> Result<RegistryConfig, ConfigError> {
        let url = url::Url::parse(&self.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                invalid(
                    format!("{key}.url"),
                    "not an http(s) URL",
                    "write url = \"http://host:8081\" (or https://…)",
                )
            })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                format!("{key}.url"),
                "the URL carries credentials",
                format!("remove them from the URL; set {key}.username and {key}.password"),
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(invalid(
                format!("{key}.username"),
                "a password without a user name",
                format!("set {key}.username"),
            ));
        }
        let ca_file = self.ca_file.map(|f| absolute(&base_dir.join(f)));
        if let Some(f) = ca_file.as_ref().filter(|f| !f.is_file()) {
            return Err(invalid(
                format!("{key}.ca_file"),
                format!("`{}` is not a file", f.display()),
                "point it at the PEM file of the registry's CA",
            ));
        }
        Ok(RegistryConfig {
            url,
            username: self.username,
            password: self.password,
            ca_file,
            subject: self.subject.unwrap_or_else(|| format!("{topic}-value")),
        })
    }
}

impl RawSource {
    fn validate(
        self,
        label: &str,
        table: &str,
        base_dir: &Path,
    ) -> Result<SourceConfig, ConfigError> {
        let key = format!("{label}.source");
        let max_record_bytes = match &self.max_record_bytes {
            Some(s) => parse_size(s, &format!("{key}.max_record_bytes"))?,
            None => 1 << 20,
        };
        let max_record_bytes = usize::try_from(max_record_bytes).unwrap_or(usize::MAX);
        let batch_size = self.batch_size.unwrap_or(8192);
        if batch_size == 0 || batch_size > 1 << 20 {
            return Err(invalid(
                format!("{key}.batch_size"),
                format!("{batch_size} is out of range"),
                "use a value between 1 and 1048576 (default 8192)",
            ));
        }
        let encoding = self.encoding.unwrap_or(Encoding::Json);
        let only_for = |name: &str, present: bool, kind: &str| {
            if present {
                Err(invalid(
                    format!("{key}.{name}"),
                    format!("`{name}` is only used by kind = \"{kind}\""),
                    format!("remove `{name}` or change `kind`"),
                ))
            } else {
                Ok(())
            }
        };
        match self.kind {
            SourceKind::Files => {
                only_for("brokers", self.brokers.is_some(), "kafka")?;
                only_for("topic", self.topic.is_some(), "kafka")?;
                only_for("group_id", self.group_id.is_some(), "kafka")?;
                only_for("kafka", !self.kafka.is_empty(), "kafka")?;
                only_for("schema_registry", self.schema_registry.is_some(), "kafka")?;
                if encoding != Encoding::Json {
                    return Err(invalid(
                        format!("{key}.encoding"),
                        "a files source holds NDJSON lines; Avro is read from Kafka",
                        "use encoding = \"json\", or kind = \"kafka\" for Avro",
                    ));
                }
                let path = self.path.ok_or_else(|| {
                    invalid(
                        format!("{key}.path"),
                        "a files source needs a directory",
                        "set path = \"<directory of .ndjson files>\"",
                    )
                })?;
                Ok(SourceConfig::Files(FilesSourceConfig {
                    path: absolute(&base_dir.join(&path)),
                    path_as_written: path,
                    encoding,
                    max_record_bytes,
                    batch_size,
                }))
            }
            SourceKind::Kafka => {
                only_for("path", self.path.is_some(), "files")?;
                let required = |name: &str, v: Option<String>| {
                    v.filter(|s| !s.is_empty()).ok_or_else(|| {
                        invalid(
                            format!("{key}.{name}"),
                            format!("a kafka source needs `{name}`"),
                            format!("set {name} = \"…\""),
                        )
                    })
                };
                let brokers = required("brokers", self.brokers)?;
                let topic = required("topic", self.topic)?;
                let mut settings = BTreeMap::new();
                for (k, v) in self.kafka {
                    let s = match v {
                        toml::Value::String(s) => s,
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Boolean(b) => b.to_string(),
                        toml::Value::Float(f) => f.to_string(),
                        _ => {
                            return Err(invalid(
                                format!("{key}.kafka.\"{k}\""),
                                "librdkafka settings must be strings, numbers or booleans",
                                "quote the value",
                            ));
                        }
                    };
                    settings.insert(k, s);
                }
                for reserved in ["bootstrap.servers", "group.id", "enable.auto.commit"] {
                    if settings.contains_key(reserved) {
                        return Err(invalid(
                            format!("{key}.kafka.\"{reserved}\""),
                            "kappa-lake sets this itself (brokers, a group per version, offsets in the commits)",
                            format!("remove it; use `{key}.brokers` or `{key}.group_id` instead"),
                        ));
                    }
                }
                // librdkafka checks names and values (and that this build supports them, e.g.
                // SASL/SSL) without connecting anywhere.
                for (k, v) in &settings {
                    let mut probe = rdkafka::ClientConfig::new();
                    probe.set(k, v);
                    if let Err(e) = probe.create_native_config() {
                        // The value may be a secret (a password, a key): never echo it.
                        let reason = match e {
                            rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => desc,
                            other => other.to_string(),
                        };
                        let reason = if v.len() >= 4 {
                            reason.replace(v.as_str(), "<value>")
                        } else {
                            reason
                        };
                        return Err(invalid(
                            format!("{key}.kafka.\"{k}\""),
                            format!("librdkafka rejects it: {reason}"),
                            "check the property name and value against librdkafka's CONFIGURATION.md",
                        ));
                    }
                }
                let group_id = self
                    .group_id
                    .unwrap_or_else(|| format!("kappa-lake.{table}"));
                let registry = self
                    .schema_registry
                    .map(|r| r.validate(&format!("{key}.schema_registry"), &topic, base_dir))
                    .transpose()?
                    .map(Box::new);
                if encoding == Encoding::AvroConfluent && registry.is_none() {
                    return Err(invalid(
                        format!("{key}.schema_registry.url"),
                        "encoding = \"avro-confluent\" looks writer schemas up in a schema registry",
                        "add [table.source.schema_registry] with url = \"http://host:8081\"",
                    ));
                }
                Ok(SourceConfig::Kafka(KafkaSourceConfig {
                    brokers,
                    topic,
                    group_id,
                    encoding,
                    settings,
                    registry,
                    max_record_bytes,
                    batch_size,
                }))
            }
        }
    }
}

impl RawWriter {
    fn validate(self, label: &str) -> Result<WriterConfig, ConfigError> {
        let key = format!("{label}.writer");
        let d = WriterConfig::default();
        let target_file_size = match &self.target_file_size {
            Some(s) => parse_size(s, &format!("{key}.target_file_size"))?,
            None => d.target_file_size,
        };
        let max_buffer_bytes = match &self.max_buffer_bytes {
            Some(s) => parse_size(s, &format!("{key}.max_buffer_bytes"))?,
            None => d.max_buffer_bytes,
        };
        let max_age = match &self.max_age {
            Some(s) => humantime::parse_duration(s).map_err(|e| {
                invalid(
                    format!("{key}.max_age"),
                    format!("`{s}` is not a duration ({e})"),
                    "write a duration such as \"60s\", \"500ms\" or \"5m\"",
                )
            })?,
            None => d.max_age,
        };
        if max_age.is_zero() {
            return Err(invalid(
                format!("{key}.max_age"),
                "must be positive",
                "use e.g. \"60s\"",
            ));
        }
        if target_file_size < 1024 {
            return Err(invalid(
                format!("{key}.target_file_size"),
                "must be at least 1KiB",
                "use e.g. \"128MiB\"",
            ));
        }
        if max_buffer_bytes < 1 << 20 {
            return Err(invalid(
                format!("{key}.max_buffer_bytes"),
                "must be at least 1MiB",
                "use e.g. \"256MiB\"",
            ));
        }
        let row_group_rows = self.row_group_rows.unwrap_or(d.row_group_rows);
        if row_group_rows == 0 {
            return Err(invalid(
                format!("{key}.row_group_rows"),
                "must be positive",
                "use e.g. 131072",
            ));
        }
        let zstd_level = self.zstd_level.unwrap_or(d.zstd_level);
        if !(1..=22).contains(&zstd_level) {
            return Err(invalid(
                format!("{key}.zstd_level"),
                format!("{zstd_level} is out of range"),
                "use 1–22",
            ));
        }
        let checkpoint_interval = self.checkpoint_interval.unwrap_or(d.checkpoint_interval);
        if checkpoint_interval == 0 {
            return Err(invalid(
                format!("{key}.checkpoint_interval"),
                "must be positive",
                "use e.g. 100",
            ));
        }
        Ok(WriterConfig {
            target_file_size,
            max_age,
            max_buffer_bytes,
            row_group_rows,
            zstd_level,
            checkpoint_interval,
        })
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
        Some(f) => Err(invalid(
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

/// Parses `"128MiB"`, `"64 MB"`, `"1048576"` into bytes; errors name `key`.
pub fn parse_size(s: &str, key: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => u64::MAX,
    };
    num.parse::<u64>()
        .ok()
        .filter(|_| mult != u64::MAX)
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            invalid(
                key,
                format!("`{s}` is not a size"),
                "write a size such as \"128MiB\", \"64MB\" or \"1048576\"",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[table]]
name = "orders"
root = "./lake"
schema = "schemas/orders.avsc"
time = { field = "ts", granularity = "hour" }
[table.source]
kind = "files"
path = "events"
[table.writer]
target_file_size = "128MiB"
max_age = "60s"
"#;

    #[test]
    fn cloud_roots_and_storage_options() {
        let with_root = |root: &str, extra: &str| {
            let text = MINIMAL.replace("root = \"./lake\"", &format!("root = \"{root}\"{extra}"));
            parse(&text, &[])
        };
        for root in [
            "s3://bucket/prefix",
            "az://container/prefix",
            "abfss://container@acct.dfs.core.windows.net/prefix",
            "gs://bucket/prefix",
        ] {
            let config = with_root(root, "").unwrap_or_else(|e| panic!("{root}: {e}"));
            assert_eq!(config.tables[0].root.to_string(), root);
        }
        let e = with_root("s3://key:secret@bucket/p", "").unwrap_err();
        assert!(e.to_string().contains("carries credentials"), "{e}");
        assert!(!e.to_string().contains("secret@"), "{e}");
        let e = with_root("ftp://host/p", "").unwrap_err();
        assert!(
            e.to_string().contains("`ftp` scheme is not supported"),
            "{e}"
        );
        let text = format!(
            "[storage]\naws_region = \"eu-west-1\"\n{}",
            MINIMAL.replace("./lake", "s3://b/p")
        ) + "[table.storage]\naws_endpoint = \"http://127.0.0.1:9000\"\n";
        let config = parse(&text, &[]).unwrap();
        let keys: Vec<_> = config.tables[0].storage.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["aws_endpoint", "aws_region"]);
        let e = parse(&(text + "nope = \"1\"\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("table[orders].storage.nope"), "{e}");
    }

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut raw: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: "t.toml".into(),
            message: e.to_string(),
        })?;
        apply_env_overrides(
            &mut raw,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )?;
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(raw)).map_err(|e| {
                ConfigError::Parse {
                    file: "t.toml".into(),
                    message: format!("key `{}`: {}", e.path(), e.inner()),
                }
            })?;
        raw.validate(Path::new("/cfg"))
    }

    #[test]
    fn minimal_config_validates_with_defaults() {
        let c = parse(MINIMAL, &[]).unwrap();
        let t = &c.tables[0];
        assert_eq!(t.root, Root::Local(PathBuf::from("/cfg/lake")));
        assert_eq!(t.format, Format::Delta);
        assert_eq!(t.writer.target_file_size, 128 << 20);
        assert_eq!(t.granularity, Granularity::Hour);
        assert!(t.metadata_columns);
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let text = MINIMAL.replace("max_age = \"60s\"", "max_age = \"60s\"\nmax_agee = 1");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            e.contains("table[0].writer") && e.contains("max_agee"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let text = MINIMAL.replace("max_age = \"60s\"", "max_age = 60");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(e.contains("table[0].writer.max_age"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_fix() {
        let text = MINIMAL.replace("\"128MiB\"", "\"lots\"");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            e.contains("table[orders].writer.target_file_size") && e.contains("128MiB"),
            "{e}"
        );
        let text = MINIMAL.replace("name = \"orders\"", "name = \"../etc\"");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(e.contains("not a valid table name"), "{e}");
        // A hostile name is refused before it is used in a key, and printed escaped.
        let text = MINIMAL.replace("name = \"orders\"", "name = \"a\\u001b[2J\\nb\"");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(e.contains("table[0].name"), "{e}");
        assert!(e.contains("a\\u{1b}[2J\\nb"), "{e}");
        assert!(!e.contains('\u{1b}') && !e.contains("a\nb"), "{e}");
        let text = MINIMAL.replace(
            "name = \"orders\"",
            &format!("name = \"{}\"", "x".repeat(500)),
        );
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(e.len() < 400 && e.contains('…'), "{e}");
    }

    const KAFKA: &str = r#"
[[table]]
name = "orders"
root = "./lake"
schema = "schemas/orders.avsc"
time = { source = "kafka", granularity = "day" }
[table.source]
kind = "kafka"
brokers = "127.0.0.1:9092"
topic = "orders"
[table.source.kafka]
"session.timeout.ms" = 6000
"security.protocol" = "SASL_SSL"
"#;

    #[test]
    fn kafka_source_passes_settings_through_and_defaults_the_group() {
        let c = parse(
            KAFKA,
            &[(
                "KAPPA_LAKE_TABLE__ORDERS__SOURCE__KAFKA__FETCH_MIN_BYTES",
                "1",
            )],
        )
        .unwrap();
        let SourceConfig::Kafka(k) = &c.tables[0].source else {
            panic!("kafka source expected");
        };
        assert_eq!(k.brokers, "127.0.0.1:9092");
        assert_eq!(k.group_id, "kappa-lake.orders");
        assert_eq!(k.settings["session.timeout.ms"], "6000");
        assert_eq!(k.settings["security.protocol"], "SASL_SSL");
        assert_eq!(k.settings["fetch.min.bytes"], "1");
        assert_eq!(c.tables[0].time, TimeSpec::SourceTimestamp);
    }

    #[test]
    fn kafka_source_refuses_what_kappa_lake_sets_itself() {
        let e = parse(&format!("{KAFKA}\"group.id\" = \"x\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("group.id") && e.contains("group_id"), "{e}");
        let e = parse(&KAFKA.replace("topic = \"orders\"\n", ""), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("table[orders].source.topic") || e.contains("source.topic"),
            "{e}"
        );
    }

    #[test]
    fn env_overrides_apply_by_table_name() {
        let c = parse(
            MINIMAL,
            &[
                ("KAPPA_LAKE_TABLE__ORDERS__WRITER__MAX_AGE", "5s"),
                ("KAPPA_LAKE_TABLE__ORDERS__SOURCE__BATCH_SIZE", "100"),
                ("KAPPA_LAKE_OTHER", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(c.tables[0].writer.max_age, Duration::from_secs(5));
        assert_eq!(c.tables[0].source.batch_size(), 100);
        let e = parse(MINIMAL, &[("KAPPA_LAKE_TABLE__NOPE__ROOT", "x")]).unwrap_err();
        assert!(
            e.to_string().contains("KAPPA_LAKE_TABLE__NOPE__ROOT"),
            "{e}"
        );
        let e = parse(MINIMAL, &[("KAPPA_LAKE_TABLE__ORDERS__WRITER__TYPO", "1")]).unwrap_err();
        assert!(e.to_string().contains("typo"), "{e}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("128MiB", "k").unwrap(), 128 << 20);
        assert_eq!(parse_size("64 MB", "k").unwrap(), 64_000_000);
        assert_eq!(parse_size("42", "k").unwrap(), 42);
        assert!(parse_size("12 parsecs", "k").is_err());
        assert!(parse_size("99999999999999999999GiB", "k").is_err());
    }

    #[test]
    fn unsupported_schemes_are_rejected_clearly() {
        let text = MINIMAL.replace("./lake", "hdfs://namenode/lake");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            e.contains("table[orders].root") && e.contains("hdfs"),
            "{e}"
        );
    }
}
