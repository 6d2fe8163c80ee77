//! `run` against a real Kafka-protocol broker (tansu with S3 storage on SeaweedFS, started by
//! scripts/test.sh), produced to by an independent client (Python confluent-kafka).
//!
//! These tests stop and restart the shared broker, so they hold one lock between them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fixture::{Cli, TableConfig, World};
use crate::kafka_support::{
    assert_exactly_once, log_of, sigterm, spawn_run, stored_total, wait_for, wait_stored,
};
use crate::support::{python, tool_ok};

pub const PARTITIONS: i32 = 6;
pub static BROKER: Mutex<()> = Mutex::new(());

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. The end-to-end tests need the real broker: run `scripts/test.sh`, \
             which installs and starts it."
        )
    })
}

pub fn brokers() -> String {
    env("KAPPA_LAKE_TEST_BROKERS")
}

/// Holds the real broker for one test (tests that restart or load it must not overlap) and
/// creates a topic of its own, named after `prefix`.
pub fn exclusive_topic(prefix: &str) -> (std::sync::MutexGuard<'static, ()>, String) {
    let guard = BROKER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let topic = unique_topic(prefix);
    create_topic(&topic);
    (guard, topic)
}

/// A topic name unique to this test run (the broker outlives single tests).
pub fn unique_topic(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

pub fn create_topic(topic: &str) {
    tool_ok(
        Command::new(env("KAPPA_LAKE_TEST_TANSU"))
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://{}", brokers()))
            .args(["--partitions", &PARTITIONS.to_string(), topic]),
        "run tansu topic create",
        &format!("tansu topic create {topic}: "),
    );
}

fn produce_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/produce.py")
}

/// Starts the independent producer: ids `start..start+count` at `rate` per second.
pub fn spawn_producer(topic: &str, start: i64, count: i64, rate: Option<u32>) -> Child {
    let mut cmd = Command::new(python());
    cmd.arg(produce_script())
        .args(["--brokers", &brokers(), "--topic", topic])
        .args([
            "--count",
            &count.to_string(),
            "--start-id",
            &start.to_string(),
        ])
        .args(["--partitions", &PARTITIONS.to_string(), "--timeout", "120"])
        .stdout(Stdio::null());
    if let Some(r) = rate {
        cmd.args(["--rate", &r.to_string()]);
    }
    cmd.spawn().expect("start produce.py")
}

pub fn wait_ok(mut child: Child, what: &str) {
    let status = child.wait().unwrap();
    assert!(status.success(), "{what} failed: {status}");
}

#[test]
fn real_broker_sigkill_at_random_moments_gives_exactly_once() {
    let (_broker, topic) = exclusive_topic("crash");
    let total = 60_000i64;
    let producer = spawn_producer(&topic, 0, total, Some(800));
    crate::kafka::crash_while_producing(&brokers(), &topic, total, 20, 3000, move || {
        wait_ok(producer, "produce.py")
    });
}

/// The broker is down for `KAPPA_LAKE_TEST_OUTAGE_SECS` (120 by default) while `run` keeps
/// going; when it is back, the same process carries on and nothing is lost or duplicated.
#[test]
fn broker_down_for_minutes_then_back_loses_and_duplicates_nothing() {
    let outage = std::env::var("KAPPA_LAKE_TEST_OUTAGE_SECS").map_or(120, |s| {
        s.parse()
            .expect("KAPPA_LAKE_TEST_OUTAGE_SECS is a number of seconds")
    });
    let (_broker, topic) = exclusive_topic("outage");
    let w = World::with(&TableConfig::kafka(&brokers(), &topic).writer("max_age = \"500ms\""));
    let d = w.path();
    let first = 20_000i64;
    wait_ok(
        spawn_producer(&topic, 0, first, None),
        "produce before the outage",
    );
    let mut run = spawn_run(d, &[], "run.log");
    assert!(
        wait_for(Duration::from_secs(90), || stored_total(d, 0)
            == first as u64),
        "the first {first} events were not committed:\n{}",
        log_of(d, "run.log")
    );

    // Stop the broker for the outage.
    let broker_pid = broker_pid().expect("find the broker process");
    let status = Command::new("kill")
        .args(["-KILL", &broker_pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill the broker");
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(outage));
    assert!(
        run.try_wait().unwrap().is_none(),
        "run exited while the broker was down:\n{}",
        log_of(d, "run.log")
    );
    // Detached: the restarted broker outlives this test (scripts/test.sh stops it by port).
    let restarted = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "({}) </dev/null >/dev/null 2>&1 &",
            env("KAPPA_LAKE_TEST_TANSU_CMD")
        ))
        .status()
        .expect("restart the broker");
    assert!(restarted.success(), "restart the broker");
    eprintln!("broker down for {:?}", down.elapsed());
    assert!(
        wait_for(Duration::from_secs(30), || Command::new(env(
            "KAPPA_LAKE_TEST_TANSU"
        ))
        .args(["topic", "list", "--broker"])
        .arg(format!("tcp://{}", brokers()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())),
        "the broker did not come back"
    );

    // The same process carries on: the next events land exactly once.
    let second = 20_000i64;
    wait_ok(
        spawn_producer(&topic, first, second, None),
        "produce after the outage",
    );
    let total = first + second;
    wait_stored(
        d,
        0,
        total as u64,
        Duration::from_secs(120),
        "not caught up after the outage",
        Some("run.log"),
    );
    assert!(run.try_wait().unwrap().is_none(), "run restarted or died");
    sigterm(&run);
    assert!(run.wait().unwrap().success(), "{}", log_of(d, "run.log"));
    let log = log_of(d, "run.log");
    assert!(
        log.contains("Kafka client error") || log.contains("Kafka consumer error"),
        "the outage was not logged:\n{log}"
    );
    assert_exactly_once(d, 1, total as u64);
    // A restart finds nothing new to do.
    Cli::new(d).run_ok(&["--stop-at-end"]);
    assert_eq!(stored_total(d, 0), total as u64);
}

/// The pid of the tansu process serving `KAPPA_LAKE_TEST_BROKERS` (the one scripts/test.sh
/// started, or one a test restarted), found by its command line.
fn broker_pid() -> Option<u32> {
    let listener = format!("tcp://{}", brokers());
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_tansu = args
            .first()
            .is_some_and(|a| String::from_utf8_lossy(a).ends_with("tansu"));
        if is_tansu && args.contains(&listener.as_bytes()) && args.contains(&&b"broker"[..]) {
            return Some(pid);
        }
    }
    None
}

/// The rebuild acceptance on the real broker: the service keeps ingesting v1 while events
/// arrive at a steady rate; `rebuild --promote` replays the topic into v2 (daily partitions
/// instead of hourly) by explicit assignment, catches up with v1 and promotes it; the service
/// follows the pointer; v2 ends with every event exactly once (DuckDB and delta-rs).
#[test]
fn real_broker_rebuild_while_live_then_the_service_follows_the_promotion() {
    let (_broker, topic) = exclusive_topic("rebuild");
    let w = World::with(&TableConfig::kafka(&brokers(), &topic).writer("max_age = \"500ms\""));
    let d = w.path();
    // 25 s of production at 800 events/s: the rebuild replays while events keep arriving
    // and the service keeps writing them.
    let total = 20_000i64;
    let producer = spawn_producer(&topic, 0, total, Some(800));
    let mut live = spawn_run(d, &[], "run.log");
    assert!(
        wait_for(Duration::from_secs(90), || stored_total(d, 0) > 5000),
        "v1 is not being written:\n{}",
        log_of(d, "run.log")
    );
    crate::support::switch_to_daily(d);
    let out = Cli::new(d).rebuild(&["--promote"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("promoted: current v1 → v2"), "{stdout}");
    assert_eq!(crate::support::current(d), 2);
    assert!(
        wait_for(Duration::from_secs(60), || Cli::new(d)
            .is_writing(2, live.id())),
        "the service did not follow the pointer:\n{}",
        log_of(d, "run.log")
    );
    wait_ok(producer, "produce.py");
    // A producer that timed out and retried may have written a few records twice, so the
    // topic can hold more than `total` records: v2 must hold each of them once, as the
    // previous version (kept writable) does.
    assert!(
        wait_for(Duration::from_secs(120), || {
            let v2 = stored_total(d, 1);
            v2 >= total as u64 && v2 == stored_total(d, 0)
        }),
        "v2 did not catch up ({} of {total}, v1 at {}):\n{}",
        stored_total(d, 1),
        stored_total(d, 0),
        log_of(d, "run.log")
    );
    let records = stored_total(d, 1);
    sigterm(&live);
    assert!(live.wait().unwrap().success());
    let seen = crate::support::read_lake(d, "events", 2, "delta", &["duckdb", "deltars"], "id");
    for (reader, s) in &seen {
        assert_eq!(s["rows"], records, "{reader}: one row per record");
        assert_eq!(s["distinct_offsets"], records, "{reader}: distinct offsets");
        assert_eq!(s["distinct_ids"], total, "{reader}: every produced id");
        assert_eq!(s["min"], 0, "{reader}");
        assert_eq!(s["max"], total - 1, "{reader}");
    }
}
