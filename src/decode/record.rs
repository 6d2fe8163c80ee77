//! The record types of the decode stage: what a decoder takes ([`RawRecord`]) and what it
//! gives back ([`Decoded`] rows and [`Rejected`] records).
//!
//! Invariant: every input record of a decode call is accounted for exactly once, either as a
//! decoded row (in input order) or as a rejected record with a reason. (Its own file, like
//! `stage.rs`: the fuzz targets in `tests/fuzz` compile it without the rest of the crate.)

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
#[derive(Debug)]
pub struct Decoded {
    /// Decoded rows (schema = the event schema), in input order.
    pub batches: Vec<RecordBatch>,
    /// For each decoded row, the index of its input record.
    pub rows: Vec<usize>,
    /// Rejected records.
    pub rejected: Vec<Rejected>,
}
