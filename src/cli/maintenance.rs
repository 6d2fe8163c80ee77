//! The maintenance commands: `compact` and `vacuum`.
//!
//! Invariant: one library call per command; the handler only renders its report.

use kappa_lake::config::Format;
use kappa_lake::pipeline::compact::{self, CompactOptions};
use kappa_lake::pipeline::compact_parquet;

use super::args::{CompactArgs, VacuumArgs};
use super::open_table;
use super::render::print_json;
use super::signals::shutdown_on_signals;

/// `compact`: rewrites a Delta version's small files, or compacts a plain-Parquet version into
/// a new version and promotes it (with `--dry-run`, says which files).
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
    let def = handle.version_or_current(version).await?;
    let r = match def.definition.format {
        Format::Delta => compact::compact(&handle, &opts).await?,
        // Into a new version, which it then promotes (a replay of the source's tail).
        Format::Parquet => compact_parquet::compact(&handle, &opts, shutdown_on_signals()).await?,
    };
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
    match r.into_version {
        Some(into) if r.promoted => {
            println!("  into v{into}, promoted: current v{} → v{into}", r.version);
        }
        Some(into) => {
            println!("  into v{into}, not promoted (interrupted: run `compact` again to finish it)")
        }
        None => {}
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
