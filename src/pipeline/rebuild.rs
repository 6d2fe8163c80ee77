//! `rebuild`: replay the whole source into a new version made from the config's definition,
//! then (optionally) promote it under the catch-up rule.
//!
//! A rebuild that finds a version it already started (same definition, never current) resumes
//! it from its stored offsets, so an interrupted rebuild continues where it stopped.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::pipeline::promote::{self, MoveReport, MoveRequest};
use crate::pipeline::{IngestReport, TableHandle, ingest};
use crate::shutdown::Shutdown;
use crate::source::kafka::Membership;
use crate::table::pointer;
use crate::table::version::{self, VersionState};

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    /// The materialization.
    pub ingest: IngestReport,
    /// Whether the version was resumed rather than created.
    pub resumed: bool,
    /// The promotion, when asked for and done.
    pub promoted: Option<MoveReport>,
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
        return Err(Error::Refused(format!(
            "live v{} of `{}` already has this definition (hash {hash}); nothing to rebuild (use --force to replay anyway)",
            current.unwrap_or_default(),
            table.cfg.name
        )));
    }
    let resumable = versions.iter().rev().find(|v| {
        v.definition_hash == hash && v.state == VersionState::Building && Some(v.version) != current
    });
    let (def, resumed) = match resumable {
        Some(v) => (v.clone(), true),
        None => {
            let next = versions.last().map_or(1, |v| v.version + 1);
            (version::create(lake, layout, next, wanted).await?, false)
        }
    };
    tracing::info!(table = %table.cfg.name, version = def.version, resumed, "rebuilding");
    // Every partition by explicit assignment (no consumer group), until the live version's
    // stored offsets are reached (the topic's end when there is no live version).
    let catch_up_with = live.map(|l| (l.version, l.definition.format));
    let read = ingest::IngestOptions {
        stop_at_end: catch_up_with.is_none(),
        membership: Membership::Assign,
        follow_pointer: false,
        catch_up_with,
        progress: opts.progress,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let ingest =
            ingest::materialize(lake, layout, &def, &table.cfg, shutdown.clone(), read).await?;
        if !opts.promote || ingest.interrupted {
            return Ok(RebuildReport {
                ingest,
                resumed,
                promoted: None,
            });
        }
        let req = MoveRequest {
            version: Some(def.version),
            force: false,
            expect_current: current,
            max_lag: 0,
        };
        match promote::promote(table, req).await {
            Ok(p) => {
                return Ok(RebuildReport {
                    ingest,
                    resumed,
                    promoted: Some(p),
                });
            }
            // The live version committed more while we checked: catch up again.
            Err(Error::Behind(reason)) if attempts < MAX_CATCH_UP_ROUNDS => {
                tracing::info!(table = %table.cfg.name, version = def.version, %reason, "the live version moved on; catching up again");
            }
            Err(e) => return Err(e),
        }
    }
}
