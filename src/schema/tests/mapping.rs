//! Unit tests of the Avro → Arrow mapping (`schema::mapping`): every type, named references,
//! and the constructs it rejects.

use super::*;

#[test]
fn primitives_map_to_non_nullable_arrow_types() {
    let schema = parse_fields(
        r#"[
                {"name": "b", "type": "boolean"},
                {"name": "i", "type": "int"},
                {"name": "l", "type": "long"},
                {"name": "f", "type": "float"},
                {"name": "d", "type": "double"},
                {"name": "s", "type": "string"},
                {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
                {"name": "bin", "type": "bytes"},
                {"name": "fix", "type": {"type": "fixed", "name": "Four", "size": 4}}
            ]"#,
    );
    let expected = [
        ("b", DataType::Boolean),
        ("i", DataType::Int32),
        ("l", DataType::Int64),
        ("f", DataType::Float32),
        ("d", DataType::Float64),
        ("s", DataType::Utf8),
        ("e", DataType::Utf8),
        ("bin", DataType::Binary),
        ("fix", DataType::FixedSizeBinary(4)),
    ];
    assert_eq!(schema.arrow.fields().len(), expected.len());
    for ((name, data_type), field) in expected.iter().zip(schema.arrow.fields()) {
        assert_eq!(field.name(), name);
        assert_eq!(field.data_type(), data_type, "field {name}");
        assert!(!field.is_nullable(), "field {name} must be non-nullable");
    }

    let batch = decode(
            &schema,
            r#"{"b": true, "i": 7, "l": 9007199254740993, "f": 1.5, "d": 2.25, "s": "x", "e": "GREEN", "bin": "deadbeef", "fix": "01020304"}
{"b": false, "i": -1, "l": -2, "f": 0, "d": 1e3, "s": "", "e": "RED", "bin": "", "fix": "ffffffff"}"#,
        )
        .expect("decodes");
    assert_eq!(batch.num_rows(), 2);
    assert!(batch.column(0).as_boolean().value(0));
    assert_eq!(batch.column(1).as_primitive::<Int32Type>().value(0), 7);
    assert_eq!(
        batch.column(2).as_primitive::<Int64Type>().value(0),
        9_007_199_254_740_993
    );
    assert_eq!(batch.column(3).as_primitive::<Float32Type>().value(0), 1.5);
    assert_eq!(
        batch.column(4).as_primitive::<Float64Type>().value(1),
        1000.0
    );
    assert_eq!(batch.column(6).as_string::<i32>().value(0), "GREEN");
    assert_eq!(
        batch.column(7).as_binary::<i32>().value(0),
        &[0xde, 0xad, 0xbe, 0xef]
    );
    assert_eq!(
        batch.column(8).as_fixed_size_binary().value(0),
        &[1, 2, 3, 4]
    );
}

#[test]
fn logical_types_map_and_decode_from_strings_and_numbers() {
    let schema = parse_fields(
        r#"[
                {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
                {"name": "day", "type": {"type": "int", "logicalType": "date"}},
                {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
                {"name": "tu", "type": {"type": "long", "logicalType": "time-micros"}},
                {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                {"name": "lts_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
                {"name": "lts_us", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
                {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
                {"name": "max128", "type": {"type": "fixed", "name": "D38", "size": 16, "logicalType": "decimal", "precision": 38, "scale": 0}},
                {"name": "big", "type": {"type": "fixed", "name": "D40", "size": 17, "logicalType": "decimal", "precision": 40, "scale": 5}}
            ]"#,
    );
    let utc = Some(Arc::from(UTC_TIME_ZONE));
    let expected = [
        ("id", DataType::Utf8),
        ("day", DataType::Date32),
        ("tm", DataType::Time32(TimeUnit::Millisecond)),
        ("tu", DataType::Time64(TimeUnit::Microsecond)),
        (
            "ts_ms",
            DataType::Timestamp(TimeUnit::Millisecond, utc.clone()),
        ),
        ("ts_us", DataType::Timestamp(TimeUnit::Microsecond, utc)),
        ("lts_ms", DataType::Timestamp(TimeUnit::Millisecond, None)),
        ("lts_us", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("amount", DataType::Decimal128(12, 2)),
        ("max128", DataType::Decimal128(38, 0)),
        ("big", DataType::Decimal256(40, 5)),
    ];
    for (name, data_type) in expected {
        assert_eq!(
            field_type(&schema, name),
            (data_type, false),
            "field {name}"
        );
    }

    // Row 0: string representations; row 1: numeric representations.
    let batch = decode(
            &schema,
            r#"{"id": "8c3f6a2e-1b7d-4f7e-9a51-2f0c2d8e9b10", "day": "2026-11-26", "tm": "12:34:56.789", "tu": "12:34:56.789012", "ts_ms": "2026-11-26T10:00:00Z", "ts_us": "2026-11-26T11:00:00+01:00", "lts_ms": "2026-11-26T10:00:00", "lts_us": "2026-11-26T10:00:00.000001", "amount": "12.34", "max128": "99999999999999999999999999999999999999", "big": "12345678901234567890123456789012345.12345"}
{"id": "00000000-0000-0000-0000-000000000000", "day": 20783, "tm": 45296789, "tu": 45296789012, "ts_ms": 1795687200000, "ts_us": 1795687200000000, "lts_ms": 1795687200000, "lts_us": 1795687200000001, "amount": 12.34, "max128": 1, "big": 1.5}"#,
        )
        .expect("decodes");
    let col = |name: &str| batch.column_by_name(name).expect("column");

    let day = col("day").as_primitive::<Date32Type>();
    assert_eq!((day.value(0), day.value(1)), (DATE_DAYS, DATE_DAYS));
    let tm = col("tm").as_primitive::<Time32MillisecondType>();
    assert_eq!((tm.value(0), tm.value(1)), (45_296_789, 45_296_789));
    let tu = col("tu").as_primitive::<Time64MicrosecondType>();
    assert_eq!((tu.value(0), tu.value(1)), (45_296_789_012, 45_296_789_012));
    let ts_ms = col("ts_ms").as_primitive::<TimestampMillisecondType>();
    assert_eq!((ts_ms.value(0), ts_ms.value(1)), (TS_MILLIS, TS_MILLIS));
    let ts_us = col("ts_us").as_primitive::<TimestampMicrosecondType>();
    assert_eq!(
        (ts_us.value(0), ts_us.value(1)),
        (TS_MILLIS * 1000, TS_MILLIS * 1000)
    );
    let lts_ms = col("lts_ms").as_primitive::<TimestampMillisecondType>();
    assert_eq!((lts_ms.value(0), lts_ms.value(1)), (TS_MILLIS, TS_MILLIS));
    let lts_us = col("lts_us").as_primitive::<TimestampMicrosecondType>();
    assert_eq!(
        (lts_us.value(0), lts_us.value(1)),
        (TS_MILLIS * 1000 + 1, TS_MILLIS * 1000 + 1)
    );
    let amount = col("amount").as_primitive::<Decimal128Type>();
    assert_eq!((amount.value(0), amount.value(1)), (1234, 1234));
    let max128 = col("max128").as_primitive::<Decimal128Type>();
    assert_eq!(max128.value(0), 10_i128.pow(38) - 1);
    assert_eq!(max128.value(1), 1);
    let big = col("big").as_primitive::<Decimal256Type>();
    assert_eq!(
        big.value_as_string(0),
        "12345678901234567890123456789012345.12345"
    );
    assert_eq!(big.value_as_string(1), "1.50000");
}

#[test]
fn nested_record_array_map_and_nullable_unions() {
    let schema = parse_fields(
        r#"[
                {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
                    {"name": "name", "type": "string"},
                    {"name": "address", "type": ["null", {"type": "record", "name": "Address", "fields": [
                        {"name": "zip", "type": ["string", "null"]}
                    ]}]}
                ]}},
                {"name": "scores", "type": {"type": "array", "items": "int"}},
                {"name": "maybe_scores", "type": {"type": "array", "items": ["null", "double"]}},
                {"name": "tags", "type": {"type": "map", "values": "string"}},
                {"name": "opt_tags", "type": ["null", {"type": "map", "values": ["null", "long"]}]},
                {"name": "opt_long", "type": ["null", "long"]},
                {"name": "long_opt", "type": ["long", "null"]}
            ]"#,
    );

    let address = DataType::Struct(Fields::from(vec![Field::new("zip", DataType::Utf8, true)]));
    let customer = DataType::Struct(Fields::from(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("address", address, true),
    ]));
    assert_eq!(field_type(&schema, "customer"), (customer, false));
    assert_eq!(
        field_type(&schema, "scores"),
        (
            DataType::List(Arc::new(Field::new("item", DataType::Int32, false))),
            false
        )
    );
    assert_eq!(
        field_type(&schema, "maybe_scores"),
        (
            DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
            false
        )
    );
    let map_of = |value: DataType, nullable: bool| {
        DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", value, nullable),
                ])),
                false,
            )),
            false,
        )
    };
    assert_eq!(
        field_type(&schema, "tags"),
        (map_of(DataType::Utf8, false), false)
    );
    assert_eq!(
        field_type(&schema, "opt_tags"),
        (map_of(DataType::Int64, true), true)
    );
    assert_eq!(field_type(&schema, "opt_long"), (DataType::Int64, true));
    assert_eq!(field_type(&schema, "long_opt"), (DataType::Int64, true));

    let batch = decode(
            &schema,
            r#"{"customer": {"name": "Ann", "address": {"zip": "10115"}}, "scores": [1, 2, 3], "maybe_scores": [1.5, null], "tags": {"a": "x", "b": "y"}, "opt_tags": {"n": 1, "m": null}, "opt_long": 5, "long_opt": null}
{"customer": {"name": "Bob", "address": null}, "scores": [], "maybe_scores": [], "tags": {}, "opt_tags": null, "long_opt": 6}
{"customer": {"name": "Cy", "address": {}}, "scores": [4], "maybe_scores": [null], "tags": {"k": "v"}}"#,
        )
        .expect("decodes");
    assert_eq!(batch.num_rows(), 3);

    let customer = batch.column(0).as_struct();
    let address = customer.column(1).as_struct();
    assert!(address.is_valid(0) && address.is_null(1) && address.is_valid(2));
    assert_eq!(address.column(0).as_string::<i32>().value(0), "10115");
    assert!(address.column(0).is_null(2));

    let scores = batch.column(1).as_list::<i32>();
    assert_eq!(scores.value_length(0), 3);
    assert_eq!(scores.value_length(1), 0);
    let maybe = batch.column(2).as_list::<i32>();
    assert!(maybe.value(0).is_null(1));

    let tags = batch.column(3).as_map();
    assert_eq!(tags.value_length(0), 2);
    assert_eq!(tags.keys().as_string::<i32>().value(0), "a");
    assert_eq!(tags.values().as_string::<i32>().value(1), "y");
    let opt_tags = batch.column(4).as_map();
    assert!(opt_tags.is_valid(0) && opt_tags.is_null(1) && opt_tags.is_null(2));
    assert!(opt_tags.values().is_null(1));

    let opt_long = batch.column(5).as_primitive::<Int64Type>();
    assert_eq!(opt_long.value(0), 5);
    assert!(opt_long.is_null(1) && opt_long.is_null(2));
    let long_opt = batch.column(6).as_primitive::<Int64Type>();
    assert!(long_opt.is_null(0));
    assert_eq!(long_opt.value(1), 6);
}

#[test]
fn unsupported_union_names_the_field_path() {
    let err = EventSchema::parse(&record(
        r#"[
                {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
                    {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
                        {"name": "zip", "type": ["int", "string"]}
                    ]}}
                ]}}
            ]"#,
    ))
    .expect_err("union rejected");
    let message = err.to_string();
    let (path, reason) = unsupported_path(err);
    assert_eq!(path, "customer.address.zip");
    assert!(reason.contains(r#"["int", "string"]"#), "{reason}");
    assert!(message.starts_with("unsupported Avro type at `customer.address.zip`: union"));

    let err = EventSchema::parse(&record(
        r#"[{"name": "v", "type": ["null", "int", "string"]}]"#,
    ))
    .expect_err("three-way union rejected");
    let (path, reason) = unsupported_path(err);
    assert_eq!(path, "v");
    assert!(reason.contains(r#"["null", "int", "string"]"#), "{reason}");

    let err = EventSchema::parse(&record(
            r#"[{"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
                {"name": "price", "type": ["long", "double"]}
            ]}}}]"#,
        ))
        .expect_err("union in array item rejected");
    assert_eq!(unsupported_path(err).0, "items[].price");

    let err = EventSchema::parse(&record(
        r#"[{"name": "attrs", "type": {"type": "map", "values": ["string", "long"]}}]"#,
    ))
    .expect_err("union in map value rejected");
    assert_eq!(unsupported_path(err).0, "attrs{}");

    let err = EventSchema::parse(&record(r#"[{"name": "n", "type": ["null"]}]"#))
        .expect_err("null-only union rejected");
    assert_eq!(unsupported_path(err).0, "n");
}

#[test]
fn other_unsupported_types() {
    for (field_type, what) in [
        (r#""null""#, "null"),
        (
            r#"{"type": "bytes", "logicalType": "big-decimal"}"#,
            "big-decimal",
        ),
        (
            r#"{"type": "fixed", "name": "Dur", "size": 12, "logicalType": "duration"}"#,
            "duration",
        ),
        (
            r#"{"type": "bytes", "logicalType": "decimal", "precision": 77, "scale": 1}"#,
            "77",
        ),
    ] {
        let err = EventSchema::parse(&record(&format!(
            r#"[{{"name": "x", "type": {field_type}}}]"#
        )))
        .expect_err(what);
        let (path, reason) = unsupported_path(err);
        assert_eq!(path, "x");
        assert!(reason.contains(what), "{what}: {reason}");
    }
}

#[test]
fn top_level_must_be_a_record() {
    for text in [r#""string""#, r#"{"type": "array", "items": "int"}"#] {
        let err = EventSchema::parse(text).expect_err("not a record");
        let (path, reason) = unsupported_path(err);
        assert_eq!(path, ROOT_PATH);
        assert!(reason.contains("must be a record"), "{reason}");
    }
}

#[test]
fn invalid_json_or_avro_is_invalid() {
    for text in [
        "",
        "{not json",
        r#"{"type": "record", "name": "R"}"#,
        r#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "strnig"}]}"#,
        r#"{"type": "enum", "name": "E", "symbols": ["A", "A"]}"#,
    ] {
        match EventSchema::parse(text) {
            Err(err @ SchemaError::Invalid(_)) => {
                assert!(
                    err.to_string().starts_with("invalid Avro schema: "),
                    "{err}"
                );
            }
            other => panic!("{text:?}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn references_to_named_types_are_resolved() {
    let schema = EventSchema::parse(
            r#"{"type": "record", "name": "Event", "namespace": "a.b", "fields": [
                {"name": "billing", "type": {"type": "record", "name": "Address", "fields": [
                    {"name": "city", "type": "string"},
                    {"name": "kind", "type": {"type": "enum", "name": "Kind", "namespace": "other", "symbols": ["X", "Y"]}},
                    {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 2}},
                    {"name": "price", "type": {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 10, "scale": 2}}
                ]}},
                {"name": "shipping", "type": ["null", "Address"]},
                {"name": "previous", "type": {"type": "array", "items": "a.b.Address"}},
                {"name": "kind", "type": "other.Kind"},
                {"name": "hash", "type": "Hash"},
                {"name": "price", "type": "Money"}
            ]}"#,
        )
        .expect("parses");
    let (billing, nullable) = field_type(&schema, "billing");
    assert!(!nullable);
    assert_eq!(field_type(&schema, "shipping"), (billing.clone(), true));
    assert_eq!(
        field_type(&schema, "previous"),
        (
            DataType::List(Arc::new(Field::new("item", billing, false))),
            false
        )
    );
    assert_eq!(field_type(&schema, "kind"), (DataType::Utf8, false));
    assert_eq!(
        field_type(&schema, "hash"),
        (DataType::FixedSizeBinary(2), false)
    );
    assert_eq!(
        field_type(&schema, "price"),
        (DataType::Decimal128(10, 2), false)
    );

    let address = r#"{"city": "Oslo", "kind": "X", "hash": "abcd", "price": "1.25"}"#;
    let batch = decode(
            &schema,
            &format!(
                r#"{{"billing": {address}, "shipping": null, "previous": [{address}], "kind": "Y", "hash": "0102", "price": 3}}"#
            ),
        )
        .expect("decodes");
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(
        batch
            .column_by_name("price")
            .expect("price")
            .as_primitive::<Decimal128Type>()
            .value(0),
        300
    );
}

#[test]
fn recursive_types_are_unsupported() {
    let err = EventSchema::parse(
        r#"{"type": "record", "name": "Node", "fields": [
                {"name": "value", "type": "long"},
                {"name": "next", "type": ["null", "Node"]}
            ]}"#,
    )
    .expect_err("recursive");
    let (path, reason) = unsupported_path(err);
    assert_eq!(path, "next");
    assert!(reason.contains("recursive type `Node`"), "{reason}");

    let err = EventSchema::parse(
            r#"{"type": "record", "name": "Event", "fields": [
                {"name": "tree", "type": {"type": "record", "name": "Tree", "namespace": "t", "fields": [
                    {"name": "children", "type": {"type": "array", "items": "Tree"}}
                ]}}
            ]}"#,
        )
        .expect_err("indirectly recursive");
    let (path, reason) = unsupported_path(err);
    assert_eq!(path, "tree.children[]");
    assert!(reason.contains("recursive type `t.Tree`"), "{reason}");
}
