//! The config file as written: serde structs mirroring `kappa-lake.toml`, with
//! `deny_unknown_fields` so a misspelt key is an error that names its path.
//!
//! Invariant: no rule is checked here beyond the file's shape and types (that is
//! [`super::validate`]'s job), and the doc comments are the user documentation of each key.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::{
    BadRecords, Encoding, Envelope, EpochUnit, Format, Granularity, Mode, SourceKind,
};

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
    /// Path of the `.avsc` event schema (none with `encoding = "raw"`: its schema is built in).
    #[serde(default)]
    pub schema: Option<String>,
    /// Optional SQL transform (`SELECT … FROM events`), a path or inline SQL.
    #[serde(default)]
    pub transform: Option<String>,
    /// Event-time and partitioning rule. Required, except for upsert tables (whose state has
    /// no event time), which may set `partition_by` or neither (one partition).
    #[serde(default)]
    pub time: Option<RawTime>,
    /// Upsert tables: `{ key_buckets = 16 }` partitions rows by a stable hash of the key, so a
    /// commit reads and rewrites only the buckets of the keys it changes. Replaces `time`.
    #[serde(default)]
    pub partition_by: Option<RawPartitionBy>,
    /// Add `_kafka_*` (Kafka) or `_source_file`/`_source_line` (files) columns. Default true.
    #[serde(default)]
    pub metadata_columns: Option<bool>,
    /// `append` (default: every record is a row) or `upsert` (every record sets or deletes
    /// the row of its `key`: the table holds the latest state). Upsert tables are Delta.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// The columns that identify a row of an upsert table, e.g. `key = ["id"]`.
    #[serde(default)]
    pub key: Option<Vec<String>>,
    /// Debezium change events as rows of an append table (the changelog), with `_op` and
    /// `_source_ts` columns.
    #[serde(default)]
    pub changelog: Option<bool>,
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
    /// What `run` does to keep the lake fast to read: compaction.
    #[serde(default)]
    pub maintenance: RawMaintenance,
    /// Object-store options for this table's root, over those of `[storage]`.
    #[serde(default)]
    pub storage: BTreeMap<String, String>,
}

/// `[table.maintenance]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    /// `auto` (default): `run` compacts idle partitions of a Delta current version in the
    /// background; `off`: only `kappa-lake compact` does.
    #[serde(default)]
    pub compact: Option<CompactMode>,
    /// A partition no file was added to for this long is compacted. Default `1h`.
    #[serde(default)]
    pub compact_after: Option<String>,
    /// A partition is compacted once it has this many small files. Default 8.
    #[serde(default)]
    pub compact_min_files: Option<usize>,
    /// `auto` (default): `run` vacuums the current Delta version every `vacuum_every`, at the
    /// table's `delta.deletedFileRetentionDuration`; `off`: only `kappa-lake vacuum` does.
    #[serde(default)]
    pub vacuum: Option<CompactMode>,
    /// How often `run` vacuums. Default `1h`.
    #[serde(default)]
    pub vacuum_every: Option<String>,
}

/// `[table.maintenance] compact` and `vacuum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompactMode {
    /// `run` does it in the background.
    #[default]
    Auto,
    /// Only the command (`kappa-lake compact`, `kappa-lake vacuum`) does.
    Off,
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

/// `partition_by = { key_buckets = 16 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartitionBy {
    /// How many buckets the key's hash is spread over (1–10000; not changeable without a
    /// rebuild).
    pub key_buckets: u32,
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
    /// Kafka: the raw archive table (`encoding = "raw"`, same topic, in the same config) a
    /// rebuild replays first, then the topic from where the archive ends.
    #[serde(default)]
    pub archive: Option<String>,
    /// Kafka: consumer group id prefix; `.v<N>` is appended per version. Default
    /// `kappa-lake.<table>`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// `json` (default), `avro` or `avro-confluent`.
    #[serde(default)]
    pub encoding: Option<Encoding>,
    /// `none` (default: a record is the row) or `debezium` (a record is a Debezium change
    /// event, with or without Kafka Connect's `schema`/`payload` wrapper; the row is its
    /// `after` image, a delete's key comes from `before`). JSON only.
    #[serde(default)]
    pub envelope: Option<Envelope>,
    /// Records larger than this go to the dead-letter path. Default `1MiB`.
    #[serde(default)]
    pub max_record_bytes: Option<String>,
    /// Records decoded per Arrow batch. Default 16384.
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
    /// Delta: commit files older than this, behind a checkpoint, are deleted
    /// (`delta.logRetentionDuration`, set when a version is created). Default `30d`.
    #[serde(default)]
    pub log_retention: Option<String>,
    /// Delta: how long a file no snapshot references any more is kept before `vacuum`
    /// deletes it (`delta.deletedFileRetentionDuration`, set when a version is created).
    /// Default: Delta's, 7 days.
    #[serde(default)]
    pub deleted_file_retention: Option<String>,
}
