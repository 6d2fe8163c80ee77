//! Malformed lines go to the dead-letter output with reason and coordinates; the run continues
//! and valid + dead-lettered = input.

use std::io::{BufRead, BufReader};

use crate::support::{EVENT_SCHEMA, duckdb, kappa_ok, scan, status_json, write_config};

#[test]
fn malformed_lines_are_dead_lettered_and_counts_add_up() {
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    write_config(
        d,
        EVENT_SCHEMA,
        r#"{ field = "ts", granularity = "hour" }"#,
        "",
    );
    std::fs::create_dir_all(d.join("input")).unwrap();
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
    kappa_ok(d, &["run", "--config", "kappa-lake.toml"], &[]);

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
