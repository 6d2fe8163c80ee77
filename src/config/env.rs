//! Environment overrides: `KAPPA_LAKE_TABLE__<NAME>__<KEY>[__<SUBKEY>…]=value` applied to the
//! parsed TOML before it is deserialized, so an override is checked like the key it replaces.
//!
//! Invariant: the environment is passed in (never read here), and only variables with the
//! [`ENV_TABLE_PREFIX`] are looked at.

use crate::error::{ConfigError, printable};

/// Prefix of environment variables that override table keys.
pub const ENV_TABLE_PREFIX: &str = "KAPPA_LAKE_TABLE__";

/// Applies `KAPPA_LAKE_TABLE__<NAME>__<KEY>[__<SUBKEY>…]=value` to the parsed TOML.
///
/// Table names and keys match case-insensitively. Under `source.kafka`, `_` in the key
/// stands for `.` (`…__KAFKA__SESSION_TIMEOUT_MS` sets `session.timeout.ms`). A value replacing
/// a string stays a string; otherwise it is parsed as a TOML value when it parses.
pub fn apply_env_overrides(
    root: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_TABLE_PREFIX))
        .collect();
    overrides.sort();
    for (var, raw_value) in overrides {
        let rest = &var[ENV_TABLE_PREFIX.len()..];
        let mut parts = rest.split("__");
        let bad = |problem: &str| {
            ConfigError::invalid(
                &var,
                problem.to_string(),
                "write KAPPA_LAKE_TABLE__<TABLE>__<KEY>[__<SUBKEY>], e.g. KAPPA_LAKE_TABLE__ORDERS__WRITER__MAX_AGE=30s",
            )
        };
        let table_name = parts
            .next()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("no table name"))?;
        let keys: Vec<&str> = parts.collect();
        if keys.is_empty() || keys.iter().any(|k| k.is_empty()) {
            return Err(bad("no key after the table name"));
        }
        let tables = root
            .get_mut("table")
            .and_then(toml::Value::as_array_mut)
            .ok_or_else(|| bad("the config defines no [[table]]"))?;
        let table = tables
            .iter_mut()
            .filter_map(toml::Value::as_table_mut)
            .find(|t| {
                t.get("name")
                    .and_then(toml::Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(table_name))
            })
            .ok_or_else(|| {
                bad(&format!(
                    "no table named `{}` in the config",
                    printable(table_name)
                ))
            })?;
        let mut node = table;
        let mut in_kafka = false;
        for (i, key) in keys.iter().enumerate() {
            let key = if in_kafka {
                key.to_ascii_lowercase().replace('_', ".")
            } else {
                key.to_ascii_lowercase()
            };
            if i + 1 == keys.len() {
                let existing_is_string = node.get(&key).is_some_and(toml::Value::is_str);
                node.insert(key, env_value(&raw_value, existing_is_string));
                break;
            }
            in_kafka = key == "kafka";
            node = node
                .entry(key)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| bad("a key on the path is not a table"))?;
        }
    }
    Ok(())
}

fn env_value(raw: &str, keep_string: bool) -> toml::Value {
    if !keep_string
        && let Ok(mut t) = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    toml::Value::String(raw.to_string())
}
