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

    fn key_only(id: i64) -> serde_json::Value {
        serde_json::json!({"id": id, "name": null, "counter": null, "ts": null})
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
    let lake = world.path().join("lake");
    let rows = duckdb(&format!(
        "SELECT id, name, counter FROM {} ORDER BY id",
        scan(&lake, "customers", v, "delta")
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
        "customers",
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

#[test]
fn postgres_changes_through_debezium_events_on_the_real_broker_equal_the_table() {
    use crate::broker::{brokers, create_topic, unique_topic};
    use crate::kafka_support::{spawn_run, stored_total, wait_for};
    let prefix = unique_topic("cdc").replace('-', "_");
    let table = "customers";
    let topic = format!("{prefix}.public.{table}");
    create_topic(&topic);
    let slot = format!("{prefix}_slot");
    psql(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigint PRIMARY KEY, \
         name text NOT NULL, counter integer NOT NULL DEFAULT 0, \
         updated_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO {table} (id, name) SELECT i, 'c' || i FROM generate_series(1, 200) i"
    ));
    // The snapshot (`op = r`) of what is there, then every change from the slot on.
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
    let stream = pg_debezium(&[
        "stream",
        "--slot",
        &slot,
        "--brokers",
        &brokers(),
        "--topic-prefix",
        &prefix,
        "--until-idle",
        "3",
    ]);
    let count = |s: &serde_json::Value| {
        s["events"].as_u64().unwrap_or_default() + s["tombstones"].as_u64().unwrap_or_default()
    };
    let total = count(&snapshot) + count(&stream);
    assert!(total > 500, "snapshot {snapshot}, stream {stream}");

    let config = TableConfig::kafka(&brokers(), &topic)
        .name(table)
        .schema(PG_CUSTOMERS)
        .time(r#"{ field = "updated_at", granularity = "day" }"#)
        .table_keys("mode = \"upsert\"\nkey = [\"id\"]\nmetadata_columns = false")
        .source_keys("envelope = \"debezium\"")
        .writer("max_age = \"500ms\"");
    let world = World::with(&config);
    let mut run = spawn_run(world.path(), &[], "run-cdc");
    let caught_up = wait_for(std::time::Duration::from_secs(120), || {
        stored_total(world.path(), 0) >= total
    });
    run.stop();
    assert!(
        caught_up,
        "the version stored {} of {total} records",
        stored_total(world.path(), 0)
    );

    let expected = psql(&format!(
        "SELECT id, name, counter FROM {table} ORDER BY id"
    ));
    let lake = world.path().join("lake");
    let rows = duckdb(&format!(
        "SELECT id, name, counter FROM {} ORDER BY id",
        scan(&lake, table, 1, "delta")
    ));
    assert_eq!(
        serde_json::Value::from(rows),
        expected,
        "DuckDB's state differs from PostgreSQL's"
    );
    let ids: Vec<i64> = expected
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r[0].as_i64()).collect())
        .unwrap_or_default();
    let summaries = read_lake(world.path(), table, 1, "delta", &["deltars"], "id");
    for (reader, s) in &summaries {
        assert_eq!(s["rows"], ids.len() as u64, "{reader}: {s}");
        assert_eq!(s["sum"], ids.iter().sum::<i64>(), "{reader}: {s}");
    }
    let counters = psql(&format!("SELECT sum(counter) FROM {table}"));
    let lake_counters = duckdb(&format!(
        "SELECT sum(counter) FROM {}",
        scan(&lake, table, 1, "delta")
    ));
    assert_eq!(
        counters[0][0].to_string().trim_matches('"'),
        lake_counters[0][0].to_string().trim_matches('"'),
        "no change applied twice or lost"
    );
}
