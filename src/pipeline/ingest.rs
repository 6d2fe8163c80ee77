//! Materializing a source into one version: decode → transform → event time → partitioned
//! Parquet → commit (files + dead letters + offsets) → advisory offset commit (Kafka). Also
//! `dead-letters replay` ([`replay_dead_letters`]), which feeds a version's dead letters through
//! the same path.
//!
//! The loop resumes from the offsets stored in the version's commit log. It first deletes
//! files that no commit lists and whose writer is gone (see [`lease`]); it commits at least
//! every `max_age` (also when nothing new arrived: idle flush), when buffers reach
//! `max_buffer_bytes`, before giving up Kafka partitions, at the end of the source and on
//! shutdown. Every commit closes the open files, so a commit's offsets cover exactly the rows
//! in the files it lists.
//!
//! Kafka: each assigned partition starts at the offset stored in the version (the consumer
//! group's offsets are only advice), and records below the partition's expected offset are
//! dropped as already seen. When another writer committed a partition's offsets first, the
//! commit log refuses ours: the uncommitted files are deleted and the consumer restarts from
//! the stored offsets, so nothing is committed twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::Format;
use crate::config::{BadRecords, KafkaSourceConfig, SourceConfig, TableConfig};
use crate::decode::json::Decoded;
use crate::decode::{DeadLetter, DeadLetterBuffer, RecordDecoder, Stage};
use crate::error::{Error, Result};
use crate::failpoints::crash_point;
use crate::metrics::{CommitFigures, Metrics, VersionMetrics};
use crate::pipeline::handle::TableHandle;
use crate::pipeline::progress::Progress;
use crate::pipeline::promote::{self, MoveReport, PromoteOutcome};
use crate::pipeline::shape::Shaper;
use crate::registry::SchemaRegistry;
use crate::shutdown::Shutdown;
use crate::source::files::FilesSource;
use crate::source::kafka::{Event, KafkaMessage, KafkaSource, Membership, StartAt};
use crate::source::{Origin, Record, SourceBatch, kafka_partition_key, seek};
use crate::storage::Lake;
use crate::table::pointer;
use crate::table::{TableLayout, VersionDefinition};
use crate::write::commit::OffsetRange;
use crate::write::lease::{self, PartitionMetrics, WriterLease, WriterState};
use crate::write::{self, FileWriter, PendingCommit, SourcePosition, VersionLog};

/// What one materialization did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestReport {
    /// Table name.
    pub table: String,
    /// Version written.
    pub version: u32,
    /// Records read from the source.
    pub records: u64,
    /// Records dropped because the version already held them.
    pub skipped: u64,
    /// Rows committed.
    pub rows: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// Bad records dropped (`bad_records = "skip"`).
    pub bad_records_skipped: u64,
    /// Commits made.
    pub commits: u64,
    /// Data files committed.
    pub files: u64,
    /// Uncommitted files from an earlier crash that were removed at start.
    pub removed_uncommitted: usize,
    /// Commits refused because another writer committed the same offsets first.
    pub conflicts: u64,
    /// Whether it stopped because of a shutdown request.
    pub interrupted: bool,
    /// Kafka, following the pointer: `current` moved to this version, so this one stopped.
    pub moved_to: Option<u32>,
    /// Kafka, catching up: every partition reached the live version's offsets.
    pub caught_up: bool,
    /// The promotion made when caught up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted: Option<MoveReport>,
}

/// Why a materialization stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Shutdown requested.
    Interrupted,
    /// The source's end (files; Kafka with `stop_at_end`).
    End,
    /// Caught up with the live version's offsets.
    CaughtUp,
    /// `current` names another version now.
    Moved(u32),
}

/// What a materialization is for, and so how it reads Kafka and when it ends (a files source
/// always reads its files to their end). Each mode carries exactly what it needs.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// The version `current` names, written by `run`: joins the version's consumer group,
    /// stops when `current` names another version, and decides whether the table is ready.
    Live {
        /// Kafka: stop once every assigned partition has reached its end.
        stop_at_end: bool,
    },
    /// A version `run` moved away from, kept writable for `versions.retain_previous`: its own
    /// consumer group, without following `current`.
    Retained {
        /// Kafka: stop once every assigned partition has reached its end.
        stop_at_end: bool,
    },
    /// A rebuild's replay: every partition by explicit assignment (no consumer group).
    Rebuild(RebuildRead),
}

/// How a rebuild's replay reads and when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct RebuildRead {
    /// Catch up with the live version; `None` (no live version): stop at the topic's end.
    pub catch_up: Option<CatchUp>,
    /// Show progress: a bar on a terminal, plain lines otherwise.
    pub progress: bool,
    /// Partitions without a stored offset start at the first message at or after this time
    /// (ms since the epoch) instead of the earliest retained one (`rebuild --from`).
    pub start_from_ms: Option<i64>,
}

/// A replay catching up with the live version.
#[derive(Debug, Clone, Copy)]
pub struct CatchUp {
    /// The live version and its format: stop once every partition has reached the offsets
    /// stored in it, re-read after every commit.
    pub live: (u32, Format),
    /// Promote this version when caught up (and keep consuming if the live version moved on
    /// meanwhile); `None`: stop when caught up.
    pub promote: Option<PromoteOnCatchUp>,
}

impl Mode {
    /// Kafka: stop once every assigned partition has reached its end.
    fn stop_at_end(&self) -> bool {
        match self {
            Mode::Live { stop_at_end } | Mode::Retained { stop_at_end } => *stop_at_end,
            Mode::Rebuild(r) => r.catch_up.is_none(),
        }
    }

    /// Kafka: join the version's consumer group, or assign every partition.
    fn membership(&self) -> Membership {
        match self {
            Mode::Live { .. } | Mode::Retained { .. } => Membership::Group,
            Mode::Rebuild(_) => Membership::Assign,
        }
    }

    /// Kafka: stop when `current` names another version.
    fn follows_pointer(&self) -> bool {
        matches!(self, Mode::Live { .. })
    }

    fn catch_up(&self) -> Option<CatchUp> {
        match self {
            Mode::Rebuild(r) => r.catch_up,
            _ => None,
        }
    }

    fn catch_up_with(&self) -> Option<(u32, Format)> {
        self.catch_up().map(|c| c.live)
    }

    fn progress(&self) -> bool {
        matches!(self, Mode::Rebuild(r) if r.progress)
    }

    fn start_from_ms(&self) -> Option<i64> {
        match self {
            Mode::Rebuild(r) => r.start_from_ms,
            _ => None,
        }
    }
}

/// How a rebuild promotes from inside its replay.
#[derive(Debug, Clone, Copy)]
pub struct PromoteOnCatchUp {
    /// Compare-and-swap: only if `current` is still this version.
    pub expect_current: Option<u32>,
    /// Refuse if the versions' records differ.
    pub require_same_rows: bool,
}

/// How often `run` looks at `current.json` (one small GET).
const POINTER_POLL: Duration = Duration::from_secs(2);
/// How often progress lines are printed when stdout is not a terminal.
const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(5);

/// Writes the records of `table`'s source into version `def`, until the source ends (files,
/// or Kafka with `stop_at_end`) or `shutdown` fires. Everything it logs carries the table and
/// the version (its span's fields; not named `version`, which delta-rs's kernel records into
/// whatever span is current).
#[tracing::instrument(name = "writer", skip_all, fields(table = %table.name, table_version = def.version))]
pub async fn materialize(
    lake: &Lake,
    layout: &TableLayout,
    def: &VersionDefinition,
    table: &TableConfig,
    mut shutdown: Shutdown,
    mode: Mode,
) -> Result<IngestReport> {
    let mut ingest = Ingest::open(lake, layout, def, table).await?;
    let outcome = match &table.source {
        SourceConfig::Files(cfg) => {
            let source = FilesSource::start(cfg, &ingest.log.state().positions)?;
            ingest
                .run_files(source, &mut shutdown)
                .await
                .map(|interrupted| {
                    if interrupted {
                        Stop::Interrupted
                    } else {
                        Stop::End
                    }
                })
        }
        SourceConfig::Kafka(cfg) => ingest.run_kafka(cfg, &mut shutdown, mode).await,
    };
    ingest.finish(outcome).await
}

/// What `dead-letters replay` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplayReport {
    /// The table.
    pub table: String,
    /// The version whose dead letters were replayed into it.
    pub version: u32,
    /// Dead letters read that an earlier replay had not handled.
    pub letters: u64,
    /// Of those, landed as rows now.
    pub replayed: u64,
    /// Dead letters an earlier replay handled (not read again).
    pub already_replayed: u64,
    /// Failing again, counted by `stage: reason`; they stay dead letters.
    pub still_failing: BTreeMap<String, u64>,
    /// Stored cut short (over 64 KiB): the source still holds them at their coordinates.
    pub truncated: u64,
    /// Commits made.
    pub commits: u64,
}

/// A dead-letter line, as far as replay needs it.
#[derive(serde::Deserialize)]
struct StoredLetter {
    source: String,
    offset: u64,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    raw_base64: Option<String>,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    timestamp_ms: Option<i64>,
}

/// `dead-letters replay`: decodes version `version`'s committed dead letters again with what
/// the table has now (its settings such as `max_record_bytes`, the registry's schemas, an
/// in-place schema evolution) and commits the ones that now materialize into the same
/// version, with their original source coordinates, exactly once.
///
/// Each dead-letter file is a position key `_replay/v<N>/<file>` counting its lines, committed
/// atomically with the rows, like a source partition's offsets: a replay that crashed resumes
/// where its last commit ended, and a second replay reads only what no replay handled yet.
/// Letters that fail again are counted, not dead-lettered twice. These keys are not the
/// source's: status, catch-up and promotion ignore them. A new version (a rebuild) does not
/// need this: it reads the source itself.
pub async fn replay_dead_letters(handle: &TableHandle, version: u32) -> Result<ReplayReport> {
    let (lake, layout, table) = (&handle.lake, &handle.layout, &handle.cfg);
    let def = crate::table::version::load(lake, layout, version)
        .await?
        .ok_or_else(|| Error::Refused(format!("table `{}` has no v{version}", table.name)))?;
    let mut ingest = Ingest::open(lake, layout, &def, table).await?;
    ingest.replay_failures = Some(BTreeMap::new());
    let mut report = ReplayReport {
        table: table.name.clone(),
        version,
        ..ReplayReport::default()
    };
    let outcome = ingest.replay_files(&mut report).await;
    report.still_failing = ingest.replay_failures.take().unwrap_or_default();
    let ingested = ingest.finish(outcome.map(|()| Stop::End)).await?;
    report.replayed = ingested.rows;
    report.commits = ingested.commits;
    Ok(report)
}

impl Ingest<'_> {
    async fn replay_files(&mut self, report: &mut ReplayReport) -> Result<()> {
        let version = self.version();
        let mut files: Vec<String> = self.log.state().dead_letter_files.iter().cloned().collect();
        files.sort();
        for name in files {
            let key = format!("{}v{version}/{name}", write::REPLAY_KEY_PREFIX);
            let done = self.log.state().positions.get(&key).map_or(0, |p| p.offset) as usize;
            let path = self.layout.dead_letter_dir(version).join(name.as_str());
            let bytes = self.lake.read_all(&path).await?;
            let lines: Vec<&[u8]> = bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            report.already_replayed += done.min(lines.len()) as u64;
            let mut batch: Option<SourceBatch> = None;
            for (i, line) in lines.iter().enumerate().skip(done) {
                let letter: StoredLetter =
                    serde_json::from_slice(line).map_err(|e| Error::Corrupt {
                        path: path.clone(),
                        reason: format!("line {}: not a dead letter: {e}", i + 1),
                    })?;
                report.letters += 1;
                if let Some(b) = batch.take_if(|b| *b.partition != *letter.source) {
                    self.replay_batch(b, &key).await?;
                }
                let b = batch.get_or_insert_with(|| self.replay_batch_of(&letter.source, i));
                b.position.offset = i as u64 + 1;
                if letter.truncated {
                    report.truncated += 1;
                    continue;
                }
                let raw = match (letter.raw, letter.raw_base64) {
                    (Some(text), _) => bytes::Bytes::from(text),
                    (None, Some(b64)) => {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .map_err(|e| Error::Corrupt {
                                path: path.clone(),
                                reason: format!("line {}: raw_base64: {e}", i + 1),
                            })?
                            .into()
                    }
                    (None, None) => bytes::Bytes::new(),
                };
                b.records.push(Record {
                    bytes: raw,
                    oversized: None,
                    offset: letter.offset,
                    timestamp_ms: letter.timestamp_ms,
                    key: None,
                    headers: None,
                });
            }
            if let Some(b) = batch.take() {
                self.replay_batch(b, &key).await?;
            }
            self.commit().await?;
        }
        Ok(())
    }

    /// An empty batch of letters from `source`, starting at line `line` of its file.
    fn replay_batch_of(&self, source: &str, line: usize) -> SourceBatch {
        let kafka = match (&self.table.source, source.rsplit_once('/')) {
            (SourceConfig::Kafka(_), Some((topic, p))) => p.parse::<i32>().ok().map(|p| (topic, p)),
            _ => None,
        };
        let origin = match kafka {
            Some((topic, partition)) => Origin::Kafka {
                topic: topic.into(),
                partition,
            },
            None => Origin::File,
        };
        SourceBatch {
            partition: source.into(),
            origin,
            start: line as u64,
            records: Vec::new(),
            position: SourcePosition {
                offset: line as u64,
                end_byte: None,
                eof: false,
            },
        }
    }

    async fn replay_batch(&mut self, batch: SourceBatch, key: &str) -> Result<()> {
        self.decoder
            .resolve(&batch.records, self.registry.as_ref())
            .await?;
        let decoded = self.decoder.decode(&batch.records);
        self.write_decoded(&batch, decoded, key).await
    }
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

/// Progress of a replay, shown as a bar on a terminal and as lines otherwise.
struct ProgressView {
    version: u32,
    progress: Progress,
    started: Instant,
    bar: Option<indicatif::ProgressBar>,
    last_line: Option<Instant>,
}

impl ProgressView {
    fn new(version: u32) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} v{prefix} [{bar:30}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(version.to_string());
            bar
        });
        ProgressView {
            version,
            progress: Progress::default(),
            started: Instant::now(),
            bar,
            last_line: None,
        }
    }

    /// Snapshots each partition's span: from its start to the live version's offset (or the
    /// high watermark when there is no live version).
    fn assigned(
        &mut self,
        starts: &[(i32, StartAt)],
        targets: &Option<BTreeMap<i32, u64>>,
        high: &BTreeMap<i32, i64>,
    ) {
        for (p, at) in starts {
            let start = match at {
                StartAt::Offset(o) => *o,
                StartAt::Beginning | StartAt::Default => 0,
            };
            let target = match targets {
                Some(t) => t.get(p).copied().unwrap_or(0),
                None => high.get(p).map_or(0, |h| u64::try_from(*h).unwrap_or(0)),
            };
            self.progress.span(*p, start, target);
        }
    }

    fn messages(&mut self, messages: &[KafkaMessage]) {
        for m in messages {
            let next = u64::try_from(m.offset).unwrap_or(0) + 1;
            self.progress
                .advance(m.partition, next, m.payload.len() as u64);
        }
    }

    fn tick(&mut self) {
        self.progress.sample(self.started.elapsed().as_secs_f64());
        let line = self.progress.line();
        match &self.bar {
            Some(bar) => {
                bar.set_length(self.progress.total());
                bar.set_position(self.progress.done());
                bar.set_message(line);
            }
            None => {
                if self
                    .last_line
                    .is_none_or(|t| t.elapsed() >= PROGRESS_LINE_EVERY)
                {
                    self.last_line = Some(Instant::now());
                    println!("rebuild v{}: {line}", self.version);
                }
            }
        }
    }
}

impl Drop for ProgressView {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        println!("rebuild v{}: {}", self.version, self.progress.line());
    }
}

/// Where a Kafka partition assigned to us stands.
#[derive(Debug, Clone, Copy)]
struct Assigned {
    /// The next offset we accept; lower offsets were seen already.
    expected: Option<u64>,
    /// Reached the partition's end with nothing after it yet.
    at_end: bool,
}

/// Uncommitted offsets and dead letters (the rows are in the writer's files).
#[derive(Default)]
struct Pending {
    ranges: BTreeMap<String, OffsetRange>,
    dead_letters: DeadLetterBuffer,
}

/// One writer of one version.
struct Ingest<'a> {
    lake: &'a Lake,
    layout: &'a TableLayout,
    def: &'a VersionDefinition,
    table: &'a TableConfig,
    log: VersionLog,
    writer: FileWriter,
    decoder: RecordDecoder,
    /// Where Confluent-framed records' writer schemas are looked up.
    registry: Option<SchemaRegistry>,
    shaper: Shaper,
    pending: Pending,
    report: IngestReport,
    lease: WriterLease,
    /// `require_same_rows`: the versions' records were compared (and matched).
    same_rows_checked: bool,
    /// `dead-letters replay`: records failing again are counted here (by `stage: reason`)
    /// instead of becoming dead letters a second time.
    replay_failures: Option<BTreeMap<String, u64>>,
    metrics: VersionMetrics,
}

impl<'a> Ingest<'a> {
    async fn open(
        lake: &'a Lake,
        layout: &'a TableLayout,
        def: &'a VersionDefinition,
        table: &'a TableConfig,
    ) -> Result<Ingest<'a>> {
        let version = def.version;
        let ttl = (table.writer.max_age.as_secs() * 3).max(30);
        let mut lease = WriterLease::new(ttl);
        let event_schema = def.definition.event_schema()?.arrow;
        let decoder = RecordDecoder::for_source(
            &table.source,
            &def.definition.schema.to_string(),
            event_schema.clone(),
        )?;
        let registry = match &table.source {
            SourceConfig::Kafka(k) => k.registry.as_deref().map(SchemaRegistry::new).transpose()?,
            SourceConfig::Files(_) => None,
        };
        let shaper = Shaper::new(&event_schema, &def.definition)?;
        let (log, writer) = write::open_for_writing(
            lake,
            layout,
            def,
            shaper.output_schema(),
            &table.writer,
            &lease.writer,
        )
        .await?;
        let live = lease::live_writers(lake, layout, version).await?;
        let removed = log.remove_uncommitted(&live).await?;
        if removed > 0 {
            tracing::info!(table = %layout.table(), version, removed, "removed files no commit lists (their writer is gone)");
        }
        lease.refresh(lake, layout, version).await?;
        lease::prune(lake, layout, version).await?;
        tracing::info!(table = %layout.table(), version, writer = %lease.writer, "writer started");
        Ok(Ingest {
            lake,
            layout,
            def,
            table,
            log,
            writer,
            decoder,
            registry,
            shaper,
            pending: Pending::default(),
            report: IngestReport {
                table: table.name.clone(),
                version,
                removed_uncommitted: removed,
                ..Default::default()
            },
            lease,
            same_rows_checked: false,
            replay_failures: None,
            metrics: Metrics::global().version(&table.name, version),
        })
    }

    fn version(&self) -> u32 {
        self.def.version
    }

    fn over_budget(&self) -> bool {
        let budget = self.table.writer.max_buffer_bytes as usize;
        self.writer.buffered_bytes() > budget
            || self.pending.dead_letters.buffered_bytes() > budget / 4
    }

    /// Memory held by what is not committed yet.
    fn buffered_bytes(&self) -> usize {
        self.writer.buffered_bytes() + self.pending.dead_letters.buffered_bytes()
    }

    /// Records the end of the run in the lease; hands back the report.
    async fn finish(mut self, outcome: Result<Stop>) -> Result<IngestReport> {
        self.lease.state = WriterState::Stopped;
        self.sync_metrics(None);
        if let Err(e) = self
            .lease
            .refresh(self.lake, self.layout, self.version())
            .await
        {
            tracing::warn!(error = %e, "could not record the end of the run in the writer lease");
        }
        if outcome.is_err() {
            self.remove_own_uncommitted().await;
        }
        match outcome? {
            Stop::Interrupted => self.report.interrupted = true,
            Stop::End => {}
            Stop::CaughtUp => self.report.caught_up = true,
            Stop::Moved(v) => self.report.moved_to = Some(v),
        }
        Ok(self.report)
    }

    /// Stopping on an error (e.g. a full disk): deletes the files this writer wrote but could
    /// not commit, which a path glob would see until the next writer's start removes them. The
    /// log is re-read first, so a commit whose outcome was unknown and that did land keeps its
    /// files; other live writers' files are kept. Best effort: a failure is only logged.
    async fn remove_own_uncommitted(&mut self) {
        let result = async {
            self.log.refresh().await?;
            let mut others = lease::live_writers(self.lake, self.layout, self.version()).await?;
            others.remove(&self.lease.writer);
            self.log.remove_uncommitted(&others).await
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(table = %self.table.name, version = self.version(), removed, "removed the files no commit lists");
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not remove the files no commit lists; the next writer removes them at its start");
            }
        }
    }

    fn sync_metrics(&mut self, partitions: Option<BTreeMap<String, PartitionMetrics>>) {
        let m = &mut self.lease.metrics;
        m.events_in = self.report.records;
        m.events_skipped = self.report.skipped;
        m.rows_written = self.report.rows;
        m.dead_lettered = self.report.dead_letters;
        m.files = self.report.files;
        m.commits = self.report.commits;
        m.conflicts = self.report.conflicts;
        if let Some(p) = partitions {
            m.partitions = p;
        }
    }

    /// Refreshes the lease, with the run's metrics. A failure is logged, not fatal: the next
    /// commit checks the lease is still fresh.
    async fn heartbeat(&mut self, partitions: Option<BTreeMap<String, PartitionMetrics>>) {
        self.sync_metrics(partitions);
        if let Err(e) = self
            .lease
            .refresh(self.lake, self.layout, self.version())
            .await
        {
            tracing::warn!(error = %e, "could not refresh the writer lease");
        }
    }

    /// Files source: until the end of the files or shutdown. Returns whether interrupted.
    async fn run_files(&mut self, source: FilesSource, shutdown: &mut Shutdown) -> Result<bool> {
        let max_age = self.table.writer.max_age;
        let mut deadline = Instant::now() + max_age;
        let mut decoded = DecodeAhead::start(source, self.decoder.clone());
        // A files source is one partition, held from the start.
        self.metrics.assigned(1);
        let interrupted = loop {
            let next = tokio::select! {
                biased;
                () = shutdown.wait() => break true,
                () = tokio::time::sleep_until(deadline) => None,
                b = decoded.next() => match b {
                    Some(b) => Some(b?),
                    None => break false,
                },
            };
            if let Some((batch, events)) = next {
                self.report.records += batch.records.len() as u64;
                self.write_decoded(&batch, events, &batch.partition).await?;
            }
            if Instant::now() >= deadline || self.over_budget() {
                self.commit().await?;
                self.heartbeat(None).await;
                deadline = Instant::now() + max_age;
            }
        };
        self.commit().await?;
        Ok(interrupted)
    }

    /// Kafka: until shutdown (or the end, with `stop_at_end`). A commit refused because
    /// another writer got there first restarts the consumer from the stored offsets.
    async fn run_kafka(
        &mut self,
        cfg: &KafkaSourceConfig,
        shutdown: &mut Shutdown,
        mode: Mode,
    ) -> Result<Stop> {
        if let Some(at_ms) = mode.start_from_ms() {
            self.seed_start(cfg, at_ms).await?;
        }
        loop {
            let mut source = KafkaSource::start_with(cfg, self.version(), mode.membership())?;
            let outcome = self.kafka_session(&mut source, shutdown, mode).await;
            let outcome = match outcome {
                Ok(stop) => match self.commit().await {
                    Ok(()) => {
                        source.commit_to_group(&self.group_offsets(source.topic(), None));
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
                        table = %self.table.name, version = self.version(), %reason,
                        "another writer committed these offsets first: dropped the uncommitted data, re-reading from the version's offsets"
                    );
                    self.log.refresh().await?;
                }
                other => return other,
            }
        }
    }

    /// Stores, for every partition the version holds no offset for yet, the first offset at
    /// or after `at_ms` (one commit with empty ranges), so the replay and every resumption of
    /// it start there.
    async fn seed_start(&mut self, cfg: &KafkaSourceConfig, at_ms: i64) -> Result<()> {
        let seek_cfg = cfg.clone();
        let offsets = tokio::task::spawn_blocking(move || seek::offsets_at_time(&seek_cfg, at_ms))
            .await
            .map_err(|e| Error::Kafka {
                topic: cfg.topic.clone(),
                reason: e.to_string(),
            })??;
        let positions = &self.log.state().positions;
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
            tracing::info!(table = %self.table.name, version = self.version(), "every partition already has a stored offset; resuming from those");
            return Ok(());
        }
        tracing::info!(table = %self.table.name, version = self.version(), from_ms = at_ms, starts = ?ranges.iter().map(|(k, r)| (k.as_str(), r.start)).collect::<Vec<_>>(), "starting the replay at the first events at or after the time");
        self.log
            .commit(PendingCommit {
                ranges,
                ..PendingCommit::default()
            })
            .await?;
        Ok(())
    }

    async fn kafka_session(
        &mut self,
        source: &mut KafkaSource,
        shutdown: &mut Shutdown,
        mode: Mode,
    ) -> Result<Stop> {
        let topic = source.topic().clone();
        let max_age = self.table.writer.max_age;
        let mut assigned: BTreeMap<i32, Assigned> = BTreeMap::new();
        let mut deadline = Instant::now() + max_age;
        let mut targets = catch_up_targets(self.lake, self.layout, &topic, mode).await?;
        let mut next_pointer_check = Instant::now() + POINTER_POLL;
        let mut progress = mode.progress().then(|| ProgressView::new(self.version()));
        // The live version's writer (the one following `current`) says whether the table is
        // ready; a replay or a previous version written beside it does not.
        self.metrics.decide_readiness(mode.follows_pointer());
        self.metrics.assigned(0);
        loop {
            let wake = if mode.follows_pointer() || progress.is_some() {
                deadline.min(next_pointer_check)
            } else {
                deadline
            };
            let event = tokio::select! {
                biased;
                () = shutdown.wait() => return Ok(Stop::Interrupted),
                () = tokio::time::sleep_until(wake) => None,
                e = source.next() => match e {
                    Some(e) => Some(e),
                    None => return Err(Error::Kafka {
                        topic: topic.to_string(),
                        reason: "the consumer thread stopped".into(),
                    }),
                },
            };
            match event {
                None => {}
                Some(Event::Messages(messages)) => {
                    if let Some(view) = &mut progress {
                        view.messages(&messages);
                    }
                    self.accept(&topic, &mut assigned, messages).await?;
                }
                Some(Event::Assigned { partitions, reply }) => {
                    let starts = self.assign(&topic, &mut assigned, &partitions).await?;
                    self.metrics.assigned(assigned.len());
                    tracing::info!(table = %self.table.name, version = self.version(), partitions = ?starts, "partitions assigned");
                    if let Some(view) = &mut progress {
                        view.assigned(&starts, &targets, &source.high_watermarks());
                    }
                    let _ = reply.send(starts);
                }
                Some(Event::Revoked { partitions, done }) => {
                    // Commit before giving the partitions up, so the next owner starts after
                    // our rows; if that fails the data is dropped and re-read by the owner.
                    let committed = self.commit().await;
                    crash_point!("kafka.revoke");
                    if committed.is_ok() {
                        source.commit_to_group(&self.group_offsets(&topic, Some(&assigned)));
                    }
                    for p in &partitions {
                        assigned.remove(p);
                        self.metrics.forget_lag(&kafka_partition_key(&topic, *p));
                    }
                    self.metrics.assigned(assigned.len());
                    tracing::info!(table = %self.table.name, version = self.version(), ?partitions, "partitions revoked");
                    let _ = done.send(());
                    committed?;
                }
                Some(Event::PartitionEnd(p)) => {
                    if let Some(a) = assigned.get_mut(&p) {
                        a.at_end = true;
                    }
                    // Caught up only when we hold every partition of the topic (a member
                    // that died may still hold some until its session expires).
                    let all = assigned.len() >= source.partition_count().max(1);
                    if mode.stop_at_end() && all && assigned.values().all(|a| a.at_end) {
                        return Ok(Stop::End);
                    }
                    if all && caught_up(&assigned, targets.as_ref()) {
                        if self.on_caught_up(mode).await? {
                            return Ok(Stop::CaughtUp);
                        }
                        targets = catch_up_targets(self.lake, self.layout, &topic, mode).await?;
                    }
                }
                Some(Event::Error(_)) => {}
            }
            if Instant::now() >= deadline || self.over_budget() {
                self.commit().await?;
                if !assigned.is_empty() && assigned.values().all(|a| a.at_end) {
                    // Caught up, nothing to commit: as ready as a writer gets.
                    self.metrics.committing();
                }
                source.commit_to_group(&self.group_offsets(&topic, Some(&assigned)));
                let metrics = self.partition_metrics(&topic, &assigned, source);
                for (partition, m) in &metrics {
                    if let Some(lag) = m.lag {
                        self.metrics.lag(partition, lag);
                    }
                }
                if let Some(t) = &targets {
                    self.metrics
                        .rebuild_progress(self.replay_progress(&topic, t));
                }
                self.heartbeat(Some(metrics)).await;
                deadline = Instant::now() + max_age;
                if targets.is_some() {
                    targets = catch_up_targets(self.lake, self.layout, &topic, mode).await?;
                    if assigned.len() >= source.partition_count().max(1)
                        && caught_up(&assigned, targets.as_ref())
                    {
                        if self.on_caught_up(mode).await? {
                            return Ok(Stop::CaughtUp);
                        }
                        targets = catch_up_targets(self.lake, self.layout, &topic, mode).await?;
                    }
                }
            }
            if Instant::now() >= next_pointer_check {
                next_pointer_check = Instant::now() + POINTER_POLL;
                if let Some(view) = &mut progress {
                    view.tick();
                }
                if mode.follows_pointer()
                    && let Some(p) = pointer::read(self.lake, self.layout).await?
                    && p.version != self.version()
                {
                    tracing::info!(table = %self.table.name, from = self.version(), to = p.version, "`current` moved: committing and switching versions");
                    return Ok(Stop::Moved(p.version));
                }
            }
        }
    }

    /// Caught up with the live version: stop, or, with a promotion to make, commit and try it
    /// here, with the consumer still open. Returns whether to stop (false: the live version
    /// moved on, keep consuming).
    async fn on_caught_up(&mut self, mode: Mode) -> Result<bool> {
        let Some(CatchUp {
            live,
            promote: Some(p),
        }) = mode.catch_up()
        else {
            return Ok(true);
        };
        self.commit().await?;
        let table = TableHandle {
            cfg: self.table.clone(),
            lake: self.lake.clone(),
            layout: self.layout.clone(),
        };
        // The records are compared once, up to the offsets both versions hold the first time
        // the replay catches up (a diff reads both versions; repeating it at every catch-up
        // would never finish while the live version keeps committing). What arrives later is
        // written by both from the same source events.
        let compare = p.require_same_rows && !self.same_rows_checked;
        let outcome =
            promote::promote_caught_up(&table, self.def, Some(live), p.expect_current, compare)
                .await?;
        self.same_rows_checked |= compare;
        match outcome {
            PromoteOutcome::Promoted(report) => {
                self.report.promoted = Some(report);
                Ok(true)
            }
            PromoteOutcome::Behind { .. } => {
                self.report.promoted = None;
                Ok(false)
            }
        }
    }

    /// Start positions for newly assigned partitions: the version's stored offsets; for a
    /// partition without one, the beginning if the version has offsets for others (so no
    /// record is skipped), else the consumer's default (`auto.offset.reset`).
    async fn assign(
        &mut self,
        topic: &str,
        assigned: &mut BTreeMap<i32, Assigned>,
        partitions: &[i32],
    ) -> Result<Vec<(i32, StartAt)>> {
        self.log.refresh().await?;
        // A good moment to remove what a writer that died (e.g. the previous owner of these
        // partitions) wrote but never committed; live writers' files are kept.
        let live = lease::live_writers(self.lake, self.layout, self.version()).await?;
        let removed = self.log.remove_uncommitted(&live).await?;
        if removed > 0 {
            tracing::info!(table = %self.table.name, version = self.version(), removed, "removed files of a writer that is gone");
        }
        let positions = &self.log.state().positions;
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
    /// writes them, one batch per partition.
    async fn accept(
        &mut self,
        topic: &Arc<str>,
        assigned: &mut BTreeMap<i32, Assigned>,
        messages: Vec<KafkaMessage>,
    ) -> Result<()> {
        let max_record_bytes = self.table.source.max_record_bytes();
        // Per partition: where this consumer stood before the batch, and the records.
        let mut by_partition: BTreeMap<i32, (Option<u64>, Vec<Record>)> = BTreeMap::new();
        for m in messages {
            let Some(state) = assigned.get_mut(&m.partition) else {
                continue;
            };
            let Ok(offset) = u64::try_from(m.offset) else {
                continue;
            };
            if state.expected.is_some_and(|e| offset < e) {
                self.report.skipped += 1;
                self.metrics.consumed(0, 1);
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
            let (_, records) = by_partition
                .entry(m.partition)
                .or_insert_with(|| (from, Vec::new()));
            records.push(Record {
                bytes,
                oversized,
                offset,
                timestamp_ms: m.timestamp_ms,
                key: m.key,
                headers: m.headers,
            });
        }
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
            self.report.records += batch.records.len() as u64;
            self.write(&batch).await?;
        }
        Ok(())
    }

    /// A replay's progress: the fraction of the target offsets (summed over partitions) that
    /// the version has committed.
    fn replay_progress(&self, topic: &str, targets: &BTreeMap<i32, u64>) -> f64 {
        let positions = &self.log.state().positions;
        let (mut done, mut total) = (0u64, 0u64);
        for (&p, &target) in targets {
            let at = positions
                .get(&kafka_partition_key(topic, p))
                .map_or(0, |s| s.offset);
            done += at.min(target);
            total += target;
        }
        if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        }
    }

    /// Next offsets per partition as stored in the version (for the consumer group).
    fn group_offsets(
        &self,
        topic: &str,
        assigned: Option<&BTreeMap<i32, Assigned>>,
    ) -> BTreeMap<i32, u64> {
        let prefix = format!("{topic}/");
        self.log
            .state()
            .positions
            .iter()
            .filter_map(|(k, pos)| Some((k.strip_prefix(&prefix)?.parse().ok()?, pos.offset)))
            .filter(|(p, _)| assigned.is_none_or(|a| a.contains_key(p)))
            .collect()
    }

    fn partition_metrics(
        &self,
        topic: &str,
        assigned: &BTreeMap<i32, Assigned>,
        source: &KafkaSource,
    ) -> BTreeMap<String, PartitionMetrics> {
        let high = source.high_watermarks();
        assigned
            .keys()
            .map(|&p| {
                let key = kafka_partition_key(topic, p);
                let position = self.log.state().positions.get(&key).map(|s| s.offset);
                let high_watermark = high.get(&p).copied();
                let lag = high_watermark.map(|h| {
                    (h - position.map_or(0, |o| i64::try_from(o).unwrap_or(i64::MAX))).max(0)
                });
                (
                    key,
                    PartitionMetrics {
                        position,
                        high_watermark,
                        lag,
                    },
                )
            })
            .collect()
    }

    /// Commits everything written since the last commit. A refused commit deletes its files
    /// and returns the conflict.
    async fn commit(&mut self) -> Result<()> {
        let started = Instant::now();
        let version = self.version();
        let (files, adds) = self.writer.finish().await?;
        let dead = self.pending.dead_letters.len() as u64;
        let dead_by_stage = self.pending.dead_letters.by_stage();
        let dead_letters = self
            .pending
            .dead_letters
            .flush(self.lake, self.layout, version, &self.lease.writer)
            .await?;
        let commit = PendingCommit {
            files,
            dead_letters: dead_letters.into_iter().collect(),
            ranges: std::mem::take(&mut self.pending.ranges),
            adds,
        };
        if commit.is_empty() {
            return Ok(());
        }
        crash_point!("ingest.after_files");
        let result = if self.lease.may_commit(chrono::Utc::now()) {
            self.log.commit(commit.clone()).await
        } else {
            Err(Error::Conflict {
                path: self.layout.writer_lease(version, &self.lease.writer),
                reason: "this writer's lease expired (was the process paused?); its files may have been removed".into(),
            })
        };
        let seq = match result {
            Ok(seq) => seq,
            Err(e) => {
                self.metrics.buffered(self.buffered_bytes());
                if matches!(e, Error::Conflict { .. }) {
                    self.report.conflicts += 1;
                    self.metrics.conflict();
                    delete_files(self.lake, self.layout, version, &commit).await?;
                }
                return Err(e);
            }
        };
        let rows: u64 = commit.files.iter().map(|f| f.rows).sum();
        let files = commit.files.len() as u64;
        self.metrics.committed(
            &CommitFigures {
                rows,
                bytes: commit.files.iter().map(|f| f.size).sum(),
                files,
                dead_letters: dead_by_stage,
            },
            started.elapsed(),
        );
        self.metrics.buffered(self.buffered_bytes());
        self.metrics.committing();
        self.report.commits += 1;
        self.report.rows += rows;
        self.report.files += files;
        self.report.dead_letters += dead;
        tracing::info!(table = %self.layout.table(), version, seq, rows, files, dead_letters = dead, "commit");
        crash_point!("ingest.after_commit");
        Ok(())
    }

    async fn write(&mut self, batch: &SourceBatch) -> Result<()> {
        self.decoder
            .resolve(&batch.records, self.registry.as_ref())
            .await?;
        let decoded = self.decoder.decode(&batch.records);
        self.write_decoded(batch, decoded, &batch.partition).await
    }

    /// [`Ingest::write`] of a batch already decoded; `key` is the position the batch advances
    /// (its source partition, or a replayed dead-letter file's key).
    async fn write_decoded(
        &mut self,
        batch: &SourceBatch,
        decoded: Decoded,
        key: &str,
    ) -> Result<()> {
        self.metrics.consumed(batch.records.len() as u64, 0);
        let range = self
            .pending
            .ranges
            .entry(key.to_string())
            .or_insert_with(|| OffsetRange {
                start: batch.start,
                end: batch.start,
                end_byte: None,
                eof: false,
            });
        let SourcePosition {
            offset,
            end_byte,
            eof,
        } = batch.position;
        range.end = offset;
        range.end_byte = end_byte;
        range.eof = eof;

        let dead = |index: usize, stage: Stage, reason: String| {
            let rec = &batch.records[index];
            DeadLetter {
                stage,
                reason,
                source: batch.partition.clone(),
                offset: rec.offset,
                raw: rec.bytes.clone(),
                raw_len: rec.oversized.unwrap_or(rec.bytes.len() as u64),
                timestamp_ms: rec.timestamp_ms,
                key: rec.key.clone(),
                headers: rec.headers.clone(),
            }
        };
        for r in decoded.rejected {
            self.reject(dead(r.index, r.stage, r.reason))?;
        }
        let mut rows = decoded.rows.as_slice();
        for events in decoded.batches {
            let (these, rest) = rows.split_at(events.num_rows());
            rows = rest;
            let mut rejected = Vec::new();
            let shaped = self
                .shaper
                .shape(events, batch, these, &mut |i, stage, reason| {
                    rejected.push(dead(i, stage, reason))
                })
                .map_err(|e| self.write_err(e))?
                .ok_or_else(|| {
                    Error::Refused(format!(
                        "version v{} was defined for another source kind",
                        self.def.version
                    ))
                })?;
            for letter in rejected {
                self.reject(letter)?;
            }
            self.writer.write(&shaped.batch, &shaped.buckets).await?;
        }
        self.metrics.buffered(self.buffered_bytes());
        Ok(())
    }

    /// A record that cannot be materialized, handled as the table's `bad_records` says.
    fn reject(&mut self, letter: DeadLetter) -> Result<()> {
        if let Some(failures) = &mut self.replay_failures {
            let reason = format!("{}: {}", letter.stage.as_str(), letter.reason);
            *failures.entry(reason).or_default() += 1;
            return Ok(());
        }
        match self.table.bad_records {
            BadRecords::DeadLetter => {
                self.pending.dead_letters.push(letter);
                Ok(())
            }
            BadRecords::Skip => {
                tracing::warn!(
                    table = %self.table.name,
                    version = self.version(),
                    source = %letter.source,
                    offset = letter.offset,
                    stage = letter.stage.as_str(),
                    reason = %letter.reason,
                    "bad record skipped"
                );
                self.metrics.skipped_bad_record(letter.stage);
                self.report.bad_records_skipped += 1;
                Ok(())
            }
            BadRecords::Fail => Err(Error::BadRecord {
                source_partition: letter.source.to_string(),
                offset: letter.offset,
                stage: letter.stage.as_str(),
                reason: letter.reason,
            }),
        }
    }

    fn write_err(&self, e: impl std::fmt::Display) -> Error {
        Error::Write {
            path: self.layout.version_dir(self.version()),
            reason: e.to_string(),
        }
    }
}

/// Deletes the files of a commit that was refused.
async fn delete_files(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
    commit: &PendingCommit,
) -> Result<()> {
    let data = commit
        .files
        .iter()
        .map(|f| layout.version_dir(version).join_rel(&f.path));
    let dead = commit
        .dead_letters
        .iter()
        .map(|f| layout.dead_letter_dir(version).join_rel(&f.path));
    for path in data.chain(dead) {
        lake.delete_if_exists(&path).await?;
    }
    Ok(())
}

/// Joins a relative path (with `/`) under a directory.
trait JoinRel {
    fn join_rel(&self, rel: &str) -> object_store::path::Path;
}

impl JoinRel for object_store::path::Path {
    fn join_rel(&self, rel: &str) -> object_store::path::Path {
        rel.split('/').fold(self.clone(), |p, part| p.join(part))
    }
}

/// A files source with JSON decoding one batch ahead of the writer, on the blocking pool: the
/// parse of batch N+1 overlaps the encoding of batch N, so a rebuild keeps both cores busy.
struct DecodeAhead {
    rx: mpsc::Receiver<Result<(SourceBatch, Decoded)>>,
    pump: tokio::task::JoinHandle<()>,
}

impl DecodeAhead {
    fn start(mut source: FilesSource, decoder: RecordDecoder) -> DecodeAhead {
        let (tx, rx) = mpsc::channel(1);
        let pump = tokio::spawn(async move {
            while let Some(next) = source.next().await {
                let item = match next {
                    Ok(batch) => {
                        let decoder = decoder.clone();
                        tokio::task::spawn_blocking(move || {
                            let decoded = decoder.decode(&batch.records);
                            (batch, decoded)
                        })
                        .await
                        .map_err(|e| Error::Refused(format!("decoding a batch failed: {e}")))
                    }
                    Err(e) => Err(e),
                };
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
        DecodeAhead { rx, pump }
    }

    async fn next(&mut self) -> Option<Result<(SourceBatch, Decoded)>> {
        self.rx.recv().await
    }
}

impl Drop for DecodeAhead {
    fn drop(&mut self) {
        // Stops reading (the source's thread ends when its channel closes).
        self.pump.abort();
    }
}
