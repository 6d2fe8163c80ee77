//! The kill loop: `run` and `rebuild --force --promote` against the real broker while an
//! independent producer keeps sending. At random moments a random one of them is SIGKILLed
//! (and `run` started again at once; a rebuild is started again in a later round and resumes
//! its version), for `KAPPA_LAKE_CHAOS_ROUNDS` rounds: 20 by default (what CI runs);
//! `scripts/chaos.sh` runs 200 or any number. In the end every produced event is in the
//! current version exactly once (DuckDB), and every version's rows match its stored offsets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::broker::{BROKER, brokers, create_topic, spawn_producer, unique_topic, wait_ok};
use crate::fixture::{TableConfig, World};
use crate::kafka_support::{Running, log_of, sigterm, spawn_run, stored_total, wait_for};
use crate::rebuild::spawn_rebuild;
use crate::support::{current, read_lake, seed, status_json};

fn rounds() -> usize {
    std::env::var("KAPPA_LAKE_CHAOS_ROUNDS").map_or(20, |r| {
        r.parse()
            .expect("KAPPA_LAKE_CHAOS_ROUNDS is a number of rounds")
    })
}

/// The producer: ids in chunks at a steady rate, one `produce.py` after the other, until
/// `stop`; returns how many ids it produced (`0..n`).
fn keep_producing(topic: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let (chunk, mut next) = (1000, 0);
        while !stop.load(Ordering::Relaxed) {
            wait_ok(spawn_producer(&topic, next, chunk, Some(500)), "produce.py");
            next += chunk;
        }
        next
    })
}

/// A running `rebuild --force --promote` and its log.
struct Rebuild {
    process: Running,
    log: String,
}

impl Rebuild {
    /// Whether it has exited; a rebuild that exits must have succeeded and promoted.
    fn finished(&mut self, d: &std::path::Path) -> bool {
        let Some(status) = self.process.try_wait().unwrap() else {
            return false;
        };
        let log = log_of(d, &self.log);
        assert!(status.success(), "rebuild failed ({status}):\n{log}");
        assert!(
            log.contains("promoted: current"),
            "rebuild did not promote:\n{log}"
        );
        true
    }
}

#[test]
fn kill_loop_over_run_and_rebuild_promote_gives_exactly_once() {
    let _broker = BROKER.lock().unwrap_or_else(PoisonError::into_inner);
    let rounds = rounds();
    let started = Instant::now();
    let topic = unique_topic("chaos");
    create_topic(&topic);
    let brokers = brokers();
    // Small files and frequent commits, and a short session so that a killed member's
    // partitions move on quickly.
    let w = World::with(
        &TableConfig::kafka(&brokers, &topic)
            .session_ms(3000)
            .writer("target_file_size = \"1MiB\"\nmax_age = \"300ms\""),
    );
    let d = w.path();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = keep_producing(topic.clone(), stop.clone());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let mut run_log = "run-0.log".to_string();
    let mut run = spawn_run(d, &[], &run_log);
    let mut rebuild: Option<Rebuild> = None;
    let (mut run_kills, mut rebuild_kills, mut promotions) = (0, 0, 0);
    for round in 1..=rounds {
        std::thread::sleep(Duration::from_millis(rng.random_range(200..3000)));
        if let Some(status) = run.try_wait().unwrap() {
            panic!("run exited on its own ({status}):\n{}", log_of(d, &run_log));
        }
        if rebuild.as_mut().is_some_and(|r| r.finished(d)) {
            promotions += 1;
            rebuild = None;
        }
        if rebuild.is_none() && rng.random_bool(0.5) {
            let log = format!("rebuild-{round}.log");
            rebuild = Some(Rebuild {
                process: spawn_rebuild(d, &log, &["--force"], &[]),
                log,
            });
            std::thread::sleep(Duration::from_millis(rng.random_range(0..2000)));
        }
        match rebuild.as_mut() {
            Some(r) if rng.random_bool(0.5) => {
                if r.finished(d) {
                    promotions += 1;
                } else {
                    r.process.kill().unwrap(); // SIGKILL
                    r.process.wait().unwrap();
                    rebuild_kills += 1;
                }
                rebuild = None;
            }
            _ => {
                run.kill().unwrap(); // SIGKILL
                run.wait().unwrap();
                run_kills += 1;
                run_log = format!("run-{round}.log");
                run = spawn_run(d, &[], &run_log);
            }
        }
        eprintln!(
            "round {round}/{rounds}: {run_kills} run kills, {rebuild_kills} rebuild kills, \
             {promotions} promotions, current v{}",
            current(d)
        );
    }

    // Production stops; the last rebuild finishes; `run` catches up with the topic.
    stop.store(true, Ordering::Relaxed);
    let produced = producer.join().expect("producer");
    if let Some(mut r) = rebuild.take() {
        assert!(
            wait_for(Duration::from_secs(300), || r.finished(d)),
            "the last rebuild did not finish:\n{}",
            log_of(d, &r.log)
        );
        promotions += 1;
    }
    // The broker's ListOffsets "latest" can be wrong on tansu (COMPONENTS.md), so "caught up"
    // is: the version covers every produced id's worth of records and has stopped growing.
    let live = current(d);
    let index = status_json(d)["tables"][0]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().position(|v| v["version"] == live))
        .expect("the current version is listed");
    let mut last = 0;
    assert!(
        wait_for(Duration::from_secs(300), || {
            let now = stored_total(d, index);
            let settled = now >= produced as u64 && now == last;
            last = now;
            if !settled {
                std::thread::sleep(Duration::from_secs(1));
            }
            settled
        }),
        "v{live} did not catch up ({} of {produced}):\n{}",
        stored_total(d, index),
        log_of(d, &run_log)
    );
    sigterm(&run);
    assert!(run.wait().unwrap().success(), "{}", log_of(d, &run_log));

    let status = status_json(d);
    let versions = status["tables"][0]["versions"].as_array().unwrap();
    for v in versions {
        let n = v["version"].as_u64().unwrap() as u32;
        let stored: u64 = v["offsets"]
            .as_object()
            .map_or(0, |o| o.values().map(|x| x.as_u64().unwrap()).sum());
        let seen = read_lake(d, "events", n, "delta", &["duckdb"], "id");
        let s = &seen["duckdb"];
        assert_eq!(s["rows"], stored, "v{n}: rows = stored offsets");
        assert_eq!(s["distinct_offsets"], stored, "v{n}: no record twice");
        if u64::from(n) == live {
            // (A producer retry may have written an id twice: two records, two rows.)
            assert_eq!(s["distinct_ids"], produced, "v{n}: every produced id");
            assert_eq!(s["min"], 0);
            assert_eq!(s["max"], produced - 1);
        }
    }
    eprintln!(
        "{rounds} rounds in {:?}: {run_kills} run kills, {rebuild_kills} rebuild kills, \
         {promotions} promotions, {} versions, {produced} ids, current v{live} exact",
        started.elapsed(),
        versions.len()
    );
}
