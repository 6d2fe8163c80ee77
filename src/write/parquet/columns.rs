//! Column writers that encode in the background: each Parquet column writer of an open file
//! has a queue of leaf columns, drained in order by one rayon task at a time, so the writer
//! hands a batch's columns over and goes on with the next batch while they encode.
//!
//! Invariant: a column writer gets its leaves in the order they were queued, from one task at a
//! time; [`Columns::settled`] returns only once every leaf queued so far is written (or
//! failed), and the writers are taken out ([`Columns::take`]) only with nothing queued.
//! Called from a rayon pool's thread, [`Columns::push`] encodes before it returns (nothing is
//! left for a wait that could hold the pool's thread).
//! [`Columns::memory_size`] never counts less than is held: a queued leaf counts with its Arrow
//! bytes until the writer's figure includes it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use parquet::arrow::arrow_writer::{ArrowColumnWriter, ArrowLeafColumn};
use parquet::errors::{ParquetError, Result};
use tokio::sync::Notify;

/// Leaves queued and not yet written, and the Arrow bytes they hold, with a wake-up for the
/// tasks waiting for fewer (a task must not hold its runtime's thread), sent once the count
/// is down to what one of them waits for.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    queued: Mutex<Queued>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Queued {
    leaves: usize,
    bytes: usize,
    /// The most leaves any waiting task waits for (`None`: none waits). A leaf done wakes the
    /// waiters only once the count is down to it, not every time (each wake-up costs a
    /// thread switch, and a file's leaves are done by the hundred).
    wake_at: Option<usize>,
}

impl Backlog {
    fn add(&self, leaves: usize, bytes: usize) {
        let mut queued = lock(&self.queued);
        queued.leaves += leaves;
        queued.bytes += bytes;
    }

    /// A leaf that held `bytes` is written.
    fn done(&self, bytes: usize) {
        let mut queued = lock(&self.queued);
        queued.leaves -= 1;
        queued.bytes -= bytes;
        let wake = queued.wake_at.is_some_and(|most| queued.leaves <= most);
        if wake {
            queued.wake_at = None;
        }
        drop(queued);
        if wake {
            self.notify.notify_waiters();
        }
    }

    fn bytes(&self) -> usize {
        lock(&self.queued).bytes
    }

    fn leaves(&self) -> usize {
        lock(&self.queued).leaves
    }

    /// Returns once at most `most` leaves are queued, yielding to the runtime meanwhile.
    pub(super) async fn at_most(&self, most: usize) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the count is read, so a leaf done in between still wakes it.
            notified.as_mut().enable();
            {
                let mut queued = lock(&self.queued);
                if queued.leaves <= most {
                    return;
                }
                queued.wake_at = Some(queued.wake_at.map_or(most, |w| w.max(most)));
            }
            notified.await;
        }
    }
}

/// One column writer and the leaves waiting for it.
struct Slot {
    /// `None` while a task is writing with it.
    writer: Option<ArrowColumnWriter>,
    /// Each with the bytes it counts for in [`Columns::memory_size`] until written.
    queue: VecDeque<(ArrowLeafColumn, usize)>,
    /// Whether a task is draining the queue (at most one is).
    draining: bool,
    /// The first error of a write; later leaves are dropped.
    error: Option<ParquetError>,
    /// The writer's figures after its last write (read without waiting for it).
    memory: usize,
    estimated: usize,
}

type Shared = Arc<Mutex<Slot>>;

/// The column writers of one open file's row group.
pub(super) struct Columns {
    slots: Vec<Shared>,
    /// This file's leaves in flight, and their bytes.
    backlog: Arc<Backlog>,
    /// Every file's leaves in flight, and their bytes (the writer's).
    all: Arc<Backlog>,
}

impl Columns {
    pub(super) fn new(writers: Vec<ArrowColumnWriter>, all: Arc<Backlog>) -> Columns {
        Columns {
            slots: writers.into_iter().map(slot).collect(),
            backlog: Arc::default(),
            all,
        }
    }

    /// Queues `leaves` (one per column, in column order), which hold `bytes` of Arrow data;
    /// they are written in the background.
    pub(super) fn push(&self, leaves: Vec<ArrowLeafColumn>, bytes: usize) {
        self.backlog.add(leaves.len(), bytes);
        self.all.add(leaves.len(), bytes);
        let n = leaves.len().max(1);
        let mut idle = Vec::new();
        for (i, (shared, leaf)) in self.slots.iter().zip(leaves).enumerate() {
            // The first leaf counts for the remainder, so the shares add up to `bytes`.
            let share = bytes / n + if i == 0 { bytes % n } else { 0 };
            let mut slot = lock(shared);
            slot.queue.push_back((leaf, share));
            if !slot.draining {
                slot.draining = true;
                idle.push(shared.clone());
            }
        }
        if rayon::current_thread_index().is_some() {
            // On a rayon pool's thread (compaction's one-thread pool, say) the tasks would go
            // to that pool, and waiting for them could hold its only thread: encode them here,
            // in parallel within the pool, with this thread taking part.
            rayon::scope(|s| {
                for shared in &idle {
                    s.spawn(|_| drain(shared, &self.backlog, &self.all));
                }
            });
            return;
        }
        for shared in idle {
            let (backlog, all) = (self.backlog.clone(), self.all.clone());
            rayon::spawn(move || drain(&shared, &backlog, &all));
        }
    }

    /// Returns once every queued leaf is written, yielding to the runtime meanwhile; the first
    /// error of any column.
    pub(super) async fn settled(&self) -> Result<()> {
        self.backlog.at_most(0).await;
        self.first_error()
    }

    fn first_error(&self) -> Result<()> {
        for shared in &self.slots {
            if let Some(e) = lock(shared).error.take() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The column writers, once every queued leaf is written (after [`Columns::settled`], or
    /// on a rayon pool's thread, where [`Columns::push`] encodes in place); `next` take their
    /// place.
    pub(super) fn take(&mut self, next: Vec<ArrowColumnWriter>) -> Result<Vec<ArrowColumnWriter>> {
        self.first_error()?;
        if self.backlog.leaves() > 0 {
            return Err(ParquetError::General(
                "column writers taken with leaves still queued".into(),
            ));
        }
        let taken = std::mem::replace(&mut self.slots, next.into_iter().map(slot).collect());
        taken
            .into_iter()
            .map(|shared| {
                lock(&shared)
                    .writer
                    .take()
                    .ok_or_else(|| ParquetError::General("a column writer is still in use".into()))
            })
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Memory the writers held after their last write.
    ///
    /// The queued leaves' bytes are read first: a leaf leaves them only after its writer's
    /// figure includes it, so one being written is counted once or twice, never not at all.
    pub(super) fn memory_size(&self) -> usize {
        let queued = self.backlog.bytes();
        queued + self.slots.iter().map(|s| lock(s).memory).sum::<usize>()
    }

    /// The bytes the writers will write, as estimated after their last write.
    pub(super) fn estimated_total_bytes(&self) -> usize {
        self.slots.iter().map(|s| lock(s).estimated).sum()
    }
}

fn slot(writer: ArrowColumnWriter) -> Shared {
    Arc::new(Mutex::new(Slot {
        memory: writer.memory_size(),
        estimated: writer.get_estimated_total_bytes(),
        writer: Some(writer),
        queue: VecDeque::new(),
        draining: false,
        error: None,
    }))
}

/// Writes `shared`'s queued leaves in order until its queue is empty.
fn drain(shared: &Mutex<Slot>, backlog: &Backlog, all: &Backlog) {
    loop {
        let (writer, (leaf, share)) = {
            let mut slot = lock(shared);
            let Some(leaf) = slot.queue.pop_front() else {
                slot.draining = false;
                return;
            };
            let writer = if slot.error.is_none() {
                slot.writer.take()
            } else {
                None
            };
            (writer, leaf)
        };
        if let Some(mut writer) = writer {
            // A panic must not unwind out of a rayon task (that aborts): it becomes the
            // column's error, and the writer is dropped.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.write(&leaf)));
            let mut slot = lock(shared);
            match result {
                Ok(result) => {
                    slot.memory = writer.memory_size();
                    slot.estimated = writer.get_estimated_total_bytes();
                    slot.writer = Some(writer);
                    if let Err(e) = result {
                        slot.error.get_or_insert(e);
                    }
                }
                Err(_) => {
                    slot.error
                        .get_or_insert(ParquetError::General("encoding a column panicked".into()));
                }
            }
        }
        drop(leaf);
        backlog.done(share);
        all.done(share);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::arrow_writer::{ArrowWriterOptions, compute_leaves};
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    /// Many small leaves queued at once, on two columns: every value comes back in order.
    #[test]
    fn queued_leaves_are_written_in_order() {
        write_and_read_back();
    }

    /// The same from the only thread of a one-thread rayon pool (where compaction writes):
    /// it must not wait for tasks queued behind itself.
    #[test]
    fn a_rayon_pool_thread_writing_does_not_wait_for_itself() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            pool.install(write_and_read_back);
            let _ = tx.send(());
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("writing on a one-thread pool finished");
    }

    /// Tasks waiting for different counts are each woken once the count is down to theirs,
    /// though a leaf done wakes nobody before that.
    #[test]
    fn waiters_are_woken_at_their_counts() {
        let backlog = Arc::new(Backlog::default());
        backlog.add(4, 40);
        let (tx, rx) = std::sync::mpsc::channel();
        for most in [2, 0] {
            let (backlog, tx) = (backlog.clone(), tx.clone());
            std::thread::spawn(move || {
                futures::executor::block_on(backlog.at_most(most));
                let _ = tx.send(most);
            });
        }
        let woken = || rx.recv_timeout(std::time::Duration::from_secs(60));
        backlog.done(10);
        backlog.done(10);
        assert_eq!(woken(), Ok(2), "the waiter for two, at two");
        backlog.done(10);
        assert!(rx.try_recv().is_err(), "nobody waits for one");
        backlog.done(10);
        assert_eq!(woken(), Ok(0), "the waiter for none, at none");
        assert_eq!(backlog.bytes(), 0);
    }

    fn write_and_read_back() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, true),
        ]));
        let props = WriterProperties::builder()
            .set_data_page_row_count_limit(7)
            .build();
        let options = ArrowWriterOptions::new().with_properties(props);
        let (mut file, factory) =
            ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), options)
                .and_then(ArrowWriter::into_serialized_writer)
                .unwrap();
        let writers = factory.create_column_writers(0).unwrap();
        let all = Arc::new(Backlog::default());
        let mut columns = Columns::new(writers, all.clone());
        for chunk in 0..200i64 {
            let a: ArrayRef = Arc::new(Int64Array::from_iter_values(chunk * 10..chunk * 10 + 10));
            let b: ArrayRef = Arc::new(Int64Array::from_iter(
                (chunk * 10..chunk * 10 + 10).map(|v| (v % 3 != 0).then_some(-v)),
            ));
            let leaves = schema
                .fields()
                .iter()
                .zip([a, b])
                .flat_map(|(f, c)| compute_leaves(f, &c).unwrap())
                .collect();
            // (An odd count, so the shares have a remainder.)
            columns.push(leaves, 161);
        }
        futures::executor::block_on(columns.settled()).unwrap();
        let taken = columns.take(Vec::new()).unwrap();
        futures::executor::block_on(all.at_most(0));
        assert_eq!(all.bytes(), 0, "the writer's count is back to none");
        assert_eq!(columns.len(), 0);
        assert_eq!(
            columns.memory_size(),
            0,
            "every queued byte is counted off once written"
        );

        let mut group = file.next_row_group().unwrap();
        for writer in taken {
            writer
                .close()
                .unwrap()
                .append_to_row_group(&mut group)
                .unwrap();
        }
        group.close().unwrap();
        let bytes = Bytes::from(file.into_inner().unwrap());
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let a: Vec<i64> = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec();
        let b: Vec<Option<i64>> = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(a, (0..2000).collect::<Vec<_>>());
        assert_eq!(
            b,
            (0..2000)
                .map(|v| (v % 3 != 0).then_some(-v))
                .collect::<Vec<_>>()
        );
    }
}
