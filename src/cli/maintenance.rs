//! The maintenance commands: `compact` and `vacuum`.
//!
//! Invariant: one library call per command; the handler only renders its report.

use kappa_lake::pipeline::compact::{self, CompactOptions};

use super::args::{CompactArgs, VacuumArgs};
use super::open_table;
use super::render::print_json;

/// `compact`: rewrites a Delta version's small files (or with `--dry-run`, says which).
pub async fn compact(args: CompactArgs) -> anyhow::Result<()> {
    let CompactArgs {
        table,
        version,
        partition,
        min_files,
        dry_run,
        json,
    } = args;
    let handle = open_table(&table, !dry_run).await?;
    let opts = CompactOptions {
        version,
        partition,
        dry_run,
        min_files,
        idle_for: None,
    };
    let r = compact::compact(&handle, &opts).await?;
    if json {
        return print_json(&r);
    }
    let before: usize = r.partitions.iter().map(|p| p.files_before).sum();
    let after: usize = r.partitions.iter().map(|p| p.files_after).sum();
    let verb = if dry_run {
        "would compact"
    } else {
        "compacted"
    };
    println!(
        "{} v{}: {verb} {} partitions: {before} files → {after} ({} bytes rewritten{})",
        r.table,
        r.version,
        r.partitions.len(),
        r.bytes_rewritten,
        if dry_run {
            String::new()
        } else {
            format!(", {} rows", r.rows_rewritten)
        }
    );
    for p in &r.partitions {
        println!("  {}: {} → {}", p.partition, p.files_before, p.files_after);
    }
    if r.superseded > 0 {
        println!(
            "  {} bins were compacted by another process first",
            r.superseded
        );
    }
    Ok(())
}

/// `vacuum`: deletes unreferenced data files older than the retention.
pub async fn vacuum(args: VacuumArgs) -> anyhow::Result<()> {
    let VacuumArgs {
        table,
        version,
        retain,
        allow_short_retention,
        dry_run,
        json,
    } = args;
    let handle = open_table(&table, !dry_run).await?;
    let r = kappa_lake::pipeline::vacuum::vacuum(
        &handle,
        version,
        retain,
        allow_short_retention,
        dry_run,
    )
    .await?;
    if json {
        return print_json(&r);
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    println!(
        "{} v{}: {verb} {} unreferenced files",
        r.table,
        r.version,
        r.files.len()
    );
    for f in &r.files {
        println!("  {f}");
    }
    Ok(())
}
