//! `gc` deletes exactly the versions its rule allows; a failing `on_promote` hook never undoes
//! a promotion.

use crate::fixture::{TableConfig, World, stderr};
use crate::support::EVENT_SCHEMA;

fn input(w: &World) {
    let lines: String = (0..500i64)
        .map(|id| format!("{{\"id\":{id},\"ts\":{}}}\n", 1_795_651_200_000 + id * 1000))
        .collect();
    w.input("a.ndjson", &lines);
}

#[test]
fn gc_deletes_exactly_what_its_rule_allows() {
    let config = TableConfig::files()
        .granularity("day")
        .after("[table.versions]\non_promote = \"exit 3\"");
    let w = World::with(&config);
    let d = w.path();
    let cli = w.cli();
    input(&w);
    cli.run_ok(&[]);
    for _ in 0..2 {
        let out = cli.rebuild(&["--force", "--promote"]);
        assert!(
            out.status.success(),
            "a failing hook does not fail the promotion"
        );
        assert!(
            stderr(&out).contains("on_promote command failed"),
            "{}",
            stderr(&out)
        );
    }
    cli.rebuild_ok(&["--force"]);
    let states: Vec<(u64, String)> = vec![
        (1, "retired".into()),
        (2, "retired".into()),
        (3, "live".into()),
        (4, "building".into()),
    ];
    assert_eq!(cli.versions(), states);

    // Defaults: v2 is the previous version within retain_previous (24h), v1 was current less
    // than gc_grace (1h) ago: nothing goes.
    let out = cli.gc_ok(&["--keep", "0"]);
    assert!(!out.contains("deleted"), "{out}");
    assert_eq!(cli.versions().len(), 4);

    w.config(&config.after("retain_previous = \"0s\"\ngc_grace = \"0s\""));
    let dry = cli.gc_ok(&["--keep", "1", "--dry-run"]);
    assert!(dry.contains("events v1: would delete"), "{dry}");
    assert_eq!(cli.versions().len(), 4, "a dry run deletes nothing");
    let out = cli.gc_ok(&["--keep", "1"]);
    assert!(out.contains("events v1: deleted"), "{out}");
    assert!(out.contains("events v2: kept"), "{out}");
    assert!(out.contains("events v3: kept (current)"), "{out}");
    assert!(out.contains("events v4: kept (being built)"), "{out}");
    assert!(!d.join("lake/events/v1").exists());
    assert_eq!(cli.version_numbers(), [2, 3, 4]);
    let out = cli.gc_ok(&["--keep", "0"]);
    assert!(out.contains("events v2: deleted"), "{out}");
    assert_eq!(cli.version_numbers(), [3, 4]);
    assert!(d.join("lake/events/v3/_delta_log").exists());
}

/// `diff` shows what a rebuild changed, and `--require-same-rows` refuses to promote a
/// version that lost records (here: events the new schema rejects become dead letters).
#[test]
fn require_same_rows_refuses_a_rebuild_that_lost_records() {
    let w = World::with(&TableConfig::files());
    let d = w.path();
    let cli = w.cli();
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
    w.input("a.ndjson", &lines);
    cli.run_ok(&[]);
    // Definition B: `name` becomes required, so the odd ids are dead letters in v2.
    std::fs::write(
        d.join("schemas/events.avsc"),
        EVENT_SCHEMA.replace(r#"["null","string"],"default":null"#, r#""string""#),
    )
    .unwrap();
    let out = cli.rebuild(&["--promote", "--require-same-rows"]);
    let stderr = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("v2 does not hold the same records as v1")
            && stderr.contains("v1 100 rows, v2 50 rows"),
        "{stderr}"
    );
    assert_eq!(cli.status_json()["tables"][0]["current"], 1);
    let diff = cli.diff_ok(1, 2);
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
    let same = cli.diff_ok(1, 1);
    assert!(
        same.lines()
            .any(|l| l.starts_with("total") && l.ends_with("yes")),
        "{same}"
    );
    // Without the check the operator may promote it anyway.
    cli.rebuild_ok(&["--promote"]);
    assert_eq!(cli.status_json()["tables"][0]["current"], 2);
}
