//! The `current` pointer: `<table>/_kappa/current.json`.
//!
//! # Atomicity contract
//! - The pointer is only ever changed by [`swap`], a compare-and-swap on the version it
//!   expects to replace. Of two racing swaps from the same expected state exactly one wins; the
//!   other returns [`Error::Conflict`] naming the version it found. A failed conditional put is
//!   never retried blindly: the pointer is re-read and the caller decides again.
//! - Readers see either the old or the new pointer, never a torn one: object stores replace
//!   objects atomically, and local directories are updated by write-to-temp + `rename`.
//! - Stores with conditional updates (`PutMode::Update`, e.g. S3, Azure, GCS, memory) use them.
//!   `LocalFileSystem` has none, so local roots serialise swaps with an exclusive `flock` on
//!   `_kappa/current.lock` (released by the kernel if the holder dies) around
//!   read–compare–rename.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::error::{ContextError, Error, Result, Unsupported};
use crate::failpoints::crash_point;
use crate::storage::Lake;
use crate::table::TableLayout;

/// Contents of `current.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The version readers should read.
    pub version: u32,
    /// The version it replaced, if any (the `rollback` target).
    pub previous: Option<u32>,
    /// When it moved.
    pub updated_at: DateTime<Utc>,
    /// Why it moved: `create`, `promote`, `rollback`.
    pub reason: String,
    /// The version's stored offsets at the moment of the move.
    pub offsets: BTreeMap<String, u64>,
}

/// Reads the pointer; `Ok(None)` when the table has none yet.
pub async fn read(lake: &Lake, layout: &TableLayout) -> Result<Option<Pointer>> {
    Ok(read_versioned(lake, layout).await?.map(|(p, _)| p))
}

async fn read_versioned(
    lake: &Lake,
    layout: &TableLayout,
) -> Result<Option<(Pointer, UpdateVersion)>> {
    let path = layout.pointer();
    let result = match lake.store.get(&path).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::storage(&path, e)),
    };
    let version = UpdateVersion {
        e_tag: result.meta.e_tag.clone(),
        version: result.meta.version.clone(),
    };
    let bytes = result.bytes().await.map_err(|e| Error::storage(&path, e))?;
    Ok(Some((parse(&path, &bytes)?, version)))
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Pointer> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        path: path.clone(),
        source: e.into(),
    })
}

fn moved(path: Path, expected: Option<u32>, found: Option<u32>) -> Error {
    let show = |v: Option<u32>| v.map_or("none".to_string(), |v| format!("v{v}"));
    Error::Conflict {
        path,
        reason: format!(
            "expected current = {} but found {}: another process moved the pointer; re-check and retry",
            show(expected),
            show(found)
        ),
    }
}

/// Replaces the pointer with `new` if it currently points at `expected` (`None`: no pointer).
pub async fn swap(
    lake: &Lake,
    layout: &TableLayout,
    expected: Option<u32>,
    new: &Pointer,
) -> Result<()> {
    if expected.is_some() {
        crash_point!("pointer.before_swap");
    }
    swap_once(lake, layout, expected, new).await?;
    if expected.is_some() {
        crash_point!("pointer.after_swap");
    }
    Ok(())
}

async fn swap_once(
    lake: &Lake,
    layout: &TableLayout,
    expected: Option<u32>,
    new: &Pointer,
) -> Result<()> {
    let path = layout.pointer();
    let body = serde_json::to_vec_pretty(new).map_err(|e| Error::Corrupt {
        path: path.clone(),
        source: e.into(),
    })?;
    if let Some(dir) = &lake.local_dir {
        let file = dir.join(path.as_ref());
        let expected_copy = expected;
        let found = tokio::task::spawn_blocking(move || swap_local(file, expected_copy, body))
            .await
            .map_err(|e| Error::Storage {
                path: path.clone(),
                source: object_store::Error::JoinError { source: e },
            })?
            .map_err(|e| Error::storage(&path, local_io(&path, e)))?;
        return match found {
            SwapOutcome::Swapped => Ok(()),
            SwapOutcome::Found(found) => Err(moved(path, expected, found)),
        };
    }
    let current = read_versioned(lake, layout).await?;
    let found = current.as_ref().map(|(p, _)| p.version);
    if found != expected {
        return Err(moved(path, expected, found));
    }
    let mode = match current {
        None => PutMode::Create,
        Some((_, v)) => PutMode::Update(v),
    };
    match lake
        .store
        .put_opts(&path, body.into(), PutOptions::from(mode))
        .await
    {
        Ok(_) => Ok(()),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => {
            let found = read(lake, layout).await?.map(|p| p.version);
            Err(moved(path, expected, found))
        }
        Err(source @ object_store::Error::NotImplemented { .. }) => {
            Err(Unsupported::ConditionalUpdate {
                store: lake.display.to_string(),
                source,
            }
            .into())
        }
        Err(e) => Err(Error::storage(&path, e)),
    }
}

enum SwapOutcome {
    Swapped,
    Found(Option<u32>),
}

fn local_io(path: &Path, e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: ContextError::new(path.to_string(), e).into(),
    }
}

/// read–compare–rename under an exclusive lock on `_kappa/current.lock`.
fn swap_local(file: PathBuf, expected: Option<u32>, body: Vec<u8>) -> std::io::Result<SwapOutcome> {
    let dir = file.parent().map(PathBuf::from).unwrap_or_default();
    std::fs::create_dir_all(&dir)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("current.lock"))?;
    lock.lock()?;
    let found = match std::fs::read(&file) {
        Ok(bytes) => Some(
            serde_json::from_slice::<Pointer>(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
                .version,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if found != expected {
        return Ok(SwapOutcome::Found(found));
    }
    let tmp = dir.join(format!(".current.json.{}.tmp", uuid::Uuid::new_v4()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &file)?;
    std::fs::File::open(&dir)?.sync_all()?;
    drop(lock);
    Ok(SwapOutcome::Swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Root;

    fn pointer(v: u32) -> Pointer {
        Pointer {
            version: v,
            previous: None,
            updated_at: Utc::now(),
            reason: "test".into(),
            offsets: BTreeMap::new(),
        }
    }

    async fn race(lake: Lake) {
        let layout = TableLayout::new("t");
        swap(&lake, &layout, None, &pointer(1)).await.unwrap();
        assert!(swap(&lake, &layout, None, &pointer(1)).await.is_err());
        for round in 0..20u32 {
            let base = read(&lake, &layout).await.unwrap().unwrap().version;
            let tasks: Vec<_> = (0..8u32)
                .map(|i| {
                    let (lake, layout) = (lake.clone(), layout.clone());
                    tokio::spawn(async move {
                        swap(&lake, &layout, Some(base), &pointer(100 + round * 10 + i)).await
                    })
                })
                .collect();
            let mut wins = 0;
            for t in tasks {
                match t.await.unwrap() {
                    Ok(()) => wins += 1,
                    Err(Error::Conflict { reason, .. }) => {
                        assert!(reason.contains("expected current"))
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            assert_eq!(wins, 1, "round {round}: exactly one swap must win");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn exactly_one_racing_swap_wins_on_memory() {
        let root =
            Root::Url(url::Url::parse(&format!("memory://{}", uuid::Uuid::new_v4())).unwrap());
        race(Lake::open(&root, "root").unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn exactly_one_racing_swap_wins_on_local_files() {
        let dir = tempfile::tempdir().unwrap();
        race(Lake::open(&Root::Local(dir.path().to_path_buf()), "root").unwrap()).await;
    }
}
