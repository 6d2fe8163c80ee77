//! Sources: where raw records come from, as batches of records of one source partition, each
//! with the position to resume from after it.

pub(crate) mod buffers;
pub mod files;
pub mod kafka;
pub mod mock;
pub mod position;
pub mod seek;

use std::sync::Arc;

use bytes::Bytes;

pub use crate::decode::Headers;
use crate::decode::{KafkaRecord, RawRecord};
pub use crate::domain::TimestampType;
pub use position::{OffsetRange, SourcePosition, kafka_partition_key};

/// One raw record.
#[derive(Debug, Clone)]
pub struct Record {
    /// Payload (files: only a prefix of it when the record was too large).
    pub bytes: Bytes,
    /// Full size when the record exceeded `max_record_bytes`.
    pub oversized: Option<u64>,
    /// Offset in its partition (files: the 0-based line).
    pub offset: u64,
    /// The record's source timestamp in ms since the epoch (Kafka), if it has one.
    pub timestamp_ms: Option<i64>,
    /// What that timestamp is (Kafka).
    pub timestamp_type: Option<TimestampType>,
    /// Whether the value was null (a Kafka tombstone; `bytes` is then empty).
    pub tombstone: bool,
    /// The record's key (Kafka), if it has one.
    pub key: Option<Bytes>,
    /// The record's headers (Kafka), if it has any.
    pub headers: Option<Headers>,
}

impl RawRecord for Record {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn oversized(&self) -> Option<u64> {
        self.oversized
    }
}

impl KafkaRecord for Record {
    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }
    fn is_tombstone(&self) -> bool {
        self.tombstone
    }
    fn headers(&self) -> &[(String, Option<Bytes>)] {
        self.headers.as_deref().unwrap_or_default()
    }
    fn timestamp_type(&self) -> Option<TimestampType> {
        self.timestamp_type
    }
}

/// Where a batch comes from, for the metadata columns.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A file of a files source (`partition` is its name).
    File,
    /// A Kafka topic partition (`partition` is `topic/N`).
    Kafka {
        /// Topic name.
        topic: Arc<str>,
        /// Partition number.
        partition: i32,
    },
}

/// Records of one source partition, in offset order.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// Partition (file name, or `topic/partition`).
    pub partition: Arc<str>,
    /// What kind of partition it is.
    pub origin: Origin,
    /// The offset this batch's coverage starts at: the first record's offset, or the stored
    /// position when offsets between it and the first record do not exist (Kafka gaps).
    pub start: u64,
    /// The records, offsets strictly increasing.
    pub records: Vec<Record>,
    /// Where the partition stands after this batch.
    pub position: SourcePosition,
}
