//! What a replay of a Kafka table can read: per partition of its topic, the offsets the topic
//! still holds (its low and high watermarks) and the span its raw archive holds, and the
//! ranges neither holds. `rebuild` refuses on those gaps unless `--allow-gap`; `plan` and
//! `status --topic` name them before anyone rebuilds.
//!
//! Invariant: a gap is named exactly when some offset between where a version stands (0 for
//! a new one) and the topic's low watermark is in no archived file's span below the archive's
//! stored offset; nothing here writes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Encoding, KafkaSourceConfig, SourceConfig};
use crate::domain::Shard;
use crate::error::{Error, Result};
use crate::pipeline::archive::ArchiveReader;
use crate::pipeline::handle::TableHandle;
use crate::source::{kafka_partition_key, seek};

/// How long `plan` and `status --topic` wait for the broker's answer.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What a replay of a topic from the start reads, per partition, and what it would miss.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// The topic.
    pub topic: String,
    /// The raw archive read first (`<table> v<N>`), if the table names one with a version.
    pub archive: Option<String>,
    /// Per partition of the topic.
    pub partitions: Vec<PartitionCoverage>,
    /// The offset ranges a replay from the start would miss (`events/0 [0, 5230)`): a
    /// rebuild refuses them unless `--allow-gap`.
    pub gaps: Vec<String>,
}

/// One partition's offsets, in the topic and in the archive.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionCoverage {
    /// The partition.
    pub partition: i32,
    /// The first offset the topic still holds.
    pub low_watermark: u64,
    /// The offset the topic's next record gets.
    pub high_watermark: u64,
    /// The archive's offsets of this partition, if it holds any.
    pub archive: Option<ArchiveSpan>,
}

/// The offsets of one partition an archive holds: records from `first`, and its commits
/// cover everything below `end`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ArchiveSpan {
    /// The first offset archived.
    pub first: u64,
    /// The next offset the archive's commits store.
    pub end: u64,
}

/// The coverage of `kafka`'s topic with `archive` read first: asks the broker (waiting at most
/// a few seconds) for the watermarks.
pub async fn coverage(
    kafka: &KafkaSourceConfig,
    archive: Option<&ArchiveReader>,
) -> Result<Coverage> {
    let bounds = watermarks(kafka, Some(LOOKUP_TIMEOUT)).await?;
    let lows = bounds.iter().map(|(&p, &(low, _))| (p, low)).collect();
    let partitions = bounds
        .iter()
        .map(|(&p, &(low, high))| PartitionCoverage {
            partition: p,
            low_watermark: low,
            high_watermark: high,
            archive: archive.and_then(|a| {
                let end = a.end(p);
                let first = a.first_offset(p, 0).filter(|&f| f < end)?;
                Some(ArchiveSpan { first, end })
            }),
        })
        .collect();
    Ok(Coverage {
        topic: kafka.topic.clone(),
        archive: archive.map(ArchiveReader::label),
        partitions,
        gaps: gaps(&kafka.topic, &lows, &BTreeMap::new(), archive, None),
    })
}

/// Per partition of `kafka`'s topic, its low and high watermarks (each broker request waits
/// `timeout`, the lookups' default when `None`).
pub async fn watermarks(
    kafka: &KafkaSourceConfig,
    timeout: Option<Duration>,
) -> Result<BTreeMap<i32, (u64, u64)>> {
    let cfg = kafka.clone();
    tokio::task::spawn_blocking(move || seek::watermarks_within(&cfg, timeout))
        .await
        .map_err(|source| Error::Task {
            task: "reading the topic's watermarks",
            source,
        })?
}

/// The offset ranges a replay would miss, per partition of `topic` (of `shard`, if given):
/// from where the version stands (`stored`, 0 without an offset) up to what the archive holds
/// (an archive that started late), and from the archive's end (or where the version stands)
/// up to the first offset the topic still holds (`lows`).
pub fn gaps(
    topic: &str,
    lows: &BTreeMap<i32, u64>,
    stored: &BTreeMap<String, u64>,
    archive: Option<&ArchiveReader>,
    shard: Option<Shard>,
) -> Vec<String> {
    let mut gaps = Vec::new();
    for (&p, &low) in lows
        .iter()
        .filter(|(p, _)| shard.is_none_or(|s| s.holds(**p)))
    {
        let key = kafka_partition_key(topic, p);
        let at = stored.get(&key).copied().unwrap_or(0);
        let mut next = at;
        if let Some(a) = archive
            && a.end(p) > at
        {
            let first = a.first_offset(p, at).unwrap_or(a.end(p));
            if at < first.min(low) {
                gaps.push(format!("{key} [{at}, {})", first.min(low)));
            }
            next = a.end(p);
        }
        if next < low {
            gaps.push(format!("{key} [{next}, {low})"));
        }
    }
    gaps
}

/// [`Coverage`] for `plan` and `status --topic`, or why it is not known.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Replay {
    /// The broker answered.
    Known(Coverage),
    /// The broker (or the archive) could not be read.
    Unknown {
        /// Why.
        error: String,
    },
}

/// What a replay of `table` from the start reads, when it is a Kafka table: its topic and the
/// raw archive it names (`archive`, opened from the same config); a raw archive table is its
/// own archive.
pub async fn replay(table: &TableHandle, archive: Option<&TableHandle>) -> Option<Replay> {
    let SourceConfig::Kafka(kafka) = &table.cfg.source else {
        return None;
    };
    let archive = match archive {
        Some(a) => Some(a),
        None if table.cfg.source.encoding() == Encoding::Raw => Some(table),
        None => None,
    };
    let known = async {
        let reader = match archive {
            Some(a) => ArchiveReader::open(a, &kafka.topic).await?,
            None => None,
        };
        coverage(kafka, reader.as_ref()).await
    };
    Some(match known.await {
        Ok(c) => Replay::Known(c),
        Err(e) => Replay::Unknown {
            error: crate::error::chain_text(std::iter::successors(
                Some(&e as &(dyn std::error::Error + 'static)),
                |e| e.source(),
            )),
        },
    })
}
