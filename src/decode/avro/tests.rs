//! Unit tests of `decode::avro`: the Confluent wire format and Avro → Arrow decoding.

use super::*;
use crate::schema::EventSchema;
use apache_avro::types::Value;

const V1: &str = r#"{"type":"record","name":"E","fields":[
        {"name":"id","type":"long"},
        {"name":"name","type":["null","string"],"default":null},
        {"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]}}]}"#;
const V0: &str = r#"{"type":"record","name":"E","fields":[
        {"name":"id","type":"int"},
        {"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]}},
        {"name":"gone","type":"string"}]}"#;
/// V1 as a registry may hold it: the namespace only on the record.
const V1_NS: &str = r#"{"type":"record","name":"E","namespace":"n","fields":[
        {"name":"id","type":"long"},
        {"name":"name","type":["null","string"],"default":null},
        {"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]}}]}"#;

fn datum(schema: &str, value: Value) -> Vec<u8> {
    let s = apache_avro::Schema::parse_str(schema).unwrap();
    apache_avro::to_avro_datum(&s, value).unwrap()
}

fn v1(id: i64, name: Option<&str>) -> Vec<u8> {
    datum(
        V1,
        Value::Record(vec![
            ("id".into(), Value::Long(id)),
            (
                "name".into(),
                match name {
                    Some(n) => Value::Union(1, Box::new(Value::String(n.into()))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
            ("kind".into(), Value::Enum(1, "B".into())),
        ]),
    )
}

fn wire(id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn ids(d: &Decoded) -> Vec<i64> {
    let mut out = Vec::new();
    for b in &d.batches {
        let col = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        out.extend(col.values().iter().copied());
    }
    out
}

#[test]
fn raw_records_decode_and_bad_ones_are_isolated() {
    let schema = EventSchema::parse(V1).unwrap();
    let d = AvroDecoder::new(V1, schema.arrow.clone(), Framing::Raw, 1024).unwrap();
    let good = v1(1, Some("a"));
    let truncated = good[..good.len() - 2].to_vec();
    let mut trailing = v1(3, None);
    trailing.extend_from_slice(&[1, 2, 3]);
    let recs: Vec<Vec<u8>> = vec![
        good.clone(),
        truncated,
        v1(2, None),
        trailing,
        vec![],
        vec![0; 2000],
        v1(4, Some("d")),
    ];
    let refs: Vec<&[u8]> = recs.iter().map(|r| r.as_slice()).collect();
    let out = d.decode(&refs);
    assert_eq!(out.rows, vec![0, 2, 6]);
    assert_eq!(ids(&out), vec![1, 2, 4]);
    let rejected: Vec<(usize, Stage)> = out.rejected.iter().map(|r| (r.index, r.stage)).collect();
    assert_eq!(
        rejected,
        vec![
            (1, Stage::Decode),
            (3, Stage::Decode),
            (4, Stage::Read),
            (5, Stage::Read)
        ]
    );
    assert!(
        out.rejected[0].reason.contains("truncated"),
        "{:?}",
        out.rejected
    );
    assert!(
        out.rejected[1].reason.contains("trailing"),
        "{:?}",
        out.rejected
    );
    assert_eq!(out.batches[0].schema(), schema.arrow);
}

#[test]
fn confluent_records_resolve_older_writer_schemas() {
    let schema = EventSchema::parse(V1).unwrap();
    let mut d = AvroDecoder::new(V1, schema.arrow.clone(), Framing::Confluent, 1024).unwrap();
    let old = datum(
        V0,
        Value::Record(vec![
            ("id".into(), Value::Int(7)),
            ("kind".into(), Value::Enum(0, "A".into())),
            ("gone".into(), Value::String("x".into())),
        ]),
    );
    let recs: Vec<Vec<u8>> = vec![
        wire(2, &v1(1, Some("a"))),
        wire(1, &old),
        wire(2, &v1(2, None)),
        wire(9, &v1(3, None)),
        b"{\"id\":1}".to_vec(),
        vec![0, 0],
        wire(1, &old),
    ];
    let refs: Vec<&[u8]> = recs.iter().map(|r| r.as_slice()).collect();
    assert_eq!(d.unknown_ids(&refs), BTreeSet::from([1, 2, 9]));
    d.add_writer_schema(1, Ok(V0));
    d.add_writer_schema(2, Ok(V1));
    d.add_writer_schema(9, Err("schema id 9 is not in the registry".into()));
    assert!(d.unknown_ids(&refs).is_empty());
    let out = d.decode(&refs);
    assert_eq!(out.rows, vec![0, 1, 2, 6]);
    assert_eq!(ids(&out), vec![1, 7, 2, 7]);
    let reasons: Vec<&str> = out.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons[0].contains("schema id 9"), "{reasons:?}");
    assert!(reasons[1].contains("wrong magic byte 0x7b"), "{reasons:?}");
    assert!(reasons[2].contains("shorter than"), "{reasons:?}");
    for b in &out.batches {
        assert_eq!(b.schema(), schema.arrow);
    }
}

#[test]
fn inherited_and_explicit_namespaces_name_the_same_type() {
    let reader = V1_NS.replace(r#""name":"K","#, r#""name":"K","namespace":"n","#);
    let schema = EventSchema::parse(&reader).unwrap();
    let mut d = AvroDecoder::new(&reader, schema.arrow, Framing::Confluent, 1024).unwrap();
    d.add_writer_schema(3, Ok(V1_NS));
    let recs = [wire(3, &v1(5, None))];
    let refs: Vec<&[u8]> = recs.iter().map(|r| r.as_slice()).collect();
    let out = d.decode(&refs);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(ids(&out), vec![5]);
}

#[test]
fn an_unreadable_writer_schema_is_named() {
    let schema = EventSchema::parse(V1).unwrap();
    let mut d = AvroDecoder::new(V1, schema.arrow, Framing::Confluent, 1024).unwrap();
    let text = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"string"}]}"#;
    d.add_writer_schema(5, Ok(text));
    match &d.writers[&5] {
        WriterSchema::Unusable(reason) => {
            assert!(reason.contains("writer schema 5"), "{reason}")
        }
        WriterSchema::Readable(_) => panic!("a string id cannot be read as long"),
    }
}
