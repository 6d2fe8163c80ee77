//! Reading a version's offsets back from its Delta log, and the partition markers that say
//! which source partitions it may hold offsets for.
//!
//! Invariant: read-only; a version without a table, or a partition with a marker but no `txn`,
//! has no offset.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::path::Path;
use percent_encoding::percent_decode_str;

use super::{PARTITIONS_DIR, app_id, delta_err, reading_again};
use crate::error::{Error, Result};
use crate::storage::Lake;
use crate::table::TableLayout;

/// Offsets of a version, by partition, read from its Delta log (empty when it has no table).
///
/// Promotion checks and catch-up read this after every commit, so it stays cheap: it builds a
/// kernel snapshot (protocol, metadata and the log segment, never the list of data files) and
/// resolves each partition's `txn`, newest commit first. A log file cleaned up by another
/// process while this one read it is survived by reading again.
pub async fn offsets(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
) -> Result<BTreeMap<String, u64>> {
    reading_again(version, || offsets_once(lake, layout, version)).await
}

async fn offsets_once(
    lake: &Lake,
    layout: &TableLayout,
    version: u32,
) -> Result<BTreeMap<String, u64>> {
    let dir = layout.version_dir(version);
    if !table_exists(lake, &dir).await? {
        return Ok(BTreeMap::new());
    }
    let keys = marked_partitions(lake, &dir.clone().join(PARTITIONS_DIR)).await?;
    let log_store = lake
        .delta_table(&dir)
        .and_then(|b| b.build_storage())
        .map_err(|e| delta_err(&dir, e))?;
    let table = layout.table().to_string();
    let task_dir = dir.clone();
    tokio::task::spawn_blocking(move || {
        let dir = task_dir;
        let engine = log_store.engine(None);
        let mut root = log_store.root_url().clone();
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        let snapshot = delta_kernel::Snapshot::builder_for(root)
            .build(engine.as_ref())
            .map_err(|e| delta_err(&dir, e))?;
        let mut offsets = BTreeMap::new();
        for key in keys {
            let stored = snapshot
                .get_app_id_version(&app_id(&table, version, &key), engine.as_ref())
                .map_err(|e| delta_err(&dir, e))?;
            if let Some(offset) = stored.and_then(|v| u64::try_from(v).ok())
                && crate::source::position::is_source_key(&key)
            {
                offsets.insert(key, offset);
            }
        }
        Ok(offsets)
    })
    .await
    .map_err(|e| delta_err(&dir, e))?
}

/// Whether `dir` holds a Delta table (its log has at least one entry).
pub(super) async fn table_exists(lake: &Lake, dir: &Path) -> Result<bool> {
    let log_dir = dir.clone().join("_delta_log");
    let mut listing = lake.store.list(Some(&log_dir));
    Ok(listing
        .try_next()
        .await
        .map_err(|e| Error::storage(&log_dir, e))?
        .is_some())
}

/// Source partitions with a marker in `marker_dir`.
pub(super) async fn marked_partitions(lake: &Lake, marker_dir: &Path) -> Result<Vec<String>> {
    let metas = lake.list_dir(marker_dir).await?;
    Ok(metas
        .iter()
        .filter_map(|m| m.location.filename())
        .filter_map(|name| percent_decode_str(name).decode_utf8().ok())
        .map(|s| s.into_owned())
        .collect())
}
