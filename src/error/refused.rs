//! Why an operation was refused before it did anything, one enum per thing the caller can do
//! about it: name something that exists ([`Missing`]), take an operator decision
//! ([`Refusal`]), use a source or store that can do it ([`Unsupported`]), or fix the version's
//! definition ([`Unusable`]).
//!
//! Invariant: every message here is printed after `refused: ` (see [`crate::Error`]) and is
//! the exact text users have always seen; the values it names are fields, never parsed back.

use std::path::PathBuf;

use object_store::path::Path;

use super::BoxError;

/// Something the operation names does not exist.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Missing {
    /// A version asked for by number (`dead-letters`, `dead-letters replay`).
    #[error("table `{table}` has no v{version}")]
    Version {
        /// The table.
        table: String,
        /// The version asked for.
        version: u32,
    },
    /// An operation on the current version of a table nothing was written to yet.
    #[error(
        "table `{table}` has no current version yet (run it first, or name one with --version)"
    )]
    Current {
        /// The table.
        table: String,
    },
    /// A version asked for by number (`promote`, `rollback`, `diff`).
    #[error("table `{table}` has no version v{version}")]
    TargetVersion {
        /// The table.
        table: String,
        /// The version asked for.
        version: u32,
    },
    /// `rollback` without `--version` on a table whose pointer records no previous version.
    #[error("table `{table}` has no previous version to roll back to")]
    PreviousVersion {
        /// The table.
        table: String,
    },
    /// `promote` without `--version` on a table with no version besides the current one.
    #[error("table `{table}` has no other version to promote")]
    OtherVersion {
        /// The table.
        table: String,
    },
    /// A Delta version's table has not been created yet.
    #[error("the Delta table of v{version} does not exist")]
    DeltaTable {
        /// The version.
        version: u32,
    },
    /// A Delta writer was opened on a log without a table.
    #[error("no Delta table at {path}")]
    DeltaTableAt {
        /// The version's directory.
        path: Path,
    },
}

/// A safety rule forbids the operation; going on is an operator's decision.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A move to a version rebuilt without some offsets (`rebuild --allow-gap`).
    #[error(
        "v{version} of `{table}` was rebuilt without {} (neither the topic nor an archive held them); add --allow-gap to make it current anyway",
        .gaps.join(", ")
    )]
    GappedVersion {
        /// The table.
        table: String,
        /// The target version.
        version: u32,
        /// Its missing ranges.
        gaps: Vec<String>,
    },
    /// A rebuild would miss offsets that neither the topic nor an archive holds.
    #[error(
        "v{version} of `{table}` would miss records: {} are no longer in the topic and no archive holds them; archive the topic (`[table.source] archive`) before its retention drops records, or rebuild with --allow-gap to accept the gap",
        .gaps.join(", ")
    )]
    Gap {
        /// The table.
        table: String,
        /// The version being rebuilt.
        version: u32,
        /// The missing ranges, `topic/partition [from, to)`.
        gaps: Vec<String>,
    },
    /// `rebuild` of the definition the live version already has (`--force` replays anyway).
    #[error(
        "live v{version} of `{table}` already has this definition (hash {hash}); nothing to rebuild (use --force to replay anyway)"
    )]
    AlreadyLive {
        /// The table.
        table: String,
        /// The live version.
        version: u32,
        /// The definition's hash.
        hash: String,
    },
    /// The config's definition differs from the live version's and `auto_rebuild` is off.
    #[error(
        "table `{table}`: the config's definition differs from live v{live}: {}; run `kappa-lake rebuild --config <file> --table {table} --promote` to build it as v{next}, or restore the previous definition",
        .reasons.join("; ")
    )]
    DefinitionChanged {
        /// The table.
        table: String,
        /// The live version.
        live: u32,
        /// The version a rebuild would create.
        next: u32,
        /// What differs.
        reasons: Vec<String>,
    },
    /// `vacuum --retain` shorter than the table's `delta.deletedFileRetentionDuration`.
    #[error(
        "a retention of {retain} is shorter than the table's delta.deletedFileRetentionDuration ({min}): a reader holding an older snapshot could find its files deleted; use --retain {min} or longer, or --allow-short-retention if no reader can hold one that long"
    )]
    ShortRetention {
        /// The retention asked for.
        retain: String,
        /// The table's minimum.
        min: String,
    },
    /// A rebuilt version does not hold the records the live one holds (`rebuild --verify`).
    #[error(
        "v{b} does not hold the same records as v{a} (up to the offsets both hold): v{a} {rows_a} rows, v{b} {rows_b} rows{}; not promoting (see `kappa-lake diff --table {table} {a} {b}`)",
        if rows_a == rows_b { ", different records" } else { "" }
    )]
    NotSame {
        /// The table.
        table: String,
        /// The live version.
        a: u32,
        /// The rebuilt version.
        b: u32,
        /// Rows of `a` compared.
        rows_a: u64,
        /// Rows of `b` compared.
        rows_b: u64,
    },
    /// `compact` of a plain-Parquet version whose definition the config no longer has: the
    /// new version would replay the source's tail with the config's definition.
    #[error(
        "table `{table}`: the config's definition differs from v{version}'s, so compacting it into a new version would change more than its files; restore v{version}'s definition to compact it, or rebuild"
    )]
    CompactOtherDefinition {
        /// The table.
        table: String,
        /// The version to compact.
        version: u32,
    },
    /// `demo --dir` names a lake whose table the demo did not make.
    #[error("{} exists and was not made by the demo; choose another --dir", .path.display())]
    NotOurs {
        /// The table directory found.
        path: PathBuf,
    },
}

/// The table's source or store cannot do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// `rebuild --shard` of a files source.
    #[error(
        "table `{table}`: `--shard` splits a Kafka topic's partitions; a files source is one log"
    )]
    ShardedFiles {
        /// The table.
        table: String,
    },
    /// `rebuild --shard I/N` where no partition `p` has `p mod N = I`.
    #[error(
        "table `{table}`: shard {shard} holds none of the topic's {partitions} partitions; use at most {partitions} shards"
    )]
    EmptyShard {
        /// The table.
        table: String,
        /// The shard.
        shard: crate::domain::Shard,
        /// The topic's partitions.
        partitions: usize,
    },
    /// `rebuild --shard … --promote` without a live version to catch up with.
    #[error(
        "table `{table}` has no live version: shard {shard} cannot tell when every shard has reached the topic's end; rebuild the shards without --promote, then `kappa-lake promote`"
    )]
    ShardedFirstVersion {
        /// The table.
        table: String,
        /// The shard.
        shard: crate::domain::Shard,
    },
    /// `rebuild --source archive` of a table without an archive to read.
    #[error("table `{table}`: `--source archive` has no archive to read: {why}")]
    NoArchive {
        /// The table.
        table: String,
        /// Why.
        why: &'static str,
    },
    /// `rebuild --from <time>` on a files source.
    #[error(
        "table `{table}`: `--from <time>` needs a Kafka source (a files source has no event times to seek by); use `--from earliest`"
    )]
    SeekByTime {
        /// The table.
        table: String,
    },
    /// `diff` of a version without metadata columns.
    #[error(
        "v{version} has no metadata columns (metadata_columns = false), so its rows cannot be traced to source records"
    )]
    NoMetadataColumns {
        /// The version.
        version: u32,
    },
    /// Compacting a plain-Parquet version in place (or in `run`'s background).
    #[error(
        "v{version} is a plain-Parquet version: compacting it in place would show glob readers duplicates or gaps; `kappa-lake compact` compacts it into a new version, which `run` does not do by itself"
    )]
    CompactParquet {
        /// The version.
        version: u32,
    },
    /// `compact --version N` of a plain-Parquet version that is not the current one.
    #[error(
        "v{version} is a plain-Parquet version that is not current (current: {current}): it is compacted into a new version that replaces it as current, so only the current version can be"
    )]
    CompactParquetNotCurrent {
        /// The version asked for.
        version: u32,
        /// The current version, if any.
        current: String,
    },
    /// `vacuum` of a plain-Parquet version.
    #[error(
        "v{version} is a plain-Parquet version: it has no replaced files to vacuum (`gc` deletes retired versions, and a restarted writer removes a crashed one's files)"
    )]
    VacuumParquet {
        /// The version.
        version: u32,
    },
    /// The store cannot swap the pointer by compare-and-swap.
    #[error(
        "the store at {store} has no conditional update, so the pointer cannot be swapped safely: {source}"
    )]
    ConditionalUpdate {
        /// The store, as displayed to users.
        store: String,
        /// The store's answer.
        #[source]
        source: object_store::Error,
    },
}

/// The version's definition cannot be used as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unusable {
    /// The version's Avro schema cannot be decoded with (`decode::avro::AvroError`).
    #[error("the version's Avro schema: {source}")]
    AvroSchema {
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The version's SQL transform does not compile (`transform::TransformError`).
    #[error("the transform does not compile: {source}")]
    Transform {
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The version was defined for another kind of source than the one read.
    #[error("version v{version} was defined for another source kind")]
    SourceKind {
        /// The version.
        version: u32,
    },
    /// A sample was read from another kind of source than the table's.
    #[error("the sample does not match the table's source kind")]
    SampleSourceKind,
}
