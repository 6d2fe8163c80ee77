//! The archive driver: a rebuild's first phase when its table names a raw archive. Per Kafka
//! partition, the archive's records from where the version stands up to where the archive
//! ends, through the version writer like the topic's; the Kafka driver then continues from
//! exactly there (the offsets stored in the version's commits).
//!
//! Invariant: a partition's position only moves over records the archive holds, in offset
//! order, and ends at the archive's stored offset (offsets the archive skipped, such as
//! transaction markers, are covered as the topic would cover them); the writer commits at
//! least every `max_age`, when its buffers are over budget, and at the end, so a killed replay
//! resumes from its last commit.

use tokio::time::Instant;

use crate::domain::Shard;
use crate::error::Result;
use crate::pipeline::archive::ArchiveReader;
use crate::pipeline::ingest::report::Stop;
use crate::pipeline::ingest::writer::VersionWriter;
use crate::shutdown::Shutdown;
use crate::source::{Origin, Record, SourceBatch, SourcePosition};

/// Replays `archive` into the version until every partition stands at the archive's end, or
/// shutdown.
pub(super) async fn run(
    w: &mut VersionWriter<'_>,
    archive: &ArchiveReader,
    shard: Option<Shard>,
    shutdown: &Shutdown,
) -> Result<Stop> {
    let max_age = w.table.writer.max_age;
    let batch_size = w.table.source.batch_size();
    let mut deadline = Instant::now() + max_age;
    let topic: std::sync::Arc<str> = archive.topic().into();
    let partitions: Vec<i32> = archive
        .partitions()
        .filter(|p| shard.is_none_or(|s| s.holds(*p)))
        .collect();
    w.metrics.assigned(partitions.len());
    for partition in partitions {
        let key = archive.key(partition);
        let end = archive.end(partition);
        let mut at = w.log.state().positions.get(&*key).map_or(0, |p| p.offset);
        if at >= end {
            continue;
        }
        let started = at;
        for cluster in archive.clusters(partition, at, end) {
            let records = archive.read_cluster(partition, &cluster, at, end).await?;
            let mut records = records.into_iter().peekable();
            while records.peek().is_some() {
                if shutdown.is_triggered() {
                    w.commit().await?;
                    return Ok(Stop::Interrupted);
                }
                let chunk: Vec<Record> = records.by_ref().take(batch_size).collect();
                let next = chunk.last().map_or(at, |r| r.offset + 1);
                let batch = batch(&key, &topic, partition, at, next, chunk);
                w.report.records += batch.records.len() as u64;
                w.write(&batch).await?;
                at = next;
                if Instant::now() >= deadline || w.over_budget() {
                    w.commit().await?;
                    w.heartbeat(None).await;
                    deadline = Instant::now() + max_age;
                }
            }
        }
        if at < end {
            // Offsets after the last archived record that the archive's commits cover (the
            // topic's transaction markers, records compacted away): covered here too.
            w.write(&batch(&key, &topic, partition, at, end, Vec::new()))
                .await?;
        }
        tracing::info!(
            partition = %key, from = started, to = end, archive = %archive.label(),
            "replayed the archive"
        );
    }
    w.commit().await?;
    Ok(Stop::End)
}

fn batch(
    key: &std::sync::Arc<str>,
    topic: &std::sync::Arc<str>,
    partition: i32,
    start: u64,
    next: u64,
    records: Vec<Record>,
) -> SourceBatch {
    SourceBatch {
        partition: key.clone(),
        origin: Origin::Kafka {
            topic: topic.clone(),
            partition,
        },
        start,
        records,
        position: SourcePosition {
            offset: next,
            end_byte: None,
            eof: false,
        },
    }
}
