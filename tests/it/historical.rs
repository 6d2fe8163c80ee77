//! One-time historical loads: Parquet and CSV files in a files source become a version, with
//! file and row coordinates, and rows that do not fit the schema become dead letters.

use std::process::Command;

use crate::fixture::{TableConfig, World};
use crate::support::{duckdb, python, scan, tool_ok};

/// 2026-11-26T00:00:00Z in ms.
const TS: i64 = 1_795_651_200_000;

#[test]
fn parquet_and_csv_exports_load_exactly_and_bad_rows_are_dead_lettered_with_file_and_row() {
    let world = World::with(&TableConfig::files());
    let d = world.path();
    // A Parquet export (as pyarrow writes one), 1,000 rows; row 500 (0-based) has no id, which
    // the schema requires.
    let script = "import sys, pyarrow as pa, pyarrow.parquet as pq\n\
        n = 1000\n\
        ids = [None if i == 500 else i for i in range(n)]\n\
        t = pa.table({'id': pa.array(ids, pa.int64()),\n\
                      'ts': pa.array([int(sys.argv[2]) + i * 1000 for i in range(n)], pa.int64()),\n\
                      'name': pa.array([None if i % 7 == 0 else f'p{i}' for i in range(n)])})\n\
        pq.write_table(t, sys.argv[1], row_group_size=300)";
    tool_ok(
        Command::new(python())
            .args(["-c", script])
            .arg(d.join("input/a-export.parquet"))
            .arg(TS.to_string()),
        "start python",
        "writing the Parquet export failed\n",
    );
    // A CSV export: quoted values with commas and a newline, empty values as null; row 3
    // (1-based) has a non-numeric id, row 5 no event time.
    let mut csv = String::from("id,ts,name\n");
    for i in 0..10i64 {
        let id = if i == 2 {
            "two".to_string()
        } else {
            (2000 + i).to_string()
        };
        let ts = if i == 4 {
            String::new()
        } else {
            (TS + i).to_string()
        };
        let name = match i {
            0 => "\"a, quoted\nname\"".to_string(),
            1 => String::new(),
            _ => format!("c{i}"),
        };
        csv += &format!("{id},{ts},{name}\n");
    }
    world.input("b-export.csv", &csv);
    world.input(
        "c-events.ndjson",
        &format!("{{\"id\":3000,\"ts\":{TS},\"name\":\"j\"}}\n"),
    );
    let cli = world.cli();
    cli.run_ok(&[]);

    // Every good row exactly once, with its file and 1-based row.
    let lake = d.join("lake");
    let rows = duckdb(&format!(
        "SELECT _source_file, count(*), count(DISTINCT id), min(_source_line), max(_source_line), \
         count(name), sum(id) FROM {} GROUP BY 1 ORDER BY 1",
        scan(&lake, "events", 1, "delta")
    ));
    let good_parquet_sum: i64 = (0..1000).filter(|i| *i != 500).sum();
    let good_csv_sum: i64 = (0..10)
        .filter(|i| *i != 2 && *i != 4)
        .map(|i| 2000 + i)
        .sum();
    assert_eq!(
        serde_json::Value::from(rows),
        serde_json::json!([
            [
                "a-export.parquet",
                999,
                999,
                1,
                1000,
                999 - (0..1000).filter(|i| i % 7 == 0 && *i != 500).count(),
                good_parquet_sum
            ],
            ["b-export.csv", 8, 8, 1, 10, 7, good_csv_sum],
            ["c-events.ndjson", 1, 1, 1, 1, 1, 3000],
        ])
    );
    let quoted = duckdb(&format!(
        "SELECT name FROM {} WHERE id = 2000",
        scan(&lake, "events", 1, "delta")
    ));
    assert_eq!(quoted, [[serde_json::json!("a, quoted\nname")]]);

    // The bad rows are dead letters naming their file and row (0-based offset), with the
    // row's object as the raw record.
    let show = cli.table_ok("dead-letters show", &[]);
    let letters: Vec<serde_json::Value> = show
        .lines()
        .map(|l| serde_json::from_str(l).expect("a dead letter is JSON"))
        .collect();
    let mut coords: Vec<(String, u64)> = letters
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap_or_default().to_string(),
                l["offset"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    coords.sort();
    assert_eq!(
        coords,
        [
            ("a-export.parquet".to_string(), 500),
            ("b-export.csv".to_string(), 2),
            ("b-export.csv".to_string(), 4),
        ],
        "{show}"
    );
    let two = letters
        .iter()
        .find(|l| l["offset"] == 2)
        .expect("row 3 of the CSV");
    assert!(
        two["raw"]
            .as_str()
            .is_some_and(|r| r.contains("\"id\":\"two\"")),
        "{show}"
    );
    assert_eq!(
        cli.status_json()["tables"][0]["versions"][0]["dead_letters"],
        3
    );
}
