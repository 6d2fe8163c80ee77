//! The archive driver: a rebuild's first phase when its table names a raw archive. Per Kafka
//! partition, the archive's records from where the version stands up to where the archive
//! ends, through the version writer like the topic's; the Kafka driver then continues from
//! exactly there (the offsets stored in the version's commits).
//!
//! Three stages overlap, so a replay keeps both cores busy: a pump task reads the archive's
//! next step (its files once for every partition, decoded on the blocking pool) while it
//! decodes the current step's records into the version's schema (blocking pool, one batch
//! ahead), while the writer shapes, encodes and commits the batch before.
//!
//! Invariant: a partition's position only moves over records the archive holds, in offset
//! order, and ends at the archive's stored offset (offsets the archive skipped, such as
//! transaction markers, are covered as the topic would cover them); the archive phase ends
//! only when the pump delivered everything (a failed or panicked pump fails the rebuild). The
//! writer commits at least every `max_age`, when its buffers are over budget, and at the end,
//! so a killed replay resumes from its last commit.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::SourceConfig;
use crate::decode::{Decoded, RecordDecoder};
use crate::domain::Shard;
use crate::error::{Error, Result};
use crate::pipeline::archive::{ArchiveFiles, ArchiveReader};
use crate::pipeline::ingest::report::Stop;
use crate::pipeline::ingest::writer::{VersionWriter, decode_blocking};
use crate::registry::SchemaRegistry;
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
    let mut deadline = Instant::now() + w.table.writer.max_age;
    // Per partition of the shard, what is left to replay: from where the version stands to
    // the archive's end.
    let ranges: BTreeMap<i32, (u64, u64)> = archive
        .partitions()
        .filter(|p| shard.is_none_or(|s| s.holds(*p)))
        .map(|p| {
            let at = w.log.state().positions.get(&*archive.key(p));
            (p, (at.map_or(0, |at| at.offset), archive.end(p)))
        })
        .filter(|(_, (at, end))| at < end)
        .collect();
    w.metrics.assigned(ranges.len());
    if ranges.is_empty() {
        return Ok(Stop::End);
    }
    let registry = match &w.table.source {
        SourceConfig::Kafka(k) => k.registry.as_deref().map(SchemaRegistry::new).transpose()?,
        SourceConfig::Files(_) => None,
    };
    let pump = Pump {
        files: archive.files(),
        topic: archive.topic().into(),
        steps: archive.steps(&ranges),
        ranges: Arc::new(ranges.clone()),
        batch_size: w.table.source.batch_size(),
        decoder: w.decoder.clone(),
        registry,
    };
    let mut ahead = Ahead::start(pump);
    while let Some(next) = ahead.rx.recv().await {
        if shutdown.is_triggered() {
            w.commit().await?;
            return Ok(Stop::Interrupted);
        }
        let (batch, decoded) = next?;
        w.report.records += batch.records.len() as u64;
        w.write_decoded(&batch, decoded, &batch.partition).await?;
        deadline = w.commit_when_due(deadline).await?;
    }
    ahead.pump.finished("replaying the raw archive").await?;
    w.commit().await?;
    for (p, (from, to)) in ranges {
        tracing::info!(
            partition = %archive.key(p), from, to, archive = %archive.label(),
            "replayed the archive"
        );
    }
    Ok(Stop::End)
}

/// What the pump task owns: the archive's files and plan, and a decoder of its own.
struct Pump {
    files: ArchiveFiles,
    topic: Arc<str>,
    steps: Vec<Vec<String>>,
    ranges: Arc<BTreeMap<i32, (u64, u64)>>,
    batch_size: usize,
    decoder: RecordDecoder,
    registry: Option<SchemaRegistry>,
}

type Item = Result<(SourceBatch, Decoded)>;

/// Pieces (a Parquet batch of a file each, or a sorted step) the reader task reads ahead.
const PIECES_AHEAD: usize = 4;

impl Pump {
    /// Receives the archive's pieces from a reader task of its own (which reads ahead) and
    /// sends them on as decoded batches of up to `batch_size` records per partition, then
    /// each partition's end.
    async fn run(mut self, tx: mpsc::Sender<Item>) -> Result<()> {
        let (pieces_tx, mut pieces) = mpsc::channel(PIECES_AHEAD);
        let steps = std::mem::take(&mut self.steps);
        let reader = {
            let (files, ranges, errors) =
                (self.files.clone(), self.ranges.clone(), pieces_tx.clone());
            tokio::spawn(async move {
                if let Err(e) = files.read_steps(steps, ranges, pieces_tx).await {
                    let _ = errors.send(Err(e)).await;
                }
            })
        };
        let mut reader = Task(Some(reader));
        // Per partition: where its next batch starts, and the records not sent yet.
        let mut at: BTreeMap<i32, u64> = self.ranges.iter().map(|(&p, &(f, _))| (p, f)).collect();
        let mut held: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        while let Some(piece) = pieces.recv().await {
            for (p, records) in piece? {
                let buffer = held.entry(p).or_default();
                let last = buffer
                    .last()
                    .map(|r| r.offset + 1)
                    .unwrap_or_else(|| at.get(&p).copied().unwrap_or(0));
                if let Some(first) = records.first()
                    && first.offset < last
                {
                    return Err(Error::Corrupt {
                        path: self.files.dir(),
                        source: format!(
                            "offset {} of partition {p} comes after {} in the archive's read plan",
                            first.offset,
                            last.saturating_sub(1)
                        )
                        .into(),
                    });
                }
                buffer.extend(records);
                // Whole batches go on; the rest waits for the partition's next piece.
                let whole = buffer.len() / self.batch_size * self.batch_size;
                if whole == 0 {
                    continue;
                }
                let rest = buffer.split_off(whole);
                let mut ready = std::mem::replace(buffer, rest).into_iter();
                for _ in 0..whole / self.batch_size {
                    let chunk: Vec<Record> = ready.by_ref().take(self.batch_size).collect();
                    if !self.send_records(&tx, &mut at, p, chunk).await? {
                        return Ok(());
                    }
                }
            }
        }
        // A panicked reader closes the channel early: an error, never a short archive phase.
        reader.finished("reading the raw archive").await?;
        for (p, chunk) in std::mem::take(&mut held) {
            if !chunk.is_empty() && !self.send_records(&tx, &mut at, p, chunk).await? {
                return Ok(());
            }
        }
        // Offsets after the last archived record that the archive's commits cover (the topic's
        // transaction markers, records compacted away): covered here too.
        for (&p, &(_, end)) in self.ranges.clone().iter() {
            let position = at.get(&p).copied().unwrap_or(end);
            if position < end {
                let batch = self.batch(p, position, end, Vec::new());
                if !self.send(&tx, batch).await? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Sends `records` of partition `p` as one batch from where the partition stands.
    async fn send_records(
        &mut self,
        tx: &mpsc::Sender<Item>,
        at: &mut BTreeMap<i32, u64>,
        p: i32,
        records: Vec<Record>,
    ) -> Result<bool> {
        let position = at.entry(p).or_default();
        let next = records.last().map_or(*position, |r| r.offset + 1);
        let batch = self.batch(p, *position, next, records);
        *position = next;
        self.send(tx, batch).await
    }

    /// Decodes `batch` on the blocking pool and sends it; `false` when the writer is gone.
    async fn send(&mut self, tx: &mpsc::Sender<Item>, batch: SourceBatch) -> Result<bool> {
        self.decoder
            .resolve(&batch.records, self.registry.as_ref())
            .await?;
        let decoded = decode_blocking(self.decoder.clone(), batch).await?;
        Ok(tx.send(Ok(decoded)).await.is_ok())
    }

    fn batch(&self, partition: i32, start: u64, next: u64, records: Vec<Record>) -> SourceBatch {
        SourceBatch {
            partition: self.files.key(partition),
            origin: Origin::Kafka {
                topic: self.topic.clone(),
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
}

/// The pump task and what it sends.
struct Ahead {
    rx: mpsc::Receiver<Item>,
    pump: Task,
}

impl Ahead {
    fn start(pump: Pump) -> Ahead {
        let (tx, rx) = mpsc::channel(2);
        let handle = tokio::spawn(async move {
            let errors = tx.clone();
            if let Err(e) = pump.run(tx).await {
                // The writer sees the error where the records would have been.
                let _ = errors.send(Err(e)).await;
            }
        });
        Ahead {
            rx,
            pump: Task(Some(handle)),
        }
    }
}

/// A spawned task, aborted when dropped.
struct Task(Option<tokio::task::JoinHandle<()>>);

impl Task {
    /// After its channel closed: whether the task ended normally (a panic is an error).
    async fn finished(&mut self, task: &'static str) -> Result<()> {
        match self.0.take() {
            Some(handle) => handle.await.map_err(|source| Error::Task { task, source }),
            None => Ok(()),
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}
