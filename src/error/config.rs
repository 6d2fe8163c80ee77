//! [`ConfigError`]: why a configuration, or a file or root it names, was rejected.
//!
//! Invariant: every variant names the key or file involved, and `Invalid` also says how to fix
//! it. User-supplied values appear in messages only through [`printable`], so a name cannot
//! forge log lines or drive a terminal. Imports nothing from the crate.

use std::path::PathBuf;

/// Why a configuration was rejected. Always names the key or file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the expected shape.
    #[error("{file}: {message}")]
    Parse {
        /// The config file.
        file: PathBuf,
        /// The parser's message, including the key path and position.
        message: String,
    },
    /// A key has a value that breaks a rule.
    #[error("`{key}`: {problem}; {fix}")]
    Invalid {
        /// The offending key, e.g. `table[orders].writer.max_age`.
        key: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// A schema file named by `key` is missing or invalid.
    #[error("`{key}`: schema file `{path}`: {reason}")]
    Schema {
        /// The key that names the file.
        key: String,
        /// The resolved path.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The table root is not usable (unwritable, unsupported scheme…).
    #[error("`{key}`: root `{root}` is not usable: {reason}")]
    Root {
        /// The key, e.g. `table[orders].root`.
        key: String,
        /// The root as configured.
        root: String,
        /// Why.
        reason: String,
    },
}

impl ConfigError {
    /// An [`ConfigError::Invalid`]: `key` breaks a rule (`problem`); `fix` says what to do.
    pub fn invalid(
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// A user-supplied value for an error message: control characters escaped (a name must not
/// forge log lines or drive a terminal), at most 64 characters.
pub fn printable(value: &str) -> String {
    let mut shown: String = value
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().nth(64).is_some() {
        shown.push('…');
    }
    shown
}
