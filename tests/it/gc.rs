//! `gc` deletes exactly the versions its rule allows; a failing `on_promote` hook never undoes
//! a promotion.

use std::path::Path;

use crate::support::{EVENT_SCHEMA, kappa, kappa_ok, status_json, write_config};

fn input(d: &Path) {
    std::fs::create_dir_all(d.join("input")).unwrap();
    let lines: String = (0..500i64)
        .map(|id| format!("{{\"id\":{id},\"ts\":{}}}\n", 1_795_651_200_000 + id * 1000))
        .collect();
    std::fs::write(d.join("input/a.ndjson"), lines).unwrap();
}

fn versions(d: &Path) -> Vec<(u64, String)> {
    status_json(d)["tables"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn gc(d: &Path, keep: &str) -> String {
    kappa_ok(
        d,
        &[
            "gc",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "--keep",
            keep,
        ],
        &[],
    )
}

#[test]
fn gc_deletes_exactly_what_its_rule_allows() {
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    let cfg = write_config(
        d,
        EVENT_SCHEMA,
        r#"{ field = "ts", granularity = "day" }"#,
        "",
    );
    let with_hook =
        std::fs::read_to_string(&cfg).unwrap() + "\n[table.versions]\non_promote = \"exit 3\"\n";
    std::fs::write(&cfg, &with_hook).unwrap();
    input(d);
    kappa_ok(d, &["run", "--config", "kappa-lake.toml"], &[]);
    for _ in 0..2 {
        let out = kappa(
            d,
            &[
                "rebuild",
                "--config",
                "kappa-lake.toml",
                "--table",
                "events",
                "--force",
                "--promote",
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "a failing hook does not fail the promotion"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("on_promote command failed"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    kappa_ok(
        d,
        &[
            "rebuild",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "--force",
        ],
        &[],
    );
    let states: Vec<(u64, String)> = vec![
        (1, "retired".into()),
        (2, "retired".into()),
        (3, "live".into()),
        (4, "building".into()),
    ];
    assert_eq!(versions(d), states);

    // Defaults: v2 is the previous version within retain_previous (24h), v1 was current less
    // than gc_grace (1h) ago: nothing goes.
    let out = gc(d, "0");
    assert!(!out.contains("deleted"), "{out}");
    assert_eq!(versions(d).len(), 4);

    std::fs::write(
        &cfg,
        with_hook.replace(
            "[table.versions]\n",
            "[table.versions]\nretain_previous = \"0s\"\ngc_grace = \"0s\"\n",
        ),
    )
    .unwrap();
    let dry = kappa_ok(
        d,
        &[
            "gc",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "--keep",
            "1",
            "--dry-run",
        ],
        &[],
    );
    assert!(dry.contains("events v1: would delete"), "{dry}");
    assert_eq!(versions(d).len(), 4, "a dry run deletes nothing");
    let out = gc(d, "1");
    assert!(out.contains("events v1: deleted"), "{out}");
    assert!(out.contains("events v2: kept"), "{out}");
    assert!(out.contains("events v3: kept (current)"), "{out}");
    assert!(out.contains("events v4: kept (being built)"), "{out}");
    assert!(!d.join("lake/events/v1").exists());
    assert_eq!(
        versions(d).iter().map(|v| v.0).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let out = gc(d, "0");
    assert!(out.contains("events v2: deleted"), "{out}");
    assert_eq!(versions(d).iter().map(|v| v.0).collect::<Vec<_>>(), [3, 4]);
    assert!(d.join("lake/events/v3/_delta_log").exists());
}

/// `diff` shows what a rebuild changed, and `--require-same-rows` refuses to promote a
/// version that lost records (here: events the new schema rejects become dead letters).
#[test]
fn require_same_rows_refuses_a_rebuild_that_lost_records() {
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    write_config(
        d,
        EVENT_SCHEMA,
        r#"{ field = "ts", granularity = "hour" }"#,
        "",
    );
    std::fs::create_dir_all(d.join("input")).unwrap();
    let lines: String = (0..100i64)
        .map(|id| {
            let name = if id % 2 == 0 {
                format!(",\"name\":\"n{id}\"")
            } else {
                String::new()
            };
            format!(
                "{{\"id\":{id},\"ts\":{}{name}}}\n",
                1_795_651_200_000 + id * 60_000
            )
        })
        .collect();
    std::fs::write(d.join("input/a.ndjson"), lines).unwrap();
    kappa_ok(d, &["run", "--config", "kappa-lake.toml"], &[]);
    // Definition B: `name` becomes required, so the odd ids are dead letters in v2.
    std::fs::write(
        d.join("schemas/events.avsc"),
        EVENT_SCHEMA.replace(r#"["null","string"],"default":null"#, r#""string""#),
    )
    .unwrap();
    let out = kappa(
        d,
        &[
            "rebuild",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "--promote",
            "--require-same-rows",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("v2 does not hold the same records as v1")
            && stderr.contains("v1 100 rows, v2 50 rows"),
        "{stderr}"
    );
    assert_eq!(status_json(d)["tables"][0]["current"], 1);
    let diff = kappa_ok(
        d,
        &[
            "diff",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "1",
            "2",
        ],
        &[],
    );
    assert!(
        diff.contains("date=2026-11-26") && diff.contains("NO"),
        "{diff}"
    );
    let total = diff.lines().find(|l| l.starts_with("total")).unwrap();
    assert_eq!(
        total.split_whitespace().collect::<Vec<_>>(),
        ["total", "100", "50", "NO"]
    );
    // v1 against itself: the same records.
    let same = kappa_ok(
        d,
        &[
            "diff",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "1",
            "1",
        ],
        &[],
    );
    assert!(
        same.lines()
            .any(|l| l.starts_with("total") && l.ends_with("yes")),
        "{same}"
    );
    // Without the check the operator may promote it anyway.
    kappa_ok(
        d,
        &[
            "rebuild",
            "--config",
            "kappa-lake.toml",
            "--table",
            "events",
            "--promote",
        ],
        &[],
    );
    assert_eq!(status_json(d)["tables"][0]["current"], 2);
}
