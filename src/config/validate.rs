//! Validation: raw config → typed [`Config`], checking every rule.
//!
//! Invariant: pure. Nothing here reads a file or the environment; relative paths are only
//! joined to the config's directory. Files the config names (schema, transform `.sql`, the
//! registry's CA) are read or checked by [`super::load`]. Every error names its key
//! (`table[orders].writer.max_age`) and says how to fix it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::archive::{check_archive, check_raw_table};
use super::paths::{absolute, parse_root};
use super::raw::{
    CompactMode, RawConfig, RawMaintenance, RawPartitionBy, RawRegistry, RawSource, RawTable,
    RawTime, RawVersions, RawWriter,
};
use super::size::{parse_duration, parse_size};
use super::typed::{
    Config, FilesSourceConfig, KafkaSourceConfig, MaintenanceConfig, RegistryConfig, SourceConfig,
    TableConfig, VersionsConfig, WriterConfig,
};
use crate::domain::{
    Encoding, Envelope, EpochUnit, Format, Granularity, Mode, SourceKind, TimeSpec,
};
use crate::error::{ConfigError, printable};

/// Records per decoded batch when `batch_size` is not set. Bigger batches cost less per event
/// (fewer encoding rounds; page views measured ~6 % less CPU than at 8192); a files batch also
/// ends at 4 MiB of records, so large events make smaller batches.
const DEFAULT_BATCH_SIZE: usize = 16384;
use crate::schema::KAFKA_RECORD_SCHEMA_FILE;
use crate::storage::StorageOptions;

impl RawConfig {
    /// Checks every rule; pure (no I/O). Relative paths are joined to `base_dir`.
    pub fn validate(self, base_dir: &Path) -> Result<Config, ConfigError> {
        if self.table.is_empty() {
            return Err(ConfigError::invalid(
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
                return Err(ConfigError::invalid(
                    format!("{label}.name"),
                    format!("table `{}` is defined twice", raw.name),
                    "give every [[table]] a unique name",
                ));
            }
            let mut storage = self.storage.clone();
            storage.extend(std::mem::take(&mut raw.storage));
            let mut table = raw.validate(&label, base_dir)?;
            table.storage =
                StorageOptions::check(&table.root, storage, &format!("{label}.storage"))?;
            tables.push(table);
        }
        for table in &tables {
            check_archive(table, &tables)?;
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
        Err(ConfigError::invalid(
            key,
            format!("`{}` is not a valid table name", printable(name)),
            "use 1–128 ASCII letters, digits, `_` or `-`, starting with a letter or digit",
        ))
    }
}

impl RawTable {
    fn validate(self, label: &str, base_dir: &Path) -> Result<TableConfig, ConfigError> {
        let format = self.format.unwrap_or(Format::Delta);
        let (transform, transform_file, transform_path) = match self.transform {
            Some(t) => match sql_file(&t) {
                Some(file) => (None, Some(file.to_string()), Some(base_dir.join(file))),
                None => (Some(t), None, None),
            },
            None => (None, None, None),
        };
        let root = parse_root(&self.root, &format!("{label}.root"), base_dir)?;
        let envelope = self.source.envelope.unwrap_or_default();
        let source = self.source.validate(label, &self.name, base_dir)?;
        let changelog = self.changelog.unwrap_or(false);
        let (mode, key) = check_changes(
            label,
            Wanted {
                mode: self.mode,
                key: self.key,
                envelope,
                changelog,
            },
            format,
            &source,
        )?;
        let (time, granularity) = partitioning(label, self.time, self.partition_by, mode)?;
        let raw = source.encoding() == Encoding::Raw;
        let (schema_file, schema_path) = match self.schema {
            Some(_) if raw => {
                return Err(ConfigError::invalid(
                    format!("{label}.schema"),
                    "encoding = \"raw\" keeps records as they came, in the built-in schema schemas/kafka-record.avsc",
                    "remove `schema`",
                ));
            }
            Some(file) => {
                let path = base_dir.join(&file);
                (file, Some(path))
            }
            None if raw => (KAFKA_RECORD_SCHEMA_FILE.to_string(), None),
            None => {
                return Err(ConfigError::invalid(
                    format!("{label}.schema"),
                    "a table needs the Avro schema of its events",
                    "set schema = \"schemas/<name>.avsc\"",
                ));
            }
        };
        if raw {
            let has_transform = transform.is_some() || transform_file.is_some();
            check_raw_table(label, has_transform, self.metadata_columns, time.as_ref())?;
        }
        if matches!(time, Some(TimeSpec::SourceTimestamp))
            && matches!(source, SourceConfig::Files(_))
        {
            return Err(ConfigError::invalid(
                format!("{label}.time.source"),
                "file sources carry no record timestamps",
                "use time = { field = \"<event time field>\", granularity = … }",
            ));
        }
        let writer = self.writer.validate(label)?;
        let versions = self.versions.validate(label)?;
        let maintenance = self.maintenance.validate(label)?;
        Ok(TableConfig {
            name: self.name,
            root,
            format,
            schema_file,
            schema_path,
            schema: None,
            transform,
            transform_file,
            transform_path,
            time,
            granularity,
            metadata_columns: self.metadata_columns.unwrap_or(true),
            mode,
            key,
            envelope,
            changelog,
            source,
            bad_records: self.bad_records.unwrap_or_default(),
            writer,
            versions,
            maintenance,
            storage: StorageOptions::default(),
        })
    }
}

/// `time` and `partition_by` together: an append table is partitioned by event time; an
/// upsert table by event time, by key bucket, or not at all (neither set).
fn partitioning(
    label: &str,
    time: Option<RawTime>,
    partition_by: Option<RawPartitionBy>,
    mode: Mode,
) -> Result<(Option<TimeSpec>, Granularity), ConfigError> {
    match (time, partition_by) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            format!("{label}.partition_by"),
            "both `time` and `partition_by` are set",
            "partition by event time (`time`) or by key (`partition_by`), not both",
        )),
        (Some(time), None) => time.validate(label).map(|(t, g)| (Some(t), g)),
        (None, _) if mode.is_append() => Err(ConfigError::invalid(
            format!("{label}.time"),
            "an append table is partitioned by event time, and `time` is not set",
            "write time = { field = \"ts\", granularity = \"hour\" } or { source = \"kafka\", granularity = \"day\" }",
        )),
        (None, None) => Ok((None, Granularity::Unpartitioned)),
        (None, Some(p)) => match p.key_buckets {
            n @ 1..=MAX_KEY_BUCKETS => Ok((None, Granularity::KeyBuckets(n))),
            n => Err(ConfigError::invalid(
                format!("{label}.partition_by.key_buckets"),
                format!("{n} buckets"),
                format!("use 1 to {MAX_KEY_BUCKETS} buckets (a few per 100 MiB of state)"),
            )),
        },
    }
}

/// The most key buckets a table may have: each is a directory with files of its own.
const MAX_KEY_BUCKETS: u32 = 10_000;

/// What a table asks of its records: `mode`, `key`, `source.envelope` and `changelog`.
struct Wanted {
    mode: Option<Mode>,
    key: Option<Vec<String>>,
    envelope: Envelope,
    changelog: bool,
}

/// `mode`, `key`, `source.envelope` and `changelog` together: an upsert table names its key
/// and is Delta; a Debezium envelope is JSON and feeds an upsert table or, with `changelog`,
/// an append table of the events.
fn check_changes(
    label: &str,
    wanted: Wanted,
    format: Format,
    source: &SourceConfig,
) -> Result<(Mode, Vec<String>), ConfigError> {
    let Wanted {
        mode,
        key,
        envelope,
        changelog,
    } = wanted;
    let mode = mode.unwrap_or_default();
    let key = key.unwrap_or_default();
    if changelog && envelope != Envelope::Debezium {
        return Err(ConfigError::invalid(
            format!("{label}.changelog"),
            "a changelog table writes Debezium change events as rows",
            "set [table.source] envelope = \"debezium\", or remove changelog",
        ));
    }
    if changelog && mode == Mode::Upsert {
        return Err(ConfigError::invalid(
            format!("{label}.changelog"),
            "a changelog table appends every change; an upsert table keeps the latest state",
            "remove mode (append is the default) for the changelog, and read the topic into a second, upsert table for the state",
        ));
    }
    if envelope == Envelope::Debezium
        && !matches!(source.encoding(), Encoding::Json | Encoding::AvroConfluent)
    {
        return Err(ConfigError::invalid(
            format!("{label}.source.envelope"),
            "Debezium envelopes are read as JSON (Kafka Connect's JsonConverter) or as Avro in the Confluent wire format (its AvroConverter, schemas from the registry)",
            "set encoding = \"json\" or \"avro-confluent\"",
        ));
    }
    match mode {
        Mode::Append => {
            if !key.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{label}.key"),
                    "`key` is used by mode = \"upsert\" only",
                    "remove `key`, or set mode = \"upsert\"",
                ));
            }
            if envelope == Envelope::Debezium && !changelog {
                return Err(ConfigError::invalid(
                    format!("{label}.source.envelope"),
                    "a Debezium change stream is applied to an upsert table, or appended as a changelog",
                    "set mode = \"upsert\" and key = [\"<primary key column>\", …], or changelog = true",
                ));
            }
        }
        Mode::Upsert => {
            if key.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{label}.key"),
                    "an upsert table needs the columns that identify a row",
                    "set key = [\"id\"] (the source table's primary key)",
                ));
            }
            let mut seen = HashSet::new();
            if let Some(dup) = key.iter().find(|k| !seen.insert(k.as_str())) {
                return Err(ConfigError::invalid(
                    format!("{label}.key"),
                    format!("`{}` is named twice", printable(dup)),
                    "name each key column once",
                ));
            }
            if format != Format::Delta {
                return Err(ConfigError::invalid(
                    format!("{label}.format"),
                    "an upsert table replaces and deletes rows, which needs the Delta log",
                    "use format = \"delta\" (the default)",
                ));
            }
            if source.encoding() == Encoding::Raw {
                return Err(ConfigError::invalid(
                    format!("{label}.mode"),
                    "encoding = \"raw\" keeps every record as it came; it has no key to upsert by",
                    "remove mode, or decode the records (encoding = \"json\")",
                ));
            }
        }
    }
    Ok((mode, key))
}

impl RawMaintenance {
    fn validate(self, label: &str) -> Result<MaintenanceConfig, ConfigError> {
        let d = MaintenanceConfig::default();
        let key = format!("{label}.maintenance");
        let compact_after = match &self.compact_after {
            Some(s) => parse_duration(s, &format!("{key}.compact_after"), "\"1h\" or \"30m\"")?,
            None => d.compact_after,
        };
        if compact_after.is_zero() {
            return Err(ConfigError::invalid(
                format!("{key}.compact_after"),
                "must be positive (a partition still being written is not compacted)",
                "use e.g. \"1h\"",
            ));
        }
        let compact_min_files = self.compact_min_files.unwrap_or(d.compact_min_files);
        if compact_min_files < 2 {
            return Err(ConfigError::invalid(
                format!("{key}.compact_min_files"),
                format!("{compact_min_files} files cannot be compacted into fewer"),
                "use 2 or more (default 8)",
            ));
        }
        let vacuum_every = match &self.vacuum_every {
            Some(s) => parse_duration(s, &format!("{key}.vacuum_every"), "\"1h\" or \"6h\"")?,
            None => d.vacuum_every,
        };
        if vacuum_every.is_zero() {
            return Err(ConfigError::invalid(
                format!("{key}.vacuum_every"),
                "must be positive",
                "use e.g. \"1h\"",
            ));
        }
        Ok(MaintenanceConfig {
            compact: self.compact.unwrap_or_default() == CompactMode::Auto,
            compact_after,
            compact_min_files,
            vacuum: self.vacuum.unwrap_or_default() == CompactMode::Auto,
            vacuum_every,
        })
    }
}

impl RawVersions {
    fn validate(self, label: &str) -> Result<VersionsConfig, ConfigError> {
        let d = VersionsConfig::default();
        let duration = |v: &Option<String>, name: &str, default: Duration| match v {
            Some(s) => parse_duration(
                s,
                &format!("{label}.versions.{name}"),
                "\"24h\", \"30m\" or \"0s\"",
            ),
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
                    return Err(ConfigError::invalid(
                        format!("{key}.unit"),
                        "`unit` applies to `field` only",
                        "remove `unit` when time.source = \"kafka\"",
                    ));
                }
                TimeSpec::SourceTimestamp
            }
            (None, Some(other)) => {
                return Err(ConfigError::invalid(
                    format!("{key}.source"),
                    format!("unknown time source `{other}`"),
                    "use source = \"kafka\" or field = \"<name>\"",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    key,
                    "both `field` and `source` are set",
                    "set exactly one of them",
                ));
            }
            _ => {
                return Err(ConfigError::invalid(
                    key,
                    "neither `field` nor `source` is set",
                    "write time = { field = \"ts\", granularity = \"hour\" } or { source = \"kafka\", granularity = \"day\" }",
                ));
            }
        };
        if !self.granularity.is_time() {
            return Err(ConfigError::invalid(
                format!("{key}.granularity"),
                "time partitions are days or hours",
                "use granularity = \"day\" or \"hour\" (key buckets are `partition_by`)",
            ));
        }
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
                ConfigError::invalid(
                    format!("{key}.url"),
                    "not an http(s) URL",
                    "write url = \"http://host:8081\" (or https://…)",
                )
            })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::invalid(
                format!("{key}.url"),
                "the URL carries credentials",
                format!("remove them from the URL; set {key}.username and {key}.password"),
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(ConfigError::invalid(
                format!("{key}.username"),
                "a password without a user name",
                format!("set {key}.username"),
            ));
        }
        let ca_file = self.ca_file.map(|f| absolute(&base_dir.join(f)));
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
        let batch_size = self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 || batch_size > 1 << 20 {
            return Err(ConfigError::invalid(
                format!("{key}.batch_size"),
                format!("{batch_size} is out of range"),
                "use a value between 1 and 1048576 (default 16384)",
            ));
        }
        let encoding = self.encoding.unwrap_or(Encoding::Json);
        let only_for = |name: &str, present: bool, kind: &str| {
            if present {
                Err(ConfigError::invalid(
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
                only_for("archive", self.archive.is_some(), "kafka")?;
                if encoding != Encoding::Json {
                    return Err(ConfigError::invalid(
                        format!("{key}.encoding"),
                        "a files source holds NDJSON lines; Avro and raw records are read from Kafka",
                        "use encoding = \"json\", or kind = \"kafka\" for Avro or raw",
                    ));
                }
                let path = self.path.ok_or_else(|| {
                    ConfigError::invalid(
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
                        ConfigError::invalid(
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
                            return Err(ConfigError::invalid(
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
                        return Err(ConfigError::invalid(
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
                        return Err(ConfigError::invalid(
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
                    return Err(ConfigError::invalid(
                        format!("{key}.schema_registry.url"),
                        "encoding = \"avro-confluent\" looks writer schemas up in a schema registry",
                        "add [table.source.schema_registry] with url = \"http://host:8081\"",
                    ));
                }
                if encoding == Encoding::Raw && self.archive.is_some() {
                    return Err(ConfigError::invalid(
                        format!("{key}.archive"),
                        "a raw table is an archive itself",
                        "remove `archive`",
                    ));
                }
                Ok(SourceConfig::Kafka(KafkaSourceConfig {
                    archive: self.archive,
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
            Some(s) => {
                parse_duration(s, &format!("{key}.max_age"), "\"60s\", \"500ms\" or \"5m\"")?
            }
            None => d.max_age,
        };
        if max_age.is_zero() {
            return Err(ConfigError::invalid(
                format!("{key}.max_age"),
                "must be positive",
                "use e.g. \"60s\"",
            ));
        }
        if target_file_size < 1024 {
            return Err(ConfigError::invalid(
                format!("{key}.target_file_size"),
                "must be at least 1KiB",
                "use e.g. \"128MiB\"",
            ));
        }
        if max_buffer_bytes < 1 << 20 {
            return Err(ConfigError::invalid(
                format!("{key}.max_buffer_bytes"),
                "must be at least 1MiB",
                "use e.g. \"256MiB\"",
            ));
        }
        let row_group_rows = self.row_group_rows.unwrap_or(d.row_group_rows);
        if row_group_rows == 0 {
            return Err(ConfigError::invalid(
                format!("{key}.row_group_rows"),
                "must be positive",
                "use e.g. 131072",
            ));
        }
        let zstd_level = self.zstd_level.unwrap_or(d.zstd_level);
        if !(1..=22).contains(&zstd_level) {
            return Err(ConfigError::invalid(
                format!("{key}.zstd_level"),
                format!("{zstd_level} is out of range"),
                "use 1–22",
            ));
        }
        let checkpoint_interval = self.checkpoint_interval.unwrap_or(d.checkpoint_interval);
        if checkpoint_interval == 0 {
            return Err(ConfigError::invalid(
                format!("{key}.checkpoint_interval"),
                "must be positive",
                "use e.g. 100",
            ));
        }
        let log_retention = match &self.log_retention {
            Some(s) => parse_duration(s, &format!("{key}.log_retention"), "\"30d\" or \"12h\"")?,
            None => d.log_retention,
        };
        if log_retention.as_secs() == 0 {
            return Err(ConfigError::invalid(
                format!("{key}.log_retention"),
                "must be at least 1s",
                "use e.g. \"30d\"",
            ));
        }
        let deleted_file_retention = match &self.deleted_file_retention {
            Some(s) => Some(parse_duration(
                s,
                &format!("{key}.deleted_file_retention"),
                "\"7d\" or \"1d\"",
            )?),
            None => None,
        };
        // Vacuum also deletes files no commit lists yet once they are this old: a writer's
        // files must be committed well within it.
        if let Some(r) = deleted_file_retention
            && r <= 2 * max_age
        {
            return Err(ConfigError::invalid(
                format!("{key}.deleted_file_retention"),
                format!(
                    "{} is not longer than twice max_age ({}): vacuum could delete a writer's files before their commit",
                    humantime::format_duration(r),
                    humantime::format_duration(max_age)
                ),
                "use e.g. \"7d\" (Delta's default), or at least a few times max_age",
            ));
        }
        Ok(WriterConfig {
            target_file_size,
            max_age,
            max_buffer_bytes,
            row_group_rows,
            zstd_level,
            checkpoint_interval,
            log_retention,
            deleted_file_retention,
        })
    }
}

/// The file a `transform` value names, when it names one: a single word ending in `.sql`
/// (anything else is inline SQL).
pub fn sql_file(value: &str) -> Option<&str> {
    let trimmed = value.trim();
    (trimmed.ends_with(".sql") && !trimmed.contains(char::is_whitespace)).then_some(trimmed)
}
