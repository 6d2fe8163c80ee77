//! Where a source partition stands: the keys that name source partitions, the position to
//! resume from, and the offset range a commit covers.
//!
//! Invariant: a position key is either a source partition's (`topic/N` for Kafka, the file's
//! name for files) or a `dead-letters replay` key starting with [`REPLAY_KEY_PREFIX`]; the two
//! never collide. Offsets only move forward: a range is `[start, end)` with `start <= end`.

use serde::{Deserialize, Serialize};

/// The range of one source partition covered by a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    /// First offset covered.
    pub start: u64,
    /// Next offset to read after this commit.
    pub end: u64,
    /// Files source: byte position of `end` in an uncompressed file (seek hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_byte: Option<u64>,
    /// Files source: the file has been read to its end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eof: bool,
}

/// Where a source partition stands in a version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Next offset to read.
    pub offset: u64,
    /// Files source: byte position of `offset`, when known.
    pub end_byte: Option<u64>,
    /// Files source: fully read.
    pub eof: bool,
}

/// The commit-log key of a Kafka partition.
pub fn kafka_partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// Position keys of `dead-letters replay` start with this: `_replay/v<N>/<dead-letter file>`
/// counts the lines of that file replayed. A source partition never looks like that (Kafka
/// keys are `topic/N`, files are named by the file, and neither starts with `_replay/`).
pub const REPLAY_KEY_PREFIX: &str = "_replay/";

/// Whether a position key is a source partition's (not a replay's).
pub fn is_source_key(key: &str) -> bool {
    !key.starts_with(REPLAY_KEY_PREFIX)
}
