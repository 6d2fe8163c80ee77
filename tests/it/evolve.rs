//! `plan` and in-place schema evolution of a Delta version: an additive `.avsc` change is
//! applied to the live version; a type change or a removed field needs a rebuild, and says why.

use std::path::Path;

use crate::fixture::{Cli, TableConfig, World};
use crate::support::{duckdb, kappa, read_lake, scan, status_json};

const WITH_COUPON: &str = r#"{"type":"record","name":"Event","namespace":"test","fields":[
  {"name":"id","type":"long"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"name","type":["null","string"],"default":null},
  {"name":"coupon","type":["null","string"],"default":null}
]}"#;

const ID_AS_STRING: &str = r#"{"type":"record","name":"Event","namespace":"test","fields":[
  {"name":"id","type":"string"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"name","type":["null","string"],"default":null}
]}"#;

const WITHOUT_NAME: &str = r#"{"type":"record","name":"Event","namespace":"test","fields":[
  {"name":"id","type":"long"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}
]}"#;

fn input(d: &Path, file: &str, ids: std::ops::Range<i64>, coupon: bool) {
    std::fs::create_dir_all(d.join("input")).unwrap();
    let lines: String = ids
        .map(|id| {
            let extra = if coupon {
                format!(r#","coupon":"C{id}""#)
            } else {
                String::new()
            };
            format!(
                "{{\"id\":{id},\"ts\":{},\"name\":\"n{id}\"{extra}}}\n",
                1_795_651_200_000 + id * 1000
            )
        })
        .collect();
    std::fs::write(d.join("input").join(file), lines).unwrap();
}

fn plan(d: &Path) -> String {
    Cli::new(d).cmd_ok("plan", &[])
}

fn set_schema(d: &Path, schema: &str) {
    std::fs::write(d.join("schemas/events.avsc"), schema).unwrap();
}

#[test]
fn additive_change_evolves_in_place_and_anything_else_needs_a_rebuild() {
    let w = World::with(&TableConfig::files());
    let d = w.path();
    assert!(plan(d).contains("events: create v1"), "{}", plan(d));
    input(d, "a.ndjson", 0..100, false);
    Cli::new(d).run_ok(&[]);
    assert!(plan(d).contains("events: nothing to do"), "{}", plan(d));
    // Partition columns are typed (date, int) and agree with the event time.
    let parts = duckdb(&format!(
        "SELECT count(*), count(*) FILTER (WHERE date = CAST(ts AS DATE) AND hour = hour(ts)), \
                min(date)::VARCHAR, typeof(min(hour)) FROM {}",
        scan(&d.join("lake"), "events", 1, "delta")
    ));
    assert_eq!(
        serde_json::json!(parts[0]),
        serde_json::json!([100, 100, "2026-11-26", "INTEGER"])
    );

    // A new nullable field: evolve in place.
    std::fs::copy(d.join("schemas/events.avsc"), d.join("old.avsc")).unwrap();
    set_schema(d, WITH_COUPON);
    let p = plan(d);
    assert!(
        p.contains("events: evolve in place: v1") && p.contains("`coupon`"),
        "{p}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&Cli::new(d).cmd_ok("plan", &["--json"])).unwrap();
    assert_eq!(json["tables"][0]["plan"]["action"], "evolve");
    assert_eq!(json["tables"][0]["plan"]["added"][0], "coupon");
    let check = kappa(
        d,
        &["schema", "check", "old.avsc", "schemas/events.avsc"],
        &[],
    );
    assert_eq!(check.status.code(), Some(0));

    // The next run applies it to v1 and writes the new field.
    input(d, "b.ndjson", 100..200, true);
    Cli::new(d).run_ok(&[]);
    assert!(
        plan(d).contains("events: nothing to do: live v1"),
        "{}",
        plan(d)
    );
    let status = status_json(d);
    assert_eq!(status["tables"][0]["current"], 1);
    assert_eq!(status["tables"][0]["versions"].as_array().unwrap().len(), 1);
    let rows = duckdb(&format!(
        "SELECT count(*), count(coupon), min(CASE WHEN coupon IS NOT NULL THEN id END) FROM {}",
        scan(&d.join("lake"), "events", 1, "delta")
    ));
    assert_eq!(rows[0], [200, 100, 100]);
    let seen = read_lake(d, "events", 1, "delta", &["deltars", "polars"], "id");
    for (reader, s) in &seen {
        assert_eq!(s["rows"], 200, "{reader}");
    }

    // A type change, and a removed field: rebuild, with the reason.
    for (schema, reason) in [
        (ID_AS_STRING, "field `id` changed from Int64 to Utf8"),
        (WITHOUT_NAME, "field `name` was removed"),
    ] {
        std::fs::copy(d.join("schemas/events.avsc"), d.join("old.avsc")).unwrap();
        set_schema(d, schema);
        let p = plan(d);
        assert!(
            p.contains("events: rebuild into v2") && p.contains(reason),
            "{p}"
        );
        let check = kappa(
            d,
            &["schema", "check", "old.avsc", "schemas/events.avsc"],
            &[],
        );
        assert_eq!(check.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&check.stdout).contains(reason));
        let run = Cli::new(d).cmd("run", &[]);
        assert!(!run.status.success());
        assert!(
            String::from_utf8_lossy(&run.stderr).contains(reason),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        set_schema(d, WITH_COUPON);
    }
}

/// `schema check --config --table`: the table's current version against another schema, as a
/// schema registry judges compatibility, naming the offending fields.
#[test]
fn schema_check_against_a_version_reports_avro_compatibility_naming_fields() {
    let w = World::with(&TableConfig::files());
    let d = w.path();
    input(d, "a.ndjson", 0..10, false);
    Cli::new(d).run_ok(&[]);
    let without_id = WITHOUT_NAME
        .replace(r#"{"name":"id","type":"long"},"#, "")
        .replace(
            r#"{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}"#,
            r#"{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"name","type":["null","string"],"default":null}"#,
        );
    for (file, text) in [
        ("coupon.avsc", WITH_COUPON),
        ("id_as_string.avsc", ID_AS_STRING),
        ("without_id.avsc", without_id.as_str()),
    ] {
        std::fs::write(d.join(file), text).unwrap();
    }
    let check = |against: &str, level: &str| {
        let out = Cli::new(d).table("schema check", &["--against", against, "--level", level]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    // An added optional field: FULL.
    let (code, text) = check("coupon.avsc", "full");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("coupon.avsc against v1 of `events`: FULL"),
        "{text}"
    );
    // A removed field without a default: old readers cannot read new data (FORWARD fails).
    let (code, text) = check("without_id.avsc", "full");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(": BACKWARD"), "{text}");
    assert!(
        text.contains("not FORWARD: field `id`") && text.contains("no default"),
        "{text}"
    );
    assert_eq!(check("without_id.avsc", "backward").0, Some(0));
    // A type change: neither direction.
    let (code, text) = check("id_as_string.avsc", "backward");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(": NONE"), "{text}");
    assert!(
        text.contains("not BACKWARD: field `id`: \"long\" cannot be read as \"string\""),
        "{text}"
    );
    assert!(text.contains("not FORWARD: field `id`"), "{text}");
    // Without --against: the config's schema file; JSON.
    let out = Cli::new(d).table_ok("schema check", &["--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["level"], "FULL", "{json}");
    assert_eq!(json["evolve_in_place"], true, "{json}");
}
