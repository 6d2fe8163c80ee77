//! The `kappa-lake` binary: parse the command line, load the config, run, map errors to exit
//! codes (0 ok, 1 runtime failure, 2 bad usage or config).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kappa_lake::config::{Config, SourceConfig};
use kappa_lake::metrics::{Metrics, MetricsServer};
use kappa_lake::pipeline::promote::{self, MoveRequest};
use kappa_lake::pipeline::rebuild::{self, RebuildOptions, ReplayFrom};
use kappa_lake::pipeline::{IngestOptions, TableHandle, dead_letters, views};
use kappa_lake::registry::SchemaRegistry;
use kappa_lake::schema::EventSchema;
use kappa_lake::shutdown::{self, Shutdown};
use kappa_lake::status::{self, Status};
use kappa_lake::table::plan::schema_diff;

#[derive(Parser)]
#[command(
    name = "kappa-lake",
    version,
    about = "Kafka → versioned Parquet/Delta lake, the Kappa way"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "KAPPA_LAKE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Args)]
struct ConfigArg {
    /// Pipeline config file.
    #[arg(
        long,
        short,
        env = "KAPPA_LAKE_CONFIG",
        default_value = "kappa-lake.toml"
    )]
    config: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// After SIGTERM/SIGINT, the time allowed to flush and commit before exiting anyway
    /// (non-zero; nothing is lost: uncommitted records are re-read on restart).
    #[arg(long, env = "KAPPA_LAKE_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    shutdown_timeout: std::time::Duration,
    /// Kafka: stop once every assigned partition is caught up (a one-shot batch run).
    #[arg(long)]
    stop_at_end: bool,
    /// Serve `/metrics` (Prometheus), `/health` and `/ready` on `HOST:PORT`; a bare `PORT`
    /// listens on loopback only (127.0.0.1).
    #[arg(long, env = "KAPPA_LAKE_METRICS_ADDR", value_name = "[HOST:]PORT", value_parser = parse_metrics_addr)]
    metrics_addr: Option<std::net::SocketAddr>,
}

/// `HOST:PORT`, or a bare `PORT` on loopback.
fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!("`{s}` is not HOST:PORT or PORT (e.g. 127.0.0.1:9464, 0.0.0.0:9464 or 9464)")
    })
}

#[derive(Args)]
struct TableArg {
    #[command(flatten)]
    config: ConfigArg,
    /// Table name (as in `[[table]] name`).
    #[arg(long, short)]
    table: String,
}

#[derive(Args)]
struct MoveArgs {
    #[command(flatten)]
    table: TableArg,
    /// Target version (default: newest other version for promote, previous for rollback).
    #[arg(long)]
    version: Option<u32>,
    /// Move even if the target has not caught up (logged loudly).
    #[arg(long)]
    force: bool,
    /// Only move if the current version is this one.
    #[arg(long)]
    expect_current: Option<u32>,
    /// While nobody writes the current version (e.g. the service is stopped): accept a target
    /// that is behind it if it is at most this many offsets short of the topic's end, per
    /// partition.
    #[arg(long, default_value_t = 0)]
    max_lag: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Keep each table's live version up to date from its source (files: until the end).
    Run(RunArgs),
    /// Replay the source into a new version; with --promote, move `current` once caught up.
    Rebuild {
        #[command(flatten)]
        table: TableArg,
        /// Promote the new version when it has caught up.
        #[arg(long)]
        promote: bool,
        /// Rebuild even if the live version already has this definition.
        #[arg(long)]
        force: bool,
        /// With --promote: refuse to promote if the new version's records differ from the live
        /// version's (up to the offsets both hold).
        #[arg(long)]
        require_same_rows: bool,
        /// Where partitions the new version has no offset for start: `earliest` (the default)
        /// or the first event at or after a time (`2026-11-01T06:00:00Z`, `2026-11-01`; UTC).
        #[arg(long, value_name = "earliest|TIME", default_value = "earliest")]
        from: ReplayFrom,
    },
    /// Per day, rows and a checksum of the source coordinates in two versions: what a rebuild
    /// changed.
    Diff {
        #[command(flatten)]
        table: TableArg,
        /// First version.
        a: u32,
        /// Second version.
        b: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move `current` to a caught-up version (compare-and-swap).
    Promote(MoveArgs),
    /// Move `current` back to the previous version.
    Rollback(MoveArgs),
    /// Show tables, versions, offsets and counts.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Version operations.
    #[command(subcommand)]
    Versions(VersionsCommand),
    /// Say per table what the config's definition takes: nothing, evolve in place (additive
    /// schema change, applied by the next `run`), or a rebuild into a new version, and why.
    Plan {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Schema tools.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// The records a version could not materialize, as committed in `_dead_letters/`.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Delete versions that are neither current, previous within `retain_previous`, being
    /// built, nor current less than `gc_grace` ago; keeps the K newest retired ones.
    Gc {
        #[command(flatten)]
        table: TableArg,
        /// Retired versions to keep (newest first).
        #[arg(long, default_value_t = 1)]
        keep: usize,
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print view definitions over every table's current version, for a SQL engine.
    Sql {
        #[command(flatten)]
        config: ConfigArg,
        /// The engine: duckdb or spark.
        #[arg(long, value_enum, default_value_t = SqlEngine::Duckdb)]
        engine: SqlEngine,
    },
    /// Check a config (and the schemas and transforms it names) without touching any service.
    Validate(ConfigArg),
    /// Run a table's definition (schema, SQL transform, event time) offline over sample
    /// events and print the rows the table would get; lines that would be dead-lettered are
    /// listed on stderr.
    Transform {
        #[command(flatten)]
        table: TableArg,
        /// Sample events: one JSON object per line (`.ndjson`, or `.ndjson.gz`).
        #[arg(long)]
        input: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = SampleFormat::Table)]
        format: SampleFormat,
        /// Write the rows to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Run the whole cycle on embedded defaults: generate events, build v1, rebuild v2, promote.
    Demo {
        /// Directory to work in; the lake goes to `<dir>/lake`.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Events to generate.
        #[arg(long, default_value_t = 50_000)]
        events: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SampleFormat {
    /// A pretty table.
    Table,
    /// One JSON object per row.
    Ndjson,
    /// A zstd Parquet file (use `--output`, or redirect stdout).
    Parquet,
}

#[derive(Clone, Copy, ValueEnum)]
enum SqlEngine {
    Duckdb,
    Spark,
}

#[derive(Subcommand)]
enum DeadLettersCommand {
    /// Per version: how many dead letters, by stage and by source partition.
    List {
        #[command(flatten)]
        table: TableArg,
        /// Only this version.
        #[arg(long)]
        version: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A version's dead letters, one JSON object per line as stored (stage, reason, source,
    /// offset, raw record), by source and offset.
    Show {
        #[command(flatten)]
        table: TableArg,
        /// The version (default: the current one).
        #[arg(long)]
        version: Option<u32>,
        /// Only this stage: read, decode, event_time or transform.
        #[arg(long)]
        stage: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Decode a version's dead letters again, with what the table has now (e.g. a raised
    /// `max_record_bytes`, a schema registered since, an in-place schema evolution), and
    /// commit the ones that now materialize into that version, with their original source
    /// coordinates, exactly once. Letters that fail again stay dead letters. Run it again
    /// after the next fix: it reads only what no replay handled. (A new version needs no
    /// replay: its rebuild reads the source itself.)
    Replay {
        #[command(flatten)]
        table: TableArg,
        /// The version (default: the current one).
        #[arg(long)]
        version: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Compare two schemas: OLD and NEW (.avsc files), or a table's current version and
    /// `--against` (default: the config's schema file). Prints the Avro compatibility level
    /// (BACKWARD, FORWARD, FULL or NONE, naming each offending field) and whether a version can
    /// evolve in place. Exit 1 if `--level` does not hold; without `--level`, if NEW is not an
    /// in-place evolution (only added nullable fields).
    Check {
        /// The schema a version has (.avsc).
        #[arg(requires = "new", conflicts_with = "table")]
        old: Option<PathBuf>,
        /// The schema it would get (.avsc).
        new: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
        /// Compare this table's current version (with --config).
        #[arg(long, short)]
        table: Option<String>,
        /// With --table: the new schema (.avsc); default: the latest schema of the source's
        /// registry subject (`[table.source.schema_registry]`), else the config's schema file.
        #[arg(long, requires = "table")]
        against: Option<PathBuf>,
        /// Required compatibility: backward, forward, full or none.
        #[arg(long)]
        level: Option<kappa_lake::schema::compat::Level>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum VersionsCommand {
    /// List the versions of every table (or one).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this table.
        #[arg(long, short)]
        table: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    #[cfg(feature = "failpoints")]
    let _crash_points = kappa_lake::failpoints::setup();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<kappa_lake::Error>())
                .map_or(1, kappa_lake::Error::exit_code);
            ExitCode::from(code)
        }
    }
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    // delta-rs and its kernel log every snapshot at INFO; keep them at WARN unless the user
    // names them (e.g. KAPPA_LAKE_LOG=info,buoyant_kernel=debug).
    let mut directives = std::env::var("KAPPA_LAKE_LOG").unwrap_or_else(|_| "info".into());
    for noisy in ["buoyant_kernel", "deltalake_core"] {
        if !directives.contains(noisy) {
            directives.push_str(&format!(",{noisy}=warn"));
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// SIGINT/SIGTERM → drain and stop; a second signal exits at once (offsets are in the commits).
fn shutdown_on_signals() -> Shutdown {
    shutdown_on_signals_within(None)
}

/// Like [`shutdown_on_signals`], and exits with status 1 if draining takes longer than
/// `deadline`.
fn shutdown_on_signals_within(deadline: Option<std::time::Duration>) -> Shutdown {
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "shutting down: finishing the current commit (signal again to exit at once)"
        );
        trigger.trigger();
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wait_for_signal() => {
                tracing::warn!("second signal: exiting now; uncommitted records will be re-read");
                std::process::exit(130);
            }
            () = expired => {
                tracing::error!("shutdown deadline passed: exiting now; uncommitted records will be re-read");
                std::process::exit(1);
            }
        }
    });
    shutdown
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::Error::new(kappa_lake::Error::Config(e)))
}

fn write_rows(
    rows: &arrow::record_batch::RecordBatch,
    format: SampleFormat,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    match format {
        SampleFormat::Table => {
            writeln!(
                out,
                "{}",
                arrow::util::pretty::pretty_format_batches(std::slice::from_ref(rows))?
            )?;
        }
        SampleFormat::Ndjson => {
            let mut writer = arrow::json::LineDelimitedWriter::new(out);
            writer.write(rows)?;
            writer.finish()?;
        }
        SampleFormat::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut writer = parquet::arrow::ArrowWriter::try_new(out, rows.schema(), Some(props))?;
            writer.write(rows)?;
            writer.close()?;
        }
    }
    Ok(())
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `version`, or the table's current version.
async fn version_or_current(handle: &TableHandle, version: Option<u32>) -> anyhow::Result<u32> {
    match version {
        Some(v) => Ok(v),
        None => Ok(handle
            .current_definition()
            .await?
            .with_context(|| format!("table `{}` has no version yet", handle.cfg.name))?
            .version),
    }
}

async fn open_table(arg: &TableArg, writing: bool) -> anyhow::Result<TableHandle> {
    let config = load(&arg.config.config)?;
    let cfg = config.table(&arg.table).map_err(kappa_lake::Error::from)?;
    let handle = if writing {
        TableHandle::open_for_writing(cfg).await
    } else {
        TableHandle::open(cfg)
    };
    Ok(handle.map_err(kappa_lake::Error::from)?)
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(arg) => {
            let config = load(&arg.config.config)?;
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
            let _server = arg
                .metrics_addr
                .map(|addr| MetricsServer::start(addr, metrics))
                .transpose()?;
            let shutdown = shutdown_on_signals_within(Some(arg.shutdown_timeout));
            let opts = IngestOptions {
                stop_at_end: arg.stop_at_end,
            };
            // One task per table: a slow table holds up only its own consumer and buffers.
            // The first table to fail ends the process (exit 1); the others' data is safe.
            let runs = tables.into_iter().map(|t| {
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
        }
        Command::Rebuild {
            table,
            promote,
            force,
            require_same_rows,
            from,
        } => {
            let handle = open_table(&table, true).await?;
            let report = rebuild::rebuild(
                &handle,
                RebuildOptions {
                    promote,
                    force,
                    progress: true,
                    require_same_rows,
                    from,
                },
                shutdown_on_signals(),
            )
            .await?;
            let r = &report.ingest;
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
                Some(p) => println!("promoted: current {} → v{}", show(p.from), p.to),
                None if promote && !r.interrupted => {}
                None => println!(
                    "not promoted: run `kappa-lake promote --table {} --version {}`",
                    r.table, r.version
                ),
            }
        }
        Command::Promote(args) => {
            let handle = open_table(&args.table, true).await?;
            let report = promote::promote(&handle, move_request(&args)).await?;
            println!(
                "{}: current {} → v{}",
                report.table,
                show(report.from),
                report.to
            );
        }
        Command::Rollback(args) => {
            let handle = open_table(&args.table, true).await?;
            let report = promote::rollback(&handle, move_request(&args)).await?;
            println!(
                "{}: current {} → v{}",
                report.table,
                show(report.from),
                report.to
            );
        }
        Command::Status { config, json } => {
            let status = read_status(&config.config, None).await?;
            if json {
                print_json(&status)?;
            } else {
                print!("{}", status::render(&status));
            }
        }
        Command::Versions(VersionsCommand::List {
            config,
            table,
            json,
        }) => {
            let status = read_status(&config.config, table.as_deref()).await?;
            if json {
                print_json(&status)?;
            } else {
                print!("{}", status::render(&status));
            }
        }
        Command::Plan { config, json } => {
            let config = load(&config.config)?;
            let mut plans = Vec::new();
            for t in &config.tables {
                let handle = TableHandle::open(t).map_err(kappa_lake::Error::from)?;
                plans.push((t.name.clone(), handle.plan().await?));
            }
            if json {
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
        }
        Command::Gc {
            table,
            keep,
            dry_run,
        } => {
            let handle = open_table(&table, !dry_run).await?;
            for d in kappa_lake::pipeline::gc::gc(&handle, keep, dry_run).await? {
                let verb = match (d.delete, dry_run) {
                    (true, true) => "would delete",
                    (true, false) => "deleted",
                    (false, _) => "kept",
                };
                println!("{} v{}: {verb} ({})", table.table, d.version, d.reason);
            }
        }
        Command::Diff { table, a, b, json } => {
            let handle = open_table(&table, false).await?;
            let d = kappa_lake::pipeline::diff::diff(&handle, a, b, None).await?;
            if json {
                print_json(&d)?;
            } else {
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
            }
        }
        Command::Sql { config, engine } => {
            let config = load(&config.config)?;
            let engine = match engine {
                SqlEngine::Duckdb => views::Engine::Duckdb,
                SqlEngine::Spark => views::Engine::Spark,
            };
            for t in &config.tables {
                let handle = TableHandle::open(t).map_err(kappa_lake::Error::from)?;
                println!("{}", views::view_sql(&handle, engine).await?);
            }
        }
        Command::Schema(SchemaCommand::Check {
            old,
            new,
            config,
            table,
            against,
            level,
            json,
        }) => {
            let read = |p: &Path| -> anyhow::Result<EventSchema> {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                EventSchema::parse(&text)
                    .with_context(|| format!("{} is not a valid schema", p.display()))
            };
            let (old, old_name, new, new_name) = match (old, new, table) {
                (Some(old), Some(new), None) => (
                    read(&old)?,
                    old.display().to_string(),
                    read(&new)?,
                    new.display().to_string(),
                ),
                (None, None, Some(table)) => {
                    let config = load(&config.config)?;
                    let cfg = config.table(&table).map_err(kappa_lake::Error::from)?;
                    let handle = TableHandle::open(cfg).map_err(kappa_lake::Error::from)?;
                    let current = handle.current_definition().await?.with_context(|| {
                        format!("table `{table}` has no version yet: nothing to check against")
                    })?;
                    let registry = match &cfg.source {
                        SourceConfig::Kafka(k) => k.registry.as_deref(),
                        SourceConfig::Files(_) => None,
                    };
                    let (new, new_name) = match (against, registry) {
                        (Some(p), _) => (read(&p)?, p.display().to_string()),
                        (None, Some(r)) => {
                            let latest = SchemaRegistry::new(r)?.latest(&r.subject).await?;
                            let schema = EventSchema::parse(&latest.schema).with_context(|| {
                                format!("the registry's schema {} is not usable", latest.id)
                            })?;
                            let name = format!(
                                "subject `{}` version {} (schema id {})",
                                latest.subject, latest.version, latest.id
                            );
                            (schema, name)
                        }
                        (None, None) => (cfg.event_schema().clone(), cfg.schema_file.clone()),
                    };
                    let old = current.definition.event_schema()?;
                    (
                        old,
                        format!("v{} of `{table}`", current.version),
                        new,
                        new_name,
                    )
                }
                _ => anyhow::bail!(
                    "give two schemas (`schema check OLD NEW`) or a table (`schema check --config F --table T [--against NEW]`)"
                ),
            };
            let compat = kappa_lake::schema::compat::check(&old.avro, &new.avro);
            let diff = schema_diff(&old.arrow, &new.arrow);
            if json {
                print_json(&serde_json::json!({
                    "old": old_name,
                    "new": new_name,
                    "level": compat.level(),
                    "backward": compat.backward,
                    "forward": compat.forward,
                    "evolve_in_place": diff.is_compatible(),
                    "added": diff.added,
                    "breaking": diff.breaking,
                }))?;
            } else {
                println!("{new_name} against {old_name}: {}", compat.level());
                for b in &compat.backward {
                    println!("not BACKWARD: {b}");
                }
                for f in &compat.forward {
                    println!("not FORWARD: {f}");
                }
                for f in &diff.added {
                    println!("added nullable field `{f}`");
                }
                for b in &diff.breaking {
                    println!("incompatible: {b}");
                }
                if diff.is_compatible() {
                    println!("compatible: a Delta version can evolve in place");
                }
            }
            match level {
                Some(level) if !compat.holds(level) => anyhow::bail!(
                    "{new_name} is not {level} compatible with {old_name} (it is {})",
                    compat.level()
                ),
                Some(_) => {}
                None if !diff.is_compatible() => anyhow::bail!(
                    "{new_name} is not an additive change of {old_name}: a version needs a rebuild to take it"
                ),
                None => {}
            }
        }
        Command::DeadLetters(DeadLettersCommand::List {
            table,
            version,
            json,
        }) => {
            let handle = open_table(&table, false).await?;
            let summaries = dead_letters::summaries(&handle, version).await?;
            if json {
                print_json(&serde_json::json!({ "table": table.table, "versions": summaries }))?;
            } else {
                for s in &summaries {
                    let stages: Vec<String> =
                        s.by_stage.iter().map(|(k, n)| format!("{k} {n}")).collect();
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
            }
        }
        Command::DeadLetters(DeadLettersCommand::Show {
            table,
            version,
            stage,
            limit,
        }) => {
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
        }
        Command::DeadLetters(DeadLettersCommand::Replay {
            table,
            version,
            json,
        }) => {
            let handle = open_table(&table, true).await?;
            let version = version_or_current(&handle, version).await?;
            let report =
                kappa_lake::pipeline::ingest::replay_dead_letters(&handle, version).await?;
            if json {
                print_json(&report)?;
            } else {
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
            }
        }
        Command::Transform {
            table,
            input,
            format,
            output,
        } => {
            let config = load(&table.config.config)?;
            let cfg = config
                .table(&table.table)
                .map_err(kappa_lake::Error::from)?;
            let sample = kappa_lake::pipeline::sample::run(cfg, &input)?;
            let mut out: Box<dyn std::io::Write + Send> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            write_rows(&sample.rows, format, &mut out)?;
            out.flush()?;
            for r in &sample.rejected {
                eprintln!(
                    "{}:{}: {} error: {}",
                    input.display(),
                    r.line,
                    r.stage.as_str(),
                    r.reason
                );
            }
            eprintln!(
                "{} rows; {} dead letters; {} filtered out by the transform",
                sample.rows.num_rows(),
                sample.rejected.len(),
                sample.filtered
            );
        }
        Command::Validate(arg) => {
            let config = load(&arg.config)?;
            for t in &config.tables {
                println!(
                    "table {}: root {}, format {:?}, schema {} ({} fields), source {}",
                    t.name,
                    t.root,
                    t.format,
                    t.schema_file,
                    t.event_schema().arrow.fields().len(),
                    t.source.identity()
                );
                if t.transform.is_some() {
                    let from = t.transform_file.as_deref().unwrap_or("inline SQL");
                    println!("  transform ({from}): compiles");
                }
            }
            println!("{}: OK", arg.config.display());
        }
        Command::Demo { dir, events, json } => {
            let report = kappa_lake::demo::run(&dir, events, shutdown_on_signals())
                .await
                .context("the demo failed")?;
            if json {
                print_json(&report)?;
            } else {
                print_demo(&report);
            }
        }
    }
    Ok(())
}

fn move_request(args: &MoveArgs) -> MoveRequest {
    MoveRequest {
        version: args.version,
        force: args.force,
        expect_current: args.expect_current,
        max_lag: args.max_lag,
    }
}

fn show(v: Option<u32>) -> String {
    v.map_or("none".into(), |v| format!("v{v}"))
}

async fn read_status(config: &Path, only: Option<&str>) -> anyhow::Result<Status> {
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
    Ok(Status { tables })
}

fn print_demo(r: &kappa_lake::demo::DemoReport) {
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
        println!("  promoted    current: {} → v{}", show(p.from), p.to);
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
