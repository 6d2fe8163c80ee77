//! Writer leases: which processes are writing a version, and what their runs did.
//!
//! Several `run` processes may write one version (a consumer group splits the partitions).
//! Each names its files after its writer id and keeps a lease at
//! `v{n}/_kappa_writers/{writer}.json`, refreshed at every commit and every `max_age`. A
//! writer's uncommitted files may be deleted only once it is gone: its lease expired, it
//! stopped, or (same host) its process no longer exists. The lease also carries the run's
//! metrics, which `status --json` prints.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Lake;
use crate::table::TableLayout;

/// Lease files kept per version for writers that are gone (their metrics stay readable).
const KEEP_FINISHED: usize = 8;

/// Whether a writer is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriterState {
    /// Writing.
    Running,
    /// Exited after its last commit.
    Stopped,
}

/// One partition as a writer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMetrics {
    /// Next offset to read, as committed in the version.
    pub position: Option<u64>,
    /// The partition's high watermark, as last reported by the broker.
    pub high_watermark: Option<i64>,
    /// `high_watermark - position`.
    pub lag: Option<i64>,
}

/// What a run did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// Records received from the source and materialized (rows or dead letters).
    pub events_in: u64,
    /// Records received again that the version already held (dropped; after a rebalance or
    /// restart this shows whether the consumer started at the stored offsets).
    pub events_skipped: u64,
    /// Rows committed.
    pub rows_written: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Data files committed.
    pub files: u64,
    /// Commits made.
    pub commits: u64,
    /// Commits refused: another writer had committed the same offsets first, or another
    /// commit (a compaction) had replaced files an upsert commit rewrites.
    pub conflicts: u64,
    /// Per source partition (`topic/N`), for the partitions this writer holds.
    pub partitions: BTreeMap<String, PartitionMetrics>,
}

/// A writer's lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriterLease {
    /// Writer id (it prefixes the writer's file names).
    pub writer: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Process start time (Linux clock ticks since boot), to tell a reused pid apart.
    pub pid_start: Option<u64>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// Last refresh.
    pub heartbeat_at: DateTime<Utc>,
    /// The lease expires this long after `heartbeat_at`.
    pub ttl_secs: u64,
    /// Running or stopped.
    pub state: WriterState,
    /// The run's metrics.
    pub metrics: RunMetrics,
}

impl WriterLease {
    /// A new lease for this process, started `now`.
    pub fn new(ttl_secs: u64, now: DateTime<Utc>) -> WriterLease {
        let pid = std::process::id();
        WriterLease {
            writer: new_writer_id(),
            host: host_name(),
            pid,
            pid_start: process_start(pid),
            started_at: now,
            heartbeat_at: now,
            ttl_secs,
            state: WriterState::Running,
            metrics: RunMetrics::default(),
        }
    }

    /// Whether the writer may still commit the files it wrote.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        if self.state != WriterState::Running {
            return false;
        }
        let ttl = chrono::Duration::seconds(i64::try_from(self.ttl_secs).unwrap_or(i64::MAX));
        if self.heartbeat_at + ttl < now {
            return false;
        }
        if self.host == host_name() {
            return process_start(self.pid).is_some_and(|s| Some(s) == self.pid_start);
        }
        true
    }

    /// Whether this writer's own lease is still fresh enough to commit under: a writer that
    /// was paused past its lease may have had its files removed by another.
    pub fn may_commit(&self, now: DateTime<Utc>) -> bool {
        let ttl = chrono::Duration::seconds(i64::try_from(self.ttl_secs).unwrap_or(i64::MAX));
        self.heartbeat_at + ttl > now
    }

    /// Writes the lease with a fresh heartbeat.
    pub async fn refresh(&mut self, lake: &Lake, layout: &TableLayout, version: u32) -> Result<()> {
        self.heartbeat_at = lake.clock.now();
        lake.put_json(&layout.writer_lease(version, &self.writer), self)
            .await
    }
}

/// A fresh writer id: 12 hex digits.
fn new_writer_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// The writer id in a data or dead-letter file name (`part-{writer}-{uuid}…`,
/// `dead-letters-{writer}-{uuid}…`), if it has one.
pub fn writer_of(file_name: &str) -> Option<&str> {
    let rest = file_name
        .strip_prefix("part-")
        .or_else(|| file_name.strip_prefix("dead-letters-"))?;
    let (writer, _) = rest.split_once('-')?;
    (writer.len() == 12 && writer.bytes().all(|b| b.is_ascii_hexdigit())).then_some(writer)
}

/// Every lease of `version`.
pub async fn list(lake: &Lake, layout: &TableLayout, version: u32) -> Result<Vec<WriterLease>> {
    let dir = layout.writers_dir(version);
    let metas: Vec<_> = lake
        .store
        .list(Some(&dir))
        .try_collect()
        .await
        .map_err(|e| Error::storage(&dir, e))?;
    let mut leases = Vec::new();
    for meta in metas {
        let bytes = match lake.store.get(&meta.location).await {
            Ok(r) => r
                .bytes()
                .await
                .map_err(|e| Error::storage(&meta.location, e))?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(Error::storage(&meta.location, e)),
        };
        match serde_json::from_slice::<WriterLease>(&bytes) {
            Ok(l) => leases.push(l),
            Err(e) => {
                tracing::warn!(path = %meta.location, error = %e, "ignoring an unreadable writer lease")
            }
        }
    }
    leases.sort_by_key(|l| l.started_at);
    Ok(leases)
}

/// Ids of the writers of `version` that are live now.
pub async fn live_writers(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
) -> Result<HashSet<String>> {
    let now = lake.clock.now();
    Ok(list(lake, layout, version)
        .await?
        .into_iter()
        .filter(|l| l.is_live(now))
        .map(|l| l.writer)
        .collect())
}

/// Deletes the leases of finished writers beyond the newest few.
pub async fn prune(lake: &Lake, layout: &TableLayout, version: u32) -> Result<()> {
    let now = lake.clock.now();
    let leases = list(lake, layout, version).await?;
    let finished: Vec<_> = leases.iter().filter(|l| !l.is_live(now)).collect();
    for l in finished
        .iter()
        .take(finished.len().saturating_sub(KEEP_FINISHED))
    {
        let path = layout.writer_lease(version, &l.writer);
        match lake.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::storage(&path, e)),
        }
    }
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// The start time of process `pid` (Linux), or `None` if it does not exist (or elsewhere).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime); the command name (field 2) may contain spaces, so count after it.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::config::Root;

    #[test]
    fn writer_ids_are_read_from_file_names() {
        assert_eq!(
            writer_of("part-0123456789ab-5f1d.zstd.parquet"),
            Some("0123456789ab")
        );
        assert_eq!(
            writer_of("dead-letters-0123456789ab-x.ndjson"),
            Some("0123456789ab")
        );
        assert_eq!(writer_of("part-5f1d2c.zstd.parquet"), None);
        assert_eq!(writer_of("other.json"), None);
    }

    #[test]
    fn this_process_is_live_and_a_dead_pid_is_not() {
        let clock = ManualClock::new();
        let mut lease = WriterLease::new(60, clock.now());
        assert!(lease.is_live(clock.now()));
        lease.pid_start = lease.pid_start.map(|s| s + 1);
        if cfg!(target_os = "linux") {
            assert!(
                !lease.is_live(clock.now()),
                "a reused pid is not the writer"
            );
        }
        let expired = WriterLease::new(1, clock.now());
        clock.advance(Duration::from_secs(5));
        assert!(!expired.is_live(clock.now()));
        let mut stopped = WriterLease::new(60, clock.now());
        stopped.state = WriterState::Stopped;
        assert!(!stopped.is_live(clock.now()));
    }

    #[tokio::test]
    async fn a_lease_expires_when_its_heartbeat_is_older_than_its_ttl() {
        let clock = ManualClock::new();
        let url = url::Url::parse(&format!("memory://lease-{}", uuid::Uuid::new_v4())).unwrap();
        let mut lake = Lake::open(&Root::Url(url), "root").unwrap();
        lake.clock = clock.clone();
        let layout = TableLayout::new("t");
        let mut lease = WriterLease::new(30, clock.now());
        lease.refresh(&lake, &layout, 1).await.unwrap();
        assert!(
            live_writers(&lake, &layout, 1)
                .await
                .unwrap()
                .contains(&lease.writer)
        );

        clock.advance(Duration::from_secs(29));
        assert!(lease.may_commit(clock.now()), "inside its ttl");
        assert!(
            live_writers(&lake, &layout, 1)
                .await
                .unwrap()
                .contains(&lease.writer)
        );

        clock.advance(Duration::from_secs(2));
        assert!(
            !lease.may_commit(clock.now()),
            "a writer paused past its lease stops"
        );
        assert!(
            live_writers(&lake, &layout, 1).await.unwrap().is_empty(),
            "others may now remove its uncommitted files"
        );

        lease.refresh(&lake, &layout, 1).await.unwrap();
        assert!(lease.may_commit(clock.now()), "a refresh renews it");
        assert!(
            live_writers(&lake, &layout, 1)
                .await
                .unwrap()
                .contains(&lease.writer)
        );
    }
}
