//! Two processes promoting different versions at the same moment: exactly one wins.

use std::process::{Command, Stdio};

use crate::fixture::{TableConfig, World};
use crate::support::{BIN, kappa_ok};

#[test]
fn racing_promoters_have_exactly_one_winner() {
    let w = World::with(
        &TableConfig::files()
            .granularity("day")
            .writer("max_age = \"1s\""),
    );
    let d = w.path();
    let lines: String = (0..500)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"ts\":{}}}\n",
                1_764_115_200_000i64 + i * 600_000
            )
        })
        .collect();
    std::fs::write(d.join("input/a.ndjson"), lines).unwrap();
    let cfg = ["--config", "kappa-lake.toml"];
    kappa_ok(d, &["run", cfg[0], cfg[1]], &[]);
    // v2 and v3: two other definitions of the same table, both caught up.
    kappa_ok(
        d,
        &["rebuild", cfg[0], cfg[1], "--table", "events"],
        &[("KAPPA_LAKE_TABLE__EVENTS__TIME__GRANULARITY", "hour")],
    );
    kappa_ok(
        d,
        &["rebuild", cfg[0], cfg[1], "--table", "events"],
        &[("KAPPA_LAKE_TABLE__EVENTS__METADATA_COLUMNS", "false")],
    );
    let pointer_path = d.join("lake/events/_kappa/current.json");
    for round in 0..5 {
        let spawn = |v: &str| {
            Command::new(BIN)
                .current_dir(d)
                .args([
                    "promote",
                    cfg[0],
                    cfg[1],
                    "--table",
                    "events",
                    "--version",
                    v,
                    "--expect-current",
                    "1",
                ])
                .env("KAPPA_LAKE_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("2"), spawn("3"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let winners: Vec<u32> = [(2, &a), (3, &b)]
            .iter()
            .filter(|(_, o)| o.status.success())
            .map(|(v, _)| *v)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one promoter wins");
        let loser = if a.status.success() { &b } else { &a };
        assert_eq!(loser.status.code(), Some(1));
        let why = String::from_utf8_lossy(&loser.stderr);
        assert!(
            why.contains("expected current = v1"),
            "the loser says why: {why}"
        );
        let pointer: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&pointer_path).unwrap())
                .expect("the pointer is valid JSON");
        assert_eq!(pointer["version"], winners[0]);
        assert_eq!(pointer["previous"], 1);
        kappa_ok(
            d,
            &[
                "rollback",
                cfg[0],
                cfg[1],
                "--table",
                "events",
                "--version",
                "1",
            ],
            &[],
        );
    }
}
