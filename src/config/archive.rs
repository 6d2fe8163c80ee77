//! Validation of raw archive tables (`encoding = "raw"`) and of the tables that name one
//! (`[table.source] archive`).
//!
//! Invariant: pure, like the rest of validation; every error names its key and the fix.

use super::typed::{KafkaSourceConfig, SourceConfig, TableConfig};
use crate::domain::{Encoding, TimeSpec};
use crate::error::{ConfigError, printable};

/// A table's `source.archive` names a raw table of the same config on the same topic.
pub(super) fn check_archive(
    table: &TableConfig,
    tables: &[TableConfig],
) -> Result<(), ConfigError> {
    let SourceConfig::Kafka(KafkaSourceConfig {
        archive: Some(name),
        topic,
        ..
    }) = &table.source
    else {
        return Ok(());
    };
    let key = format!("table[{}].source.archive", table.name);
    let Some(archive) = tables.iter().find(|t| &t.name == name) else {
        return Err(ConfigError::invalid(
            key,
            format!("no table `{}` in this config", printable(name)),
            "name the [[table]] with encoding = \"raw\" that archives this topic",
        ));
    };
    match &archive.source {
        SourceConfig::Kafka(a) if a.encoding == Encoding::Raw && &a.topic == topic => Ok(()),
        SourceConfig::Kafka(a) if a.encoding == Encoding::Raw => Err(ConfigError::invalid(
            key,
            format!("`{name}` archives topic `{}`, not `{topic}`", a.topic),
            "name the raw table of this table's topic",
        )),
        _ => Err(ConfigError::invalid(
            key,
            format!("`{name}` is not a raw archive"),
            format!("give table `{name}` encoding = \"raw\", or name the raw table of `{topic}`"),
        )),
    }
}

/// What `encoding = "raw"` (an archive of the records as they came) rules out: a transform,
/// dropping the coordinates, an event time other than the record's own timestamp.
pub(super) fn check_raw_table(
    label: &str,
    has_transform: bool,
    metadata_columns: Option<bool>,
    time: Option<&TimeSpec>,
) -> Result<(), ConfigError> {
    let why = "encoding = \"raw\" archives records as they came";
    if has_transform {
        return Err(ConfigError::invalid(
            format!("{label}.transform"),
            format!("{why}; a transform belongs to the tables rebuilt from it"),
            "remove `transform`",
        ));
    }
    if metadata_columns == Some(false) {
        return Err(ConfigError::invalid(
            format!("{label}.metadata_columns"),
            format!(
                "{why}, with their coordinates (_kafka_topic, _kafka_partition, _kafka_offset, _kafka_timestamp)"
            ),
            "remove `metadata_columns`",
        ));
    }
    if !matches!(time, Some(TimeSpec::SourceTimestamp)) {
        return Err(ConfigError::invalid(
            format!("{label}.time"),
            format!("{why}: its rows have no event-time field"),
            "use time = { source = \"kafka\", granularity = \"day\" }",
        ));
    }
    Ok(())
}
