//! Committing to a version's Delta log: the exactly-once protocol described in the parent
//! module ([`super`]).
//!
//! Invariant: a commit lands at most once, and only when every partition's range starts where
//! the log says the partition stands; after any failure the log, not the error, decides whether
//! it landed, conflicted, or may be retried.

use std::collections::HashMap;

use chrono::Utc;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt;
use deltalake::table::state::DeltaTableState;
use object_store::ObjectStoreExt;

use super::{COMMIT_ATTEMPTS, DEAD_LETTERS_KEY, DeltaLog, RANGES_KEY, app_id, delta_err};
use crate::error::{Error, Missing, Result};
use crate::failpoints::crash_point;
use crate::source::SourcePosition;
use crate::write::commit::PendingCommit;

impl DeltaLog {
    fn check_ranges(&self, pending: &PendingCommit) -> Result<()> {
        for (p, r) in &pending.ranges {
            let stored = self.state.positions.get(p).map(|s| s.offset);
            if r.end < r.start || stored.is_some_and(|s| s != r.start) {
                return Err(Error::Conflict {
                    path: self.dir.clone().join("_delta_log"),
                    reason: format!(
                        "partition `{p}`: commit covers [{}, {}) but the Delta log holds offset {}; refusing to commit twice or leave a gap",
                        r.start,
                        r.end,
                        stored.map_or("none".into(), |s| s.to_string())
                    ),
                });
            }
        }
        Ok(())
    }

    /// Where the log stands for the partitions of `pending`, read fresh from storage.
    async fn stored_offsets(&mut self, pending: &PendingCommit) -> Result<Vec<Option<u64>>> {
        self.refresh().await?;
        Ok(pending
            .ranges
            .keys()
            .map(|p| self.state.positions.get(p).map(|s| s.offset))
            .collect())
    }

    /// Commits `pending` (its `adds` and one `txn` per range) in one Delta transaction; returns
    /// the Delta table version it became.
    pub async fn commit(&mut self, pending: PendingCommit) -> Result<u64> {
        if self.table.is_none() {
            return Err(Missing::DeltaTable {
                version: self.version,
            }
            .into());
        }
        self.check_ranges(&pending)?;
        for p in pending.ranges.keys() {
            if !self.state.positions.contains_key(p) {
                // The path part percent-encodes what a file name cannot hold (`/`, `%`, …).
                let marker = self.marker_dir().join(p.as_str());
                self.lake
                    .store
                    .put(&marker, bytes::Bytes::new().into())
                    .await
                    .map_err(|e| Error::storage(&marker, e))?;
            }
        }
        let now = Utc::now().timestamp_millis();
        let txns: Vec<Transaction> = pending
            .ranges
            .iter()
            .map(|(p, r)| {
                Transaction::new_with_last_update(
                    app_id(self.layout.table(), self.version, p),
                    r.end as i64,
                    Some(now),
                )
            })
            .collect();
        let info = serde_json::json!({
            DEAD_LETTERS_KEY: pending.dead_letters,
            RANGES_KEY: pending.ranges,
        });
        let info: HashMap<String, serde_json::Value> = match info {
            serde_json::Value::Object(m) => m.into_iter().collect(),
            _ => HashMap::new(),
        };
        let actions: Vec<Action> = pending
            .adds
            .iter()
            .cloned()
            .map(Action::Add)
            .chain(pending.removes.iter().cloned().map(Action::Remove))
            .collect();
        let ends: Vec<Option<u64>> = pending.ranges.values().map(|r| Some(r.end)).collect();
        let starts: Vec<Option<u64>> = pending
            .ranges
            .keys()
            .map(|p| self.state.positions.get(p).map(|s| s.offset))
            .collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(table) = &mut self.table else {
                // Unreachable: checked above, and a table once opened is never dropped.
                return Err(Missing::DeltaTable {
                    version: self.version,
                }
                .into());
            };
            let snapshot = table.snapshot().map_err(|e| delta_err(&self.dir, e))?;
            let read_version = snapshot.version();
            let operation = if pending.removes.is_empty() {
                DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by: (!self.partition_columns.is_empty())
                        .then(|| self.partition_columns.clone()),
                    predicate: None,
                }
            } else {
                // An upsert: rows of changed keys replaced, by copy-on-write.
                DeltaOperation::Merge {
                    predicate: None,
                    merge_predicate: None,
                    matched_predicates: Vec::new(),
                    not_matched_predicates: Vec::new(),
                    not_matched_by_source_predicates: Vec::new(),
                }
            };
            let props = commit_properties(snapshot)
                .with_application_transactions(txns.clone())
                .with_metadata(info.clone());
            crash_point!("commit.before_write");
            let result = CommitBuilder::from(props)
                .with_actions(actions.clone())
                .build(Some(snapshot), table.log_store(), operation)
                .await;
            let error = match result {
                Ok(done) => {
                    crash_point!("commit.after_write");
                    let version = done.version();
                    table.state = Some(done.snapshot());
                    if version == read_version + 1 && pending.removes.is_empty() {
                        self.apply_own(&pending, version);
                    } else if version == read_version + 1 {
                        let snapshot = table.snapshot().map_err(|e| delta_err(&self.dir, e))?;
                        super::take_files(snapshot, &mut self.state);
                        self.apply_own_ranges(&pending, version);
                    } else if !self.fold_rebased(read_version, &pending, version).await? {
                        // Rebased over other writers' commits the state cannot fold: read
                        // every partition's offsets (the state must match the snapshot the
                        // next commit is checked against).
                        self.read_state(false).await?;
                        self.read_dead_letters_of(&pending);
                    }
                    return Ok(version);
                }
                Err(e) => e,
            };
            // Decide from the log, not from the error.
            let stored = self.stored_offsets(&pending).await?;
            // Our own files in the log prove the commit landed; without files, our end offsets
            // do (another writer's commit cannot hold our files, but may hold the same ends).
            let landed = match pending.adds.first() {
                Some(add) => self.state.files.contains(&add.path),
                None => !pending.ranges.is_empty() && stored == ends,
            };
            if landed {
                tracing::info!(
                    version = self.version,
                    "commit had landed before the error was reported; not committing twice"
                );
                self.read_dead_letters_of(&pending);
                return Ok(self.state.next_seq.saturating_sub(1));
            }
            if stored != starts {
                return Err(Error::Conflict {
                    path: self.dir.clone().join("_delta_log"),
                    reason: format!(
                        "another writer committed offsets of these partitions ({error}); re-read the log"
                    ),
                });
            }
            if !pending.removes.is_empty() {
                // An upsert's rewrite was read from the snapshot it started from: another
                // commit (a compaction, another writer's upsert) may have replaced those
                // files. Re-read and apply it again.
                return Err(Error::Conflict {
                    path: self.dir.clone().join("_delta_log"),
                    reason: format!(
                        "another commit replaced files this upsert rewrites ({error}); re-read the log"
                    ),
                });
            }
            if attempt >= COMMIT_ATTEMPTS {
                return Err(delta_err(&self.dir, error));
            }
            tracing::warn!(attempt, error = %error, "Delta commit failed; the log does not hold it, retrying");
        }
    }

    /// Folds our commit, which landed at `version` after other writers' commits since
    /// `read_version` (a compaction's, typically), into the state without a log replay per
    /// partition ([`DeltaLog::read_state`]): the `txn` actions of the commits in between (read
    /// from their commit files, which are new, so no clean-up has removed them) and then ours
    /// set the offsets; the files are the new snapshot's. Returns `false`, having changed
    /// nothing, when a commit in between cannot be read or sets the offsets of a partition the
    /// state does not hold yet (another writer's new partition): the caller reads it all.
    async fn fold_rebased(
        &mut self,
        read_version: u64,
        pending: &PendingCommit,
        version: u64,
    ) -> Result<bool> {
        let Some(table) = &self.table else {
            return Ok(false);
        };
        let ours: HashMap<String, &str> = self
            .state
            .positions
            .keys()
            .map(|k| (app_id(self.layout.table(), self.version, k), k.as_str()))
            .collect();
        let log_store = table.log_store();
        let mut theirs: Vec<(String, u64)> = Vec::new();
        for v in read_version + 1..version {
            // Whatever stops the fold (a read that fails, a line that does not parse) leaves
            // the job to `read_state`, which decides on errors as before.
            let Ok(Some(commit)) = log_store.read_commit_entry(v).await else {
                return Ok(false);
            };
            for line in commit.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
                    return Ok(false);
                };
                let Some(txn) = action.get("txn") else {
                    continue;
                };
                let app = txn.get("appId").and_then(serde_json::Value::as_str);
                let offset = txn.get("version").and_then(serde_json::Value::as_u64);
                match (app.and_then(|a| ours.get(a)), offset) {
                    (Some(key), Some(offset)) => theirs.push(((*key).to_owned(), offset)),
                    _ => return Ok(false),
                }
            }
        }
        let snapshot = table.snapshot().map_err(|e| delta_err(&self.dir, e))?;
        super::take_files(snapshot, &mut self.state);
        for (key, offset) in theirs {
            self.state.positions.insert(
                key,
                SourcePosition {
                    offset,
                    end_byte: None,
                    eof: false,
                },
            );
        }
        // Our files are in the snapshot already.
        self.apply_own_ranges(pending, version);
        Ok(true)
    }

    /// Folds our own commit into the state without re-reading the log.
    fn apply_own(&mut self, pending: &PendingCommit, version: u64) {
        let s = &mut self.state;
        for f in &pending.files {
            s.files.insert(f.path.clone());
            s.rows += f.rows;
            s.bytes += f.size;
        }
        self.apply_own_ranges(pending, version);
    }

    /// Folds our commit's offsets, dead letters and version into the state.
    fn apply_own_ranges(&mut self, pending: &PendingCommit, version: u64) {
        let s = &mut self.state;
        for (p, r) in &pending.ranges {
            s.positions.insert(
                p.clone(),
                SourcePosition {
                    offset: r.end,
                    end_byte: None,
                    eof: false,
                },
            );
        }
        self.read_dead_letters_of(pending);
        let s = &mut self.state;
        s.commits = version;
        s.next_seq = s.commits + 1;
        s.last_commit_at = Some(Utc::now());
    }

    fn read_dead_letters_of(&mut self, pending: &PendingCommit) {
        for d in &pending.dead_letters {
            if self.state.dead_letter_files.insert(d.path.clone()) {
                self.state.dead_letters += d.records;
            }
        }
    }
}

/// What every commit of ours starts from: expired commit files are deleted only by a commit
/// that writes a checkpoint (as Spark does). Left to delta-rs, every commit would list the
/// whole `_delta_log`; what expires in between goes at the next checkpoint.
pub(super) fn commit_properties(snapshot: &DeltaTableState) -> CommitProperties {
    let config = snapshot.table_config();
    let checkpoints = (snapshot.version() + 1).is_multiple_of(config.checkpoint_interval().get());
    CommitProperties::default()
        .with_cleanup_expired_logs(Some(checkpoints && config.enable_expired_log_cleanup()))
}
