//! The commands over a table's versions: `status` / `versions list`, `plan`, `promote`,
//! `rollback`, `gc` and `diff`.
//!
//! Invariant: only `promote`, `rollback` and `gc` (without `--dry-run`) change anything, and
//! each through one library call; the others only read.

use std::path::Path;

use kappa_lake::config::Config;
use kappa_lake::pipeline::TableHandle;
use kappa_lake::pipeline::coverage::{self, Replay};
use kappa_lake::pipeline::promote::{self, MoveRequest};
use kappa_lake::status::{self, Status};
use kappa_lake::table::plan::Plan;

use super::args::{DiffArgs, GcArgs, JsonConfigArgs, MoveArgs};
use super::render::{print_json, print_status, version_label};
use super::{load, open_table};

/// `status` (every table) and `versions list` (`only` one table, if given); `topic`: with
/// what each Kafka table's topic and archive hold.
pub async fn list(
    config: &Path,
    only: Option<&str>,
    json: bool,
    topic: bool,
) -> anyhow::Result<()> {
    let config = load(config)?;
    let mut tables = Vec::new();
    for t in &config.tables {
        if only.is_some_and(|name| name != t.name) {
            continue;
        }
        let handle = TableHandle::open(t).map_err(kappa_lake::Error::from)?;
        let mut s = status::table_status(&handle).await?;
        if topic {
            s.topic = replay(&config, &handle).await?;
        }
        tables.push(s);
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
        let plan = handle.plan().await?;
        // A new version replays the topic: name what it would miss.
        let replay = match plan {
            Plan::Create | Plan::Rebuild { .. } => replay(&config, &handle).await?,
            Plan::Nothing { .. } | Plan::Evolve { .. } => None,
        };
        plans.push((t.name.clone(), plan, replay));
    }
    if args.json {
        let tables: Vec<_> = plans
            .iter()
            .map(|(name, plan, replay)| {
                let mut t = serde_json::json!({"name": name, "plan": plan});
                if let Some(r) = replay {
                    t["replay"] = serde_json::to_value(r)?;
                }
                Ok(t)
            })
            .collect::<serde_json::Result<_>>()?;
        print_json(&serde_json::json!({ "tables": tables }))?;
    } else {
        for (name, plan, replay) in &plans {
            println!("{name}: {plan}");
            if let Some(r) = replay {
                print!("{}", status::render_replay(r, "  "));
            }
        }
    }
    Ok(())
}

/// What a replay of `handle`'s table reads (Kafka tables), with the raw archive it names.
async fn replay(config: &Config, handle: &TableHandle) -> anyhow::Result<Option<Replay>> {
    let archive = match handle.cfg.source.archive() {
        Some(name) => {
            let cfg = config.table(name).map_err(kappa_lake::Error::from)?;
            Some(TableHandle::open(cfg).map_err(kappa_lake::Error::from)?)
        }
        None => None,
    };
    Ok(coverage::replay(handle, archive.as_ref()).await)
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
