//! Named crash points for the reliability suite (`tests/failpoints.rs`).
//!
//! With the `failpoints` cargo feature, the binary reads the `FAILPOINTS` environment variable
//! at start (the [`fail`] crate's syntax: `name=return`, or `2*off->return` to let two passes
//! through first; several separated by `;`), and an armed crash point aborts the process on
//! the spot: no unwinding, no flush, no cleanup, like a SIGKILL at that line. `name=sleep(300)`
//! instead pauses there for 300 ms (a test that must catch a process mid-work slows it down
//! this way). Without the feature, crash points compile to nothing.
//!
//! | crash point | where |
//! |---|---|
//! | `ingest.after_files` | a commit's data and dead-letter files are uploaded, the log does not list them yet |
//! | `commit.before_write` | inside the commit: offsets checked, the log record (Delta: the commit) not written |
//! | `commit.after_write` | inside the commit: the log record is written, the writer has not seen the answer |
//! | `ingest.after_commit` | the commit is in the log; the Kafka group offsets are not committed yet |
//! | `kafka.revoke` | partitions are being revoked: their commit is in the log, the rebalance not acknowledged |
//! | `pointer.before_swap` | a promotion/rollback decided to move `current`, before the compare-and-swap |
//! | `pointer.after_swap` | `current` was swapped, nothing after it (hook, report) has run |
//! | `gc.mid_delete` | `gc` deleted the first object of a version, not the rest |
//! | `compact.before_commit` | `compact` wrote a batch's new files, the log does not list them yet |
//! | `compact.after_commit` | the compaction's commit is in the log, nothing after it has run |
//! | `rebuild.before_promote` | a rebuild caught up and is about to promote from inside its replay |

/// Aborts the process here when crash point `$name` is armed (see the module docs). A no-op
/// without the `failpoints` feature.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoints::hit($name);
    };
}
pub(crate) use crash_point;

/// Aborts if crash point `name` is armed.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if fail::eval(name, |_| ()).is_some() {
        eprintln!("kappa-lake: crash point `{name}` reached: aborting");
        std::process::abort();
    }
}

/// Arms the crash points `FAILPOINTS` names; keep the guard for the life of the process.
#[cfg(feature = "failpoints")]
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}
