//! Moving `current`: promotion of a caught-up version, and rollback.
//!
//! Catch-up rule: candidate C may replace live L only if, for every source partition L has
//! stored offsets for, C's stored offset is at least L's (or, with `--max-lag N` while nobody
//! writes L, at least the partition's high watermark minus N). Otherwise the move is refused with the
//! per-partition numbers, unless forced (logged loudly). The move itself is a compare-and-swap
//! on the pointer version that was read, so of two racing promoters exactly one wins.
//!
//! A candidate that has not caught up is not a failure here: moving the pointer returns
//! [`PromoteOutcome::Behind`]; only the CLI-facing [`promote`] and [`rollback`] turn it into
//! [`Error::Behind`] (its exit code and message). A rebuild promoting from inside its replay
//! uses [`promote_caught_up`], for which "behind" means "keep consuming".

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Format, SourceConfig};
use crate::error::{Error, Missing, Refusal, Result};
use crate::failpoints::crash_point;
use crate::pipeline::diff;
use crate::pipeline::handle::TableHandle;
use crate::pipeline::views;
use crate::source::{kafka_partition_key, seek};
use crate::table::version;
use crate::table::{Pointer, VersionDefinition, VersionState, pointer};
use crate::write::{VersionLog, lease};

/// How to move the pointer.
#[derive(Debug, Clone, Default)]
pub struct MoveRequest {
    /// Target version; default: the newest non-current version (promote) or the previous one
    /// (rollback).
    pub version: Option<u32>,
    /// Skip the catch-up rule.
    pub force: bool,
    /// Only move if current is this version (compare-and-swap for scripts).
    pub expect_current: Option<u32>,
    /// While nobody writes the current version: accept a target behind it if, per partition,
    /// it is at most this many offsets short of the topic's high watermark.
    pub max_lag: u64,
    /// Move to a version rebuilt with gaps (`rebuild --allow-gap`) too.
    pub allow_gap: bool,
}

/// What a pointer move did.
#[derive(Debug, Clone, Serialize)]
pub struct MoveReport {
    /// Table name.
    pub table: String,
    /// Version current before.
    pub from: Option<u32>,
    /// Version current after.
    pub to: u32,
    /// Offsets of the new current version at the move.
    pub offsets: BTreeMap<String, u64>,
}

/// What a pointer move came to: done, or refused because the target has not caught up.
#[derive(Debug, Clone)]
pub enum PromoteOutcome {
    /// `current` moved (or already named the target).
    Promoted(MoveReport),
    /// The target is behind the live version on some partitions; nothing moved.
    Behind {
        /// Why, per partition, as the user reads it.
        reason: String,
    },
}

impl PromoteOutcome {
    /// The move, or [`Error::Behind`] with the per-partition numbers.
    pub fn into_result(self) -> Result<MoveReport> {
        match self {
            PromoteOutcome::Promoted(r) => Ok(r),
            PromoteOutcome::Behind { reason } => Err(Error::Behind(reason)),
        }
    }
}

/// Partitions where `candidate` is behind `live`: `(partition, candidate, live)`.
pub fn lag(
    candidate: &BTreeMap<String, u64>,
    live: &BTreeMap<String, u64>,
) -> Vec<(String, u64, u64)> {
    live.iter()
        .filter_map(|(p, l)| {
            let c = candidate.get(p).copied().unwrap_or(0);
            (c < *l).then(|| (p.clone(), c, *l))
        })
        .collect()
}

/// High watermarks of a Kafka source by partition key (`None` for a files source).
async fn high_watermarks(source: &SourceConfig) -> Result<Option<BTreeMap<String, u64>>> {
    let SourceConfig::Kafka(cfg) = source else {
        return Ok(None);
    };
    let lookup = cfg.clone();
    let high = tokio::task::spawn_blocking(move || seek::high_watermarks(&lookup))
        .await
        .map_err(|e| Error::Kafka {
            topic: cfg.topic.clone(),
            source: e.into(),
        })??;
    Ok(Some(
        high.into_iter()
            .map(|(p, h)| (kafka_partition_key(&cfg.topic, p), h))
            .collect(),
    ))
}

/// Promotes a version (default: the newest that is not current). A target that has not
/// caught up is [`Error::Behind`].
pub async fn promote(table: &TableHandle, req: MoveRequest) -> Result<MoveReport> {
    move_pointer(table, req, Move::Promote).await?.into_result()
}

/// Moves the pointer back (default: to the previous version). A target that has not caught
/// up is [`Error::Behind`].
pub async fn rollback(table: &TableHandle, req: MoveRequest) -> Result<MoveReport> {
    move_pointer(table, req, Move::Rollback)
        .await?
        .into_result()
}

/// Which way a pointer move goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    /// To a newer (or a named) version.
    Promote,
    /// Back to the previous (or a named) version.
    Rollback,
}

impl Move {
    /// The word recorded in the pointer's `reason` and used in logs.
    fn as_str(self) -> &'static str {
        match self {
            Move::Promote => "promote",
            Move::Rollback => "rollback",
        }
    }
}

/// A rebuild's promotion of `def` once it has caught up with `live` (and, with
/// `require_same_rows`, holds the same records up to the offsets both hold). `current` is
/// compared-and-swapped: only if it still names that version.
pub async fn promote_caught_up(
    table: &TableHandle,
    def: &VersionDefinition,
    live: Option<(u32, Format)>,
    current: Option<u32>,
    require_same_rows: bool,
    allow_gap: bool,
) -> Result<PromoteOutcome> {
    crash_point!("rebuild.before_promote");
    let (lake, layout) = (&table.lake, &table.layout);
    if require_same_rows && let Some((a, live_format)) = live {
        let b = def.version;
        let live_offsets = VersionLog::offsets_of(lake, layout, a, live_format).await?;
        let ours = VersionLog::offsets_of(lake, layout, b, def.definition.format).await?;
        let limit: diff::Limit = live_offsets
            .iter()
            .map(|(k, o)| (k.clone(), (*o).min(ours.get(k).copied().unwrap_or(0))))
            .collect();
        let d = diff::diff(table, a, b, Some(&limit)).await?;
        if !d.same() {
            return Err(Refusal::NotSame {
                table: table.cfg.name.clone(),
                a,
                b,
                rows_a: d.total.a.rows,
                rows_b: d.total.b.rows,
            }
            .into());
        }
        tracing::info!(table = %table.cfg.name, a, b, rows = d.total.a.rows, "same records in both versions");
    }
    let req = MoveRequest {
        version: Some(def.version),
        force: false,
        expect_current: current,
        max_lag: 0,
        allow_gap,
    };
    let outcome = move_pointer(table, req, Move::Promote).await?;
    if let PromoteOutcome::Behind { reason } = &outcome {
        tracing::info!(table = %table.cfg.name, version = def.version, %reason, "not caught up yet");
    }
    Ok(outcome)
}

/// Moves `current` to the request's target under the catch-up rule.
async fn move_pointer(table: &TableHandle, req: MoveRequest, kind: Move) -> Result<PromoteOutcome> {
    let reason = kind.as_str();
    let (lake, layout) = (&table.lake, &table.layout);
    let name = &table.cfg.name;
    let current = pointer::read(lake, layout).await?;
    let from = current.as_ref().map(|p| p.version);
    if let Some(expected) = req.expect_current
        && from != Some(expected)
    {
        return Err(Error::Conflict {
            path: layout.pointer(),
            reason: format!(
                "expected current = v{expected} but found {}",
                from.map_or("none".into(), |v| format!("v{v}"))
            ),
        });
    }
    let target = match (req.version, kind) {
        (Some(v), _) => v,
        (None, Move::Rollback) => current.as_ref().and_then(|p| p.previous).ok_or_else(|| {
            Error::from(Missing::PreviousVersion {
                table: name.clone(),
            })
        })?,
        (None, Move::Promote) => version::list(lake, layout)
            .await?
            .iter()
            .rev()
            .map(|v| v.version)
            .find(|v| Some(*v) != from)
            .ok_or_else(|| {
                Error::from(Missing::OtherVersion {
                    table: name.clone(),
                })
            })?,
    };
    let Some(target_def) = version::load(lake, layout, target).await? else {
        return Err(Missing::TargetVersion {
            table: name.clone(),
            version: target,
        }
        .into());
    };
    if !req.allow_gap && Some(target) != from {
        let gaps = version::gaps(lake, layout, target).await?;
        if !gaps.is_empty() {
            return Err(Refusal::GappedVersion {
                table: name.clone(),
                version: target,
                gaps,
            }
            .into());
        }
    }
    // Offsets only: no need to read the versions' commit histories.
    let candidate =
        VersionLog::offsets_of(lake, layout, target, target_def.definition.format).await?;
    if Some(target) == from {
        tracing::info!(table = %name, version = target, "already current");
        return Ok(PromoteOutcome::Promoted(MoveReport {
            table: name.clone(),
            from,
            to: target,
            offsets: candidate,
        }));
    }
    if let Some(live) = from {
        let live_format = version::load(lake, layout, live)
            .await?
            .map_or(target_def.definition.format, |d| d.definition.format);
        let live_offsets = VersionLog::offsets_of(lake, layout, live, live_format).await?;
        let mut behind = lag(&candidate, &live_offsets);
        let mut why_no_allowance = String::new();
        if !behind.is_empty() && req.max_lag > 0 {
            // A bounded lag is accepted only while nobody writes the live version (its offsets
            // no longer move): then the target needs to be within max_lag of the log's end.
            let writers = lease::live_writers(lake, layout, live).await?;
            if !writers.is_empty() {
                why_no_allowance = format!(
                    " (--max-lag applies only while v{live} is not being written; {} writer(s) hold it now)",
                    writers.len()
                );
            } else if let Some(high) = high_watermarks(&table.cfg.source).await? {
                behind.retain(|(p, c, _)| {
                    high.get(p)
                        .is_none_or(|h| c.saturating_add(req.max_lag) < *h)
                });
            } else {
                why_no_allowance =
                    " (--max-lag needs a Kafka source: a files source has no high watermark)"
                        .into();
            }
        }
        if !behind.is_empty() {
            let detail: Vec<String> = behind
                .iter()
                .map(|(p, c, l)| format!("{p}: v{target} at {c}, v{live} at {l} (lag {})", l - c))
                .collect();
            if req.force {
                tracing::warn!(table = %name, version = target, lagging = %detail.join("; "), "FORCED {reason} of a version that has not caught up");
            } else {
                return Ok(PromoteOutcome::Behind {
                    reason: format!(
                        "v{target} has not caught up with v{live}: {}{why_no_allowance}; wait for it (or use --force)",
                        detail.join("; ")
                    ),
                });
            }
        }
    }
    let new = Pointer {
        version: target,
        previous: from,
        updated_at: lake.clock.now(),
        reason: reason.into(),
        offsets: candidate.clone(),
    };
    pointer::swap(lake, layout, from, &new).await?;
    tracing::info!(table = %name, from = ?from, to = target, "{reason}d");
    // Advisory states: the pointer is already the truth; a failure here is only logged.
    for (v, state) in [
        (Some(target), VersionState::Live),
        (from, VersionState::Retired),
    ] {
        if let Some(v) = v
            && let Err(e) = version::set_state(lake, layout, v, state).await
        {
            tracing::warn!(table = %name, version = v, error = %e, "could not record the version state");
        }
    }
    views::on_promote(table, from, target).await;
    Ok(PromoteOutcome::Promoted(MoveReport {
        table: name.clone(),
        from,
        to: target,
        offsets: candidate,
    }))
}
