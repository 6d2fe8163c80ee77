//! The Parquet-mode commit log: `<table>/vN/_kappa_log/{seq:020}.json`.
//!
//! # What a commit guarantees
//! A commit record lists the data files and dead-letter files it makes visible and, for every
//! source partition it covers, the offset range `[start, end)` it consumed. It is created with a
//! conditional put (`PutMode::Create`), so a record is either fully there or absent, and two
//! writers can never both take one sequence number. Files are uploaded *before* their record.
//!
//! # What a reader can observe
//! - Through the log (kappa-lake, or any reader that lists `_kappa_log/` and reads the named
//!   files): exactly the committed rows, each once.
//! - Through a path glob (`vN/**/*.parquet`): the committed files, plus — only between a crash
//!   and the writer's next start — files written for a commit that never happened. A starting
//!   writer deletes every file of the version that no commit lists before it writes anything
//!   ([`CommitLog::remove_uncommitted`]), so after recovery the glob equals the log. For this
//!   reason a Parquet-mode version has one writer process at a time.
//!
//! # Exactly once
//! On start the writer resumes every partition at the `end` of its last committed range. A
//! commit whose range does not start where the log says the partition ends is refused (never
//! moving an offset backwards, never skipping); a commit retried after an unknown outcome is
//! recognised by its `commit_id` and not applied twice.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::failpoints::crash_point;
use crate::storage::Lake;
use crate::table::TableLayout;
use crate::write::lease;

// Owned by the stages that produce them (dead-letter files: `decode`; positions, ranges and
// position keys: `source`); re-exported here because commit records are made of them.
pub use crate::decode::dead_letter::DeadLetterFile;
pub use crate::source::position::{OffsetRange, REPLAY_KEY_PREFIX, SourcePosition, is_source_key};

/// One data file made visible by a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the version directory (`date=…/hour=…/part-….zstd.parquet`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Rows in the file.
    pub rows: u64,
    /// Hive partition values, in path order.
    pub partition: Vec<(String, String)>,
}

/// A commit record as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Sequence number (the file name).
    pub seq: u64,
    /// Unique id, to recognise a retried commit.
    pub commit_id: String,
    /// When it was written.
    pub committed_at: DateTime<Utc>,
    /// Data files.
    pub files: Vec<FileEntry>,
    /// Dead-letter files.
    #[serde(default)]
    pub dead_letters: Vec<DeadLetterFile>,
    /// Offsets covered, per source partition.
    pub ranges: BTreeMap<String, OffsetRange>,
}

/// What a writer asks to commit.
#[derive(Debug, Clone, Default)]
pub struct PendingCommit {
    /// Data files, already uploaded.
    pub files: Vec<FileEntry>,
    /// Dead-letter files, already uploaded.
    pub dead_letters: Vec<DeadLetterFile>,
    /// Offsets covered.
    pub ranges: BTreeMap<String, OffsetRange>,
    /// Delta versions: the `add` actions of `files` (with delta-rs's statistics).
    pub adds: Vec<deltalake::kernel::Add>,
    /// Delta versions: files replaced (an upsert table's files rewritten without the keys
    /// the commit changes).
    pub removes: Vec<deltalake::kernel::Remove>,
}

impl PendingCommit {
    /// Whether committing would change nothing.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dead_letters.is_empty() && self.ranges.is_empty()
    }
}

/// The folded state of a version's log.
#[derive(Debug, Clone, Default)]
pub struct LogState {
    /// Next sequence number.
    pub next_seq: u64,
    /// Per source partition, where the version stands.
    pub positions: BTreeMap<String, SourcePosition>,
    /// Committed data files (relative paths).
    pub files: HashSet<String>,
    /// Committed dead-letter files.
    pub dead_letter_files: HashSet<String>,
    /// Commits applied.
    pub commits: u64,
    /// Rows committed.
    pub rows: u64,
    /// Bytes of committed data files.
    pub bytes: u64,
    /// Dead letters committed.
    pub dead_letters: u64,
    /// Time of the last commit.
    pub last_commit_at: Option<DateTime<Utc>>,
}

impl LogState {
    /// The stored offsets of the source as `partition → next offset` (without the positions
    /// of `dead-letters replay`, which are not the source's).
    pub fn offsets(&self) -> BTreeMap<String, u64> {
        self.positions
            .iter()
            .filter(|(k, _)| is_source_key(k))
            .map(|(k, p)| (k.clone(), p.offset))
            .collect()
    }

    fn apply(&mut self, rec: &CommitRecord) {
        self.next_seq = self.next_seq.max(rec.seq + 1);
        for (p, r) in &rec.ranges {
            let pos = self.positions.entry(p.clone()).or_default();
            if r.end >= pos.offset {
                *pos = SourcePosition {
                    offset: r.end,
                    end_byte: r.end_byte,
                    eof: r.eof,
                };
            }
        }
        for f in &rec.files {
            self.files.insert(f.path.clone());
            self.rows += f.rows;
            self.bytes += f.size;
        }
        for d in &rec.dead_letters {
            self.dead_letter_files.insert(d.path.clone());
            self.dead_letters += d.records;
        }
        self.commits += 1;
        self.last_commit_at = Some(rec.committed_at);
    }
}

/// A version's commit log, open for reading and committing.
#[derive(Debug)]
pub struct CommitLog {
    lake: Lake,
    layout: TableLayout,
    version: u32,
    state: LogState,
}

impl CommitLog {
    /// Reads every commit record of the version.
    pub async fn open(lake: &Lake, layout: &TableLayout, version: u32) -> Result<CommitLog> {
        let dir = layout.commit_log_dir(version);
        let metas: Vec<_> = lake
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| Error::storage(&dir, e))?;
        let mut seqs: Vec<u64> = metas
            .iter()
            .filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse().ok())
            .collect();
        seqs.sort_unstable();
        let mut log = CommitLog {
            lake: lake.clone(),
            layout: layout.clone(),
            version,
            state: LogState::default(),
        };
        for seq in seqs {
            if let Some(rec) = log.read_record(seq).await? {
                log.state.apply(&rec);
            }
        }
        Ok(log)
    }

    /// The folded state.
    pub fn state(&self) -> &LogState {
        &self.state
    }

    async fn read_record(&self, seq: u64) -> Result<Option<CommitRecord>> {
        let path = self.layout.commit_record(self.version, seq);
        let bytes = match self.lake.store.get(&path).await {
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

    /// Every commit record folded into [`CommitLog::state`], in order (read again from
    /// storage: records never change once written).
    pub async fn records(&self) -> Result<Vec<CommitRecord>> {
        let mut records = Vec::new();
        for seq in 0..self.state.next_seq {
            if let Some(rec) = self.read_record(seq).await? {
                records.push(rec);
            }
        }
        Ok(records)
    }

    /// Reads records other writers added since we last looked; returns their commit ids.
    pub async fn refresh(&mut self) -> Result<HashSet<String>> {
        let mut ids = HashSet::new();
        while let Some(rec) = self.read_record(self.state.next_seq).await? {
            ids.insert(rec.commit_id.clone());
            self.state.apply(&rec);
        }
        Ok(ids)
    }

    fn check_ranges(&self, pending: &PendingCommit) -> Result<()> {
        for (p, r) in &pending.ranges {
            let stored = self.state.positions.get(p).map(|s| s.offset);
            if r.end < r.start || stored.is_some_and(|s| s != r.start) {
                return Err(Error::Conflict {
                    path: self.layout.commit_log_dir(self.version),
                    reason: format!(
                        "partition `{p}`: commit covers [{}, {}) but the version holds offsets up to {}; refusing to commit twice or leave a gap",
                        r.start,
                        r.end,
                        stored.map_or("none".into(), |s| s.to_string())
                    ),
                });
            }
        }
        Ok(())
    }

    /// Commits `pending` atomically; returns its sequence number.
    pub async fn commit(&mut self, pending: PendingCommit) -> Result<u64> {
        let commit_id = uuid::Uuid::new_v4().to_string();
        loop {
            self.check_ranges(&pending)?;
            let rec = CommitRecord {
                seq: self.state.next_seq,
                commit_id: commit_id.clone(),
                committed_at: Utc::now(),
                files: pending.files.clone(),
                dead_letters: pending.dead_letters.clone(),
                ranges: pending.ranges.clone(),
            };
            let path = self.layout.commit_record(self.version, rec.seq);
            let body = serde_json::to_vec(&rec).map_err(|e| Error::Corrupt {
                path: path.clone(),
                source: e.into(),
            })?;
            crash_point!("commit.before_write");
            match self
                .lake
                .store
                .put_opts(&path, body.into(), PutOptions::from(PutMode::Create))
                .await
            {
                Ok(_) => {
                    crash_point!("commit.after_write");
                    self.state.apply(&rec);
                    tracing::debug!(
                        version = self.version,
                        seq = rec.seq,
                        files = rec.files.len(),
                        "committed"
                    );
                    return Ok(rec.seq);
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // Someone took this sequence number (or our own earlier attempt did):
                    // re-read, then decide again.
                    if self.refresh().await?.contains(&commit_id) {
                        return Ok(self.state.next_seq - 1);
                    }
                }
                Err(e) => {
                    // Unknown outcome: the record may have landed. Re-read before deciding.
                    if self.refresh().await?.contains(&commit_id) {
                        return Ok(self.state.next_seq - 1);
                    }
                    return Err(Error::storage(&path, e));
                }
            }
        }
    }

    /// Deletes data and dead-letter files of this version that no commit lists, except those
    /// of the writers in `live` (which may still commit them).
    pub async fn remove_uncommitted(&self, live: &HashSet<String>) -> Result<usize> {
        let mut removed = 0;
        let dirs = [
            (self.layout.version_dir(self.version), &self.state.files),
            (
                self.layout.dead_letter_dir(self.version),
                &self.state.dead_letter_files,
            ),
        ];
        for (dir, committed) in dirs {
            let metas: Vec<_> = self
                .lake
                .store
                .list(Some(&dir))
                .try_collect()
                .await
                .map_err(|e| Error::storage(&dir, e))?;
            let prefix_len = dir.as_ref().len() + 1;
            for meta in metas {
                let rel = &meta.location.as_ref()[prefix_len..];
                // (`_kappa_archive/`: a raw archive's saved index, see pipeline::archive.)
                if rel.starts_with("_kappa_log/")
                    || rel.starts_with("_kappa_writers/")
                    || rel.starts_with("_kappa_archive/")
                    || committed.contains(rel)
                {
                    continue;
                }
                let name = meta.location.filename().unwrap_or_default();
                if lease::writer_of(name).is_some_and(|w| live.contains(w)) {
                    continue;
                }
                tracing::info!(path = %meta.location, "removing uncommitted file");
                self.lake.delete_if_exists(&meta.location).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Root;

    fn lake() -> Lake {
        let url = url::Url::parse(&format!("memory://{}", uuid::Uuid::new_v4())).unwrap();
        Lake::open(&Root::Url(url), "root").unwrap()
    }

    fn range(start: u64, end: u64) -> OffsetRange {
        OffsetRange {
            start,
            end,
            end_byte: None,
            eof: false,
        }
    }

    fn pending(p: &str, start: u64, end: u64) -> PendingCommit {
        PendingCommit {
            ranges: [(p.to_string(), range(start, end))].into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn offsets_fold_and_never_move_backwards() {
        let (lake, layout) = (lake(), TableLayout::new("t"));
        let mut log = CommitLog::open(&lake, &layout, 1).await.unwrap();
        log.commit(pending("a", 0, 10)).await.unwrap();
        log.commit(pending("a", 10, 25)).await.unwrap();
        log.commit(pending("b", 5, 7)).await.unwrap();
        assert!(matches!(
            log.commit(pending("a", 10, 30)).await,
            Err(Error::Conflict { .. })
        ));
        assert!(matches!(
            log.commit(pending("a", 26, 30)).await,
            Err(Error::Conflict { .. })
        ));
        let reopened = CommitLog::open(&lake, &layout, 1).await.unwrap();
        assert_eq!(
            reopened.state().offsets(),
            [("a".into(), 25), ("b".into(), 7)].into()
        );
        assert_eq!(reopened.state().commits, 3);
    }

    #[tokio::test]
    async fn concurrent_writers_take_distinct_sequence_numbers() {
        let (lake, layout) = (lake(), TableLayout::new("t"));
        let mut a = CommitLog::open(&lake, &layout, 1).await.unwrap();
        let mut b = CommitLog::open(&lake, &layout, 1).await.unwrap();
        assert_eq!(a.commit(pending("p0", 0, 5)).await.unwrap(), 0);
        // b has not seen a's commit: it must re-read, then land after it.
        assert_eq!(b.commit(pending("p1", 0, 3)).await.unwrap(), 1);
        // b trying to commit a's partition range again is refused after re-reading.
        assert!(b.commit(pending("p0", 0, 5)).await.is_err());
        let log = CommitLog::open(&lake, &layout, 1).await.unwrap();
        assert_eq!(
            log.state().offsets(),
            [("p0".into(), 5), ("p1".into(), 3)].into()
        );
    }
}
