//! Avro records → Arrow `RecordBatch`, with arrow-avro's batch decoder.
//!
//! Two payload framings:
//! - **raw** (`encoding = "avro"`): each record is one Avro binary datum written with the
//!   version's own schema;
//! - **Confluent wire format** (`encoding = "avro-confluent"`): a `0x00` magic byte, the
//!   writer schema's registry id (4 bytes, big-endian), then the datum. Writer schemas are
//!   looked up by id (see [`crate::registry`]) and resolved against the version's schema by
//!   Avro's rules, so events written with an older compatible schema decode into the
//!   version's columns (added fields take their defaults, removed ones are skipped, numeric
//!   types are promoted).
//!
//! Values are decoded column-wise straight into Arrow builders; nothing goes through JSON or a
//! per-record value tree. A record that does not decode is isolated like in the JSON decoder:
//! the batch is decoded as runs of records, a failing record is rejected with its reason and
//! the records before and after it are decoded on their own (a failed datum may have
//! appended to some columns, so the run before it is decoded afresh).

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow_avro::reader::{Decoder, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, SchemaStore};

use crate::decode::Stage;
use crate::decode::record::{Decoded, RawRecord, Rejected};

/// The Confluent wire format's magic byte.
pub const CONFLUENT_MAGIC: u8 = 0;
/// Magic byte + schema id.
pub const CONFLUENT_HEADER_LEN: usize = 5;

/// The id under which raw Avro's single writer schema (the version's) is kept.
const RAW_ID: u32 = 0;
/// The Confluent header fed before each raw datum, so one decoder serves both framings.
const RAW_HEADER: [u8; CONFLUENT_HEADER_LEN] = [CONFLUENT_MAGIC, 0, 0, 0, 0];

/// How records are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A bare datum in the version's schema.
    Raw,
    /// Confluent wire format: magic byte, schema id, datum.
    Confluent,
}

/// What is known of a writer schema id.
#[derive(Debug, Clone)]
pub enum WriterSchema {
    /// Found, and readable as the version's schema.
    Readable(Arc<AvroSchema>),
    /// Not usable: not in the registry, or not resolvable against the version's schema.
    Unusable(String),
}

/// Why an Avro schema or record cannot be used. Its text is what a rejected record's dead
/// letter says. (`Display` by hand: the fuzz targets compile this file without `thiserror`.)
#[derive(Debug)]
#[non_exhaustive]
pub enum AvroError {
    /// A Confluent-framed record shorter than the wire-format header.
    ShortRecord {
        /// The record's length.
        len: usize,
    },
    /// A Confluent-framed record that does not start with the magic byte.
    WrongMagic {
        /// The byte found.
        byte: u8,
    },
    /// Schema text that does not parse as Avro.
    NotAvro(apache_avro::Error),
    /// A parsed schema that could not be written out again as JSON.
    Json(serde_json::Error),
    /// A writer schema the version's schema cannot read.
    Unreadable {
        /// The writer schema's id.
        id: u32,
        /// arrow-avro's reason.
        source: ArrowError,
    },
    /// A decoded column that cannot be cast to the version's type.
    Column {
        /// The column.
        name: String,
        /// The cast's error.
        source: ArrowError,
    },
    /// A record that ends inside a value.
    Truncated,
    /// arrow-avro's decoder failed.
    Decode(arrow_avro::errors::AvroError),
    /// arrow-avro failed otherwise.
    Arrow(ArrowError),
}

impl std::fmt::Display for AvroError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AvroError::ShortRecord { len } => write!(
                f,
                "record of {len} bytes is shorter than the Confluent wire-format header ({CONFLUENT_HEADER_LEN} bytes)"
            ),
            AvroError::WrongMagic { byte } => write!(
                f,
                "wrong magic byte 0x{byte:02x} (the Confluent wire format starts with 0x00)"
            ),
            AvroError::NotAvro(e) => write!(f, "not an Avro schema: {e}"),
            AvroError::Json(e) => write!(f, "{e}"),
            AvroError::Unreadable { id, source } => write!(
                f,
                "writer schema {id} cannot be read as the version's schema: {source}"
            ),
            AvroError::Column { name, source } => write!(f, "column `{name}`: {source}"),
            AvroError::Truncated => f.write_str("truncated Avro record: it ends inside a value"),
            AvroError::Decode(e) => write!(f, "{e}"),
            AvroError::Arrow(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AvroError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AvroError::NotAvro(e) => Some(e),
            AvroError::Json(e) => Some(e),
            AvroError::Unreadable { source, .. } | AvroError::Column { source, .. } => Some(source),
            AvroError::Decode(e) => Some(e),
            AvroError::Arrow(e) => Some(e),
            AvroError::ShortRecord { .. } | AvroError::WrongMagic { .. } | AvroError::Truncated => {
                None
            }
        }
    }
}

/// Parses the Confluent wire-format header: the schema id, or why the record has none.
pub fn confluent_schema_id(bytes: &[u8]) -> Result<u32, AvroError> {
    if bytes.len() < CONFLUENT_HEADER_LEN {
        return Err(AvroError::ShortRecord { len: bytes.len() });
    }
    if bytes[0] != CONFLUENT_MAGIC {
        return Err(AvroError::WrongMagic { byte: bytes[0] });
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok(id)
}

/// Decodes Avro records against the version's schema.
#[derive(Debug, Clone)]
pub struct AvroDecoder {
    /// The version's Arrow schema (what the batches are conformed to).
    schema: SchemaRef,
    /// The version's Avro schema, as arrow-avro's reader schema.
    reader: AvroSchema,
    framing: Framing,
    max_record_bytes: usize,
    writers: HashMap<u32, WriterSchema>,
}

enum Failure {
    /// Record `i` (absolute index) does not decode.
    At(usize, String),
    /// Building the decoder failed (affects the whole run).
    Batch(String),
}

impl AvroDecoder {
    /// A decoder for the version's Avro schema text and its Arrow mapping.
    pub fn new(
        avsc: &str,
        schema: SchemaRef,
        framing: Framing,
        max_record_bytes: usize,
    ) -> Result<Self, AvroError> {
        let reader = AvroSchema::new(for_arrow_avro(avsc)?);
        let mut decoder = AvroDecoder {
            schema,
            reader: reader.clone(),
            framing,
            max_record_bytes,
            writers: HashMap::new(),
        };
        if framing == Framing::Raw {
            let writer = decoder.check_writer(RAW_ID, avsc)?;
            decoder
                .writers
                .insert(RAW_ID, WriterSchema::Readable(Arc::new(writer)));
        }
        Ok(decoder)
    }

    /// The framing.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Schema ids used by `records` that are not known yet (Confluent framing).
    pub fn unknown_ids<R: RawRecord>(&self, records: &[R]) -> BTreeSet<u32> {
        if self.framing != Framing::Confluent {
            return BTreeSet::new();
        }
        records
            .iter()
            .filter_map(|r| confluent_schema_id(r.bytes()).ok())
            .filter(|id| !self.writers.contains_key(id))
            .collect()
    }

    /// Records what a schema id stands for: its schema text, or why there is none. A schema
    /// that cannot be resolved against the version's schema is recorded as unusable, so its
    /// records are rejected with the reason.
    ///
    /// `schema` is the lookup's answer: the text, or why there is none (the reason the records
    /// using `id` will be rejected with; a `String` because it is kept as that text).
    pub fn add_writer_schema(&mut self, id: u32, schema: Result<&str, String>) {
        let entry = match schema {
            Ok(text) => match self.check_writer(id, text) {
                Ok(s) => WriterSchema::Readable(Arc::new(s)),
                Err(e) => WriterSchema::Unusable(e.to_string()),
            },
            Err(reason) => WriterSchema::Unusable(reason),
        };
        self.writers.insert(id, entry);
    }

    fn check_writer(&self, id: u32, text: &str) -> Result<AvroSchema, AvroError> {
        let writer = AvroSchema::new(for_arrow_avro(text)?);
        let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
        store
            .set(Fingerprint::Id(id), writer.clone())
            .map_err(AvroError::Arrow)?;
        ReaderBuilder::new()
            .with_reader_schema(self.reader.clone())
            .with_writer_schema_store(store)
            .build_decoder()
            .map_err(|source| AvroError::Unreadable { id, source })?;
        Ok(writer)
    }

    /// Decodes `records`, isolating the ones that do not fit.
    pub fn decode<R: RawRecord>(&self, records: &[R]) -> Decoded {
        let mut out = Decoded {
            batches: Vec::new(),
            rows: Vec::with_capacity(records.len()),
            rejected: Vec::new(),
            deletes: Default::default(),
        };
        let mut run_start = 0;
        for (i, r) in records.iter().enumerate() {
            if let Some((stage, reason)) = self.precheck(r) {
                self.decode_range(records, run_start..i, &mut out);
                out.rejected.push(Rejected {
                    index: i,
                    stage,
                    reason,
                });
                run_start = i + 1;
            }
        }
        self.decode_range(records, run_start..records.len(), &mut out);
        out.rejected.sort_by_key(|r| r.index);
        out
    }

    fn precheck<R: RawRecord>(&self, r: &R) -> Option<(Stage, String)> {
        let bytes = r.bytes();
        let len = r.oversized().unwrap_or(bytes.len() as u64);
        if len > self.max_record_bytes as u64 {
            return Some((
                Stage::Read,
                format!(
                    "record of {len} bytes exceeds max_record_bytes ({})",
                    self.max_record_bytes
                ),
            ));
        }
        if bytes.is_empty() {
            return Some((Stage::Read, "empty record".to_string()));
        }
        if self.framing == Framing::Confluent {
            let id = match confluent_schema_id(bytes) {
                Ok(id) => id,
                Err(e) => return Some((Stage::Decode, e.to_string())),
            };
            match self.writers.get(&id) {
                Some(WriterSchema::Readable(_)) => {}
                Some(WriterSchema::Unusable(reason)) => {
                    return Some((Stage::Decode, reason.clone()));
                }
                None => {
                    return Some((Stage::Decode, format!("schema id {id} was not looked up")));
                }
            }
        }
        None
    }

    fn decode_range<R: RawRecord>(&self, records: &[R], range: Range<usize>, out: &mut Decoded) {
        if range.is_empty() {
            return;
        }
        match self.try_decode(records, range.clone()) {
            Ok(batches) => {
                out.rows.extend(range);
                out.batches.extend(batches);
            }
            Err(Failure::At(i, reason)) => {
                self.decode_range(records, range.start..i, out);
                out.rejected.push(Rejected {
                    index: i,
                    stage: Stage::Decode,
                    reason,
                });
                self.decode_range(records, i + 1..range.end, out);
            }
            Err(Failure::Batch(reason)) => {
                out.rejected.extend(range.map(|index| Rejected {
                    index,
                    stage: Stage::Decode,
                    reason: reason.clone(),
                }));
            }
        }
    }

    /// A decoder for the writer schemas `records[range]` use.
    fn build<R: RawRecord>(
        &self,
        records: &[R],
        range: Range<usize>,
    ) -> Result<Decoder, ArrowError> {
        let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
        let ids: BTreeSet<u32> = match self.framing {
            Framing::Raw => BTreeSet::from([RAW_ID]),
            Framing::Confluent => records[range.clone()]
                .iter()
                .filter_map(|r| confluent_schema_id(r.bytes()).ok())
                .collect(),
        };
        for id in &ids {
            if let Some(WriterSchema::Readable(s)) = self.writers.get(id) {
                store.set(Fingerprint::Id(*id), (**s).clone())?;
            }
        }
        let first = ids.first().copied().unwrap_or(RAW_ID);
        ReaderBuilder::new()
            .with_batch_size(range.len() + 1)
            .with_reader_schema(self.reader.clone())
            .with_writer_schema_store(store)
            .with_active_fingerprint(Fingerprint::Id(first))
            .build_decoder()
    }

    fn try_decode<R: RawRecord>(
        &self,
        records: &[R],
        range: Range<usize>,
    ) -> Result<Vec<RecordBatch>, Failure> {
        let mut decoder = self
            .build(records, range.clone())
            .map_err(|e| Failure::Batch(e.to_string()))?;
        let mut batches = Vec::new();
        let mut flushed = 0usize;
        for (n, i) in range.clone().enumerate() {
            let bytes = records[i].bytes();
            if self.framing == Framing::Raw {
                feed(&mut decoder, &RAW_HEADER, &mut batches, &mut flushed)
                    .map_err(|e| Failure::At(i, e.to_string()))?;
            }
            let fed = feed(&mut decoder, bytes, &mut batches, &mut flushed);
            let rows = flushed + decoder.batch_size() - decoder.capacity();
            match fed {
                Ok(()) if rows == n + 1 => {}
                Ok(()) => return Err(Failure::At(i, AvroError::Truncated.to_string())),
                Err(_) if rows == n + 1 => {
                    return Err(Failure::At(
                        i,
                        "trailing bytes after the Avro record".to_string(),
                    ));
                }
                Err(e) => return Err(Failure::At(i, e.to_string())),
            }
        }
        if let Some(batch) = decoder.flush().map_err(|e| Failure::Batch(e.to_string()))? {
            batches.push(batch);
        }
        batches
            .into_iter()
            .map(|b| conform(b, &self.schema).map_err(|e| Failure::Batch(e.to_string())))
            .collect()
    }
}

/// Feeds one record's bytes; a schema switch mid-batch makes the decoder ask for a flush.
fn feed(
    decoder: &mut Decoder,
    bytes: &[u8],
    batches: &mut Vec<RecordBatch>,
    flushed: &mut usize,
) -> Result<(), AvroError> {
    let mut consumed = 0;
    while consumed < bytes.len() {
        let n = decoder
            .decode(&bytes[consumed..])
            .map_err(AvroError::Decode)?;
        consumed += n;
        if consumed < bytes.len() {
            if !decoder.batch_is_full() {
                return Err(AvroError::Truncated);
            }
            if let Some(batch) = decoder.flush().map_err(AvroError::Decode)? {
                *flushed += batch.num_rows();
                batches.push(batch);
            }
        }
    }
    Ok(())
}

/// Casts a decoded batch to the version's Arrow schema where arrow-avro's mapping differs
/// from ours (an `enum` is a dictionary there and a string here; time zone spelling).
fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, AvroError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                cast(column, field.data_type()).map_err(|source| AvroError::Column {
                    name: field.name().clone(),
                    source,
                })
            }
        })
        .collect::<Result<Vec<_>, AvroError>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(AvroError::Arrow)
}

/// The schema text as arrow-avro should see it: named types with explicit namespaces, and
/// `uuid` a plain string (arrow-avro would make it 16 bytes).
fn for_arrow_avro(avsc: &str) -> Result<String, AvroError> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if map.get("logicalType").and_then(|t| t.as_str()) == Some("uuid") {
                    map.remove("logicalType");
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    // Written out again by apache_avro, every named type carries its namespace: arrow-avro
    // compares a writer's and a reader's names without the namespace they inherit.
    let parsed = apache_avro::Schema::parse_str(avsc).map_err(AvroError::NotAvro)?;
    let mut value = serde_json::to_value(&parsed).map_err(AvroError::Json)?;
    strip(&mut value);
    Ok(value.to_string())
}

#[cfg(test)]
mod tests;
