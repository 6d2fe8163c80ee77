//! Public errors, grouped by what the caller can do about them.
//!
//! | variant       | what it means                                   | what to do                         |
//! |---------------|-------------------------------------------------|------------------------------------|
//! | `Config`      | the configuration or a file it names is wrong   | fix the config (exit code 2)       |
//! | `Conflict`    | someone else changed the state we based on      | re-read and decide again           |
//! | `NotFound`    | a version (or Delta table) named is not there   | name one that exists               |
//! | `Refused`     | a safety rule forbids the operation             | an operator decision (`--force`…)  |
//! | `Unsupported` | the source or store cannot do this              | use one that can                   |
//! | `Unusable`    | the version's definition cannot be used         | fix the definition                 |
//! | `Behind`      | a candidate version has not caught up yet       | let it catch up, then promote      |
//! | `Storage`     | the object store failed                         | retry later, check credentials     |
//! | `Corrupt`     | stored state does not parse                     | inspect the named object           |
//! | `Source`      | reading the source failed                       | check the source                   |
//! | `Kafka`       | the Kafka client failed                         | check brokers, topic, credentials  |
//! | `Write`       | encoding Arrow/Parquet failed                   | a bug or resource problem: report  |
//! | `Sample`      | Arrow failed on a `transform --input` sample    | a bug: report                      |
//! | `Task`        | a background task panicked or was cancelled     | a bug: report                      |
//!
//! Messages name the object involved and, where another error caused this one, end with that
//! error's text; the error is also the variant's [`std::error::Error::source`]. To print a
//! chain without repeating a cause the message already holds, use [`chain_text`].

mod refused;

pub use refused::{Missing, Refusal, Unsupported, Unusable};

use object_store::path::Path;

mod config;

pub use config::{ConfigError, printable};

/// An underlying error of a layer above this module (decoders, transforms), boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What was being done, and the error it met: prints as `{context}: {source}`, and keeps the
/// error as its source (for a message that says more than the error alone).
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct ContextError {
    context: String,
    #[source]
    source: BoxError,
}

impl ContextError {
    /// `source`, met while doing `context`.
    pub fn new(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        ContextError {
            context: context.into(),
            source: source.into(),
        }
    }
}

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

    /// The operation names something that does not exist.
    #[error("refused: {0}")]
    NotFound(#[from] Missing),

    /// A safety rule refused the operation.
    #[error("refused: {0}")]
    Refused(#[from] Refusal),

    /// The table's source or store cannot do what was asked.
    #[error("refused: {0}")]
    Unsupported(#[from] Unsupported),

    /// The version's definition cannot be used as it is.
    #[error("refused: {0}")]
    Unusable(#[from] Unusable),

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
    #[error("corrupt object `{path}`: {source}")]
    Corrupt {
        /// The object that does not parse.
        path: Path,
        /// Why: the parser's error, or a message saying what is wrong.
        #[source]
        source: BoxError,
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
    #[error("kafka topic `{topic}`: {source}")]
    Kafka {
        /// The topic.
        topic: String,
        /// What failed: the client's error, or a message saying what.
        #[source]
        source: BoxError,
    },

    /// Encoding Arrow or Parquet data failed.
    #[error("write failed for `{path}`: {source}")]
    Write {
        /// The data file involved.
        path: Path,
        /// The encoder's error.
        #[source]
        source: BoxError,
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
    #[error("schema registry `{url}`: {source}")]
    Registry {
        /// The request's URL (never with credentials).
        url: String,
        /// What failed: the client's error, or a message saying what.
        #[source]
        source: BoxError,
    },

    /// Shaping a sample (`transform --input`) failed in Arrow.
    #[error("refused: {source}")]
    Sample {
        /// Arrow's error.
        #[source]
        source: arrow::error::ArrowError,
    },

    /// A background task (a decode-ahead worker…) panicked or was cancelled.
    #[error("refused: {task} failed: {source}")]
    Task {
        /// What the task was doing.
        task: &'static str,
        /// How it ended.
        #[source]
        source: tokio::task::JoinError,
    },

    /// The metrics endpoint could not be served.
    #[error("cannot serve metrics on `{addr}` (--metrics-addr): {source}")]
    Metrics {
        /// The address asked for.
        addr: String,
        /// Why.
        #[source]
        source: BoxError,
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

/// `err` and its causes as one line, `: `-separated, leaving out a cause whose text the line
/// already holds (our messages end with their cause's text, and most errors below do too).
/// This is what the CLI prints after `error: `.
pub fn chain_text<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut text = String::new();
    for cause in chain {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_refusals_print_as_before() {
        let e = Error::from(Missing::Version {
            table: "t".into(),
            version: 7,
        });
        assert_eq!(e.to_string(), "refused: table `t` has no v7");
        let e = Error::from(Refusal::NotSame {
            table: "t".into(),
            a: 1,
            b: 2,
            rows_a: 5,
            rows_b: 5,
        });
        assert_eq!(
            e.to_string(),
            "refused: v2 does not hold the same records as v1 (up to the offsets both hold): v1 5 rows, v2 5 rows, different records; not promoting (see `kappa-lake diff --table t 1 2`)"
        );
    }

    #[test]
    fn a_chain_prints_each_cause_once() {
        let io = std::io::Error::other("disk full");
        let e = Error::Write {
            path: Path::from("v1/part-0.parquet"),
            source: ContextError::new("closing", io).into(),
        };
        assert!(std::error::Error::source(&e).is_some());
        let chain = std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        });
        assert_eq!(
            chain_text(chain),
            "write failed for `v1/part-0.parquet`: closing: disk full"
        );
    }
}
