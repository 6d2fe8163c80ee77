//! An in-process Kafka cluster (librdkafka's mock cluster) and a small producer: the demo runs
//! on them, and the fast test suite uses them as its broker. The cluster listens on loopback,
//! so other processes (a `kappa-lake run` under test) can use it too.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::DeliveryResult;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

use crate::error::{BoxError, ContextError, Error, Result};

fn kafka_err(topic: &str, source: impl Into<BoxError>) -> Error {
    Error::Kafka {
        topic: topic.to_string(),
        source: source.into(),
    }
}

/// A running mock cluster. It is not `Send` in librdkafka's binding, so it lives on its own
/// thread until this handle is dropped.
#[derive(Debug)]
pub struct MockKafka {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockKafka {
    /// Starts a one-broker cluster with `topics` (name, partitions).
    pub fn start(topics: &[(&str, i32)]) -> Result<MockKafka> {
        let topics: Vec<(String, i32)> = topics.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mock-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(kafka_err("-", e)));
                        return;
                    }
                };
                for (t, p) in &topics {
                    if let Err(e) = cluster.create_topic(t, *p, 1) {
                        let _ = ready_tx.send(Err(kafka_err(t, e)));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Serve until the handle is dropped.
                let _ = stop_rx.recv();
                drop(cluster);
            })
            .map_err(|e| kafka_err("-", e))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| kafka_err("-", "the mock cluster thread died"))??;
        Ok(MockKafka {
            bootstrap,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// `bootstrap.servers` of the cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One record to produce.
#[derive(Debug, Clone)]
pub struct OutRecord {
    /// Explicit partition, or `None` for the producer's choice.
    pub partition: Option<i32>,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Timestamp, ms since the epoch.
    pub timestamp_ms: Option<i64>,
}

#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result
            && self.failed.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::warn!(error = %e, "a produced record was not delivered");
        }
    }
}

/// Produces `records` to `topic` (idempotent producer, acks=all) and waits until every one is
/// acknowledged. Returns how many were delivered.
pub fn produce(
    brokers: &str,
    topic: &str,
    records: impl IntoIterator<Item = OutRecord>,
) -> Result<u64> {
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create_with_context(Deliveries::default())
        .map_err(|e| kafka_err(topic, e))?;
    let mut sent = 0u64;
    for r in records {
        let mut record = BaseRecord::<Vec<u8>, Vec<u8>>::to(topic).payload(&r.payload);
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        if let Some(ts) = r.timestamp_ms {
            record = record.timestamp(ts);
        }
        let mut record = record;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) => {
                    if !matches!(
                        e,
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull
                        )
                    ) {
                        return Err(kafka_err(topic, e));
                    }
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).map_err(|e| {
        kafka_err(
            topic,
            ContextError::new("not every record was acknowledged", e),
        )
    })?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(kafka_err(
            topic,
            format!("{failed} of {sent} records were not delivered"),
        ));
    }
    Ok(sent)
}
