//! The command line, as clap definitions: every subcommand, flag, default and help text.
//!
//! Invariant: this file is the CLI contract. Doc comments here ARE the `--help` text (so the
//! types carry `//` comments only where a doc comment would change it); handlers live in the
//! sibling modules and never parse arguments themselves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kappa_lake::domain::Shard;
use kappa_lake::pipeline::rebuild::{ReplayFrom, ReplaySource};
use kappa_lake::schema::compat::Level;

#[derive(Parser)]
#[command(
    name = "kappa-lake",
    version,
    about = "Kafka → versioned Parquet/Delta lake, the Kappa way"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "KAPPA_LAKE_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Args)]
pub struct ConfigArg {
    /// Pipeline config file.
    #[arg(
        long,
        short,
        env = "KAPPA_LAKE_CONFIG",
        default_value = "kappa-lake.toml"
    )]
    pub config: PathBuf,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// After SIGTERM/SIGINT, the time allowed to flush and commit before exiting anyway
    /// (non-zero; nothing is lost: uncommitted records are re-read on restart).
    #[arg(long, env = "KAPPA_LAKE_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Kafka: stop once every assigned partition is caught up (a one-shot batch run).
    #[arg(long)]
    pub stop_at_end: bool,
    /// Serve `/metrics` (Prometheus), `/health` and `/ready` on `HOST:PORT`; a bare `PORT`
    /// listens on loopback only (127.0.0.1).
    #[arg(long, env = "KAPPA_LAKE_METRICS_ADDR", value_name = "[HOST:]PORT", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<SocketAddr>,
}

/// `HOST:PORT`, or a bare `PORT` on loopback.
fn parse_metrics_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| {
        format!("`{s}` is not HOST:PORT or PORT (e.g. 127.0.0.1:9464, 0.0.0.0:9464 or 9464)")
    })
}

#[derive(Args)]
pub struct TableArg {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Table name (as in `[[table]] name`).
    #[arg(long, short)]
    pub table: String,
}

#[derive(Args)]
pub struct MoveArgs {
    #[command(flatten)]
    pub table: TableArg,
    /// Target version (default: newest other version for promote, previous for rollback).
    #[arg(long)]
    pub version: Option<u32>,
    /// Move even if the target has not caught up (logged loudly).
    #[arg(long)]
    pub force: bool,
    /// Only move if the current version is this one.
    #[arg(long)]
    pub expect_current: Option<u32>,
    /// While nobody writes the current version (e.g. the service is stopped): accept a target
    /// that is behind it if it is at most this many offsets short of the topic's end, per
    /// partition.
    #[arg(long, default_value_t = 0)]
    pub max_lag: u64,
    /// Move to a version rebuilt with gaps (`rebuild --allow-gap`: offsets neither the topic
    /// nor an archive held) too.
    #[arg(long)]
    pub allow_gap: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Keep each table's live version up to date from its source (files: until the end).
    Run(RunArgs),
    /// Replay the source into a new version; with --promote, move `current` once caught up.
    Rebuild(RebuildArgs),
    /// Per day, rows and a checksum of the source coordinates in two versions: what a rebuild
    /// changed.
    Diff(DiffArgs),
    /// Move `current` to a caught-up version (compare-and-swap).
    Promote(MoveArgs),
    /// Move `current` back to the previous version.
    Rollback(MoveArgs),
    /// Show tables, versions, offsets and counts.
    Status(StatusArgs),
    /// Version operations.
    #[command(subcommand)]
    Versions(VersionsCommand),
    /// Say per table what the config's definition takes: nothing, evolve in place (additive
    /// schema change, applied by the next `run`), or a rebuild into a new version, and why.
    Plan(JsonConfigArgs),
    /// Schema tools.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// The records a version could not materialize, as committed in `_dead_letters/`.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Delete versions that are neither current, previous within `retain_previous`, being
    /// built, nor current less than `gc_grace` ago; keeps the K newest retired ones.
    Gc(GcArgs),
    /// Rewrite a Delta version's small files into files of about `target_file_size`, per
    /// time partition, sorted by event time; safe while `run` writes the version.
    Compact(CompactArgs),
    /// Delete a Delta version's data files that no snapshot within the retention references
    /// (replaced by `compact`, or left by a crashed writer).
    Vacuum(VacuumArgs),
    /// Print view definitions over every table's current version, for a SQL engine.
    Sql(SqlArgs),
    /// Check a config (and the schemas and transforms it names) without touching any service.
    Validate(ConfigArg),
    /// Run a table's definition (schema, SQL transform, event time) offline over sample
    /// events and print the rows the table would get; lines that would be dead-lettered are
    /// listed on stderr.
    Transform(TransformArgs),
    /// Run the whole cycle on embedded defaults: generate events, build v1, rebuild v2, promote.
    Demo(DemoArgs),
}

#[derive(Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub table: TableArg,
    /// Promote the new version when it has caught up.
    #[arg(long)]
    pub promote: bool,
    /// Rebuild even if the live version already has this definition.
    #[arg(long)]
    pub force: bool,
    /// With --promote: refuse to promote if the new version's records differ from the live
    /// version's (up to the offsets both hold).
    #[arg(long)]
    pub require_same_rows: bool,
    /// Where partitions the new version has no offset for start: `earliest` (the default)
    /// or the first event at or after a time (`2026-11-01T06:00:00Z`, `2026-11-01`; UTC).
    #[arg(long, value_name = "earliest|TIME", default_value = "earliest")]
    pub from: ReplayFrom,
    /// Where a Kafka table's records come from: `auto` (the default) replays the raw archive
    /// the table names (`[table.source] archive`) first, then the topic from where the archive
    /// ends (only the topic with `--from <time>`); `archive` insists on the archive; `topic`
    /// reads only the topic.
    #[arg(long, value_name = "archive|topic|auto", default_value = "auto")]
    pub source: ReplaySource,
    /// Rebuild even when some offsets are in neither the topic nor the archive (their records
    /// are missing from the new version); without it, such a rebuild is refused, naming them.
    #[arg(long)]
    pub allow_gap: bool,
    /// Replay only shard I of N (`0/3`, `1/3`, `2/3`): Kafka partitions p with p mod N = I.
    /// N processes (on one machine or many) build one version together; with --promote, the
    /// one that finds every partition caught up promotes it, and the others stop.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
}

#[derive(Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub table: TableArg,
    /// First version.
    pub a: u32,
    /// Second version.
    pub b: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

// `status` and `plan`: the config, and `--json`.
#[derive(Args)]
pub struct JsonConfigArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

// `status`: the config, `--json`, and `--topic`.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub base: JsonConfigArgs,
    /// Also ask the broker, per Kafka table: each partition's low and high watermark, the
    /// offsets its raw archive holds, and the ranges a replay from the start would miss.
    #[arg(long)]
    pub topic: bool,
}

#[derive(Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub table: TableArg,
    /// Retired versions to keep (newest first).
    #[arg(long, default_value_t = 1)]
    pub keep: usize,
    /// Only say what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub table: TableArg,
    /// The version to compact (default: the current one).
    #[arg(long)]
    pub version: Option<u32>,
    /// Only this partition, or the partitions under it (`date=2026-11-26`,
    /// `date=2026-11-26/hour=5`).
    #[arg(long)]
    pub partition: Option<String>,
    /// Compact a partition only when it has at least this many small files.
    #[arg(long, default_value_t = 2)]
    pub min_files: usize,
    /// Only say what would be rewritten.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub table: TableArg,
    /// The version to vacuum (default: the current one).
    #[arg(long)]
    pub version: Option<u32>,
    /// Keep unreferenced files younger than this (default and least: the version's
    /// `delta.deletedFileRetentionDuration`, 7 days unless `[table.writer]
    /// deleted_file_retention` set it).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub retain: Option<Duration>,
    /// Allow a retention shorter than `delta.deletedFileRetentionDuration`: a reader still
    /// holding an older snapshot may find its files gone.
    #[arg(long)]
    pub allow_short_retention: bool,
    /// Only say what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The engine: duckdb or spark.
    #[arg(long, value_enum, default_value_t = SqlEngine::Duckdb)]
    pub engine: SqlEngine,
}

#[derive(Args)]
pub struct TransformArgs {
    #[command(flatten)]
    pub table: TableArg,
    /// Sample events: one JSON object per line (`.ndjson`, or `.ndjson.gz`).
    #[arg(long)]
    pub input: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SampleFormat::Table)]
    pub format: SampleFormat,
    /// Write the rows to this file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Directory to work in; the lake goes to `<dir>/lake`.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Events to generate.
    #[arg(long, default_value_t = 50_000)]
    pub events: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SampleFormat {
    /// A pretty table.
    Table,
    /// One JSON object per row.
    Ndjson,
    /// A zstd Parquet file (use `--output`, or redirect stdout).
    Parquet,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SqlEngine {
    Duckdb,
    Spark,
}

#[derive(Subcommand)]
pub enum DeadLettersCommand {
    /// Per version: how many dead letters, by stage and by source partition.
    List(DeadLettersListArgs),
    /// A version's dead letters, one JSON object per line as stored (stage, reason, source,
    /// offset, raw record), by source and offset.
    Show(DeadLettersShowArgs),
    /// Decode a version's dead letters again, with what the table has now (e.g. a raised
    /// `max_record_bytes`, a schema registered since, an in-place schema evolution), and
    /// commit the ones that now materialize into that version, with their original source
    /// coordinates, exactly once. Letters that fail again stay dead letters. Run it again
    /// after the next fix: it reads only what no replay handled. (A new version needs no
    /// replay: its rebuild reads the source itself.)
    Replay(DeadLettersReplayArgs),
}

#[derive(Args)]
pub struct DeadLettersListArgs {
    #[command(flatten)]
    pub table: TableArg,
    /// Only this version.
    #[arg(long)]
    pub version: Option<u32>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DeadLettersShowArgs {
    #[command(flatten)]
    pub table: TableArg,
    /// The version (default: the current one).
    #[arg(long)]
    pub version: Option<u32>,
    /// Only this stage: read, decode, event_time or transform.
    #[arg(long)]
    pub stage: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

#[derive(Args)]
pub struct DeadLettersReplayArgs {
    #[command(flatten)]
    pub table: TableArg,
    /// The version (default: the current one).
    #[arg(long)]
    pub version: Option<u32>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum SchemaCommand {
    /// Compare two schemas: OLD and NEW (.avsc files), or a table's current version and
    /// `--against` (default: the config's schema file). Prints the Avro compatibility level
    /// (BACKWARD, FORWARD, FULL or NONE, naming each offending field) and whether a version can
    /// evolve in place. Exit 1 if `--level` does not hold; without `--level`, if NEW is not an
    /// in-place evolution (only added nullable fields).
    Check(SchemaCheckArgs),
}

#[derive(Args)]
pub struct SchemaCheckArgs {
    /// The schema a version has (.avsc).
    #[arg(requires = "new", conflicts_with = "table")]
    pub old: Option<PathBuf>,
    /// The schema it would get (.avsc).
    pub new: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Compare this table's current version (with --config).
    #[arg(long, short)]
    pub table: Option<String>,
    /// With --table: the new schema (.avsc); default: the latest schema of the source's
    /// registry subject (`[table.source.schema_registry]`), else the config's schema file.
    #[arg(long, requires = "table")]
    pub against: Option<PathBuf>,
    /// Required compatibility: backward, forward, full or none.
    #[arg(long)]
    pub level: Option<Level>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum VersionsCommand {
    /// List the versions of every table (or one).
    List(VersionsListArgs),
}

#[derive(Args)]
pub struct VersionsListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this table.
    #[arg(long, short)]
    pub table: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
