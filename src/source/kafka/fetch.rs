//! The consumer's messages in batches: every assigned partition's fetch queue is forwarded to
//! one queue of ours, which the poll thread drains with `rd_kafka_consume_batch_queue`, many
//! messages per call, instead of one `poll` (one event, one clock read, one allocation) per
//! message. Rebalances, errors and statistics stay on the consumer's queue, which the poll
//! thread serves between batches through rdkafka's `poll`.
//!
//! Invariants:
//! - a partition's queue is forwarded before the partition is assigned, so none of its
//!   messages reaches the consumer's queue after ours (and the poll thread serves that queue
//!   too, for a partition it could not forward): within a partition, offsets stay in order;
//! - messages of a revoked partition still queued are dropped by librdkafka (their fetch
//!   version is outdated), and the ingest loop ignores any of a partition it does not hold;
//! - the queue is destroyed by the thread that drains it, before the consumer is dropped.
//!
//! This is the crate's only FFI to librdkafka beyond rdkafka's safe API (rdkafka 0.39 does not
//! wrap batch consumption); every pointer handed to librdkafka is one it gave us.

use std::ffi::{CStr, CString, c_void};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

use bytes::{Bytes, BytesMut};
use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;

use super::KafkaMessage;
use crate::domain::TimestampType;

/// Messages taken per call, at most.
pub(super) const BATCH: usize = 4096;

/// The queue the assigned partitions' fetch queues are forwarded to; owned by the poll
/// thread.
pub(super) struct FetchQueue<'a> {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// Where the rebalance callback finds it (null once it is gone).
    shared: &'a AtomicPtr<rdsys::rd_kafka_queue_t>,
    batch: Vec<*mut rdsys::rd_kafka_message_t>,
}

/// What one call brought, in order.
pub(super) enum Fetched {
    /// A message.
    Message(KafkaMessage),
    /// The consumer reached the end of a partition.
    PartitionEnd(i32),
    /// A consumer error for a partition (librdkafka retries).
    Error(KafkaError),
}

impl<'a> FetchQueue<'a> {
    /// A new queue of `consumer`'s client, published in `shared` for [`forward`].
    pub(super) fn new<C: ConsumerContext>(
        consumer: &BaseConsumer<C>,
        shared: &'a AtomicPtr<rdsys::rd_kafka_queue_t>,
    ) -> Option<FetchQueue<'a>> {
        // SAFETY: the client handle is valid while `consumer` lives, and this queue is
        // destroyed (on drop) before the poll thread lets the consumer go.
        let queue =
            NonNull::new(unsafe { rdsys::rd_kafka_queue_new(consumer.client().native_ptr()) })?;
        shared.store(queue.as_ptr(), Ordering::Release);
        Some(FetchQueue {
            queue,
            shared,
            batch: Vec::with_capacity(BATCH),
        })
    }

    /// Waits up to `timeout_ms` for messages and hands each (owned) to `out`, in queue order;
    /// returns how many. Payloads and keys of one call share one allocation.
    pub(super) fn fetch(&mut self, timeout_ms: i32, out: &mut impl FnMut(Fetched)) -> usize {
        self.batch.clear();
        // SAFETY: `batch` has room for `BATCH` pointers; librdkafka writes at most that many
        // and returns how many, each a message we own until `rd_kafka_message_destroy`.
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                timeout_ms,
                self.batch.as_mut_ptr(),
                BATCH,
            )
        };
        let Ok(n) = usize::try_from(n) else {
            return 0;
        };
        // SAFETY: librdkafka initialised the first `n` entries.
        unsafe { self.batch.set_len(n.min(BATCH)) };
        let total: usize = self
            .batch
            .iter()
            // SAFETY: each entry is a valid message (above).
            .map(|&m| unsafe { (*m).len + (*m).key_len })
            .sum();
        let mut buffer = BytesMut::with_capacity(total);
        let mut spans = Vec::with_capacity(self.batch.len());
        for &m in &self.batch {
            // SAFETY: a valid message; `payload`/`key` point at `len`/`key_len` bytes when
            // not null.
            let (payload, key) = unsafe {
                (
                    copy_into(&mut buffer, (*m).payload, (*m).len),
                    copy_into(&mut buffer, (*m).key, (*m).key_len),
                )
            };
            spans.push((payload, key));
        }
        let buffer = buffer.freeze();
        for (&m, (payload, key)) in self.batch.iter().zip(spans) {
            // SAFETY: a valid message, destroyed right after and never touched again.
            let fetched = unsafe { fetched(m, &buffer, payload, key) };
            unsafe { rdsys::rd_kafka_message_destroy(m) };
            out(fetched);
        }
        self.batch.clear();
        n
    }
}

impl Drop for FetchQueue<'_> {
    fn drop(&mut self) {
        // The rebalance callback runs on this (the poll) thread, so it is not using the queue.
        self.shared.store(ptr::null_mut(), Ordering::Release);
        // SAFETY: the handle is ours, destroyed once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue.as_ptr()) };
    }
}

/// Forwards `partitions` of `topic` to the fetch queue in `shared`, if there is one. Call
/// before assigning them.
pub(super) fn forward<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    shared: &AtomicPtr<rdsys::rd_kafka_queue_t>,
    topic: &str,
    partitions: &[i32],
) -> bool {
    let queue = shared.load(Ordering::Acquire);
    if queue.is_null() {
        return false;
    }
    let Ok(topic) = CString::new(topic) else {
        return false;
    };
    for &p in partitions {
        // SAFETY: the client handle is valid while `consumer` lives; `queue` is alive (only
        // the poll thread, which runs this callback, destroys it); the partition's handle is
        // released at once (the forwarding stays on the partition's queue).
        unsafe {
            let partition = rdsys::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                p,
            );
            if partition.is_null() {
                return false;
            }
            rdsys::rd_kafka_queue_forward(partition, queue);
            rdsys::rd_kafka_queue_destroy(partition);
        }
    }
    true
}

/// Appends `len` bytes at `data` to `buffer`; their span, or `None` for a null pointer.
///
/// # Safety
/// `data` is null or points at `len` readable bytes.
unsafe fn copy_into(
    buffer: &mut BytesMut,
    data: *const c_void,
    len: usize,
) -> Option<(usize, usize)> {
    if data.is_null() {
        return None;
    }
    let start = buffer.len();
    // SAFETY: the caller's promise.
    buffer.extend_from_slice(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) });
    Some((start, start + len))
}

/// One message of a batch as what it tells the loop.
///
/// # Safety
/// `m` is a valid message.
unsafe fn fetched(
    m: *mut rdsys::rd_kafka_message_t,
    buffer: &Bytes,
    payload: Option<(usize, usize)>,
    key: Option<(usize, usize)>,
) -> Fetched {
    // SAFETY: the caller's promise.
    let msg = unsafe { &*m };
    match msg.err {
        rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {}
        rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => {
            return Fetched::PartitionEnd(msg.partition);
        }
        err => return Fetched::Error(KafkaError::MessageConsumption(err.into())),
    }
    let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    // SAFETY: a valid message and a valid out-pointer.
    let ts = unsafe { rdsys::rd_kafka_message_timestamp(m, &mut kind) };
    let timestamp_type = match kind {
        _ if ts < 0 => None,
        rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_CREATE_TIME => {
            Some(TimestampType::CreateTime)
        }
        rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => {
            Some(TimestampType::LogAppendTime)
        }
        _ => None,
    };
    let span = |s: Option<(usize, usize)>| s.map(|(a, b)| buffer.slice(a..b));
    Fetched::Message(KafkaMessage {
        partition: msg.partition,
        offset: msg.offset,
        timestamp_ms: timestamp_type.map(|_| ts),
        timestamp_type,
        tombstone: payload.is_none(),
        payload: span(payload).unwrap_or_default(),
        key: span(key),
        // SAFETY: a valid message.
        headers: unsafe { headers(m) },
    })
}

/// The message's headers, if it has any.
///
/// # Safety
/// `m` is a valid message.
unsafe fn headers(m: *mut rdsys::rd_kafka_message_t) -> Option<crate::decode::Headers> {
    let mut hdrs: *mut rdsys::rd_kafka_headers_t = ptr::null_mut();
    // SAFETY: a valid message and out-pointer; the headers stay owned by the message.
    let err = unsafe { rdsys::rd_kafka_message_headers(m, &mut hdrs) };
    if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || hdrs.is_null() {
        return None;
    }
    // SAFETY: valid headers (above).
    let count = unsafe { rdsys::rd_kafka_header_cnt(hdrs) };
    if count == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (mut name, mut value, mut size) = (ptr::null(), ptr::null(), 0usize);
        // SAFETY: `i` is below the count; the out-pointers are valid; the name is a
        // NUL-terminated string and the value `size` bytes (or null), owned by the headers.
        unsafe {
            if rdsys::rd_kafka_header_get_all(hdrs, i, &mut name, &mut value, &mut size)
                != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                || name.is_null()
            {
                continue;
            }
            let name = CStr::from_ptr(name).to_string_lossy().into_owned();
            let value = (!value.is_null()).then(|| {
                Bytes::copy_from_slice(std::slice::from_raw_parts(value.cast::<u8>(), size))
            });
            out.push((name, value));
        }
    }
    Some(out.into())
}
