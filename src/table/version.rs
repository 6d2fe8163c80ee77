//! Version definitions: `_kappa/versions/vN.json`.
//!
//! A definition is frozen when the version is created (conditional create: two processes
//! creating vN race, one wins). What it contains decides whether a config change needs a new
//! version: the [`Definition::hash`] covers the schema's canonical form, the transform, the
//! partitioning, the format, the metadata columns and the source identity (topic or path, never
//! hosts or credentials). The `state` field is advisory bookkeeping updated after pointer moves;
//! the pointer itself is the truth about which version is live.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::TableConfig;
use crate::domain::{Changes, Format, Granularity, SourceIdentity, TimeSpec};
use crate::error::{ContextError, Error, Result};
use crate::failpoints::crash_point;
use crate::schema::EventSchema;
use crate::schema::rows::Metadata;
use crate::storage::Lake;
use crate::table::TableLayout;

/// Lifecycle of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// Created, being filled, never current.
    Building,
    /// Current.
    Live,
    /// Was current, the pointer has moved on.
    Retired,
}

impl std::fmt::Display for VersionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VersionState::Building => "building",
            VersionState::Live => "live",
            VersionState::Retired => "retired",
        })
    }
}

/// How a version partitions its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partitioning {
    /// Where event time comes from (`None`: an upsert table not partitioned by time; absent
    /// from the JSON then, so older definitions read and hash as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeSpec>,
    /// Day or hour partitions, key buckets, or none.
    pub granularity: Granularity,
}

/// What a version is made of: everything that changes the data it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// The `.avsc` schema, as JSON.
    pub schema: serde_json::Value,
    /// The schema file it came from (informational, not hashed).
    pub schema_file: String,
    /// The transform SQL, if any.
    pub transform: Option<String>,
    /// Partitioning rule.
    pub partitioning: Partitioning,
    /// Output format.
    pub format: Format,
    /// Source identity (kind + topic/path + encoding).
    pub source: SourceIdentity,
    /// Whether source metadata columns are written.
    pub metadata_columns: bool,
    /// Upsert mode, its key and the source's envelope (absent for plain append tables, whose
    /// hash is as before the field).
    #[serde(default, skip_serializing_if = "Changes::is_append")]
    pub changes: Changes,
}

impl Definition {
    /// The definition a table config asks for.
    pub fn from_config(table: &TableConfig) -> Result<Definition> {
        let schema = table.event_schema();
        let schema_json: serde_json::Value =
            serde_json::to_value(&schema.avro).map_err(|e| Error::Corrupt {
                path: table.schema_file.as_str().into(),
                source: ContextError::new("schema does not serialize", e).into(),
            })?;
        Ok(Definition {
            schema: schema_json,
            schema_file: table.schema_file.clone(),
            transform: table.transform.clone(),
            partitioning: Partitioning {
                time: table.time.clone(),
                granularity: table.granularity,
            },
            format: table.format,
            source: table.source.identity(),
            metadata_columns: table.metadata_columns,
            changes: Changes {
                mode: table.mode,
                key: table.key.clone(),
                envelope: table.envelope,
                changelog: table.changelog,
            },
        })
    }

    /// Whether the source's payloads are Avro (`avro` or `avro-confluent`).
    pub fn reads_avro(&self) -> bool {
        self.source.reads_avro()
    }

    /// The source metadata columns this version's rows carry.
    pub fn metadata(&self) -> Metadata {
        Metadata::new(self.metadata_columns, self.source.kind())
    }

    /// The parsed event schema of this definition.
    pub fn event_schema(&self) -> Result<EventSchema> {
        EventSchema::parse(&self.schema.to_string()).map_err(|e| Error::Corrupt {
            path: self.schema_file.as_str().into(),
            source: e.into(),
        })
    }

    /// Stable hash of everything that changes the data (hex SHA-256, 16 bytes shown).
    pub fn hash(&self) -> Result<String> {
        let schema = self.event_schema()?;
        // Avro's canonical form drops logical types, so the Arrow mapping is hashed too.
        let arrow: Vec<String> = schema
            .arrow
            .fields()
            .iter()
            .map(|f| format!("{}:{}:{}", f.name(), f.data_type(), f.is_nullable()))
            .collect();
        let mut hashed = serde_json::json!({
            "schema": schema.canonical,
            "arrow": arrow,
            "transform": self.transform,
            "partitioning": self.partitioning,
            "format": self.format,
            "source": self.source,
            "metadata_columns": self.metadata_columns,
        });
        if !self.changes.is_append() {
            hashed["changes"] = serde_json::json!(self.changes);
        }
        let digest = Sha256::digest(hashed.to_string().as_bytes());
        Ok(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// The frozen definition of one version, as stored in `_kappa/versions/vN.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionDefinition {
    /// Version number (1-based).
    pub version: u32,
    /// Table name.
    pub table: String,
    /// The definition.
    #[serde(flatten)]
    pub definition: Definition,
    /// [`Definition::hash`] at creation.
    pub definition_hash: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Advisory lifecycle state.
    pub state: VersionState,
    /// When `current` last moved away from this version (for `gc`'s grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
    /// Additive schema changes applied in place since creation, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evolutions: Vec<Evolution>,
}

/// One in-place schema evolution of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evolution {
    /// When it was applied.
    pub at: DateTime<Utc>,
    /// The definition hash before.
    pub from_hash: String,
    /// Nullable fields added.
    pub added: Vec<String>,
}

/// Creates `vN.json` for `definition`, failing with [`Error::Conflict`] if vN exists.
pub async fn create(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
    definition: Definition,
) -> Result<VersionDefinition> {
    let def = VersionDefinition {
        version,
        table: layout.table().to_string(),
        definition_hash: definition.hash()?,
        definition,
        created_at: Utc::now(),
        state: VersionState::Building,
        retired_at: None,
        evolutions: Vec::new(),
    };
    let path = layout.version_definition(version);
    let body = serde_json::to_vec_pretty(&def).map_err(|e| Error::Corrupt {
        path: path.clone(),
        source: e.into(),
    })?;
    let opts = PutOptions::from(PutMode::Create);
    match lake.store.put_opts(&path, body.into(), opts).await {
        Ok(_) => Ok(def),
        Err(object_store::Error::AlreadyExists { .. }) => Err(Error::Conflict {
            path,
            reason: format!("version v{version} was created by another process"),
        }),
        Err(e) => Err(Error::storage(&path, e)),
    }
}

/// Loads `vN.json`; `Ok(None)` if it does not exist.
pub async fn load(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
) -> Result<Option<VersionDefinition>> {
    let path = layout.version_definition(version);
    let bytes = match lake.store.get(&path).await {
        Ok(r) => r.bytes().await.map_err(|e| Error::storage(&path, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::storage(&path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            path,
            source: e.into(),
        })
}

/// All versions of the table, ascending.
pub async fn list(lake: &Lake, layout: &TableLayout) -> Result<Vec<VersionDefinition>> {
    let dir = layout.versions_dir();
    let metas: Vec<_> = lake
        .store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| Error::storage(&dir, e))?;
    let mut numbers: Vec<u32> = metas
        .iter()
        .filter_map(|m| {
            m.location
                .filename()
                .and_then(TableLayout::parse_version_file)
        })
        .collect();
    numbers.sort_unstable();
    let mut out = Vec::with_capacity(numbers.len());
    for n in numbers {
        if let Some(def) = load(lake, layout, n).await? {
            out.push(def);
        }
    }
    Ok(out)
}

/// Replaces `def`'s definition by `wanted`, an additive schema change already applied to the
/// version's table, recording the evolution.
pub async fn evolve(
    lake: &Lake,
    layout: &TableLayout,
    def: &VersionDefinition,
    wanted: Definition,
    added: Vec<String>,
) -> Result<VersionDefinition> {
    let mut next = def.clone();
    next.evolutions.push(Evolution {
        at: Utc::now(),
        from_hash: def.definition_hash.clone(),
        added,
    });
    next.definition_hash = wanted.hash()?;
    next.definition = wanted;
    write(lake, layout, &next).await?;
    Ok(next)
}

async fn write(lake: &Lake, layout: &TableLayout, def: &VersionDefinition) -> Result<()> {
    lake.put_json(&layout.version_definition(def.version), def)
        .await
}

/// Records the offset ranges (`topic/partition [from, to)`) version `version` was rebuilt
/// without (`rebuild --allow-gap`), beside its definition.
pub async fn record_gaps(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
    gaps: &[String],
) -> Result<()> {
    lake.put_json(&layout.version_gaps(version), &gaps).await
}

/// The offset ranges version `version` was rebuilt without; empty for a whole version.
pub async fn gaps(lake: &Lake, layout: &TableLayout, version: u32) -> Result<Vec<String>> {
    let path = layout.version_gaps(version);
    match lake.store.get(&path).await {
        Ok(got) => {
            let bytes = got.bytes().await.map_err(|e| Error::storage(&path, e))?;
            serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path,
                source: e.into(),
            })
        }
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(Error::storage(&path, e)),
    }
}

/// Deletes version `version`: its data, its dead letters, then its definition (last, so a
/// half-deleted version is still listed and `gc` can finish the job).
pub async fn delete(lake: &Lake, layout: &TableLayout, version: u32) -> Result<usize> {
    let mut deleted = 0;
    for dir in [layout.version_dir(version), layout.dead_letter_dir(version)] {
        for m in lake.list_dir(&dir).await? {
            lake.delete_if_exists(&m.location).await?;
            deleted += 1;
            crash_point!("gc.mid_delete");
        }
    }
    lake.delete_if_exists(&layout.version_gaps(version)).await?;
    lake.delete_if_exists(&layout.version_definition(version))
        .await?;
    Ok(deleted)
}

/// Records a new advisory state for `version` (after the pointer moved).
pub async fn set_state(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
    state: VersionState,
) -> Result<()> {
    let Some(mut def) = load(lake, layout, version).await? else {
        return Ok(());
    };
    if def.state == state {
        return Ok(());
    }
    def.state = state;
    if state == VersionState::Retired {
        def.retired_at = Some(lake.clock.now());
    }
    write(lake, layout, &def).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EpochUnit;

    fn definition(ts_logical_type: &str) -> Definition {
        let schema = format!(
            r#"{{"type":"record","name":"E","fields":[
                {{"name":"id","type":"long"}},
                {{"name":"ts","type":{{"type":"long","logicalType":"{ts_logical_type}"}}}}]}}"#
        );
        Definition {
            schema: serde_json::from_str(&schema).unwrap(),
            schema_file: "e.avsc".into(),
            transform: None,
            partitioning: Partitioning {
                time: Some(TimeSpec::Field {
                    name: "ts".into(),
                    unit: EpochUnit::Ms,
                }),
                granularity: Granularity::Day,
            },
            format: Format::Parquet,
            source: SourceIdentity::Files {
                path: "in".into(),
                encoding: None,
            },
            metadata_columns: true,
            changes: Changes::default(),
        }
    }

    #[test]
    fn hash_is_stable_and_sees_logical_types_and_partitioning() {
        let millis = definition("timestamp-millis");
        assert_eq!(
            millis.hash().unwrap(),
            definition("timestamp-millis").hash().unwrap()
        );
        // Avro's canonical form is identical for these two; the data is not.
        assert_ne!(
            millis.hash().unwrap(),
            definition("timestamp-micros").hash().unwrap()
        );
        let mut hourly = definition("timestamp-millis");
        hourly.partitioning.granularity = Granularity::Hour;
        assert_ne!(millis.hash().unwrap(), hourly.hash().unwrap());
        let mut renamed = definition("timestamp-millis");
        renamed.schema_file = "elsewhere.avsc".into();
        assert_eq!(millis.hash().unwrap(), renamed.hash().unwrap());
    }

    /// A `vN.json` as written before the source identity was typed reads back and is written
    /// again byte for byte (its `source` keys sorted, as an untyped JSON object wrote them).
    #[test]
    fn stored_definitions_round_trip_byte_for_byte() {
        let files = r#"{
  "version": 3,
  "table": "orders",
  "schema": {
    "fields": [
      {
        "name": "id",
        "type": "long"
      }
    ],
    "name": "E",
    "type": "record"
  },
  "schema_file": "e.avsc",
  "transform": null,
  "partitioning": {
    "time": {
      "field": {
        "name": "ts",
        "unit": "ms"
      }
    },
    "granularity": "day"
  },
  "format": "parquet",
  "source": {
    "encoding": "json",
    "kind": "files",
    "path": "in"
  },
  "metadata_columns": true,
  "definition_hash": "0123",
  "created_at": "2026-11-28T10:00:00Z",
  "state": "live"
}"#;
        let kafka = files
            .replace("\"kind\": \"files\"", "\"kind\": \"kafka\"")
            .replace("\"path\": \"in\"", "\"topic\": \"orders\"")
            .replace("\"encoding\": \"json\"", "\"encoding\": \"avro-confluent\"");
        let old = files.replace("    \"encoding\": \"json\",\n", "");
        for text in [files, kafka.as_str(), old.as_str()] {
            let def: VersionDefinition = serde_json::from_str(text).unwrap();
            assert_eq!(
                String::from_utf8(serde_json::to_vec_pretty(&def).unwrap()).unwrap(),
                text
            );
        }
        let def: VersionDefinition = serde_json::from_str(&kafka).unwrap();
        assert!(def.definition.reads_avro());
        assert_eq!(def.definition.metadata(), Metadata::Kafka);
        let def: VersionDefinition = serde_json::from_str(&old).unwrap();
        assert!(!def.definition.reads_avro());
        assert_eq!(def.definition.metadata(), Metadata::File);
    }
}
