//! `kappa-lake demo` produces to the in-process Kafka cluster, materializes v1, rebuilds v2,
//! promotes it; DuckDB reads exactly the events.

use crate::support::{duckdb, kappa_ok, scan};

#[test]
fn demo_builds_v1_rebuilds_v2_and_promotes_it() {
    let dir = crate::support::Workdir::new();
    let out = kappa_ok(
        dir.path(),
        &["demo", "--dir", ".", "--events", "20000"],
        &[],
    );
    assert!(out.contains("promoted    current: v1 → v2"), "{out}");
    assert!(out.contains("delta_scan("), "{out}");
    assert!(
        out.contains("20000 rows, 3 dead letters"),
        "the malformed events are dead-lettered: {out}"
    );

    let lake = dir.path().join("lake");
    let pointer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lake.join("orders/_kappa/current.json")).unwrap())
            .unwrap();
    assert_eq!(pointer["version"], 2);
    assert_eq!(pointer["previous"], 1);

    // The generator's valid events have ids 1..=20000 (three more lines are malformed).
    let ids: Vec<i64> = (1..=20000).collect();
    let sum: i64 = ids.iter().sum();
    let checksum: i64 = ids
        .iter()
        .fold(0i64, |acc, id| acc ^ id.wrapping_mul(0x9E37_79B9));
    for (version, partitions) in [
        (2, "count(DISTINCT (date, hour))"),
        (1, "count(DISTINCT date)"),
    ] {
        let sql = format!(
            "SELECT count(*), count(DISTINCT order_id), sum(order_id), bit_xor(order_id * 2654435769), {partitions}, \
                    count(DISTINCT (_kafka_partition, _kafka_offset)), count(DISTINCT _kafka_partition) \
             FROM {}",
            scan(&lake, "orders", version, "delta")
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
        assert_eq!(row[5], 20000, "v{version}: one row per Kafka offset");
        assert_eq!(row[6], 6, "v{version}: all six partitions");
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
