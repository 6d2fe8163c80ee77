//! `vacuum`: deletes the data files of a Delta version that no retained snapshot references
//! (see [`DeltaLog::vacuum`]).
//!
//! Invariant: only unreferenced files older than the retention go; the version's rows and
//! offsets do not change.

use std::time::Duration;

use serde::Serialize;

use crate::config::Format;
use crate::error::{Missing, Result, Unsupported};
use crate::pipeline::handle::TableHandle;
use crate::table::{pointer, version};
use crate::write::DeltaLog;

/// What `vacuum` did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VacuumReport {
    /// The table.
    pub table: String,
    /// The version.
    pub version: u32,
    /// Nothing was deleted.
    pub dry_run: bool,
    /// The files deleted (or that would be), below the version's directory.
    pub files: Vec<String>,
}

/// Vacuums `version` (default: the current one) of `table`.
pub async fn vacuum(
    table: &TableHandle,
    version: Option<u32>,
    retain: Duration,
    allow_short_retention: bool,
    dry_run: bool,
) -> Result<VacuumReport> {
    let (lake, layout) = (&table.lake, &table.layout);
    let version = match version {
        Some(v) => v,
        None => pointer::read(lake, layout)
            .await?
            .map(|p| p.version)
            .ok_or_else(|| Missing::Current {
                table: table.cfg.name.clone(),
            })?,
    };
    let def =
        version::load(lake, layout, version)
            .await?
            .ok_or_else(|| Missing::TargetVersion {
                table: table.cfg.name.clone(),
                version,
            })?;
    if def.definition.format != Format::Delta {
        return Err(Unsupported::VacuumParquet { version }.into());
    }
    let mut log = DeltaLog::open(lake, layout, version, None).await?;
    let outcome = log.vacuum(retain, allow_short_retention, dry_run).await?;
    Ok(VacuumReport {
        table: table.cfg.name.clone(),
        version,
        dry_run,
        files: outcome.files,
    })
}
