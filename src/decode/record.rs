//! The record types of the decode stage: what a decoder takes ([`RawRecord`]) and what it
//! gives back ([`Decoded`] rows and [`Rejected`] records).
//!
//! Invariant: every input record of a decode call is accounted for exactly once, either as a
//! decoded row (in input order), a delete or an ignored change (a change stream's), or as a
//! rejected record with a reason; only a key-changing update is a delete and a row. (Its own file, like
//! `stage.rs`: the fuzz targets in `tests/fuzz` compile it without the rest of the crate.)

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::decode::Stage;

/// A record handed to the decoder.
pub trait RawRecord {
    /// The bytes (possibly only a prefix, when oversized).
    fn bytes(&self) -> &[u8];
    /// The full size when the record was larger than the source allowed.
    fn oversized(&self) -> Option<u64>;
}

/// A bare payload (tests, benches, fuzzing).
impl RawRecord for &[u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn oversized(&self) -> Option<u64> {
        None
    }
}

/// A record the decoder rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the record in the input.
    pub index: usize,
    /// Stage that rejected it.
    pub stage: Stage,
    /// Why.
    pub reason: String,
}

/// The decoded part of a batch.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Decoded rows (schema = the event schema), in input order.
    pub batches: Vec<RecordBatch>,
    /// For each decoded row, the index of its input record.
    pub rows: Vec<usize>,
    /// Rejected records.
    pub rejected: Vec<Rejected>,
    /// Change events that remove a row or change nothing (an upsert table's source only).
    pub deletes: Deletes,
}

/// The records of a change stream that are not rows: deletes of a key, and records that
/// change nothing (a tombstone after a delete). A record may be both a row and a delete: an
/// update that changes the key deletes the old one first.
#[derive(Debug, Default)]
pub struct Deletes {
    /// For each delete, the index of its input record, in input order.
    pub rows: Vec<usize>,
    /// The deleted keys, one row per delete (the key columns), in order.
    pub keys: Vec<RecordBatch>,
    /// Records that change nothing.
    pub ignored: Vec<usize>,
}

impl Decoded {
    /// How `self` differs from `other` (decodes of the same records into `schema`): the rows,
    /// their values, the rejected records and their reasons; `None` when they are the same.
    /// How the two ways through the decoder are held to each other.
    pub fn differs_from(&self, other: &Decoded, schema: &SchemaRef) -> Option<String> {
        if self.rows != other.rows {
            return Some(format!("rows {:?} vs {:?}", self.rows, other.rows));
        }
        if let Some((a, b)) = self
            .rejected
            .iter()
            .zip(&other.rejected)
            .find(|(a, b)| a != b)
        {
            return Some(format!("rejected {a:?} vs {b:?}"));
        }
        if self.rejected.len() != other.rejected.len() {
            return Some(format!(
                "rejected {:?} vs {:?}",
                self.rejected, other.rejected
            ));
        }
        let all = |d: &Decoded| concat_batches(schema, &d.batches).map_err(|e| e.to_string());
        match (all(self), all(other)) {
            (Ok(a), Ok(b)) if a == b => None,
            (Ok(a), Ok(b)) => Some(format!("values {a:?} vs {b:?}")),
            (a, b) => Some(format!(
                "batches do not concatenate: {:?} / {:?}",
                a.err(),
                b.err()
            )),
        }
    }
}
