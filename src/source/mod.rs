//! Sources: where raw records come from, as batches of consecutive records of one source
//! partition, each with the position to resume from after it.

pub mod files;

use std::sync::Arc;

use bytes::Bytes;

use crate::decode::json::RawRecord;
use crate::write::SourcePosition;

/// One raw record.
#[derive(Debug, Clone)]
pub struct Record {
    /// Payload (a prefix of it when the record was too large).
    pub bytes: Bytes,
    /// Full size when the record exceeded `max_record_bytes`.
    pub oversized: Option<u64>,
}

impl RawRecord for Record {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn oversized(&self) -> Option<u64> {
        self.oversized
    }
}

/// Consecutive records of one source partition.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// Partition (file name, or `topic/partition`).
    pub partition: Arc<str>,
    /// Offset of the first record.
    pub first_offset: u64,
    /// The records; record `i` has offset `first_offset + i`.
    pub records: Vec<Record>,
    /// Where the partition stands after this batch.
    pub position: SourcePosition,
}
