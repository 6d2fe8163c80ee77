//! The commands over a table's versions: `status` / `versions list`, `plan`, `promote`,
//! `rollback`, `gc` and `diff`.
//!
//! Invariant: only `promote`, `rollback` and `gc` (without `--dry-run`) change anything, and
//! each through one library call; the others only read.

use std::path::Path;

use kappa_lake::pipeline::TableHandle;
use kappa_lake::pipeline::promote::{self, MoveRequest};
use kappa_lake::status::{self, Status};

use super::args::{DiffArgs, GcArgs, JsonConfigArgs, MoveArgs};
use super::render::{print_json, print_status, version_label};
use super::{load, open_table};

/// `status` (every table) and `versions list` (`only` one table, if given).
pub async fn list(config: &Path, only: Option<&str>, json: bool) -> anyhow::Result<()> {
    let config = load(config)?;
    let mut tables = Vec::new();
    for t in &config.tables {
        if only.is_some_and(|name| name != t.name) {
            continue;
        }
        let handle = TableHandle::open(t).map_err(kappa_lake::Error::from)?;
        tables.push(status::table_status(&handle).await?);
    }
    if let Some(name) = only.filter(|_| tables.is_empty()) {
        config.table(name).map_err(kappa_lake::Error::from)?;
    }
    print_status(&Status { tables }, json)
}

/// `plan`: per table, what the config's definition takes.
pub async fn plan(args: JsonConfigArgs) -> anyhow::Result<()> {
    let config = load(&args.config.config)?;
    let mut plans = Vec::new();
    for t in &config.tables {
        let handle = TableHandle::open(t).map_err(kappa_lake::Error::from)?;
        plans.push((t.name.clone(), handle.plan().await?));
    }
    if args.json {
        let tables: Vec<_> = plans
            .iter()
            .map(|(name, plan)| serde_json::json!({"name": name, "plan": plan}))
            .collect();
        print_json(&serde_json::json!({ "tables": tables }))?;
    } else {
        for (name, plan) in &plans {
            println!("{name}: {plan}");
        }
    }
    Ok(())
}

/// `promote`: moves `current` to a caught-up version.
pub async fn promote(args: MoveArgs) -> anyhow::Result<()> {
    let handle = open_table(&args.table, true).await?;
    let report = promote::promote(&handle, move_request(&args)).await?;
    print_move(&report.table, report.from, report.to);
    Ok(())
}

/// `rollback`: moves `current` back.
pub async fn rollback(args: MoveArgs) -> anyhow::Result<()> {
    let handle = open_table(&args.table, true).await?;
    let report = promote::rollback(&handle, move_request(&args)).await?;
    print_move(&report.table, report.from, report.to);
    Ok(())
}

fn move_request(args: &MoveArgs) -> MoveRequest {
    MoveRequest {
        version: args.version,
        force: args.force,
        expect_current: args.expect_current,
        max_lag: args.max_lag,
        allow_gap: args.allow_gap,
    }
}

fn print_move(table: &str, from: Option<u32>, to: u32) {
    println!("{table}: current {} → v{to}", version_label(from));
}

/// `gc`: deletes (or with `--dry-run`, names) the versions nothing needs.
pub async fn gc(args: GcArgs) -> anyhow::Result<()> {
    let GcArgs {
        table,
        keep,
        dry_run,
    } = args;
    let handle = open_table(&table, !dry_run).await?;
    for d in kappa_lake::pipeline::gc::gc(&handle, keep, dry_run).await? {
        let verb = match (d.delete, dry_run) {
            (true, true) => "would delete",
            (true, false) => "deleted",
            (false, _) => "kept",
        };
        println!("{} v{}: {verb} ({})", table.table, d.version, d.reason);
    }
    Ok(())
}

/// `diff`: per day, the rows of two versions and whether they hold the same records.
pub async fn diff(args: DiffArgs) -> anyhow::Result<()> {
    let DiffArgs { table, a, b, json } = args;
    let handle = open_table(&table, false).await?;
    let d = kappa_lake::pipeline::diff::diff(&handle, a, b, None).await?;
    if json {
        return print_json(&d);
    }
    println!(
        "{:<16} {:>12} {:>12}  same records",
        "day",
        format!("v{a} rows"),
        format!("v{b} rows")
    );
    for day in d.days.iter().chain(std::iter::once(&d.total)) {
        println!(
            "{:<16} {:>12} {:>12}  {}",
            day.day,
            day.a.rows,
            day.b.rows,
            if day.same() { "yes" } else { "NO" }
        );
    }
    Ok(())
}
