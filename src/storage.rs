//! Opening the object store behind a table root.
//!
//! Every byte kappa-lake writes goes through [`object_store`]. A [`Lake`] is one root: the
//! store plus what we know about its capabilities (local directories need a lock file for the
//! pointer compare-and-swap, since `LocalFileSystem` has no conditional update).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;

use crate::config::{ConfigError, Root};

/// An opened table root.
#[derive(Debug, Clone)]
pub struct Lake {
    /// The store, rooted at the table root (paths are relative to it).
    pub store: Arc<dyn ObjectStore>,
    /// For local roots: the directory on disk.
    pub local_dir: Option<PathBuf>,
    /// The root as configured, for messages.
    pub display: String,
}

/// `memory://name` roots are shared within one process, so that several opens see one lake.
fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

impl Lake {
    /// Opens `root`; `key` names the config key in errors. Local directories are created.
    pub fn open(root: &Root, key: &str) -> Result<Lake, ConfigError> {
        let err = |reason: String| ConfigError::Root {
            key: key.to_string(),
            root: root.to_string(),
            reason,
        };
        match root {
            Root::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| err(format!("cannot create directory: {e}")))?;
                let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| err(e.to_string()))?;
                Ok(Lake {
                    store: Arc::new(fs),
                    local_dir: Some(dir.clone()),
                    display: root.to_string(),
                })
            }
            Root::Url(url) if url.scheme() == "memory" => {
                let name = format!("{}{}", url.host_str().unwrap_or(""), url.path());
                let mut stores = memory_stores().lock().unwrap_or_else(|p| p.into_inner());
                let store = stores
                    .entry(name)
                    .or_insert_with(|| Arc::new(InMemory::new()));
                Ok(Lake {
                    store: store.clone(),
                    local_dir: None,
                    display: root.to_string(),
                })
            }
            Root::Url(url) => Err(err(format!(
                "the `{}` scheme is not supported by this build",
                url.scheme()
            ))),
        }
    }

    /// A delta-rs table builder for the directory `rel` of this root (the table's files are
    /// read and written through the same store as everything else).
    pub fn delta_table(
        &self,
        rel: &object_store::path::Path,
    ) -> Result<deltalake::DeltaTableBuilder, deltalake::DeltaTableError> {
        use deltalake::DeltaTableBuilder;
        match &self.local_dir {
            Some(dir) => {
                // delta-rs opens local tables itself (its file log store commits by atomic
                // rename-if-absent); it needs an absolute path that exists.
                let path = std::path::absolute(dir.join(rel.as_ref()))
                    .and_then(|p| std::fs::create_dir_all(&p).map(|()| p))
                    .map_err(|e| deltalake::DeltaTableError::InvalidTableLocation(e.to_string()))?;
                let url = url::Url::from_directory_path(&path).map_err(|()| {
                    deltalake::DeltaTableError::InvalidTableLocation(path.display().to_string())
                })?;
                DeltaTableBuilder::from_url(url)
            }
            None => {
                let url = url::Url::parse(&format!("memory:///{rel}/"))
                    .map_err(|e| deltalake::DeltaTableError::InvalidTableLocation(e.to_string()))?;
                Ok(DeltaTableBuilder::from_url(url.clone())?
                    .with_storage_backend(self.store.clone(), url))
            }
        }
    }

    /// Every object under `dir`.
    pub async fn list_dir(
        &self,
        dir: &object_store::path::Path,
    ) -> crate::error::Result<Vec<object_store::ObjectMeta>> {
        use futures::TryStreamExt;
        self.store
            .list(Some(dir))
            .try_collect()
            .await
            .map_err(|e| crate::error::Error::storage(dir, e))
    }

    /// Deletes `path`; one that is already gone counts as deleted.
    pub async fn delete_if_exists(
        &self,
        path: &object_store::path::Path,
    ) -> crate::error::Result<()> {
        use object_store::ObjectStoreExt;
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(crate::error::Error::storage(path, e)),
        }
    }

    /// Checks that the root accepts writes by writing and deleting a probe object.
    pub async fn probe_writable(&self, key: &str) -> Result<(), ConfigError> {
        use object_store::ObjectStoreExt;
        let path = object_store::path::Path::from(format!("_kappa_probe/{}", uuid::Uuid::new_v4()));
        let result = async {
            self.store.put(&path, "probe".into()).await?;
            self.store.delete(&path).await
        }
        .await;
        result.map_err(|e| ConfigError::Root {
            key: key.to_string(),
            root: self.display.clone(),
            reason: format!("it is not writable: {e}"),
        })
    }
}
