//! Crash points (`src/failpoints.rs`, `failpoints` cargo feature): the binary aborts at a
//! named step, as a SIGKILL there would; a restart without the crash point must leave every
//! event exactly once, the version's stored offsets matching its rows, and `current` valid.
//!
//! `cargo test --features failpoints --test failpoints` (scripts/test.sh runs it with the rest).

#[allow(dead_code)]
#[path = "it/support.rs"]
mod support;

#[allow(dead_code)]
#[path = "it/kafka_support.rs"]
mod kafka_support;

#[allow(dead_code, unused_imports)]
#[path = "it/fixture/mod.rs"]
mod fixture;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use fixture::{Cli, TableConfig, World, events_args, mock_kafka};
use kafka_support::{
    assert_exactly_once, events, group_of, group_offsets, log_of, sigterm, spawn_run, stored_total,
    wait_for,
};
use kappa_lake::source::mock::produce;

use support::{current, duckdb, kappa_ok, scan, status_json, switch_to_daily};

const FILES: i64 = 3;
const PER_FILE: i64 = 10000;
const EVENTS: i64 = FILES * PER_FILE;

/// A files-source table `events` in `format`, committing every 50 ms or ~1 MiB buffered (so a
/// run makes several commits), with versions that gc may delete at once.
fn setup(format: &str, granularity: &str) -> World {
    let w = World::with(
        &TableConfig::files()
            .granularity(granularity)
            .format(format)
            .source_keys("batch_size = 500")
            .writer("max_buffer_bytes = \"1MiB\"\nmax_age = \"50ms\"")
            .after("[table.versions]\nretain_previous = \"0s\"\ngc_grace = \"0s\""),
    );
    // ~150 B per event, 4.5 MB in all: a run makes several commits.
    let pad = "x".repeat(100);
    for f in 0..FILES {
        let lines: String = (f * PER_FILE..(f + 1) * PER_FILE)
            .map(|id| {
                format!(
                    "{{\"id\":{id},\"ts\":{},\"name\":\"n{id}{pad}\"}}\n",
                    1_795_651_200_000 + id * 20_000
                )
            })
            .collect();
        w.input(&format!("part-{f}.ndjson"), &lines);
    }
    w
}

/// A lake whose v1 holds every event, with a new definition (daily partitions) that needs v2.
fn v1_then_a_daily_definition() -> World {
    let w = setup("delta", "hour");
    run(w.path());
    switch_to_daily(w.path());
    w
}

/// Runs `kappa-lake args` with `crash_point` armed (`FAILPOINTS` syntax) and checks that it
/// aborted there.
fn crash(d: &Path, args: &[&str], failpoints: &str) {
    let name = failpoints.split('=').next().unwrap();
    let out = Cli::new(d).env("FAILPOINTS", failpoints).output(args);
    aborted_at(name, out.status, &String::from_utf8_lossy(&out.stderr));
}

/// Checks that `out` is an abort at crash point `name`.
fn aborted_at(name: &str, status: std::process::ExitStatus, stderr: &str) {
    assert_eq!(
        status.signal(),
        Some(6),
        "no abort at {name} ({status:?}):\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("crash point `{name}` reached")),
        "{stderr}"
    );
}

fn run(d: &Path) {
    Cli::new(d).run_ok(&[]);
}

/// Rows of version `v`: (count, distinct ids, min id, max id).
fn rows(d: &Path, v: u32, format: &str) -> serde_json::Value {
    let r = duckdb(&format!(
        "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM {}",
        scan(&d.join("lake"), "events", v, format)
    ));
    serde_json::json!(r[0])
}

/// Every event exactly once in version `v`, and its stored offsets cover every line.
fn exactly_once(d: &Path, v: u32, format: &str) {
    assert_eq!(
        rows(d, v, format),
        serde_json::json!([EVENTS, EVENTS, 0, EVENTS - 1]),
        "v{v}"
    );
    let status = status_json(d);
    let version = status["tables"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["version"] == v)
        .unwrap_or_else(|| panic!("no v{v} in {status}"))
        .clone();
    let offsets = version["offsets"].as_object().unwrap();
    assert_eq!(offsets.len(), FILES as usize, "{version}");
    for (file, o) in offsets {
        assert_eq!(o, PER_FILE, "{file}: {version}");
    }
}

/// At each step of a commit, in both formats: crash at the second commit, check the lake is
/// consistent (readable, no duplicate), restart, check exactly once.
#[test]
fn a_crash_at_any_step_of_a_commit_loses_and_duplicates_nothing() {
    for format in ["delta", "parquet"] {
        for point in [
            "ingest.after_files",
            "commit.before_write",
            "commit.after_write",
            "ingest.after_commit",
        ] {
            let w = setup(format, "hour");
            let d = w.path();
            crash(
                d,
                &["run", "--config", "kappa-lake.toml"],
                &format!("{point}=1*off->return"),
            );
            // What the first commit (and, after the write, the second) made visible: no
            // duplicates, and (before the second commit is written) not everything.
            let seen = rows(d, 1, format);
            assert_eq!(seen[0], seen[1], "{format} {point}: {seen}");
            let n = seen[0].as_i64().unwrap();
            assert!(n > 0 && n <= EVENTS, "{format} {point}: {seen}");
            if matches!(point, "ingest.after_files" | "commit.before_write") {
                assert!(n < EVENTS, "{format} {point}: {seen}");
            }
            run(d);
            exactly_once(d, 1, format);
        }
    }
}

/// Promotion and rollback: a crash just before or just after the pointer's compare-and-swap
/// leaves `current` on one valid version; finishing the move afterwards works.
#[test]
fn a_crash_around_the_pointer_swap_leaves_a_valid_pointer() {
    let w = v1_then_a_daily_definition();
    let d = w.path();
    let rebuild = events_args("rebuild", &["--promote"]);
    crash(d, &rebuild, "rebuild.before_promote=return");
    assert_eq!(current(d), 1);
    crash(d, &rebuild, "pointer.before_swap=return");
    assert_eq!(current(d), 1);
    exactly_once(d, 1, "delta");
    crash(d, &rebuild, "pointer.after_swap=return");
    assert_eq!(current(d), 2);
    // Running the rebuild again finds the move done.
    let again = support::kappa(d, &rebuild, &[]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("live v2 of `events` already has this definition"),
        "{stderr}"
    );
    assert_eq!(current(d), 2);
    exactly_once(d, 2, "delta");

    let rollback = events_args("rollback", &[]);
    crash(d, &rollback, "pointer.before_swap=return");
    assert_eq!(current(d), 2);
    crash(d, &rollback, "pointer.after_swap=return");
    assert_eq!(current(d), 1);
    Cli::new(d).table_ok("promote", &["--version", "2"]);
    assert_eq!(current(d), 2);
    exactly_once(d, 1, "delta");
    exactly_once(d, 2, "delta");
}

/// `gc` killed after deleting one object of a version: the lake stays readable, the next `gc`
/// finishes the job, and the current version is untouched.
#[test]
fn a_crash_in_the_middle_of_gc_is_finished_by_the_next_gc() {
    let w = v1_then_a_daily_definition();
    let d = w.path();
    Cli::new(d).rebuild_ok(&["--promote"]);
    let gc = events_args("gc", &["--keep", "0"]);
    crash(d, &gc, "gc.mid_delete=2*off->return");
    assert_eq!(current(d), 2);
    exactly_once(d, 2, "delta");
    let out = kappa_ok(d, &gc, &[]);
    assert!(out.contains("v1"), "{out}");
    assert!(
        !d.join("lake/events/v1").exists()
            || std::fs::read_dir(d.join("lake/events/v1"))
                .unwrap()
                .next()
                .is_none(),
        "v1 is not gone"
    );
    let versions: Vec<u64> = status_json(d)["tables"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2]);
    exactly_once(d, 2, "delta");
}

/// Sum of the group's committed offsets (a partition without one counts 0).
fn group_total(brokers: &str, topic: &str, partitions: i32) -> u64 {
    group_offsets(brokers, &group_of(topic, 1), topic, partitions)
        .iter()
        .map(|o| u64::try_from(*o).unwrap_or(0))
        .sum()
}

/// Kafka: the process dies after a commit landed and before the consumer group's offsets were
/// committed (they are advisory): the group is behind the lake, and a restart resumes from
/// the offsets stored with the data, so nothing is read twice.
#[test]
fn kafka_crash_between_the_commit_and_the_group_offset_commit_rereads_nothing() {
    let (topic, partitions, n) = ("fp-after-commit", 3, 40_000);
    let (_kafka, brokers) = mock_kafka(&[(topic, partitions)]);
    let w = World::with(
        &TableConfig::kafka(&brokers, topic)
            .session_ms(3000)
            .writer("max_buffer_bytes = \"1MiB\"\nmax_age = \"50ms\""),
    );
    let d = w.path();
    produce(&brokers, topic, events(0..n, partitions)).unwrap();
    crash(
        d,
        &["run", "--config", "kappa-lake.toml"],
        "ingest.after_commit=1*off->return",
    );
    let stored = stored_total(d, 0);
    let group = group_total(&brokers, topic, partitions);
    assert!(
        stored > 0 && group < stored,
        "the lake holds {stored} records, the group committed {group}"
    );
    Cli::new(d).run_ok(&["--stop-at-end"]);
    assert_exactly_once(d, 1, n as u64);
    assert_eq!(group_total(&brokers, topic, partitions), n as u64);
}

/// Kafka: a second member joins, and the first dies while handing its partitions over (after
/// its commit on revoke, before its group offset commit and before acknowledging the
/// revocation). The second member takes every partition over from the stored offsets; every
/// event ends up exactly once.
#[test]
fn kafka_crash_while_handing_partitions_over_in_a_rebalance_is_exactly_once() {
    let (topic, partitions) = ("fp-revoke", 4);
    let (_kafka, brokers) = mock_kafka(&[(topic, partitions)]);
    let w = World::with(
        &TableConfig::kafka(&brokers, topic)
            .session_ms(3000)
            .writer("max_age = \"200ms\""),
    );
    let d = w.path();
    produce(&brokers, topic, events(0..10_000, partitions)).unwrap();
    let mut first = Cli::new(d)
        .env("FAILPOINTS", "kafka.revoke=return")
        .spawn_run(&[], "first.log");
    assert!(
        wait_for(Duration::from_secs(60), || stored_total(d, 0) == 10_000),
        "the first member did not commit the first events:\n{}",
        log_of(d, "first.log")
    );
    // More events, so that the first member holds uncommitted data when the rebalance comes.
    let more = {
        let brokers = brokers.clone();
        std::thread::spawn(move || {
            kafka_support::produce_paced(
                &brokers,
                topic,
                10_000..20_000,
                partitions,
                1000,
                Duration::from_millis(50),
            );
        })
    };
    let mut second = spawn_run(d, &[], "second.log");
    assert!(
        wait_for(Duration::from_secs(60), || first.exited()),
        "the first member was not asked to give partitions up:\n{}",
        log_of(d, "first.log")
    );
    let status = first.wait().unwrap();
    aborted_at("kafka.revoke", status, &log_of(d, "first.log"));
    more.join().unwrap();
    assert!(
        wait_for(Duration::from_secs(90), || stored_total(d, 0) == 20_000),
        "the second member did not take over ({} of 20000):\n{}",
        stored_total(d, 0),
        log_of(d, "second.log")
    );
    sigterm(&second);
    assert!(
        second.wait().unwrap().success(),
        "{}",
        log_of(d, "second.log")
    );
    assert_exactly_once(d, 1, 20_000);
}

/// `dead-letters replay` dies after a commit, then after uploading its files and before the
/// commit; each next replay resumes from the positions committed with the rows, and every
/// dead letter ends up in the version exactly once, at its original coordinates.
#[test]
fn a_crashed_dead_letter_replay_resumes_and_lands_each_letter_once() {
    let (topic, partitions, n) = ("fp-replay", 2, 6000i64);
    let (_kafka, brokers) = mock_kafka(&[(topic, partitions)]);
    let config = |max_record_bytes: &str| {
        TableConfig::kafka(&brokers, topic)
            .session_ms(3000)
            .source_keys(&format!("max_record_bytes = \"{max_record_bytes}\""))
            .writer("max_buffer_bytes = \"1MiB\"\nmax_age = \"50ms\"")
    };
    let w = World::with(&config("1KiB"));
    let d = w.path();
    // Every tenth event is over max_record_bytes. Three runs over three parts of the topic
    // make (at least) three dead-letter files: the replay commits once per file.
    for part in 0..3 {
        let ids = part * n / 3..(part + 1) * n / 3;
        let records = events(ids.clone(), partitions).zip(ids).map(|(mut r, id)| {
            if id % 10 == 0 {
                r.payload = String::from_utf8(r.payload)
                    .unwrap()
                    .replacen(
                        "\"name\":\"",
                        &format!("\"name\":\"{}", "x".repeat(1500)),
                        1,
                    )
                    .into_bytes();
            }
            r
        });
        produce(&brokers, topic, records).unwrap();
        Cli::new(d).run_ok(&["--stop-at-end"]);
    }
    let status = status_json(d);
    let v = &status["tables"][0]["versions"][0];
    assert_eq!(
        (v["rows"].as_i64(), v["dead_letters"].as_i64()),
        (Some(n - n / 10), Some(n / 10)),
        "{v}"
    );
    let files = std::fs::read_dir(d.join("lake/events/_dead_letters/v1"))
        .unwrap()
        .count();
    assert!(
        files >= 3,
        "{files} dead-letter files: the crashes below need three"
    );

    // The fix: a larger max_record_bytes (not part of the definition).
    w.config(&config("4KiB"));
    let replay = events_args("dead-letters replay", &["--json"]);
    crash(d, &replay, "ingest.after_commit=1*off->return");
    crash(d, &replay, "ingest.after_files=return");
    let report: serde_json::Value = serde_json::from_str(&kappa_ok(d, &replay, &[])).unwrap();
    assert!(report["already_replayed"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["still_failing"], serde_json::json!({}), "{report}");
    assert_exactly_once(d, 1, n as u64);
    let again: serde_json::Value = serde_json::from_str(&kappa_ok(d, &replay, &[])).unwrap();
    assert_eq!(
        (
            again["letters"].as_i64(),
            again["already_replayed"].as_i64()
        ),
        (Some(0), Some(n / 10)),
        "{again}"
    );
    assert_exactly_once(d, 1, n as u64);
    // The source's stored offsets are the topic's, untouched by the replay.
    assert_eq!(stored_total(d, 0), n as u64);
}
