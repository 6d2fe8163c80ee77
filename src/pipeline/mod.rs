//! The jobs: `run` (keep the live version up to date), `rebuild` (replay into a new version),
//! and `promote`/`rollback` (move `current` under the catch-up rule).
//!
//! Inside this folder, imports go one way: [`handle`] (the table) ← [`promote`] ← [`ingest`]
//! (writes a version; never imports a job above it) ← [`rebuild`] ← [`run`]. Children import
//! their siblings by path, never this file, which only declares and re-exports them. Beside
//! them, [`archive`] (a raw archive read back as records) and [`coverage`] (what the topic
//! and the archive hold, and the gaps) import only [`handle`] and each other, in that order.

pub mod archive;
pub mod compact;
pub mod compact_parquet;
pub mod coverage;
pub mod dead_letters;
pub mod diff;
pub mod gc;
pub mod handle;
pub mod ingest;
pub mod maintenance;
pub mod progress;
pub mod promote;
pub mod rebuild;
pub mod run;
pub mod sample;
pub mod shape;
pub mod vacuum;
pub mod views;

pub use handle::{Live, TableHandle};
pub use ingest::{IngestReport, Mode};
pub use run::RunOptions;
/// The old name of [`RunOptions`], kept so callers written against it keep compiling.
pub use run::RunOptions as IngestOptions;
