//! The raw archive (`encoding = "raw"`): a table of the topic's records as they came.

use std::time::Duration;

use kappa_lake::source::mock::{OutRecord, produce};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::fixture::{TableConfig, World, mock_kafka};
use crate::kafka_support::{DAY_START_MS, assert_exactly_once};
use crate::support::{duckdb, python, scan, tool_ok};

/// What record `i` of the archive test is: every kind of key, value and header a topic holds.
struct Produced {
    partition: i32,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp_ms: i64,
}

fn record(i: i64) -> Produced {
    let value = match i % 5 {
        0 => None,                                           // a tombstone
        1 => Some(Vec::new()),                               // empty, not null
        2 => Some(vec![0xff, 0x00, (i % 256) as u8, b'\n']), // not UTF-8
        _ => Some(format!(r#"{{"id":{i}}}"#).into_bytes()),
    };
    let key = (i % 3 != 0).then(|| format!("k{i}").into_bytes());
    let headers = match i % 4 {
        0 => Vec::new(),
        // Repeated names keep their order; a header's value may be null.
        _ => vec![
            ("trace".to_string(), Some(i.to_string().into_bytes())),
            ("trace".to_string(), None),
        ],
    };
    Produced {
        partition: (i % 3) as i32,
        key,
        value,
        headers,
        // Three hours apart: the records span several days.
        timestamp_ms: DAY_START_MS + i * 3 * 3_600_000,
    }
}

fn produce_all(brokers: &str, topic: &str, records: &[Produced]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &r.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut out = BaseRecord::<Vec<u8>, Vec<u8>>::to(topic)
            .partition(r.partition)
            .timestamp(r.timestamp_ms)
            .headers(headers);
        if let Some(k) = &r.key {
            out = out.key(k);
        }
        if let Some(v) = &r.value {
            out = out.payload(v);
        }
        producer.send(out).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

fn hex(bytes: &Option<Vec<u8>>) -> serde_json::Value {
    match bytes {
        Some(b) => b
            .iter()
            .map(|x| format!("{x:02X}"))
            .collect::<String>()
            .into(),
        None => serde_json::Value::Null,
    }
}

#[test]
fn a_raw_archive_keeps_every_record_as_it_came() {
    const TOTAL: i64 = 60;
    let (_kafka, brokers) = mock_kafka(&[("raw", 3)]);
    let produced: Vec<Produced> = (0..TOTAL).map(record).collect();
    produce_all(&brokers, "raw", &produced);
    let world = World::with(
        &TableConfig::kafka(&brokers, "raw")
            .name("archive")
            .raw_archive(),
    );
    let cli = world.cli();
    cli.run_ok(&["--stop-at-end"]);

    // What each record must look like, by (partition, offset): offsets count per partition.
    let mut expected = Vec::new();
    let mut next = [0i64; 3];
    for r in &produced {
        let offset = next[r.partition as usize];
        next[r.partition as usize] += 1;
        let first = r.headers.first();
        expected.push(serde_json::json!([
            r.partition,
            offset,
            hex(&r.key),
            hex(&r.value),
            r.headers.len(),
            first.map(|h| h.0.clone()),
            first.and_then(|h| hex(&h.1).as_str().map(str::to_string)),
            r.headers.get(1).is_none_or(|h| h.1.is_none()),
            "create_time",
            r.timestamp_ms,
        ]));
    }
    expected.sort_by_key(|row| (row[0].as_i64(), row[1].as_i64()));
    let lake = world.path().join("lake");
    let rows = duckdb(&format!(
        "SELECT _kafka_partition, _kafka_offset, hex(key), hex(value), len(headers), \
         headers[1].key, hex(headers[1].value), headers[2].value IS NULL, timestamp_type, \
         epoch_ms(_kafka_timestamp) FROM {} ORDER BY 1, 2",
        scan(&lake, "archive", 1, "delta")
    ));
    let rows: Vec<serde_json::Value> = rows.into_iter().map(serde_json::Value::from).collect();
    assert_eq!(rows.len(), expected.len(), "one row per record");
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!(got, want, "archived record differs from what was produced");
    }

    // Partitioned by the records' Kafka timestamps, one directory per day.
    let days: std::collections::BTreeSet<i64> = produced
        .iter()
        .map(|r| r.timestamp_ms.div_euclid(86_400_000))
        .collect();
    let dirs = std::fs::read_dir(lake.join("archive/v1"))
        .expect("v1 exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("date="))
        .count();
    assert_eq!(
        dirs,
        days.len(),
        "one date= partition per day of Kafka timestamps"
    );

    // delta-rs reads the same rows, the tombstones' values null and the empty ones empty.
    // (os._exit: the interpreter's shutdown after delta-rs' threads sometimes aborts.)
    let script = "import os, sys, deltalake\n\
        t = deltalake.DeltaTable(sys.argv[1]).to_pyarrow_dataset().to_table()\n\
        v = t.column('value').to_pylist()\n\
        print(t.num_rows, sum(x is None for x in v), sum(x == b'' for x in v), flush=True)\n\
        os._exit(0)";
    let out = tool_ok(
        std::process::Command::new(python())
            .args(["-c", script])
            .arg(lake.join("archive/v1")),
        "start python",
        "delta-rs read failed\n",
    );
    let counts = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let tombstones = produced.iter().filter(|r| r.value.is_none()).count();
    let empty = produced
        .iter()
        .filter(|r| r.value.as_ref().is_some_and(Vec::is_empty))
        .count();
    assert_eq!(counts, format!("{TOTAL} {tombstones} {empty}"));
    let status = cli.status_json();
    assert_eq!(status["tables"][0]["versions"][0]["dead_letters"], 0);
}

/// Events of about 1 KB (a padded name): a few thousand per partition pass the mock cluster's
/// 5 MB per partition, after which it drops the oldest message sets (retention).
fn big_events(ids: std::ops::Range<i64>) -> impl Iterator<Item = OutRecord> {
    ids.map(|id| OutRecord {
        partition: Some((id % 2) as i32),
        key: None,
        payload: format!(
            r#"{{"id":{id},"ts":{},"name":"{}"}}"#,
            DAY_START_MS + (id * 7919) % 86_400_000,
            "x".repeat(1000)
        )
        .into_bytes(),
        timestamp_ms: Some(DAY_START_MS + id),
    })
}

/// The first offset each of the topic's 2 partitions still holds.
fn low_watermarks(brokers: &str, topic: &str) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "kappa-lake-test-watermarks")
        .create()
        .expect("consumer");
    (0..2)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .0
        })
        .collect()
}

/// Records produced to the topic of [`past_retention`]; the archive holds the first `TOTAL`.
const TOTAL: i64 = 12_000;
const ALL: i64 = TOTAL + 400;

/// A topic `events` (2 partitions) that grew past the mock cluster's retention while `run`
/// kept its raw archive (`archive`) and table `events` (v1) up with it; the last 400 records
/// reached only `events`. Returns the world, the two tables' configs and the first offset
/// each partition still holds (all above 0).
fn past_retention(brokers: &str) -> (World, TableConfig, TableConfig, Vec<i64>) {
    let archive = TableConfig::kafka(brokers, "events")
        .name("archive")
        .default_group()
        .raw_archive();
    let events = TableConfig::kafka(brokers, "events")
        .default_group()
        .source_keys(r#"archive = "archive""#);
    let world = World::new();
    // `events` first: the helpers read the first table of `status`.
    world.config_tables(&[events.clone(), archive.clone()]);
    let cli = world.cli();
    // `run` keeps both tables up with the topic while it grows past its retention: each step
    // adds less than what retention keeps, so the live tables never miss a record.
    for ids in [0..4_000, 4_000..8_000, 8_000..TOTAL] {
        produce(brokers, "events", big_events(ids)).expect("produce");
        cli.run_ok(&["--stop-at-end"]);
    }
    // The last records only reach `events` (a config without the archive; naming it changes
    // nothing in the definition): a rebuild must read them from the topic, after the archive.
    TableConfig::kafka(brokers, "events")
        .default_group()
        .write_to(world.path());
    produce(brokers, "events", big_events(TOTAL..ALL)).expect("produce");
    cli.run_ok(&["--stop-at-end"]);
    let low = low_watermarks(brokers, "events");
    assert!(
        low.iter().all(|&l| l > 0),
        "the topic's start moved (retention): {low:?}"
    );
    assert_exactly_once(world.path(), 1, ALL as u64);
    (world, events, archive, low)
}

/// `events` with a changed definition (a computed column, daily partitions): what the tests
/// rebuild.
fn changed(events: TableConfig) -> TableConfig {
    events
        .granularity("day")
        .table_keys(r#"transform = "SELECT *, id * 2 AS twice FROM events""#)
}

/// v2 holds every record ever produced exactly once, equal to v1 by `diff`, and is current.
fn assert_rebuilt_whole(world: &World) {
    let cli = world.cli();
    assert_eq!(cli.status_json()["tables"][0]["current"], 2);
    assert_exactly_once(world.path(), 2, ALL as u64);
    let diff = cli.diff_ok(1, 2);
    assert!(
        diff.lines()
            .any(|l| l.starts_with("total") && l.ends_with("yes")),
        "{diff}"
    );
}

#[test]
fn a_rebuild_replays_the_archive_then_the_topic_past_its_retention() {
    let (_kafka, brokers) = mock_kafka(&[("events", 2)]);
    let (world, events, archive, low) = past_retention(&brokers);
    let cli = world.cli();
    // A definition change, rebuilt from the archive and then the topic.
    world.config_tables(&[changed(events.clone()), archive.clone()]);
    // `status --topic` shows each partition's low watermark and what the archive holds;
    // `plan` says the rebuild it calls for misses nothing.
    let status: serde_json::Value =
        serde_json::from_str(&cli.cmd_ok("status", &["--json", "--topic"])).expect("JSON");
    let archived: Vec<u64> = (0..2)
        .map(|p| {
            let part = &status["tables"][0]["topic"]["partitions"][p];
            assert_eq!(part["partition"], p, "{status}");
            assert_eq!(part["low_watermark"], low[p], "{status}");
            assert!(part["high_watermark"].as_i64() > Some(low[p]), "{status}");
            assert_eq!(part["archive"]["first"], 0, "{status}");
            assert_eq!(
                status["tables"][1]["topic"]["partitions"][p]["archive"], part["archive"],
                "the raw table shows its own coverage: {status}"
            );
            part["archive"]["end"].as_u64().expect("archive end")
        })
        .collect();
    assert_eq!(archived.iter().sum::<u64>(), TOTAL as u64, "{status}");
    assert_eq!(status["tables"][0]["topic"]["archive"], "archive v1");
    assert_eq!(status["tables"][0]["topic"]["gaps"], serde_json::json!([]));
    assert!(
        crate::fixture::cli::version_of(&cli.status_json(), 1).is_some()
            && cli.status_json()["tables"][0].get("topic").is_none(),
        "plain `status` does not ask the broker"
    );
    let plan: serde_json::Value =
        serde_json::from_str(&cli.cmd_ok("plan", &["--json"])).expect("JSON");
    assert_eq!(plan["tables"][0]["plan"]["action"], "rebuild", "{plan}");
    assert_eq!(
        plan["tables"][0]["replay"]["gaps"],
        serde_json::json!([]),
        "{plan}"
    );
    let out = cli.rebuild_ok(&["--promote"]);
    assert!(
        out.contains(&format!(
            "{TOTAL} records replayed from the archive (archive v1), then the topic"
        )),
        "{out}"
    );
    assert_rebuilt_whole(&world);
    // The rebuild kept the archive's index beside it: the next reader reads only newer files.
    assert!(
        world
            .path()
            .join("lake/archive/v1/_kappa_archive/index.json")
            .is_file()
    );

    // `run`'s auto_rebuild reads the archive too: another definition change (hourly again),
    // rebuilt in the background and promoted though the topic lacks its start.
    let auto = changed(events.clone())
        .granularity("hour")
        .after("[table.versions]\nauto_rebuild = true");
    world.config_tables(&[auto, archive]);
    cli.run_ok(&["--stop-at-end"]);
    assert_eq!(cli.status_json()["tables"][0]["current"], 3);
    assert_exactly_once(world.path(), 3, ALL as u64);

    // Without the archive the topic alone misses the start: refused, naming the ranges.
    let refused = cli.rebuild(&["--source", "topic", "--force"]);
    let stderr = crate::fixture::stderr(&refused);
    assert!(!refused.status.success(), "{stderr}");
    for (p, l) in low.iter().enumerate() {
        assert!(
            stderr.contains(&format!("events/{p} [0, {l})")),
            "names the missing range of partition {p}: {stderr}"
        );
    }
    // With --allow-gap it builds what the topic holds, and says what is missing.
    let out = cli.rebuild_ok(&["--source", "topic", "--force", "--allow-gap"]);
    assert!(
        out.contains("missing (--allow-gap): events/0 [0, "),
        "{out}"
    );
    let held: i64 = low.iter().sum::<i64>();
    let v4 = cli.status_json()["tables"][0]["versions"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["version"] == 4).cloned())
        .expect("v4 in status");
    assert_eq!(
        v4["rows"],
        ALL - held,
        "v4 holds what the topic still holds"
    );
    let gaps: Vec<String> = low
        .iter()
        .enumerate()
        .map(|(p, l)| format!("events/{p} [0, {l})"))
        .collect();
    assert_eq!(v4["gaps"], serde_json::json!(gaps), "status shows the gap");
    assert!(
        crate::fixture::cli::version_of(&cli.status_json(), 2).is_some_and(|v| v["gaps"].is_null()),
        "a whole version shows none"
    );
    // Promoting it is refused, naming the gap, unless --allow-gap.
    let refused = cli.table("promote", &["--version", "4"]);
    let stderr = crate::fixture::stderr(&refused);
    assert!(
        !refused.status.success() && stderr.contains(&gaps[0]) && stderr.contains("--allow-gap"),
        "{stderr}"
    );
    cli.table_ok("promote", &["--version", "4", "--allow-gap"]);
    assert_eq!(cli.status_json()["tables"][0]["current"], 4);

    // An archive started late (after retention dropped the start) covers only what the topic
    // still held then: the rebuild is refused, naming the same ranges.
    let late = TableConfig::kafka(&brokers, "events")
        .name("late")
        .default_group()
        .raw_archive();
    let with_late = |t: TableConfig| t.source_keys(r#"archive = "late""#);
    let live = changed(TableConfig::kafka(&brokers, "events").default_group()).granularity("hour");
    world.config_tables(&[with_late(live), late.clone()]);
    cli.run_ok(&["--stop-at-end"]);
    // Back to v1's definition: one `plan` calls a rebuild for.
    let events = with_late(TableConfig::kafka(&brokers, "events").default_group());
    world.config_tables(&[events, late]);
    // `plan` names them before anything is rebuilt, and `status --topic` shows where the late
    // archive starts.
    let plan: serde_json::Value =
        serde_json::from_str(&cli.cmd_ok("plan", &["--json"])).expect("JSON");
    assert_eq!(
        plan["tables"][0]["replay"]["gaps"],
        serde_json::json!(gaps),
        "{plan}"
    );
    let text = cli.cmd_ok("plan", &[]);
    assert!(
        text.contains(&format!("would miss {}", gaps.join(", "))) && text.contains("--allow-gap"),
        "{text}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&cli.cmd_ok("status", &["--json", "--topic"])).expect("JSON");
    for (p, l) in low.iter().enumerate() {
        let first = &status["tables"][0]["topic"]["partitions"][p]["archive"]["first"];
        assert!(
            first.as_i64() >= Some(*l),
            "the late archive starts past {l}: {status}"
        );
    }
    let refused = cli.rebuild(&["--force"]);
    let stderr = crate::fixture::stderr(&refused);
    assert!(
        !refused.status.success() && gaps.iter().all(|g| stderr.contains(g.as_str())),
        "a late archive leaves the same gap: {stderr}"
    );
}

#[test]
fn a_rebuild_from_the_archive_killed_ten_times_gives_the_same_result() {
    use rand::{Rng, SeedableRng};
    let (_kafka, brokers) = mock_kafka(&[("events", 2)]);
    let (world, events, archive, _) = past_retention(&brokers);
    let cli = world.cli();
    // A commit every batch of 40 (about 310 in all), so that each life commits some and is
    // killed between commits: in the archive, at its end where the topic takes over, in the
    // topic.
    let events = changed(events)
        .source_keys("batch_size = 40")
        .writer(r#"max_age = "1ms""#);
    world.config_tables(&[events, archive]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(crate::support::seed());
    let mut kills = 0;
    for life in 0..40 {
        let args = cli.table_args("rebuild", &["--promote"]);
        let before = cli.commits(2);
        let mut child = cli.spawn(&args, &format!("rebuild-{life}.log"));
        // Once this life has committed (status --json), anywhere in what follows.
        let committed = crate::kafka_support::wait_for(Duration::from_secs(60), || {
            cli.commits(2) > before || child.0.try_wait().ok().flatten().is_some()
        });
        assert!(committed, "rebuild life {life} committed nothing in 60 s");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..150)));
        match child.try_wait().expect("wait") {
            Some(status) if status.success() => break,
            Some(status) => panic!("rebuild life {life} failed ({status})"),
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                kills += 1;
            }
        }
        if kills == 10 {
            break;
        }
    }
    eprintln!("{kills} kills");
    assert!(
        kills >= 10,
        "only {kills} kills landed before the rebuild finished"
    );
    if cli.status_json()["tables"][0]["current"] != 2 {
        let out = cli.rebuild_ok(&["--promote"]);
        assert!(out.contains("promoted"), "{out}");
    }
    assert_rebuilt_whole(&world);
    let versions = cli.status_json()["tables"][0]["versions"]
        .as_array()
        .map(Vec::len);
    assert_eq!(versions, Some(2), "one rebuilt version, promoted once");
}
