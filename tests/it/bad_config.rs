//! Bad config fails before any work, with a message naming the key.

use crate::fixture::Cli;
use crate::support::{EVENT_SCHEMA, write_config};

fn fails_naming(dir: &std::path::Path, expect: &[&str]) {
    let out = Cli::new(dir).cmd("run", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bad config exits 2: {stderr}");
    for e in expect {
        assert!(stderr.contains(e), "expected `{e}` in: {stderr}");
    }
    assert!(!dir.join("lake/events").exists(), "no work was done");
}

#[test]
fn bad_configs_fail_before_work_naming_the_key() {
    let time = r#"{ field = "ts", granularity = "hour" }"#;
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    std::fs::create_dir_all(d.join("input")).unwrap();

    write_config(
        d,
        EVENT_SCHEMA,
        time,
        "max_age = \"60s\"\nmax_agee = \"1s\"",
    );
    fails_naming(d, &["table[0].writer", "max_agee"]);

    write_config(d, EVENT_SCHEMA, time, "max_age = 60");
    fails_naming(d, &["table[0].writer.max_age"]);

    write_config(d, EVENT_SCHEMA, time, "target_file_size = \"huge\"");
    fails_naming(d, &["table[events].writer.target_file_size", "128MiB"]);

    let cfg = write_config(d, EVENT_SCHEMA, time, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("schemas/events.avsc", "schemas/missing.avsc");
    std::fs::write(&cfg, text).unwrap();
    fails_naming(d, &["table[events].schema", "missing.avsc"]);

    write_config(d, "{\"type\": \"record\", \"name\": ", time, "");
    fails_naming(d, &["table[events].schema"]);

    write_config(
        d,
        EVENT_SCHEMA,
        r#"{ field = "nope", granularity = "hour" }"#,
        "",
    );
    fails_naming(d, &["table[events].time.field", "nope"]);

    // A Delta version's partition columns are table columns: an event field cannot share a name.
    let with_hour = EVENT_SCHEMA.replace(
        r#"{"name":"id","type":"long"},"#,
        r#"{"name":"id","type":"long"},{"name":"hour","type":"int"},"#,
    );
    write_config(d, &with_hour, time, "");
    fails_naming(d, &["table[events].schema", "`hour`", "partition column"]);

    write_config(d, EVENT_SCHEMA, time, "checkpoint_interval = 0");
    fails_naming(d, &["table[events].writer.checkpoint_interval"]);

    let maintenance = |lines: &str| format!("\n[table.maintenance]\n{lines}");
    write_config(
        d,
        EVENT_SCHEMA,
        time,
        &maintenance("compact_after = \"0s\""),
    );
    fails_naming(d, &["table[events].maintenance.compact_after", "1h"]);
    write_config(d, EVENT_SCHEMA, time, &maintenance("compact_min_files = 1"));
    fails_naming(
        d,
        &["table[events].maintenance.compact_min_files", "2 or more"],
    );

    write_config(d, EVENT_SCHEMA, time, &maintenance("vacuum_every = \"0s\""));
    fails_naming(d, &["table[events].maintenance.vacuum_every", "1h"]);
    write_config(
        d,
        EVENT_SCHEMA,
        time,
        &maintenance("vacuum = \"sometimes\""),
    );
    fails_naming(d, &["table[0].maintenance.vacuum", "sometimes", "auto"]);
    // Vacuum also deletes files no commit lists yet: the writer's must not qualify.
    write_config(
        d,
        EVENT_SCHEMA,
        time,
        "max_age = \"60s\"\ndeleted_file_retention = \"1m\"",
    );
    fails_naming(
        d,
        &[
            "table[events].writer.deleted_file_retention",
            "max_age",
            "7d",
        ],
    );

    write_config(d, EVENT_SCHEMA, time, "log_retention = \"0s\"");
    fails_naming(d, &["table[events].writer.log_retention", "30d"]);
    write_config(d, EVENT_SCHEMA, time, "log_retention = \"a month\"");
    fails_naming(d, &["table[events].writer.log_retention", "not a duration"]);

    // An unwritable root: the path is taken by a regular file.
    let cfg = write_config(d, EVENT_SCHEMA, time, "");
    std::fs::write(d.join("blocked"), "not a directory").unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("root = \"lake\"", "root = \"blocked/lake\"");
    std::fs::write(&cfg, text).unwrap();
    fails_naming(d, &["table[events].root", "blocked"]);

    // Kafka: a librdkafka property that does not exist, and a missing topic.
    crate::kafka_support::kafka_config(d, "127.0.0.1:1", "events", "");
    let cfg = d.join("kappa-lake.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "\"heartbeat.interval.ms\"",
        "\"fetch.min.bytez\" = \"1\"\n\"heartbeat.interval.ms\"",
    );
    std::fs::write(&cfg, &text).unwrap();
    fails_naming(
        d,
        &[
            "table[events].source.kafka.\"fetch.min.bytez\"",
            "CONFIGURATION.md",
        ],
    );
    crate::kafka_support::kafka_config(d, "127.0.0.1:1", "events", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("topic = \"events\"\n", "");
    std::fs::write(&cfg, &text).unwrap();
    fails_naming(d, &["table[events].source.topic"]);

    // Environment overrides are checked the same way.
    write_config(d, EVENT_SCHEMA, time, "");
    let out = Cli::new(d)
        .env("KAPPA_LAKE_TABLE__EVENTS__WRITER__MAX_AGE", "soon")
        .cmd("validate", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("table[events].writer.max_age"));
    let out = Cli::new(d).cmd("validate", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_raw_archive_config_names_what_raw_rules_out() {
    use crate::fixture::TableConfig;
    let dir = crate::support::Workdir::new();
    let d = dir.path();
    let raw = || TableConfig::kafka("127.0.0.1:1", "events").raw_archive();
    raw().schema(EVENT_SCHEMA).write_to(d);
    fails_naming(d, &["table[events].schema", "built-in", "remove `schema`"]);
    raw()
        .table_keys("transform = \"SELECT * FROM events\"")
        .write_to(d);
    fails_naming(d, &["table[events].transform", "remove `transform`"]);
    raw().table_keys("metadata_columns = false").write_to(d);
    fails_naming(d, &["table[events].metadata_columns", "_kafka_offset"]);
    raw().granularity("day").write_to(d);
    fails_naming(d, &["table[events].time", "source = \"kafka\""]);
    TableConfig::files()
        .source_keys("encoding = \"raw\"")
        .write_to(d);
    fails_naming(d, &["table[events].source.encoding", "read from Kafka"]);
    // Without `schema`, a table that is not raw is told to name one.
    let text = std::fs::read_to_string(TableConfig::kafka("127.0.0.1:1", "events").write_to(d))
        .unwrap()
        .replace("schema = \"schemas/events.avsc\"\n", "");
    std::fs::write(d.join(crate::fixture::cli::CONFIG), text).unwrap();
    fails_naming(d, &["table[events].schema", "set schema ="]);
    // `source.archive` names a raw table of the same topic in the same config.
    let json = || TableConfig::kafka("127.0.0.1:1", "events");
    json().source_keys(r#"archive = "nope""#).write_to(d);
    fails_naming(d, &["table[events].source.archive", "no table `nope`"]);
    crate::fixture::write_tables(
        d,
        &[
            json().source_keys(r#"archive = "other""#),
            json().name("other"),
        ],
    );
    fails_naming(
        d,
        &[
            "table[events].source.archive",
            "`other` is not a raw archive",
        ],
    );
    crate::fixture::write_tables(
        d,
        &[
            json().source_keys(r#"archive = "other""#),
            TableConfig::kafka("127.0.0.1:1", "elsewhere")
                .name("other")
                .raw_archive(),
        ],
    );
    fails_naming(d, &["table[events].source.archive", "not `events`"]);
    raw().write_to(d);
    let out = Cli::new(d).cmd("validate", &[]);
    assert!(out.status.success(), "{}", crate::fixture::stderr(&out));
}
