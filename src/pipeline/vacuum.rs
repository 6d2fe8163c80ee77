//! `vacuum`: deletes the data files of a Delta version that no retained snapshot references
//! (see [`DeltaLog::vacuum`]).
//!
//! Invariant: only unreferenced files older than the retention go; the version's rows and
//! offsets do not change.

use std::time::Duration;

use serde::Serialize;

use crate::config::Format;
use crate::error::{Result, Unsupported};
use crate::pipeline::handle::TableHandle;
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

/// Vacuums `version` (default: the current one) of `table`, keeping unreferenced files younger
/// than `retain` (default: the version's `delta.deletedFileRetentionDuration`).
pub async fn vacuum(
    table: &TableHandle,
    version: Option<u32>,
    retain: Option<Duration>,
    allow_short_retention: bool,
    dry_run: bool,
) -> Result<VacuumReport> {
    let (lake, layout) = (&table.lake, &table.layout);
    let def = table.version_or_current(version).await?;
    let version = def.version;
    if def.definition.format != Format::Delta {
        return Err(Unsupported::VacuumParquet { version }.into());
    }
    let mut log = DeltaLog::open(lake, layout, version, None).await?;
    let Some(min) = log.min_retention()? else {
        // Nobody has written the version yet: nothing to delete.
        return Ok(VacuumReport {
            table: table.cfg.name.clone(),
            version,
            dry_run,
            files: Vec::new(),
        });
    };
    let outcome = log
        .vacuum(retain.unwrap_or(min), allow_short_retention, dry_run)
        .await?;
    Ok(VacuumReport {
        table: table.cfg.name.clone(),
        version,
        dry_run,
        files: outcome.files,
    })
}
