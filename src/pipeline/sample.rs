//! `kappa-lake transform`: a table's definition run offline over sample events, so that a
//! transform can be tested and reviewed without Kafka or a lake.
//!
//! The sample goes through the same code as a writer's batches ([`Shaper`]): decode, metadata
//! columns, transform, event time. Sample lines stand for the records of partition 0 of the
//! table's source (the topic, or the sample file for a files source) at offsets 0, 1, 2, …;
//! they carry no Kafka timestamp, so for `time = { source = "kafka" }` the event time is not
//! checked.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;

use crate::config::{SourceConfig, TableConfig, TimeSpec};
use crate::decode::{JsonDecoder, Stage};
use crate::error::{Error, Result, Unusable};
use crate::pipeline::shape::Shaper;
use crate::source::{Origin, Record, SourceBatch, kafka_partition_key};
use crate::table::Definition;
use crate::write::SourcePosition;

/// A sample line that did not make it into the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line in the sample file.
    pub line: u64,
    /// Where it failed.
    pub stage: Stage,
    /// Why.
    pub reason: String,
}

/// What the definition made of the sample.
#[derive(Debug)]
pub struct Sample {
    /// The rows the table would get, in sample order.
    pub rows: RecordBatch,
    /// The lines that would be dead-lettered.
    pub rejected: Vec<Rejected>,
    /// Lines the transform's `WHERE` dropped.
    pub filtered: usize,
}

/// Runs `table`'s definition (schema, transform, event time) over the NDJSON lines of
/// `input` (`.gz` is decompressed).
pub fn run(table: &TableConfig, input: &Path) -> Result<Sample> {
    let read_err = |source: std::io::Error| Error::Source {
        location: input.display().to_string(),
        source,
    };
    let mut raw = Vec::new();
    let file = std::fs::File::open(input).map_err(read_err)?;
    if input.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_end(&mut raw)
            .map_err(read_err)?;
    } else {
        std::io::BufReader::new(file)
            .read_to_end(&mut raw)
            .map_err(read_err)?;
    }
    let raw = Bytes::from(raw);
    let max = table.source.max_record_bytes();
    let mut records = Vec::new();
    let mut start = 0;
    for (i, line) in raw.split(|&b| b == b'\n').enumerate() {
        let end = start + line.len();
        let is_last = end == raw.len();
        if !(is_last && line.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let bytes = raw.slice(start..start + line.len());
            let oversized = (bytes.len() > max).then_some(bytes.len() as u64);
            records.push(Record {
                bytes: if oversized.is_some() {
                    bytes.slice(..max)
                } else {
                    bytes
                },
                oversized,
                offset: i as u64,
                timestamp_ms: None,
                timestamp_type: None,
                tombstone: false,
                key: None,
                headers: None,
            });
        }
        start = end + 1;
    }

    let def = Definition::from_config(table)?;
    let event = table.event_schema().arrow.clone();
    let shaper = Shaper::new(&event, &def)?;
    let (partition, origin) = match (&table.source, table.metadata()) {
        (SourceConfig::Kafka(k), _) => (
            kafka_partition_key(&k.topic, 0),
            Origin::Kafka {
                topic: k.topic.as_str().into(),
                partition: 0,
            },
        ),
        _ => (
            input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Origin::File,
        ),
    };
    let n = records.len() as u64;
    let batch = SourceBatch {
        partition: Arc::from(partition.as_str()),
        origin,
        start: 0,
        records,
        position: SourcePosition {
            offset: n,
            end_byte: None,
            eof: true,
        },
    };

    let decoded = JsonDecoder::new(event, max).decode(&batch.records);
    let mut rejected: Vec<Rejected> = decoded
        .rejected
        .iter()
        .map(|r| Rejected {
            line: batch.records[r.index].offset + 1,
            stage: r.stage,
            reason: r.reason.clone(),
        })
        .collect();
    let mut parts = Vec::new();
    let mut kept = 0;
    let mut rows = decoded.rows.as_slice();
    for events in decoded.batches {
        let (these, rest) = rows.split_at(events.num_rows());
        rows = rest;
        let mut dead = |i: usize, stage: Stage, reason: String| {
            rejected.push(Rejected {
                line: batch.records[i].offset + 1,
                stage,
                reason,
            })
        };
        let shaped_err = |source| Error::Sample { source };
        let Some((out, out_rows)) = shaper
            .transformed(events, &batch, these, &mut dead)
            .map_err(shaped_err)?
        else {
            return Err(Unusable::SampleSourceKind.into());
        };
        let out = match shaper.time() {
            None | Some(TimeSpec::SourceTimestamp) => out,
            Some(TimeSpec::Field { .. }) => {
                shaper
                    .bucketed(out, &batch, out_rows, &mut dead)
                    .map_err(shaped_err)?
                    .batch
            }
        };
        kept += these.len();
        parts.push(out);
    }
    rejected.sort_by_key(|r| r.line);
    let rows = concat_batches(shaper.output_schema(), &parts)
        .map_err(|source| Error::Sample { source })?;
    let transformed_away = kept - rows.num_rows();
    let dropped_later = rejected
        .iter()
        .filter(|r| matches!(r.stage, Stage::Transform | Stage::EventTime))
        .count();
    Ok(Sample {
        filtered: transformed_away - dropped_later,
        rows,
        rejected,
    })
}
