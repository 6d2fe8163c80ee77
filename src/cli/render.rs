//! Output shared by several commands: pretty JSON on stdout, `status`-style text, version
//! labels and the demo's report.
//!
//! Invariant: everything written here goes to stdout and is part of the CLI contract (the
//! tests and users' scripts parse it); a change of format is a change of the CLI.

use kappa_lake::demo::DemoReport;
use kappa_lake::status::{self, Status};

/// `value` as pretty JSON, one document on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `status` and `versions list`: the tables' versions as JSON, or as the text table.
pub fn print_status(status: &Status, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(status)
    } else {
        print!("{}", status::render(status));
        Ok(())
    }
}

/// A version as users name it: `v3`, or `none`.
pub fn version_label(v: Option<u32>) -> String {
    v.map_or("none".into(), |v| format!("v{v}"))
}

/// The demo's report as text: what it produced, built and promoted, the status, and how to
/// query the lake.
pub fn print_demo(r: &DemoReport) {
    println!("kappa-lake demo");
    println!(
        "  produced    {} order events (+{} malformed) to Kafka topic `orders` (6 partitions, in-process mock cluster)",
        r.events, r.malformed
    );
    println!(
        "  v1 (daily)  {} rows, {} dead letters, {} files, {} commits",
        r.v1.rows, r.v1.dead_letters, r.v1.files, r.v1.commits
    );
    let v2 = &r.v2.ingest;
    println!(
        "  v{} (hourly) replayed the topic: {} rows, {} dead letters, {} files, {} commits",
        v2.version, v2.rows, v2.dead_letters, v2.files, v2.commits
    );
    if let Some(p) = &r.v2.promoted {
        println!(
            "  promoted    current: {} → v{}",
            version_label(p.from),
            p.to
        );
    }
    println!("  lake        {}", r.lake.display());
    println!("  config      {}", r.config.display());
    println!();
    print!("{}", status::render(&r.status));
    println!();
    println!("Query the current version with DuckDB:");
    println!("  {}", r.duckdb_query);
    println!(
        "Inspect it with: kappa-lake status --config {}",
        r.config.display()
    );
}
