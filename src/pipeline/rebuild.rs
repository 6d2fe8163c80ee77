//! `rebuild`: replay the whole source into a new version made from the config's definition,
//! then (optionally) promote it under the catch-up rule.
//!
//! A rebuild that finds a version it already started (same definition, never current) resumes
//! it from its stored offsets, so an interrupted rebuild continues where it stopped.
//!
//! A Kafka table that names a raw archive (`[table.source] archive`) replays the archive first,
//! up to the offsets the archive stores, then the topic from exactly there. Before the topic is
//! read, every partition's position is checked against what the topic still holds: offsets
//! that neither the archive nor the topic holds refuse the rebuild (naming them) unless
//! `--allow-gap`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::Serialize;

use crate::config::{KafkaSourceConfig, SourceConfig};
use crate::domain::Shard;
use crate::error::{Error, Refusal, Result, Unsupported};
use crate::pipeline::archive::ArchiveReader;
use crate::pipeline::coverage;
use crate::pipeline::handle::TableHandle;
use crate::pipeline::ingest::{self, CatchUp, IngestReport, Mode, PromoteOnCatchUp, RebuildRead};
use crate::pipeline::promote::{self, MoveReport, PromoteOutcome};
use crate::shutdown::Shutdown;
use crate::table::pointer;
use crate::table::version::{self, VersionDefinition, VersionState};
use crate::write::VersionLog;

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    /// The materialization.
    pub ingest: IngestReport,
    /// Whether the version was resumed rather than created.
    pub resumed: bool,
    /// The promotion, when asked for and done.
    pub promoted: Option<MoveReport>,
    /// The records replayed from the raw archive (`<table> v<N>`) before the topic.
    pub archived: Option<(String, u64)>,
    /// Offset ranges neither the archive nor the topic held, accepted with `--allow-gap`.
    pub gaps: Vec<String>,
}

/// Options of a rebuild.
#[derive(Debug, Clone, Default)]
pub struct RebuildOptions {
    /// Promote when caught up.
    pub promote: bool,
    /// Rebuild even when the live version already has the config's definition.
    pub force: bool,
    /// Show progress (a bar on a terminal, lines otherwise).
    pub progress: bool,
    /// Refuse to promote when the new version's records differ from the live version's (up to
    /// the offsets both hold); see [`crate::pipeline::diff`].
    pub require_same_rows: bool,
    /// Where partitions without a stored offset start.
    pub from: ReplayFrom,
    /// Where the records come from.
    pub source: ReplaySource,
    /// The table's raw archive (`[table.source] archive`), opened.
    pub archive: Option<TableHandle>,
    /// Rebuild even where neither the archive nor the topic holds some offsets.
    pub allow_gap: bool,
    /// Only this shard's partitions (`--shard I/N`, Kafka): N processes build one version.
    pub shard: Option<Shard>,
}

/// Where a rebuild reads the records of a Kafka table from (`rebuild --source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplaySource {
    /// The raw archive first when the table names one (and it has a current version), then
    /// the topic. Without `--from`.
    #[default]
    Auto,
    /// The raw archive first, then the topic; refused when there is no archive to read.
    Archive,
    /// Only the topic.
    Topic,
}

impl std::str::FromStr for ReplaySource {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ReplaySource::Auto),
            "archive" => Ok(ReplaySource::Archive),
            "topic" => Ok(ReplaySource::Topic),
            other => Err(format!("`{other}` is not one of archive, topic, auto")),
        }
    }
}

/// Where a rebuild starts reading partitions the new version holds no offset for yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The earliest retained offset.
    #[default]
    Earliest,
    /// The first event at or after this time (Kafka sources).
    Time(DateTime<Utc>),
}

impl std::str::FromStr for ReplayFrom {
    type Err = String;

    /// `earliest`, an RFC 3339 time (`2026-11-01T00:00:00Z`), or a UTC date or date-time
    /// without zone (`2026-11-01`, `2026-11-01T06:00:00`).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        if s == "earliest" {
            return Ok(ReplayFrom::Earliest);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(ReplayFrom::Time(t.with_timezone(&Utc)));
        }
        if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
            return Ok(ReplayFrom::Time(t.and_utc()));
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(ReplayFrom::Time(d.and_time(NaiveTime::MIN).and_utc()));
        }
        Err(format!(
            "`{s}` is neither `earliest` nor a time like 2026-11-01T06:00:00Z or 2026-11-01 (UTC)"
        ))
    }
}

/// Catch-up rounds before giving up on a live version that keeps moving ahead.
const MAX_CATCH_UP_ROUNDS: u32 = 20;

/// Builds (or resumes) the next version of `table` and optionally promotes it.
pub async fn rebuild(
    table: &TableHandle,
    opts: RebuildOptions,
    shutdown: Shutdown,
) -> Result<RebuildReport> {
    let (lake, layout) = (&table.lake, &table.layout);
    let wanted = table.definition()?;
    let hash = wanted.hash()?;
    let current = pointer::read(lake, layout).await?.map(|p| p.version);
    let versions = version::list(lake, layout).await?;
    let live = versions.iter().find(|v| Some(v.version) == current);
    if live.is_some_and(|l| l.definition_hash == hash) && !opts.force {
        return Err(Refusal::AlreadyLive {
            table: table.cfg.name.clone(),
            version: current.unwrap_or_default(),
            hash,
        }
        .into());
    }
    // A shard is checked before a version is created for it.
    if let Some(shard) = opts.shard {
        let SourceConfig::Kafka(kafka) = &table.cfg.source else {
            return Err(Unsupported::ShardedFiles {
                table: table.cfg.name.clone(),
            }
            .into());
        };
        if opts.promote && live.is_none() {
            return Err(Unsupported::ShardedFirstVersion {
                table: table.cfg.name.clone(),
                shard,
            }
            .into());
        }
        let partitions = coverage::watermarks(kafka, None).await?.len();
        if !(0..partitions).any(|p| i32::try_from(p).is_ok_and(|p| shard.holds(p))) {
            return Err(Unsupported::EmptyShard {
                table: table.cfg.name.clone(),
                shard,
                partitions,
            }
            .into());
        }
    }
    let resumable = versions.iter().rev().find(|v| {
        v.definition_hash == hash && v.state == VersionState::Building && Some(v.version) != current
    });
    let (def, resumed) = match resumable {
        Some(v) => (v.clone(), true),
        None => {
            let next = versions.last().map_or(1, |v| v.version + 1);
            match version::create(lake, layout, next, wanted).await {
                Ok(def) => (def, false),
                // Shards started together: the one that created it first is joined.
                Err(Error::Conflict { .. })
                    if let Some(v) = version::load(lake, layout, next).await?
                        && v.definition_hash == hash =>
                {
                    (v, true)
                }
                Err(e) => return Err(e),
            }
        }
    };
    let start_from_ms = match opts.from {
        ReplayFrom::Earliest => None,
        ReplayFrom::Time(_) if !matches!(table.cfg.source, SourceConfig::Kafka(_)) => {
            return Err(Unsupported::SeekByTime {
                table: table.cfg.name.clone(),
            }
            .into());
        }
        ReplayFrom::Time(t) => Some(t.timestamp_millis()),
    };
    tracing::info!(table = %table.cfg.name, version = def.version, resumed, "rebuilding");
    // Every partition by explicit assignment (no consumer group), until the live version's
    // stored offsets are reached (the topic's end when there is no live version).
    let read = Mode::Rebuild(RebuildRead {
        catch_up: live.map(|l| CatchUp {
            live: (l.version, l.definition.format),
            // Promote from inside the replay, with its consumer still open: a live version
            // that commits again meanwhile is caught up with without restarting.
            promote: opts.promote.then_some(PromoteOnCatchUp {
                expect_current: current,
                require_same_rows: opts.require_same_rows,
                allow_gap: opts.allow_gap,
            }),
        }),
        progress: opts.progress,
        start_from_ms,
        shard: opts.shard,
    });
    let mut archived = None;
    let mut gaps = Vec::new();
    if let SourceConfig::Kafka(kafka) = &table.cfg.source {
        let archive = open_archive(table, kafka, &opts).await?;
        // Checked before any work: what neither the archive nor the topic holds.
        if start_from_ms.is_none() {
            gaps = missing(table, &def, kafka, archive.as_ref(), opts.shard).await?;
            if !gaps.is_empty() && !opts.allow_gap {
                return Err(Refusal::Gap {
                    table: table.cfg.name.clone(),
                    version: def.version,
                    gaps,
                }
                .into());
            }
            if !gaps.is_empty() {
                version::record_gaps(lake, layout, def.version, &gaps).await?;
                tracing::warn!(table = %table.cfg.name, version = def.version, gaps = %gaps.join(", "), "rebuilding with a gap (--allow-gap)");
            }
        }
        if let Some(archive) = archive {
            let report = ingest::replay_archive(
                lake,
                layout,
                &def,
                &table.cfg,
                (&archive, opts.shard),
                shutdown.clone(),
            )
            .await?;
            archived = Some((archive.label(), report.records));
            if report.interrupted {
                return Ok(RebuildReport {
                    ingest: report,
                    resumed,
                    promoted: None,
                    archived,
                    gaps,
                });
            }
        }
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut ingest =
            ingest::materialize(lake, layout, &def, &table.cfg, shutdown.clone(), read).await?;
        if let Some(p) = ingest.promoted.take() {
            return Ok(RebuildReport {
                ingest,
                resumed,
                promoted: Some(p),
                archived,
                gaps,
            });
        }
        let now = pointer::read(lake, layout).await?.map(|p| p.version);
        if !opts.promote || ingest.interrupted || now == Some(def.version) {
            return Ok(RebuildReport {
                ingest,
                resumed,
                promoted: None,
                archived,
                gaps,
            });
        }
        if let PromoteOutcome::Promoted(p) = promote::promote_caught_up(
            table,
            &def,
            live.map(|l| (l.version, l.definition.format)),
            current,
            opts.require_same_rows,
            opts.allow_gap,
        )
        .await?
        {
            return Ok(RebuildReport {
                ingest,
                resumed,
                promoted: Some(p),
                archived,
                gaps,
            });
        }
        if attempts >= MAX_CATCH_UP_ROUNDS {
            return Err(Error::Behind(format!(
                "v{} did not catch up with the live version in {MAX_CATCH_UP_ROUNDS} rounds",
                def.version
            )));
        }
        tracing::info!(table = %table.cfg.name, version = def.version, "the live version moved on; catching up again");
    }
}

/// The archive a rebuild of a Kafka table replays first, as `--source` and the config say.
async fn open_archive(
    table: &TableHandle,
    kafka: &KafkaSourceConfig,
    opts: &RebuildOptions,
) -> Result<Option<ArchiveReader>> {
    let name = &table.cfg.name;
    let handle = match (opts.source, &opts.archive) {
        (ReplaySource::Topic, _) => return Ok(None),
        (ReplaySource::Auto, _) if !matches!(opts.from, ReplayFrom::Earliest) => return Ok(None),
        (ReplaySource::Auto, None) => return Ok(None),
        (ReplaySource::Archive, None) => {
            return Err(Unsupported::NoArchive {
                table: name.clone(),
                why: "it names none: set `[table.source] archive` to a raw table of its topic",
            }
            .into());
        }
        (_, Some(handle)) => handle,
    };
    let reader = ArchiveReader::open(handle, &kafka.topic).await?;
    if let Some(r) = &reader
        && let Err(e) = r.save_index().await
    {
        tracing::warn!(archive = %r.label(), error = %e, "cannot save the archive's index; the next rebuild reads its files again");
    }
    if reader.is_none() && opts.source == ReplaySource::Archive {
        return Err(Unsupported::NoArchive {
            table: name.clone(),
            why: "its archive has no current version yet: `run` writes it",
        }
        .into());
    }
    Ok(reader)
}

/// The offset ranges version `def` would miss, per partition of the topic (see
/// [`coverage::gaps`]), from where it stands.
async fn missing(
    table: &TableHandle,
    def: &VersionDefinition,
    kafka: &KafkaSourceConfig,
    archive: Option<&ArchiveReader>,
    shard: Option<Shard>,
) -> Result<Vec<String>> {
    let stored = VersionLog::offsets_of(
        &table.lake,
        &table.layout,
        def.version,
        def.definition.format,
    )
    .await?;
    let lows = coverage::watermarks(kafka, None)
        .await?
        .into_iter()
        .map(|(p, (low, _))| (p, low))
        .collect();
    Ok(coverage::gaps(&kafka.topic, &lows, &stored, archive, shard))
}
