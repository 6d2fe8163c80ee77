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
use crate::support::{BIN, current, kappa, kappa_ok, read_lake, status_json, switch_to_daily};

/// librdkafka's mock cluster keeps at most 100,000 messages per partition (older ones are
/// dropped like retention would), so the tests stay well below that per partition.
const MOCK_RETAINED: i64 = 100_000;

/// Produces 300 events every 200 ms, ids from `first`, until `stop`; returns the next id.
fn steady_producer(
    brokers: String,
    topic: &'static str,
    partitions: i32,
    first: i64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let mut next = first;
        while !stop.load(Ordering::Relaxed) {
            produce(&brokers, topic, events(next..next + 300, partitions)).unwrap();
            next += 300;
            std::thread::sleep(Duration::from_millis(200));
        }
        next
    })
}

/// Starts `rebuild --table events --promote` (plus `extra`, with `env`) in `d`, output to
/// `d/<log>`.
pub fn spawn_rebuild(d: &Path, log: &str, extra: &[&str], env: &[(&str, &str)]) -> Running {
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
            .args(extra)
            .envs(env.iter().copied())
            .env("KAPPA_LAKE_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// Runs the live service on v1 while events keep arriving, rebuilds v2 (`kills` times
/// SIGKILLed first), and checks v2 ends up with every event exactly once after the service
/// switched to it.
fn rebuild_under_load(topic: &'static str, partitions: i32, kills: usize, max_age: &str) {
    let kafka = MockKafka::start(&[(topic, partitions)]).unwrap();
    let brokers = kafka.bootstrap_servers().to_string();
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    // Frequent commits (every `max_age`): a killed replay keeps some of its progress. The live
    // version commits as often, so the rebuild's promotion (from inside its replay) must catch
    // a version that keeps moving ahead. A small buffer: files are closed early too.
    kafka_config(
        d,
        &brokers,
        topic,
        &format!("max_age = \"{max_age}\"\nmax_buffer_bytes = \"1MiB\""),
    );
    // Every pointer move runs the hook, with the move in its environment.
    let cfg = d.join("kappa-lake.toml");
    let hook = r#"on_promote = "echo $KAPPA_LAKE_TABLE $KAPPA_LAKE_FROM_VERSION $KAPPA_LAKE_TO_VERSION $KAPPA_LAKE_VERSION_PATH >> hook.log""#;
    let text = std::fs::read_to_string(&cfg).unwrap() + "\n[table.versions]\n" + hook + "\n";
    std::fs::write(&cfg, text).unwrap();
    // A backlog first, so the replay takes long enough to be killed in the middle.
    let backlog = 40_000 * i64::from(partitions);
    produce(&brokers, topic, events(0..backlog, partitions)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = steady_producer(brokers.clone(), topic, partitions, backlog, stop.clone());
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
        // A run that catches up before its kill crashes where it would promote, which is a
        // kill too (nothing moves `current`).
        let committed_before = crate::fixture::Cli::new(d).commits(2);
        let mut rebuild = spawn_rebuild(
            d,
            &log,
            &[],
            &[("FAILPOINTS", "rebuild.before_promote=return")],
        );
        // Replays run at anything from tens to hundreds of thousands of events per second
        // (a busy machine): kill each one shortly after its first commit (v2's commit count in
        // `status --json` grows), so every run makes some progress and is, mostly, still in the
        // middle of the topic. A run that resumes where the last one had nearly caught up may
        // reach the promotion (the crash point) before it commits anything: checked below.
        assert!(
            wait_for(Duration::from_secs(120), || {
                crate::fixture::Cli::new(d).commits(2) > committed_before
                    || rebuild.try_wait().unwrap().is_some()
            }),
            "rebuild {k} committed nothing:\n{}",
            log_of(d, &log)
        );
        std::thread::sleep(Duration::from_millis(rng.random_range(0..100)));
        if let Some(status) = rebuild.try_wait().unwrap() {
            assert!(
                log_of(d, &log).contains("crash point `rebuild.before_promote` reached"),
                "the rebuild ended before its kill ({status}):\n{}",
                log_of(d, &log)
            );
        } else {
            rebuild.kill().unwrap();
            rebuild.wait().unwrap();
        }
        assert_eq!(current(d), 1, "a killed rebuild promoted nothing");
    }
    if kills > 0 {
        // v2 exists but is behind: promoting it now is refused with the per-partition lag.
        // (A run that crashed where it would promote had caught up: wait for v1 to move on.)
        assert!(
            wait_for(Duration::from_secs(30), || stored_total(d, 0)
                > stored_total(d, 1)),
            "v1 does not move ahead of v2:\n{}",
            log_of(d, "run.log")
        );
        let early = kappa(
            d,
            &[
                "promote",
                "--config",
                "kappa-lake.toml",
                "--table",
                "events",
                "--version",
                "2",
            ],
            &[],
        );
        let stderr = String::from_utf8_lossy(&early.stderr);
        assert_eq!(early.status.code(), Some(1), "{stderr}");
        // Only the partitions still behind are named (which ones depends on the kills).
        assert!(
            stderr.contains("v2 has not caught up with v1")
                && stderr.contains(&format!("{topic}/"))
                && stderr.contains(": v2 at "),
            "{stderr}"
        );
        assert_eq!(current(d), 1);
        assert!(
            stored_total(d, 1) > 0,
            "no killed rebuild committed anything, so nothing is resumed"
        );
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
            "--require-same-rows",
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
    if kills == 0 {
        // Roll back (the service switches back to v1, which it kept writing), then promote
        // v2 again (which it kept writing in turn): nothing is lost either way.
        let out = kappa(
            d,
            &[
                "rollback",
                "--config",
                "kappa-lake.toml",
                "--table",
                "events",
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(current(d), 1);
        assert!(
            wait_for(Duration::from_secs(30), || log_of(d, "run.log")
                .contains("now writing v1")),
            "the service did not follow the rollback:\n{}",
            log_of(d, "run.log")
        );
        assert!(
            wait_for(Duration::from_secs(30), || {
                kappa(
                    d,
                    &[
                        "promote",
                        "--config",
                        "kappa-lake.toml",
                        "--table",
                        "events",
                        "--version",
                        "2",
                    ],
                    &[],
                )
                .status
                .success()
            }),
            "v2 never caught up again"
        );
        assert!(
            wait_for(Duration::from_secs(30), || {
                log_of(d, "run.log").matches("now writing v2").count() == 2
            }),
            "the service did not follow the second promotion:\n{}",
            log_of(d, "run.log")
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let total = producer.join().unwrap();
    assert!(total / i64::from(partitions) < MOCK_RETAINED * 8 / 10);
    assert!(
        wait_for(Duration::from_secs(60), || stored_total(d, 1)
            == total as u64),
        "v2 did not catch up with the topic ({} of {total}):\n{}",
        stored_total(d, 1),
        log_of(d, "run.log")
    );
    let v2_path = d.join("lake/events/v2").display().to_string();
    let v1_path = d.join("lake/events/v1").display().to_string();
    let hooks = std::fs::read_to_string(d.join("hook.log")).unwrap();
    let mut expected = vec![format!("events 1 2 {v2_path}")];
    if kills == 0 {
        expected.push(format!("events 2 1 {v1_path}"));
        expected.push(format!("events 1 2 {v2_path}"));
    }
    assert_eq!(hooks.lines().collect::<Vec<_>>(), expected);
    // The printed DuckDB view reads the current version.
    let view = kappa_ok(
        d,
        &["sql", "--config", "kappa-lake.toml", "--engine", "duckdb"],
        &[],
    );
    assert!(
        view.contains("delta_scan(") && view.contains("-- v2"),
        "{view}"
    );
    // v1 stayed writable (retain_previous): it holds everything too.
    assert!(
        wait_for(Duration::from_secs(60), || stored_total(d, 0)
            == total as u64),
        "the previous version was not kept up to date ({} of {total})",
        stored_total(d, 0)
    );
    sigterm(&live);
    assert!(live.wait().unwrap().success());
    assert_exactly_once(d, 2, total as u64);
    assert_exactly_once(d, 1, total as u64);
    let diff = kappa_ok(
        d,
        &[
            "diff",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "1",
            "2",
        ],
        &[],
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with("total") && l.ends_with("yes")),
        "{diff}"
    );
    let rows = crate::support::duckdb(&format!("{view}\nSELECT count(*) FROM events;"));
    assert_eq!(rows[0][0], total);
    let status = status_json(d);
    let v2 = &status["tables"][0]["versions"][1];
    assert_eq!(v2["state"], "live");
    assert_eq!(v2["rows"], total as u64);
}

#[test]
fn rebuild_under_load_promotes_and_the_service_follows_without_gap_or_overlap() {
    rebuild_under_load("replay", 6, 0, "500ms");
}

#[test]
fn a_rebuild_killed_five_times_resumes_to_the_same_result() {
    // 12 partitions: a backlog of 480,000 events, so each replay runs long enough to be
    // killed after its first commits. (24 partitions took 390-470 s of CI time, the suite's
    // last test to finish, and proved nothing more.) Every live commit writes a file into
    // each of v1's hourly partitions: at 500 ms, the readers at the end had tens of thousands
    // of files to open, hence 2 s.
    rebuild_under_load("replay-killed", 12, 5, "2s");
}

#[test]
fn rebuild_from_a_time_starts_each_partition_at_its_first_event_at_or_after_it() {
    // The mock cluster cannot look offsets up by time (it answers "the end"), so this also
    // proves the fallback search over the partitions.
    let kafka = MockKafka::start(&[("from-time", 3)]).unwrap();
    let brokers = kafka.bootstrap_servers().to_string();
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    kafka_config(d, &brokers, "from-time", "max_age = \"1s\"");
    // Event `id` carries the Kafka timestamp DAY_START_MS + id.
    produce(&brokers, "from-time", events(0..3000, 3)).unwrap();

    let bad = kappa(
        d,
        &[
            "rebuild",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "--from",
            "yesterday",
        ],
        &[],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--from") && err.contains("earliest"), "{err}");

    // 2026-11-26T00:00:01.200Z: ids 1200.. and nothing before.
    let out = kappa_ok(
        d,
        &[
            "rebuild",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "--from",
            "2026-11-26T00:00:01.200Z",
        ],
        &[],
    );
    assert!(out.contains("events v1: 1800 records read"), "{out}");
    let seen = read_lake(d, "events", 1, "delta", &["duckdb", "deltars"], "id");
    for (reader, s) in &seen {
        assert_eq!(s["rows"], 1800, "{reader}: rows");
        assert_eq!(s["distinct_ids"], 1800, "{reader}: distinct ids");
        assert_eq!(s["min"], 1200, "{reader}: min id");
        assert_eq!(s["max"], 2999, "{reader}: max id");
    }
    // Resuming keeps the stored starts (the time no longer matters) and reads only what is new.
    produce(&brokers, "from-time", events(3000..3300, 3)).unwrap();
    let out = kappa_ok(
        d,
        &[
            "rebuild",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "--from",
            "2026-11-26",
        ],
        &[],
    );
    assert!(
        out.contains("resumed") && out.contains("300 records read"),
        "{out}"
    );
    assert_eq!(stored_total(d, 0), 3300, "every partition read to its end");
    let seen = read_lake(d, "events", 1, "delta", &["duckdb"], "id");
    assert_eq!(seen["duckdb"]["rows"], 2100);
    assert_eq!(seen["duckdb"]["min"], 1200);
}

#[test]
fn auto_rebuild_builds_and_promotes_in_the_background_while_the_service_keeps_writing() {
    let kafka = MockKafka::start(&[("auto", 3)]).unwrap();
    let brokers = kafka.bootstrap_servers().to_string();
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    kafka_config(d, &brokers, "auto", "max_age = \"2s\"");
    let backlog = 30_000;
    produce(&brokers, "auto", events(0..backlog, 3)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = steady_producer(brokers.clone(), "auto", 3, backlog, stop.clone());
    let mut first = spawn_run(d, &[], "run-1.log");
    assert!(
        wait_for(Duration::from_secs(60), || stored_total(d, 0)
            >= backlog as u64),
        "v1 is not being written:\n{}",
        log_of(d, "run-1.log")
    );
    sigterm(&first);
    assert!(first.wait().unwrap().success());

    // Definition B plus auto_rebuild: the restarted service keeps writing v1 (as frozen) while
    // it replays the topic into v2, then promotes v2 and follows the pointer to it.
    switch_to_daily(d);
    let cfg = d.join("kappa-lake.toml");
    let text = std::fs::read_to_string(&cfg).unwrap() + "\n[table.versions]\nauto_rebuild = true\n";
    std::fs::write(&cfg, text).unwrap();
    let mut live = spawn_run(d, &[], "run-2.log");
    assert!(
        wait_for(Duration::from_secs(120), || log_of(d, "run-2.log")
            .contains("now writing v2")),
        "no background promotion:\n{}",
        log_of(d, "run-2.log")
    );
    let log = log_of(d, "run-2.log");
    assert!(log.contains("rebuilding it in the background"), "{log}");
    assert_eq!(current(d), 2);
    stop.store(true, Ordering::Relaxed);
    let total = producer.join().unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || stored_total(d, 1)
            == total as u64),
        "v2 did not catch up with the topic ({} of {total}):\n{}",
        stored_total(d, 1),
        log_of(d, "run-2.log")
    );
    sigterm(&live);
    assert!(live.wait().unwrap().success());
    assert_exactly_once(d, 2, total as u64);
    assert_eq!(status_json(d)["tables"][0]["versions"][1]["state"], "live");
}

#[test]
fn max_lag_accepts_a_target_near_the_topic_end_only_while_nobody_writes_the_live_version() {
    let kafka = MockKafka::start(&[("lag", 2)]).unwrap();
    let brokers = kafka.bootstrap_servers().to_string();
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    kafka_config(d, &brokers, "lag", "max_age = \"1s\"");
    let hourly = std::fs::read_to_string(d.join("kappa-lake.toml")).unwrap();
    let to_end = ["run", "--config", "kappa-lake.toml", "--stop-at-end"];
    produce(&brokers, "lag", events(0..1000, 2)).unwrap();
    kappa_ok(d, &to_end, &[]);
    // v2 (daily) replays up to v1's offsets; then v1 moves on by 50 per partition.
    switch_to_daily(d);
    kappa_ok(
        d,
        &[
            "rebuild",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
        ],
        &[],
    );
    std::fs::write(d.join("kappa-lake.toml"), &hourly).unwrap();
    produce(&brokers, "lag", events(1000..1100, 2)).unwrap();
    kappa_ok(d, &to_end, &[]);
    let promote = |extra: &[&str]| {
        let mut args = vec![
            "promote",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "--version",
            "2",
        ];
        args.extend_from_slice(extra);
        let out = kappa(d, &args, &[]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = promote(&[]);
    assert!(
        !ok && err.contains("lag/0: v2 at 500, v1 at 550 (lag 50)"),
        "{err}"
    );
    let (ok, err) = promote(&["--max-lag", "10"]);
    assert!(!ok && err.contains("(lag 50)"), "{err}");
    // With the service writing v1, the allowance does not apply.
    let mut live = spawn_run(d, &[], "run.log");
    assert!(
        wait_for(Duration::from_secs(30), || log_of(d, "run.log")
            .contains("writer started")),
        "{}",
        log_of(d, "run.log")
    );
    let (ok, err) = promote(&["--max-lag", "60"]);
    assert!(
        !ok && err.contains("applies only while v1 is not being written"),
        "{err}"
    );
    sigterm(&live);
    assert!(live.wait().unwrap().success());
    // Nobody writes v1: v2 is 50 short of the topic's end per partition, within 60.
    let (ok, err) = promote(&["--max-lag", "60"]);
    assert!(ok, "{err}");
    assert_eq!(current(d), 2);
}
