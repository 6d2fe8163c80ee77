//! Debezium change events in Avro (Kafka Connect's AvroConverter: the Confluent wire format,
//! writer schemas from the schema registry) → the same changes as their JSON form.
//!
//! Each event is read with its writer schema (Debezium's `Envelope` record, whose `before` and
//! `after` are the table's `Value` record) and turned into the JSON envelope the JSON path
//! reads ([`DebeziumDecoder`]): Avro records become objects, unions their branch, logical
//! times their numbers. So the images are decoded exactly as rows of a JSON table; decimals
//! must be strings or doubles (Debezium's `decimal.handling.mode = string` or `double`), not
//! Avro's bytes.
//!
//! Invariant: every record is accounted for once, as in [`DebeziumDecoder`]: a record this
//! step cannot read (no magic byte, an unknown or missing schema, a datum that does not match
//! it) is a rejection with the reason, the rest go through the JSON path with their indices
//! kept.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use apache_avro::Schema as AvroSchema;

use super::avro::confluent_schema_id;
use super::debezium::DebeziumDecoder;
use super::raw::KafkaRecord;
use super::record::{Decoded, RawRecord, Rejected};
use super::stage::Stage;

/// Decodes Avro Debezium events through their JSON form.
#[derive(Debug, Clone)]
pub struct DebeziumAvroDecoder {
    json: DebeziumDecoder,
    /// Writer schemas by registry id, or why one cannot be used.
    writers: HashMap<u32, Result<Arc<AvroSchema>, String>>,
}

/// One event in its JSON form, standing in for the record it came from.
struct Converted {
    /// The record's index in the batch.
    index: usize,
    /// The JSON envelope; `None` for a tombstone.
    json: Option<Vec<u8>>,
}

impl RawRecord for Converted {
    fn bytes(&self) -> &[u8] {
        self.json.as_deref().unwrap_or_default()
    }
    fn oversized(&self) -> Option<u64> {
        None
    }
}

impl KafkaRecord for Converted {
    fn is_tombstone(&self) -> bool {
        self.json.is_none()
    }
}

impl DebeziumAvroDecoder {
    /// A decoder whose events, once in JSON, `json` decodes.
    pub fn new(json: DebeziumDecoder) -> DebeziumAvroDecoder {
        DebeziumAvroDecoder {
            json,
            writers: HashMap::new(),
        }
    }

    /// Schema ids used by `records` that are not known yet.
    pub fn unknown_ids<R: RawRecord>(&self, records: &[R]) -> BTreeSet<u32> {
        records
            .iter()
            .filter(|r| !r.bytes().is_empty())
            .filter_map(|r| confluent_schema_id(r.bytes()).ok())
            .filter(|id| !self.writers.contains_key(id))
            .collect()
    }

    /// Records what schema id `id` stands for: its text, or why there is none.
    pub fn add_writer_schema(&mut self, id: u32, schema: Result<&str, String>) {
        let entry = schema.and_then(|text| {
            AvroSchema::parse_str(text)
                .map(Arc::new)
                .map_err(|e| format!("schema id {id} is not an Avro schema: {e}"))
        });
        self.writers.insert(id, entry);
    }

    /// Decodes `records`, isolating the ones that are not change events of the table.
    pub fn decode<R: KafkaRecord>(&self, records: &[R]) -> Decoded {
        let mut converted = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for (index, r) in records.iter().enumerate() {
            match self.to_json(r) {
                Ok(json) => converted.push(Converted { index, json }),
                Err(reason) => rejected.push(Rejected {
                    index,
                    stage: Stage::Decode,
                    reason,
                }),
            }
        }
        let mut out = self.json.decode(&converted);
        let original = |n: usize| converted[n].index;
        for i in out.rows.iter_mut() {
            *i = original(*i);
        }
        for r in out.rejected.iter_mut() {
            r.index = original(r.index);
        }
        for i in out.deletes.rows.iter_mut() {
            *i = original(*i);
        }
        for i in out.deletes.ignored.iter_mut() {
            *i = original(*i);
        }
        out.rejected.extend(rejected);
        out.rejected.sort_by_key(|r| r.index);
        out
    }

    /// The JSON envelope of `r`, `None` for a tombstone, or why it cannot be read.
    fn to_json<R: KafkaRecord>(&self, r: &R) -> Result<Option<Vec<u8>>, String> {
        if let Some(len) = r.oversized() {
            return Err(format!(
                "record of {len} bytes exceeds max_record_bytes ({})",
                self.json.max_record_bytes()
            ));
        }
        if r.is_tombstone() {
            return Ok(None);
        }
        let bytes = r.bytes();
        let id = confluent_schema_id(bytes).map_err(|e| e.to_string())?;
        let schema = match self.writers.get(&id) {
            Some(Ok(schema)) => schema,
            Some(Err(reason)) => return Err(reason.clone()),
            None => return Err(format!("schema id {id} was not looked up")),
        };
        let mut datum = &bytes[5..];
        let value = apache_avro::from_avro_datum(schema, &mut datum, None)
            .map_err(|e| format!("the record does not match schema id {id}: {e}"))?;
        if !datum.is_empty() {
            return Err(format!(
                "{} bytes follow the record's datum (schema id {id})",
                datum.len()
            ));
        }
        let json = serde_json::Value::try_from(value)
            .map_err(|e| format!("the record has no JSON form: {e}"))?;
        serde_json::to_vec(&json)
            .map(Some)
            .map_err(|e| format!("the record has no JSON form: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    const ENVELOPE: &str = r#"{"type":"record","name":"Envelope","namespace":"shop.public.customers",
      "fields":[
        {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
          {"name":"id","type":"long"},{"name":"name","type":"string"}]}],"default":null},
        {"name":"after","type":["null","Value"],"default":null},
        {"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql",
          "fields":[{"name":"ts_ms","type":"long"},{"name":"table","type":"string"}]}},
        {"name":"op","type":"string"},
        {"name":"ts_ms","type":["null","long"],"default":null}]}"#;

    struct Rec(Option<Vec<u8>>);

    impl RawRecord for Rec {
        fn bytes(&self) -> &[u8] {
            self.0.as_deref().unwrap_or_default()
        }
        fn oversized(&self) -> Option<u64> {
            None
        }
    }

    impl KafkaRecord for Rec {
        fn is_tombstone(&self) -> bool {
            self.0.is_none()
        }
    }

    fn row(id: i64, name: &str) -> Value {
        Value::Union(
            1,
            Box::new(Value::Record(vec![
                ("id".into(), Value::Long(id)),
                ("name".into(), Value::String(name.into())),
            ])),
        )
    }

    fn event(op: &str, before: Option<Value>, after: Option<Value>) -> Rec {
        let schema = AvroSchema::parse_str(ENVELOPE).unwrap();
        let null = || Value::Union(0, Box::new(Value::Null));
        let value = Value::Record(vec![
            ("before".into(), before.unwrap_or_else(null)),
            ("after".into(), after.unwrap_or_else(null)),
            (
                "source".into(),
                Value::Record(vec![
                    ("ts_ms".into(), Value::Long(1000)),
                    ("table".into(), Value::String("customers".into())),
                ]),
            ),
            ("op".into(), Value::String(op.into())),
            ("ts_ms".into(), null()),
        ]);
        let mut bytes = vec![0, 0, 0, 0, 7];
        bytes.extend(apache_avro::to_avro_datum(&schema, value).unwrap());
        Rec(Some(bytes))
    }

    #[test]
    fn avro_events_become_the_changes_their_json_form_gives() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        let json = DebeziumDecoder::new(schema, &["id".to_string()], false, 1 << 20);
        let mut decoder = DebeziumAvroDecoder::new(json);
        let records = [
            event("r", None, Some(row(1, "a"))),
            event("u", None, Some(row(1, "b"))),
            event("d", Some(row(2, "")), None),
            Rec(None),
            Rec(Some(vec![1, 2, 3])),
            Rec(Some(vec![0, 0, 0, 0, 9, 1])),
            event("c", None, Some(row(3, "c"))),
        ];
        assert_eq!(decoder.unknown_ids(&records), BTreeSet::from([7, 9]));
        decoder.add_writer_schema(7, Ok(ENVELOPE));
        decoder.add_writer_schema(9, Err("schema id 9: not found".into()));
        assert!(decoder.unknown_ids(&records).is_empty());
        let d = decoder.decode(&records);
        assert_eq!(d.rows, vec![0, 1, 6]);
        let ids: Vec<i64> = d
            .batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, vec![1, 1, 3]);
        assert_eq!(d.deletes.rows, vec![2]);
        assert_eq!(d.deletes.ignored, vec![3]);
        let reasons: Vec<(usize, &str)> = d
            .rejected
            .iter()
            .map(|r| (r.index, r.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert_eq!(reasons[0].0, 4);
        assert_eq!(reasons[1], (5, "schema id 9: not found"));
    }
}
