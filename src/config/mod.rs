//! Configuration: `kappa-lake.toml`, in phases, one file per job.
//!
//! 1. [`raw`]: [`RawConfig`] mirrors the file (serde, `deny_unknown_fields`); before it is
//!    deserialized, [`env`] applies `KAPPA_LAKE_TABLE__<NAME>__<KEY>[__<SUBKEY>…]` overrides.
//! 2. [`validate`]: [`RawConfig::validate`] is pure: it checks every rule and returns a typed
//!    [`Config`] ([`typed`]). Every error names the key (`table[orders].writer.max_age`) and
//!    says how to fix it. Sizes and durations are parsed by [`size`], roots and paths by
//!    [`paths`].
//! 3. [`load`]: [`Config::load`] / [`Config::from_toml`] run the phases above, then read the
//!    files a table names (schema, transform `.sql`), compile the transform and check the time
//!    field and partition names against the rows.
//!
//! Relative paths (`root`, `schema`, `transform`, `source.path`, the registry's `ca_file`) are
//! resolved against the directory of the config file, so a config means the same thing from any
//! working directory. The plain domain types (format, granularity, time rule, root…) live in
//! [`crate::domain`] and are re-exported here.

mod archive;
pub mod env;
pub mod load;
pub mod paths;
pub mod raw;
pub mod size;
pub mod typed;
pub mod validate;

pub use crate::domain::{
    BadRecords, Encoding, EpochUnit, Format, Granularity, Root, SourceIdentity, SourceKind,
    TimeSpec,
};
pub use crate::error::ConfigError;
pub use env::ENV_TABLE_PREFIX;
pub use raw::{
    CompactMode, RawConfig, RawMaintenance, RawRegistry, RawSource, RawTable, RawTime, RawVersions,
    RawWriter,
};
pub use size::parse_size;
pub use typed::{
    Config, FilesSourceConfig, KafkaSourceConfig, MaintenanceConfig, RegistryConfig, SourceConfig,
    TableConfig, VersionsConfig, WriterConfig,
};
pub use validate::validate_table_name;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::env::apply_env_overrides;
    use super::*;

    const MINIMAL: &str = r#"
[[table]]
name = "orders"
root = "./lake"
schema = "schemas/orders.avsc"
time = { field = "ts", granularity = "hour" }
[table.source]
kind = "files"
path = "events"
[table.writer]
target_file_size = "128MiB"
max_age = "60s"
"#;

    #[test]
    fn cloud_roots_and_storage_options() {
        let with_root = |root: &str, extra: &str| {
            let text = MINIMAL.replace("root = \"./lake\"", &format!("root = \"{root}\"{extra}"));
            parse(&text, &[])
        };
        for root in [
            "s3://bucket/prefix",
            "az://container/prefix",
            "abfss://container@acct.dfs.core.windows.net/prefix",
            "gs://bucket/prefix",
        ] {
            let config = with_root(root, "").unwrap_or_else(|e| panic!("{root}: {e}"));
            assert_eq!(config.tables[0].root.to_string(), root);
        }
        let e = with_root("s3://key:secret@bucket/p", "").unwrap_err();
        assert!(e.to_string().contains("carries credentials"), "{e}");
        assert!(!e.to_string().contains("secret@"), "{e}");
        let e = with_root("ftp://host/p", "").unwrap_err();
        assert!(
            e.to_string().contains("`ftp` scheme is not supported"),
            "{e}"
        );
        let text = format!(
            "[storage]\naws_region = \"eu-west-1\"\n{}",
            MINIMAL.replace("./lake", "s3://b/p")
        ) + "[table.storage]\naws_endpoint = \"http://127.0.0.1:9000\"\n";
        let config = parse(&text, &[]).unwrap();
        let keys: Vec<_> = config.tables[0].storage.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["aws_endpoint", "aws_region"]);
        let e = parse(&(text + "nope = \"1\"\n"), &[]).unwrap_err();
        assert!(e.to_string().contains("table[orders].storage.nope"), "{e}");
    }

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut raw: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: "t.toml".into(),
            message: e.to_string(),
        })?;
        apply_env_overrides(
            &mut raw,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )?;
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(raw)).map_err(|e| {
                ConfigError::Parse {
                    file: "t.toml".into(),
                    message: format!("key `{}`: {}", e.path(), e.inner()),
                }
            })?;
        raw.validate(Path::new("/cfg"))
    }

    #[test]
    fn minimal_config_validates_with_defaults() {
        let c = parse(MINIMAL, &[]).unwrap();
        let t = &c.tables[0];
        assert_eq!(t.root, Root::Local(PathBuf::from("/cfg/lake")));
        assert_eq!(t.format, Format::Delta);
        assert_eq!(t.writer.target_file_size, 128 << 20);
        assert_eq!(t.granularity, Granularity::Hour);
        assert!(t.metadata_columns);
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let text = MINIMAL.replace("max_age = \"60s\"", "max_age = \"60s\"\nmax_agee = 1");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            e.contains("table[0].writer") && e.contains("max_agee"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let text = MINIMAL.replace("max_age = \"60s\"", "max_age = 60");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(e.contains("table[0].writer.max_age"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_fix() {
        let text = MINIMAL.replace("\"128MiB\"", "\"lots\"");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            e.contains("table[orders].writer.target_file_size") && e.contains("128MiB"),
            "{e}"
        );
        let text = MINIMAL.replace("name = \"orders\"", "name = \"../etc\"");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(e.contains("not a valid table name"), "{e}");
        // A hostile name is refused before it is used in a key, and printed escaped.
        let text = MINIMAL.replace("name = \"orders\"", "name = \"a\\u001b[2J\\nb\"");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(e.contains("table[0].name"), "{e}");
        assert!(e.contains("a\\u{1b}[2J\\nb"), "{e}");
        assert!(!e.contains('\u{1b}') && !e.contains("a\nb"), "{e}");
        let text = MINIMAL.replace(
            "name = \"orders\"",
            &format!("name = \"{}\"", "x".repeat(500)),
        );
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(e.len() < 400 && e.contains('…'), "{e}");
    }

    #[test]
    fn upsert_tables_partition_by_time_key_bucket_or_nothing_and_append_tables_by_time() {
        let upsert = MINIMAL.replace(
            "time = { field = \"ts\", granularity = \"hour\" }",
            "mode = \"upsert\"\nkey = [\"id\"]\nPARTITION",
        );
        let with = |p: &str| parse(&upsert.replace("PARTITION", p), &[]);
        let t = &with("").unwrap().tables[0];
        assert_eq!(
            (&t.time, t.granularity),
            (&None, Granularity::Unpartitioned)
        );
        let t = &with("partition_by = { key_buckets = 16 }").unwrap().tables[0];
        assert_eq!(
            (&t.time, t.granularity),
            (&None, Granularity::KeyBuckets(16))
        );
        let t = &with("time = { field = \"ts\", granularity = \"day\" }")
            .unwrap()
            .tables[0];
        assert_eq!(t.granularity, Granularity::Day);
        for (bad, key, fix) in [
            (
                "partition_by = { key_buckets = 0 }",
                "table[orders].partition_by.key_buckets",
                "1 to 10000",
            ),
            (
                "partition_by = { key_buckets = 4 }\ntime = { field = \"ts\", granularity = \"day\" }",
                "table[orders].partition_by",
                "not both",
            ),
            (
                "time = { field = \"ts\", granularity = \"unpartitioned\" }",
                "table[orders].time.granularity",
                "\"day\" or \"hour\"",
            ),
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(fix), "{bad}: {e}");
        }
        // An append table has no key to bucket by and no state without time.
        let append = MINIMAL.replace("time = { field = \"ts\", granularity = \"hour\" }", "");
        let e = parse(&append, &[]).unwrap_err().to_string();
        assert!(
            e.contains("table[orders].time") && e.contains("granularity"),
            "{e}"
        );
    }

    const KAFKA: &str = r#"
[[table]]
name = "orders"
root = "./lake"
schema = "schemas/orders.avsc"
time = { source = "kafka", granularity = "day" }
[table.source]
kind = "kafka"
brokers = "127.0.0.1:9092"
topic = "orders"
[table.source.kafka]
"session.timeout.ms" = 6000
"security.protocol" = "SASL_SSL"
"#;

    #[test]
    fn kafka_source_passes_settings_through_and_defaults_the_group() {
        let c = parse(
            KAFKA,
            &[(
                "KAPPA_LAKE_TABLE__ORDERS__SOURCE__KAFKA__FETCH_MIN_BYTES",
                "1",
            )],
        )
        .unwrap();
        let SourceConfig::Kafka(k) = &c.tables[0].source else {
            panic!("kafka source expected");
        };
        assert_eq!(k.brokers, "127.0.0.1:9092");
        assert_eq!(k.group_id, "kappa-lake.orders");
        assert_eq!(k.settings["session.timeout.ms"], "6000");
        assert_eq!(k.settings["security.protocol"], "SASL_SSL");
        assert_eq!(k.settings["fetch.min.bytes"], "1");
        assert_eq!(c.tables[0].time, Some(TimeSpec::SourceTimestamp));
    }

    #[test]
    fn kafka_source_refuses_what_kappa_lake_sets_itself() {
        let e = parse(&format!("{KAFKA}\"group.id\" = \"x\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("group.id") && e.contains("group_id"), "{e}");
        let e = parse(&KAFKA.replace("topic = \"orders\"\n", ""), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("table[orders].source.topic") || e.contains("source.topic"),
            "{e}"
        );
    }

    #[test]
    fn env_overrides_apply_by_table_name() {
        let c = parse(
            MINIMAL,
            &[
                ("KAPPA_LAKE_TABLE__ORDERS__WRITER__MAX_AGE", "5s"),
                ("KAPPA_LAKE_TABLE__ORDERS__SOURCE__BATCH_SIZE", "100"),
                ("KAPPA_LAKE_OTHER", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(c.tables[0].writer.max_age, Duration::from_secs(5));
        assert_eq!(c.tables[0].source.batch_size(), 100);
        let e = parse(MINIMAL, &[("KAPPA_LAKE_TABLE__NOPE__ROOT", "x")]).unwrap_err();
        assert!(
            e.to_string().contains("KAPPA_LAKE_TABLE__NOPE__ROOT"),
            "{e}"
        );
        let e = parse(MINIMAL, &[("KAPPA_LAKE_TABLE__ORDERS__WRITER__TYPO", "1")]).unwrap_err();
        assert!(e.to_string().contains("typo"), "{e}");
    }

    #[test]
    fn unsupported_schemes_are_rejected_clearly() {
        let text = MINIMAL.replace("./lake", "hdfs://namenode/lake");
        let e = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            e.contains("table[orders].root") && e.contains("hdfs"),
            "{e}"
        );
    }
}
