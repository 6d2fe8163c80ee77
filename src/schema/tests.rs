//! Unit tests of `schema`: parsing, the Avro → Arrow mapping and schema evolution checks.

use super::*;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use arrow::datatypes::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time32MillisecondType, Time64MicrosecondType, TimestampMicrosecondType,
    TimestampMillisecondType,
};
use arrow::error::ArrowError;
use arrow::json::ReaderBuilder;

/// 2026-11-26T10:00:00Z in milliseconds since the epoch.
const TS_MILLIS: i64 = 1_795_687_200_000;
/// 2026-11-26 in days since the epoch.
const DATE_DAYS: i32 = 20_783;

/// Wrap `fields` (JSON array text) in a top-level record.
fn record(fields: &str) -> String {
    format!(r#"{{"type": "record", "name": "Event", "namespace": "test", "fields": {fields}}}"#)
}

fn parse_fields(fields: &str) -> EventSchema {
    EventSchema::parse(&record(fields)).expect("schema parses")
}

/// Decode newline-delimited JSON events with the schema's Arrow schema.
fn decode(schema: &EventSchema, json: &str) -> Result<RecordBatch, ArrowError> {
    let mut decoder = ReaderBuilder::new(schema.arrow.clone()).build_decoder()?;
    let consumed = decoder.decode(json.as_bytes())?;
    assert_eq!(consumed, json.len(), "decoder consumed all input");
    Ok(decoder.flush()?.expect("at least one row"))
}

fn field_type(schema: &EventSchema, name: &str) -> (DataType, bool) {
    let field = schema.arrow.field_with_name(name).expect("field exists");
    (field.data_type().clone(), field.is_nullable())
}

fn unsupported_path(err: SchemaError) -> (String, String) {
    match err {
        SchemaError::Unsupported { path, reason } => (path, reason),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

mod mapping;

#[test]
fn field_docs_become_metadata_and_canonical_form_is_stable() {
    let with_doc = parse_fields(r#"[{"name": "a", "type": "long", "doc": "the a"}]"#);
    let field = with_doc.arrow.field(0);
    assert_eq!(
        field.metadata().get(DOC_METADATA_KEY).map(String::as_str),
        Some("the a")
    );
    let without_doc = parse_fields(r#"[{"name": "a", "type": "long"}]"#);
    assert!(without_doc.arrow.field(0).metadata().is_empty());

    assert_eq!(with_doc.canonical, without_doc.canonical);
    assert_eq!(
        with_doc.canonical,
        r#"{"name":"test.Event","type":"record","fields":[{"name":"a","type":"long"}]}"#
    );
    assert_eq!(with_doc.canonical, with_doc.avro.canonical_form());
}

#[test]
fn missing_required_field_fails_flush() {
    let schema = parse_fields(
        r#"[{"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"]}]"#,
    );
    let mut decoder = ReaderBuilder::new(schema.arrow.clone())
        .build_decoder()
        .expect("decoder");
    decoder
        .decode(br#"{"note": "no id"}"#)
        .expect("tape accepts the row");
    let err = decoder.flush().expect_err("missing id must fail");
    assert_eq!(
        err.to_string(),
        r#"Json error: Encountered unmasked nulls in non-nullable StructArray child: Field { "id": Int64 }"#
    );

    // An explicit null is rejected the same way.
    let err = decode(&schema, r#"{"id": null}"#).expect_err("null id must fail");
    assert_eq!(
        err.to_string(),
        r#"Json error: Encountered unmasked nulls in non-nullable StructArray child: Field { "id": Int64 }"#
    );
}

#[test]
fn missing_required_field_in_shipped_schema_fails_flush() {
    let schema = EventSchema::parse(include_str!("../../schemas/page_views.avsc")).expect("parses");
    let err = decode(
        &schema,
        r#"{"view_id": "v", "ts": 1, "url": "u", "duration_ms": 1, "device": {"kind": "mobile"}}"#,
    )
    .expect_err("missing device.os must fail");
    assert_eq!(
        err.to_string(),
        r#"Json error: whilst decoding field 'device': Encountered unmasked nulls in non-nullable StructArray child: Field { "os": Utf8 }"#
    );
    let err = decode(
        &schema,
        r#"{"ts": 1, "url": "u", "duration_ms": 1, "device": {"kind": "mobile", "os": "iOS"}}"#,
    )
    .expect_err("missing view_id must fail");
    // The field's metadata (its Avro doc) is part of the message.
    assert_eq!(
        err.to_string(),
        r#"Json error: Encountered unmasked nulls in non-nullable StructArray child: Field { "view_id": Utf8, metadata: {"doc": "Unique page view id."} }"#
    );
}

#[test]
fn wrong_type_fails_flush() {
    let schema = parse_fields(r#"[{"name": "id", "type": "long"}]"#);
    let err = decode(&schema, r#"{"id": "abc"}"#).expect_err("string in long field");
    assert_eq!(
        err.to_string(),
        "Json error: whilst decoding field 'id': failed to parse \"abc\" as Int64"
    );
    // Numeric text is accepted.
    let batch = decode(&schema, r#"{"id": "123"}"#).expect("numeric string decodes");
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), 123);
}

#[test]
fn shipped_orders_schema() {
    let schema = EventSchema::parse(include_str!("../../schemas/orders.avsc")).expect("parses");
    let names: Vec<&str> = schema
        .arrow
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        [
            "order_id",
            "customer_id",
            "ts",
            "status",
            "amount",
            "currency",
            "items",
            "shipping",
            "coupon",
            "tags"
        ]
    );
    assert_eq!(
        field_type(&schema, "ts"),
        (
            DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from(UTC_TIME_ZONE))),
            false
        )
    );
    assert_eq!(
        field_type(&schema, "amount"),
        (DataType::Decimal128(12, 2), false)
    );
    assert!(field_type(&schema, "shipping").1);
    assert!(field_type(&schema, "coupon").1);
    assert!(schema.canonical.contains("com.example.shop.Order"));

    let batch = decode(
            &schema,
            r#"{"order_id": 1001, "customer_id": "c-42", "ts": "2026-11-26T10:00:00Z", "status": "paid", "amount": "59.90", "currency": "EUR", "items": [{"sku": "A-1", "quantity": 2, "unit_price": 19.95}, {"sku": "B-7", "quantity": 1, "unit_price": 20.0}], "shipping": {"country": "DE", "city": "Berlin", "zip": "10115"}, "coupon": null, "tags": {"channel": "web"}}
{"order_id": 1002, "customer_id": "c-7", "ts": 1795687200000, "status": "created", "amount": 5, "currency": "USD", "items": [], "shipping": null, "tags": {}}"#,
        )
        .expect("decodes");
    assert_eq!(batch.num_rows(), 2);
    let amount = batch
        .column_by_name("amount")
        .expect("amount")
        .as_primitive::<Decimal128Type>();
    assert_eq!((amount.value(0), amount.value(1)), (5990, 500));
}

#[test]
fn shipped_page_views_schema() {
    let schema = EventSchema::parse(include_str!("../../schemas/page_views.avsc")).expect("parses");
    assert_eq!(field_type(&schema, "view_id"), (DataType::Utf8, false));
    assert_eq!(field_type(&schema, "user_id"), (DataType::Int64, true));
    assert_eq!(
        field_type(&schema, "ts"),
        (
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC_TIME_ZONE))),
            false
        )
    );
    assert_eq!(field_type(&schema, "referrer"), (DataType::Utf8, true));
    assert_eq!(field_type(&schema, "duration_ms"), (DataType::Int32, false));
    assert_eq!(
        field_type(&schema, "device"),
        (
            DataType::Struct(Fields::from(vec![
                Field::new("kind", DataType::Utf8, false),
                Field::new("os", DataType::Utf8, false),
            ])),
            false
        )
    );

    let batch = decode(
            &schema,
            r#"{"view_id": "8c3f6a2e-1b7d-4f7e-9a51-2f0c2d8e9b10", "user_id": 17, "ts": "2026-11-26T10:00:00.123456Z", "url": "https://example.com/", "referrer": null, "duration_ms": 1200, "device": {"kind": "mobile", "os": "iOS"}}
{"view_id": "00000000-0000-0000-0000-000000000000", "user_id": null, "ts": 1795687200000000, "url": "https://example.com/a", "duration_ms": 0, "device": {"kind": "desktop", "os": "Linux"}}"#,
        )
        .expect("decodes");
    let ts = batch
        .column_by_name("ts")
        .expect("ts")
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.value(0), TS_MILLIS * 1000 + 123_456);
    assert_eq!(ts.value(1), TS_MILLIS * 1000);
}
