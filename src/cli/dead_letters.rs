//! `dead-letters list | show | replay`: what a version could not materialize, and a second
//! chance for it.
//!
//! Invariant: `list` and `show` only read committed dead letters; `replay` commits into the
//! version through the library, exactly once per letter.

use std::io::Write;

use kappa_lake::pipeline::dead_letters;

use super::args::{DeadLettersListArgs, DeadLettersReplayArgs, DeadLettersShowArgs};
use super::render::print_json;
use super::{open_table, version_or_current};

/// `dead-letters list`: per version, counts by stage and by source partition.
pub async fn list(args: DeadLettersListArgs) -> anyhow::Result<()> {
    let DeadLettersListArgs {
        table,
        version,
        json,
    } = args;
    let handle = open_table(&table, false).await?;
    let summaries = dead_letters::summaries(&handle, version).await?;
    if json {
        return print_json(&serde_json::json!({ "table": table.table, "versions": summaries }));
    }
    for s in &summaries {
        let stages: Vec<String> = s.by_stage.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "{} v{}: {} dead letters in {} files{}",
            table.table,
            s.version,
            s.total,
            s.files,
            if stages.is_empty() {
                String::new()
            } else {
                format!(" ({})", stages.join(", "))
            }
        );
        for (source, n) in &s.by_source {
            println!("  {source}: {n}");
        }
    }
    Ok(())
}

/// `dead-letters show`: a version's letters as stored, one JSON object per line.
pub async fn show(args: DeadLettersShowArgs) -> anyhow::Result<()> {
    let DeadLettersShowArgs {
        table,
        version,
        stage,
        limit,
    } = args;
    let handle = open_table(&table, false).await?;
    let version = version_or_current(&handle, version).await?;
    let letters = dead_letters::read(&handle, version).await?;
    let mut out = std::io::stdout().lock();
    for letter in letters
        .iter()
        .filter(|l| stage.as_ref().is_none_or(|s| l["stage"] == s.as_str()))
        .take(limit)
    {
        serde_json::to_writer(&mut out, letter)?;
        writeln!(out)?;
    }
    Ok(())
}

/// `dead-letters replay`: decodes a version's letters again and commits what now lands.
pub async fn replay(args: DeadLettersReplayArgs) -> anyhow::Result<()> {
    let handle = open_table(&args.table, true).await?;
    let version = version_or_current(&handle, args.version).await?;
    let report = kappa_lake::pipeline::ingest::replay_dead_letters(&handle, version).await?;
    if args.json {
        return print_json(&report);
    }
    println!(
        "{} v{}: {} dead letters replayed, {} landed as rows in {} commits; {} handled by an earlier replay",
        report.table,
        report.version,
        report.letters,
        report.replayed,
        report.commits,
        report.already_replayed
    );
    if report.truncated > 0 {
        println!(
            "{} were stored cut short (over 64 KiB) and cannot be replayed from the dead letters; the source still holds them",
            report.truncated
        );
    }
    for (reason, n) in &report.still_failing {
        println!("still failing ({n}): {reason}");
    }
    Ok(())
}
