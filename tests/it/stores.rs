//! One conformance suite for every kind of table root: local files, `memory://`, S3
//! (SeaweedFS) and Azure Blob Storage (Azurite), the servers started by `scripts/test.sh`.
//!
//! The same functions run against each: the pointer's compare-and-swap (create, update, a
//! stale swap, a race of eight), create-if-absent, multipart upload of a large object, ingest
//! and resume from stored offsets (Delta and Parquet), listing versions. The process-level
//! checks (SIGKILL in the middle of a Kafka → Delta run, restart, read back by delta-rs from
//! that storage) run against the stores a second process can reach (not `memory://`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures::TryStreamExt;
use kappa_lake::config::Config;
use kappa_lake::pipeline::{IngestOptions, TableHandle};
use kappa_lake::shutdown;
use kappa_lake::source::mock::produce;
use kappa_lake::status::table_status;
use kappa_lake::table::pointer::{self, Pointer};
use kappa_lake::table::version;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, WriteMultipart};

use crate::fixture::{Cli, mock_kafka};
use crate::kafka_support::{events, log_of, wait_for};
use crate::support::{BIN, EVENT_SCHEMA, Workdir, python};

/// Azurite's documented development account key (public, not a secret).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A table root to test, with what a process needs to reach it.
struct Backend {
    name: &'static str,
    /// The root, as a config's `root` value.
    root: String,
    /// `object_store` options for the config's `[storage]` (endpoints; credentials too, for
    /// the in-process checks).
    options: BTreeMap<String, String>,
    /// For another process: options without credentials, and the environment carrying them
    /// (the way users are told to pass them).
    child_options: BTreeMap<String, String>,
    child_env: Vec<(String, String)>,
    /// delta-rs (Python) options to read the root back.
    reader_options: BTreeMap<String, String>,
    _dir: Option<Workdir>,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh, which starts SeaweedFS and Azurite")
    })
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

fn map(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn local() -> Backend {
    let dir = crate::support::Workdir::new();
    Backend {
        name: "local",
        root: dir.path().join("lake").display().to_string(),
        options: BTreeMap::new(),
        child_options: BTreeMap::new(),
        child_env: Vec::new(),
        reader_options: BTreeMap::new(),
        _dir: Some(dir),
    }
}

fn memory() -> Backend {
    Backend {
        name: "memory",
        root: format!("memory://{}", unique()),
        options: BTreeMap::new(),
        child_options: BTreeMap::new(),
        child_env: Vec::new(),
        reader_options: BTreeMap::new(),
        _dir: None,
    }
}

fn s3() -> Backend {
    let endpoint = env("KAPPA_LAKE_TEST_S3_ENDPOINT");
    let (key, secret, region) = (
        env("KAPPA_LAKE_TEST_S3_ACCESS_KEY_ID"),
        env("KAPPA_LAKE_TEST_S3_SECRET_ACCESS_KEY"),
        env("KAPPA_LAKE_TEST_S3_REGION"),
    );
    let endpoint_options = [
        ("aws_endpoint", endpoint.clone()),
        ("aws_allow_http", "true".into()),
        ("aws_region", region.clone()),
    ];
    let mut options = map(&endpoint_options);
    options.insert("aws_access_key_id".into(), key.clone());
    options.insert("aws_secret_access_key".into(), secret.clone());
    Backend {
        name: "s3",
        root: format!("s3://{}/{}", env("KAPPA_LAKE_TEST_S3_BUCKET"), unique()),
        child_options: map(&endpoint_options),
        child_env: vec![
            ("AWS_ACCESS_KEY_ID".into(), key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), secret.clone()),
        ],
        reader_options: map(&[
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", region),
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ]),
        options,
        _dir: None,
    }
}

fn azurite() -> Backend {
    let url = env("KAPPA_LAKE_TEST_AZURITE_URL");
    let account = [
        ("azure_storage_account_name", "devstoreaccount1".to_string()),
        ("azure_storage_endpoint", format!("{url}/devstoreaccount1")),
        ("allow_http", "true".into()),
    ];
    let mut options = map(&account);
    options.insert("azure_storage_account_key".into(), AZURITE_KEY.into());
    let mut reader_options = options.clone();
    reader_options.insert("azure_storage_use_emulator".into(), "false".into());
    Backend {
        name: "azurite",
        root: format!(
            "az://{}/{}",
            env("KAPPA_LAKE_TEST_AZURE_CONTAINER"),
            unique()
        ),
        child_options: map(&account),
        child_env: vec![("AZURE_STORAGE_ACCOUNT_KEY".into(), AZURITE_KEY.into())],
        reader_options,
        options,
        _dir: None,
    }
}

/// A config for table `events` at the backend's root.
fn config_text(
    b: &Backend,
    options: &BTreeMap<String, String>,
    format: &str,
    source: &str,
) -> String {
    let storage: String = options
        .iter()
        .map(|(k, v)| format!("{k} = \"{v}\"\n"))
        .collect();
    format!(
        r#"[storage]
{storage}
[[table]]
name = "events"
root = "{root}"
format = "{format}"
schema = "schemas/events.avsc"
time = {{ field = "ts", granularity = "hour" }}

{source}

[table.writer]
max_age = "300ms"
"#,
        root = b.root
    )
}

fn files_source(dir: &Path) -> String {
    format!(
        "[table.source]\nkind = \"files\"\npath = \"{}\"",
        dir.join("in").display()
    )
}

/// Writes events with ids `ids` as a new file of the files source's input.
fn add_events(dir: &Path, ids: std::ops::Range<i64>) {
    use std::io::Write;
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let mut f = std::fs::File::create(dir.join(format!("in/events-{}.ndjson", ids.start))).unwrap();
    for id in ids {
        writeln!(
            f,
            r#"{{"id":{id},"ts":{},"name":"n{id}"}}"#,
            1_795_651_200_000 + id * 1000
        )
        .unwrap();
    }
}

fn table(dir: &Path, text: &str) -> TableHandle {
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    std::fs::write(dir.join("schemas/events.avsc"), EVENT_SCHEMA).unwrap();
    let config = Config::from_toml(text, &dir.join("kappa-lake.toml"), dir, std::iter::empty())
        .unwrap_or_else(|e| panic!("config: {e}\n{text}"));
    TableHandle::open(&config.tables[0]).unwrap()
}

async fn conformance(b: Backend) {
    let work = Workdir::new();
    let dir = work.path();
    eprintln!("conformance on {} ({})", b.name, b.root);
    let text = config_text(&b, &b.options, "delta", &files_source(dir));
    let t = table(dir, &text);
    t.lake
        .probe_writable("root")
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", b.name));
    pointer_compare_and_swap(&t).await;
    create_if_absent_and_multipart(&t).await;
    ingest_and_resume(&b, dir, "delta").await;
    ingest_and_resume(&b, &dir.join("parquet"), "parquet").await;
}

fn pointer_to(v: u32, previous: Option<u32>) -> Pointer {
    Pointer {
        version: v,
        previous,
        updated_at: chrono::Utc::now(),
        reason: "test".into(),
        offsets: BTreeMap::new(),
    }
}

async fn pointer_compare_and_swap(t: &TableHandle) {
    let (lake, layout) = (&t.lake, &t.layout);
    assert_eq!(pointer::read(lake, layout).await.unwrap(), None);
    pointer::swap(lake, layout, None, &pointer_to(1, None))
        .await
        .unwrap();
    pointer::swap(lake, layout, Some(1), &pointer_to(2, Some(1)))
        .await
        .unwrap();
    // A swap from a state that is gone is refused and changes nothing.
    assert!(matches!(
        pointer::swap(lake, layout, Some(1), &pointer_to(3, Some(1))).await,
        Err(kappa_lake::Error::Conflict { .. })
    ));
    assert!(matches!(
        pointer::swap(lake, layout, None, &pointer_to(3, None)).await,
        Err(kappa_lake::Error::Conflict { .. })
    ));
    assert_eq!(
        pointer::read(lake, layout).await.unwrap().unwrap().version,
        2
    );
    // Eight racing swaps from the same state: exactly one wins.
    for round in 0..3u32 {
        let from = 2 + round * 10;
        let racers = (1..=8).map(|i| {
            let (lake, layout) = (lake.clone(), layout.clone());
            tokio::spawn(async move {
                pointer::swap(
                    &lake,
                    &layout,
                    Some(from),
                    &pointer_to(from + i, Some(from)),
                )
                .await
            })
        });
        let results = futures::future::join_all(racers).await;
        let winners: Vec<u32> = results
            .into_iter()
            .zip(1..)
            .filter_map(|(r, i)| r.unwrap().ok().map(|()| from + i))
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let now = pointer::read(lake, layout).await.unwrap().unwrap().version;
        assert_eq!(now, winners[0]);
        // Next round starts from a known state.
        pointer::swap(lake, layout, Some(now), &pointer_to(from + 10, Some(now)))
            .await
            .unwrap();
    }
}

async fn create_if_absent_and_multipart(t: &TableHandle) {
    let store = &t.lake.store;
    let path = StorePath::from("events/_test/once");
    let create = || PutOptions::from(PutMode::Create);
    store.put_opts(&path, "a".into(), create()).await.unwrap();
    assert!(matches!(
        store.put_opts(&path, "b".into(), create()).await,
        Err(object_store::Error::AlreadyExists { .. })
    ));
    assert_eq!(
        store.get(&path).await.unwrap().bytes().await.unwrap(),
        "a".as_bytes()
    );
    // A 21 MiB object in 5 MiB parts (the store's multipart upload).
    let big = StorePath::from("events/_test/big.bin");
    let data: Vec<u8> = (0..21 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let upload = store.put_multipart(&big).await.unwrap();
    let mut w = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    for chunk in data.chunks(1024 * 1024) {
        w.write(chunk);
    }
    w.finish().await.unwrap();
    let back = store.get(&big).await.unwrap().bytes().await.unwrap();
    assert!(back == data, "the multipart object reads back different");
    let listed: Vec<_> = store
        .list(Some(&StorePath::from("events/_test")))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for m in listed {
        store.delete(&m.location).await.unwrap();
    }
}

async fn ingest_and_resume(b: &Backend, dir: &Path, format: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let mut b2 = Backend {
        name: b.name,
        root: b.root.clone(),
        options: b.options.clone(),
        child_options: BTreeMap::new(),
        child_env: Vec::new(),
        reader_options: BTreeMap::new(),
        _dir: None,
    };
    b2.root = format!("{}/{format}", b.root.trim_end_matches('/'));
    let text = config_text(&b2, &b2.options, format, &files_source(dir));
    add_events(dir, 0..3000);
    let run = |dir: std::path::PathBuf, text: String| async move {
        let t = table(&dir, &text);
        let (_trigger, stop) = shutdown::channel();
        let report = t.run(stop, IngestOptions::default()).await.unwrap();
        (t, report)
    };
    let (t, first) = run(dir.to_path_buf(), text.clone()).await;
    assert_eq!(first.rows, 3000, "{}/{format}: first run", b.name);
    // More input: a second run resumes from the stored offsets.
    add_events(dir, 3000..4000);
    let (_, second) = run(dir.to_path_buf(), text.clone()).await;
    assert_eq!(second.rows, 1000, "{}/{format}: the resumed run", b.name);
    let status = table_status(&t).await.unwrap();
    assert_eq!(status.current, Some(1));
    assert_eq!(status.versions.len(), 1);
    assert_eq!(status.versions[0].rows, 4000, "{}/{format}", b.name);
    let listed = version::list(&t.lake, &t.layout).await.unwrap();
    assert_eq!(
        listed.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1],
        "{}/{format}: versions",
        b.name
    );
    gc_deletes_retired_versions(b.name, &t).await;
}

/// Two more versions, retired (with no retention and no grace), each holding an object:
/// `gc --keep 0` deletes them, to the last object, and nothing of the current one.
async fn gc_deletes_retired_versions(name: &str, t: &TableHandle) {
    let (lake, layout) = (&t.lake, &t.layout);
    let mut cfg = t.cfg.clone();
    cfg.versions.retain_previous = Duration::ZERO;
    cfg.versions.gc_grace = Duration::ZERO;
    let t = TableHandle { cfg, ..t.clone() };
    let before = lake.list_dir(&layout.version_dir(1)).await.unwrap().len();
    for v in [2, 3] {
        version::create(lake, layout, v, t.definition().unwrap())
            .await
            .unwrap();
        let file = layout.version_dir(v).join("part-0.parquet");
        lake.store.put(&file, "x".into()).await.unwrap();
        version::set_state(lake, layout, v, version::VersionState::Retired)
            .await
            .unwrap();
    }
    let decisions = kappa_lake::pipeline::gc::gc(&t, 0, false).await.unwrap();
    let deleted: Vec<u32> = decisions
        .iter()
        .filter(|d| d.delete)
        .map(|d| d.version)
        .collect();
    assert_eq!(deleted, [2, 3], "{name}: {decisions:?}");
    let listed = version::list(lake, layout).await.unwrap();
    assert_eq!(listed.iter().map(|v| v.version).collect::<Vec<_>>(), [1]);
    for v in [2, 3] {
        assert!(
            lake.list_dir(&layout.version_dir(v))
                .await
                .unwrap()
                .is_empty(),
            "{name}: v{v} left objects"
        );
    }
    assert_eq!(
        lake.list_dir(&layout.version_dir(1)).await.unwrap().len(),
        before,
        "{name}: gc touched the current version"
    );
}

/// One `#[tokio::test]` per backend, each running the whole conformance suite on it.
macro_rules! conformance_on {
    ($($test:ident => $backend:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $test() {
            conformance($backend).await;
        }
    )*};
}

conformance_on! {
    conformance_on_local_files => local(),
    conformance_on_memory => memory(),
    conformance_on_s3 => s3(),
    conformance_on_azurite => azurite(),
}

/// The ADLS Gen2 form of an Azure root (`abfss://container@account.dfs.core.windows.net/…`)
/// reaches the same container as `az://container/…`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abfss_and_az_roots_name_the_same_container() {
    let az = azurite();
    let prefix = az.root.rsplit('/').next().unwrap().to_string();
    let container = env("KAPPA_LAKE_TEST_AZURE_CONTAINER");
    let abfss = Backend {
        root: format!("abfss://{container}@devstoreaccount1.dfs.core.windows.net/{prefix}"),
        ..azurite()
    };
    let work = Workdir::new();
    let open = |b: &Backend| {
        table(
            work.path(),
            &config_text(b, &b.options, "delta", &files_source(work.path())),
        )
    };
    let (via_az, via_abfss) = (open(&az), open(&abfss));
    let path = StorePath::from("events/_test/shared");
    via_abfss
        .lake
        .store
        .put(&path, "written via abfss".into())
        .await
        .unwrap();
    let read = via_az
        .lake
        .store
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(read, "written via abfss".as_bytes());
    via_az.lake.store.delete(&path).await.unwrap();
}

/// Kafka → Delta with the root on `b`: a run SIGKILLed after its first commits, a restart to
/// the end, then delta-rs reads every event exactly once from that storage.
fn kafka_to_delta_survives_sigkill(b: Backend) {
    let (_kafka, brokers) = mock_kafka(&[("cloud", 3)]);
    let work = Workdir::new();
    let d = work.path();
    let source = format!(
        "[table.source]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"cloud\"\ngroup_id = \"kappa-lake-test-cloud\"\n\n[table.source.kafka]\n\"session.timeout.ms\" = \"3000\"\n\"heartbeat.interval.ms\" = \"600\""
    );
    std::fs::create_dir_all(d.join("schemas")).unwrap();
    std::fs::write(d.join("schemas/events.avsc"), EVENT_SCHEMA).unwrap();
    std::fs::write(
        d.join("kappa-lake.toml"),
        config_text(&b, &b.child_options, "delta", &source),
    )
    .unwrap();
    produce(&brokers, "cloud", events(0..3000, 3)).unwrap();
    // The store's credentials go to every command.
    let env: Vec<(&str, &str)> = b
        .child_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let cli = Cli::new(d).envs(&env);
    let mut first = cli.spawn_run(&[], "run-1.log");
    assert!(
        wait_for(Duration::from_secs(60), || cli.commits(1) > 0),
        "{}: no commit in 60 s:\n{}",
        b.name,
        log_of(d, "run-1.log")
    );
    // More events, and the kill lands while they are consumed.
    produce(&brokers, "cloud", events(3000..6000, 3)).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let out = Cli::new(d)
        .envs(&env)
        .env("KAPPA_LAKE_LOG", "info")
        .cmd("run", &["--stop-at-end"]);
    assert!(
        out.status.success(),
        "{}: the restarted run failed:\n{}",
        b.name,
        String::from_utf8_lossy(&out.stderr)
    );
    // The credentials appear in no log line.
    let logs = format!(
        "{}{}",
        log_of(d, "run-1.log"),
        String::from_utf8_lossy(&out.stderr)
    );
    let secrets = b
        .child_env
        .iter()
        .filter(|(k, _)| k.ends_with("SECRET_ACCESS_KEY") || k.ends_with("ACCOUNT_KEY"));
    for (name, secret) in secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{}: the value of {name} was logged",
            b.name
        );
    }
    // Nor in what status prints.
    // (At the binary's own log level, not the CLI wrapper's `warn`.)
    let status = Command::new(BIN)
        .current_dir(d)
        .args(["status", "--config", "kappa-lake.toml", "--json"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    crate::support::archive_output("status --json", &status);
    assert!(status.status.success(), "{}: status failed", b.name);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        json["tables"][0]["versions"][0]["rows"], 6000,
        "{}: {printed}",
        b.name
    );
    for (name, secret) in &b.child_env {
        if name.ends_with("SECRET_ACCESS_KEY") || name.ends_with("ACCOUNT_KEY") {
            assert!(
                !printed.contains(secret.as_str()),
                "{}: status printed {name}",
                b.name
            );
        }
    }
    let read_exact = |when: &str| {
        let uri = format!("{}/events/v1", b.root);
        let out = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/read_lake.py"))
            .args(["--format", "delta", "--readers", "deltars", "--path", &uri])
            .args([
                "--storage-options",
                &serde_json::to_string(&b.reader_options).unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}, {when}: delta-rs could not read {uri}:\n{}",
            b.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let s = &seen["deltars"];
        assert_eq!(s["rows"], 6000, "{}, {when}: {s}", b.name);
        assert_eq!(s["distinct_offsets"], 6000, "{}, {when}: {s}", b.name);
        assert_eq!(s["distinct_ids"], 6000, "{}, {when}: {s}", b.name);
    };
    read_exact("after the restart");

    // Maintenance on this store: `compact` replaces the two runs' small files, then `vacuum`
    // without retention leaves on storage exactly the data files the log lists (the killed
    // run's uncommitted files and the replaced ones are gone), and reads stay exact.
    let report: serde_json::Value =
        serde_json::from_str(&cli.table_ok("compact", &["--json"])).expect("compact --json");
    assert!(
        report["files_removed"].as_u64().unwrap_or_default() >= 2,
        "{}: {report}",
        b.name
    );
    let handle = table(d, &config_text(&b, &b.options, "delta", &source));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data_files = || {
        runtime
            .block_on(handle.lake.list_dir(&"events/v1".into()))
            .unwrap()
            .into_iter()
            .filter(|o| {
                let key = o.location.as_ref();
                key.ends_with(".parquet") && !key.contains("/_")
            })
            .count() as u64
    };
    let listed = || -> u64 {
        crate::fixture::cli::version_of(&cli.status_json(), 1).expect("v1")["files_per_partition"]
            .as_object()
            .expect("files_per_partition")
            .values()
            .filter_map(serde_json::Value::as_u64)
            .sum()
    };
    assert!(
        data_files() > listed(),
        "{}: the replaced files are still on storage before vacuum",
        b.name
    );
    cli.table_ok("vacuum", &["--retain", "0s", "--allow-short-retention"]);
    assert_eq!(
        data_files(),
        listed(),
        "{}: data files after vacuum",
        b.name
    );
    read_exact("after compact and vacuum");
}

#[test]
fn kafka_to_delta_on_s3_survives_sigkill() {
    kafka_to_delta_survives_sigkill(s3());
}

#[test]
fn kafka_to_delta_on_azurite_survives_sigkill() {
    kafka_to_delta_survives_sigkill(azurite());
}

/// A store that fails a fraction of calls (before the request, or after it took effect: a
/// lost response) and delays every call a little.
#[derive(Debug)]
struct Faulty {
    inner: std::sync::Arc<dyn object_store::ObjectStore>,
    /// Per mille of calls that fail.
    per_mille: u32,
    rng: std::sync::Mutex<rand::rngs::StdRng>,
    calls: std::sync::atomic::AtomicU64,
    /// Calls (by index) that fail whatever the dice say, so no run of the test goes without
    /// faults.
    forced: std::collections::HashSet<u64>,
    injected: std::sync::atomic::AtomicU64,
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

impl Faulty {
    /// Waits 0–3 ms; then whether this call fails.
    async fn roll(&self) -> bool {
        use rand::Rng;
        let call = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (delay, fail) = {
            let mut rng = self.rng.lock().unwrap();
            (
                rng.random_range(0..3u64),
                rng.random_range(0..1000) < self.per_mille || self.forced.contains(&call),
            )
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if fail {
            self.injected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        fail
    }

    fn error() -> object_store::Error {
        object_store::Error::Generic {
            store: "faulty",
            source: "injected fault: connection reset by peer".into(),
        }
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: object_store::PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        if self.roll().await {
            return Err(Self::error());
        }
        let done = self.inner.put_opts(location, payload, opts).await?;
        if self.roll().await {
            return Err(Self::error()); // it landed, but the caller hears otherwise
        }
        Ok(done)
    }
    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        if self.roll().await {
            return Err(Self::error());
        }
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &StorePath,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        if self.roll().await {
            return Err(Self::error());
        }
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<StorePath>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<StorePath>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<object_store::ListResult> {
        if self.roll().await {
            return Err(Self::error());
        }
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        if self.roll().await {
            return Err(Self::error());
        }
        self.inner.copy_opts(from, to, options).await
    }
}

/// Ingestion through a store that fails 3 % of calls (half of them after the call took
/// effect), and 12 of the first 120 calls whatever the dice say (a clean ingestion of these
/// events makes about 150, so every seed meets faults), and delays all: every failed run is
/// restarted, as a supervisor would, and the version ends up with every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingestion_through_a_faulty_store_is_exactly_once() {
    use rand::SeedableRng;
    let work = Workdir::new();
    let dir = work.path();
    let b = memory();
    const FILES: i64 = 20;
    const PER_FILE: i64 = 1500;
    for f in 0..FILES {
        add_events(dir, f * PER_FILE..(f + 1) * PER_FILE);
    }
    // Commits every 20 ms and a small buffer (files closed early): faults land in every step
    // of the protocol.
    let text = config_text(&b, &b.options, "delta", &files_source(dir)).replace(
        "max_age = \"300ms\"",
        "max_age = \"20ms\"\nmax_buffer_bytes = \"1MiB\"",
    );
    let clean = table(dir, &text);
    let seed = crate::support::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let forced = rand::seq::index::sample(&mut rng, 120, 12)
        .into_iter()
        .map(|i| i as u64)
        .collect();
    let faulty = std::sync::Arc::new(Faulty {
        inner: clean.lake.store.clone(),
        per_mille: 30,
        rng: std::sync::Mutex::new(rng),
        calls: 0.into(),
        forced,
        injected: 0.into(),
    });
    let t = TableHandle {
        lake: kappa_lake::storage::Lake {
            store: faulty.clone(),
            ..clean.lake.clone()
        },
        ..clean.clone()
    };
    let mut failures = Vec::new();
    loop {
        let (_trigger, stop) = shutdown::channel();
        match t.run(stop, IngestOptions::default()).await {
            Ok(report) if !report.interrupted => break,
            Ok(report) => panic!("interrupted without a signal: {report:?}"),
            Err(e) => failures.push(e.to_string()),
        }
        assert!(
            failures.len() < 500,
            "no run completed in 500 attempts; last errors: {:?}",
            &failures[failures.len() - 3..]
        );
    }
    let injected = faulty.injected.load(std::sync::atomic::Ordering::Relaxed);
    let calls = faulty.calls.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{injected} faults injected in {calls} calls, {} runs failed and were restarted",
        failures.len()
    );
    assert!(
        injected >= 10 && failures.len() >= 3,
        "too few faults to mean anything"
    );
    let status = table_status(&clean).await.unwrap();
    let v = &status.versions[0];
    assert_eq!(
        v.rows,
        (FILES * PER_FILE) as u64,
        "rows (duplicates or losses)"
    );
    assert_eq!(v.offsets.len(), FILES as usize, "{:?}", v.offsets);
    assert!(
        v.offsets.values().all(|&o| o == PER_FILE as u64),
        "{:?}",
        v.offsets
    );
}

/// An HTTP proxy in front of the S3 server that answers a fraction of requests with
/// `503 SlowDown` (as S3 does when throttling) instead of forwarding them.
struct ThrottlingProxy {
    addr: std::net::SocketAddr,
    throttled: std::sync::Arc<std::sync::atomic::AtomicU64>,
    forwarded: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl ThrottlingProxy {
    fn start(upstream: &str, per_mille: u32, seed: u64) -> ThrottlingProxy {
        use rand::{Rng, SeedableRng};
        use std::sync::atomic::Ordering::Relaxed;
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let throttled = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let forwarded = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let rng = std::sync::Arc::new(std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(
            seed,
        )));
        let (t, f) = (throttled.clone(), forwarded.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let throttle = rng.lock().unwrap().random_range(0..1000) < per_mille;
                let (upstream, t, f) = (upstream.clone(), t.clone(), f.clone());
                std::thread::spawn(move || {
                    if let Err(e) = proxy_one(client, &upstream, throttle) {
                        eprintln!("proxy: {e}");
                    }
                    if throttle { &t } else { &f }.fetch_add(1, Relaxed);
                });
            }
        });
        ThrottlingProxy {
            addr,
            throttled,
            forwarded,
        }
    }
}

/// One request per connection (`Connection: close` both ways): read it whole, then either
/// answer 503 or pass it on and stream the answer back.
fn proxy_one(
    mut client: std::net::TcpStream,
    upstream: &str,
    throttle: bool,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(()); // the client closed an idle connection
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") {
            continue;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    if throttle {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        write!(
            client,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
            xml.len()
        )?;
        return client.flush();
    }
    let mut server = std::net::TcpStream::connect(upstream)?;
    server.write_all(&head)?;
    server.write_all(b"Connection: close\r\n\r\n")?;
    server.write_all(&body)?;
    std::io::copy(&mut server, &mut client)?;
    client.flush()
}

/// The S3 store behind a proxy that throttles 15 % of requests with `503 SlowDown`: ingestion
/// and the pointer swaps complete without an error reaching kappa-lake (retried with backoff),
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttling_and_5xx_from_s3_are_retried() {
    use std::sync::atomic::Ordering::Relaxed;
    let proxy = ThrottlingProxy::start(
        &env("KAPPA_LAKE_TEST_S3_ENDPOINT"),
        150,
        crate::support::seed(),
    );
    let mut b = s3();
    let endpoint = format!("http://{}", proxy.addr);
    b.options.insert("aws_endpoint".into(), endpoint);
    let work = Workdir::new();
    let t = table(
        work.path(),
        &config_text(&b, &b.options, "delta", &files_source(work.path())),
    );
    t.lake.probe_writable("root").await.unwrap();
    pointer_compare_and_swap(&t).await;
    ingest_and_resume(&b, &work.path().join("ingest"), "delta").await;
    let (throttled, forwarded) = (proxy.throttled.load(Relaxed), proxy.forwarded.load(Relaxed));
    eprintln!("{throttled} requests throttled, {forwarded} forwarded");
    assert!(
        throttled >= 10 && forwarded >= 50,
        "the proxy saw too little: {throttled} throttled, {forwarded} forwarded"
    );
}

/// An S3 store with conditional puts disabled: a writer is refused, naming what is missing and
/// the opt-in; with `single_writer = "true"` the same checks pass (one writer at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_without_conditional_puts_needs_single_writer_mode() {
    let mut b = s3();
    b.options
        .insert("aws_conditional_put".into(), "disabled".into());
    let work = Workdir::new();
    let text = config_text(&b, &b.options, "delta", &files_source(work.path()));
    let t = table(work.path(), &text);
    let e = t
        .lake
        .probe_writable("table[events].root")
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("no conditional put") && message.contains("single_writer"),
        "{message}"
    );
    b.options.insert("single_writer".into(), "true".into());
    let t = table(
        work.path(),
        &config_text(&b, &b.options, "delta", &files_source(work.path())),
    );
    t.lake.probe_writable("table[events].root").await.unwrap();
    assert!(t.lake.single_writer);
    let (lake, layout) = (&t.lake, &t.layout);
    pointer::swap(lake, layout, None, &pointer_to(1, None))
        .await
        .unwrap();
    pointer::swap(lake, layout, Some(1), &pointer_to(2, Some(1)))
        .await
        .unwrap();
    assert!(matches!(
        pointer::swap(lake, layout, Some(1), &pointer_to(3, Some(1))).await,
        Err(kappa_lake::Error::Conflict { .. })
    ));
    ingest_and_resume(&b, &work.path().join("ingest"), "delta").await;
}
