//! Decoding raw records into Arrow, and the dead-letter path for records that do not decode.

pub mod avro;
pub mod dead_letter;
pub mod debezium;
pub mod debezium_avro;
pub mod fast_json;
pub mod json;
#[cfg(test)]
mod json_differential;
pub mod raw;
pub mod record;
pub mod stage;

pub use avro::{AvroDecoder, Framing};
pub use dead_letter::{DeadLetter, DeadLetterBuffer, DeadLetterFile, Stage};
pub use debezium::DebeziumDecoder;
pub use debezium_avro::DebeziumAvroDecoder;
pub use json::JsonDecoder;
pub use raw::{KafkaRecord, RawDecoder};
pub use record::{Decoded, Deletes, RawRecord, Rejected};

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use rayon::prelude::*;

use crate::config::{Encoding, SourceConfig};
use crate::domain::{Changes, Envelope};
use crate::error::{Result, Unusable};
use crate::registry::SchemaRegistry;

/// Kafka record headers: name and value (`None` for a null value), in order. Kept with a
/// record from the source through dead-lettering.
pub type Headers = Arc<[(String, Option<Bytes>)]>;

/// The decoder a source's encoding calls for.
#[derive(Debug, Clone)]
pub enum RecordDecoder {
    /// `encoding = "json"`.
    Json(JsonDecoder),
    /// `encoding = "avro"` or `"avro-confluent"`.
    Avro(AvroDecoder),
    /// `encoding = "raw"`.
    Raw(RawDecoder),
    /// `encoding = "json"` with `envelope = "debezium"`.
    Debezium(DebeziumDecoder),
    /// `encoding = "avro-confluent"` with `envelope = "debezium"`.
    DebeziumAvro(DebeziumAvroDecoder),
}

impl RecordDecoder {
    /// The decoder for `source`'s encoding and `changes`' envelope, decoding into the
    /// version's schema (`avsc` and its Arrow mapping `arrow`).
    pub fn for_source(
        source: &SourceConfig,
        changes: &Changes,
        avsc: &str,
        arrow: SchemaRef,
    ) -> Result<Self> {
        let max = source.max_record_bytes();
        let framing = match source.encoding() {
            Encoding::Json if changes.envelope == Envelope::Debezium => {
                let decoder = DebeziumDecoder::new(arrow, &changes.key, changes.changelog, max);
                return Ok(RecordDecoder::Debezium(decoder));
            }
            Encoding::AvroConfluent if changes.envelope == Envelope::Debezium => {
                let decoder = DebeziumDecoder::new(arrow, &changes.key, changes.changelog, max);
                return Ok(RecordDecoder::DebeziumAvro(DebeziumAvroDecoder::new(
                    decoder,
                )));
            }
            Encoding::Json => return Ok(RecordDecoder::Json(JsonDecoder::new(arrow, max))),
            Encoding::Raw => {
                return RawDecoder::new(arrow, max)
                    .map(RecordDecoder::Raw)
                    .map_err(|e| {
                        Unusable::AvroSchema {
                            source: Box::new(e),
                        }
                        .into()
                    });
            }
            Encoding::Avro => Framing::Raw,
            Encoding::AvroConfluent => Framing::Confluent,
        };
        AvroDecoder::new(avsc, arrow, framing, max)
            .map(RecordDecoder::Avro)
            .map_err(|e| {
                Unusable::AvroSchema {
                    source: Box::new(e),
                }
                .into()
            })
    }

    /// Looks up the writer schemas `records` use that are not known yet (Confluent framing).
    pub async fn resolve<R: RawRecord>(
        &mut self,
        records: &[R],
        registry: Option<&SchemaRegistry>,
    ) -> Result<()> {
        let unknown = match self {
            RecordDecoder::Avro(avro) => avro.unknown_ids(records),
            RecordDecoder::DebeziumAvro(d) => d.unknown_ids(records),
            _ => return Ok(()),
        };
        for id in unknown {
            // What the records using `id` are rejected with, when there is no schema.
            let found = match registry {
                Some(r) => r.schema_by_id(id).await?.map_err(|e| e.to_string()),
                None => Err(format!("schema id {id}: no schema registry is configured")),
            };
            let found = found.as_deref().map_err(Clone::clone);
            match self {
                RecordDecoder::Avro(avro) => avro.add_writer_schema(id, found),
                RecordDecoder::DebeziumAvro(d) => d.add_writer_schema(id, found),
                _ => {}
            }
        }
        Ok(())
    }

    /// Decodes `records`, isolating the ones that do not fit.
    pub fn decode<R: KafkaRecord>(&self, records: &[R]) -> Decoded {
        match self {
            RecordDecoder::Json(d) => d.decode(records),
            RecordDecoder::Avro(d) => d.decode(records),
            RecordDecoder::Raw(d) => d.decode(records),
            RecordDecoder::Debezium(d) => d.decode(records),
            RecordDecoder::DebeziumAvro(d) => d.decode(records),
        }
    }

    /// [`decode`](Self::decode) in pieces of [`PARALLEL_PIECE`] records on rayon's pool, for a
    /// caller with nothing else to run meanwhile (the Kafka driver: its writer waits for the
    /// rows). The same rows, rejections and reasons, in the same order: every decoder is
    /// record by record.
    pub fn decode_parallel<R: KafkaRecord + Sync>(&self, records: &[R]) -> Decoded {
        if records.len() < 2 * PARALLEL_PIECE {
            return self.decode(records);
        }
        let pieces: Vec<Decoded> = records
            .par_chunks(PARALLEL_PIECE)
            .map(|piece| self.decode(piece))
            .collect();
        let mut out = Decoded {
            batches: Vec::with_capacity(pieces.len()),
            rows: Vec::with_capacity(records.len()),
            ..Decoded::default()
        };
        for (n, piece) in pieces.into_iter().enumerate() {
            let first = n * PARALLEL_PIECE;
            out.batches.extend(piece.batches);
            out.rows.extend(piece.rows.into_iter().map(|i| first + i));
            out.rejected
                .extend(piece.rejected.into_iter().map(|r| Rejected {
                    index: first + r.index,
                    ..r
                }));
            let deletes = &mut out.deletes;
            deletes.keys.extend(piece.deletes.keys);
            deletes
                .rows
                .extend(piece.deletes.rows.into_iter().map(|i| first + i));
            deletes
                .ignored
                .extend(piece.deletes.ignored.into_iter().map(|i| first + i));
        }
        out
    }
}

/// Records per piece of [`RecordDecoder::decode_parallel`]: big enough that a piece's batch
/// costs little per row, small enough that a burst of the consumer fills both cores.
pub const PARALLEL_PIECE: usize = 2048;
