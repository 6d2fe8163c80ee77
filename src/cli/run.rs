//! The commands that write versions from a source until it ends or a signal stops them:
//! `run` (every table's live version), `rebuild` (one new version) and `demo`.
//!
//! Invariant: each wires signals to a passed-in [`kappa_lake::shutdown::Shutdown`] and
//! reports what it wrote; an interrupted run loses nothing (the offsets are in the commits).

use anyhow::Context;
use kappa_lake::metrics::{Metrics, MetricsServer};
use kappa_lake::pipeline::rebuild::{self, RebuildOptions};
use kappa_lake::pipeline::{IngestOptions, TableHandle};

use super::args::{DemoArgs, RebuildArgs, RunArgs};
use super::render::{print_demo, print_json, version_label};
use super::signals::{shutdown_on_signals, shutdown_on_signals_within};
use super::{load, open_named_table, open_table};

/// `run`: one task per table keeps its live version up to date until the source ends (files)
/// or a signal.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = load(&args.config.config)?;
    let mut tables = Vec::new();
    for t in &config.tables {
        tables.push(
            TableHandle::open_for_writing(t)
                .await
                .map_err(kappa_lake::Error::from)?,
        );
    }
    let metrics = Metrics::global();
    metrics.expect_tables(config.tables.iter().map(|t| t.name.as_str()));
    let _server = args
        .metrics_addr
        .map(|addr| MetricsServer::start(addr, metrics))
        .transpose()?;
    let shutdown = shutdown_on_signals_within(Some(args.shutdown_timeout));
    let opened: std::collections::BTreeMap<String, TableHandle> = tables
        .iter()
        .map(|t| (t.cfg.name.clone(), t.clone()))
        .collect();
    // One task per table: a slow table holds up only its own consumer and buffers.
    // The first table to fail ends the process (exit 1); the others' data is safe.
    let runs = tables.into_iter().map(|t| {
        let opts = IngestOptions {
            stop_at_end: args.stop_at_end,
            // What an `auto_rebuild` replays before the topic.
            archive: t
                .cfg
                .source
                .archive()
                .and_then(|name| opened.get(name).cloned()),
        };
        let shutdown = shutdown.clone();
        let task = tokio::spawn(async move { t.run(shutdown, opts).await });
        async move { anyhow::Ok(task.await??) }
    });
    for report in futures::future::try_join_all(runs).await? {
        tracing::info!(
            table = %report.table, version = report.version, records = report.records,
            rows = report.rows, dead_letters = report.dead_letters,
            bad_records_skipped = report.bad_records_skipped, commits = report.commits,
            interrupted = report.interrupted, "run finished"
        );
    }
    Ok(())
}

/// `rebuild`: replays the source into a new version, optionally promoting it.
pub async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let RebuildArgs {
        table,
        promote,
        force,
        require_same_rows,
        from,
        source,
        allow_gap,
        shard,
    } = args;
    let handle = open_table(&table, true).await?;
    let archive = match handle.cfg.source.archive() {
        Some(name) => Some(open_named_table(&table.config.config, name)?),
        None => None,
    };
    let report = rebuild::rebuild(
        &handle,
        RebuildOptions {
            promote,
            force,
            progress: true,
            require_same_rows,
            from,
            source,
            archive,
            allow_gap,
            shard,
        },
        shutdown_on_signals(),
    )
    .await?;
    let r = &report.ingest;
    if let Some((archive, records)) = &report.archived {
        println!(
            "{} v{}: {records} records replayed from the archive ({archive}), then the topic",
            r.table, r.version
        );
    }
    if !report.gaps.is_empty() {
        println!(
            "{} v{}: missing (--allow-gap): {}",
            r.table,
            r.version,
            report.gaps.join(", ")
        );
    }
    if let Some(shard) = shard {
        println!("{} v{}: shard {shard}", r.table, r.version);
    }
    if report.resumed {
        println!(
            "{} v{}: resumed from the offsets stored in it",
            r.table, r.version
        );
    }
    println!(
        "{} v{}: {} records read, {} rows, {} dead letters, {} commits{}",
        r.table,
        r.version,
        r.records,
        r.rows,
        r.dead_letters,
        r.commits,
        if r.interrupted {
            " (interrupted; run again to resume)"
        } else {
            ""
        }
    );
    match &report.promoted {
        Some(p) => println!("promoted: current {} → v{}", version_label(p.from), p.to),
        None if promote && !r.interrupted => {}
        None => println!(
            "not promoted: run `kappa-lake promote --table {} --version {}`",
            r.table, r.version
        ),
    }
    Ok(())
}

/// `demo`: the whole cycle on embedded defaults, reported as text or JSON.
pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let report = kappa_lake::demo::run(&args.dir, args.events, shutdown_on_signals())
        .await
        .context("the demo failed")?;
    if args.json {
        print_json(&report)
    } else {
        print_demo(&report);
        Ok(())
    }
}
