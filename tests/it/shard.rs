//! Sharded replay: `rebuild --shard I/N` processes building one version together.

use std::time::Duration;

use kappa_lake::source::mock::produce;

use crate::fixture::cli::lease_of;
use crate::fixture::{TableConfig, World, mock_kafka};
use crate::kafka_support::{assert_exactly_once, events, log_of, wait_for};

#[test]
fn three_shards_one_killed_and_restarted_build_one_version_exactly_once() {
    const PARTITIONS: i32 = 6;
    const TOTAL: i64 = 60_000;
    let (_kafka, brokers) = mock_kafka(&[("sharded", PARTITIONS)]);
    let events_table = TableConfig::kafka(&brokers, "sharded");
    let world = World::with(&events_table);
    let cli = world.cli();
    // Shard 1 (partitions 1 and 4) gets most of the records, so that it is still replaying
    // when it is killed while the others have finished and wait for it.
    let skewed = events(0..TOTAL, PARTITIONS).map(|mut r| {
        let id = r.partition.unwrap_or_default();
        r.partition = Some(match id {
            0 => 1,
            5 => 4,
            other => other,
        });
        r
    });
    produce(&brokers, "sharded", skewed).expect("produce");
    cli.run_ok(&["--stop-at-end"]);
    assert_exactly_once(world.path(), 1, TOTAL as u64);

    // A definition change, rebuilt by three shards at once; a commit every batch of 200
    // (shard 1: about 200 of them).
    world.config(
        &events_table
            .granularity("day")
            .source_keys("batch_size = 200")
            .writer(r#"max_age = "1ms""#),
    );
    let shard = |cli: &crate::fixture::cli::Cli, i: u32, log: &str| {
        let spec = format!("{i}/3");
        let args = cli.table_args("rebuild", &["--promote", "--shard", &spec]);
        cli.spawn(&args, log)
    };
    // Shard 1's first life pauses after each commit, so that it is still mid-replay when the
    // test has seen its first commit, however large the consumer's bursts are.
    let slowed = world
        .cli()
        .env("FAILPOINTS", "ingest.after_commit=sleep(300)");
    let mut shards = [
        shard(&cli, 0, "shard-0.log"),
        shard(&slowed, 1, "shard-1.log"),
        shard(&cli, 2, "shard-2.log"),
    ];
    // Shard 1 is killed once it has committed (its lease on v2 counts its commits).
    let pid = shards[1].id();
    let committed = wait_for(Duration::from_secs(60), || {
        lease_of(&cli.status_json(), 2, pid).is_some_and(|w| w["commits"].as_u64().unwrap_or(0) > 0)
            || shards[1].0.try_wait().ok().flatten().is_some()
    });
    assert!(
        committed,
        "shard 1 committed nothing:\n{}",
        log_of(world.path(), "shard-1.log")
    );
    shards[1].kill().expect("SIGKILL");
    shards[1].wait().expect("reap");
    let status = cli.status_json();
    let v1 = &status["tables"][0]["versions"][0]["offsets"];
    let v2 = &status["tables"][0]["versions"][1]["offsets"];
    assert!(
        ["sharded/1", "sharded/4"]
            .iter()
            .any(|p| v2[p].as_u64().unwrap_or(0) < v1[p].as_u64().unwrap_or(0)),
        "shard 1 was killed mid-replay (v1 {v1}, v2 {v2})"
    );
    assert_ne!(
        status["tables"][0]["current"], 2,
        "not promoted without shard 1's partitions"
    );
    shards[1] = shard(&cli, 1, "shard-1-again.log");
    for (i, s) in shards.iter_mut().enumerate() {
        let status = s.wait().expect("wait");
        let log = match i {
            1 => "shard-1-again.log".to_string(),
            _ => format!("shard-{i}.log"),
        };
        assert!(
            status.success(),
            "shard {i} failed:\n{}",
            log_of(world.path(), &log)
        );
    }
    let status = cli.status_json();
    // One promotion, v1 → v2 (a second would have failed its compare-and-swap).
    assert_eq!(status["tables"][0]["current"], 2);
    assert_eq!(status["tables"][0]["previous"], 1);
    assert_eq!(
        status["tables"][0]["versions"].as_array().map(Vec::len),
        Some(2),
        "the shards built one version"
    );
    assert_exactly_once(world.path(), 2, TOTAL as u64);
    // A shard that would hold no partition is refused before a version is made for it.
    let empty = cli.rebuild(&["--force", "--shard", "6/7"]);
    let stderr = crate::fixture::stderr(&empty);
    assert!(
        !empty.status.success() && stderr.contains("holds none of the topic's 6 partitions"),
        "{stderr}"
    );
    assert_eq!(
        cli.version_numbers(),
        [1, 2],
        "no version was created for it"
    );
    let diff = cli.diff_ok(1, 2);
    assert!(
        diff.lines()
            .any(|l| l.starts_with("total") && l.ends_with("yes")),
        "{diff}"
    );
}
