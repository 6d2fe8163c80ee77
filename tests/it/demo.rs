//! `kappa-lake demo` materializes v1, rebuilds v2, promotes it; DuckDB reads exactly the events.

use std::io::{BufRead, BufReader, Read};

use crate::support::{duckdb, kappa_ok, sql_path};

/// Valid order ids in the generated log, read independently of kappa-lake.
fn generated_ids(events_dir: &std::path::Path) -> Vec<i64> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(events_dir).unwrap() {
        let path = entry.unwrap().path();
        let file = std::fs::File::open(&path).unwrap();
        let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        for line in BufReader::new(reader).lines() {
            let line = line.unwrap();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(id) = v.get("order_id").and_then(serde_json::Value::as_i64)
            {
                ids.push(id);
            }
        }
    }
    ids
}

#[test]
fn demo_builds_v1_rebuilds_v2_and_promotes_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = kappa_ok(
        dir.path(),
        &["demo", "--dir", ".", "--events", "20000"],
        &[],
    );
    assert!(out.contains("promoted    current: v1 → v2"), "{out}");
    assert!(out.contains("read_parquet("), "{out}");

    let lake = dir.path().join("lake");
    let pointer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lake.join("orders/_kappa/current.json")).unwrap())
            .unwrap();
    assert_eq!(pointer["version"], 2);
    assert_eq!(pointer["previous"], 1);

    let ids = generated_ids(&lake.join("_demo/events"));
    assert_eq!(ids.len(), 20000, "the generator's valid events");
    let sum: i64 = ids.iter().sum();
    let checksum: i64 = ids
        .iter()
        .fold(0i64, |acc, id| acc ^ id.wrapping_mul(0x9E37_79B9));
    for (version, partitions) in [
        (2, "count(DISTINCT (date, hour))"),
        (1, "count(DISTINCT date)"),
    ] {
        let sql = format!(
            "SELECT count(*), count(DISTINCT order_id), sum(order_id), bit_xor(order_id * 2654435769), {partitions} \
             FROM read_parquet('{}/orders/v{version}/**/*.parquet', hive_partitioning = true)",
            sql_path(&lake)
        );
        let row = &duckdb(&sql)[0];
        assert_eq!(row[0], 20000, "v{version} row count");
        assert_eq!(row[1], 20000, "v{version} distinct ids");
        assert_eq!(
            row[2].to_string().trim_matches('"'),
            sum.to_string(),
            "v{version} sum of ids"
        );
        assert_eq!(
            row[3].to_string().trim_matches('"'),
            checksum.to_string(),
            "v{version} checksum"
        );
        let parts = row[4].as_i64().unwrap();
        assert!(
            if version == 2 {
                parts >= 48
            } else {
                (2..=3).contains(&parts)
            },
            "v{version}: {parts} partitions"
        );
    }
}
