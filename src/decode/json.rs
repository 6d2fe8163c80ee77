//! JSON records → Arrow `RecordBatch`: the schema-specialised decoder (`fast_json.rs`) for the
//! records it accepts, and arrow-json's decoder (the oracle) for every other record.
//!
//! Runs of records the fast decoder misses go to the oracle, in order, so the output is the
//! oracle's for any input: the same rows, the same rejections and reasons. The oracle decodes a
//! run in one pass. A record that does not fit is isolated without giving up the rest of the
//! run:
//! - reading problems (too large, empty) are caught before decoding, and invalid UTF-8 when a
//!   run of records fails to decode (a run that decodes is valid UTF-8);
//! - syntax errors are caught at the record that causes them (the decoder is checked to hold
//!   exactly one complete value per record), and the records before and after are decoded
//!   separately;
//! - schema errors (wrong type, missing required field), which arrow-json reports only when a
//!   batch is flushed, are isolated by bisection: O(k · log n) extra decodes for k bad records.
//!
//! Nothing is coerced to null: every rejected record comes back with its reason.

use std::ops::Range;

use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use arrow::record_batch::RecordBatch;

use crate::decode::Stage;
use crate::decode::fast_json::{self, RowBuilder};
pub use crate::decode::record::{Decoded, RawRecord, Rejected};

/// Decodes JSON records against an Arrow schema.
#[derive(Debug, Clone)]
pub struct JsonDecoder {
    schema: SchemaRef,
    max_record_bytes: usize,
    /// Whether the schema-specialised decoder covers the schema (and is not switched off).
    fast: bool,
}

enum Failure {
    /// Record `i` (absolute index) is not a single JSON value.
    At(usize, String),
    /// The batch failed as a whole (schema mismatch somewhere in it).
    Batch(String),
}

impl JsonDecoder {
    /// A decoder for `schema`; records above `max_record_bytes` are rejected.
    pub fn new(schema: SchemaRef, max_record_bytes: usize) -> Self {
        let fast = fast_json::supports(&schema);
        JsonDecoder {
            schema,
            max_record_bytes,
            fast,
        }
    }

    /// The same decoder with arrow-json alone (the oracle the fast decoder is checked against,
    /// and the baseline of the benchmarks).
    pub fn oracle_only(mut self) -> Self {
        self.fast = false;
        self
    }

    /// Whether records go through the schema-specialised decoder first.
    pub fn is_fast(&self) -> bool {
        self.fast
    }

    /// Decodes `records`, isolating the ones that do not fit.
    pub fn decode<R: RawRecord>(&self, records: &[R]) -> Decoded {
        let mut out = Decoded {
            batches: Vec::new(),
            rows: Vec::with_capacity(records.len()),
            rejected: Vec::new(),
            deletes: Default::default(),
        };
        // Pre-checks, then decode the remaining runs of consecutive good records.
        let mut run_start = 0;
        for (i, r) in records.iter().enumerate() {
            if let Some(reason) = self.precheck(r) {
                self.decode_range(records, run_start..i, &mut out);
                out.rejected.push(Rejected {
                    index: i,
                    stage: Stage::Read,
                    reason,
                });
                run_start = i + 1;
            }
        }
        self.decode_range(records, run_start..records.len(), &mut out);
        out.rejected.sort_by_key(|r| r.index);
        out
    }

    fn precheck<R: RawRecord>(&self, r: &R) -> Option<String> {
        if let Some(len) = r.oversized() {
            return Some(format!(
                "record of {len} bytes exceeds max_record_bytes ({})",
                self.max_record_bytes
            ));
        }
        let bytes = r.bytes();
        if bytes.len() > self.max_record_bytes {
            return Some(format!(
                "record of {} bytes exceeds max_record_bytes ({})",
                bytes.len(),
                self.max_record_bytes
            ));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Some("empty record".to_string());
        }
        None
    }

    fn decode_range<R: RawRecord>(&self, records: &[R], range: Range<usize>, out: &mut Decoded) {
        if self.fast {
            self.decode_fast(records, range, out);
        } else {
            self.decode_oracle(records, range, out);
        }
    }

    /// The fast decoder over `range`; each run of records it misses goes to the oracle, between
    /// the batches of the rows before and after it.
    fn decode_fast<R: RawRecord>(&self, records: &[R], range: Range<usize>, out: &mut Decoded) {
        let bytes = records[range.clone()].iter().map(|r| r.bytes().len()).sum();
        let mut rows = RowBuilder::expecting(&self.schema, range.len(), bytes);
        let mut held = range.start; // the first record of the rows in `rows`
        let mut missed: Option<usize> = None; // the start of the current run of misses
        for i in range.clone() {
            match (rows.push(records[i].bytes()).is_ok(), missed) {
                (true, None) | (false, Some(_)) => {}
                (true, Some(start)) => {
                    self.decode_oracle(records, start..i, out);
                    missed = None;
                    held = i;
                }
                (false, None) => {
                    self.flush_fast(&mut rows, held..i, records, out);
                    missed = Some(i);
                }
            }
        }
        match missed {
            Some(start) => self.decode_oracle(records, start..range.end, out),
            None => self.flush_fast(&mut rows, held..range.end, records, out),
        }
    }

    fn flush_fast<R: RawRecord>(
        &self,
        rows: &mut RowBuilder,
        range: Range<usize>,
        records: &[R],
        out: &mut Decoded,
    ) {
        if rows.is_empty() {
            return;
        }
        match rows.finish() {
            Ok(batch) => {
                out.rows.extend(range);
                out.batches.push(batch);
            }
            // Not expected (the builder makes only valid arrays), but never lose the rows.
            Err(_) => self.decode_oracle(records, range, out),
        }
    }

    fn decode_oracle<R: RawRecord>(&self, records: &[R], range: Range<usize>, out: &mut Decoded) {
        if range.is_empty() {
            return;
        }
        let failure = match self.try_decode(records, range.clone()) {
            Ok(batch) => {
                out.rows.extend(range);
                out.batches.push(batch);
                return;
            }
            Err(failure) => failure,
        };
        // UTF-8 is checked only now: a run that decodes is valid UTF-8 (arrow-json validates
        // strings, and everything outside them must be JSON's ASCII), so the check costs
        // nothing on good data and still names the byte of a bad record.
        let invalid = range.clone().find_map(|i| {
            std::str::from_utf8(records[i].bytes())
                .err()
                .map(|e| (i, e.valid_up_to()))
        });
        if let Some((i, at)) = invalid {
            self.decode_oracle(records, range.start..i, out);
            out.rejected.push(Rejected {
                index: i,
                stage: Stage::Read,
                reason: format!("invalid UTF-8 at byte {at}"),
            });
            self.decode_oracle(records, i + 1..range.end, out);
            return;
        }
        match failure {
            Failure::At(i, reason) => {
                self.decode_oracle(records, range.start..i, out);
                out.rejected.push(Rejected {
                    index: i,
                    stage: Stage::Decode,
                    reason: self.reason_alone(records, i).unwrap_or(reason),
                });
                self.decode_oracle(records, i + 1..range.end, out);
            }
            Failure::Batch(reason) if range.len() == 1 => out.rejected.push(Rejected {
                index: range.start,
                stage: Stage::Decode,
                reason,
            }),
            Failure::Batch(_) => {
                let mid = range.start + range.len() / 2;
                self.decode_oracle(records, range.start..mid, out);
                self.decode_oracle(records, mid..range.end, out);
            }
        }
    }

    /// Why record `i` fails decoded on its own. A record's reason must not depend on the
    /// records around it: arrow-json stops reading at its batch size, so trailing bytes after a
    /// record's first object read as an error in the middle of a run but not at its end.
    fn reason_alone<R: RawRecord>(&self, records: &[R], i: usize) -> Option<String> {
        match self.try_decode(records, i..i + 1) {
            Err(Failure::At(_, reason) | Failure::Batch(reason)) => Some(reason),
            Ok(_) => None,
        }
    }

    fn try_decode<R: RawRecord>(
        &self,
        records: &[R],
        range: Range<usize>,
    ) -> Result<RecordBatch, Failure> {
        let mut decoder = ReaderBuilder::new(self.schema.clone())
            .with_batch_size(range.len() + 1)
            .build_decoder()
            .map_err(|e| Failure::Batch(e.to_string()))?;
        for (n, i) in range.clone().enumerate() {
            let bytes = records[i].bytes();
            let consumed = decoder
                .decode(bytes)
                .map_err(|e| Failure::At(i, e.to_string()))?;
            let complete =
                consumed == bytes.len() && !decoder.has_partial_record() && decoder.len() == n + 1;
            if !complete {
                let reason = if decoder.has_partial_record() {
                    "incomplete JSON value".to_string()
                } else {
                    "expected exactly one JSON object".to_string()
                };
                return Err(Failure::At(i, reason));
            }
        }
        match decoder.flush() {
            Ok(Some(batch)) if batch.num_rows() == range.len() => Ok(batch),
            Ok(_) => Err(Failure::Batch("row count mismatch".into())),
            Err(e) => Err(Failure::Batch(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn decoder() -> JsonDecoder {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        JsonDecoder::new(Arc::new(schema), 1024)
    }

    #[test]
    fn good_batch_decodes_in_one_piece() {
        let recs: Vec<&[u8]> = vec![br#"{"id":1,"name":"a"}"#, br#"{"id":2}"#];
        let d = decoder().decode(&recs);
        assert_eq!(d.batches.len(), 1);
        assert_eq!(d.rows, vec![0, 1]);
        assert!(d.rejected.is_empty());
    }

    #[test]
    fn bad_records_are_isolated_with_reasons() {
        let big = vec![b' '; 2000];
        let recs: Vec<&[u8]> = vec![
            br#"{"id":1}"#,
            br#"{"id":2,"#,         // broken JSON
            br#"{"id":"x"}"#,       // wrong type
            br#"{"name":"no id"}"#, // missing required field
            b"\xff\xfe{}",          // invalid UTF-8
            &big,                   // too large
            b"   ",                 // empty
            br#"{"id":3}{"id":4}"#, // two values in one record
            br#"{"id":5}"#,
            br#"{"id":6,"name":7}"#, // wrong type
            br#"{"id":7}"#,
        ];
        let d = decoder().decode(&recs);
        assert_eq!(d.rows, vec![0, 8, 10]);
        let idx: Vec<usize> = d.rejected.iter().map(|r| r.index).collect();
        assert_eq!(idx, vec![1, 2, 3, 4, 5, 6, 7, 9]);
        assert_eq!(d.rows.len() + d.rejected.len(), recs.len());
        let total: usize = d.batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, 3);
        for r in &d.rejected {
            assert!(!r.reason.is_empty());
        }
        assert_eq!(d.rejected[3].stage, Stage::Read);
    }
}
