//! `dead-letters list|show`: what a version's dead letters are. Only the files a commit lists
//! are read, so what is shown is exactly what the version holds (a file written by a writer
//! that crashed before its commit is not a dead letter yet: its records are read again).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{ContextError, Error, Missing, Result};
use crate::pipeline::handle::TableHandle;
use crate::table::version;
use crate::write::VersionLog;

/// One version's dead letters, counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The version.
    pub version: u32,
    /// Dead letters committed.
    pub total: u64,
    /// Per stage (`read`, `decode`, `event_time`, `transform`).
    pub by_stage: BTreeMap<String, u64>,
    /// Per source partition (Kafka `topic/partition`, or the file).
    pub by_source: BTreeMap<String, u64>,
    /// Dead-letter files committed.
    pub files: usize,
}

/// The committed dead letters of `version`, as stored (one JSON object each: `stage`,
/// `reason`, `source`, `offset`, `raw` or `raw_base64`, `raw_bytes`, `truncated`, `version`,
/// `dead_lettered_at`), ordered by source and offset.
pub async fn read(table: &TableHandle, version: u32) -> Result<Vec<serde_json::Value>> {
    Ok(committed(table, version).await?.0)
}

/// [`read`], and how many files hold them.
async fn committed(table: &TableHandle, version: u32) -> Result<(Vec<serde_json::Value>, usize)> {
    let (lake, layout) = (&table.lake, &table.layout);
    let def = version::load(lake, layout, version)
        .await?
        .ok_or_else(|| Missing::Version {
            table: table.cfg.name.clone(),
            version,
        })?;
    let log = VersionLog::read(lake, layout, version, def.definition.format).await?;
    let mut files: Vec<&String> = log.state().dead_letter_files.iter().collect();
    files.sort();
    let count = files.len();
    let dir = layout.dead_letter_dir(version);
    let mut letters = Vec::new();
    for name in files {
        let path = dir.clone().join(name.as_str());
        let bytes = lake.read_all(&path).await?;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let letter = serde_json::from_slice(line).map_err(|e| Error::Corrupt {
                path: path.clone(),
                source: ContextError::new("not a dead-letter line", e).into(),
            })?;
            letters.push(letter);
        }
    }
    letters.sort_by(|a: &serde_json::Value, b| {
        (a["source"].as_str(), a["offset"].as_u64())
            .cmp(&(b["source"].as_str(), b["offset"].as_u64()))
    });
    Ok((letters, count))
}

/// Counts per version: every version of the table, or just `only`.
pub async fn summaries(table: &TableHandle, only: Option<u32>) -> Result<Vec<Summary>> {
    let versions = version::list(&table.lake, &table.layout).await?;
    let mut out = Vec::new();
    for v in versions
        .iter()
        .filter(|v| only.is_none_or(|o| o == v.version))
    {
        let (letters, files) = committed(table, v.version).await?;
        let mut summary = Summary {
            version: v.version,
            total: letters.len() as u64,
            files,
            ..Summary::default()
        };
        for l in &letters {
            let key = |k: &str| l[k].as_str().unwrap_or("?").to_string();
            *summary.by_stage.entry(key("stage")).or_default() += 1;
            *summary.by_source.entry(key("source")).or_default() += 1;
        }
        out.push(summary);
    }
    if let Some(o) = only
        && out.is_empty()
    {
        return Err(Missing::Version {
            table: table.cfg.name.clone(),
            version: o,
        }
        .into());
    }
    Ok(out)
}
