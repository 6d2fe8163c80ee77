//! Operating `run`: `/metrics`, `/health` and `/ready` during a real run, `status --json`
//! against DuckDB, and the Grafana dashboard against the metrics that exist.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use kappa_lake::metrics::Metrics;
use kappa_lake::source::mock::produce;

use crate::fixture::{TableConfig, World, mock_kafka};
use crate::kafka_support::{events, log_of, sigterm, spawn_run, wait_for};
use crate::support::{duckdb, python, scan, status_json};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/scripts/grafana/kappa-lake.json"
);
const DASHBOARD_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/grafana-dashboard.schema.json"
);

/// A loopback address nothing listens on (the port the system handed out, released again).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// `GET path` over HTTP/1.0: the status code and the body, or `None` while nothing answers.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The sum of a metric's samples (every label set), from the text format.
fn sum_of(metrics: &str, name: &str) -> f64 {
    samples(metrics, name).iter().map(|(_, v)| v).sum()
}

/// A metric's samples: (labels, value).
fn samples(metrics: &str, name: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let labels = match series.strip_prefix(name)? {
                "" => "",
                rest if rest.starts_with('{') => rest,
                _ => return None,
            };
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The metric names the dashboard's queries use.
fn dashboard_metrics(dashboard: &serde_json::Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let exprs = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .chain(
            dashboard["templating"]["list"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["query"].as_str()),
        );
    for expr in exprs {
        let mut rest = expr;
        while let Some(at) = rest.find("kappa_lake_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}

#[test]
fn metrics_health_and_ready_follow_a_run_and_status_matches_duckdb() {
    const PARTITIONS: i32 = 3;
    let (_kafka, brokers) = mock_kafka(&[("ops", PARTITIONS)]);
    let w = World::with(&TableConfig::kafka(&brokers, "ops").writer("max_age = \"1s\""));
    let d = w.path();
    produce(&brokers, "ops", events(0..3000, PARTITIONS)).unwrap();
    let addr = free_addr();
    let mut run = spawn_run(d, &["--metrics-addr", &addr.to_string()], "run.log");

    // The endpoint is up before the consumer joins its group: not ready, nothing assigned.
    let started = Instant::now();
    let first = loop {
        if let Some(answer) = get(addr, "/ready") {
            break answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/ready never answered:\n{}",
            log_of(d, "run.log")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let body: serde_json::Value = serde_json::from_str(&first.1).unwrap();
    assert_eq!(first.0, 503, "ready before anything was assigned: {body}");
    assert_eq!(body["tables"]["events"]["assigned"], 0, "{body}");
    assert_eq!(get(addr, "/health").map(|(s, _)| s), Some(200));

    // Ready once partitions are held and a commit has landed.
    let mut ready = None;
    assert!(
        wait_for(Duration::from_secs(60), || {
            ready = get(addr, "/ready").filter(|(s, _)| *s == 200);
            ready.is_some()
        }),
        "never ready:\n{}",
        log_of(d, "run.log")
    );
    let body: serde_json::Value = serde_json::from_str(&ready.unwrap().1).unwrap();
    assert_eq!(body["tables"]["events"]["assigned"], PARTITIONS, "{body}");
    let commits = status_json(d)["tables"][0]["versions"][0]["commits"]
        .as_u64()
        .unwrap();
    assert!(commits >= 1, "ready without a commit in the log");

    // More events while running: the counters reach the produced count, the lag falls to 0.
    produce(&brokers, "ops", events(3000..5000, PARTITIONS)).unwrap();
    let total = 5000.0;
    let mut metrics = String::new();
    let settled = wait_for(Duration::from_secs(90), || {
        metrics = get(addr, "/metrics").map(|(_, b)| b).unwrap_or_default();
        let lags = samples(&metrics, "kappa_lake_consumer_lag");
        sum_of(&metrics, "kappa_lake_events_consumed_total") == total
            && sum_of(&metrics, "kappa_lake_rows_written_total") == total
            && lags.len() == PARTITIONS as usize
            && lags.iter().all(|(_, lag)| *lag == 0.0)
    });
    assert!(
        settled,
        "counters or lag did not settle:\n{}\n{}",
        metrics
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
        log_of(d, "run.log")
    );
    assert!(sum_of(&metrics, "kappa_lake_commits_total") >= 1.0);
    assert!(sum_of(&metrics, "kappa_lake_commit_duration_seconds_count") >= 1.0);
    assert!(sum_of(&metrics, "kappa_lake_bytes_written_total") > 0.0);
    assert_eq!(sum_of(&metrics, "kappa_lake_dead_letters_total"), 0.0);
    assert_eq!(
        sum_of(&metrics, "kappa_lake_partitions_assigned"),
        f64::from(PARTITIONS)
    );
    assert_eq!(get(addr, "/nope").map(|(s, _)| s), Some(404));

    // The dashboard is a valid Grafana dashboard and queries only metrics that exist.
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let used = dashboard_metrics(&dashboard);
    assert!(used.len() >= 10, "the dashboard uses {used:?}");
    let families = Metrics::global().names();
    for name in &used {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            families.iter().any(|f| f == family),
            "the dashboard uses `{name}`, which kappa-lake does not define ({families:?})"
        );
    }
    // Those a live run records are served (rebuild progress needs a rebuild).
    for family in families
        .iter()
        .filter(|f| *f != "kappa_lake_rebuild_progress_ratio")
    {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "/metrics does not serve `{family}`"
        );
    }
    validate_dashboard(Path::new(DASHBOARD));

    sigterm(&run);
    assert!(run.wait().unwrap().success(), "{}", log_of(d, "run.log"));

    // status --json (from storage) agrees with what DuckDB counts in the table.
    let status = status_json(d);
    let v = &status["tables"][0]["versions"][0];
    let counted = duckdb(&format!(
        "SELECT count(*) FROM {}",
        scan(&d.join("lake"), "events", 1, "delta")
    ));
    assert_eq!(v["rows"], counted[0][0], "status rows vs DuckDB");
    assert_eq!(v["rows"], 5000);
    let offsets: u64 = v["offsets"]
        .as_object()
        .unwrap()
        .values()
        .map(|o| o.as_u64().unwrap())
        .sum();
    assert_eq!(offsets, 5000);
}

/// Validates the dashboard against the JSON schema of Grafana's dashboard model that
/// `tests/grafana-dashboard.schema.json` holds (Python `jsonschema`, from the test venv).
fn validate_dashboard(path: &Path) {
    crate::support::tool_ok(
        std::process::Command::new(python())
            .args([
                "-c",
                "import json, sys, jsonschema\n\
                 jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
            ])
            .arg(path)
            .arg(DASHBOARD_SCHEMA),
        "run python",
        "the dashboard does not validate:\n",
    );
}
