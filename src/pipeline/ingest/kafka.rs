//! The Kafka driver: the consumer's events (assignment, revocation, messages, partition end)
//! and timer ticks drive an explicit state machine ([`Session`]) that feeds the version writer.
//!
//! Each assigned partition starts at the offset stored in the version (the consumer group's
//! offsets are only advice), and records below the partition's expected offset are dropped as
//! already seen. The session commits at least every `max_age` (also when nothing new arrived:
//! idle flush), when an upsert table's changes or the dead letters need a commit to stay
//! within `max_buffer_bytes`, before giving up partitions, and when it stops. When another
//! writer committed a partition's offsets first, the commit log refuses ours: the uncommitted
//! files are deleted and the consumer restarts from the stored offsets, so nothing is
//! committed twice (invariant: a version's offsets only move forward, by commits of this
//! version's writers).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::KafkaSourceConfig;
use crate::error::{Error, Result};
use crate::failpoints::crash_point;
use crate::pipeline::handle::TableHandle;
use crate::pipeline::ingest::mode::{CatchUp, Mode};
use crate::pipeline::ingest::observe::{self, ProgressView};
use crate::pipeline::ingest::report::Stop;
use crate::pipeline::ingest::writer::VersionWriter;
use crate::pipeline::promote::{self, PromoteOutcome};
use crate::shutdown::Shutdown;
use crate::source::kafka::{Event, KafkaMessage, KafkaSource, StartAt};
use crate::source::{Origin, Record, SourceBatch, kafka_partition_key, seek};
use crate::storage::Lake;
use crate::table::TableLayout;
use crate::table::pointer;
use crate::write::commit::OffsetRange;
use crate::write::lease;
use crate::write::{PendingCommit, SourcePosition, VersionLog};

/// How often the live version's session looks at `current.json` (one small GET), and a
/// replay's progress view is refreshed.
const POINTER_POLL: Duration = Duration::from_secs(2);

/// Writes the topic's records until shutdown (or the end, or caught up, or `current` moved,
/// as `mode` says). A commit refused because another writer got there first restarts the
/// consumer from the stored offsets.
pub(super) async fn run(
    w: &mut VersionWriter<'_>,
    cfg: &KafkaSourceConfig,
    shutdown: &mut Shutdown,
    mode: Mode,
) -> Result<Stop> {
    if let Some(at_ms) = mode.start_from_ms() {
        seed_start(w, cfg, at_ms).await?;
    }
    // `require_same_rows`: the versions' records were compared (and matched).
    let mut same_rows_checked = false;
    loop {
        let mut source = KafkaSource::start_with(cfg, w.version(), mode.membership())?;
        let outcome = session(w, &mut source, shutdown, mode, &mut same_rows_checked).await;
        let outcome = match outcome {
            Ok(stop) => match w.commit().await {
                Ok(()) => {
                    source.commit_to_group(&group_offsets(w, source.topic(), None));
                    Ok(stop)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        source.close().await;
        match outcome {
            Err(Error::Conflict { reason, .. }) if !shutdown.is_triggered() => {
                tracing::warn!(
                    table = %w.table.name, version = w.version(), %reason,
                    "another writer committed these offsets first: dropped the uncommitted data, re-reading from the version's offsets"
                );
                w.log.refresh().await?;
            }
            other => return other,
        }
    }
}

/// One consumer's life: from its start to a stop or an error.
async fn session(
    w: &mut VersionWriter<'_>,
    source: &mut KafkaSource,
    shutdown: &mut Shutdown,
    mode: Mode,
    same_rows_checked: &mut bool,
) -> Result<Stop> {
    let topic = source.topic().clone();
    let targets = catch_up_targets(w.lake, w.layout, &topic, mode).await?;
    let progress = mode.progress().then(|| ProgressView::new(w.version()));
    // The live version's writer (the one following `current`) says whether the table is
    // ready; a replay or a previous version written beside it does not.
    w.metrics.decide_readiness(mode.follows_pointer());
    w.metrics.assigned(0);
    let now = Instant::now();
    let mut session = Session {
        commit_due: now + w.table.writer.max_age,
        next_pointer_check: now + POINTER_POLL,
        w,
        mode,
        topic,
        assigned: BTreeMap::new(),
        targets,
        progress,
        same_rows_checked,
    };
    loop {
        let input = tokio::select! {
            biased;
            () = shutdown.wait() => return Ok(Stop::Interrupted),
            () = tokio::time::sleep_until(session.wake()) => Input::Tick,
            e = source.next() => match e {
                Some(e) => Input::Event(e),
                None => return Err(Error::Kafka {
                    topic: session.topic.to_string(),
                    source: "the consumer thread stopped".into(),
                }),
            },
        };
        if let Some(stop) = session.step(source, input).await? {
            return Ok(stop);
        }
    }
}

/// What wakes a session: an event of the consumer, or a timer (commit due, pointer poll).
enum Input {
    /// The consumer's event.
    Event(Event),
    /// A timer fired with no event.
    Tick,
}

/// A consumer session's state: the partitions it holds and where each stands, the catch-up
/// targets, and its timers.
struct Session<'s, 'a> {
    w: &'s mut VersionWriter<'a>,
    mode: Mode,
    topic: Arc<str>,
    /// The partitions assigned to this consumer.
    assigned: BTreeMap<i32, Assigned>,
    /// When the next commit is due (`max_age` after the last one).
    commit_due: Instant,
    /// Catching up: the live version's offsets, by partition.
    targets: Option<BTreeMap<i32, u64>>,
    /// When to look at `current.json` (and refresh the progress view) next.
    next_pointer_check: Instant,
    progress: Option<ProgressView>,
    same_rows_checked: &'s mut bool,
}

impl Session<'_, '_> {
    /// The next timer: the commit, or also the pointer poll when following `current` or
    /// showing progress.
    fn wake(&self) -> Instant {
        if self.mode.follows_pointer() || self.progress.is_some() {
            self.commit_due.min(self.next_pointer_check)
        } else {
            self.commit_due
        }
    }

    /// One transition: handles the input, then the timers that are due.
    async fn step(&mut self, source: &mut KafkaSource, input: Input) -> Result<Option<Stop>> {
        if let Input::Event(event) = input
            && let Some(stop) = self.on_event(source, event).await?
        {
            return Ok(Some(stop));
        }
        if (Instant::now() >= self.commit_due || self.w.over_budget())
            && let Some(stop) = self.on_commit_due(source).await?
        {
            return Ok(Some(stop));
        }
        if Instant::now() >= self.next_pointer_check {
            return self.on_pointer_poll().await;
        }
        Ok(None)
    }

    async fn on_event(&mut self, source: &mut KafkaSource, event: Event) -> Result<Option<Stop>> {
        match event {
            Event::Messages(messages) => {
                if let Some(view) = &mut self.progress {
                    view.messages(&messages);
                }
                accept(self.w, &self.topic, &mut self.assigned, messages).await?;
                Ok(None)
            }
            Event::Assigned { partitions, reply } => {
                let starts = assign(self.w, &self.topic, &mut self.assigned, &partitions).await?;
                self.w.metrics.assigned(self.assigned.len());
                tracing::info!(table = %self.w.table.name, version = self.w.version(), partitions = ?starts, "partitions assigned");
                if let Some(view) = &mut self.progress {
                    view.assigned(&starts, &self.targets, &source.high_watermarks());
                }
                let _ = reply.send(starts);
                Ok(None)
            }
            Event::Revoked { partitions, done } => {
                // Commit before giving the partitions up, so the next owner starts after
                // our rows; if that fails the data is dropped and re-read by the owner.
                let committed = self.w.commit().await;
                crash_point!("kafka.revoke");
                if committed.is_ok() {
                    source.commit_to_group(&group_offsets(
                        self.w,
                        &self.topic,
                        Some(&self.assigned),
                    ));
                }
                for p in &partitions {
                    self.assigned.remove(p);
                    self.w
                        .metrics
                        .forget_lag(&kafka_partition_key(&self.topic, *p));
                }
                self.w.metrics.assigned(self.assigned.len());
                tracing::info!(table = %self.w.table.name, version = self.w.version(), ?partitions, "partitions revoked");
                let _ = done.send(());
                committed?;
                Ok(None)
            }
            Event::PartitionEnd(p) => self.on_partition_end(source, p).await,
            Event::Error(_) => Ok(None),
        }
    }

    async fn on_partition_end(&mut self, source: &KafkaSource, p: i32) -> Result<Option<Stop>> {
        if let Some(a) = self.assigned.get_mut(&p) {
            a.at_end = true;
        }
        // Caught up only when we hold every partition of the topic (a member that died may
        // still hold some until its session expires).
        let all = self.assigned.len() >= source.partition_count().max(1);
        if self.mode.stop_at_end() && all && self.assigned.values().all(|a| a.at_end) {
            return Ok(Some(Stop::End));
        }
        if all && caught_up(&self.assigned, self.targets.as_ref()) {
            if self.on_caught_up().await? {
                return Ok(Some(Stop::CaughtUp));
            }
            self.refresh_targets().await?;
        }
        Ok(None)
    }

    /// Commits, publishes the figures, and (catching up) checks the refreshed targets.
    async fn on_commit_due(&mut self, source: &KafkaSource) -> Result<Option<Stop>> {
        self.w.commit().await?;
        if !self.assigned.is_empty() && self.assigned.values().all(|a| a.at_end) {
            // Caught up, nothing to commit: as ready as a writer gets.
            self.w.metrics.committing();
        }
        source.commit_to_group(&group_offsets(self.w, &self.topic, Some(&self.assigned)));
        let partitions: Vec<i32> = self.assigned.keys().copied().collect();
        observe::after_commit(
            self.w,
            &self.topic,
            &partitions,
            &source.high_watermarks(),
            self.targets.as_ref(),
        )
        .await;
        self.commit_due = Instant::now() + self.w.table.writer.max_age;
        if self.targets.is_some() {
            self.refresh_targets().await?;
            if self.assigned.len() >= source.partition_count().max(1)
                && caught_up(&self.assigned, self.targets.as_ref())
            {
                if self.on_caught_up().await? {
                    return Ok(Some(Stop::CaughtUp));
                }
                self.refresh_targets().await?;
            }
        }
        Ok(None)
    }

    /// Refreshes the progress view; when following `current`, stops if it moved.
    async fn on_pointer_poll(&mut self) -> Result<Option<Stop>> {
        self.next_pointer_check = Instant::now() + POINTER_POLL;
        if let Some(view) = &mut self.progress {
            view.tick();
        }
        if self.mode.follows_pointer()
            && let Some(p) = pointer::read(self.w.lake, self.w.layout).await?
            && p.version != self.w.version()
        {
            tracing::info!(table = %self.w.table.name, from = self.w.version(), to = p.version, "`current` moved: committing and switching versions");
            return Ok(Some(Stop::Moved(p.version)));
        }
        Ok(None)
    }

    async fn refresh_targets(&mut self) -> Result<()> {
        self.targets = catch_up_targets(self.w.lake, self.w.layout, &self.topic, self.mode).await?;
        Ok(())
    }

    /// Caught up with the live version: stop, or, with a promotion to make, commit and try it
    /// here, with the consumer still open. Returns whether to stop (false: the live version
    /// moved on, keep consuming).
    async fn on_caught_up(&mut self) -> Result<bool> {
        let Some(CatchUp {
            live,
            promote: Some(p),
        }) = self.mode.catch_up()
        else {
            return Ok(true);
        };
        let w = &mut *self.w;
        w.commit().await?;
        let table = TableHandle {
            cfg: w.table.clone(),
            lake: w.lake.clone(),
            layout: w.layout.clone(),
        };
        // The records are compared once, up to the offsets both versions hold the first time
        // the replay catches up (a diff reads both versions; repeating it at every catch-up
        // would never finish while the live version keeps committing). What arrives later is
        // written by both from the same source events.
        // A sharded rebuild: another shard may have promoted it already.
        if promoted_elsewhere(&table, w.version()).await? {
            return Ok(true);
        }
        let compare = p.require_same_rows && !*self.same_rows_checked;
        let outcome = match promote::promote_caught_up(
            &table,
            w.def,
            Some(live),
            p.expect_current,
            compare,
            p.allow_gap,
        )
        .await
        {
            Err(Error::Conflict { .. }) if promoted_elsewhere(&table, w.def.version).await? => {
                return Ok(true);
            }
            other => other?,
        };
        *self.same_rows_checked |= compare;
        match outcome {
            PromoteOutcome::Promoted(report) => {
                w.report.promoted = Some(report);
                Ok(true)
            }
            PromoteOutcome::Behind { .. } => {
                w.report.promoted = None;
                Ok(false)
            }
        }
    }
}

/// Stores, for every partition the version holds no offset for yet, the first offset at
/// or after `at_ms` (one commit with empty ranges), so the replay and every resumption of
/// it start there.
async fn seed_start(w: &mut VersionWriter<'_>, cfg: &KafkaSourceConfig, at_ms: i64) -> Result<()> {
    let seek_cfg = cfg.clone();
    let offsets = tokio::task::spawn_blocking(move || seek::offsets_at_time(&seek_cfg, at_ms))
        .await
        .map_err(|e| Error::Kafka {
            topic: cfg.topic.clone(),
            source: e.into(),
        })??;
    let positions = &w.log.state().positions;
    let ranges: BTreeMap<String, OffsetRange> = offsets
        .into_iter()
        .map(|(p, o)| (kafka_partition_key(&cfg.topic, p), o))
        .filter(|(key, _)| !positions.contains_key(key))
        .map(|(key, o)| {
            (
                key,
                OffsetRange {
                    start: o,
                    end: o,
                    end_byte: None,
                    eof: false,
                },
            )
        })
        .collect();
    if ranges.is_empty() {
        tracing::info!(table = %w.table.name, version = w.version(), "every partition already has a stored offset; resuming from those");
        return Ok(());
    }
    tracing::info!(table = %w.table.name, version = w.version(), from_ms = at_ms, starts = ?ranges.iter().map(|(k, r)| (k.as_str(), r.start)).collect::<Vec<_>>(), "starting the replay at the first events at or after the time");
    w.log
        .commit(PendingCommit {
            ranges,
            ..PendingCommit::default()
        })
        .await?;
    Ok(())
}

/// Start positions for newly assigned partitions: the version's stored offsets; for a
/// partition without one, the beginning if the version has offsets for others (so no
/// record is skipped), else the consumer's default (`auto.offset.reset`).
async fn assign(
    w: &mut VersionWriter<'_>,
    topic: &str,
    assigned: &mut BTreeMap<i32, Assigned>,
    partitions: &[i32],
) -> Result<Vec<(i32, StartAt)>> {
    w.log.refresh().await?;
    // A good moment to remove what a writer that died (e.g. the previous owner of these
    // partitions) wrote but never committed; live writers' files are kept.
    let live = lease::live_writers(w.lake, w.layout, w.version()).await?;
    let removed = w.log.remove_uncommitted(&live).await?;
    if removed > 0 {
        tracing::info!(table = %w.table.name, version = w.version(), removed, "removed files of a writer that is gone");
    }
    let positions = &w.log.state().positions;
    let prefix = format!("{topic}/");
    let has_offsets = positions.keys().any(|k| k.starts_with(&prefix));
    let mut starts = Vec::with_capacity(partitions.len());
    for &p in partitions {
        let stored = positions
            .get(&kafka_partition_key(topic, p))
            .map(|s| s.offset);
        assigned.insert(
            p,
            Assigned {
                expected: stored,
                at_end: false,
            },
        );
        starts.push((
            p,
            match stored {
                Some(o) => StartAt::Offset(o),
                None if has_offsets => StartAt::Beginning,
                None => StartAt::Default,
            },
        ));
    }
    Ok(starts)
}

/// Keeps the messages of assigned partitions at or after their expected offsets and
/// writes them, one batch per partition (decoded together, on both cores).
async fn accept(
    w: &mut VersionWriter<'_>,
    topic: &Arc<str>,
    assigned: &mut BTreeMap<i32, Assigned>,
    messages: Vec<KafkaMessage>,
) -> Result<()> {
    let max_record_bytes = w.table.source.max_record_bytes();
    // Per partition: where this consumer stood before the batch, and the records (each
    // partition's vector sized once: a burst holds thousands).
    let mut counts: BTreeMap<i32, usize> = BTreeMap::new();
    for m in &messages {
        *counts.entry(m.partition).or_default() += 1;
    }
    let mut by_partition: BTreeMap<i32, (Option<u64>, Vec<Record>)> = BTreeMap::new();
    for m in messages {
        let Some(state) = assigned.get_mut(&m.partition) else {
            continue;
        };
        let Ok(offset) = u64::try_from(m.offset) else {
            continue;
        };
        if state.expected.is_some_and(|e| offset < e) {
            w.report.skipped += 1;
            w.metrics.consumed(0, 1);
            continue;
        }
        let from = state.expected;
        state.expected = Some(offset + 1);
        state.at_end = false;
        // An oversized payload is kept whole (it is in memory already): its dead letter
        // keeps up to `MAX_RAW_KEPT` bytes, so `dead-letters replay` can land it once
        // `max_record_bytes` is raised.
        let len = m.payload.len();
        let oversized = (len > max_record_bytes).then_some(len as u64);
        let bytes = m.payload;
        let (_, records) = by_partition.entry(m.partition).or_insert_with(|| {
            (
                from,
                Vec::with_capacity(counts.get(&m.partition).copied().unwrap_or(0)),
            )
        });
        records.push(Record {
            bytes,
            oversized,
            offset,
            timestamp_ms: m.timestamp_ms,
            timestamp_type: m.timestamp_type,
            tombstone: m.tombstone,
            key: m.key,
            headers: m.headers,
        });
    }
    let mut batches = Vec::with_capacity(by_partition.len());
    for (p, (from, records)) in by_partition {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            continue;
        };
        let key = kafka_partition_key(topic, p);
        // The range starts where *this consumer* stood, not where the log says the
        // partition stands: they differ when another writer committed the partition while
        // we held it too (a rebalance in flight, a paused process), and the commit check
        // must then see the mismatch and refuse, rather than label our records with the
        // other writer's offsets (duplicates below its end, a gap above it).
        let start = from.unwrap_or(first.offset);
        let position = SourcePosition {
            offset: last.offset + 1,
            end_byte: None,
            eof: false,
        };
        let batch = SourceBatch {
            partition: key.into(),
            origin: Origin::Kafka {
                topic: topic.clone(),
                partition: p,
            },
            start,
            records,
            position,
        };
        w.report.records += batch.records.len() as u64;
        batches.push(batch);
    }
    w.write_all(batches).await
}

/// Next offsets per partition as stored in the version (for the consumer group).
fn group_offsets(
    w: &VersionWriter<'_>,
    topic: &str,
    assigned: Option<&BTreeMap<i32, Assigned>>,
) -> BTreeMap<i32, u64> {
    let prefix = format!("{topic}/");
    w.log
        .state()
        .positions
        .iter()
        .filter_map(|(k, pos)| Some((k.strip_prefix(&prefix)?.parse().ok()?, pos.offset)))
        .filter(|(p, _)| assigned.is_none_or(|a| a.contains_key(p)))
        .collect()
}

/// Whether `current` already names `version` (another shard of a sharded rebuild promoted
/// it).
async fn promoted_elsewhere(table: &TableHandle, version: u32) -> Result<bool> {
    let current = pointer::read(&table.lake, &table.layout)
        .await?
        .map(|p| p.version);
    if current == Some(version) {
        tracing::info!(table = %table.cfg.name, version, "already current (promoted by another shard)");
        return Ok(true);
    }
    Ok(false)
}

/// The live version's offsets for `topic`, by partition, when catching up with it.
async fn catch_up_targets(
    lake: &Lake,
    layout: &TableLayout,
    topic: &str,
    mode: Mode,
) -> Result<Option<BTreeMap<i32, u64>>> {
    let Some((version, format)) = mode.catch_up_with() else {
        return Ok(None);
    };
    let offsets = VersionLog::offsets_of(lake, layout, version, format).await?;
    let prefix = format!("{topic}/");
    Ok(Some(
        offsets
            .iter()
            .filter_map(|(k, o)| Some((k.strip_prefix(&prefix)?.parse().ok()?, *o)))
            .collect(),
    ))
}

/// Whether every assigned partition has reached its target (partitions without one: any
/// position).
fn caught_up(assigned: &BTreeMap<i32, Assigned>, targets: Option<&BTreeMap<i32, u64>>) -> bool {
    let Some(targets) = targets else {
        return false;
    };
    !assigned.is_empty()
        && assigned.iter().all(|(p, a)| {
            targets
                .get(p)
                .is_none_or(|t| a.expected.is_some_and(|e| e >= *t) || *t == 0)
        })
}

/// Where a Kafka partition assigned to us stands.
#[derive(Debug, Clone, Copy)]
struct Assigned {
    /// The next offset we accept; lower offsets were seen already.
    expected: Option<u64>,
    /// Reached the partition's end with nothing after it yet.
    at_end: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(expected: Option<u64>) -> Assigned {
        Assigned {
            expected,
            at_end: false,
        }
    }

    #[test]
    fn caught_up_needs_targets_and_every_partition_at_its_target() {
        let assigned = BTreeMap::from([(0, at(Some(5))), (1, at(Some(2)))]);
        assert!(
            !caught_up(&assigned, None),
            "no live version: never caught up"
        );
        assert!(!caught_up(&BTreeMap::new(), Some(&BTreeMap::new())));
        let targets = BTreeMap::from([(0, 5), (1, 3)]);
        assert!(
            !caught_up(&assigned, Some(&targets)),
            "partition 1 is behind"
        );
        let targets = BTreeMap::from([(0, 5), (1, 2)]);
        assert!(caught_up(&assigned, Some(&targets)));
        // A partition without a target, or with target 0, is caught up at any position.
        let assigned = BTreeMap::from([(0, at(None)), (1, at(Some(9)))]);
        assert!(caught_up(&assigned, Some(&BTreeMap::from([(0, 0)]))));
        assert!(!caught_up(&assigned, Some(&BTreeMap::from([(0, 1)]))));
    }
}
