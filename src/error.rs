//! Public errors, grouped by what the caller can do about them.
//!
//! | variant      | what it means                                   | what to do                         |
//! |--------------|-------------------------------------------------|------------------------------------|
//! | `Config`     | the configuration or a file it names is wrong   | fix the config (exit code 2)       |
//! | `Conflict`   | someone else changed the state we based on      | re-read and decide again           |
//! | `Refused`    | a safety rule forbids the operation             | an operator decision (`--force`…)  |
//! | `Behind`     | a candidate version has not caught up yet       | let it catch up, then promote      |
//! | `Storage`    | the object store failed                         | retry later, check credentials     |
//! | `Corrupt`    | stored state does not parse                     | inspect the named object           |
//! | `Source`     | reading the source failed                       | check the source                   |
//! | `Kafka`      | the Kafka client failed                         | check brokers, topic, credentials  |
//! | `Write`      | encoding Arrow/Parquet failed                   | a bug or resource problem: report  |

use object_store::path::Path;

mod config;

pub use config::{ConfigError, printable};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the library returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; nothing was started.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// Another writer or promoter changed the state this operation was based on.
    #[error("conflict at `{path}`: {reason}")]
    Conflict {
        /// The object that changed under us.
        path: Path,
        /// What changed.
        reason: String,
    },

    /// A safety rule refused the operation.
    #[error("refused: {0}")]
    Refused(String),

    /// A promotion was refused because the candidate has not caught up with the live version.
    #[error("refused: {0}")]
    Behind(String),

    /// The object store returned an error.
    #[error("storage error at `{path}`: {source}")]
    Storage {
        /// The object involved.
        path: Path,
        /// The store's error.
        source: object_store::Error,
    },

    /// Stored state (pointer, version definition, commit record) does not parse.
    #[error("corrupt object `{path}`: {reason}")]
    Corrupt {
        /// The object that does not parse.
        path: Path,
        /// Why.
        reason: String,
    },

    /// Reading the source failed.
    #[error("source `{location}`: {source}")]
    Source {
        /// File, topic or partition.
        location: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// The Kafka client failed.
    #[error("kafka topic `{topic}`: {reason}")]
    Kafka {
        /// The topic.
        topic: String,
        /// What failed.
        reason: String,
    },

    /// Encoding Arrow or Parquet data failed.
    #[error("write failed for `{path}`: {reason}")]
    Write {
        /// The data file involved.
        path: Path,
        /// The encoder's message.
        reason: String,
    },

    /// A record could not be materialized and the table's policy is `bad_records = "fail"`.
    #[error(
        "bad record at `{source_partition}` offset {offset} ({stage}): {reason}; nothing after the last commit was committed. Fix the definition, or set bad_records = \"dead_letter\" (or \"skip\") to go on"
    )]
    BadRecord {
        /// Kafka `topic/partition`, or the file.
        source_partition: String,
        /// Kafka offset, or the line (0-based).
        offset: u64,
        /// The stage it failed in (`read`, `decode`, `event_time`, `transform`).
        stage: &'static str,
        /// Why.
        reason: String,
    },

    /// The schema registry could not answer.
    #[error("schema registry `{url}`: {reason}")]
    Registry {
        /// The request's URL (never with credentials).
        url: String,
        /// What failed.
        reason: String,
    },

    /// The metrics endpoint could not be served.
    #[error("cannot serve metrics on `{addr}` (--metrics-addr): {reason}")]
    Metrics {
        /// The address asked for.
        addr: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Wraps an object store error with the path it concerns.
    pub fn storage(path: &Path, source: object_store::Error) -> Self {
        Error::Storage {
            path: path.clone(),
            source,
        }
    }

    /// The process exit code this error maps to: 2 for bad usage or config, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 2,
            _ => 1,
        }
    }
}
