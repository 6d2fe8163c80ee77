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
//! wrap batch consumption); every pointer handed to librdkafka is one it gave us. It reads one
//! private field, for the bundled librdkafka version only (see [`private`]).

use std::ffi::{CStr, CString, c_void};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

use bytes::{Bytes, BytesMut};
use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;

use super::KafkaMessage;
use crate::domain::TimestampType;
use crate::source::buffers::BufferPool;

/// Messages taken per call, at most.
pub(super) const BATCH: usize = 4096;

/// The queue the assigned partitions' fetch queues are forwarded to; owned by the poll
/// thread.
pub(super) struct FetchQueue<'a> {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// Where the rebalance callback finds it (null once it is gone).
    shared: &'a AtomicPtr<rdsys::rd_kafka_queue_t>,
    batch: Vec<*mut rdsys::rd_kafka_message_t>,
    /// The payload buffers of recent calls, reused once their records are decoded.
    buffers: BufferPool,
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
            // ~1 MB per call of small events, three calls a burst; bursts wait for the
            // writer in the loop's channel (16 events) and while they are decoded.
            buffers: BufferPool::new(16, 4 << 20),
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
        let mut buffer = self.buffers.take(total);
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
        let buffer = self.buffers.freeze(buffer);
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
    // SAFETY: the caller's promise.
    if unsafe { private::without_headers(m) } {
        return None;
    }
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

/// The one read of librdkafka's private message struct: whether a consumed message's record
/// has no headers, without `rd_kafka_message_headers`, which for every message of the v2
/// record format (whose headers field is at least its count, one byte) allocates a parse
/// buffer and a header list even when the count is 0: ~6 % of the Kafka path's CPU on small
/// events in a profile, ~9 % less CPU per event measured (benches/README.md). The layout
/// below mirrors `rd_kafka_msg_t` (`rdkafka_msg.h`) of librdkafka 2.12.1, the version
/// rdkafka-sys bundles; with any other version linked, every message takes the public call.
mod private {
    use std::ffi::{c_int, c_void};
    use std::sync::OnceLock;

    use rdkafka::bindings as rdsys;

    /// The librdkafka version whose layout [`Msg`] mirrors.
    const MIRRORED: i32 = 0x020c_01ff;

    /// `rd_kafkap_bytes_t`, up to its data pointer.
    #[repr(C)]
    struct KafkaBytes {
        len: i32,
        data: *const u8,
    }

    /// `rd_kafka_msg_t` up to `rkm_u.consumer.binhdrs` (the union's first consumer field;
    /// `KafkaBytes` has the union's alignment, 8).
    #[repr(C)]
    struct Msg {
        message: rdsys::rd_kafka_message_t,
        link: [*mut c_void; 2],
        flags: c_int,
        tstype: c_int,
        timestamp: i64,
        headers: *mut rdsys::rd_kafka_headers_t,
        status: c_int,
        broker_id: i32,
        binhdrs: KafkaBytes,
    }

    // The offset worked out by hand from `rdkafka_msg.h` on a 64-bit target: 72 bytes of
    // `rd_kafka_message_t`, 16 of list links, 4 + 4 + 8 + 8 + 4 + 4 of scalar fields.
    #[cfg(target_pointer_width = "64")]
    const _: () = assert!(std::mem::offset_of!(Msg, binhdrs) == 120);

    /// Whether the linked librdkafka is the one [`Msg`] mirrors.
    pub(super) fn mirrored() -> bool {
        static LINKED: OnceLock<bool> = OnceLock::new();
        // SAFETY: a plain query.
        *LINKED.get_or_init(|| unsafe { rdsys::rd_kafka_version() } == MIRRORED)
    }

    /// True when the consumed message `m` certainly has no headers: nothing parsed yet and
    /// its record's headers field is empty or the single byte of a zero count. False when it
    /// may have some (then `rd_kafka_message_headers` decides).
    ///
    /// # Safety
    /// `m` is a valid message returned by a consumer call, not an error.
    pub(super) unsafe fn without_headers(m: *mut rdsys::rd_kafka_message_t) -> bool {
        if !mirrored() {
            return false;
        }
        // SAFETY: a consumed message is the first field of an `rd_kafka_msg_t`, whose layout
        // up to `binhdrs` is `Msg`'s for this version (checked above).
        let msg = unsafe { &*m.cast::<Msg>() };
        if !msg.headers.is_null() {
            return false;
        }
        match msg.binhdrs.len {
            0 => true,
            // SAFETY: `data` points at `len` bytes of the fetch buffer the message holds.
            1 => !msg.binhdrs.data.is_null() && unsafe { *msg.binhdrs.data } == 0,
            _ => false,
        }
    }

    #[cfg(test)]
    mod tests {
        use std::time::{Duration, Instant};

        use rdkafka::config::ClientConfig;
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

        use crate::source::mock::MockKafka;

        /// The private read against the public call, on records with no headers, an empty
        /// payload, and one or two headers (a null value too).
        #[test]
        fn records_without_headers_are_told_apart_from_records_with_some() {
            let kafka = MockKafka::start(&[("hdrs", 1)]).unwrap();
            let brokers = kafka.bootstrap_servers();
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .create()
                .unwrap();
            let one = OwnedHeaders::new().insert(Header {
                key: "a",
                value: Some("1"),
            });
            let two = one.clone().insert(Header::<&str> {
                key: "b",
                value: None,
            });
            let cases = [
                (Some(b"{}".as_slice()), None),
                (Some(b"".as_slice()), None),
                (None, None),
                (Some(b"{}".as_slice()), Some(one)),
                (None, Some(two)),
            ];
            for (payload, headers) in &cases {
                let mut record = BaseRecord::<(), [u8]>::to("hdrs").partition(0);
                if let Some(p) = payload {
                    record = record.payload(*p);
                }
                if let Some(h) = headers {
                    record = record.headers(h.clone());
                }
                producer.send(record).map_err(|(e, _)| e).unwrap();
            }
            producer.flush(Duration::from_secs(10)).unwrap();
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .set("group.id", "hdrs")
                .set("auto.offset.reset", "earliest")
                .create()
                .unwrap();
            consumer.subscribe(&["hdrs"]).unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut seen = 0;
            while seen < cases.len() {
                assert!(
                    Instant::now() < deadline,
                    "consumed {seen} of {}",
                    cases.len()
                );
                let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let m = m.unwrap();
                let (_, headers) = &cases[usize::try_from(m.offset()).unwrap()];
                // SAFETY: a consumed message, not an error.
                let without = unsafe { super::without_headers(m.ptr()) };
                assert_eq!(without, headers.is_none(), "offset {}", m.offset());
                assert_eq!(
                    m.headers().map_or(0, |h| h.count()),
                    headers.as_ref().map_or(0, |h| h.count())
                );
                seen += 1;
            }
        }

        /// Fails when rdkafka-sys bundles another librdkafka: check `Msg` against that
        /// version's `rdkafka_msg.h`, then update `MIRRORED`.
        #[test]
        fn the_bundled_librdkafka_is_the_mirrored_one() {
            assert!(super::mirrored(), "librdkafka {:#x}", unsafe {
                rdkafka::bindings::rd_kafka_version()
            });
        }
    }
}
