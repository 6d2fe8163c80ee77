//! Unit tests of `source::kafka`.

use super::*;

fn cfg(settings: &[(&str, &str)]) -> KafkaSourceConfig {
    KafkaSourceConfig {
        archive: None,
        brokers: "127.0.0.1:1".into(),
        topic: "t".into(),
        group_id: "g".into(),
        encoding: crate::config::Encoding::Json,
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        registry: None,
        max_record_bytes: 1 << 20,
        batch_size: 100,
    }
}

#[tokio::test]
async fn sasl_ssl_settings_are_accepted_by_this_build() {
    let source = KafkaSource::start(
        &cfg(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "user"),
            ("sasl.password", "secret"),
        ]),
        3,
    )
    .expect("librdkafka is built with TLS and SASL/SCRAM");
    assert_eq!(source.group_id, "g.v3");
    source.close().await;
}

#[tokio::test]
async fn unknown_librdkafka_settings_fail_at_start_naming_the_property() {
    let err = KafkaSource::start(&cfg(&[("no.such.property", "1")]), 1).unwrap_err();
    assert!(err.to_string().contains("no.such.property"), "{err}");
}
