//! Materializing a source into one version: decode → transform → event time → partitioned
//! Parquet → commit (files + dead letters + offsets) → advisory offset commit (Kafka). Also
//! `dead-letters replay` ([`replay_dead_letters`]), which feeds a version's dead letters through
//! the same path.
//!
//! ```text
//!   files::run   ─┐                    (one driver per source, each ends with a Stop)
//!   archive::run ─┤                    (a rebuild's raw archive, before kafka::run)
//!   kafka::run   ─┼─▶ writer::VersionWriter ─▶ Parquet files + commit log (offsets, dead letters)
//!   replay       ─┘        │
//!                        └─▶ observe (progress view, lag, lease heartbeat)
//! ```
//!
//! The [`writer`] resumes from the offsets stored in the version's commit log and commits
//! atomically what it wrote with the offsets it covers; the drivers decide when (at least
//! every `max_age`, when an upsert table's changes or the dead letters need a commit to stay
//! within `max_buffer_bytes`, before giving up Kafka partitions, at the end of the source and
//! on shutdown; the file writer bounds its open files itself). [`Mode`] says what the
//! materialization is for.
//!
//! Invariant: this module never imports the jobs above it (`rebuild`, `run`): a rebuild
//! promotes from inside its replay through [`crate::pipeline::promote`].

mod archive;
mod files;
mod kafka;
pub mod mode;
mod observe;
mod replay;
pub mod report;
mod writer;

pub use mode::{CatchUp, Mode, PromoteOnCatchUp, RebuildRead};
pub use replay::{ReplayReport, replay_dead_letters};
pub use report::IngestReport;

use crate::config::{SourceConfig, TableConfig};
use crate::domain::Shard;
use crate::error::{Error, Result};
use crate::pipeline::archive::ArchiveReader;
use crate::shutdown::Shutdown;
use crate::source::files::FilesSource;
use crate::storage::Lake;
use crate::table::{TableLayout, VersionDefinition};

/// Writes the records of `table`'s source into version `def`, until the source ends (files,
/// or Kafka as `mode` says) or `shutdown` fires. Everything it logs carries the table and
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
    let mut w = writer::VersionWriter::open(lake, layout, def, table).await?;
    let outcome = match &table.source {
        SourceConfig::Files(cfg) => {
            let schema = w.def.definition.event_schema()?.arrow;
            loop {
                let source = FilesSource::start(cfg, &w.log.state().positions, schema.clone())?;
                match files::run(&mut w, source, &mut shutdown).await {
                    // An upsert commit rewrites files that a compaction may have replaced
                    // meanwhile: its changes are applied again from the stored positions.
                    Err(Error::Conflict { reason, .. })
                        if w.def.definition.changes.is_upsert() && !shutdown.is_triggered() =>
                    {
                        tracing::warn!(
                            %reason,
                            "an upsert commit was refused: dropped the uncommitted data, re-reading from the version's positions"
                        );
                        w.log.refresh().await?;
                    }
                    other => break other,
                }
            }
        }
        SourceConfig::Kafka(cfg) => kafka::run(&mut w, cfg, &mut shutdown, mode).await,
    };
    w.finish(outcome).await
}

/// A rebuild's first phase when its table names a raw archive: replays `archive` (the shard's
/// partitions, if one is given) into version `def` up to the archive's stored offsets (or until
/// `shutdown`); [`materialize`] then continues from the topic at exactly those offsets.
#[tracing::instrument(name = "writer", skip_all, fields(table = %table.name, table_version = def.version))]
pub async fn replay_archive(
    lake: &Lake,
    layout: &TableLayout,
    def: &VersionDefinition,
    table: &TableConfig,
    (archive, shard): (&ArchiveReader, Option<Shard>),
    shutdown: Shutdown,
) -> Result<IngestReport> {
    let mut w = writer::VersionWriter::open(lake, layout, def, table).await?;
    let outcome = archive::run(&mut w, archive, shard, &shutdown).await;
    w.finish(outcome).await
}
