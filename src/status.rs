//! `status` and `versions list`: what every table holds, read from storage alone.
//!
//! `status --json` prints at least
//! `{"tables":[{"name":…,"current":N,"versions":[{"version":N,"state":"live","offsets":{…}}]}]}`;
//! `offsets` maps source partition to the next offset to read. `status --topic` adds, per
//! Kafka table, `"topic"`: each partition's low and high watermark and the span its raw
//! archive holds, and the ranges a replay from the start would miss
//! ([`crate::pipeline::coverage`]; the only part that asks the broker).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::pipeline::TableHandle;
use crate::pipeline::coverage::Replay;
use crate::table::{VersionState, pointer, version};
use crate::write::VersionLog;
use crate::write::lease::{self, RunMetrics, WriterState};

/// Status of every table.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// One entry per configured table.
    pub tables: Vec<TableStatus>,
}

/// Status of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    /// Table name.
    pub name: String,
    /// Root as configured.
    pub root: String,
    /// Current version, if any.
    pub current: Option<u32>,
    /// Previous version (rollback target), if any.
    pub previous: Option<u32>,
    /// Every version, ascending.
    pub versions: Vec<VersionStatus>,
    /// `status --topic`, Kafka tables: what the topic and the archive hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<Replay>,
}

/// Status of one version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStatus {
    /// Version number.
    pub version: u32,
    /// `building`, `live` or `retired` (live = what the pointer says).
    pub state: VersionState,
    /// Definition hash.
    pub definition_hash: String,
    /// Output format.
    pub format: crate::config::Format,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Next offset to read per source partition.
    pub offsets: BTreeMap<String, u64>,
    /// Rows committed.
    pub rows: u64,
    /// Data files committed.
    pub files: u64,
    /// Bytes of data files.
    pub bytes: u64,
    /// Data files per time partition (`date=2026-11-26/hour=5` → files): what compaction
    /// brings down.
    pub files_per_partition: BTreeMap<String, u64>,
    /// Dead letters committed.
    pub dead_letters: u64,
    /// Commits.
    pub commits: u64,
    /// Time of the last commit.
    pub last_commit_at: Option<DateTime<Utc>>,
    /// Lag per source partition (Kafka): the high watermark last reported to a live writer,
    /// minus the committed offset.
    pub lag: BTreeMap<String, i64>,
    /// Processes writing (or that recently wrote) this version, with their run metrics.
    pub writers: Vec<WriterStatus>,
    /// Offset ranges (`topic/partition [from, to)`) this version was rebuilt without
    /// (`rebuild --allow-gap`: neither the topic nor the archive held them); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<String>,
}

/// One writer process of a version, from its lease.
#[derive(Debug, Clone, Serialize)]
pub struct WriterStatus {
    /// Writer id.
    pub writer: String,
    /// `running` while its lease is live; `stopped` after a clean exit; `gone` when it died.
    pub state: &'static str,
    /// Host.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Run start.
    pub started_at: DateTime<Utc>,
    /// Last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Counters and per-partition positions, high watermarks and lag.
    #[serde(flatten)]
    pub metrics: RunMetrics,
}

/// Reads the status of `table` from its storage.
pub async fn table_status(table: &TableHandle) -> Result<TableStatus> {
    let (lake, layout) = (&table.lake, &table.layout);
    let ptr = pointer::read(lake, layout).await?;
    let current = ptr.as_ref().map(|p| p.version);
    let mut versions = Vec::new();
    for def in version::list(lake, layout).await? {
        let log = VersionLog::read(lake, layout, def.version, def.definition.format).await?;
        let s = log.state();
        let now = lake.clock.now();
        let leases = lease::list(lake, layout, def.version).await?;
        // Lag from the freshest report per partition, against the committed offset.
        let mut lag = BTreeMap::new();
        let mut seen_at = BTreeMap::new();
        for l in &leases {
            for (p, m) in &l.metrics.partitions {
                let Some(hw) = m.high_watermark else { continue };
                if seen_at.get(p).is_some_and(|t| *t > l.heartbeat_at) {
                    continue;
                }
                seen_at.insert(p.clone(), l.heartbeat_at);
                let committed = s.positions.get(p).map_or(0, |pos| pos.offset);
                lag.insert(
                    p.clone(),
                    (hw - i64::try_from(committed).unwrap_or(i64::MAX)).max(0),
                );
            }
        }
        let writers = leases
            .into_iter()
            .map(|l| WriterStatus {
                state: match (l.is_live(now), l.state) {
                    (true, _) => "running",
                    (false, WriterState::Stopped) => "stopped",
                    (false, WriterState::Running) => "gone",
                },
                writer: l.writer,
                host: l.host,
                pid: l.pid,
                started_at: l.started_at,
                heartbeat_at: l.heartbeat_at,
                metrics: l.metrics,
            })
            .collect();
        let state = match (Some(def.version) == current, def.state) {
            (true, _) => VersionState::Live,
            (false, VersionState::Live) => VersionState::Retired,
            (false, other) => other,
        };
        versions.push(VersionStatus {
            version: def.version,
            state,
            definition_hash: def.definition_hash.clone(),
            format: def.definition.format,
            created_at: def.created_at,
            offsets: s.offsets(),
            rows: s.rows,
            files: s.files.len() as u64,
            bytes: s.bytes,
            files_per_partition: files_per_partition(s.files.iter()),
            dead_letters: s.dead_letters,
            commits: s.commits,
            last_commit_at: s.last_commit_at,
            lag,
            writers,
            gaps: version::gaps(&table.lake, &table.layout, def.version).await?,
        });
    }
    Ok(TableStatus {
        name: table.cfg.name.clone(),
        root: table.lake.display.clone(),
        current,
        previous: ptr.and_then(|p| p.previous),
        versions,
        topic: None,
    })
}

/// Counts data files by their directory below the version (the time partition).
fn files_per_partition<'a>(paths: impl Iterator<Item = &'a String>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for p in paths {
        let dir = p.rsplit_once('/').map_or("", |(dir, _)| dir);
        *out.entry(dir.to_string()).or_default() += 1;
    }
    out
}

/// Human-readable table of a status.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    for t in &status.tables {
        let current = t.current.map_or("none".into(), |v| format!("v{v}"));
        out.push_str(&format!(
            "table {}  root {}  current {current}\n",
            t.name, t.root
        ));
        out.push_str(&format!(
            "  {:<8} {:<9} {:<33} {:>10} {:>6} {:>12} {:>8} {:>7}  last commit\n",
            "version", "state", "definition", "rows", "files", "bytes", "dead", "commits"
        ));
        for v in &t.versions {
            out.push_str(&format!(
                "  {:<8} {:<9} {:<33} {:>10} {:>6} {:>12} {:>8} {:>7}  {}\n",
                format!("v{}", v.version),
                v.state.to_string(),
                v.definition_hash,
                v.rows,
                v.files,
                v.bytes,
                v.dead_letters,
                v.commits,
                v.last_commit_at.map_or("-".into(), |t| t.to_rfc3339()),
            ));
            // Per source partition: the next offset to read, and the lag a writer last saw.
            for (partition, offset) in &v.offsets {
                let lag = v
                    .lag
                    .get(partition)
                    .map_or("-".to_string(), |l| l.to_string());
                out.push_str(&format!(
                    "      {partition:<30} offset {offset:>14}  lag {lag:>12}\n"
                ));
            }
        }
        if t.versions.is_empty() {
            out.push_str("  (no versions yet)\n");
        }
        if let Some(topic) = &t.topic {
            out.push_str(&render_replay(topic, "  "));
        }
    }
    out
}

/// What a replay reads, per partition of the topic, and what it would miss (indented by
/// `indent`).
pub fn render_replay(replay: &Replay, indent: &str) -> String {
    let c = match replay {
        Replay::Known(c) => c,
        Replay::Unknown { error } => {
            return format!("{indent}topic: could not be read ({error})\n");
        }
    };
    let mut out = format!(
        "{indent}topic {}{}\n",
        c.topic,
        c.archive
            .as_ref()
            .map_or(String::new(), |a| format!(", archive {a}"))
    );
    for p in &c.partitions {
        let archive = p
            .archive
            .map_or("-".to_string(), |a| format!("[{}, {})", a.first, a.end));
        out.push_str(&format!(
            "{indent}    partition {:<5} topic [{}, {})  archive {archive}\n",
            p.partition, p.low_watermark, p.high_watermark
        ));
    }
    if c.gaps.is_empty() {
        out.push_str(&format!(
            "{indent}    a replay from the start reads every offset\n"
        ));
    } else {
        out.push_str(&format!(
            "{indent}    a replay from the start would miss {} (rebuild refuses unless --allow-gap)\n",
            c.gaps.join(", ")
        ));
    }
    out
}
