//! Opening the object store behind a table root.
//!
//! Every byte kappa-lake writes goes through [`object_store`]. A [`Lake`] is one root: the
//! store plus what we know about its capabilities (local directories need a lock file for the
//! pointer compare-and-swap, since `LocalFileSystem` has no conditional update). A local root's
//! store writes the bytes of new objects around the page cache ([`direct`]).
//!
//! Cloud roots (`s3://bucket/prefix`, `az://container/prefix`,
//! `abfss://container@account.dfs.core.windows.net/prefix`, `gs://bucket/prefix`) take their
//! credentials and endpoints from each cloud's standard environment variables, overridden by
//! the config's `[storage]` / `[table.storage]` options (`object_store` keys such as
//! `aws_endpoint`). The pointer swap and both commit protocols rely on conditional puts
//! (S3 `If-None-Match`/`If-Match`, Azure and GCS preconditions); no lock service is needed.
//! Transient failures (timeouts, 5xx, throttling, connection resets) are retried by
//! `object_store` with exponential backoff and jitter; a conditional put that fails is never
//! retried blindly by us: its caller re-reads and decides again.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

use crate::clock::{self, SharedClock};
use crate::domain::Root;
use crate::error::ConfigError;

mod direct;

/// The clouds a root URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// `s3://`, `s3a://`: Amazon S3 and S3-compatible stores.
    S3,
    /// `az://`, `azure://`, `abfs://`, `abfss://`, `adl://`: Azure Blob Storage / ADLS Gen2.
    Azure,
    /// `gs://`: Google Cloud Storage.
    Gcs,
}

impl Cloud {
    /// The cloud of a root URL, if it names one.
    pub fn of(url: &url::Url) -> Option<Cloud> {
        match url.scheme() {
            "s3" | "s3a" => Some(Cloud::S3),
            "az" | "azure" | "abfs" | "abfss" | "adl" => Some(Cloud::Azure),
            "gs" => Some(Cloud::Gcs),
            _ => None,
        }
    }

    /// Whether `key` is one of this cloud's `object_store` options.
    fn accepts(self, key: &str) -> bool {
        match self {
            Cloud::S3 => AmazonS3ConfigKey::from_str(key).is_ok(),
            Cloud::Azure => AzureConfigKey::from_str(key).is_ok(),
            Cloud::Gcs => GoogleConfigKey::from_str(key).is_ok(),
        }
    }
}

/// Object-store options (`object_store` config keys), plus kappa-lake's own `single_writer`.
/// Their values may be secrets, so `Debug` shows only the keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions {
    options: BTreeMap<String, String>,
    /// The operator accepts a store without conditional puts, promising one writer and one
    /// promoter at a time (see [`SingleWriterStore`]).
    pub single_writer: bool,
}

/// The option that opts into single-writer mode.
pub const SINGLE_WRITER: &str = "single_writer";

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.options.keys().map(|k| (k, "<redacted>")))
            .entry(&SINGLE_WRITER, &self.single_writer)
            .finish()
    }
}

impl StorageOptions {
    /// Checks `options` for `root`: every key must be an option of some cloud, and the root's
    /// cloud's options are kept. Local and memory roots take none (options meant for another
    /// table's cloud in `[storage]` are ignored for them).
    pub fn check(
        root: &Root,
        options: BTreeMap<String, String>,
        key: &str,
    ) -> Result<StorageOptions, ConfigError> {
        let cloud = match root {
            Root::Url(url) => Cloud::of(url),
            Root::Local(_) => None,
        };
        let mut kept = BTreeMap::new();
        let mut single_writer = false;
        for (k, v) in options {
            let name = k.to_ascii_lowercase();
            if name == SINGLE_WRITER {
                single_writer = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ConfigError::Invalid {
                            key: format!("{key}.{k}"),
                            problem: format!("`{v}` is not \"true\" or \"false\""),
                            fix: "write single_writer = \"true\" only for a store without conditional puts, with one writer at a time".into(),
                        });
                    }
                };
                continue;
            }
            let known = [Cloud::S3, Cloud::Azure, Cloud::Gcs]
                .iter()
                .any(|c| c.accepts(&name));
            if !known {
                return Err(ConfigError::Invalid {
                    key: format!("{key}.{k}"),
                    problem: format!("`{k}` is not an object store option"),
                    fix: "use object_store's keys, e.g. aws_endpoint, aws_region, aws_allow_http, azure_storage_account_name, azure_storage_use_emulator, google_service_account".into(),
                });
            }
            if cloud.is_some_and(|c| c.accepts(&name)) {
                kept.insert(name, v);
            }
        }
        Ok(StorageOptions {
            options: kept,
            single_writer,
        })
    }

    /// The `object_store` options, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// An opened table root.
#[derive(Debug, Clone)]
pub struct Lake {
    /// The store, rooted at the table root (paths are relative to it).
    pub store: Arc<dyn ObjectStore>,
    /// For local roots: the directory on disk.
    pub local_dir: Option<PathBuf>,
    /// The root as configured, for messages.
    pub display: String,
    /// Single-writer mode: conditional puts are emulated (see [`SingleWriterStore`]).
    pub single_writer: bool,
    /// What "now" is for leases and retention judged against this lake (the system clock;
    /// tests set a [`ManualClock`](crate::clock::ManualClock)).
    pub clock: SharedClock,
}

/// The store of a cloud bucket/container: the environment's settings, then the options.
fn open_cloud(
    cloud: Cloud,
    url: &url::Url,
    options: &StorageOptions,
) -> object_store::Result<Arc<dyn ObjectStore>> {
    // Keys were checked by `StorageOptions::check`; parse again for the typed builders.
    let parse_err = |k: &str| object_store::Error::Generic {
        store: "config",
        source: format!("`{k}` is not an option of this store").into(),
    };
    Ok(match cloud {
        Cloud::S3 => {
            let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
            for (k, v) in options.iter() {
                b = b.with_config(AmazonS3ConfigKey::from_str(k).map_err(|_| parse_err(k))?, v);
            }
            Arc::new(b.build()?)
        }
        Cloud::Azure => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (k, v) in options.iter() {
                b = b.with_config(AzureConfigKey::from_str(k).map_err(|_| parse_err(k))?, v);
            }
            Arc::new(b.build()?)
        }
        Cloud::Gcs => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (k, v) in options.iter() {
                b = b.with_config(GoogleConfigKey::from_str(k).map_err(|_| parse_err(k))?, v);
            }
            Arc::new(b.build()?)
        }
    })
}

/// Single-writer mode, for stores without conditional puts: `PutMode::Create` and
/// `PutMode::Update` become a read of the object's metadata followed by a plain put. Between
/// the two another writer could get in, which is why the operator must opt in and promise one
/// writer and one promoter at a time.
#[derive(Debug)]
pub struct SingleWriterStore {
    inner: Arc<dyn ObjectStore>,
}

impl std::fmt::Display for SingleWriterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SingleWriter({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for SingleWriterStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        use object_store::{ObjectStoreExt, PutMode};
        let found = match &opts.mode {
            PutMode::Overwrite => None,
            _ => match self.inner.head(location).await {
                Ok(meta) => Some(Some(meta)),
                Err(object_store::Error::NotFound { .. }) => Some(None),
                Err(e) => return Err(e),
            },
        };
        match (&opts.mode, found) {
            (PutMode::Create, Some(Some(_))) => {
                return Err(object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "the object exists (single-writer mode)".into(),
                });
            }
            (PutMode::Update(v), Some(meta)) => {
                let same = meta.is_some_and(|m| v.e_tag.is_none() || m.e_tag == v.e_tag);
                if !same {
                    return Err(object_store::Error::Precondition {
                        path: location.to_string(),
                        source: "the object changed (single-writer mode)".into(),
                    });
                }
            }
            _ => {}
        }
        let opts = object_store::PutOptions {
            mode: PutMode::Overwrite,
            ..opts
        };
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// `memory://name` roots are shared within one process, so that several opens see one lake.
fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

impl Lake {
    /// Opens `root` without options; see [`Lake::open_with`].
    pub fn open(root: &Root, key: &str) -> Result<Lake, ConfigError> {
        Lake::open_with(root, &StorageOptions::default(), key)
    }

    /// Opens `root` with object-store `options`; `key` names the config key in errors. Local
    /// directories are created; cloud roots are not contacted (see [`Lake::probe_writable`]).
    pub fn open_with(
        root: &Root,
        options: &StorageOptions,
        key: &str,
    ) -> Result<Lake, ConfigError> {
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
                    store: Arc::new(direct::DirectLocal::new(fs)),
                    local_dir: Some(dir.clone()),
                    display: root.to_string(),
                    single_writer: false,
                    clock: clock::system(),
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
                    single_writer: false,
                    clock: clock::system(),
                })
            }
            Root::Url(url) => {
                let Some(cloud) = Cloud::of(url) else {
                    return Err(err(format!(
                        "the `{}` scheme is not supported",
                        url.scheme()
                    )));
                };
                let store = open_cloud(cloud, url, options).map_err(|e| err(e.to_string()))?;
                // The bucket/container is the store; the URL's path is our prefix in it.
                let prefix = object_store::path::Path::from(url.path().trim_matches('/'));
                let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
                    store
                } else {
                    Arc::new(PrefixStore::new(store, prefix))
                };
                let store: Arc<dyn ObjectStore> = if options.single_writer {
                    Arc::new(SingleWriterStore { inner: store })
                } else {
                    store
                };
                Ok(Lake {
                    store,
                    local_dir: None,
                    display: root.to_string(),
                    single_writer: options.single_writer,
                    clock: clock::system(),
                })
            }
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

    /// The whole object at `path`.
    pub async fn read_all(
        &self,
        path: &object_store::path::Path,
    ) -> crate::error::Result<bytes::Bytes> {
        use object_store::ObjectStoreExt;
        let storage = |e| crate::error::Error::storage(path, e);
        self.store
            .get(path)
            .await
            .map_err(storage)?
            .bytes()
            .await
            .map_err(storage)
    }

    /// Writes `value` as pretty JSON to `path`, replacing what is there.
    pub async fn put_json(
        &self,
        path: &object_store::path::Path,
        value: &impl serde::Serialize,
    ) -> crate::error::Result<()> {
        let body = serde_json::to_vec_pretty(value).map_err(|e| crate::error::Error::Corrupt {
            path: path.clone(),
            source: e.into(),
        })?;
        use object_store::ObjectStoreExt;
        self.store
            .put(path, body.into())
            .await
            .map_err(|e| crate::error::Error::storage(path, e))?;
        Ok(())
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

    /// Checks that the root accepts writes, and conditional ones (the commit protocols and the
    /// pointer swap need create-if-absent), by writing a probe object twice and deleting it.
    pub async fn probe_writable(&self, key: &str) -> Result<(), ConfigError> {
        use object_store::{ObjectStoreExt, PutMode, PutOptions};
        let path = object_store::path::Path::from(format!("_kappa_probe/{}", uuid::Uuid::new_v4()));
        let fail = |reason: String| ConfigError::Root {
            key: key.to_string(),
            root: self.display.clone(),
            reason,
        };
        if self.single_writer {
            tracing::warn!(root = %self.display, "single-writer mode: the store's conditional puts are emulated by read-then-write; run ONE writer and ONE promoter (rebuild/promote/rollback/gc) at a time, or commits and the pointer can be overwritten");
        }
        let create = || PutOptions::from(PutMode::Create);
        self.store
            .put_opts(&path, "probe".into(), create())
            .await
            .map_err(|e| match e {
                object_store::Error::NotImplemented { .. } => fail(format!(
                    "the store has no conditional put (create-if-absent), which exactly-once commits and the pointer swap need with several writers: {e}; use a store that supports If-None-Match, or, if only one process ever writes this table at a time, set `single_writer = \"true\"` under [table.storage]"
                )),
                e => fail(format!("it is not writable: {e}")),
            })?;
        let second = self.store.put_opts(&path, "probe".into(), create()).await;
        let deleted = self.store.delete(&path).await;
        match second {
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Ok(_) => {
                return Err(fail(
                    "the store accepted a second create-if-absent of the same object: it ignores preconditions, so exactly-once commits cannot be guaranteed there".into(),
                ));
            }
            Err(e) => return Err(fail(format!("its conditional put failed: {e}"))),
        }
        deleted.map_err(|e| fail(format!("it is not writable (delete): {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_root(s: &str) -> Root {
        Root::Url(url::Url::parse(s).unwrap())
    }

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cloud_roots_open_without_contacting_the_cloud() {
        for (root, options) in [
            (
                "s3://bucket/some/prefix",
                opts(&[
                    ("aws_region", "eu-west-1"),
                    ("aws_endpoint", "http://127.0.0.1:1"),
                ]),
            ),
            ("gs://bucket/prefix", opts(&[("google_bucket", "bucket")])),
            (
                "az://container/prefix",
                opts(&[("azure_storage_account_name", "acct")]),
            ),
            (
                "abfss://container@acct.dfs.core.windows.net/prefix",
                BTreeMap::new(),
            ),
        ] {
            let root = url_root(root);
            let checked = StorageOptions::check(&root, options, "storage").unwrap();
            let lake = Lake::open_with(&root, &checked, "table[t].root")
                .unwrap_or_else(|e| panic!("{root}: {e}"));
            assert!(lake.local_dir.is_none());
            assert_eq!(lake.display, root.to_string());
        }
        // A bad option value fails at open, naming the key of the root.
        let root = url_root("s3://bucket/p");
        let bad =
            StorageOptions::check(&root, opts(&[("aws_allow_http", "maybe")]), "storage").unwrap();
        let e = Lake::open_with(&root, &bad, "table[t].root").unwrap_err();
        assert!(e.to_string().contains("table[t].root"), "{e}");
    }

    #[test]
    fn options_are_checked_and_kept_per_cloud_and_redacted() {
        let e = StorageOptions::check(
            &url_root("s3://b/p"),
            opts(&[("aws_endpint", "x")]),
            "table[t].storage",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("table[t].storage.aws_endpint"), "{text}");
        // [storage] may hold another cloud's options: kept only for roots of that cloud.
        let both = opts(&[
            ("aws_secret_access_key", "s3cr3t"),
            ("azure_storage_account_name", "acct"),
        ]);
        let s3 = StorageOptions::check(&url_root("s3://b/p"), both.clone(), "storage").unwrap();
        assert_eq!(
            s3.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["aws_secret_access_key"]
        );
        let local = StorageOptions::check(&Root::Local("/tmp/x".into()), both, "storage").unwrap();
        assert_eq!(local.iter().count(), 0);
        assert!(!format!("{s3:?}").contains("s3cr3t"), "{s3:?}");
    }
}
