//! One-off lookups in a topic: its high watermarks (for `promote --max-lag`), and where a
//! point in time starts, per partition the first offset whose message timestamp is at or after
//! it (what `rebuild --from <timestamp>` replays from).
//!
//! The broker's own answer (`ListOffsets` by timestamp) is taken when the messages around it
//! confirm it. Not every Kafka-protocol broker implements the lookup (the librdkafka mock
//! cluster and some brokers answer "the end" or "the beginning" for any time), so when the
//! answer does not check out the offset is found by binary search over the partition, reading
//! one message per step. The search assumes timestamps do not decrease along a partition
//! (true for `LogAppendTime` and for producers that stamp events as they send them).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaSourceConfig;
use crate::error::{BoxError, ContextError, Error, Result};
use crate::source::kafka::client_config;

/// How long one broker request (metadata, watermarks, offsets, one round of reads) may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Per partition of `cfg.topic`, its high watermark (the offset the next message will get).
/// Blocking: call it off the async runtime.
pub fn high_watermarks(cfg: &KafkaSourceConfig) -> Result<BTreeMap<i32, u64>> {
    let consumer = consumer(cfg)?;
    Ok(watermarks(&consumer, cfg.topic.as_str())?
        .into_iter()
        .map(|(p, (_, high))| (p, high))
        .collect())
}

/// Per partition of `cfg.topic`, its low and high watermarks, each broker request waiting
/// `timeout` (30 s when `None`). Blocking: call it off the async runtime.
pub fn watermarks_within(
    cfg: &KafkaSourceConfig,
    timeout: Option<Duration>,
) -> Result<BTreeMap<i32, (u64, u64)>> {
    let consumer = consumer(cfg)?;
    bounded(&consumer, cfg.topic.as_str(), timeout.unwrap_or(TIMEOUT))
}

/// A consumer for one-off lookups (a group id is required by the client; nothing is ever
/// committed to it).
fn consumer(cfg: &KafkaSourceConfig) -> Result<BaseConsumer> {
    client_config(cfg, &format!("{}.seek", cfg.group_id))
        .create()
        .map_err(|e| {
            kafka_err(
                &cfg.topic,
                ContextError::new("cannot create a consumer", e).into(),
            )
        })
}

fn kafka_err(topic: &str, source: BoxError) -> Error {
    Error::Kafka {
        topic: topic.to_string(),
        source,
    }
}

/// Per partition, its low and high watermarks.
fn watermarks(consumer: &BaseConsumer, topic: &str) -> Result<BTreeMap<i32, (u64, u64)>> {
    bounded(consumer, topic, TIMEOUT)
}

/// [`watermarks`], each request waiting `timeout`.
fn bounded(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<i32, (u64, u64)>> {
    let err = |source: BoxError| kafka_err(topic, source);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| err(ContextError::new("cannot read the topic's metadata", e).into()))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err(err("the topic does not exist or has no partitions".into()));
    }
    let mut bounds = BTreeMap::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout).map_err(|e| {
            err(ContextError::new(format!("cannot read partition {p}'s watermarks"), e).into())
        })?;
        let low = u64::try_from(low).unwrap_or(0);
        bounds.insert(p, (low, u64::try_from(high).unwrap_or(0).max(low)));
    }
    Ok(bounds)
}

/// Per partition of `cfg.topic`, the first offset with a timestamp ≥ `at_ms` (the partition's
/// end when there is none). Blocking: call it off the async runtime.
pub fn offsets_at_time(cfg: &KafkaSourceConfig, at_ms: i64) -> Result<BTreeMap<i32, u64>> {
    let topic = cfg.topic.as_str();
    let consumer = consumer(cfg)?;
    let bounds = watermarks(&consumer, topic)?;
    let probe = Probe {
        consumer: &consumer,
        topic,
        at_ms,
    };
    let candidates = probe.broker_answer(&bounds);
    let confirmed = probe.confirm(&candidates, &bounds)?;
    // Binary search for the rest: the answer lies in [lo, hi].
    let mut search: BTreeMap<i32, (u64, u64)> = bounds
        .iter()
        .filter(|(p, _)| !confirmed.contains_key(p))
        .map(|(p, b)| (*p, *b))
        .collect();
    if !search.is_empty() {
        tracing::info!(
            topic,
            partitions = search.len(),
            "the broker's offsets for the time did not check out; searching the partitions"
        );
    }
    let mut found = confirmed;
    while !search.is_empty() {
        let mids: BTreeMap<i32, u64> = search
            .iter()
            .map(|(p, (lo, hi))| (*p, lo + (hi - lo) / 2))
            .collect();
        let firsts = probe.first_at(&mids)?;
        for (p, mid) in mids {
            let Some((lo, hi)) = search.get_mut(&p) else {
                continue;
            };
            match firsts.get(&p).copied().flatten() {
                Some((offset, ts)) if !probe.reached(ts) => *lo = offset + 1,
                _ => *hi = mid,
            }
            if lo >= hi {
                found.insert(p, (*hi).max(*lo));
                search.remove(&p);
            }
        }
    }
    Ok(found)
}

struct Probe<'a> {
    consumer: &'a BaseConsumer,
    topic: &'a str,
    at_ms: i64,
}

impl Probe<'_> {
    /// Whether a message stamped `ts` is at or after the time (no timestamp: before it).
    fn reached(&self, ts: Option<i64>) -> bool {
        ts.is_some_and(|t| t >= self.at_ms)
    }

    /// The broker's `ListOffsets` answer, clamped to the partitions' bounds (none on error).
    fn broker_answer(&self, bounds: &BTreeMap<i32, (u64, u64)>) -> BTreeMap<i32, u64> {
        let mut tpl = TopicPartitionList::new();
        for &p in bounds.keys() {
            if tpl
                .add_partition_offset(self.topic, p, Offset::Offset(self.at_ms))
                .is_err()
            {
                return BTreeMap::new();
            }
        }
        let answer = match self.consumer.offsets_for_times(tpl, TIMEOUT) {
            Ok(answer) => answer,
            Err(e) => {
                tracing::info!(topic = self.topic, error = %e, "the broker cannot look up offsets by time");
                return BTreeMap::new();
            }
        };
        answer
            .elements()
            .iter()
            .filter_map(|e| {
                let (low, high) = *bounds.get(&e.partition())?;
                let offset = match e.offset() {
                    Offset::Offset(o) => u64::try_from(o).ok()?.clamp(low, high),
                    Offset::End => high,
                    _ => return None,
                };
                Some((e.partition(), offset))
            })
            .collect()
    }

    /// The candidates the messages around them confirm: the message at the candidate is at or
    /// after the time (or there is none) and the one before it is not.
    fn confirm(
        &self,
        candidates: &BTreeMap<i32, u64>,
        bounds: &BTreeMap<i32, (u64, u64)>,
    ) -> Result<BTreeMap<i32, u64>> {
        let at: BTreeMap<i32, u64> = candidates
            .iter()
            .filter(|(p, c)| bounds.get(p).is_some_and(|(_, high)| *c < high))
            .map(|(p, c)| (*p, *c))
            .collect();
        let before: BTreeMap<i32, u64> = candidates
            .iter()
            .filter(|(p, c)| bounds.get(p).is_some_and(|(low, _)| *c > low))
            .map(|(p, c)| (*p, *c - 1))
            .collect();
        let firsts_at = self.first_at(&at)?;
        let firsts_before = self.first_at(&before)?;
        Ok(candidates
            .iter()
            .filter(|(p, _)| {
                let at_ok = firsts_at
                    .get(p)
                    .is_none_or(|m| m.is_none_or(|(_, ts)| self.reached(ts)));
                // The first message from `c - 1` on is `c - 1` itself or (a gap) one at ≥ c,
                // which the check at `c` already covers.
                let before_ok = firsts_before.get(p).is_none_or(|m| {
                    m.is_none_or(|(o, ts)| o >= candidates[p] || !self.reached(ts))
                });
                at_ok && before_ok
            })
            .map(|(p, c)| (*p, *c))
            .collect())
    }

    /// Per partition, the first message at or after the given offset: its offset and
    /// timestamp, or `None` at the partition's end.
    #[allow(
        clippy::type_complexity,
        reason = "a private helper's plain per-partition answer"
    )]
    fn first_at(
        &self,
        from: &BTreeMap<i32, u64>,
    ) -> Result<BTreeMap<i32, Option<(u64, Option<i64>)>>> {
        let err = |source: BoxError| kafka_err(self.topic, source);
        let mut found = BTreeMap::new();
        if from.is_empty() {
            return Ok(found);
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in from {
            tpl.add_partition_offset(
                self.topic,
                p,
                Offset::Offset(i64::try_from(o).unwrap_or(i64::MAX)),
            )
            .map_err(|e| {
                err(ContextError::new(format!("cannot seek partition {p} to {o}"), e).into())
            })?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| err(ContextError::new("cannot assign the partitions", e).into()))?;
        let deadline = Instant::now() + TIMEOUT;
        while found.len() < from.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(err(format!(
                    "no answer reading single messages within {}s (partitions {:?})",
                    TIMEOUT.as_secs(),
                    from.keys()
                        .filter(|p| !found.contains_key(*p))
                        .collect::<Vec<_>>()
                )
                .into()));
            }
            match self.consumer.poll(left.min(Duration::from_millis(500))) {
                Some(Ok(m)) => {
                    let p = m.partition();
                    let offset = u64::try_from(m.offset()).unwrap_or(0);
                    if from.get(&p).is_some_and(|start| offset >= *start) {
                        found
                            .entry(p)
                            .or_insert(Some((offset, m.timestamp().to_millis())));
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    found.entry(p).or_insert(None);
                }
                Some(Err(e)) => {
                    tracing::debug!(topic = self.topic, error = %e, "reading single messages (retrying)");
                }
                None => {}
            }
        }
        Ok(found)
    }
}
