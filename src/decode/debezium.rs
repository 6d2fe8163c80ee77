//! Debezium change events → the changes of an upsert table.
//!
//! A record is one change event as Kafka Connect's JsonConverter writes it, bare or inside
//! `{"schema": …, "payload": …}`: `{"op", "before", "after", "source", "ts_ms", "transaction"}`.
//! - `c` (create), `r` (a snapshot read) and `u` (update) set the row of their key to `after`;
//!   an update whose `before` image holds a key also deletes that key first, so an update of
//!   the primary key moves the row;
//! - `d` (delete) removes the row of `before`'s key (with PostgreSQL's default replica
//!   identity `before` holds only the key columns, the others null);
//! - a tombstone (a null value, which follows a delete so that log compaction may drop the
//!   key) changes nothing, and so does a JSON `null`.
//!
//! `after` images are decoded by the table's own JSON decoder, and `before` keys by one for
//! the key columns alone: the same types, nulls and reasons as a table of plain rows.
//!
//! Invariant: every record is accounted for once (see [`Decoded`]): a row, a delete (a key
//! change is both), an ignored record, or a rejection whose reason says what is wrong.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::fast_json::member_spans;
use super::json::JsonDecoder;
use super::raw::KafkaRecord;
use super::record::{Decoded, Rejected};
use super::stage::Stage;
use crate::domain::CHANGELOG_FIELDS;

/// Decodes Debezium change events into after-image rows and deleted keys, or for a
/// changelog table into one row per event.
#[derive(Debug, Clone)]
pub struct DebeziumDecoder {
    rows: JsonDecoder,
    keys: JsonDecoder,
    key_schema: SchemaRef,
    /// A changelog's rows: the image's fields, then [`CHANGELOG_FIELDS`].
    changelog: Option<SchemaRef>,
    max_record_bytes: usize,
}

/// What one event asks for.
enum Change<'a> {
    /// Set the row of `after`'s key; first delete `before`'s key when there is one.
    Upsert {
        after: Cow<'a, [u8]>,
        before: Option<Cow<'a, [u8]>>,
    },
    /// Delete the row of `before`'s key.
    Delete { before: Cow<'a, [u8]> },
    /// Nothing (a tombstone).
    Nothing,
}

impl DebeziumDecoder {
    /// A decoder of events whose rows have `schema`, keyed by the fields named `key` (checked
    /// to be fields of `schema` when the config was loaded). With `changelog`, `schema` ends
    /// with [`CHANGELOG_FIELDS`] and every event is a row.
    pub fn new(
        schema: SchemaRef,
        key: &[String],
        changelog: bool,
        max_record_bytes: usize,
    ) -> DebeziumDecoder {
        let (schema, changelog) = if changelog {
            let image: Vec<Field> = schema
                .fields()
                .iter()
                .filter(|f| !CHANGELOG_FIELDS.iter().any(|(n, _)| n == f.name()))
                .map(|f| f.as_ref().clone())
                .collect();
            (Arc::new(Schema::new(image)), Some(schema))
        } else {
            (schema, None)
        };
        let key_fields: Vec<Field> = key
            .iter()
            .filter_map(|k| schema.field_with_name(k).ok())
            .map(|f| f.clone().with_nullable(true))
            .collect();
        let key_schema = Arc::new(Schema::new(key_fields));
        DebeziumDecoder {
            rows: JsonDecoder::new(schema, max_record_bytes),
            keys: JsonDecoder::new(key_schema.clone(), max_record_bytes),
            key_schema,
            changelog,
            max_record_bytes,
        }
    }

    /// The largest record it decodes.
    pub fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    /// The schema of the deleted keys ([`super::Deletes::keys`]).
    pub fn key_schema(&self) -> &SchemaRef {
        &self.key_schema
    }

    /// Decodes `records`, isolating the ones that are not change events of the table.
    pub fn decode<R: KafkaRecord>(&self, records: &[R]) -> Decoded {
        if let Some(schema) = &self.changelog {
            return self.decode_changelog(records, schema);
        }
        let mut out = Decoded::default();
        let mut afters: Vec<(usize, Cow<'_, [u8]>)> = Vec::new();
        let mut befores: Vec<(usize, Cow<'_, [u8]>, bool)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let change = self
                .event_in(r)
                .and_then(|e| e.map_or(Ok(Change::Nothing), change));
            match change {
                Ok(Change::Upsert { after, before }) => {
                    if let Some(before) = before {
                        befores.push((i, before, false));
                    }
                    afters.push((i, after));
                }
                Ok(Change::Delete { before }) => befores.push((i, before, true)),
                Ok(Change::Nothing) => out.deletes.ignored.push(i),
                Err(reason) => out.rejected.push(Rejected {
                    index: i,
                    stage: Stage::Decode,
                    reason,
                }),
            }
        }
        self.decode_keys(&befores, &mut out);
        let images: Vec<&[u8]> = afters.iter().map(|(_, b)| b.as_ref()).collect();
        let rows = self.rows.decode(&images);
        out.batches = rows.batches;
        out.rows = rows.rows.iter().map(|&n| afters[n].0).collect();
        let mut deleted_too: Vec<usize> = Vec::new();
        for r in rows.rejected {
            let index = afters[r.index].0;
            deleted_too.push(index);
            out.rejected.push(Rejected {
                index,
                stage: r.stage,
                reason: format!("after: {}", r.reason),
            });
        }
        if !deleted_too.is_empty() {
            // A rejected update deletes nothing either: the record is only a rejection.
            self.drop_deletes_of(&deleted_too, &mut out);
        }
        out.rejected.sort_by_key(|r| r.index);
        out.deletes.ignored.sort_unstable();
        out
    }

    /// The change event in `r`; `None` for a tombstone or a JSON `null`.
    fn event_in<'r, R: KafkaRecord>(&self, r: &'r R) -> Result<Option<Event<'r>>, String> {
        if let Some(len) = r.oversized() {
            return Err(format!(
                "record of {len} bytes exceeds max_record_bytes ({})",
                self.max_record_bytes
            ));
        }
        if r.is_tombstone() {
            return Ok(None);
        }
        event_of(r.bytes())
    }

    /// A changelog's rows: each event's image with its `op` and source time, in `schema`.
    fn decode_changelog<R: KafkaRecord>(&self, records: &[R], schema: &SchemaRef) -> Decoded {
        let mut out = Decoded::default();
        let mut images: Vec<(usize, Cow<'_, [u8]>)> = Vec::new();
        let mut ops: Vec<(String, Option<i64>)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let entry = self
                .event_in(r)
                .and_then(|e| e.map(changelog_entry).transpose());
            match entry {
                Ok(Some(entry)) => {
                    images.push((i, entry.image));
                    ops.push((entry.op, entry.source_ts));
                }
                Ok(None) => out.deletes.ignored.push(i),
                Err(reason) => out.rejected.push(Rejected {
                    index: i,
                    stage: Stage::Decode,
                    reason,
                }),
            }
        }
        let bytes: Vec<&[u8]> = images.iter().map(|(_, b)| b.as_ref()).collect();
        let rows = self.rows.decode(&bytes);
        let mut decoded = rows.rows.iter();
        for batch in rows.batches {
            // The batches hold exactly the decoded rows, in order.
            let of_batch: Vec<usize> = (&mut decoded).take(batch.num_rows()).copied().collect();
            match with_changelog_columns(&batch, of_batch.iter().map(|&n| &ops[n]), schema) {
                Ok(batch) => {
                    out.rows.extend(of_batch.iter().map(|&n| images[n].0));
                    out.batches.push(batch);
                }
                Err(e) => out.rejected.extend(of_batch.iter().map(|&n| Rejected {
                    index: images[n].0,
                    stage: Stage::Decode,
                    reason: format!("the changelog columns: {e}"),
                })),
            }
        }
        for r in rows.rejected {
            let (index, op) = (images[r.index].0, &ops[r.index].0);
            let image = if op == "d" { "before" } else { "after" };
            out.rejected.push(Rejected {
                index,
                stage: r.stage,
                reason: format!("{image}: {}", r.reason),
            });
        }
        out.rejected.sort_by_key(|r| r.index);
        out
    }

    /// Decodes the `before` keys; a delete whose key is unusable is rejected, an update's
    /// unusable `before` is only not a delete (with the default replica identity an update
    /// has no `before`; with a full one it has every column).
    fn decode_keys(&self, befores: &[(usize, Cow<'_, [u8]>, bool)], out: &mut Decoded) {
        if befores.is_empty() {
            return;
        }
        let images: Vec<&[u8]> = befores.iter().map(|(_, b, _)| b.as_ref()).collect();
        let keys = self.keys.decode(&images);
        for r in keys.rejected {
            let (index, _, is_delete) = befores[r.index];
            if is_delete {
                out.rejected.push(Rejected {
                    index,
                    stage: r.stage,
                    reason: format!("before: {}", r.reason),
                });
            }
        }
        let mut decoded = keys.rows.iter();
        for batch in keys.batches {
            let mut keep = Vec::with_capacity(batch.num_rows());
            // The batches hold exactly the decoded rows, in order.
            for (row, &n) in (0..batch.num_rows()).zip(&mut decoded) {
                let (index, _, is_delete) = befores[n];
                let null = batch.columns().iter().find(|c| c.is_null(row));
                match null {
                    None => {
                        out.deletes.rows.push(index);
                        keep.push(row as u32);
                    }
                    Some(_) if is_delete => out.rejected.push(Rejected {
                        index,
                        stage: Stage::Decode,
                        reason: format!(
                            "before: the key ({}) has a null column; a delete needs the whole key",
                            self.key_names()
                        ),
                    }),
                    Some(_) => {}
                }
            }
            if !keep.is_empty() {
                out.deletes.keys.push(take_rows(&batch, &keep));
            }
        }
    }

    /// Removes the deletes of the records in `indices` (sorted).
    fn drop_deletes_of(&self, indices: &[usize], out: &mut Decoded) {
        if out.deletes.rows.is_empty() {
            return;
        }
        let keys = arrow::compute::concat_batches(&self.key_schema, &out.deletes.keys)
            .unwrap_or_else(|_| RecordBatch::new_empty(self.key_schema.clone()));
        let mut rows = Vec::new();
        let mut keep = Vec::new();
        for (n, &index) in out.deletes.rows.iter().enumerate() {
            if indices.binary_search(&index).is_err() {
                rows.push(index);
                keep.push(n as u32);
            }
        }
        out.deletes.rows = rows;
        out.deletes.keys = if keep.is_empty() {
            Vec::new()
        } else {
            vec![take_rows(&keys, &keep)]
        };
    }

    fn key_names(&self) -> String {
        let names: Vec<&str> = self
            .key_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        names.join(", ")
    }
}

/// `batch` (an image's rows) with the `_op` and `_source_ts` of each row appended, as
/// `schema` (the changelog's) has them.
fn with_changelog_columns<'a>(
    batch: &RecordBatch,
    ops: impl Iterator<Item = &'a (String, Option<i64>)>,
    schema: &SchemaRef,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let (ops, times): (Vec<&str>, Vec<Option<i64>>) =
        ops.map(|(op, ts)| (op.as_str(), *ts)).unzip();
    let mut columns = batch.columns().to_vec();
    let added: [ArrayRef; 2] = [
        Arc::new(StringArray::from(ops)),
        Arc::new(TimestampMillisecondArray::from(times)),
    ];
    for (array, (name, _)) in added.into_iter().zip(CHANGELOG_FIELDS) {
        let field = schema.field_with_name(name)?;
        columns.push(arrow::compute::cast(&array, field.data_type())?);
    }
    RecordBatch::try_new(schema.clone(), columns)
}

/// The rows `rows` of `batch`.
fn take_rows(batch: &RecordBatch, rows: &[u32]) -> RecordBatch {
    let indices = arrow::array::UInt32Array::from(rows.to_vec());
    arrow::compute::take_record_batch(batch, &indices)
        .unwrap_or_else(|_| RecordBatch::new_empty(batch.schema()))
}

/// The members of an event this decoder reads.
const MEMBERS: [&str; 6] = ["payload", "schema", "op", "before", "after", "source"];

/// The members of one change event that matter here (null images are `None`).
struct Event<'a> {
    op: String,
    before: Option<Cow<'a, [u8]>>,
    after: Option<Cow<'a, [u8]>>,
    source: Option<Cow<'a, [u8]>>,
}

/// The event in `bytes`; `None` for a JSON `null` (or a null payload), or why it is not a
/// change event.
fn event_of(bytes: &[u8]) -> Result<Option<Event<'_>>, String> {
    let text = bytes.trim_ascii();
    if text == b"null" {
        return Ok(None);
    }
    match member_spans(text, MEMBERS) {
        Some(spans) => event_of_spans(text, &spans),
        // Not in the strict forms the span reader takes (escaped keys, say): parse it whole.
        None => event_of_value(text),
    }
}

fn event_of_spans<'a>(
    text: &'a [u8],
    spans: &[Option<Range<usize>>; 6],
) -> Result<Option<Event<'a>>, String> {
    let get = |n: usize| spans[n].clone().map(|r| &text[r]);
    if get(2).is_none()
        && let Some(payload) = get(0)
    {
        // Kafka Connect's wrapper: the event is the payload.
        if payload == b"null" {
            return Ok(None);
        }
        return match member_spans(payload, MEMBERS) {
            Some(inner) => event_of_spans(payload, &inner),
            None => event_of_value(payload),
        };
    }
    let op = match get(2) {
        Some(op) => {
            serde_json::from_slice::<String>(op).map_err(|_| "`op` is not a string".to_string())?
        }
        None => return Err(not_an_event("it has no `op`")),
    };
    let member = |n: usize| get(n).filter(|v| *v != b"null").map(Cow::Borrowed);
    Ok(Some(Event {
        op,
        before: member(3),
        after: member(4),
        source: member(5),
    }))
}

fn event_of_value(text: &[u8]) -> Result<Option<Event<'static>>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| not_an_event(&format!("it is not JSON ({e})")))?;
    let serde_json::Value::Object(mut event) = value else {
        return Err(not_an_event("it is not a JSON object"));
    };
    if !event.contains_key("op")
        && let Some(payload) = event.remove("payload")
    {
        match payload {
            serde_json::Value::Null => return Ok(None),
            serde_json::Value::Object(inner) => event = inner,
            _ => return Err(not_an_event("`payload` is not an object")),
        }
    }
    let op = match event.get("op") {
        Some(serde_json::Value::String(op)) => op.clone(),
        Some(_) => return Err("`op` is not a string".to_string()),
        None => return Err(not_an_event("it has no `op`")),
    };
    let member = |name: &str| {
        event
            .get(name)
            .filter(|v| !v.is_null())
            .map(|v| Cow::Owned(v.to_string().into_bytes()))
    };
    Ok(Some(Event {
        op,
        before: member("before"),
        after: member("after"),
        source: member("source"),
    }))
}

/// The change `event` asks for.
fn change(event: Event<'_>) -> Result<Change<'_>, String> {
    let Event {
        op, before, after, ..
    } = event;
    check_op(&op, after.is_some(), before.is_some())?;
    Ok(match (op.as_str(), after, before) {
        ("d", _, Some(before)) => Change::Delete { before },
        (op, Some(after), before) => Change::Upsert {
            after,
            before: before.filter(|_| op == "u"),
        },
        // Unreachable: `check_op` found the image the op needs.
        _ => Change::Nothing,
    })
}

/// One row of a changelog table, before its image is decoded.
struct ChangelogEntry<'a> {
    /// `after`, or `before` for a delete.
    image: Cow<'a, [u8]>,
    op: String,
    /// `source.ts_ms`, when the source block has one.
    source_ts: Option<i64>,
}

/// The changelog row of `event`.
fn changelog_entry(event: Event<'_>) -> Result<ChangelogEntry<'_>, String> {
    check_op(&event.op, event.after.is_some(), event.before.is_some())?;
    let source_ts = event.source.as_deref().and_then(source_ts_of);
    let image = if event.op == "d" {
        event.before
    } else {
        event.after
    };
    match image {
        Some(image) => Ok(ChangelogEntry {
            image,
            op: event.op,
            source_ts,
        }),
        // Unreachable: `check_op` found the image the op needs.
        None => Err(format!("a `{}` event has no image", event.op)),
    }
}

/// `ts_ms` of an event's `source` block: read in place by the span reader (no value tree
/// per event), by serde_json when the block is in a form the span reader does not take.
fn source_ts_of(source: &[u8]) -> Option<i64> {
    match member_spans(source, ["ts_ms"]) {
        Some([span]) => serde_json::from_slice(&source[span?]).ok(),
        None => serde_json::from_slice::<serde_json::Value>(source)
            .ok()?
            .get("ts_ms")?
            .as_i64(),
    }
}

/// Whether an event of `op` has the image it needs.
fn check_op(op: &str, has_after: bool, has_before: bool) -> Result<(), String> {
    match op {
        "c" | "r" | "u" if has_after => Ok(()),
        "c" | "r" | "u" => Err(format!("a `{op}` event needs an `after` image")),
        "d" if has_before => Ok(()),
        "d" => Err(
            "a `d` event needs a `before` image with the key (PostgreSQL: the default replica identity gives it)"
                .to_string(),
        ),
        "t" => Err("a truncate event is not applied (truncate the table's state by a rebuild)".to_string()),
        other => Err(format!(
            "unknown `op` `{}`: a Debezium change is c, u, d or r",
            other.escape_debug()
        )),
    }
}

fn not_an_event(why: &str) -> String {
    format!("not a Debezium change event: {why}")
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Int64Type};

    use super::*;
    use crate::decode::raw::KafkaRecord;
    use crate::decode::record::RawRecord;

    /// A record's value; `None` is a tombstone.
    struct Rec(Option<&'static str>);

    impl RawRecord for Rec {
        fn bytes(&self) -> &[u8] {
            self.0.unwrap_or("").as_bytes()
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

    fn decoder() -> DebeziumDecoder {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("counter", DataType::Int64, true),
        ]));
        DebeziumDecoder::new(schema, &["id".to_string()], false, 1 << 20)
    }

    fn ids(batches: &[RecordBatch], column: &str) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name(column).expect("column");
                let c = c.as_primitive::<Int64Type>();
                (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_op_wrapped_or_bare_becomes_its_change() {
        let records = [
            Rec(Some(
                r#"{"op":"r","before":null,"after":{"id":1,"name":"a","counter":0},"source":{"snapshot":"true"}}"#,
            )),
            Rec(Some(
                r#"{"schema":{"type":"struct","fields":[]},"payload":{"op":"c","before":null,"after":{"id":2,"name":"b","counter":0}}}"#,
            )),
            Rec(Some(
                r#"{"op":"u","before":null,"after":{"id":2,"name":"b2","counter":1}}"#,
            )),
            Rec(Some(
                r#"{"op":"d","before":{"id":1,"name":null,"counter":null},"after":null}"#,
            )),
            Rec(None),
            Rec(Some(
                r#"{"op":"u","before":{"id":2,"name":"b2","counter":1},"after":{"id":7,"name":"b2","counter":2}}"#,
            )),
            // An escaped key name leaves the span reader: the full parser gives the same.
            Rec(Some(
                r#"{"op":"c","af\u0074er":{"id":3,"name":"c"},"before":null}"#,
            )),
            Rec(Some("null")),
        ];
        let d = decoder().decode(&records);
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        assert_eq!(d.rows, vec![0, 1, 2, 5, 6]);
        assert_eq!(ids(&d.batches, "id"), vec![1, 2, 2, 7, 3]);
        assert_eq!(d.deletes.rows, vec![3, 5]);
        assert_eq!(ids(&d.deletes.keys, "id"), vec![1, 2]);
        assert_eq!(d.deletes.ignored, vec![4, 7]);
    }

    #[test]
    fn malformed_events_are_rejected_with_the_reason() {
        let records = [
            Rec(Some(r#"{"op":"c","after":{"id":"x","name":"a"}}"#)),
            Rec(Some(r#"{"after":{"id":1,"name":"a"}}"#)),
            Rec(Some(r#"{"op":"d","before":null}"#)),
            Rec(Some(r#"{"op":"d","before":{"name":"a"}}"#)),
            Rec(Some(r#"{"op":"x","after":{"id":1,"name":"a"}}"#)),
            Rec(Some(r#"{"op":"c","after":{"id":1,"#)),
            Rec(Some(r#"[1,2]"#)),
            Rec(Some(
                r#"{"op":"u","before":{"id":9,"name":"a"},"after":{"id":10}}"#,
            )),
            Rec(Some(r#"{"op":"c","after":{"id":4,"name":"ok"}}"#)),
        ];
        let d = decoder().decode(&records);
        let reasons: Vec<(usize, &str)> = d
            .rejected
            .iter()
            .map(|r| (r.index, r.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 8, "{reasons:?}");
        assert!(reasons[0].1.starts_with("after: "), "{reasons:?}");
        assert!(reasons[1].1.contains("has no `op`"), "{reasons:?}");
        assert!(reasons[2].1.contains("needs a `before`"), "{reasons:?}");
        assert!(reasons[3].1.contains("null column"), "{reasons:?}");
        assert!(reasons[4].1.contains("unknown `op`"), "{reasons:?}");
        assert!(reasons[5].1.contains("not JSON"), "{reasons:?}");
        assert!(reasons[6].1.contains("not a JSON object"), "{reasons:?}");
        // A rejected update deletes nothing either.
        assert_eq!(reasons[7].0, 7);
        assert!(d.deletes.rows.is_empty(), "{:?}", d.deletes.rows);
        assert_eq!(d.rows, vec![8]);
    }

    #[test]
    fn a_changelog_decodes_every_event_with_its_op_and_source_time() {
        use arrow::array::AsArray;
        use arrow::datatypes::{TimeUnit, TimestampMillisecondType};
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("_op", DataType::Utf8, false),
            Field::new(
                "_source_ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
                true,
            ),
        ]));
        let decoder = DebeziumDecoder::new(schema, &["id".to_string()], true, 1 << 20);
        let records = [
            Rec(Some(
                r#"{"op":"c","before":null,"after":{"id":1,"name":"a"},"source":{"ts_ms":1000}}"#,
            )),
            Rec(Some(
                r#"{"payload":{"op":"u","after":{"id":1,"name":"b"},"source":{"t\u0073_ms":2000}}}"#,
            )),
            Rec(Some(
                r#"{"op":"d","before":{"id":1,"name":""},"after":null,"source":{"ts_ms":3000}}"#,
            )),
            Rec(None),
            Rec(Some(
                r#"{"op":"r","after":{"id":2,"name":"c"},"source":{"snapshot":"true"}}"#,
            )),
            Rec(Some(r#"{"op":"d","before":{"id":3,"name":null}}"#)),
            Rec(Some(r#"{"op":"t"}"#)),
        ];
        let d = decoder.decode(&records);
        assert_eq!(d.rows, vec![0, 1, 2, 4]);
        assert_eq!(ids(&d.batches, "id"), vec![1, 1, 1, 2]);
        let ops: Vec<&str> = d
            .batches
            .iter()
            .flat_map(|b| b.column_by_name("_op").unwrap().as_string::<i32>().iter())
            .flatten()
            .collect();
        assert_eq!(ops, vec!["c", "u", "d", "r"]);
        let times: Vec<Option<i64>> = d
            .batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name("_source_ts").unwrap();
                c.as_primitive::<TimestampMillisecondType>()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(times, vec![Some(1000), Some(2000), Some(3000), None]);
        assert_eq!(d.deletes.ignored, vec![3]);
        let reasons: Vec<(usize, &str)> = d
            .rejected
            .iter()
            .map(|r| (r.index, r.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert_eq!(reasons[0].0, 5);
        assert!(reasons[0].1.starts_with("before: "), "{reasons:?}");
        assert!(reasons[1].1.contains("truncate"), "{reasons:?}");
    }
}
