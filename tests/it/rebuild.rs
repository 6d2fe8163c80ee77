//! Rebuild and promote while the service keeps ingesting (librdkafka's mock cluster): the
//! rebuild replays every partition by explicit assignment into v2, catches up with the live
//! v1, promotes it, and the running service follows the pointer to v2 with no gap and no
//! overlap.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kappa_lake::source::mock::{MockKafka, produce};
use rand::{Rng, SeedableRng};

use crate::kafka_support::{
    Running, assert_exactly_once, events, kafka_config, log_of, sigterm, spawn_run, stored_total,
    wait_for,
};
use crate::support::{BIN, kappa, status_json};

const PARTITIONS: i32 = 6;

/// Produces 300 events every 200 ms, ids from `first`, until `stop`; returns the next id.
fn steady_producer(
    brokers: String,
    topic: &'static str,
    first: i64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let mut next = first;
        while !stop.load(Ordering::Relaxed) {
            produce(&brokers, topic, events(next..next + 300, PARTITIONS)).unwrap();
            next += 300;
            std::thread::sleep(Duration::from_millis(200));
        }
        next
    })
}

/// Definition B: the same events, partitioned by day instead of by hour.
fn switch_to_daily(d: &Path) {
    let path = d.join("kappa-lake.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("granularity = \"hour\"", "granularity = \"day\""),
    )
    .unwrap();
}

fn spawn_rebuild(d: &Path, log: &str) -> Running {
    let log = std::fs::File::create(d.join(log)).unwrap();
    Running(
        Command::new(BIN)
            .current_dir(d)
            .args([
                "rebuild",
                "--config",
                "kappa-lake.toml",
                "--table",
                "events",
                "--promote",
            ])
            .env("KAPPA_LAKE_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn current(d: &Path) -> u64 {
    status_json(d)["tables"][0]["current"].as_u64().unwrap_or(0)
}

/// Runs the live service on v1 while events keep arriving, rebuilds v2 (`kills` times
/// SIGKILLed first), and checks v2 ends up with every event exactly once after the service
/// switched to it.
fn rebuild_under_load(topic: &'static str, kills: usize) {
    let kafka = MockKafka::start(&[(topic, PARTITIONS)]).unwrap();
    let brokers = kafka.bootstrap_servers().to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    kafka_config(d, &brokers, topic, "max_age = \"500ms\"");
    // A backlog first, so the replay takes long enough to be killed in the middle.
    let backlog = 200_000i64;
    produce(&brokers, topic, events(0..backlog, PARTITIONS)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = steady_producer(brokers.clone(), topic, backlog, stop.clone());
    let mut live = spawn_run(d, &[], "run.log");
    assert!(
        wait_for(Duration::from_secs(120), || stored_total(d, 0)
            > backlog as u64),
        "v1 is not being written:\n{}",
        log_of(d, "run.log")
    );

    switch_to_daily(d);
    let mut rng = rand::rngs::StdRng::seed_from_u64(rand::rng().random());
    for k in 0..kills {
        let log = format!("rebuild-{k}.log");
        let mut rebuild = spawn_rebuild(d, &log);
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        if let Some(status) = rebuild.try_wait().unwrap() {
            panic!(
                "the rebuild ended before its kill ({status}):\n{}",
                log_of(d, &log)
            );
        }
        rebuild.kill().unwrap();
        rebuild.wait().unwrap();
        assert_eq!(current(d), 1, "a killed rebuild promoted nothing");
    }
    let out = kappa(
        d,
        &[
            "rebuild",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "--promote",
        ],
        &[("KAPPA_LAKE_LOG", "info")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rebuild failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("promoted: current v1 → v2"), "{stdout}");
    // Not a terminal: progress comes as plain lines with a total and the partitions.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("rebuild v2: ") && l.contains(" events (") && l.contains("p5 ")),
        "{stdout}"
    );
    assert_eq!(
        stdout.contains("events v2: resumed from the offsets stored in it"),
        kills > 0,
        "{stdout}"
    );
    assert_eq!(current(d), 2);

    // The service notices the promotion and writes v2 from v2's offsets.
    assert!(
        wait_for(Duration::from_secs(30), || log_of(d, "run.log")
            .contains("now writing v2")),
        "the service did not follow the pointer:\n{}",
        log_of(d, "run.log")
    );
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let total = producer.join().unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || stored_total(d, 1)
            == total as u64),
        "v2 did not catch up with the topic ({} of {total}):\n{}",
        stored_total(d, 1),
        log_of(d, "run.log")
    );
    sigterm(&live);
    assert!(live.wait().unwrap().success());
    assert_exactly_once(d, 2, total as u64);
    let status = status_json(d);
    let v2 = &status["tables"][0]["versions"][1];
    assert_eq!(v2["state"], "live");
    assert_eq!(v2["rows"], total as u64);
}

#[test]
fn rebuild_under_load_promotes_and_the_service_follows_without_gap_or_overlap() {
    rebuild_under_load("replay", 0);
}

#[test]
fn a_rebuild_killed_five_times_resumes_to_the_same_result() {
    rebuild_under_load("replay-killed", 5);
}
