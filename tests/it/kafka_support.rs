//! Kafka helpers for the tests: configs, producing test events, group offsets, processes.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use kappa_lake::source::mock::{OutRecord, produce};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::support::{read_lake, status_json, version_format};

/// 2026-11-26T00:00:00Z in ms.
pub const DAY_START_MS: i64 = 1_795_651_200_000;

/// Writes `kappa-lake.toml` for table `events` over Kafka `topic`.
pub fn kafka_config(dir: &Path, brokers: &str, topic: &str, writer: &str) {
    kafka_config_with_session(dir, brokers, topic, writer, 6000);
}

/// Like [`kafka_config`] with a given `session.timeout.ms`: how long a SIGKILLed member
/// holds its partitions before the group moves on.
pub fn kafka_config_with_session(
    dir: &Path,
    brokers: &str,
    topic: &str,
    writer: &str,
    session_ms: u32,
) {
    crate::fixture::TableConfig::kafka(brokers, topic)
        .session_ms(session_ms)
        .writer(writer)
        .write_to(dir);
}

/// The consumer group `run` uses for version `v` of the test table on `topic`.
pub fn group_of(topic: &str, v: u32) -> String {
    format!("kappa-lake-test-{topic}.v{v}")
}

/// One test event per id, on partition `id % partitions`.
pub fn events(ids: std::ops::Range<i64>, partitions: i32) -> impl Iterator<Item = OutRecord> {
    ids.map(move |id| OutRecord {
        partition: Some((id % i64::from(partitions)) as i32),
        key: None,
        payload: format!(
            r#"{{"id":{id},"ts":{},"name":"item-{}"}}"#,
            DAY_START_MS + (id * 7919) % 86_400_000,
            id % 97
        )
        .into_bytes(),
        timestamp_ms: Some(DAY_START_MS + id),
    })
}

/// Produces ids `ids` to `topic`, in chunks of `chunk` with `pause` between them.
pub fn produce_paced(
    brokers: &str,
    topic: &str,
    ids: std::ops::Range<i64>,
    partitions: i32,
    chunk: i64,
    pause: Duration,
) {
    let mut start = ids.start;
    while start < ids.end {
        let end = (start + chunk).min(ids.end);
        produce(brokers, topic, events(start..end, partitions)).expect("produce");
        start = end;
        std::thread::sleep(pause);
    }
}

/// A spawned `kappa-lake run`, SIGKILLed when dropped (so a failing test leaves no process).
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Running {
    /// SIGTERM, then waits (30 s at most) for it to exit.
    pub fn stop(&mut self) {
        sigterm(self);
        assert!(
            wait_for(Duration::from_secs(30), || self.exited()),
            "run did not stop"
        );
    }

    /// Waits (up to `timeout`) until the first version of the table in `dir` stores `total`
    /// events, then [`Running::stop`]s it; a failure shows the run's log, `dir/<log_name>`.
    pub fn stop_once_stored(&mut self, dir: &Path, total: u64, timeout: Duration, log_name: &str) {
        assert!(
            wait_for(timeout, || stored_total(dir, 0) == total),
            "the first version does not hold all {total} events:\n{}",
            log_of(dir, log_name)
        );
        self.stop();
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_some()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `kappa-lake run` in `dir` (stderr to `dir/<log_name>`).
pub fn spawn_run(dir: &Path, extra: &[&str], log_name: &str) -> Running {
    spawn_run_with(dir, extra, log_name, &[])
}

/// [`spawn_run`] with extra environment (it may override `KAPPA_LAKE_LOG`).
pub fn spawn_run_with(dir: &Path, extra: &[&str], log_name: &str, env: &[(&str, &str)]) -> Running {
    crate::fixture::Cli::new(dir)
        .envs(env)
        .spawn_run(extra, log_name)
}

/// Sum of the version's stored offsets (= records covered, for a topic that starts at 0 with
/// no gaps).
pub fn stored_total(dir: &Path, version: usize) -> u64 {
    let status = status_json(dir);
    status["tables"][0]["versions"][version]["offsets"]
        .as_object()
        .map_or(0, |o| o.values().map(|v| v.as_u64().unwrap()).sum())
}

/// Polls `cond` every 200 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cond()
}

/// Asserts version `v` of the test table holds ids `0..n` exactly once, checked on
/// `_kafka_partition`/`_kafka_offset` and the ids by independent readers: DuckDB and delta-rs
/// (Python) for a Delta version, DuckDB for a Parquet one.
pub fn assert_exactly_once(dir: &Path, v: u32, n: u64) {
    let format = version_format(dir, v);
    let readers: &[&str] = if format == "delta" {
        &["duckdb", "deltars"]
    } else {
        &["duckdb"]
    };
    let seen = read_lake(dir, "events", v, &format, readers, "id");
    for (reader, s) in &seen {
        assert_eq!(s["rows"], n, "{reader}: row count");
        assert_eq!(
            s["distinct_offsets"], n,
            "{reader}: distinct (_kafka_partition, _kafka_offset)"
        );
        assert_eq!(s["distinct_ids"], n, "{reader}: distinct ids");
        assert_eq!(s["min"], 0, "{reader}: min id");
        assert_eq!(s["max"], n - 1, "{reader}: max id");
    }
}

/// The consumer group's committed offsets on the broker, per partition.
pub fn group_offsets(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// `kill -TERM`.
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The log a spawned run wrote, for failure messages.
pub fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// Sets the table format in `dir/kappa-lake.toml` (configs default to Delta).
pub fn set_format(dir: &Path, format: &str) {
    let path = dir.join("kappa-lake.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "root = \"lake\"\n",
        &format!("root = \"lake\"\nformat = \"{format}\"\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
}

/// Sends `signal` (e.g. `STOP`, `CONT`, `TERM`) to a process.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

/// Waits until the stored offsets of the `index`-th version in `status --json` cover `total`
/// records; fails with `what (N of total)` and the spawned run's `log`, if named.
pub fn wait_stored(
    d: &Path,
    index: usize,
    total: u64,
    timeout: Duration,
    what: &str,
    log: Option<&str>,
) {
    if wait_for(timeout, || stored_total(d, index) == total) {
        return;
    }
    let stored = stored_total(d, index);
    match log {
        Some(log) => panic!("{what} ({stored} of {total}):\n{}", log_of(d, log)),
        None => panic!("{what} ({stored} of {total})"),
    }
}
