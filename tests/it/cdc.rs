//! Change streams: Debezium change events applied to an upsert table (`mode = "upsert"`,
//! `envelope = "debezium"`), checked against a model of the source table with DuckDB's
//! `delta_scan`, delta-rs and Polars.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::fixture::cli::version_of;
use crate::fixture::{Cli, TableConfig, World};
use crate::support::{duckdb, read_lake, scan, seed};

/// 2026-11-26T00:00:00Z in ms.
const TS: i64 = 1_795_651_200_000;

const CUSTOMERS: &str = r#"{"type":"record","name":"customers","fields":[
  {"name":"id","type":"long"},
  {"name":"name","type":"string"},
  {"name":"counter","type":"long"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}
]}"#;

/// The source table: id → (name, counter).
type State = BTreeMap<i64, (String, i64)>;

/// Writes change events the way Debezium's PostgreSQL connector does, and keeps the state
/// they lead to.
struct Changes {
    rng: StdRng,
    state: State,
    next_id: i64,
    lines: Vec<String>,
    at: i64,
}

impl Changes {
    fn new(seed: u64) -> Changes {
        Changes {
            rng: StdRng::seed_from_u64(seed),
            state: State::new(),
            next_id: 1,
            lines: Vec::new(),
            at: TS,
        }
    }

    fn row(&mut self, id: i64) -> serde_json::Value {
        self.at += 1000;
        let (name, counter) = &self.state[&id];
        serde_json::json!({"id": id, "name": name, "counter": counter, "ts": self.at})
    }

    /// One event; half of them inside Kafka Connect's schema/payload wrapper.
    fn event(&mut self, op: &str, before: serde_json::Value, after: serde_json::Value) {
        let event = serde_json::json!({
            "before": before, "after": after, "op": op, "ts_ms": self.at,
            "source": {"connector": "postgresql", "db": "shop", "schema": "public",
                       "table": "customers", "snapshot": if op == "r" { "true" } else { "false" },
                       "ts_ms": self.at, "lsn": self.at},
            "transaction": null,
        });
        let line = if self.rng.random_bool(0.5) {
            serde_json::json!({"schema": {"type": "struct", "optional": false,
                               "name": "shop.public.customers.Envelope"}, "payload": event})
        } else {
            event
        };
        self.lines.push(line.to_string());
    }

    /// A delete's `before` with PostgreSQL's default replica identity: the key, and for the
    /// other (NOT NULL) columns the fallback values Debezium writes.
    fn key_only(id: i64) -> serde_json::Value {
        serde_json::json!({"id": id, "name": "", "counter": 0, "ts": 0})
    }

    fn snapshot(&mut self, n: usize) {
        for _ in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            self.state.insert(id, (format!("c{id}"), 0));
            let after = self.row(id);
            self.event("r", serde_json::Value::Null, after);
        }
    }

    /// `n` inserts of new keys (a commit of them rewrites no file).
    fn creates(&mut self, n: usize) {
        for _ in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            self.state.insert(id, (format!("c{id}"), 0));
            let after = self.row(id);
            self.event("c", serde_json::Value::Null, after);
        }
    }

    fn random(&mut self, n: usize) {
        for _ in 0..n {
            let existing: Vec<i64> = self.state.keys().copied().collect();
            let pick = |rng: &mut StdRng| existing[rng.random_range(0..existing.len())];
            match self.rng.random_range(0..10) {
                0..=2 => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.state.insert(id, (format!("c{id}"), 0));
                    let after = self.row(id);
                    self.event("c", serde_json::Value::Null, after);
                }
                3..=6 if !existing.is_empty() => {
                    let id = pick(&mut self.rng);
                    let entry = self.state.get_mut(&id).expect("existing");
                    entry.1 += 1;
                    entry.0 = format!("c{id}-{}", entry.1);
                    let after = self.row(id);
                    self.event("u", serde_json::Value::Null, after);
                }
                7 | 8 if !existing.is_empty() => {
                    // A delete and its tombstone (a JSON null in a file).
                    let id = pick(&mut self.rng);
                    self.state.remove(&id);
                    self.event("d", Changes::key_only(id), serde_json::Value::Null);
                    self.lines.push("null".into());
                }
                _ if !existing.is_empty() => {
                    // An update of the primary key: as one update with both images, or as
                    // PostgreSQL's connector writes it, a delete and a create.
                    let old = pick(&mut self.rng);
                    let new = self.next_id + 10_000;
                    self.next_id += 1;
                    let (name, counter) = self.state.remove(&old).expect("existing");
                    self.state.insert(new, (name, counter + 1));
                    let after = self.row(new);
                    if self.rng.random_bool(0.5) {
                        let mut before = after.clone();
                        before["id"] = old.into();
                        self.event("u", before, after);
                    } else {
                        self.event("d", Changes::key_only(old), serde_json::Value::Null);
                        self.lines.push("null".into());
                        self.event("c", serde_json::Value::Null, after);
                    }
                }
                _ => {}
            }
        }
    }

    fn take(&mut self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        self.lines.clear();
        text
    }
}

/// The `customers` upsert table of Debezium events keyed by `key`.
fn upsert_table(key: &str) -> TableConfig {
    TableConfig::files()
        .name("customers")
        .schema(CUSTOMERS)
        .table_keys(&format!("mode = \"upsert\"\nkey = {key}"))
        .source_keys("envelope = \"debezium\"\nbatch_size = 64")
}

/// The version's rows as DuckDB reads them through the Delta log, and what delta-rs and
/// Polars count, against the model.
fn assert_state(world: &World, v: u32, state: &State) {
    assert_table_state(world, "customers", v, state);
}

/// [`assert_state`] of table `table`.
fn assert_table_state(world: &World, table: &str, v: u32, state: &State) {
    let lake = world.path().join("lake");
    let rows = duckdb(&format!(
        "SELECT id, name, counter FROM {} ORDER BY id",
        scan(&lake, table, v, "delta")
    ));
    let expected: Vec<Vec<serde_json::Value>> = state
        .iter()
        .map(|(id, (name, counter))| vec![(*id).into(), name.as_str().into(), (*counter).into()])
        .collect();
    assert_eq!(
        rows, expected,
        "DuckDB's rows differ from the source table's"
    );
    let sum: i64 = state.keys().sum();
    let summaries = read_lake(
        world.path(),
        table,
        v,
        "delta",
        &["deltars", "polars"],
        "id",
    );
    for (reader, s) in &summaries {
        assert_eq!(s["rows"], state.len() as u64, "{reader}: {s}");
        assert_eq!(s["distinct_ids"], state.len() as u64, "{reader}: {s}");
        assert_eq!(s["sum"], sum, "{reader}: {s}");
    }
}

fn dead_letters(cli: &Cli<'_>, v: u32) -> u64 {
    let status = cli.status_json();
    version_of(&status, v)
        .and_then(|v| v["dead_letters"].as_u64())
        .unwrap_or_default()
}

#[test]
fn debezium_changes_become_the_latest_state_across_commits_and_runs() {
    let world = World::with(&upsert_table(r#"["id"]"#));
    let cli = world.cli();
    let mut changes = Changes::new(seed());
    changes.snapshot(40);
    changes.random(300);
    // Two malformed envelopes: a row of the wrong type, and no change event at all.
    changes.lines.push(
        r#"{"op":"c","before":null,"after":{"id":"oops","name":"x","counter":0,"ts":1}}"#.into(),
    );
    changes.lines.push(r#"{"not":"debezium"}"#.into());
    world.input("a.ndjson", &changes.take());
    cli.run_ok(&[]);
    assert_state(&world, 1, &changes.state);
    assert_eq!(dead_letters(&cli, 1), 2);

    // More changes, many to rows of the first run's files (copy-on-write across commits).
    changes.random(400);
    world.input("b.ndjson", &changes.take());
    cli.run_ok(&[]);
    assert_state(&world, 1, &changes.state);
    assert_eq!(dead_letters(&cli, 1), 2);

    // A changed key is a new table: `plan` says rebuild.
    world.config(&upsert_table(r#"["id", "name"]"#));
    let plan: serde_json::Value =
        serde_json::from_str(&cli.cmd_ok("plan", &["--json"])).expect("JSON");
    assert_eq!(plan["tables"][0]["plan"]["action"], "rebuild", "{plan}");
    assert!(plan.to_string().contains("the key changed"), "{plan}");
}

/// Three upsert tables of one change stream, partitioned by event time, by key bucket and
/// not at all, hold the same state, across runs and a compaction; a key-bucketed table's rows
/// are in their keys' buckets.
#[test]
fn upsert_tables_by_time_by_key_bucket_and_unpartitioned_hold_the_same_state() {
    let tables = [
        upsert_table(r#"["id"]"#).name("by_time"),
        upsert_table(r#"["id"]"#)
            .name("by_key")
            .no_time()
            .table_keys("partition_by = { key_buckets = 4 }"),
        upsert_table(r#"["id"]"#).name("whole").no_time(),
    ];
    let world = World::new();
    world.config_tables(&tables);
    let cli = world.cli();
    let mut changes = Changes::new(seed());
    changes.snapshot(60);
    changes.random(300);
    world.input("a.ndjson", &changes.take());
    cli.run_ok(&[]);
    changes.random(400);
    world.input("b.ndjson", &changes.take());
    cli.run_ok(&[]);
    for table in ["by_time", "by_key", "whole"] {
        assert_table_state(&world, table, 1, &changes.state);
        world.cli().for_table(table).table_ok("compact", &[]);
        assert_table_state(&world, table, 1, &changes.state);
    }
    let lake = world.path().join("lake");
    let buckets = duckdb(&format!(
        "SELECT key_bucket, count(*) FROM {} GROUP BY key_bucket ORDER BY key_bucket",
        scan(&lake, "by_key", 1, "delta")
    ));
    assert_eq!(buckets.len(), 4, "{buckets:?}");
    let dirs: Vec<String> = std::fs::read_dir(lake.join("by_key/v1"))
        .expect("by_key/v1")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("key_bucket="))
        .collect();
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    let parquet_at_root = |table: &str| {
        std::fs::read_dir(lake.join(table).join("v1"))
            .expect("v1")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".parquet"))
            .count()
    };
    assert!(parquet_at_root("whole") > 0 && parquet_at_root("by_key") == 0);
}

/// The op and the row's id of every change event among `lines` (wrapped or bare; tombstones
/// and lines that are not change events left out).
fn ops_of(lines: &str) -> Vec<(String, i64)> {
    lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            if v["payload"].is_object() {
                v["payload"].clone()
            } else {
                v
            }
        })
        .filter_map(|e| {
            let op = e["op"].as_str()?.to_string();
            let image = if op == "d" { &e["before"] } else { &e["after"] };
            Some((op, image["id"].as_i64()?))
        })
        .filter(|(op, _)| ["c", "r", "u", "d"].contains(&op.as_str()))
        .collect()
}

/// `changelog = true`: every change event is a row of an append table, with `_op` and
/// `_source_ts`; tombstones are not rows, malformed events are dead letters.
#[test]
fn a_changelog_table_keeps_every_change_with_its_op_and_source_time() {
    let world = World::with(
        &TableConfig::files()
            .name("customers_log")
            .schema(CUSTOMERS)
            .time(r#"{ field = "_source_ts", granularity = "hour" }"#)
            .table_keys("changelog = true")
            .source_keys("envelope = \"debezium\"\nbatch_size = 64"),
    );
    let mut changes = Changes::new(seed());
    changes.snapshot(30);
    changes.random(300);
    changes.lines.push(r#"{"op":"x","after":{"id":1}}"#.into());
    let text = changes.take();
    world.input("a.ndjson", &text);
    let cli = world.cli().for_table("customers_log");
    cli.run_ok(&[]);
    let events = ops_of(&text);
    let lake = world.path().join("lake");
    let rows = duckdb(&format!(
        "SELECT _op, count(*), sum(id), count(_source_ts), \
                count(*) FILTER (WHERE epoch_ms(_source_ts) = epoch_ms(ts)) \
         FROM {} GROUP BY _op ORDER BY _op",
        scan(&lake, "customers_log", 1, "delta")
    ));
    let mut expected: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for (op, id) in &events {
        let e = expected.entry(op.clone()).or_default();
        e.0 += 1;
        e.1 += id;
    }
    let expected: Vec<Vec<serde_json::Value>> = expected
        .into_iter()
        .map(|(op, (n, sum))| {
            // A delete's image (the key only) has no `ts` to compare the source time with.
            let same_ts = if op == "d" { 0 } else { n };
            vec![op.into(), n.into(), sum.into(), n.into(), same_ts.into()]
        })
        .collect();
    assert_eq!(
        rows, expected,
        "rows by `_op`: op, rows, sum(id), source times"
    );
    assert!(expected.len() >= 4, "every op occurs: {expected:?}");
    assert_eq!(dead_letters(&cli, 1), 1);
}

#[test]
fn an_upsert_table_without_a_key_or_as_parquet_is_refused_naming_the_key() {
    let world = World::with(
        &TableConfig::files()
            .schema(CUSTOMERS)
            .table_keys("mode = \"upsert\""),
    );
    let out = world.cli().cmd("plan", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("table[events].key"), "{err}");
    world.config(
        &TableConfig::files()
            .schema(CUSTOMERS)
            .format("parquet")
            .table_keys("mode = \"upsert\"\nkey = [\"id\"]"),
    );
    let out = world.cli().cmd("plan", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("table[events].format"), "{err}");
    world.config(
        &TableConfig::files()
            .schema(CUSTOMERS)
            .table_keys("mode = \"upsert\"\nkey = [\"nope\"]"),
    );
    let out = world.cli().cmd("plan", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`nope` is not a field"), "{err}");
    // A changelog appends; it is not an upsert table, and it needs the Debezium envelope.
    world.config(
        &TableConfig::files()
            .schema(CUSTOMERS)
            .table_keys("mode = \"upsert\"\nkey = [\"id\"]\nchangelog = true")
            .source_keys("envelope = \"debezium\""),
    );
    let out = world.cli().cmd("plan", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("table[events].changelog"), "{err}");
    world.config(
        &TableConfig::files()
            .schema(CUSTOMERS)
            .table_keys("changelog = true"),
    );
    let out = world.cli().cmd("plan", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("table[events].changelog") && err.contains("envelope = \"debezium\""),
        "{err}"
    );
}

/// Compaction beside an upsert `run` (librdkafka's mock cluster): `compact` rewrites small
/// files while upsert commits rewrite the files holding the keys they change; whichever of two
/// commits removing the same file comes second conflicts and is redone, so no compaction
/// brings a deleted or replaced row back.
#[test]
fn compaction_beside_upsert_commits_brings_no_deleted_or_old_row_back() {
    use std::time::Duration;

    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    use crate::fixture::mock_kafka;
    use crate::kafka_support::{log_of, spawn_run, stored_total, wait_for};
    let topic = "cdc-compact";
    // One partition: the model applies the changes in one order.
    let (_kafka, brokers) = mock_kafka(&[(topic, 1)]);
    let world = World::with(
        &TableConfig::kafka(&brokers, topic)
            .name("customers")
            .schema(CUSTOMERS)
            .no_time()
            .table_keys("mode = \"upsert\"\nkey = [\"id\"]\nmetadata_columns = false")
            .table_keys("partition_by = { key_buckets = 3 }")
            .source_keys("envelope = \"debezium\"")
            .kafka_options(Some("\"fetch.wait.max.ms\" = \"5\""))
            .writer("max_age = \"50ms\""),
    );
    let (d, cli) = (world.path(), world.cli().for_table("customers"));
    let seed = seed();
    let mut changes = Changes::new(seed);
    changes.snapshot(100);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let send = |changes: &mut Changes| {
        let lines = changes.take();
        let mut n = 0;
        for line in lines.lines() {
            producer
                .send(BaseRecord::<(), str>::to(topic).payload(line).partition(0))
                .map_err(|(e, _)| e)
                .expect("send");
            n += 1;
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
        n
    };
    let mut produced = send(&mut changes);
    let mut run = spawn_run(d, &[], "run.log");
    assert!(
        wait_for(Duration::from_secs(60), || stored_total(d, 0) == produced),
        "the snapshot was not stored:\n{}",
        log_of(d, "run.log")
    );
    let done = std::sync::atomic::AtomicBool::new(false);
    let (mut compactions, mut removed) = (0, 0);
    std::thread::scope(|scope| {
        // New keys, each commit of them a new small file, and a few changes to keys of older
        // files, which rewrite those files; meanwhile, compaction after compaction.
        let producer = scope.spawn(|| {
            let mut rng = StdRng::seed_from_u64(seed ^ 1);
            for _ in 0..14 {
                changes.creates(20);
                produced += send(&mut changes);
                std::thread::sleep(Duration::from_millis(rng.random_range(20..120)));
                changes.random(4);
                produced += send(&mut changes);
                std::thread::sleep(Duration::from_millis(rng.random_range(20..120)));
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let report: serde_json::Value =
                serde_json::from_str(&cli.table_ok("compact", &["--json"]))
                    .expect("compact --json");
            compactions += 1;
            removed += report["files_removed"].as_u64().unwrap_or_default();
        }
        producer.join().expect("the producer");
    });
    assert!(
        wait_for(Duration::from_secs(60), || stored_total(d, 0) == produced),
        "the version stored {} of {produced} records:\n{}",
        stored_total(d, 0),
        log_of(d, "run.log")
    );
    run.stop();
    assert!(removed > 0, "{compactions} compactions removed no file");
    assert_state(&world, 1, &changes.state);
    // Once more, compacted with nothing beside it.
    cli.table_ok("compact", &[]);
    assert_state(&world, 1, &changes.state);
}

/// A files `run` into an upsert table whose commit a compaction overtakes (the commit slowed
/// by a crash point's pause; `compact` runs once the run is writing): the refused upsert commit
/// is applied again from the stored positions, and the run ends with the whole state.
#[test]
fn a_files_run_applies_an_upsert_commit_again_after_a_compaction_refuses_it() {
    let world = World::with(&upsert_table(r#"["id"]"#));
    let cli = world.cli().for_table("customers");
    let mut changes = Changes::new(seed());
    changes.snapshot(60);
    world.input("0.ndjson", &changes.take());
    cli.run_ok(&[]);
    // Three more small files: new keys only, which rewrite no file.
    for file in 1..=3 {
        changes.creates(20);
        world.input(&format!("{file}.ndjson"), &changes.take());
        cli.run_ok(&[]);
    }
    changes.random(60);
    world.input("4.ndjson", &changes.take());
    let mut run = world
        .cli()
        .env("FAILPOINTS", "commit.before_write=sleep(2000)")
        .spawn_run(&[], "run.log");
    let pid = run.id();
    assert!(
        crate::kafka_support::wait_for(std::time::Duration::from_secs(30), || cli
            .is_writing(1, pid)),
        "the run did not start writing"
    );
    let report: serde_json::Value =
        serde_json::from_str(&cli.table_ok("compact", &["--json"])).expect("compact --json");
    assert!(report["files_removed"].as_u64() >= Some(2), "{report}");
    let status = run.wait().expect("wait");
    assert!(
        status.success(),
        "run failed:\n{}",
        crate::kafka_support::log_of(world.path(), "run.log")
    );
    let conflicts = version_of(&cli.status_json(), 1).expect("v1")["writers"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["pid"] == pid))
        .and_then(|w| w["conflicts"].as_u64());
    assert_eq!(
        conflicts,
        Some(1),
        "the compaction refused one upsert commit"
    );
    assert_state(&world, 1, &changes.state);
}

/// An upsert table rebuilt with a changed definition after the topic dropped its start
/// (the mock cluster's retention): the replay of the raw archive, then of the topic, gives the
/// same state.
#[test]
fn an_upsert_table_rebuilt_from_the_archive_past_retention_has_the_same_state() {
    use kappa_lake::source::mock::{OutRecord, produce};
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};

    use crate::fixture::mock_kafka;
    let topic = "changes";
    // One partition: the model applies the changes in one order.
    let (_kafka, brokers) = mock_kafka(&[(topic, 1)]);
    let archive = TableConfig::kafka(&brokers, topic)
        .name("archive")
        .default_group()
        .raw_archive();
    let customers = TableConfig::kafka(&brokers, topic)
        .name("customers")
        .default_group()
        .schema(CUSTOMERS)
        .table_keys("mode = \"upsert\"\nkey = [\"id\"]\nmetadata_columns = false")
        .source_keys("envelope = \"debezium\"\narchive = \"archive\"");
    let world = World::new();
    world.config_tables(&[customers.clone(), archive.clone()]);
    let cli = world.cli().for_table("customers");
    let mut changes = Changes::new(seed());
    changes.snapshot(200);
    // About 1 KB per event (a member the decoder skips): 5 MB of them, the mock cluster's
    // retention per partition, are a few thousand.
    let send = |changes: &mut Changes| {
        let records: Vec<OutRecord> = changes
            .take()
            .lines()
            .map(|l| match l.strip_prefix('{') {
                Some(rest) => format!(r#"{{"padding":"{}",{rest}"#, "x".repeat(1000)),
                None => l.to_string(),
            })
            .map(|l| OutRecord {
                partition: Some(0),
                key: None,
                payload: l.into_bytes(),
                timestamp_ms: None,
            })
            .collect();
        produce(&brokers, topic, records).expect("produce");
    };
    // `run` keeps both tables up with the topic while it grows past its retention: each step
    // adds less than retention keeps.
    for _ in 0..4 {
        changes.random(2_500);
        send(&mut changes);
        cli.run_ok(&["--stop-at-end"]);
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "kappa-lake-test-watermarks")
        .create()
        .expect("consumer");
    let (low, _) = consumer
        .fetch_watermarks(topic, 0, std::time::Duration::from_secs(10))
        .expect("watermarks");
    assert!(low > 0, "the topic's start moved (retention): {low}");
    assert_state(&world, 1, &changes.state);

    world.config_tables(&[
        customers.table_keys(r#"transform = "SELECT *, counter * 10 AS counter_x10 FROM events""#),
        archive,
    ]);
    let out = cli.rebuild_ok(&["--promote"]);
    assert!(out.contains("replayed from the archive"), "{out}");
    assert_eq!(cli.status_json()["tables"][0]["current"], 2);
    assert_state(&world, 2, &changes.state);
    let lake = world.path().join("lake");
    let x10 = duckdb(&format!(
        "SELECT count(*) FILTER (WHERE counter_x10 <> counter * 10) FROM {}",
        scan(&lake, "customers", 2, "delta")
    ));
    assert_eq!(x10[0][0], 0);
}

/// Change events produced in Kafka transactions (as Kafka Connect's exactly-once source
/// connectors write them), on the real broker: every transaction ends with a commit marker
/// that takes an offset and is never delivered, so the records' offsets have gaps and the
/// partition ends past its last record. `run --stop-at-end` still stops, the state is the
/// model's, and a rebuild from the topic stops at the end too. (librdkafka's mock cluster
/// writes no markers.)
#[test]
fn change_events_with_offset_gaps_from_kafka_transactions_become_the_latest_state() {
    use std::time::Duration;

    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    use crate::broker::{brokers, exclusive_topic};
    use crate::kafka_support::stored_total;
    let (_broker, topic) = exclusive_topic("cdc-txn");
    let config = |buckets: u32| {
        TableConfig::kafka(&brokers(), &topic)
            .name("customers")
            .schema(CUSTOMERS)
            .no_time()
            .table_keys("mode = \"upsert\"\nkey = [\"id\"]\nmetadata_columns = false")
            .table_keys(&format!("partition_by = {{ key_buckets = {buckets} }}"))
            .source_keys("envelope = \"debezium\"")
    };
    let world = World::with(&config(2));
    let cli = world.cli().for_table("customers");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("transactional.id", format!("kappa-lake-test-{topic}"))
        .create()
        .expect("producer");
    let timeout = Duration::from_secs(30);
    producer
        .init_transactions(timeout)
        .expect("init_transactions");
    // One partition: the model applies the changes in one order.
    let transaction = |changes: &mut Changes| {
        producer.begin_transaction().expect("begin_transaction");
        let lines = changes.take();
        for line in lines.lines() {
            producer
                .send(BaseRecord::<(), str>::to(&topic).payload(line).partition(0))
                .map_err(|(e, _)| e)
                .expect("send");
        }
        producer
            .commit_transaction(timeout)
            .expect("commit_transaction");
        lines.lines().count() as u64
    };
    let mut changes = Changes::new(seed());
    changes.snapshot(50);
    let mut records = transaction(&mut changes);
    for _ in 0..5 {
        changes.random(60);
        records += transaction(&mut changes);
    }
    cli.run_ok(&["--stop-at-end"]);
    assert_state(&world, 1, &changes.state);
    let stored = stored_total(world.path(), 0);
    assert!(
        stored > records,
        "the commit markers take offsets: {records} records, stored up to offset {stored}"
    );
    changes.random(60);
    transaction(&mut changes);
    cli.run_ok(&["--stop-at-end"]);
    assert_state(&world, 1, &changes.state);

    // Another bucket count is another table: a rebuild from the topic, which ends past its
    // last record too.
    world.config(&config(3));
    cli.rebuild_ok(&["--promote"]);
    assert_eq!(cli.status_json()["tables"][0]["current"], 2);
    assert_state(&world, 2, &changes.state);
}

/// Debezium's `Envelope` for [`CUSTOMERS`], as its AvroConverter registers it.
const CUSTOMERS_ENVELOPE: &str = r#"{"type":"record","name":"Envelope","namespace":"shop.public.customers",
  "fields":[
    {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
      {"name":"id","type":"long"},{"name":"name","type":"string"},{"name":"counter","type":"long"},
      {"name":"ts","type":{"type":"long","connect.name":"io.debezium.time.Timestamp"}}]}],"default":null},
    {"name":"after","type":["null","Value"],"default":null},
    {"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql",
      "fields":[{"name":"connector","type":"string"},{"name":"db","type":"string"},
        {"name":"schema","type":"string"},{"name":"table","type":"string"},
        {"name":"snapshot","type":["null","string"],"default":null},
        {"name":"ts_ms","type":"long"},{"name":"lsn","type":["null","long"],"default":null}]}},
    {"name":"op","type":"string"},
    {"name":"ts_ms","type":["null","long"],"default":null},
    {"name":"transaction","type":["null","string"],"default":null}]}"#;

/// `encoding = "avro-confluent"` with `envelope = "debezium"` (librdkafka's mock cluster, the
/// test registry): the Confluent wire format's events, decoded with the writer schema the
/// registry has for their id, give the same state as their JSON form; a record with an
/// unknown schema id is a dead letter.
#[test]
fn avro_debezium_events_through_the_registry_become_the_latest_state() {
    use apache_avro::types::Value;
    use kappa_lake::source::mock::{OutRecord, produce};

    use crate::avro::Registry;
    use crate::fixture::mock_kafka;
    use crate::kafka_support::{log_of, spawn_run, stored_total, wait_for};
    let topic = "shop.public.customers";
    let (_kafka, brokers) = mock_kafka(&[(topic, 1)]);
    let world = World::new();
    let envelope_file = world.path().join("envelope.avsc");
    std::fs::write(&envelope_file, CUSTOMERS_ENVELOPE).expect("write the envelope schema");
    let registry = Registry::start_with(
        None,
        &world.path().join("registry.log"),
        &[
            "--schema",
            &format!("{topic}-value:41:{}", envelope_file.display()),
        ],
    );
    world.config(
        &TableConfig::kafka(&brokers, topic)
            .name("customers")
            .schema(CUSTOMERS)
            .table_keys("mode = \"upsert\"\nkey = [\"id\"]\nmetadata_columns = false")
            .writer("max_age = \"100ms\"")
            .source_keys(&format!(
                "envelope = \"debezium\"\nencoding = \"avro-confluent\"\n\n\
                 [table.source.schema_registry]\nurl = \"{}\"",
                registry.url
            )),
    );
    let schema = apache_avro::Schema::parse_str(CUSTOMERS_ENVELOPE).expect("the envelope parses");
    let mut changes = Changes::new(seed());
    changes.snapshot(50);
    changes.random(400);
    let mut records: Vec<OutRecord> = changes
        .take()
        .lines()
        .filter(|l| *l != "null")
        .map(|line| {
            let mut event: serde_json::Value = serde_json::from_str(line).expect("JSON");
            if event["payload"].is_object() {
                event = event["payload"].take();
            }
            let value = Value::from(event)
                .resolve(&schema)
                .expect("fits the envelope");
            let mut bytes = vec![0, 0, 0, 0, 41];
            bytes.extend(apache_avro::to_avro_datum(&schema, value).expect("encodes"));
            OutRecord {
                partition: Some(0),
                key: None,
                payload: bytes,
                timestamp_ms: None,
            }
        })
        .collect();
    // An id the registry does not have.
    records.push(OutRecord {
        partition: Some(0),
        key: None,
        payload: vec![0, 0, 0, 0, 99, 2],
        timestamp_ms: None,
    });
    let total = produce(&brokers, topic, records).expect("produce");
    let mut run = spawn_run(world.path(), &[], "run.log");
    assert!(
        wait_for(std::time::Duration::from_secs(60), || stored_total(
            world.path(),
            0
        ) == total),
        "the version stored {} of {total} records:\n{}",
        stored_total(world.path(), 0),
        log_of(world.path(), "run.log")
    );
    run.stop();
    assert_state(&world, 1, &changes.state);
    assert_eq!(dead_letters(&world.cli(), 1), 1);
}

/// Runs `sql` in the test PostgreSQL (`KAPPA_LAKE_TEST_PG_DSN`, started by the test script)
/// and prints the last statement's rows as JSON.
fn psql(sql: &str) -> serde_json::Value {
    let script = "import json, sys, psycopg\n\
        with psycopg.connect(sys.argv[1], autocommit=True) as c:\n\
        \x20   cur = c.execute(sys.argv[2])\n\
        \x20   rows = cur.fetchall() if cur.description else []\n\
        print(json.dumps([list(r) for r in rows], default=str))";
    let out = crate::support::tool_ok(
        std::process::Command::new(crate::support::python())
            .args(["-c", script])
            .arg(crate::broker::env("KAPPA_LAKE_TEST_PG_DSN"))
            .arg(sql),
        "start python",
        "SQL on the test PostgreSQL failed\n",
    );
    serde_json::from_slice(&out.stdout).expect("JSON rows")
}

/// `scripts/pg_debezium.py` with `args`; its summary line.
fn pg_debezium(args: &[&str]) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg_debezium.py");
    let out = crate::support::tool_ok(
        std::process::Command::new(crate::support::python())
            .arg(script)
            .args(args)
            .args(["--dsn", &crate::broker::env("KAPPA_LAKE_TEST_PG_DSN")]),
        "start python",
        "pg_debezium.py failed\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default()
}

const PG_CUSTOMERS: &str = r#"{"type":"record","name":"customers","fields":[
  {"name":"id","type":"long"},
  {"name":"name","type":"string"},
  {"name":"counter","type":"int"},
  {"name":"updated_at","type":{"type":"long","logicalType":"timestamp-micros"}}
]}"#;

/// A random workload on `table` until the file `stop` exists, in one Python process:
/// inserts, updates (each adds 1 to `counter`), deletes, primary-key updates and transactions
/// touching many rows, a few dozen a second.
const WORKLOAD: &str = r#"
import os, random, sys, time, psycopg
dsn, table, stop, seed = sys.argv[1:5]
rng = random.Random(int(seed))
ops = 0
with psycopg.connect(dsn, autocommit=True) as c:
    while not os.path.exists(stop):
        ids = [r[0] for r in c.execute(f"SELECT id FROM {table}")]
        pick = rng.choice(ids) if ids else None
        op = rng.randrange(10)
        if op <= 2 or pick is None:
            c.execute(f"INSERT INTO {table} (id, name) SELECT coalesce(max(id), 0) + 1, 'w' FROM {table}")
        elif op <= 5:
            c.execute(f"UPDATE {table} SET counter = counter + 1, name = 'u' || counter WHERE id = %s", (pick,))
        elif op == 6:
            c.execute(f"DELETE FROM {table} WHERE id = %s", (pick,))
        elif op == 7:
            c.execute(f"UPDATE {table} SET id = (SELECT max(id) + 1 FROM {table}), counter = counter + 1 WHERE id = %s", (pick,))
        else:
            with c.transaction():
                r = rng.randrange(10)
                c.execute(f"UPDATE {table} SET counter = counter + 1, updated_at = now() WHERE id %% 10 = %s", (r,))
                c.execute(f"INSERT INTO {table} (id, name) SELECT max(id) + 1, 't' FROM {table}")
                c.execute(f"DELETE FROM {table} WHERE id = %s", (pick,))
        ops += 1
        time.sleep(rng.uniform(0.01, 0.06))
print(ops)
"#;

/// `scripts/pg_debezium.py` with `args`, started in the background (its summary on stdout).
fn spawn_pg_debezium(args: &[&str]) -> std::process::Child {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg_debezium.py");
    std::process::Command::new(crate::support::python())
        .arg(script)
        .args(args)
        .args(["--dsn", &crate::broker::env("KAPPA_LAKE_TEST_PG_DSN")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start pg_debezium.py")
}

/// A background process's last stdout line as JSON, once it has exited successfully.
fn summary_of(child: std::process::Child, what: &str) -> serde_json::Value {
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{what} failed: {:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default()
}

/// The table's rows in PostgreSQL and in version `v` of the lake (DuckDB `delta_scan`, then
/// delta-rs): equal row for row, and so is the sum of the counters (an update applied twice
/// or lost would change it). `extra` is a further column expression of the lake's rows.
fn assert_equals_postgres(world: &World, table: &str, v: u32, extra: Option<(&str, &str)>) {
    let (pg_extra, lake_extra) = extra.map_or((String::new(), String::new()), |(pg, lake)| {
        (format!(", {pg}"), format!(", {lake}"))
    });
    let expected = psql(&format!(
        "SELECT id, name, counter{pg_extra} FROM {table} ORDER BY id"
    ));
    let lake = world.path().join("lake");
    let rows = duckdb(&format!(
        "SELECT id, name, counter{lake_extra} FROM {} ORDER BY id",
        scan(&lake, table, v, "delta")
    ));
    assert_eq!(
        serde_json::Value::from(rows),
        expected,
        "v{v}: DuckDB's state differs from PostgreSQL's"
    );
    let ids: Vec<i64> = expected
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r[0].as_i64()).collect())
        .unwrap_or_default();
    let summaries = read_lake(world.path(), table, v, "delta", &["deltars"], "id");
    for (reader, s) in &summaries {
        assert_eq!(s["rows"], ids.len() as u64, "v{v}: {reader}: {s}");
        assert_eq!(s["sum"], ids.iter().sum::<i64>(), "v{v}: {reader}: {s}");
    }
    let counters = psql(&format!("SELECT sum(counter) FROM {table}"));
    let lake_counters = duckdb(&format!(
        "SELECT sum(counter) FROM {}",
        scan(&lake, table, v, "delta")
    ));
    assert_eq!(
        counters[0][0].to_string().trim_matches('"'),
        lake_counters[0][0].to_string().trim_matches('"'),
        "v{v}: no change applied twice or lost"
    );
}

/// PostgreSQL → wal2json → `scripts/pg_debezium.py` → the real broker → `run`, killed (SIGKILL)
/// at 20 random moments while the database changes; then a rebuild with an added computed
/// column replays the changelog into v2, promoted once it has caught up.
#[test]
fn postgres_changes_through_debezium_events_on_the_real_broker_equal_the_table() {
    use crate::broker::{brokers, exclusive_topic};
    use crate::kafka_support::{log_of, spawn_run, stored_total, wait_for};
    // The broker is loaded for a minute and must not restart under the kill loop.
    let (_broker, name) = exclusive_topic("cdc");
    let prefix = name.replace('-', "_");
    let table = "customers";
    let topic = format!("{prefix}.public.{table}");
    crate::broker::create_topic(&topic);
    let slot = format!("{prefix}_slot");
    psql(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigint PRIMARY KEY, \
         name text NOT NULL, counter integer NOT NULL DEFAULT 0, \
         updated_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO {table} (id, name) SELECT i, 'c' || i FROM generate_series(1, 200) i"
    ));
    // The snapshot (`op = r`) of what is there, then every change from the slot on, streamed
    // while the database changes, until it has been idle for 5 s.
    pg_debezium(&["slot", "--slot", &slot]);
    let snapshot = pg_debezium(&[
        "snapshot",
        "--brokers",
        &brokers(),
        "--topic",
        &topic,
        "--table",
        &format!("public.{table}"),
    ]);
    let stream = spawn_pg_debezium(&[
        "stream",
        "--slot",
        &slot,
        "--brokers",
        &brokers(),
        "--topic-prefix",
        &prefix,
        "--until-idle",
        "5",
    ]);
    let config = TableConfig::kafka(&brokers(), &topic)
        .name(table)
        .schema(PG_CUSTOMERS)
        .no_time()
        .table_keys("mode = \"upsert\"\nkey = [\"id\"]\nmetadata_columns = false")
        .table_keys("partition_by = { key_buckets = 8 }")
        .source_keys("envelope = \"debezium\"")
        .session_ms(3000)
        .writer("max_age = \"300ms\"");
    let world = World::with(&config);
    let d = world.path();
    let mut run_log = "run-0.log".to_string();
    let mut run = spawn_run(d, &[], &run_log);

    // Scripted changes first: inserts, updates, primary-key updates, deletes, a transaction
    // touching 100 rows, a deleted key back again.
    psql(&format!(
        "INSERT INTO {table} (id, name) SELECT i, 'n' || i FROM generate_series(201, 260) i; \
         UPDATE {table} SET counter = counter + 1, name = name || '+' WHERE id % 3 = 0; \
         UPDATE {table} SET counter = counter + 1 WHERE id % 5 = 0; \
         UPDATE {table} SET id = id + 1000, counter = counter + 1 WHERE id IN (4, 8, 16); \
         DELETE FROM {table} WHERE id % 7 = 0; \
         BEGIN; UPDATE {table} SET counter = counter + 1, updated_at = now() WHERE id BETWEEN 100 AND 199; COMMIT; \
         INSERT INTO {table} (id, name) VALUES (7, 'back again'); \
         UPDATE {table} SET counter = counter + 1 WHERE id = 1008"
    ));
    // Then a random workload, and `run` killed at 20 random moments meanwhile.
    let stop = d.join("workload.stop");
    let workload = std::process::Command::new(crate::support::python())
        .args(["-c", WORKLOAD])
        .arg(crate::broker::env("KAPPA_LAKE_TEST_PG_DSN"))
        .arg(table)
        .arg(&stop)
        .arg(seed().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the workload");
    let mut rng = StdRng::seed_from_u64(seed());
    for kill in 1..=20 {
        std::thread::sleep(std::time::Duration::from_millis(
            rng.random_range(500..4000),
        ));
        if let Some(status) = run.try_wait().expect("try_wait") {
            panic!("run exited on its own ({status}):\n{}", log_of(d, &run_log));
        }
        run.kill().expect("SIGKILL");
        run.wait().expect("wait");
        run_log = format!("run-{kill}.log");
        run = spawn_run(d, &[], &run_log);
    }
    std::fs::write(&stop, "").expect("stop the workload");
    let ops = summary_of(workload, "the workload");
    let stream = summary_of(stream, "pg_debezium.py stream");
    let count = |s: &serde_json::Value| {
        s["events"].as_u64().unwrap_or_default() + s["tombstones"].as_u64().unwrap_or_default()
    };
    let total = count(&snapshot) + count(&stream);
    assert!(
        total > 500,
        "snapshot {snapshot}, stream {stream}, {ops} ops"
    );
    eprintln!(
        "{total} records (snapshot {snapshot}, stream {stream}), {ops} workload statements, \
         20 kills of run"
    );

    let caught_up = wait_for(std::time::Duration::from_secs(180), || {
        stored_total(d, 0) >= total
    });
    run.stop();
    assert!(
        caught_up,
        "the version stored {} of {total} records:\n{}",
        stored_total(d, 0),
        log_of(d, &run_log)
    );
    assert_equals_postgres(&world, table, 1, None);

    // A changed definition (a computed column) is a rebuild from the changelog on the topic:
    // the same state in v2, promoted by the catch-up rule.
    world.config(
        &config
            .clone()
            .table_keys("transform = \"SELECT *, counter * 10 AS counter_x10 FROM events\""),
    );
    let cli = world.cli().for_table(table);
    let plan = cli.cmd_ok("plan", &[]);
    assert!(plan.contains("rebuild"), "{plan}");
    cli.rebuild_ok(&["--promote"]);
    assert_eq!(cli.status_json()["tables"][0]["current"], 2);
    assert_equals_postgres(&world, table, 2, Some(("counter * 10", "counter_x10")));
}
