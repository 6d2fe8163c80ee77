//! Plain domain types shared by every layer: output format, partition granularity, event-time
//! rule, payload encoding, table root, bad-record policy and the source identity frozen into a
//! version definition.
//!
//! Invariant: this module imports nothing from the crate (rank 0). Types that are written to
//! disk (`vN.json`) serialize exactly as they always have: changing a name or a field order
//! here changes the on-disk format and the definition hash.

use std::path::PathBuf;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// How a version's rows are split into partitions: by event time (day or hour), or, for an
/// upsert table, by a hash of its key or not at all. A row's partition is an `i64` bucket:
/// days or hours since the epoch, the key's bucket, or 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// `date=YYYY-MM-DD`
    Day,
    /// `date=YYYY-MM-DD/hour=HH`
    Hour,
    /// `key_bucket=N`: the key's stable hash modulo this many buckets (upsert tables).
    KeyBuckets(u32),
    /// One partition, the version's root (upsert tables).
    Unpartitioned,
}

/// The partition column of a table partitioned by key bucket.
pub const KEY_BUCKET_COLUMN: &str = "key_bucket";

impl Granularity {
    /// Whether partitions are spans of event time (so rows need an event time).
    pub fn is_time(&self) -> bool {
        matches!(self, Granularity::Day | Granularity::Hour)
    }
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

/// How a table's records change it (`[[table]] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every record is a new row (the default).
    #[default]
    Append,
    /// Every record sets or deletes the row of its key: the table is the latest state.
    Upsert,
}

impl Mode {
    /// Whether this is the default, [`Mode::Append`].
    pub fn is_append(&self) -> bool {
        *self == Mode::Append
    }
}

/// What wraps each record's row (`[table.source] envelope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Envelope {
    /// The record is the row (the default).
    #[default]
    None,
    /// A Debezium change event: `op`, `before`, `after`, `source`, optionally inside
    /// Kafka Connect's `{"schema": …, "payload": …}`.
    Debezium,
}

impl Envelope {
    /// Whether this is the default, [`Envelope::None`].
    pub fn is_none(&self) -> bool {
        *self == Envelope::None
    }
}

/// How a version's records change its table: frozen into the version's definition.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Changes {
    /// Append or upsert.
    #[serde(default)]
    pub mode: Mode,
    /// An upsert table's key columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// What wraps each record's row.
    #[serde(default, skip_serializing_if = "Envelope::is_none")]
    pub envelope: Envelope,
    /// Every change event as a row of an append table, with its operation and source time
    /// ([`CHANGELOG_FIELDS`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changelog: bool,
}

/// The fields a changelog table (`changelog = true`) adds to the row's: the event's `op`
/// (`c`, `u`, `d` or `r`) and its `source.ts_ms` (when the database made the change), as Avro
/// fields appended to the schema.
pub const CHANGELOG_FIELDS: [(&str, &str); 2] = [
    ("_op", r#""string""#),
    (
        "_source_ts",
        r#"["null", {"type": "long", "logicalType": "timestamp-millis"}]"#,
    ),
];

impl Changes {
    /// Whether this is the default: every record a new row, as it came.
    pub fn is_append(&self) -> bool {
        *self == Changes::default()
    }

    /// Whether records upsert rows.
    pub fn is_upsert(&self) -> bool {
        self.mode == Mode::Upsert
    }
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
    /// Kept as it came: key, value, headers and timestamp as binary columns (the raw archive,
    /// whose rows follow the built-in schema `schemas/kafka-record.avsc`).
    Raw,
}

impl Encoding {
    /// Whether payloads are Avro (`avro` or `avro-confluent`).
    pub fn is_avro(self) -> bool {
        matches!(self, Encoding::Avro | Encoding::AvroConfluent)
    }
}

/// A deterministic share of a topic's partitions (`rebuild --shard I/N`): partition `p`
/// belongs to shard `p mod N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// How many shards split the partitions.
    pub count: u32,
}

impl Shard {
    /// Whether Kafka partition `partition` is this shard's.
    pub fn holds(self, partition: i32) -> bool {
        u32::try_from(partition).is_ok_and(|p| p % self.count == self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N` with `0 <= I < N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a shard like 0/3 (I/N with 0 <= I < N)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// What a Kafka record's timestamp means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer (`CreateTime`).
    CreateTime,
    /// Set by the broker when it appended the record (`LogAppendTime`).
    LogAppendTime,
}

impl TimestampType {
    /// The name a raw archive stores (`create_time`, `log_append_time`).
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "create_time",
            TimestampType::LogAppendTime => "log_append_time",
        }
    }

    /// The type named `name` by [`TimestampType::as_str`].
    pub fn parse(name: &str) -> Option<TimestampType> {
        match name {
            "create_time" => Some(TimestampType::CreateTime),
            "log_append_time" => Some(TimestampType::LogAppendTime),
            _ => None,
        }
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

/// What identifies a version's source in its frozen definition: the kind, the topic or path
/// as written, and the encoding; never hosts or credentials.
///
/// On disk it is a JSON object with its keys in sorted order, `encoding` first and absent in
/// definitions written before the encoding was recorded:
/// `{"encoding":"json","kind":"files","path":"events"}`,
/// `{"encoding":"avro","kind":"kafka","topic":"orders"}`. Unknown keys are ignored when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceIdentity {
    /// A directory of files.
    Files {
        /// The directory as written in the config.
        path: String,
        /// Payload encoding (`None` in definitions older than the field).
        encoding: Option<Encoding>,
    },
    /// A Kafka topic.
    Kafka {
        /// The topic.
        topic: String,
        /// Payload encoding (`None` in definitions older than the field).
        encoding: Option<Encoding>,
    },
}

impl SourceIdentity {
    /// The kind of source.
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceIdentity::Files { .. } => SourceKind::Files,
            SourceIdentity::Kafka { .. } => SourceKind::Kafka,
        }
    }

    /// The payload encoding, when recorded.
    pub fn encoding(&self) -> Option<Encoding> {
        match self {
            SourceIdentity::Files { encoding, .. } | SourceIdentity::Kafka { encoding, .. } => {
                *encoding
            }
        }
    }

    /// Whether the payloads are Avro (`avro` or `avro-confluent`).
    pub fn reads_avro(&self) -> bool {
        self.encoding().is_some_and(Encoding::is_avro)
    }
}

impl Serialize for SourceIdentity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Keys in sorted order: the order a `serde_json::Value` object (a BTreeMap) wrote them.
        let (kind, key, value) = match self {
            SourceIdentity::Files { path, .. } => (SourceKind::Files, "path", path),
            SourceIdentity::Kafka { topic, .. } => (SourceKind::Kafka, "topic", topic),
        };
        let encoding = self.encoding();
        let mut map = serializer.serialize_map(Some(2 + usize::from(encoding.is_some())))?;
        if let Some(encoding) = encoding {
            map.serialize_entry("encoding", &encoding)?;
        }
        map.serialize_entry("kind", &kind)?;
        map.serialize_entry(key, value)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for SourceIdentity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            kind: SourceKind,
            #[serde(default)]
            path: Option<String>,
            #[serde(default)]
            topic: Option<String>,
            #[serde(default)]
            encoding: Option<Encoding>,
        }
        let w = Wire::deserialize(deserializer)?;
        match w.kind {
            SourceKind::Files => Ok(SourceIdentity::Files {
                path: w.path.ok_or_else(|| D::Error::missing_field("path"))?,
                encoding: w.encoding,
            }),
            SourceKind::Kafka => Ok(SourceIdentity::Kafka {
                topic: w.topic.ok_or_else(|| D::Error::missing_field("topic"))?,
                encoding: w.encoding,
            }),
        }
    }
}

/// Compact JSON, as in messages (`the source changed from … to …`) and `validate`'s output.
impl std::fmt::Display for SourceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&json)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_shard_is_i_of_n_and_holds_every_nth_partition() {
        let s: Shard = "1/3".parse().expect("1/3");
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert_eq!(s.to_string(), "1/3");
        let held: Vec<i32> = (0..7).filter(|p| s.holds(*p)).collect();
        assert_eq!(held, [1, 4]);
        for bad in ["3/3", "1", "a/3", "1/0", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    use super::*;

    /// The forms found in `vN.json` files today, byte for byte.
    const STORED: [&str; 6] = [
        r#"{"encoding":"json","kind":"files","path":"events"}"#,
        r#"{"encoding":"json","kind":"kafka","topic":"orders"}"#,
        r#"{"encoding":"avro","kind":"kafka","topic":"orders"}"#,
        r#"{"encoding":"avro-confluent","kind":"kafka","topic":"t.v1"}"#,
        r#"{"kind":"files","path":"in"}"#,
        r#"{"kind":"kafka","topic":"t"}"#,
    ];

    #[test]
    fn source_identity_round_trips_the_stored_forms() {
        for text in STORED {
            let id: SourceIdentity = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&id).unwrap(), text);
            assert_eq!(id.to_string(), text);
            // The same bytes as the untyped value it replaces (a sorted map).
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_value(&id).unwrap(), value);
            assert_eq!(value.to_string(), text);
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            assert_eq!(serde_json::to_string_pretty(&id).unwrap(), pretty);
        }
    }

    #[test]
    fn source_identity_matches_what_config_used_to_build() {
        let files = SourceIdentity::Files {
            path: "events".into(),
            encoding: Some(Encoding::Json),
        };
        let old =
            serde_json::json!({"kind": "files", "path": "events", "encoding": Encoding::Json});
        assert_eq!(serde_json::to_string(&files).unwrap(), old.to_string());
        let kafka = SourceIdentity::Kafka {
            topic: "orders".into(),
            encoding: Some(Encoding::AvroConfluent),
        };
        let old = serde_json::json!({"kind": "kafka", "topic": "orders", "encoding": Encoding::AvroConfluent});
        assert_eq!(serde_json::to_string(&kafka).unwrap(), old.to_string());
        assert!(kafka.reads_avro() && !files.reads_avro());
        assert_eq!(kafka.kind(), SourceKind::Kafka);
    }

    #[test]
    fn source_identity_reads_leniently_and_refuses_what_is_missing() {
        let id: SourceIdentity =
            serde_json::from_str(r#"{"kind":"kafka","topic":"t","extra":1}"#).unwrap();
        assert_eq!(
            id,
            SourceIdentity::Kafka {
                topic: "t".into(),
                encoding: None
            }
        );
        assert!(serde_json::from_str::<SourceIdentity>(r#"{"kind":"kafka"}"#).is_err());
        assert!(serde_json::from_str::<SourceIdentity>(r#"{"kind":"mqtt","topic":"t"}"#).is_err());
    }
}
