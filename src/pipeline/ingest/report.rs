//! What one materialization did ([`IngestReport`]) and why it stopped ([`Stop`]).
//!
//! Invariant: the report only counts what was committed (rows, files, dead letters, commits)
//! or read (records, skipped); nothing here is written to the lake.

use crate::pipeline::promote::MoveReport;

/// What one materialization did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestReport {
    /// Table name.
    pub table: String,
    /// Version written.
    pub version: u32,
    /// Records read from the source.
    pub records: u64,
    /// Records dropped because the version already held them.
    pub skipped: u64,
    /// Rows committed.
    pub rows: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// Bad records dropped (`bad_records = "skip"`).
    pub bad_records_skipped: u64,
    /// Commits made.
    pub commits: u64,
    /// Data files committed.
    pub files: u64,
    /// Uncommitted files from an earlier crash that were removed at start.
    pub removed_uncommitted: usize,
    /// Commits refused because another writer committed the same offsets first.
    pub conflicts: u64,
    /// Whether it stopped because of a shutdown request.
    pub interrupted: bool,
    /// Kafka, following the pointer: `current` moved to this version, so this one stopped.
    pub moved_to: Option<u32>,
    /// Kafka, catching up: every partition reached the live version's offsets.
    pub caught_up: bool,
    /// The promotion made when caught up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted: Option<MoveReport>,
}

/// Why a materialization stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Shutdown requested.
    Interrupted,
    /// The source's end (files; Kafka with `stop_at_end`).
    End,
    /// Caught up with the live version's offsets.
    CaughtUp,
    /// `current` names another version now.
    Moved(u32),
}
