//! The schemas the fuzz targets decode into, with their Arrow mapping as kappa-lake's
//! `schema.rs` derives it (written out here: that module is not compiled into the fuzz crate).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// The version's schema.
pub const AVSC: &str = r#"{"type":"record","name":"E","namespace":"f","fields":[
  {"name":"id","type":"long"},
  {"name":"name","type":["null","string"],"default":null},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"status","type":{"type":"enum","name":"S","symbols":["A","B","C"]},"default":"A"},
  {"name":"amount","type":"double","default":0.0},
  {"name":"tags","type":{"type":"array","items":"string"},"default":[]},
  {"name":"attrs","type":{"type":"map","values":"long"},"default":{}},
  {"name":"raw","type":["null","bytes"],"default":null}
]}"#;

/// An older writer schema the version's schema can read.
pub const OLD_AVSC: &str = r#"{"type":"record","name":"E","namespace":"f","fields":[
  {"name":"id","type":"int"},
  {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"name","type":"string"},
  {"name":"legacy","type":"string"}
]}"#;

/// [`AVSC`] in Arrow.
pub fn arrow() -> SchemaRef {
    let entries = Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Int64, false),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
            false,
        ),
        Field::new("status", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
            false,
        ),
        Field::new(
            "attrs",
            DataType::Map(
                Arc::new(Field::new("entries", DataType::Struct(entries), false)),
                false,
            ),
            false,
        ),
        Field::new("raw", DataType::Binary, true),
    ]))
}

/// A valid datum of [`AVSC`].
pub fn datum(id: i64) -> Vec<u8> {
    use apache_avro::types::Value;
    let schema = apache_avro::Schema::parse_str(AVSC).expect("AVSC parses");
    let value = Value::Record(vec![
        ("id".into(), Value::Long(id)),
        (
            "name".into(),
            Value::Union(1, Box::new(Value::String("n".into()))),
        ),
        ("ts".into(), Value::TimestampMillis(1_795_651_200_000)),
        ("status".into(), Value::Enum(1, "B".into())),
        ("amount".into(), Value::Double(1.5)),
        ("tags".into(), Value::Array(vec![Value::String("t".into())])),
        (
            "attrs".into(),
            Value::Map([("k".to_string(), Value::Long(1))].into_iter().collect()),
        ),
        ("raw".into(), Value::Union(0, Box::new(Value::Null))),
    ]);
    apache_avro::to_avro_datum(&schema, value).expect("datum encodes")
}

/// A valid datum of [`OLD_AVSC`].
pub fn old_datum(id: i32) -> Vec<u8> {
    use apache_avro::types::Value;
    let schema = apache_avro::Schema::parse_str(OLD_AVSC).expect("OLD_AVSC parses");
    let value = Value::Record(vec![
        ("id".into(), Value::Int(id)),
        ("ts".into(), Value::TimestampMillis(1_795_651_200_000)),
        ("name".into(), Value::String("n".into())),
        ("legacy".into(), Value::String("l".into())),
    ]);
    apache_avro::to_avro_datum(&schema, value).expect("datum encodes")
}

/// The JSON target's schema.
pub fn json_arrow() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
            false,
        ),
        Field::new("amount", DataType::Float64, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new(
            "addr",
            DataType::Struct(Fields::from(vec![Field::new("zip", DataType::Utf8, true)])),
            true,
        ),
    ]))
}

/// The shipped `schemas/orders.avsc` in Arrow: decimals, a list of structs, a nullable struct,
/// a map.
pub fn orders() -> SchemaRef {
    let item = Fields::from(vec![
        Field::new("sku", DataType::Utf8, false),
        Field::new("quantity", DataType::Int32, false),
        Field::new("unit_price", DataType::Float64, false),
    ]);
    let address = Fields::from(vec![
        Field::new("country", DataType::Utf8, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("zip", DataType::Utf8, true),
    ]);
    let tags = Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
            false,
        ),
        Field::new("status", DataType::Utf8, false),
        Field::new("amount", DataType::Decimal128(12, 2), false),
        Field::new("currency", DataType::Utf8, false),
        Field::new(
            "items",
            DataType::List(Arc::new(Field::new("item", DataType::Struct(item), false))),
            false,
        ),
        Field::new("shipping", DataType::Struct(address), true),
        Field::new("coupon", DataType::Utf8, true),
        Field::new(
            "tags",
            DataType::Map(
                Arc::new(Field::new("entries", DataType::Struct(tags), false)),
                false,
            ),
            false,
        ),
    ]))
}

/// The every-type schema of the generator.
pub use crate::json_gen::every_type;
