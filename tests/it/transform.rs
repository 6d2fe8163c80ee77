//! SQL transforms: validation errors with their position, the offline `transform` command on
//! the shipped sample (golden), per-row failures dead-lettered while the rest lands, and a
//! rebuild with a changed transform giving every past event the new columns.

use std::path::{Path, PathBuf};

use crate::fixture::{Cli, TableConfig, World};
use crate::support::{duckdb, kappa, kappa_ok, scan, status_json};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A files-source config for table `events` with `transform` (a TOML value).
fn config(d: &Path, transform: &str) {
    TableConfig::files()
        .table_keys(&format!("transform = {transform}"))
        .write_to(d);
}

#[test]
fn invalid_transforms_fail_validate_and_plan_with_position_and_reason() {
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    let cases = [
        (
            "SELECT id,\n       nope AS n\nFROM events",
            &["line 2, column 8", "nope"][..],
        ),
        (
            "SELECT id\nFROM events\nWHER id > 1",
            &["line 3", "invalid SQL"],
        ),
        (
            "SELECT id, count(*) AS n\nFROM events",
            &[
                "line 1, column 12",
                "aggregate function `count`",
                "stateless",
            ],
        ),
        (
            "SELECT a.id\nFROM events a\nJOIN events b ON a.id = b.id",
            &["line 3, column 6", "joins are not allowed"],
        ),
        (
            "SELECT id, ts FROM events GROUP BY id, ts",
            &["line 1, column 36", "GROUP BY is not allowed"],
        ),
    ];
    for (sql, expected) in cases {
        // From a .sql file: the message names the file.
        std::fs::write(d.join("t.sql"), sql).unwrap();
        config(d, "\"t.sql\"");
        for command in ["validate", "plan"] {
            let out = Cli::new(d).cmd(command, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} `{sql}`: {stderr}");
            assert!(
                stderr.contains("table[events].transform") && stderr.contains("t.sql, line"),
                "{command} `{sql}`: {stderr}"
            );
            for e in expected {
                assert!(
                    stderr.contains(e),
                    "{command} `{sql}`: no `{e}` in {stderr}"
                );
            }
        }
    }
    // Inline SQL, and a time field the transform does not select.
    config(d, "\"SELECT id, name FROM events\"");
    let out = Cli::new(d).cmd("validate", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("table[events].time.field") && stderr.contains("output has no column `ts`"),
        "{stderr}"
    );
    config(d, "\"SELECT id, ts, upper(name) AS name FROM events\"");
    let ok = Cli::new(d).cmd_ok("validate", &[]);
    assert!(ok.contains("transform (inline SQL): compiles"), "{ok}");
}

#[test]
fn transform_command_on_the_shipped_sample_prints_the_expected_rows() {
    let w = World::with(
        &TableConfig::kafka("127.0.0.1:9", "orders")
            .name("orders")
            .schema_file(&repo("schemas/orders.avsc").display().to_string())
            .table_keys(&format!(
                "transform = \"{}\"",
                repo("schemas/transforms/orders.sql").display()
            ))
            .default_group()
            .kafka_options(None),
    );
    let d = w.path();
    let sample = repo("schemas/samples/orders.ndjson");
    let sample = sample.to_str().unwrap();
    let args = [
        "transform",
        "--config",
        "kappa-lake.toml",
        "--table",
        "orders",
        "--input",
        sample,
    ];
    let out = kappa(d, &args, &[]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let golden = repo("tests/golden/transform_orders.txt");
    if std::env::var_os("KAPPA_LAKE_BLESS").is_some() {
        std::fs::write(&golden, &stdout).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        stdout,
        expected,
        "`kappa-lake transform` output differs from {} (KAPPA_LAKE_BLESS=1 rewrites it)",
        golden.display()
    );
    // Line 4's discount is not a number: its row fails the transform, alone. Line 6 is not
    // valid JSON. Line 3 is cancelled: filtered, not an error.
    assert!(
        stderr.contains("orders.ndjson:4: transform error:") && stderr.contains("'ten'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("orders.ndjson:6: decode error:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 rows; 2 dead letters; 1 filtered out by the transform"),
        "{stderr}"
    );

    // The same rows as NDJSON and as Parquet (read back by DuckDB).
    let mut ndjson_args = args.to_vec();
    ndjson_args.extend(["--format", "ndjson"]);
    let rows: Vec<serde_json::Value> = kappa_ok(d, &ndjson_args, &[])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<_> = rows.iter().map(|r| r["order_id"].clone()).collect();
    assert_eq!(ids, [1, 2, 5]);
    assert_eq!(rows[1]["amount_cents"], 12000);
    assert_eq!(rows[1]["discount_pct"], 10);
    assert_eq!(rows[1]["size"], "large");
    assert_eq!(rows[2]["ship_country"], "FR");
    assert_eq!(rows[0]["currency"], "EUR");
    let mut parquet_args = args.to_vec();
    parquet_args.extend(["--format", "parquet", "--output", "rows.parquet"]);
    kappa_ok(d, &parquet_args, &[]);
    let read = duckdb(&format!(
        "SELECT count(*), sum(amount_cents), string_agg(coupon, ',' ORDER BY order_id) FROM read_parquet('{}')",
        crate::support::sql_path(&d.join("rows.parquet"))
    ));
    assert_eq!(
        serde_json::json!(read[0]),
        serde_json::json!([3, 1990 + 12000 + 9999, "none,SPRING,WELCOME"])
    );
}

/// Events `ids` with names `n<id>`, except every 50th (`id % 50 == 7`), named `bad<id>`.
fn input(d: &Path, file: &str, ids: std::ops::Range<i64>) {
    let lines: String = ids
        .map(|id| {
            let name = if id % 50 == 7 {
                format!("bad{id}")
            } else {
                format!("n{id}")
            };
            format!(
                "{{\"id\":{id},\"ts\":{},\"name\":\"{name}\"}}\n",
                1_795_651_200_000 + id * 60_000
            )
        })
        .collect();
    std::fs::write(d.join("input").join(file), lines).unwrap();
}

#[test]
fn a_changed_transform_rebuilds_every_past_event_and_failing_rows_are_dead_lettered() {
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    config(d, "\"SELECT id, ts, upper(name) AS name FROM events\"");
    input(d, "a.ndjson", 0..200);
    input(d, "b.ndjson", 200..300);
    Cli::new(d).run_ok(&[]);
    let lake = d.join("lake");
    let v1 = duckdb(&format!(
        "SELECT count(*), count(*) FILTER (WHERE name = upper(name)) FROM {}",
        scan(&lake, "events", 1, "delta")
    ));
    assert_eq!(v1[0], [300, 300]);

    // The new code: new columns, a filter, and a cast that fails for the `bad…` names.
    let sql = "SELECT id, ts, upper(name) AS name, id * 10 AS id10,\n       \
               CAST(substr(name, 2) AS BIGINT) AS name_num\nFROM events\nWHERE id % 10 <> 9";
    std::fs::write(d.join("events.sql"), sql).unwrap();
    config(d, "\"events.sql\"");
    let plan = Cli::new(d).cmd_ok("plan", &[]);
    assert!(
        plan.contains("rebuild") && plan.contains("the transform changed"),
        "{plan}"
    );
    Cli::new(d).rebuild_ok(&["--promote"]);
    assert_eq!(status_json(d)["tables"][0]["current"], 2);

    // Every past event went through the new transform: 300 − 30 filtered − 6 failed.
    let kept: Vec<i64> = (0..300).filter(|i| i % 10 != 9 && i % 50 != 7).collect();
    let v2 = duckdb(&format!(
        "SELECT count(*), sum(id10), count(*) FILTER (WHERE name_num = id AND id10 = id * 10), \
                count(*) FILTER (WHERE id % 10 = 9 OR id % 50 = 7) FROM {}",
        scan(&lake, "events", 2, "delta")
    ));
    assert_eq!(
        serde_json::json!(v2[0]),
        serde_json::json!([kept.len(), kept.iter().sum::<i64>() * 10, kept.len(), 0])
    );
    // The views `kappa-lake sql` prints read the current version: the new columns.
    let views = Cli::new(d).cmd_ok("sql", &[]);
    let read = duckdb(&format!("{views}\nSELECT count(id10) FROM events"));
    assert_eq!(read[0][0], kept.len());

    // The 6 failing rows are dead letters of v2 with the cast error; none of v1.
    let mut dead = Vec::new();
    for entry in std::fs::read_dir(lake.join("events/_dead_letters/v2")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        dead.extend(
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()),
        );
    }
    let mut names: Vec<String> = dead
        .iter()
        .map(|l| {
            assert_eq!(l["stage"], "transform", "{l}");
            let reason = l["reason"].as_str().unwrap();
            assert!(
                reason.contains("Cast error") || reason.contains("cast"),
                "{l}"
            );
            let raw: serde_json::Value = serde_json::from_str(l["raw"].as_str().unwrap()).unwrap();
            raw["name"].as_str().unwrap().to_string()
        })
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..300)
        .filter(|i| i % 50 == 7)
        .map(|i| format!("bad{i}"))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    assert!(!lake.join("events/_dead_letters/v1").exists());
}
