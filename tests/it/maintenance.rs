//! Table maintenance end to end: `compact` of a Delta version beside the `run` that keeps
//! writing it.

use std::time::{Duration, Instant};

use kappa_lake::source::mock::OutRecord;

use crate::fixture::cli::version_of;
use crate::fixture::{Cli, TableConfig, World, mock_kafka};
use crate::kafka_support::{DAY_START_MS, log_of, spawn_run, stored_total, wait_for};
use crate::support::read_lake;

const TOPIC: &str = "compact";
const PARTITIONS: i32 = 4;
/// Events of 2026-11-26 (24 hourly partitions), produced before `run` starts.
const CLOSED: i64 = 48_000;
/// Events of 2026-11-27, produced while `compact` runs.
const OPEN: i64 = 12_000;
const DAY_MS: i64 = 86_400_000;

/// Events `ids` of a day's `count`, in time order through day `day` (0 = 2026-11-26), so a
/// batch of one Kafka partition falls into one or two hourly partitions.
fn timed(ids: std::ops::Range<i64>, first: i64, count: i64, day: i64) -> Vec<OutRecord> {
    ids.map(|id| timed_one(id, first, count, day)).collect()
}

/// Event `id` of [`timed`]'s sequence; ids past `first + count` run on into the next days.
fn timed_one(id: i64, first: i64, count: i64, day: i64) -> OutRecord {
    let ts = DAY_START_MS + day * DAY_MS + (id - first) * DAY_MS / count;
    OutRecord {
        partition: Some((id % i64::from(PARTITIONS)) as i32),
        key: None,
        payload: format!(r#"{{"id":{id},"ts":{ts},"name":"item-{}"}}"#, id % 97).into_bytes(),
        timestamp_ms: Some(ts),
    }
}

/// Produces `events` to [`TOPIC`] in chunks of `chunk` through one producer, each acknowledged
/// before a pause of `pause`.
fn paced(brokers: &str, events: Vec<OutRecord>, chunk: usize, pause: Duration) {
    paced_to(brokers, TOPIC, events, chunk, pause);
}

/// [`paced`] to `topic`.
fn paced_to(brokers: &str, topic: &str, events: Vec<OutRecord>, chunk: usize, pause: Duration) {
    paced_until(brokers, topic, events, chunk, pause, || false);
}

/// [`paced_to`] until `events` run out or, checked before each chunk, `stop` holds; returns
/// how many events it produced.
fn paced_until(
    brokers: &str,
    topic: &str,
    events: impl IntoIterator<Item = OutRecord>,
    chunk: usize,
    pause: Duration,
    stop: impl Fn() -> bool,
) -> i64 {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let mut events = events.into_iter().peekable();
    let mut produced = 0;
    while events.peek().is_some() && !stop() {
        for r in events.by_ref().take(chunk) {
            let mut record = BaseRecord::<(), Vec<u8>>::to(topic).payload(&r.payload);
            if let Some(p) = r.partition {
                record = record.partition(p);
            }
            if let Some(ts) = r.timestamp_ms {
                record = record.timestamp(ts);
            }
            producer.send(record).map_err(|(e, _)| e).expect("send");
            produced += 1;
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
        std::thread::sleep(pause);
    }
    produced
}

/// A Kafka table on `topic` whose `run` commits every 50 ms: the consumer fetches as soon as
/// anything is there (librdkafka waits up to 500 ms for more by default).
fn frequent_commits(brokers: &str, topic: &str) -> TableConfig {
    TableConfig::kafka(brokers, topic)
        .kafka_options(Some(
            "\"session.timeout.ms\" = \"6000\"\n\"fetch.wait.max.ms\" = \"5\"",
        ))
        .writer("max_age = \"50ms\"")
}

fn files_per_partition(status: &serde_json::Value) -> Vec<(String, u64)> {
    version_of(status, 1).expect("v1")["files_per_partition"]
        .as_object()
        .expect("files_per_partition")
        .iter()
        .map(|(p, n)| (p.clone(), n.as_u64().unwrap_or_default()))
        .collect()
}

/// Every reader sees ids `0..total` exactly once, each at its own source coordinates.
fn assert_exact(dir: &std::path::Path, total: i64, when: &str) {
    let seen = read_lake(
        dir,
        "events",
        1,
        "delta",
        &["duckdb", "deltars", "polars"],
        "id",
    );
    for (reader, s) in &seen {
        assert_eq!(s["rows"], total, "{when}, {reader}: rows");
        assert_eq!(s["distinct_ids"], total, "{when}, {reader}: distinct ids");
        assert_eq!(
            s["distinct_offsets"], total,
            "{when}, {reader}: distinct coordinates"
        );
        assert_eq!(
            s["sum"],
            (0..total).sum::<i64>(),
            "{when}, {reader}: id checksum"
        );
    }
}

#[test]
fn compaction_beside_a_running_writer_leaves_few_files_and_every_event_once() {
    let (_kafka, brokers) = mock_kafka(&[(TOPIC, PARTITIONS)]);
    let w = World::with(&frequent_commits(&brokers, TOPIC));
    let (d, cli) = (w.path(), w.cli());
    // Day one trickles in (40 events every 30 ms) while `run` commits every 50 ms: hundreds of
    // small commits, each into one or two hourly partitions.
    let mut run = spawn_run(d, &[], "run.log");
    paced(
        &brokers,
        timed(0..CLOSED, 0, CLOSED, 0),
        40,
        Duration::from_millis(30),
    );
    assert!(
        wait_for(Duration::from_secs(300), || stored_total(d, 0)
            == CLOSED as u64),
        "v1 does not hold day one:\n{}",
        log_of(d, "run.log")
    );
    let before = cli.status_json();
    let commits = version_of(&before, 1).unwrap()["commits"].as_u64().unwrap();
    eprintln!("day one: {commits} commits");
    assert!(commits >= 500, "only {commits} commits");
    let day_one: Vec<_> = files_per_partition(&before)
        .into_iter()
        .filter(|(p, _)| p.starts_with("date=2026-11-26/"))
        .collect();
    assert_eq!(day_one.len(), 24, "{day_one:?}");
    assert!(
        day_one.iter().all(|(_, n)| *n >= 2),
        "small files expected: {day_one:?}"
    );

    // Day two arrives while `compact` rewrites day one (and whatever of day two it finds).
    let producer = {
        let brokers = brokers.clone();
        std::thread::spawn(move || {
            paced(
                &brokers,
                timed(CLOSED..CLOSED + OPEN, CLOSED, OPEN, 1),
                1_000,
                Duration::from_millis(250),
            );
        })
    };
    let report: serde_json::Value =
        serde_json::from_str(&cli.table_ok("compact", &["--json"])).expect("compact --json");
    producer.join().unwrap();
    assert!(
        report["files_removed"].as_u64().unwrap() >= 24 * 3,
        "{report}"
    );
    assert_eq!(report["superseded"], 0, "{report}");
    let total = CLOSED + OPEN;
    run.stop_once_stored(d, total as u64, Duration::from_secs(120), "run.log");

    let after = cli.status_json();
    for (p, n) in files_per_partition(&after) {
        if p.starts_with("date=2026-11-26/") {
            assert!(n <= 2, "closed partition {p} has {n} files");
        }
    }
    assert_exact(d, total, "after compacting beside run");

    // Compacting day two now that nothing writes: the stored offsets do not move, and the
    // version still holds every event once.
    let offsets = version_of(&after, 1).unwrap()["offsets"].clone();
    let out = cli.table_ok("compact", &["--partition", "date=2026-11-27"]);
    assert!(out.contains("compacted"), "{out}");
    let last = cli.status_json();
    assert_eq!(version_of(&last, 1).unwrap()["offsets"], offsets);
    for (p, n) in files_per_partition(&last) {
        assert!(n <= 2, "partition {p} has {n} files after compacting it");
    }
    assert_exact(d, total, "after compacting day two");
    let again = cli.table_ok("compact", &["--dry-run", "--json"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        again["files_removed"], 0,
        "nothing left to compact: {again}"
    );

    // Vacuum: a retention shorter than the table's deletedFileRetentionDuration is refused
    // unless asked for; then the data files on disk are exactly the ones the log lists.
    let short = cli.table("vacuum", &["--retain", "0s"]);
    assert!(!short.status.success());
    assert!(
        crate::fixture::stderr(&short).contains("--allow-short-retention"),
        "{}",
        crate::fixture::stderr(&short)
    );
    let listed: u64 = files_per_partition(&last).iter().map(|(_, n)| n).sum();
    assert!(
        data_files_on_disk(d) > listed as usize,
        "compaction left the replaced files"
    );
    let out = cli.table_ok("vacuum", &["--retain", "0s", "--allow-short-retention"]);
    assert!(out.contains("deleted"), "{out}");
    assert_eq!(data_files_on_disk(d), listed as usize);
    assert_exact(d, total, "after vacuum");
}

/// Parquet files under `lake/events/v1`, outside the hidden (`_…`) directories.
fn data_files_on_disk(dir: &std::path::Path) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .expect("read_dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('_'))
            })
            .map(|p| {
                if p.is_dir() {
                    walk(&p)
                } else {
                    usize::from(p.extension().is_some_and(|e| e == "parquet"))
                }
            })
            .sum()
    }
    walk(&dir.join("lake/events/v1"))
}

/// `_delta_log` stays bounded: with a checkpoint every 5 commits and a 1 s log retention,
/// the early commit files are deleted as `run` goes on, and every reader (and `status`) still
/// opens the version from its checkpoint.
#[test]
fn expired_commit_files_are_cleaned_up_and_readers_still_open_the_table() {
    let topic = "log-cleanup";
    let (_kafka, brokers) = mock_kafka(&[(topic, PARTITIONS)]);
    let table =
        frequent_commits(&brokers, topic).writer("checkpoint_interval = 5\nlog_retention = \"1s\"");
    let w = World::with(&table);
    let (d, cli) = (w.path(), w.cli());
    let mut run = spawn_run(d, &[], "run.log");
    const TOTAL: i64 = 3_000;
    paced_to(
        &brokers,
        topic,
        timed(0..TOTAL, 0, TOTAL, 0),
        50,
        Duration::from_millis(100),
    );
    run.stop_once_stored(d, TOTAL as u64, Duration::from_secs(120), "run.log");
    let status = cli.status_json();
    let commits = version_of(&status, 1).unwrap()["commits"].as_u64().unwrap();
    let log_dir = d.join("lake/events/v1/_delta_log");
    let json: Vec<u64> = std::fs::read_dir(&log_dir)
        .expect("_delta_log")
        .filter_map(|e| {
            let name = e.expect("dir entry").file_name();
            let name = name.to_string_lossy();
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    let checkpoints = std::fs::read_dir(&log_dir)
        .expect("_delta_log")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().contains(".checkpoint."))
        })
        .count();
    eprintln!(
        "{commits} commits; {} commit files and {checkpoints} checkpoints left",
        json.len()
    );
    assert!(commits >= 20, "only {commits} commits");
    assert!(
        !json.contains(&0),
        "the first commit file outlived its retention: {json:?}"
    );
    assert!(
        (json.len() as u64) < commits / 2,
        "{} of {commits} commit files left",
        json.len()
    );
    assert_exact(d, TOTAL, "after log clean-up");
    assert_eq!(
        version_of(&status, 1).unwrap()["rows"],
        TOTAL,
        "status reads the version from its checkpoint"
    );
}

/// Two compactions stopped at their crash points just before and just after their commit,
/// then `compact` and `run` SIGKILLed at random moments (24 kills; `KAPPA_LAKE_TEST_SEED`
/// replays a run), all while events keep arriving (until the last kill, so every compaction
/// has fresh small files to work on): every reader sees each event exactly once throughout,
/// and one compaction run to its end afterwards finishes the job.
#[test]
fn compaction_and_run_killed_at_random_lose_and_duplicate_nothing() {
    use rand::{Rng, SeedableRng};
    let topic = "compact-kills";
    let (_kafka, brokers) = mock_kafka(&[(topic, PARTITIONS)]);
    let table = frequent_commits(&brokers, topic).kafka_options(Some(
        "\"session.timeout.ms\" = \"3000\"\n\"heartbeat.interval.ms\" = \"600\"\n\"fetch.wait.max.ms\" = \"5\"",
    ));
    let w = World::with(&table);
    let (d, cli) = (w.path(), w.cli());
    // 40 events every 30 ms plus a flush (400-500 events/s here), a day of event time per
    // 24,000 events, until the kills are done.
    const DAILY: i64 = 24_000;
    let kills_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (brokers, kills_done) = (brokers.clone(), kills_done.clone());
        std::thread::spawn(move || {
            paced_until(
                &brokers,
                topic,
                (0..).map(|id| timed_one(id, 0, DAILY, 0)),
                40,
                Duration::from_millis(30),
                || kills_done.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(crate::support::seed());
    let ms = Duration::from_millis;
    let mut run = cli.spawn_run(&[], "run-0.log");
    assert!(
        wait_for(Duration::from_secs(60), || cli.commits(1) >= 20),
        "run does not commit:\n{}",
        log_of(d, "run-0.log")
    );
    // Two compactions stop at their crash points, around their first commit.
    for point in ["compact.before_commit", "compact.after_commit"] {
        let out = Cli::new(d)
            .env("FAILPOINTS", &format!("{point}=return"))
            .table("compact", &[]);
        let stderr = crate::fixture::stderr(&out);
        assert!(
            !out.status.success() && stderr.contains(&format!("crash point `{point}` reached")),
            "{point}: {stderr}"
        );
    }
    // Mostly compactions: a killed `run`'s partitions stay with its ghost until the session
    // times out (3 s), so each run kill waits for the new one to commit.
    let (mut compact_kills, mut run_kills, mut round) = (0, 0, 0);
    let mut lasted = ms(800);
    while compact_kills + run_kills < 24 {
        round += 1;
        assert!(
            round < 200,
            "{compact_kills} + {run_kills} kills in 200 rounds"
        );
        std::thread::sleep(ms(rng.random_range(100..600)));
        if run_kills < 6 && rng.random_bool(0.3) {
            let before = cli.commits(1);
            run.kill().expect("SIGKILL run");
            run.wait().expect("reap run");
            run_kills += 1;
            let log = format!("run-{round}.log");
            run = cli.spawn_run(&[], &log);
            assert!(
                wait_for(Duration::from_secs(60), || cli.commits(1) > before),
                "the restarted run does not commit:\n{}",
                log_of(d, &log)
            );
        } else {
            // Killed at a moment drawn from how long compactions run to their end (a running
            // mean), so the kills land inside them however fast they are on this machine.
            let log = format!("compact-{round}.log");
            let started = Instant::now();
            let mut compact = cli.spawn(&cli.table_args("compact", &[]), &log);
            let kill_at = ms(rng.random_range(0..=lasted.as_millis() as u64));
            while started.elapsed() < kill_at && !compact.exited() {
                std::thread::sleep(ms(2));
            }
            if compact.exited() {
                lasted = (lasted + started.elapsed()) / 2;
            } else {
                compact.kill().expect("SIGKILL compact");
                compact.wait().expect("reap compact");
                compact_kills += 1;
            }
        }
    }
    eprintln!("{round} rounds: {compact_kills} compactions and {run_kills} runs killed");
    assert!(
        compact_kills >= 12 && run_kills >= 3,
        "{compact_kills} compactions and {run_kills} runs killed"
    );
    kills_done.store(true, std::sync::atomic::Ordering::Relaxed);
    let total = producer.join().expect("producer");
    eprintln!("{total} events produced");
    assert!(
        wait_for(Duration::from_secs(120), || stored_total(d, 0)
            == total as u64),
        "v1 does not hold every event:\n{}",
        log_of(d, &format!("run-{round}.log"))
    );
    assert_exact(d, total, "after the kills");

    // A compaction run to its end (beside `run`) finishes the job.
    cli.table_ok("compact", &[]);
    run.stop();
    for (p, n) in files_per_partition(&cli.status_json()) {
        assert!(
            n <= 2,
            "partition {p} has {n} files after a full compaction"
        );
    }
    assert_exact(d, total, "after a full compaction");
}

/// `[table.maintenance]`: `run` compacts, by itself, the partitions no file was added to for
/// `compact_after`, while it keeps writing newer ones, and vacuums the files compaction
/// replaced once they are older than the version's `deleted_file_retention`; readers see every
/// event once.
#[test]
fn run_compacts_idle_partitions_and_vacuums_by_itself() {
    let topic = "auto-compact";
    let (_kafka, brokers) = mock_kafka(&[(topic, PARTITIONS)]);
    let table = frequent_commits(&brokers, topic)
        .writer("deleted_file_retention = \"3s\"")
        .after(
            "[table.maintenance]\ncompact_after = \"2s\"\ncompact_min_files = 2\nvacuum_every = \"2s\"",
        );
    let w = World::with(&table);
    let (d, cli) = (w.path(), w.cli());
    let mut run = cli.spawn_run(&[], "run.log");
    const DAY: i64 = 6_000;
    paced_to(
        &brokers,
        topic,
        timed(0..DAY, 0, DAY, 0),
        50,
        Duration::from_millis(30),
    );
    let day_one = |status: &serde_json::Value| -> Vec<(String, u64)> {
        files_per_partition(status)
            .into_iter()
            .filter(|(p, _)| p.starts_with("date=2026-11-26/"))
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(60), || stored_total(d, 0) == DAY as u64),
        "v1 does not hold day one:\n{}",
        log_of(d, "run.log")
    );
    // Day two keeps `run` busy while day one's last partitions go idle and get compacted
    // (its first ones already were, while day one was still arriving).
    let producer = {
        let brokers = brokers.clone();
        std::thread::spawn(move || {
            paced_to(
                &brokers,
                topic,
                timed(DAY..2 * DAY, DAY, DAY, 1),
                50,
                Duration::from_millis(60),
            );
        })
    };
    assert!(
        wait_for(Duration::from_secs(60), || day_one(&cli.status_json())
            .iter()
            .all(|(_, n)| *n <= 2)),
        "day one was not compacted: {:?}\n{}",
        day_one(&cli.status_json()),
        log_of(d, "run.log")
    );
    assert!(
        !producer.is_finished(),
        "compacted only after day two was written"
    );
    // It compacted on threads of its own at a lower priority than the writer's.
    let nice = compaction_threads_nice(run.id());
    assert!(
        !nice.is_empty() && nice.iter().all(|&n| n == 10),
        "the compaction's threads' nice values: {nice:?}"
    );
    let optimize_commits = std::fs::read_dir(d.join("lake/events/v1/_delta_log"))
        .expect("_delta_log")
        .filter_map(|e| {
            let path = e.expect("dir entry").path();
            (path.extension()? == "json").then(|| std::fs::read_to_string(path).ok())?
        })
        .filter(|commit| commit.contains(r#""operation":"OPTIMIZE""#))
        .count();
    assert!(optimize_commits > 0, "no compaction in the log");
    producer.join().expect("producer");
    // Once every partition is idle and compacted, the vacuum leaves on disk exactly the files
    // the log lists.
    let listed_and_on_disk = || {
        let listed: u64 = files_per_partition(&cli.status_json())
            .iter()
            .map(|(_, n)| n)
            .sum();
        (listed as usize, data_files_on_disk(d))
    };
    assert!(
        wait_for(Duration::from_secs(90), || {
            let (listed, on_disk) = listed_and_on_disk();
            listed == on_disk && stored_total(d, 0) == 2 * DAY as u64
        }),
        "the replaced files were not vacuumed (listed, on disk): {:?}\n{}",
        listed_and_on_disk(),
        log_of(d, "run.log")
    );
    run.stop_once_stored(d, 2 * DAY as u64, Duration::from_secs(60), "run.log");
    assert_exact(d, 2 * DAY, "after run compacted and vacuumed by itself");
}

/// `[table.maintenance]` over a long steady `run` (`KAPPA_LAKE_TEST_MAINTENANCE_SOAK_SECS`,
/// default 90; scripts/soak.sh runs 30 minutes): events arrive at a steady rate with event
/// time running 600 times faster than the wall clock (an hourly partition per 6 s, 2 % of the
/// events two hours late), to two tables at once, one with automatic compaction and one
/// without. Throughout, every closed partition of the first holds at most 2 files and its
/// `_delta_log` stays bounded (a checkpoint every 10 commits, 10 s log retention); it ingests
/// at the rate of its peer without compaction (within 15 %); every reader sees every event
/// once at the end.
#[test]
fn a_steady_run_keeps_closed_partitions_compacted_and_its_log_bounded() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let secs: u64 = std::env::var("KAPPA_LAKE_TEST_MAINTENANCE_SOAK_SECS").map_or(90, |s| {
        s.parse()
            .expect("KAPPA_LAKE_TEST_MAINTENANCE_SOAK_SECS: seconds")
    });
    /// Wall seconds per event-time hour.
    const HOUR_SECS: u64 = 6;
    /// Events per second to each table.
    const RATE: u64 = 1_000;
    /// How long after its last event a partition must be compacted by: `compact_after` (3 s),
    /// a pass every second, and room for a loaded machine.
    const SETTLE_SECS: u64 = 25;
    let (_kafka, brokers) = mock_kafka(&[("soak-auto", PARTITIONS), ("soak-off", PARTITIONS)]);
    let table = |topic: &str, mode: &str| {
        TableConfig::kafka(&brokers, topic)
            .kafka_options(Some("\"fetch.wait.max.ms\" = \"50\""))
            .writer("max_age = \"1s\"\ncheckpoint_interval = 10\nlog_retention = \"10s\"")
            .after(&format!(
                "[table.maintenance]\ncompact = \"{mode}\"\nvacuum = \"{mode}\"\ncompact_after = \"3s\"\ncompact_min_files = 2"
            ))
    };
    let (auto, off) = (
        World::with(&table("soak-auto", "auto")),
        World::with(&table("soak-off", "off")),
    );
    let mut runs = [
        auto.cli().spawn_run(&[], "run.log"),
        off.cli().spawn_run(&[], "run.log"),
    ];
    let start = Instant::now();
    let produced = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (brokers, produced, stop) = (brokers.clone(), produced.clone(), stop.clone());
        std::thread::spawn(move || steady_producer(&brokers, RATE, HOUR_SECS, &produced, &stop))
    };
    let log_dir = auto.path().join("lake/events/v1/_delta_log");
    let mut samples: Vec<Sample> = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(3));
        let at = start.elapsed();
        let status = auto.cli().status_json();
        let open_from = (at.as_secs().saturating_sub(SETTLE_SECS) / HOUR_SECS).saturating_sub(2);
        let crowded: Vec<(String, u64)> = files_per_partition(&status)
            .into_iter()
            .filter(|(p, n)| *n > 2 && hour_index(p) < open_from)
            .collect();
        assert!(
            crowded.is_empty(),
            "after {at:?}, closed partitions with more than 2 files: {crowded:?}\n{}",
            log_of(auto.path(), "run.log")
        );
        samples.push(Sample {
            at,
            produced: produced.load(Ordering::SeqCst),
            stored: [stored_total(auto.path(), 0), stored_total(off.path(), 0)],
            log_files: std::fs::read_dir(&log_dir).map_or(0, |d| d.count()),
        });
    }
    stop.store(true, Ordering::SeqCst);
    producer.join().expect("producer");
    let total = produced.load(Ordering::SeqCst);
    for w in [&auto, &off] {
        assert!(
            wait_for(Duration::from_secs(120), || stored_total(w.path(), 0)
                == total),
            "{} does not hold all {total} events:\n{}",
            w.path().display(),
            log_of(w.path(), "run.log")
        );
    }
    // Idle now, every partition is closed: all get compacted.
    assert!(
        wait_for(Duration::from_secs(60), || files_per_partition(
            &auto.cli().status_json()
        )
        .iter()
        .all(|(_, n)| *n <= 2)),
        "not every partition was compacted once idle:\n{}",
        log_of(auto.path(), "run.log")
    );
    let cpu = runs.each_ref().map(|r| cpu_seconds(r.id()));
    for run in &mut runs {
        run.stop();
    }

    // Ingest throughput over the steady part (after a third of the run), each table's events
    // stored per second.
    let steady: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at.as_secs() * 3 >= secs)
        .collect();
    let (first, last) = (steady[0], steady[steady.len() - 1]);
    let wall = (last.at - first.at).as_secs_f64();
    let rate = |i: usize| (last.stored[i] - first.stored[i]) as f64 / wall;
    let produced_rate = (last.produced - first.produced) as f64 / wall;
    // `_delta_log`: the most files in the first and the second half of the steady part.
    let half = steady.len() / 2;
    let most = |s: &[&Sample]| s.iter().map(|s| s.log_files).max().unwrap_or_default();
    let (early, late) = (most(&steady[..half]), most(&steady[half..]));
    let files = files_per_partition(&auto.cli().status_json());
    eprintln!(
        "{secs} s, {total} events, {} partitions ({} files): produced {produced_rate:.0}/s; \
         stored with compaction {:.0}/s, without {:.0}/s ({:.3}x); CPU s {:.1} vs {:.1}; \
         _delta_log files at most {early} then {late}",
        files.len(),
        files.iter().map(|(_, n)| n).sum::<u64>(),
        rate(0),
        rate(1),
        rate(0) / rate(1),
        cpu[0],
        cpu[1],
    );
    assert!(
        rate(0) >= 0.85 * rate(1),
        "with compaction {:.0} events/s, without {:.0}",
        rate(0),
        rate(1)
    );
    // Bounded: the commits of the last 10 s (a writer commit a second, plus compactions:
    // ~15), up to two checkpoint intervals (a commit that rebased may skip a clean-up: 20)
    // and a few checkpoints. A log that kept everything would hold ~1.2 files per second run.
    assert!(
        early.max(late) <= 60,
        "_delta_log keeps growing: at most {early} files, then {late}"
    );
    assert_exact(auto.path(), total as i64, "after the steady run");
}

/// One status sample of [`a_steady_run_keeps_closed_partitions_compacted_and_its_log_bounded`].
struct Sample {
    at: Duration,
    produced: u64,
    /// Events stored by the table with and the one without compaction.
    stored: [u64; 2],
    log_files: usize,
}

/// Produces ids 0, 1, … to `soak-auto` and `soak-off` alike, `rate` per second in chunks of
/// a tenth of a second, until `stop`; event time starts at 2026-11-26 and runs an hour per
/// `hour_secs` of wall time; every 50th event is two hours late. `produced` counts the
/// events both topics acknowledged.
fn steady_producer(
    brokers: &str,
    rate: u64,
    hour_secs: u64,
    produced: &std::sync::atomic::AtomicU64,
    stop: &std::sync::atomic::AtomicBool,
) {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::sync::atomic::Ordering;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let start = Instant::now();
    let speed = 3_600 / hour_secs as i64;
    let mut id: i64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let now = start.elapsed();
        let event_ms = now.as_millis() as i64 * speed;
        for _ in 0..rate / 10 {
            let late = if id % 50 == 49 { 2 * 3_600_000 } else { 0 };
            let ts = DAY_START_MS + (event_ms - late).max(0);
            let payload = format!(r#"{{"id":{id},"ts":{ts},"name":"item-{}"}}"#, id % 97);
            for topic in ["soak-auto", "soak-off"] {
                let record = BaseRecord::<(), String>::to(topic)
                    .payload(&payload)
                    .partition((id % i64::from(PARTITIONS)) as i32)
                    .timestamp(ts);
                producer.send(record).map_err(|(e, _)| e).expect("send");
            }
            id += 1;
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
        produced.store(id as u64, Ordering::SeqCst);
        let next =
            Duration::from_millis(100) * u32::try_from(id as u64 * 10 / rate).unwrap_or(u32::MAX);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// Hours since 2026-11-26T00 of an hourly partition `date=YYYY-MM-DD/hour=HH`.
fn hour_index(partition: &str) -> u64 {
    let (date, hour) = partition
        .strip_prefix("date=")
        .and_then(|p| p.split_once("/hour="))
        .unwrap_or_else(|| panic!("not an hourly partition: {partition}"));
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("partition date");
    let first = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).expect("2026-11-26");
    let hour: u64 = hour.parse().expect("partition hour");
    (day - first).num_days() as u64 * 24 + hour
}

/// User and system CPU seconds process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the parenthesised name: state (field 3) ... utime (14), stime (15).
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let ticks: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|f| f.parse().expect("utime/stime"))
        .collect();
    // SAFETY: sysconf only reads its integer argument.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks.iter().sum::<u64>() as f64 / per_second
}

/// The nice values of process `pid`'s automatic-compaction threads (`kappa-lake-compact…`;
/// Linux keeps 15 bytes of a thread's name).
fn compaction_threads_nice(pid: u32) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/<pid>/task");
    tasks
        .filter_map(|task| {
            let task = task.ok()?.path();
            let name = std::fs::read_to_string(task.join("comm")).ok()?;
            if !name.starts_with("kappa-lake-comp") {
                return None;
            }
            // Fields after the parenthesised name: state (field 3) ... nice (field 19).
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split(' ').nth(16)?.parse().ok()
        })
        .collect()
}

/// A plain-Parquet version is compacted into a new version with its definition, which is
/// then promoted: a glob reader of the current version (`read_parquet('vN/**/*.parquet')`,
/// polled throughout) never sees a row count other than the committed one.
#[test]
fn a_parquet_version_compacts_into_a_new_version_and_glob_readers_never_see_another_count() {
    let topic = "compact-parquet";
    let (_kafka, brokers) = mock_kafka(&[(topic, PARTITIONS)]);
    let w = World::with(&frequent_commits(&brokers, topic).format("parquet"));
    let (d, cli) = (w.path(), w.cli());
    let mut run = cli.spawn_run(&[], "run.log");
    const TOTAL: i64 = 12_000;
    paced_to(
        &brokers,
        topic,
        timed(0..TOTAL, 0, TOTAL, 0),
        100,
        Duration::from_millis(30),
    );
    run.stop_once_stored(d, TOTAL as u64, Duration::from_secs(120), "run.log");
    let before = parquet_files_per_partition(&d.join("lake/events/v1"));
    assert_eq!(before.len(), 24, "{before:?}");
    // (The first hours may arrive before `run` consumes: one file each.)
    assert!(
        before.values().filter(|&&n| n >= 2).count() >= 12,
        "small files expected: {before:?}"
    );

    let poller = GlobPoller::start(d);
    let out = cli.table_ok("compact", &["--json"]);
    let seen = poller.stop();
    let report: serde_json::Value = serde_json::from_str(&out).expect("compact --json");
    assert_eq!(report["version"], 1, "{report}");
    assert_eq!(report["into_version"], 2, "{report}");
    assert_eq!(report["promoted"], true, "{report}");
    assert_eq!(crate::support::current(d), 2);
    // What a glob reader of `current` saw, poll after poll: the committed count, from v1 then
    // from v2.
    assert!(
        seen.iter().all(|&(_, rows)| rows == TOTAL),
        "a glob reader saw another count: {seen:?}"
    );
    assert!(
        seen.iter().any(|&(v, _)| v == 1) && seen.iter().any(|&(v, _)| v == 2) && seen.len() >= 3,
        "too few polls during the compaction: {seen:?}"
    );
    let after = parquet_files_per_partition(&d.join("lake/events/v2"));
    assert_eq!(after.len(), 24, "{after:?}");
    assert!(
        after.values().all(|&n| n <= 2),
        "partitions of v2 with more than 2 files: {after:?}"
    );
    let polled_after = GlobPoller::start(d).stop();
    assert!(
        polled_after
            .iter()
            .all(|&(v, rows)| v == 2 && rows == TOTAL),
        "{polled_after:?}"
    );
    crate::kafka_support::assert_exactly_once(d, 2, TOTAL as u64);
    // v1 is left as it was (it is retired, then `gc` deletes it).
    assert_eq!(
        parquet_files_per_partition(&d.join("lake/events/v1")),
        before
    );
}

/// Data files per partition directory under a Parquet version's directory.
fn parquet_files_per_partition(
    version_dir: &std::path::Path,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    let mut stack = vec![version_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("version directory") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('_') {
                    stack.push(path);
                }
            } else if name.ends_with(".parquet") {
                let partition = dir
                    .strip_prefix(version_dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                *counts.entry(partition).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// A glob reader in its own process: reads `_kappa/current.json`, then counts the rows of
/// `read_parquet('lake/events/v<current>/**/*.parquet')` in DuckDB, again and again, until
/// stopped.
struct GlobPoller {
    child: std::process::Child,
    stop: std::path::PathBuf,
    out: std::path::PathBuf,
}

impl GlobPoller {
    fn start(dir: &std::path::Path) -> GlobPoller {
        let (stop, out) = (dir.join("poll.stop"), dir.join("poll.jsonl"));
        let _ = std::fs::remove_file(&stop);
        let script = r#"
import duckdb, json, os, sys
root, out, stop = sys.argv[1:4]
con = duckdb.connect()
con.sql('SET enable_progress_bar = false')
with open(out, 'w') as f:
    while True:
        last = os.path.exists(stop)
        try:
            with open(os.path.join(root, '_kappa', 'current.json')) as p:
                v = json.load(p)['version']
        except (OSError, ValueError) as e:
            if last:
                sys.exit(f'no readable pointer: {e}')
            continue
        n = con.sql(f"SELECT count(*) FROM read_parquet('{root}/v{v}/**/*.parquet')").fetchone()[0]
        f.write(json.dumps([v, n]) + '\n')
        f.flush()
        if last:
            break
"#;
        let child = std::process::Command::new(crate::support::python())
            .args(["-c", script])
            .arg(dir.join("lake/events"))
            .args([&out, &stop])
            .spawn()
            .expect("start the glob reader");
        // Its first poll is in before anything else happens.
        assert!(
            wait_for(Duration::from_secs(30), || std::fs::read_to_string(&out)
                .is_ok_and(|s| !s.is_empty())),
            "the glob reader did not start"
        );
        GlobPoller { child, stop, out }
    }

    /// Stops it after one more poll; every poll as (version, rows).
    fn stop(mut self) -> Vec<(u64, i64)> {
        std::fs::write(&self.stop, "").expect("stop file");
        let status = self.child.wait().expect("glob reader");
        assert!(status.success(), "the glob reader failed: {status}");
        std::fs::read_to_string(&self.out)
            .expect("polls")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a poll"))
            .collect()
    }
}
