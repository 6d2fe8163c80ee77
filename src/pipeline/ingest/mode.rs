//! What a materialization is for ([`Mode`]): the live version `run` writes, a version it keeps
//! writable after `current` moved, or a rebuild's replay; each mode carries exactly what it
//! needs, and everything the drivers ask (membership, when to stop) is derived from it.
//!
//! Invariant: only a rebuild catches up or promotes; only the live version follows `current`.

use crate::config::Format;
use crate::domain::Shard;
use crate::source::kafka::Membership;

/// What a materialization is for, and so how it reads Kafka and when it ends (a files source
/// always reads its files to their end). Each mode carries exactly what it needs.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// The version `current` names, written by `run`: joins the version's consumer group,
    /// stops when `current` names another version, and decides whether the table is ready.
    Live {
        /// Kafka: stop once every assigned partition has reached its end.
        stop_at_end: bool,
    },
    /// A version `run` moved away from, kept writable for `versions.retain_previous`: its own
    /// consumer group, without following `current`.
    Retained {
        /// Kafka: stop once every assigned partition has reached its end.
        stop_at_end: bool,
    },
    /// A rebuild's replay: every partition by explicit assignment (no consumer group).
    Rebuild(RebuildRead),
}

/// How a rebuild's replay reads and when it ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct RebuildRead {
    /// Catch up with the live version; `None` (no live version): stop at the topic's end.
    pub catch_up: Option<CatchUp>,
    /// Show progress: a bar on a terminal, plain lines otherwise.
    pub progress: bool,
    /// Partitions without a stored offset start at the first message at or after this time
    /// (ms since the epoch) instead of the earliest retained one (`rebuild --from`).
    pub start_from_ms: Option<i64>,
    /// Only this shard's partitions (`rebuild --shard I/N`): N processes build the version
    /// together, and it is caught up when each has.
    pub shard: Option<Shard>,
}

/// A replay catching up with the live version.
#[derive(Debug, Clone, Copy)]
pub struct CatchUp {
    /// The live version and its format: stop once every partition has reached the offsets
    /// stored in it, re-read after every commit.
    pub live: (u32, Format),
    /// Promote this version when caught up (and keep consuming if the live version moved on
    /// meanwhile); `None`: stop when caught up.
    pub promote: Option<PromoteOnCatchUp>,
}

impl Mode {
    /// Kafka: stop once every assigned partition has reached its end.
    pub(super) fn stop_at_end(&self) -> bool {
        match self {
            Mode::Live { stop_at_end } | Mode::Retained { stop_at_end } => *stop_at_end,
            Mode::Rebuild(r) => r.catch_up.is_none(),
        }
    }

    /// Kafka: join the version's consumer group, or assign every partition.
    pub(super) fn membership(&self) -> Membership {
        match self {
            Mode::Live { .. } | Mode::Retained { .. } => Membership::Group,
            Mode::Rebuild(r) => Membership::Assign(r.shard),
        }
    }

    /// Kafka: stop when `current` names another version.
    pub(super) fn follows_pointer(&self) -> bool {
        matches!(self, Mode::Live { .. })
    }

    pub(super) fn catch_up(&self) -> Option<CatchUp> {
        match self {
            Mode::Rebuild(r) => r.catch_up,
            _ => None,
        }
    }

    pub(super) fn catch_up_with(&self) -> Option<(u32, Format)> {
        self.catch_up().map(|c| c.live)
    }

    pub(super) fn progress(&self) -> bool {
        matches!(self, Mode::Rebuild(r) if r.progress)
    }

    pub(super) fn start_from_ms(&self) -> Option<i64> {
        match self {
            Mode::Rebuild(r) => r.start_from_ms,
            _ => None,
        }
    }
}

/// How a rebuild promotes from inside its replay.
#[derive(Debug, Clone, Copy)]
pub struct PromoteOnCatchUp {
    /// Compare-and-swap: only if `current` is still this version.
    pub expect_current: Option<u32>,
    /// Refuse if the versions' records differ.
    pub require_same_rows: bool,
    /// Promote a version rebuilt with gaps (`--allow-gap`) too.
    pub allow_gap: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_live_version_follows_current_and_only_a_rebuild_assigns() {
        let live = Mode::Live { stop_at_end: false };
        let retained = Mode::Retained { stop_at_end: true };
        let rebuild = Mode::Rebuild(RebuildRead::default());
        assert!(live.follows_pointer());
        assert!(!retained.follows_pointer() && !rebuild.follows_pointer());
        assert_eq!(live.membership(), Membership::Group);
        assert_eq!(retained.membership(), Membership::Group);
        assert_eq!(rebuild.membership(), Membership::Assign(None));
        assert!(!live.stop_at_end() && retained.stop_at_end());
        assert!(live.catch_up().is_none() && live.start_from_ms().is_none() && !live.progress());
    }

    #[test]
    fn a_rebuild_stops_at_the_end_only_without_a_live_version() {
        let alone = Mode::Rebuild(RebuildRead {
            catch_up: None,
            progress: true,
            start_from_ms: Some(7),
            shard: None,
        });
        assert!(alone.stop_at_end() && alone.progress());
        assert_eq!(alone.start_from_ms(), Some(7));
        let beside = Mode::Rebuild(RebuildRead {
            catch_up: Some(CatchUp {
                live: (3, Format::Delta),
                promote: None,
            }),
            ..RebuildRead::default()
        });
        assert!(!beside.stop_at_end());
        assert_eq!(beside.catch_up_with(), Some((3, Format::Delta)));
    }
}
