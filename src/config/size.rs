//! Sizes (`"128MiB"`, `"64 MB"`, `"1048576"`) and durations (`"60s"`, `"24h"`) as written in
//! the config.
//!
//! Invariant: pure parsing; every error is a [`ConfigError::Invalid`] naming the key and the
//! forms it accepts.

use std::time::Duration;

use crate::error::ConfigError;

/// Parses `"128MiB"`, `"64 MB"`, `"1048576"` into bytes; errors name `key`.
pub fn parse_size(s: &str, key: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => u64::MAX,
    };
    num.parse::<u64>()
        .ok()
        .filter(|_| mult != u64::MAX)
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            ConfigError::invalid(
                key,
                format!("`{s}` is not a size"),
                "write a size such as \"128MiB\", \"64MB\" or \"1048576\"",
            )
        })
}

/// Parses a duration such as `"60s"`, `"500ms"` or `"24h"`; errors name `key` and suggest
/// `examples` (e.g. `"\"60s\", \"500ms\" or \"5m\""`).
pub fn parse_duration(s: &str, key: &str, examples: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s).map_err(|e| {
        ConfigError::invalid(
            key,
            format!("`{s}` is not a duration ({e})"),
            format!("write a duration such as {examples}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("128MiB", "k").unwrap(), 128 << 20);
        assert_eq!(parse_size("64 MB", "k").unwrap(), 64_000_000);
        assert_eq!(parse_size("42", "k").unwrap(), 42);
        assert!(parse_size("12 parsecs", "k").is_err());
        assert!(parse_size("99999999999999999999GiB", "k").is_err());
    }

    #[test]
    fn durations_parse_and_name_the_key() {
        assert_eq!(
            parse_duration("500ms", "k", "\"1s\"").unwrap(),
            Duration::from_millis(500)
        );
        let e = parse_duration("soon", "t.max_age", "\"60s\"").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("`t.max_age`: `soon` is not a duration ("),
            "{e}"
        );
        assert!(
            e.to_string()
                .ends_with("; write a duration such as \"60s\""),
            "{e}"
        );
    }
}
