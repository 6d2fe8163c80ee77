//! `gc`: delete versions nobody should read or write any more.
//!
//! Never deleted: the current version; the previous one while `retain_previous` has not passed
//! since the pointer moved (the service still writes it, `rollback` needs it); versions being
//! built (a rebuild may be running); versions that were current less than `gc_grace` ago
//! (readers that resolved `current` before it moved may still be reading them); and the
//! `keep` newest of the remaining retired versions.

use serde::Serialize;

use crate::error::Result;
use crate::pipeline::handle::TableHandle;
use crate::table::pointer;
use crate::table::version::{self, VersionState};

/// What `gc` decided about one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcDecision {
    /// The version.
    pub version: u32,
    /// Deleted (or, in a dry run, would be).
    pub delete: bool,
    /// Why.
    pub reason: String,
}

/// Decides (and unless `dry_run`, deletes) per version.
pub async fn gc(table: &TableHandle, keep: usize, dry_run: bool) -> Result<Vec<GcDecision>> {
    let (lake, layout) = (&table.lake, &table.layout);
    let ptr = pointer::read(lake, layout).await?;
    let now = lake.clock.now();
    let cfg = &table.cfg.versions;
    let grace = chrono::Duration::from_std(cfg.gc_grace).unwrap_or(chrono::Duration::MAX);
    let retain = chrono::Duration::from_std(cfg.retain_previous).unwrap_or(chrono::Duration::MAX);
    let mut decisions = Vec::new();
    let mut retired_kept = 0;
    // Newest first, so `keep` keeps the newest retired versions.
    for def in version::list(lake, layout).await?.into_iter().rev() {
        let v = def.version;
        let keep_because = if ptr.as_ref().is_some_and(|p| p.version == v) {
            Some("current".to_string())
        } else if let Some(p) = ptr.as_ref().filter(|p| p.previous == Some(v))
            && now - p.updated_at < retain
        {
            Some("previous, within retain_previous".to_string())
        } else if def.state == VersionState::Building {
            Some("being built".to_string())
        } else if def.retired_at.is_none_or(|t| now - t < grace) {
            Some("was current less than gc_grace ago".to_string())
        } else if retired_kept < keep {
            retired_kept += 1;
            Some(format!(
                "one of the {keep} newest retired versions (--keep)"
            ))
        } else {
            None
        };
        decisions.push(GcDecision {
            version: v,
            delete: keep_because.is_none(),
            reason: keep_because.unwrap_or_else(|| "retired".into()),
        });
    }
    decisions.reverse();
    if !dry_run {
        for d in decisions.iter().filter(|d| d.delete) {
            let objects = version::delete(lake, layout, d.version).await?;
            if let Some(dir) = &lake.local_dir {
                for rel in [
                    layout.version_dir(d.version),
                    layout.dead_letter_dir(d.version),
                ] {
                    let path = dir.join(rel.as_ref());
                    if let Err(e) = std::fs::remove_dir_all(&path)
                        && e.kind() != std::io::ErrorKind::NotFound
                    {
                        tracing::warn!(path = %path.display(), error = %e, "could not remove the emptied directory");
                    }
                }
            }
            tracing::info!(table = %table.cfg.name, version = d.version, objects, "deleted version");
        }
    }
    Ok(decisions)
}
