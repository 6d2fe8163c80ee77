//! Unit tests of `metrics`.

use super::*;

#[test]
fn readiness_needs_partitions_and_a_commit() {
    let m: &'static Metrics = Box::leak(Box::new(Metrics::new()));
    assert!(!m.readiness().ready, "no tables: not ready");
    m.expect_tables(["a", "b"]);
    let (a, b) = (m.version("a", 1), m.version("b", 3));
    a.committing();
    assert!(
        !m.readiness().tables["a"].committing,
        "nothing assigned yet"
    );
    a.assigned(2);
    b.assigned(1);
    a.committing();
    assert!(!m.readiness().ready, "b has not committed");
    b.committing();
    assert!(m.readiness().ready);
    b.assigned(0);
    assert!(!m.readiness().ready, "b holds nothing");
}

#[test]
fn the_text_format_carries_the_labels_and_the_time_since_the_last_commit() {
    let m: &'static Metrics = Box::leak(Box::new(Metrics::new()));
    let v = m.version("orders", 2);
    v.consumed(10, 1);
    v.committed(
        &CommitFigures {
            rows: 9,
            bytes: 1000,
            files: 1,
            dead_letters: vec![(Stage::Decode, 1)],
        },
        Duration::from_millis(30),
    );
    v.lag("orders/0", 0);
    let text = m.render();
    for line in [
        r#"kappa_lake_events_consumed_total{table="orders",version="2"} 10"#,
        r#"kappa_lake_rows_written_total{table="orders",version="2"} 9"#,
        r#"kappa_lake_dead_letters_total{stage="decode",table="orders",version="2"} 1"#,
        r#"kappa_lake_consumer_lag{partition="orders/0",table="orders",version="2"} 0"#,
        r#"kappa_lake_commit_duration_seconds_bucket{table="orders",version="2",le="0.05"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(text.contains(r#"kappa_lake_seconds_since_last_commit{table="orders",version="2"}"#));
    let response = respond(m, &tiny_http::Method::Get, "/nope");
    assert_eq!(response.status_code().0, 404);
    // A writer that ends leaves no lag behind.
    drop(v);
    assert!(!m.render().contains("kappa_lake_consumer_lag{"));
}
