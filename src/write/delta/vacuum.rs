//! Vacuum of a Delta version: deletes the data files no snapshot within the retention
//! references — the files compaction replaced, and files a crashed writer or compaction left
//! uncommitted — once they are older than the retention (delta-rs's `VACUUM`, full mode, timed
//! by the lake's clock).
//!
//! Invariant: a file a reader's snapshot may still list is never deleted: the retention is at
//! least the table's `delta.deletedFileRetentionDuration` (7 days by default) unless the caller
//! overrides it explicitly; hidden directories (`_delta_log`, `_dead_letters`, `_kappa_*`) are
//! never touched.

use std::sync::Arc;
use std::time::Duration;

use deltalake::operations::vacuum::{Clock as DeltaClock, VacuumMode};
use deltalake::table::config::TablePropertiesExt;

use super::{DeltaLog, delta_err};
use crate::clock::SharedClock;
use crate::error::{Refusal, Result};

/// What a vacuum deleted (or in a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumOutcome {
    /// Paths below the table directory.
    pub files: Vec<String>,
}

/// The lake's clock, as delta-rs asks for it.
#[derive(Debug)]
struct LakeClock(SharedClock);

impl DeltaClock for LakeClock {
    fn current_timestamp_millis(&self) -> i64 {
        self.0.now().timestamp_millis()
    }
}

impl DeltaLog {
    /// The retention below which [`DeltaLog::vacuum`] refuses to run without `force`.
    pub fn min_retention(&self) -> Result<Option<Duration>> {
        let Some(table) = &self.table else {
            return Ok(None);
        };
        let snapshot = table.snapshot().map_err(|e| delta_err(&self.dir, e))?;
        Ok(Some(
            snapshot.table_config().deleted_file_retention_duration(),
        ))
    }

    /// Deletes unreferenced data files older than `retain`.
    pub async fn vacuum(
        &mut self,
        retain: Duration,
        force: bool,
        dry_run: bool,
    ) -> Result<VacuumOutcome> {
        let Some(min) = self.min_retention()? else {
            return Ok(VacuumOutcome::default());
        };
        if retain < min {
            if !force {
                return Err(Refusal::ShortRetention {
                    retain: humantime::format_duration(retain).to_string(),
                    min: humantime::format_duration(min).to_string(),
                }
                .into());
            }
            tracing::warn!(
                retain = %humantime::format_duration(retain),
                min = %humantime::format_duration(min),
                "vacuum with a retention shorter than delta.deletedFileRetentionDuration: a reader holding an older snapshot may find its files gone"
            );
        }
        let Some(table) = &self.table else {
            return Ok(VacuumOutcome::default());
        };
        let (table, metrics) = table
            .clone()
            .vacuum()
            .with_retention_period(
                chrono::Duration::from_std(retain).unwrap_or(chrono::Duration::MAX),
            )
            .with_enforce_retention_duration(false)
            .with_mode(VacuumMode::Full)
            .with_dry_run(dry_run)
            .with_clock(Arc::new(LakeClock(self.lake.clock.clone())))
            .await
            .map_err(|e| delta_err(&self.dir, e))?;
        self.table = Some(table);
        self.read_state(false).await?;
        let prefix = format!("{}/", self.dir);
        Ok(VacuumOutcome {
            files: metrics
                .files_deleted
                .into_iter()
                .map(|f| f.strip_prefix(&prefix).map(str::to_string).unwrap_or(f))
                .collect(),
        })
    }
}
