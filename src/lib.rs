//! # kappa-lake
//!
//! Materializes an immutable event log (Kafka, or NDJSON files) into a versioned data lake of
//! time-partitioned Parquet tables, the Kappa way: when the definition of a table changes, the
//! log is replayed into a new version and readers are switched over atomically.
//!
//! ## The data path
//! ```text
//! source (files | kafka)            source/      batches of records of one partition + positions
//!   → decode (JSON | Avro → Arrow)  decode/      bad records → dead letters, with reasons;
//!                                   registry.rs  Confluent writer schemas by id
//!   → event time → partition        partition.rs date=YYYY-MM-DD[/hour=HH], UTC (or key_bucket=N)
//!   → rolling Parquet files         write/parquet.rs   returns file entries, never commits
//!   → commit (files + offsets)      write/commit.rs    atomic, exactly once per version
//!   → advisory group offset commit  source/kafka.rs    for lag tools; the commit is the truth
//! ```
//! `pipeline/ingest/` drives it: the version writer (`writer.rs`: decode → shape → write →
//! commit, one job) fed by one driver per source (`kafka.rs`, a state machine over the
//! consumer's events, rebalances included; `files.rs`; `replay.rs` for dead letters), in a
//! [`pipeline::ingest::Mode`] (live, retained after a promotion, rebuild), with progress and
//! metrics as observers (`observe.rs`) and writer leases (`write/lease.rs`) letting several
//! processes share a version. `pipeline/run.rs` follows the `current` pointer; only
//! `pipeline/promote.rs` moves it.
//!
//! Modules are layered (`domain`, `clock` → `error` → `schema` → `transform`, `storage`,
//! `partition` → `config` → `registry`, `table` → `decode` → `source` → `write` → `metrics` → `pipeline` →
//! `status`, `demo`): a module imports only its own layer or below, and nothing imports in a
//! cycle (checked by `tests/it/layering.rs`).
//! ## The invariants we promise
//! - Every commit to a version records the source offsets it covers, atomically with the files
//!   it makes visible; a restarted writer resumes exactly after them. Killing the process at any
//!   moment and restarting yields every record exactly once (or once in the dead letters).
//! - `current.json` changes only by compare-and-swap ([`table::pointer`]): racing promoters get
//!   one winner, readers never see a torn pointer.
//! - A version's definition is frozen at creation; a changed definition makes a new version.
//! - Memory is bounded by `max_buffer_bytes`, however large the source.
#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod decode;
pub mod demo;
pub mod domain;
pub mod error;
pub mod failpoints;
pub mod metrics;
pub mod partition;
pub mod pipeline;
pub mod registry;
pub mod schema;
pub mod shutdown;
pub mod source;
pub mod status;
pub mod storage;
pub mod table;
pub mod transform;
pub mod write;

pub use error::{Error, Result};
