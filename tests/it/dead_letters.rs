//! Malformed lines go to the dead-letter output with reason and coordinates; the run continues
//! and valid + dead-lettered = input.

use std::io::{BufRead, BufReader};

use crate::fixture::{Cli, TableConfig, World, mock_kafka};
use crate::support::{duckdb, kappa_ok, scan, status_json};

#[test]
fn malformed_lines_are_dead_lettered_and_counts_add_up() {
    let w = World::with(&TableConfig::files());
    let d = w.path();
    let ts = 1_764_115_200_000i64;
    let mut data: Vec<u8> = Vec::new();
    let mut expected_bad: Vec<(u64, &str)> = Vec::new(); // (line index, stage)
    let mut valid = 0u64;
    let mut line = 0u64;
    let mut push = |data: &mut Vec<u8>, bytes: &[u8]| {
        data.extend_from_slice(bytes);
        data.push(b'\n');
        line += 1;
        line - 1
    };
    for i in 0..3000i64 {
        push(
            &mut data,
            format!("{{\"id\":{i},\"ts\":{},\"name\":\"n{i}\"}}", ts + i * 1000).as_bytes(),
        );
        valid += 1;
        match i {
            100 => expected_bad.push((push(&mut data, br#"{"id": 1, "ts": "#), "decode")), // broken JSON
            200 => expected_bad.push((push(&mut data, br#"{"id": "one", "ts": 1}"#), "decode")), // wrong type
            300 => expected_bad.push((push(&mut data, br#"{"ts": 1764115200000}"#), "decode")), // missing required
            400 => {
                let mut big = br#"{"id": 5, "ts": 1764115200000, "name": ""#.to_vec();
                big.extend(std::iter::repeat_n(b'x', 10 << 20));
                big.extend_from_slice(b"\"}");
                expected_bad.push((push(&mut data, &big), "read")); // 10 MB line
            }
            500 => expected_bad.push((
                push(&mut data, b"{\"id\": 7, \"ts\": 1, \"name\": \"\xff\xfe\"}"),
                "read",
            )), // invalid UTF-8
            600 => expected_bad.push((
                push(&mut data, br#"{"id": 8, "ts": "not a time"}"#),
                "decode",
            )),
            700 => expected_bad.push((
                push(&mut data, br#"{"id": 9, "ts": 999999999999999999}"#),
                "event_time",
            )),
            800 => expected_bad.push((push(&mut data, br#"[1, 2, 3]"#), "decode")),
            _ => {}
        }
    }
    std::fs::write(d.join("input/events.ndjson"), &data).unwrap();
    Cli::new(d).run_ok(&[]);

    let status = status_json(d);
    let v = &status["tables"][0]["versions"][0];
    let input = line;
    assert_eq!(v["rows"], valid);
    assert_eq!(v["dead_letters"], expected_bad.len() as u64);
    assert_eq!(
        v["rows"].as_u64().unwrap() + v["dead_letters"].as_u64().unwrap(),
        input
    );
    assert_eq!(v["offsets"]["events.ndjson"], input);

    let rows = duckdb(&format!(
        "SELECT count(*), count(DISTINCT id) FROM {}",
        scan(&d.join("lake"), "events", 1, "delta")
    ));
    assert_eq!(rows[0][0], valid);
    assert_eq!(rows[0][1], valid);

    let mut letters = Vec::new();
    for entry in std::fs::read_dir(d.join("lake/events/_dead_letters/v1")).unwrap() {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        for l in BufReader::new(file).lines() {
            letters.push(serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap());
        }
    }
    letters.sort_by_key(|l| l["offset"].as_u64());
    assert_eq!(letters.len(), expected_bad.len());
    for (letter, (offset, stage)) in letters.iter().zip(&expected_bad) {
        assert_eq!(letter["source"], "events.ndjson");
        assert_eq!(letter["offset"], *offset, "{letter}");
        assert_eq!(letter["stage"], *stage, "{letter}");
        assert!(!letter["reason"].as_str().unwrap().is_empty());
        assert!(letter.get("raw").is_some() || letter.get("raw_base64").is_some());
    }
    let big = letters
        .iter()
        .find(|l| l["truncated"] == true)
        .expect("the 10 MB line is kept truncated");
    assert!(big["raw_bytes"].as_u64().unwrap() > 10 << 20);
    assert!(big["reason"].as_str().unwrap().contains("max_record_bytes"));
}

/// Bad input at volume: 60,000 Kafka records, about a quarter of them invalid, of every class
/// the JSON decoder knows, in random order over 4 partitions. Every record is accounted for
/// exactly once: as a row, or as a dead letter at its own coordinates with the right stage.
#[test]
fn a_mixed_stream_at_volume_adds_up_exactly() {
    use kappa_lake::source::mock::{OutRecord, produce};
    use rand::{Rng, SeedableRng};

    const TS: i64 = 1_795_651_200_000;
    let (topic, partitions, n) = ("mixed", 4i64, 60_000i64);
    // (stage, payload) for each class of invalid record.
    let invalid = |class: u32, i: i64| -> (&'static str, Vec<u8>) {
        match class {
            0 => ("decode", format!(r#"{{"id": {i}, "ts": "#).into_bytes()), // truncated
            1 => ("decode", br#"{"id": "one", "ts": 1}"#.to_vec()),          // wrong type
            2 => ("decode", format!(r#"{{"ts": {TS}}}"#).into_bytes()),      // missing required
            3 => (
                "decode",
                format!(r#"{{"id": null, "ts": {TS}}}"#).into_bytes(),
            ), // null
            4 => (
                "read",
                b"{\"id\": 1, \"ts\": 1, \"name\": \"\xff\xfe\"}".to_vec(),
            ), // not UTF-8
            5 => ("read", Vec::new()),                                       // empty
            6 => ("read", b" \t \r\n ".to_vec()),                            // blank
            7 => (
                "read",
                format!(
                    r#"{{"id": {i}, "ts": {TS}, "name": "{}"}}"#,
                    "x".repeat(5000)
                )
                .into_bytes(),
            ), // too large
            8 => ("decode", b"[1, 2, 3]".to_vec()),                          // not an object
            9 => ("decode", b"42".to_vec()),                                 // a scalar
            10 => (
                "decode",
                format!(r#"{{"id": {i}, "ts": "not a time"}}"#).into_bytes(),
            ),
            11 => (
                "event_time",
                format!(r#"{{"id": {i}, "ts": 999999999999999999}}"#).into_bytes(),
            ),
            12 => (
                "decode",
                format!(r#"{{"id": {i}, "ts": {TS}}}{{"id": {i}, "ts": {TS}}}"#).into_bytes(),
            ), // two values
            _ => (
                "decode",
                format!(
                    r#"{{"id": {i}, "ts": {TS}, "name": {}{}}}"#,
                    "[".repeat(2000),
                    "]".repeat(2000)
                )
                .into_bytes(),
            ), // deep nesting
        }
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(crate::support::seed());
    let mut records = Vec::with_capacity(n as usize);
    // (partition, offset) → stage of every invalid record; ids of the valid ones.
    let mut expected = std::collections::BTreeMap::new();
    let mut valid = 0u64;
    for i in 0..n {
        let (partition, offset) = (i % partitions, i / partitions);
        let payload = if rng.random_bool(0.25) {
            let (stage, payload) = invalid(rng.random_range(0..14), i);
            expected.insert((partition, offset), stage);
            payload
        } else {
            valid += 1;
            format!(r#"{{"id":{i},"ts":{},"name":"n{i}"}}"#, TS + i * 1000).into_bytes()
        };
        records.push(OutRecord {
            partition: Some(partition as i32),
            key: Some(i.to_string().into_bytes()),
            payload,
            timestamp_ms: Some(TS + i),
        });
    }
    let (_kafka, brokers) = mock_kafka(&[(topic, partitions as i32)]);
    assert_eq!(produce(&brokers, topic, records).unwrap(), n as u64);

    let w = World::with(
        &TableConfig::kafka(&brokers, topic)
            .source_keys("max_record_bytes = \"4KiB\"")
            .writer("max_age = \"200ms\""),
    );
    let d = w.path();
    Cli::new(d).run_ok(&["--stop-at-end"]);

    let status = status_json(d);
    let v = &status["tables"][0]["versions"][0];
    assert_eq!(v["rows"], valid, "{v}");
    assert_eq!(v["dead_letters"], expected.len() as u64, "{v}");
    let rows = duckdb(&format!(
        "SELECT count(*), count(DISTINCT id) FROM {}",
        scan(&d.join("lake"), "events", 1, "delta")
    ));
    assert_eq!(rows[0], [valid, valid], "one row per valid record");

    let mut seen = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(d.join("lake/events/_dead_letters/v1")).unwrap() {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        for l in BufReader::new(file).lines() {
            let letter: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
            let source = letter["source"].as_str().unwrap();
            let partition: i64 = source
                .strip_prefix(&format!("{topic}/"))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("source of {letter}"));
            let offset = letter["offset"].as_i64().unwrap();
            assert!(!letter["reason"].as_str().unwrap().is_empty(), "{letter}");
            let stage = letter["stage"].as_str().unwrap().to_string();
            assert!(
                seen.insert((partition, offset), stage).is_none(),
                "dead-lettered twice: {letter}"
            );
        }
    }
    let expected: std::collections::BTreeMap<_, _> = expected
        .into_iter()
        .map(|(k, stage)| (k, stage.to_string()))
        .collect();
    if seen != expected {
        let wrong: Vec<_> = expected
            .iter()
            .filter(|(k, s)| seen.get(*k) != Some(*s))
            .take(10)
            .collect();
        panic!(
            "{} dead letters, {} expected; first differences (expected): {wrong:?}",
            seen.len(),
            expected.len()
        );
    }
}

/// `bad_records = "fail"` stops at the first bad record with its coordinates, committing
/// nothing after the last commit; `"skip"` drops bad records, counted and logged, and writes
/// the rest. Neither changes the version's definition.
#[test]
fn bad_records_fail_stops_with_coordinates_and_skip_drops_them_logged() {
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    let config = |policy: &str| {
        TableConfig::files()
            .table_keys(&format!("bad_records = \"{policy}\""))
            .write_to(d);
    };
    config("fail");
    let ts = 1_795_651_200_000i64;
    let mut lines: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"id":{i},"ts":{},"name":"n{i}"}}"#, ts + i * 1000))
        .collect();
    lines[250] = r#"{"id": "two hundred fifty", "ts": 1}"#.to_string();
    lines[700] = format!(r#"{{"id": 700, "ts": {ts}"#); // truncated
    std::fs::write(d.join("input/events.ndjson"), lines.join("\n") + "\n").unwrap();

    let out = Cli::new(d).cmd("run", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad record at `events.ndjson` offset 250 (decode)"),
        "{stderr}"
    );
    assert!(stderr.contains("bad_records"), "the fix is named: {stderr}");
    let rows = |d: &std::path::Path| -> u64 {
        status_json(d)["tables"][0]["versions"][0]["rows"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(rows(d) < 250, "rows after the bad record were committed");

    config("skip");
    let out = Cli::new(d).cmd("run", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("bad record skipped").count(), 2, "{stderr}");
    assert!(
        stderr.contains("offset=250") && stderr.contains("offset=700"),
        "{stderr}"
    );
    let status = status_json(d);
    let v = &status["tables"][0]["versions"][0];
    assert_eq!(v["rows"], 998, "{v}");
    assert_eq!(v["dead_letters"], 0, "{v}");
    assert_eq!(v["offsets"]["events.ndjson"], 1000, "{v}");
    assert_eq!(status["tables"][0]["versions"].as_array().unwrap().len(), 1);
    let ids = duckdb(&format!(
        "SELECT count(DISTINCT id) FROM {} WHERE id IN (250, 700)",
        scan(&d.join("lake"), "events", 1, "delta")
    ));
    assert_eq!(ids[0][0], 0);
}

/// `dead-letters list` counts a version's committed dead letters by stage and source;
/// `dead-letters show` prints them as stored, filtered by stage. A dead-letter file no commit
/// lists (a crashed writer's) is not shown.
#[test]
fn dead_letters_list_and_show_what_the_version_committed() {
    let w = World::with(&TableConfig::files());
    let d = w.path();
    let ts = 1_795_651_200_000i64;
    let mut lines: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"id":{i},"ts":{},"name":"n{i}"}}"#, ts + i * 1000))
        .collect();
    lines[3] = r#"{"id": "three", "ts": 1}"#.into();
    lines[9] = "[9]".into();
    lines[15] = r#"{"id": 15, "ts": 999999999999999999}"#.into();
    std::fs::write(d.join("input/events.ndjson"), lines.join("\n") + "\n").unwrap();
    Cli::new(d).run_ok(&[]);
    // A stray file, as a writer that crashed before its commit leaves behind.
    let dl_dir = d.join("lake/events/_dead_letters/v1");
    let committed = std::fs::read_dir(&dl_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&committed, dl_dir.join("dead-letters-crashed-0.ndjson")).unwrap();

    let table = ["--config", "kappa-lake.toml", "--table", "events"];
    let args = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec!["dead-letters"];
        a.extend(extra);
        a.extend(table);
        a
    };
    let list = kappa_ok(d, &args(&["list"]), &[]);
    assert!(
        list.contains("events v1: 3 dead letters in 1 files (decode 2, event_time 1)"),
        "{list}"
    );
    assert!(list.contains("  events.ndjson: 3"), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(&kappa_ok(d, &args(&["list", "--json"]), &[])).unwrap();
    assert_eq!(json["versions"][0]["total"], 3, "{json}");
    assert_eq!(json["versions"][0]["by_stage"]["decode"], 2, "{json}");

    let show = kappa_ok(d, &args(&["show"]), &[]);
    let shown: Vec<serde_json::Value> = show
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let offsets: Vec<u64> = shown
        .iter()
        .map(|l| l["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [3, 9, 15], "{show}");
    assert_eq!(shown[0]["raw"], lines[3], "{show}");
    assert_eq!(shown[2]["stage"], "event_time", "{show}");
    assert!(!shown[1]["reason"].as_str().unwrap().is_empty());
    let decode = kappa_ok(
        d,
        &args(&["show", "--stage", "decode", "--limit", "1"]),
        &[],
    );
    assert_eq!(decode.lines().count(), 1, "{decode}");
    assert!(decode.contains("\"offset\":3"), "{decode}");
    let none = crate::support::kappa(d, &args(&["list", "--version", "7"]), &[]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("has no v7"));
}
