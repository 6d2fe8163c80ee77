//! Security checks: hostile table names, partition-relevant values and file names never become
//! paths outside the root (nor reach a terminal unescaped), and secrets given in the config
//! never appear in logs, `status` or errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use crate::fixture::{Cli, TableConfig, World};
use crate::kafka_support::sigterm;
use crate::support::{EVENT_SCHEMA, duckdb, scan};

/// `value` as a TOML basic string (JSON's escapes are valid TOML).
fn toml_string(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

/// Every file and directory under `dir`, relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            let path = e.path();
            out.push(
                path.strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `date=YYYY-MM-DD` or `date=YYYY-MM-DD/hour=H`, a real date and hour.
fn is_partition(dirs: &str) -> bool {
    let mut parts = dirs.split('/');
    let date = parts.next().and_then(|p| p.strip_prefix("date="));
    let date_ok = date
        .is_some_and(|d| d.len() == 10 && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok());
    let hour_ok = parts.next().is_none_or(|h| {
        h.strip_prefix("hour=")
            .is_some_and(|h| h.len() <= 2 && h.parse::<u8>().is_ok_and(|h| h < 24))
    });
    date_ok && hour_ok && parts.next().is_none()
}

/// A control character other than newline and tab (which stderr's lines are made of).
fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

#[test]
fn hostile_table_names_are_refused_before_anything_is_written() {
    let long = "x".repeat(10_000);
    let names = [
        "../escape",
        "../../../../tmp/escape",
        "/etc",
        "a/b",
        "..",
        ".",
        ".hidden",
        "_kappa",
        "nul\0byte",
        "bell\u{7}",
        "new\nline",
        "esc\u{1b}[2Jred",
        "ünïcode",
        "a b",
        "C:\\x",
        long.as_str(),
    ];
    for name in names {
        let w = World::with(&TableConfig::files());
        let d = w.path();
        let path = d.join("kappa-lake.toml");
        let text = std::fs::read_to_string(&path).unwrap().replacen(
            "name = \"events\"",
            &format!("name = {}", toml_string(name)),
            1,
        );
        std::fs::write(&path, text).unwrap();
        let before = tree(d);
        for command in ["validate", "run", "status", "plan"] {
            let out = Cli::new(d).cmd(command, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} {name:?}: {stderr}");
            assert!(
                stderr.contains("table[0].name") && stderr.contains("not a valid table name"),
                "{command} {name:?}: {stderr}"
            );
            assert!(
                !has_control(&stderr),
                "{command} {name:?} printed {stderr:?}"
            );
            assert!(
                stderr.len() < 1000,
                "{command}: {} bytes of stderr",
                stderr.len()
            );
        }
        assert_eq!(tree(d), before, "{name:?}: something was written");
    }

    // A hostile `--table` on a valid config: refused, escaped, nothing written.
    let w = World::with(&TableConfig::files());
    let d = w.path();
    let before = tree(d);
    for table in ["../escape", "events/../../x", "esc\u{1b}[2J"] {
        let out = Cli::new(d).cmd("rebuild", &["--table", table]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{table:?}: {stderr}");
        assert!(stderr.contains("no table named"), "{table:?}: {stderr}");
        assert!(!has_control(&stderr), "{table:?}: {stderr:?}");
    }
    assert_eq!(tree(d), before);
}

/// Values a path could be built from: event times (the only source of partition values) that
/// try to traverse, are absolute, hold NUL or control characters, or are very long, are dead
/// letters with a reason; the same strings in a data column are stored as they are. Input
/// files with odd names are read and tracked like any other. Every directory written is a
/// `date=YYYY-MM-DD/hour=H` partition inside the version.
#[test]
fn hostile_values_stay_data_and_never_become_paths() {
    let schema = EVENT_SCHEMA.replace(
        r#"{"type":"long","logicalType":"timestamp-millis"}"#,
        r#""string""#,
    );
    let w = World::with(&TableConfig::files().schema(&schema));
    let d = w.path();
    let long = "y".repeat(100_000);
    let hostile = [
        "../../../../etc/passwd",
        "/etc/passwd",
        "date=2026-11-26/../../x",
        "2026-11-26T00:00:00Z/../../x",
        "2026-11-26T00:00:00Z\0",
        "nul\0byte",
        "esc\u{1b}[2J\u{7}",
        "new\nline",
        "C:\\Windows\\x",
        "%2e%2e%2fx",
        long.as_str(),
    ];
    let mut lines = String::new();
    // Valid times, hostile names: rows.
    for (id, name) in hostile.iter().enumerate() {
        let line = serde_json::json!({"id": id, "ts": "2026-11-26T05:00:00Z", "name": name});
        lines.push_str(&format!("{line}\n"));
    }
    // Hostile times: dead letters.
    for (i, ts) in hostile.iter().enumerate() {
        let line = serde_json::json!({"id": 1000 + i, "ts": ts, "name": "t"});
        lines.push_str(&format!("{line}\n"));
    }
    let files = ["plain.ndjson", "sp ace ü ..ndjson", "new\nline.ndjson"];
    for f in files {
        std::fs::write(d.join("input").join(f), &lines).unwrap();
    }
    Cli::new(d).run_ok(&[]);

    let n = hostile.len();
    let status = crate::support::status_json(d);
    let v = &status["tables"][0]["versions"][0];
    assert_eq!(v["rows"], (n * files.len()) as u64, "{v}");
    assert_eq!(v["dead_letters"], (n * files.len()) as u64, "{v}");
    for f in files {
        assert_eq!(v["offsets"][f], (2 * n) as u64, "{f}: {v}");
    }
    // The names are stored exactly (DuckDB).
    let rows = duckdb(&format!(
        "SELECT id, name, count(*) FROM {} GROUP BY id, name ORDER BY id",
        scan(&d.join("lake"), "events", 1, "delta")
    ));
    assert_eq!(rows.len(), n);
    for (id, name) in hostile.iter().enumerate() {
        assert_eq!(rows[id][0], id as u64);
        assert_eq!(rows[id][1].as_str(), Some(*name), "id {id}");
        assert_eq!(rows[id][2], files.len() as u64, "id {id}");
    }
    // Every hostile time is a dead letter with its reason.
    let mut letters = 0;
    for entry in std::fs::read_dir(d.join("lake/events/_dead_letters/v1")).unwrap() {
        let file = std::fs::File::open(entry.unwrap().path()).unwrap();
        for l in BufReader::new(file).lines() {
            let letter: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
            assert_eq!(letter["stage"], "event_time", "{letter}");
            assert!(!letter["reason"].as_str().unwrap().is_empty(), "{letter}");
            letters += 1;
        }
    }
    assert_eq!(letters, n * files.len());
    // Nothing outside the config's places; partitions are time-shaped.
    for path in tree(d) {
        let top = path.split('/').next().unwrap();
        assert!(
            ["kappa-lake.toml", "schemas", "input", "lake"].contains(&top),
            "unexpected {path:?}"
        );
        let Some(rest) = path.strip_prefix("lake/events/v1/") else {
            continue;
        };
        if rest.starts_with("_delta_log") || rest.starts_with("_kappa") {
            continue;
        }
        let dirs = rest.rsplit_once('/').map_or(rest, |(dirs, file)| {
            if file.ends_with(".parquet") {
                dirs
            } else {
                rest
            }
        });
        assert!(is_partition(dirs), "not a partition: {path:?}");
    }
}

/// Secrets given in the config (a SASL password, an object-store key) appear in no log line,
/// in nothing `status`/`validate` print, and in no error, also when they are what fails.
#[test]
fn secrets_in_the_config_never_appear_in_logs_status_or_errors() {
    let secret = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let kafka = kappa_lake::source::mock::MockKafka::start(&[("sec", 2)]).unwrap();
    let w = World::with(
        &TableConfig::kafka(kafka.bootstrap_servers(), "sec").writer("max_age = \"200ms\""),
    );
    let d = w.path();
    let path = d.join("kappa-lake.toml");
    let base = std::fs::read_to_string(&path).unwrap();
    let sasl = |extra: &str| {
        base.replacen(
            "[table.source.kafka]\n",
            &format!(
                "[table.source.kafka]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\
                 \"sasl.mechanism\" = \"PLAIN\"\n\"sasl.username\" = \"kappa\"\n\
                 \"sasl.password\" = \"{secret}\"\n{extra}"
            ),
            1,
        )
    };
    let mut seen = String::new();
    let mut check = |what: &str, out: &std::process::Output| {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(&secret),
            "{what} printed the secret:\n{text}"
        );
        seen.push_str(&text);
    };
    // A SASL config the broker cannot satisfy: `run` retries and logs at debug level.
    std::fs::write(&path, sasl("")).unwrap();
    let debug = [("KAPPA_LAKE_LOG", "debug")];
    check("validate", &Cli::new(d).envs(&debug).cmd("validate", &[]));
    let mut run = Cli::new(d).envs(&debug).spawn_run(&[], "run.log");
    std::thread::sleep(Duration::from_secs(6));
    sigterm(&run);
    let _ = run.wait();
    let log = crate::kafka_support::log_of(d, "run.log");
    crate::support::archive("run with a SASL password", log.as_bytes());
    assert!(!log.is_empty(), "run logged nothing");
    assert!(!log.contains(&secret), "run logged the secret");
    check(
        "status",
        &Cli::new(d).envs(&debug).cmd("status", &["--json"]),
    );
    // Bad config next to the secret: the error names the key, not the secret.
    std::fs::write(&path, sasl("\"bogus.property\" = \"x\"\n")).unwrap();
    for command in ["validate", "run"] {
        let out = Cli::new(d).envs(&debug).cmd(command, &[]);
        assert!(!out.status.success(), "{command} accepted a bad config");
        check(command, &out);
    }
    // The secret as the bad value itself: a property that takes a number.
    std::fs::write(
        &path,
        sasl(&format!("\"fetch.min.bytes\" = \"{secret}\"\n")),
    )
    .unwrap();
    let out = Cli::new(d).envs(&debug).cmd("run", &[]);
    assert!(
        !out.status.success(),
        "run accepted fetch.min.bytes = <secret>"
    );
    check("run with the secret as a bad value", &out);
    // An object-store key, in the config and as an environment override, with a store that
    // cannot be reached.
    let store = base
        .replacen("root = \"lake\"", "root = \"s3://bucket/lake\"", 1)
        .replacen(
            "[table.source]",
            &format!(
                "[table.storage]\naws_access_key_id = \"AKIDKAPPA\"\n\
                 aws_secret_access_key = \"{secret}\"\naws_endpoint = \"http://127.0.0.1:9\"\n\
                 aws_allow_http = \"true\"\naws_region = \"us-east-1\"\n\n[table.source]"
            ),
            1,
        );
    std::fs::write(&path, &store).unwrap();
    check(
        "validate (store)",
        &Cli::new(d).envs(&debug).cmd("validate", &[]),
    );
    let override_env = [
        ("KAPPA_LAKE_LOG", "debug"),
        ("KAPPA_LAKE_TABLE__EVENTS__STORAGE__NOPE", secret.as_str()),
    ];
    let out = Cli::new(d).envs(&override_env).cmd("status", &[]);
    assert!(!out.status.success());
    check("status with a bad storage override", &out);
    assert!(
        seen.contains("NOPE") || seen.contains("nope"),
        "the bad key is named:\n{seen}"
    );
    assert!(
        seen.contains("bogus.property"),
        "the bad Kafka key is named:\n{seen}"
    );
}
