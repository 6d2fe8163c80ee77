//! SIGKILL at random moments while materializing a large file source; after restarts the
//! committed version holds every event exactly once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::fixture::Cli;
use crate::support::{BIN, Workdir, duckdb, scan, status_json};

// Enough that 20 kills land before a fast machine consumes it all (at ~60k events/s, 400k
// events once ran out after 19 kills with delays up to 700 ms).
const EVENTS: usize = 600_000;
const KILLS: usize = 20;

#[test]
fn sigkill_at_random_moments_then_restart_gives_exactly_once() {
    let dir = Workdir::new();
    let d = dir.path();
    std::fs::create_dir_all(d.join("schemas")).unwrap();
    std::fs::write(
        d.join("schemas/orders.avsc"),
        kappa_lake::demo::ORDERS_SCHEMA,
    )
    .unwrap();
    let ids = kappa_lake::demo::generate_orders(&d.join("input"), EVENTS, 0).unwrap();
    std::fs::write(
        d.join("kappa-lake.toml"),
        r#"[[table]]
name = "orders"
root = "lake"
schema = "schemas/orders.avsc"
time = { field = "ts", granularity = "hour" }
[table.source]
kind = "files"
path = "input"
batch_size = 4096
[table.writer]
target_file_size = "2MiB"
max_age = "150ms"
"#,
    )
    .unwrap();

    let seed: u64 = std::env::var("KAPPA_LAKE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash test seed {seed} (set KAPPA_LAKE_TEST_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = 0;
    let mut finished_early = 0;
    while kills < KILLS {
        let mut child = Command::new(BIN)
            .current_dir(d)
            .args(["run", "--config", "kappa-lake.toml"])
            .env("KAPPA_LAKE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(rng.random_range(20..400));
        let start = Instant::now();
        while start.elapsed() < delay {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "run failed: {status}");
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_some() {
            // It reached the end before the kill: everything is consumed.
            finished_early += 1;
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    assert!(
        kills >= KILLS,
        "only {kills} kills landed before the source was consumed; make the source larger"
    );
    assert_eq!(finished_early, 0);
    // Final run to completion.
    Cli::new(d).run_ok(&[]);

    let status = status_json(d);
    let version = &status["tables"][0]["versions"][0];
    assert_eq!(version["rows"], EVENTS as u64);
    assert_eq!(version["dead_letters"], 0);
    // The lives made progress between kills (how many commit before their kill depends on
    // the machine's load: a life killed within ~20 ms of its start commits nothing).
    let commits = version["commits"].as_u64().unwrap_or(0);
    assert!(
        commits > KILLS as u64 / 2,
        "{commits} commits in {KILLS} lives"
    );

    let sql = format!(
        "SELECT count(*), count(DISTINCT order_id), count(DISTINCT (_source_file, _source_line)), sum(order_id) \
         FROM {}",
        scan(&d.join("lake"), "orders", 1, "delta")
    );
    let row = &duckdb(&sql)[0];
    let sum: i64 = ids.iter().sum();
    assert_eq!(row[0], EVENTS as u64, "every event exactly once: row count");
    assert_eq!(
        row[1], EVENTS as u64,
        "every event exactly once: distinct ids"
    );
    assert_eq!(row[2], EVENTS as u64, "every source line exactly once");
    assert_eq!(row[3].to_string().trim_matches('"'), sum.to_string());
}
