//! The Kafka source: one consumer per table and version, polled on its own thread.
//!
//! Everything librdkafka tells us becomes an [`Event`] on one bounded channel, in the order it
//! happened: message bursts, partition assignments and revocations, partition ends, errors.
//! The ingest loop owns all decisions. Rebalance callbacks run on the consumer thread and
//! *wait* for the loop's answer, which is safe because the loop never needs the consumer
//! thread to make progress:
//! - on assignment the loop answers with where each partition must start (the offsets stored
//!   in the version), and the callback assigns exactly those offsets;
//! - on revocation the loop commits what it buffered first, then the callback gives the
//!   partitions up. Messages fetched before a rebalance are delivered before its event, except
//!   those still in a fetch batch ([`fetch`]): a revoked partition's are dropped by librdkafka,
//!   a kept partition's follow the event, in offset order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers as _, Message as _, Timestamp};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use self::fetch::{FetchQueue, Fetched};
use crate::config::KafkaSourceConfig;
use crate::domain::{Shard, TimestampType};
use crate::error::{BoxError, ContextError, Error, Result};

/// How long a rebalance callback waits for the ingest loop (a commit may be in flight).
const REBALANCE_REPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// Messages per burst handed to the loop, at most.
const MAX_BURST_MESSAGES: usize = 10_000;
/// Payload bytes per burst, at most.
const MAX_BURST_BYTES: usize = 8 << 20;
/// How long closing the consumer (leaving the group) may take before we stop waiting.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Log a persisting client error at most this often.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One consumed message, owned.
#[derive(Debug, Clone)]
pub struct KafkaMessage {
    /// Partition number.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Message timestamp, ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// What the timestamp is, when there is one.
    pub timestamp_type: Option<TimestampType>,
    /// Payload (empty for a null payload).
    pub payload: Bytes,
    /// Whether the payload was null (a tombstone).
    pub tombstone: bool,
    /// Key, if any.
    pub key: Option<Bytes>,
    /// Headers, if any.
    pub headers: Option<crate::decode::Headers>,
}

/// Where an assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The offset stored in the version.
    Offset(u64),
    /// The earliest retained offset.
    Beginning,
    /// The group's committed offset, else `auto.offset.reset`.
    Default,
}

/// What happened in the consumer, in order.
#[derive(Debug)]
pub enum Event {
    /// Messages of assigned partitions, in offset order per partition.
    Messages(Vec<KafkaMessage>),
    /// Partitions were assigned; answer with where each must start.
    Assigned {
        /// The partitions.
        partitions: Vec<i32>,
        /// Where to send the start positions.
        reply: std_mpsc::SyncSender<Vec<(i32, StartAt)>>,
    },
    /// Partitions are being taken away; answer once buffered data is committed (or dropped).
    Revoked {
        /// The partitions.
        partitions: Vec<i32>,
        /// Send `()` when done.
        done: std_mpsc::SyncSender<()>,
    },
    /// The consumer reached the end of a partition.
    PartitionEnd(i32),
    /// A client error (broker down, authentication, …); librdkafka keeps retrying.
    Error(KafkaError),
}

struct Context {
    topic: Arc<str>,
    tx: mpsc::Sender<Event>,
    /// Messages polled but not yet sent: flushed before any rebalance event.
    burst: Mutex<Vec<KafkaMessage>>,
    high_watermarks: Arc<Mutex<BTreeMap<i32, i64>>>,
    last_error_log: Mutex<Option<Instant>>,
    /// The poll thread's [`FetchQueue`], which assigned partitions are forwarded to.
    fetch: AtomicPtr<rdkafka::bindings::rd_kafka_queue_t>,
}

impl Context {
    /// Sends the burst, if any. The next burst starts with room for as many messages as
    /// this one held: filled message by message from empty, it would be copied as it grew.
    fn flush_burst(&self) -> bool {
        let burst = {
            let mut burst = lock(&self.burst);
            let room = burst.len().min(MAX_BURST_MESSAGES + fetch::BATCH);
            std::mem::replace(&mut *burst, Vec::with_capacity(room))
        };
        burst.is_empty() || self.tx.blocking_send(Event::Messages(burst)).is_ok()
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements()
            .iter()
            .filter(|e| e.topic() == &*self.topic)
            .map(|e| e.partition())
            .collect()
    }

    fn should_log_error(&self) -> bool {
        let mut last = lock(&self.last_error_log);
        let due = last.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    fn assign(&self, consumer: &BaseConsumer<Context>, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let partitions = self.partitions(tpl);
        let (reply, answer) = std_mpsc::sync_channel(1);
        let starts = if self.flush_burst()
            && self
                .tx
                .blocking_send(Event::Assigned { partitions, reply })
                .is_ok()
        {
            answer.recv_timeout(REBALANCE_REPLY_TIMEOUT).ok()
        } else {
            None
        };
        let Some(starts) = starts else {
            // The loop is gone (shutting down) or stuck: take nothing rather than read from
            // positions it did not choose.
            tracing::warn!(topic = %self.topic, "no start positions for the assignment; not consuming it");
            if !cooperative {
                let _ = consumer.assign(&TopicPartitionList::new());
            }
            return;
        };
        for (partition, at) in starts {
            let offset = match at {
                StartAt::Offset(o) => Offset::Offset(i64::try_from(o).unwrap_or(i64::MAX)),
                StartAt::Beginning => Offset::Beginning,
                StartAt::Default => Offset::Invalid,
            };
            if let Err(e) = tpl.set_partition_offset(&self.topic, partition, offset) {
                tracing::error!(topic = %self.topic, partition, error = %e, "cannot set a start offset");
            }
        }
        // Before assigning: then none of their messages go to the consumer's queue.
        if !fetch::forward(consumer, &self.fetch, &self.topic, &self.partitions(tpl)) {
            tracing::debug!(topic = %self.topic, "partitions not forwarded to the fetch queue; polled one by one");
        }
        let result = if cooperative {
            consumer.incremental_assign(tpl)
        } else {
            consumer.assign(tpl)
        };
        if let Err(e) = result {
            tracing::error!(topic = %self.topic, error = %e, "assigning partitions failed");
        }
    }

    fn revoke(&self, consumer: &BaseConsumer<Context>, tpl: &TopicPartitionList) {
        let partitions = self.partitions(tpl);
        let (done, answer) = std_mpsc::sync_channel(1);
        if self.flush_burst()
            && self
                .tx
                .blocking_send(Event::Revoked { partitions, done })
                .is_ok()
            && answer.recv_timeout(REBALANCE_REPLY_TIMEOUT).is_err()
        {
            tracing::warn!(topic = %self.topic, "revocation not acknowledged in time; giving the partitions up anyway");
        }
        let result = if matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        ) {
            consumer.incremental_unassign(tpl)
        } else {
            consumer.unassign()
        };
        if let Err(e) = result {
            tracing::warn!(topic = %self.topic, error = %e, "unassigning partitions failed");
        }
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", facility = fac, "{message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Reaching a partition's end also arrives here; it is an event, not an error.
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            return;
        }
        if self.should_log_error() {
            tracing::warn!(topic = %self.topic, error = %error, reason, "Kafka client error (retrying)");
        }
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&*self.topic) else {
            return;
        };
        let mut hw = lock(&self.high_watermarks);
        for p in topic.partitions.values() {
            if p.partition >= 0 && p.hi_offset >= 0 {
                hw.insert(p.partition, p.hi_offset);
            }
        }
    }
}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                tracing::error!(topic = %self.topic, error = ?other, "rebalance failed; giving up the assignment");
                self.revoke(consumer, tpl);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running consumer of one topic for one version.
pub struct KafkaSource {
    topic: Arc<str>,
    group_id: String,
    consumer: Option<Arc<BaseConsumer<Context>>>,
    rx: Option<mpsc::Receiver<Event>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    high_watermarks: Arc<Mutex<BTreeMap<i32, i64>>>,
    partition_count: Arc<AtomicUsize>,
    membership: Membership,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topic", &self.topic)
            .field("group_id", &self.group_id)
            .finish()
    }
}

/// How a source gets its partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Membership {
    /// Join the version's consumer group; the group splits the partitions among writers.
    #[default]
    Group,
    /// Assign every partition of the topic (of the shard, if one is given) to this one
    /// consumer, with no consumer group (a rebuild: it never disturbs a group, and nothing is
    /// committed to one).
    Assign(Option<Shard>),
}

/// The consumer settings of `cfg` (the user's `settings` apply, except those that would break
/// exactly-once: offsets are never committed to Kafka).
pub(crate) fn client_config(cfg: &KafkaSourceConfig, group_id: &str) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        .set("enable.partition.eof", "true");
    for (k, v) in &cfg.settings {
        client.set(k, v);
    }
    client
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    client
}

/// The consumer group of a version: a rebuild never disturbs the live version's group.
pub fn group_id(cfg: &KafkaSourceConfig, version: u32) -> String {
    format!("{}.v{version}", cfg.group_id)
}

impl KafkaSource {
    /// Subscribes to the topic in the version's consumer group.
    pub fn start(cfg: &KafkaSourceConfig, version: u32) -> Result<KafkaSource> {
        Self::start_with(cfg, version, Membership::Group)
    }

    /// Starts consuming the topic for `version`, in its group or by explicit assignment.
    pub fn start_with(
        cfg: &KafkaSourceConfig,
        version: u32,
        membership: Membership,
    ) -> Result<KafkaSource> {
        let topic: Arc<str> = cfg.topic.as_str().into();
        let group_id = group_id(cfg, version);
        let client = client_config(cfg, &group_id);
        let (tx, rx) = mpsc::channel(16);
        let high_watermarks = Arc::new(Mutex::new(BTreeMap::new()));
        let context = Context {
            topic: topic.clone(),
            tx,
            burst: Mutex::new(Vec::new()),
            high_watermarks: high_watermarks.clone(),
            last_error_log: Mutex::new(None),
            fetch: AtomicPtr::new(std::ptr::null_mut()),
        };
        let source_err = |source: BoxError| Error::Kafka {
            topic: topic.to_string(),
            source,
        };
        let consumer: BaseConsumer<Context> = client
            .create_with_context(context)
            .map_err(|e| source_err(ContextError::new("cannot create the consumer", e).into()))?;
        if membership == Membership::Group {
            consumer
                .subscribe(&[&topic])
                .map_err(|e| source_err(ContextError::new("cannot subscribe", e).into()))?;
        }
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let partition_count = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name(format!("kafka-{topic}"))
            .spawn({
                let (consumer, stop, count) =
                    (consumer.clone(), stop.clone(), partition_count.clone());
                move || {
                    let fetch = FetchQueue::new(&consumer, &consumer.context().fetch);
                    if let Membership::Assign(shard) = membership
                        && !assign_all(&consumer, &stop, &count, shard)
                    {
                        return;
                    }
                    poll_loop(&consumer, &stop, &count, fetch);
                }
            })
            .map_err(|e| {
                source_err(ContextError::new("cannot start the consumer thread", e).into())
            })?;
        match membership {
            Membership::Group => {
                tracing::info!(topic = %topic, group = %group_id, brokers = %cfg.brokers, "consumer started");
            }
            Membership::Assign(None) => {
                tracing::info!(topic = %topic, brokers = %cfg.brokers, "consumer started (all partitions, no group)");
            }
            Membership::Assign(Some(shard)) => {
                tracing::info!(topic = %topic, brokers = %cfg.brokers, %shard, "consumer started (the shard's partitions, no group)");
            }
        }
        Ok(KafkaSource {
            topic,
            group_id,
            consumer: Some(consumer),
            rx: Some(rx),
            stop,
            thread: Some(thread),
            high_watermarks,
            partition_count,
            membership,
        })
    }

    /// Partitions of the topic, from the broker's metadata (0 until known).
    pub fn partition_count(&self) -> usize {
        self.partition_count.load(Ordering::Relaxed)
    }

    /// The topic.
    pub fn topic(&self) -> &Arc<str> {
        &self.topic
    }

    /// The next event; `None` once the consumer thread has stopped.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.as_mut()?.recv().await
    }

    /// High watermarks last reported by the client, per partition.
    pub fn high_watermarks(&self) -> BTreeMap<i32, i64> {
        lock(&self.high_watermarks).clone()
    }

    /// Commits `offsets` (next offset per partition) to the consumer group, asynchronously.
    /// Advice for lag tools only: the version's commits are what counts.
    pub fn commit_to_group(&self, offsets: &BTreeMap<i32, u64>) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        if offsets.is_empty() || matches!(self.membership, Membership::Assign(_)) {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in offsets {
            let o = Offset::Offset(i64::try_from(o).unwrap_or(i64::MAX));
            if tpl.add_partition_offset(&self.topic, p, o).is_err() {
                return;
            }
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(topic = %self.topic, error = %e, "advisory offset commit failed");
        }
    }

    /// Stops consuming and leaves the group. Call after the last commit: revocations that
    /// arrive while leaving are answered with nothing to commit.
    pub async fn close(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver releases a callback waiting to send to us.
        self.rx.take();
        let thread = self.thread.take();
        let consumer = self.consumer.take();
        let closing = tokio::task::spawn_blocking(move || {
            if let Some(t) = thread {
                let _ = t.join();
            }
            drop(consumer);
        });
        // Leaving the group waits for the coordinator; a broker that does not answer must not
        // hold up shutdown (our offsets are committed already).
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            tracing::warn!(topic = %self.topic, "the consumer did not leave its group in time; exiting without waiting");
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Explicit assignment: waits for the topic's metadata, asks the ingest loop where each
/// partition starts (the same `Assigned` event a group assignment gives) and assigns them all.
/// Returns false if stopped first.
fn assign_all(
    consumer: &BaseConsumer<Context>,
    stop: &AtomicBool,
    partition_count: &AtomicUsize,
    shard: Option<Shard>,
) -> bool {
    let ctx = consumer.context();
    let partitions = loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        match consumer.fetch_metadata(Some(&ctx.topic), Duration::from_secs(5)) {
            Ok(md) => match md.topics().iter().find(|t| t.name() == &*ctx.topic) {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                    break t
                        .partitions()
                        .iter()
                        .map(|p| p.id())
                        .filter(|p| shard.is_none_or(|s| s.holds(*p)))
                        .collect::<Vec<i32>>();
                }
                _ => {
                    if ctx.should_log_error() {
                        tracing::warn!(topic = %ctx.topic, "the topic has no partitions (yet); waiting");
                    }
                }
            },
            Err(e) => {
                if ctx.should_log_error() {
                    tracing::warn!(topic = %ctx.topic, error = %e, "cannot read the topic's metadata (retrying)");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    partition_count.store(partitions.len(), Ordering::Relaxed);
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition(&ctx.topic, *p);
    }
    ctx.assign(consumer, &mut tpl);
    true
}

/// Serves the consumer until `stop`: rebalances, errors and statistics from the consumer's
/// queue, and messages from `fetch` in batches (or one by one from the consumer's queue, for
/// partitions that were not forwarded to it), as [`Event`]s in the order they happened.
fn poll_loop(
    consumer: &BaseConsumer<Context>,
    stop: &AtomicBool,
    partition_count: &AtomicUsize,
    mut fetch: Option<FetchQueue<'_>>,
) {
    let ctx = consumer.context();
    let mut bytes = 0usize;
    let mut failing = false;
    let mut metadata_checked: Option<Instant> = None;
    // Queues a message into the burst; whether the burst is full.
    let push = |msg: KafkaMessage, bytes: &mut usize, failing: &mut bool| {
        *bytes += msg.payload.len();
        let len = {
            let mut burst = lock(&ctx.burst);
            burst.push(msg);
            burst.len()
        };
        if std::mem::take(failing) {
            tracing::info!(topic = %ctx.topic, "Kafka consumption recovered");
        }
        len >= MAX_BURST_MESSAGES || *bytes >= MAX_BURST_BYTES
    };
    let on_error = |e: KafkaError, failing: &mut bool| {
        *failing = true;
        if ctx.should_log_error() {
            tracing::warn!(topic = %ctx.topic, error = %e, "Kafka consumer error (retrying)");
        }
        Event::Error(e)
    };
    while !stop.load(Ordering::Relaxed) {
        if partition_count.load(Ordering::Relaxed) == 0
            && metadata_checked.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            metadata_checked = Some(Instant::now());
            if let Ok(md) = consumer.fetch_metadata(Some(&ctx.topic), Duration::from_secs(5))
                && let Some(t) = md.topics().iter().find(|t| t.name() == &*ctx.topic)
                && t.error().is_none()
            {
                partition_count.store(t.partitions().len(), Ordering::Relaxed);
            }
        }
        // The consumer's queue first (its rebalance callbacks run here); it waits only when
        // there is no fetch queue to wait on.
        let mut timeout = if fetch.is_some() {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
        };
        let mut pending_event = None;
        let mut full = false;
        loop {
            match consumer.poll(timeout) {
                None => break,
                Some(Ok(m)) => {
                    full = push(owned(&m), &mut bytes, &mut failing);
                    if full {
                        break;
                    }
                    timeout = Duration::ZERO;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    pending_event = Some(Event::PartitionEnd(p));
                    break;
                }
                Some(Err(e)) => {
                    pending_event = Some(on_error(e, &mut failing));
                    break;
                }
            }
        }
        if pending_event.is_none()
            && !full
            && let Some(fetch) = &mut fetch
        {
            // Batches until the burst is full or the queue is empty; an end or an error is
            // sent after the messages before it, in order.
            let mut gone = false;
            let mut wait_ms = 100;
            loop {
                let mut full = false;
                let n = fetch.fetch(wait_ms, &mut |fetched| {
                    let event = match fetched {
                        Fetched::Message(m) => {
                            full |= push(m, &mut bytes, &mut failing);
                            return;
                        }
                        Fetched::PartitionEnd(p) => Event::PartitionEnd(p),
                        Fetched::Error(e) => on_error(e, &mut failing),
                    };
                    gone |= !ctx.flush_burst() || ctx.tx.blocking_send(event).is_err();
                    bytes = 0;
                });
                if gone {
                    return;
                }
                if full || n == 0 {
                    break;
                }
                wait_ms = 0;
            }
        }
        bytes = 0;
        if !ctx.flush_burst() {
            return;
        }
        if let Some(ev) = pending_event
            && ctx.tx.blocking_send(ev).is_err()
        {
            return;
        }
    }
}

/// An owned copy of a message polled from the consumer's queue.
fn owned(m: &rdkafka::message::BorrowedMessage<'_>) -> KafkaMessage {
    let payload = m.payload().map(Bytes::copy_from_slice);
    let timestamp_type = match m.timestamp() {
        Timestamp::CreateTime(_) => Some(TimestampType::CreateTime),
        Timestamp::LogAppendTime(_) => Some(TimestampType::LogAppendTime),
        Timestamp::NotAvailable => None,
    };
    KafkaMessage {
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        timestamp_type,
        tombstone: payload.is_none(),
        payload: payload.unwrap_or_default(),
        key: m.key().map(Bytes::copy_from_slice),
        headers: m.headers().filter(|h| h.count() > 0).map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(Bytes::copy_from_slice)))
                .collect()
        }),
    }
}

mod fetch;
#[cfg(test)]
mod tests;
