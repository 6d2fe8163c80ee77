//! The validated configuration: what the rest of the crate reads.
//!
//! Invariant: every value here has passed [`super::validate`]; a [`TableConfig`] returned by
//! [`Config::load`] also has its schema loaded and its transform read and compiled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::{
    BadRecords, Encoding, Envelope, Format, Granularity, Mode, Root, SourceIdentity, SourceKind,
    TimeSpec,
};
use crate::error::{ConfigError, printable};
use crate::schema::EventSchema;
use crate::schema::rows::Metadata;
use crate::storage::StorageOptions;

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
    /// Schema file as written in the config ([`RAW_SCHEMA_FILE`] for `encoding = "raw"`).
    pub schema_file: String,
    /// Resolved schema path; `None` for `encoding = "raw"`, whose schema is built in.
    pub schema_path: Option<PathBuf>,
    /// The loaded schema (filled by [`Config::load`]).
    pub schema: Option<EventSchema>,
    /// Transform SQL, if any. Inline SQL is set by validation; SQL from a `.sql` file is read
    /// by [`Config::load`].
    pub transform: Option<String>,
    /// The `.sql` file the transform came from, as written in the config.
    pub transform_file: Option<String>,
    /// The resolved path of `transform_file`.
    pub transform_path: Option<PathBuf>,
    /// Event time rule (`None`: an upsert table partitioned by key bucket or not at all).
    pub time: Option<TimeSpec>,
    /// How rows are partitioned.
    pub granularity: Granularity,
    /// Whether to add source metadata columns.
    pub metadata_columns: bool,
    /// Append rows, or upsert them by `key`.
    pub mode: Mode,
    /// An upsert table's key columns (empty for append tables).
    pub key: Vec<String>,
    /// What wraps each record's row.
    pub envelope: Envelope,
    /// Change events as rows with their operation (`changelog = true`).
    pub changelog: bool,
    /// The source.
    pub source: SourceConfig,
    /// What happens to bad records.
    pub bad_records: BadRecords,
    /// Writer policy.
    pub writer: WriterConfig,
    /// Promotion-related settings.
    pub versions: VersionsConfig,
    /// Background maintenance in `run`.
    pub maintenance: MaintenanceConfig,
    /// Object-store options for the root (`[storage]` and `[table.storage]`).
    pub storage: StorageOptions,
}

impl TableConfig {
    /// The loaded event schema. Present on every config returned by [`Config::load`].
    pub fn event_schema(&self) -> &EventSchema {
        self.schema
            .as_ref()
            .expect("Config::load fills every table's schema before returning")
    }

    /// The source metadata columns this table's rows carry.
    pub fn metadata(&self) -> Metadata {
        Metadata::new(self.metadata_columns, self.source.kind())
    }
}

/// Validated `[table.maintenance]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// `run` compacts idle partitions in the background.
    pub compact: bool,
    /// How long a partition must be without new files before it is compacted.
    pub compact_after: Duration,
    /// Small files a partition needs before it is compacted (at least 2).
    pub compact_min_files: usize,
    /// `run` vacuums the current Delta version in the background.
    pub vacuum: bool,
    /// How often it does.
    pub vacuum_every: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            compact: true,
            compact_after: Duration::from_secs(3600),
            compact_min_files: 8,
            vacuum: true,
            vacuum_every: Duration::from_secs(3600),
        }
    }
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

/// A validated source.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Files in a directory.
    Files(FilesSourceConfig),
    /// A Kafka topic.
    Kafka(KafkaSourceConfig),
}

impl SourceConfig {
    /// The kind of source.
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceConfig::Files(_) => SourceKind::Files,
            SourceConfig::Kafka(_) => SourceKind::Kafka,
        }
    }
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
    /// The raw archive table a rebuild replays first (Kafka).
    pub fn archive(&self) -> Option<&str> {
        match self {
            SourceConfig::Files(_) => None,
            SourceConfig::Kafka(k) => k.archive.as_deref(),
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
    pub fn identity(&self) -> SourceIdentity {
        match self {
            SourceConfig::Files(f) => SourceIdentity::Files {
                path: f.path_as_written.clone(),
                encoding: Some(f.encoding),
            },
            SourceConfig::Kafka(k) => SourceIdentity::Kafka {
                topic: k.topic.clone(),
                encoding: Some(k.encoding),
            },
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
    /// The raw archive table of this topic that a rebuild reads first (validated: a raw
    /// table of the same config on the same topic).
    pub archive: Option<String>,
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
    /// zstd level (a mostly distinct string column that level 1 compresses no more than 1 %
    /// bigger gets level 1: see `write::parquet`).
    pub zstd_level: i32,
    /// Delta: checkpoint every this many commits.
    pub checkpoint_interval: u64,
    /// Delta: how long commit files are kept behind a checkpoint.
    pub log_retention: Duration,
    /// Delta: how long unreferenced files are kept (`None`: Delta's default, 7 days).
    pub deleted_file_retention: Option<Duration>,
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
            log_retention: Duration::from_secs(30 * 24 * 3600),
            deleted_file_retention: None,
        }
    }
}

impl Config {
    /// The table named `name`.
    pub fn table(&self, name: &str) -> Result<&TableConfig, ConfigError> {
        self.tables.iter().find(|t| t.name == name).ok_or_else(|| {
            let names: Vec<_> = self.tables.iter().map(|t| t.name.as_str()).collect();
            ConfigError::invalid(
                "--table",
                format!("no table named `{}` in the config", printable(name)),
                format!("use one of: {}", names.join(", ")),
            )
        })
    }
}
