//! Prometheus metrics, and the `/metrics`, `/health` and `/ready` endpoints of
//! `run --metrics-addr`.
//!
//! Every writer (one table version in one process) records into the process-wide [`Metrics`]
//! through a [`VersionMetrics`] handle labelled `table` and `version`; the endpoint renders the
//! registry in the Prometheus text format. Readiness is per table: a table is ready once its
//! writer holds partitions (Kafka) and has committed since (or is caught up with nothing to
//! commit), and the process is ready when every table it runs is.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use serde::Serialize;

use crate::decode::dead_letter::Stage;
use crate::error::{Error, Result};

/// Commit durations, in seconds, that the latency histogram separates.
const COMMIT_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide metrics.
pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    skipped: IntCounterVec,
    rows: IntCounterVec,
    bytes: IntCounterVec,
    files: IntCounterVec,
    commits: IntCounterVec,
    conflicts: IntCounterVec,
    commit_seconds: HistogramVec,
    dead_letters: IntCounterVec,
    bad_records_skipped: IntCounterVec,
    buffer_bytes: IntGaugeVec,
    lag: IntGaugeVec,
    assigned: IntGaugeVec,
    rebuild_progress: GaugeVec,
    last_commit: GaugeVec,
    since_commit: GaugeVec,
    compacted_files: IntCounterVec,
    compacted_bytes: IntCounterVec,
    compaction_waiting: IntGaugeVec,
    vacuumed_files: IntCounterVec,
    /// Per (table, version): when it last committed (seconds since the epoch).
    commit_times: Mutex<BTreeMap<(String, String), f64>>,
    /// Per table this process runs: readiness.
    tables: Mutex<BTreeMap<String, TableReadiness>>,
}

/// Whether one table's writer is ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableReadiness {
    /// The version being written.
    pub version: Option<u32>,
    /// Source partitions held (files sources count as one).
    pub assigned: usize,
    /// A commit landed while holding them (or they were all caught up with nothing to
    /// commit).
    pub committing: bool,
}

impl TableReadiness {
    fn ready(&self) -> bool {
        self.assigned > 0 && self.committing
    }
}

/// What `/ready` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// Every table is ready (and there is at least one).
    pub ready: bool,
    /// Per table.
    pub tables: BTreeMap<String, TableReadiness>,
}

/// Registers a metric; the names are fixed and unique, so a failure is a programming error.
fn registered<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<C>,
) -> C {
    let metric = metric.expect("metric definitions are valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

const VERSION_LABELS: [&str; 2] = ["table", "version"];

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let counter = |name: &str, help: &str| {
            registered(
                &r,
                IntCounterVec::new(Opts::new(name, help), &VERSION_LABELS),
            )
        };
        let gauge = |name: &str, help: &str| {
            registered(&r, GaugeVec::new(Opts::new(name, help), &VERSION_LABELS))
        };
        Metrics {
            events: counter(
                "kappa_lake_events_consumed_total",
                "Source records received and materialized (as rows or dead letters).",
            ),
            skipped: counter(
                "kappa_lake_events_skipped_total",
                "Source records received again that the version already held (dropped).",
            ),
            rows: counter("kappa_lake_rows_written_total", "Rows committed."),
            bytes: counter(
                "kappa_lake_bytes_written_total",
                "Bytes of data files committed.",
            ),
            files: counter("kappa_lake_files_written_total", "Data files committed."),
            commits: counter("kappa_lake_commits_total", "Commits made."),
            conflicts: counter(
                "kappa_lake_commit_conflicts_total",
                "Commits refused because another writer committed the same offsets first.",
            ),
            commit_seconds: registered(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "kappa_lake_commit_duration_seconds",
                        "Time to finish the open files and commit them with their offsets.",
                    )
                    .buckets(COMMIT_BUCKETS.to_vec()),
                    &VERSION_LABELS,
                ),
            ),
            dead_letters: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "kappa_lake_dead_letters_total",
                        "Records committed to the dead-letter path, by the stage they failed in.",
                    ),
                    &["table", "version", "stage"],
                ),
            ),
            bad_records_skipped: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "kappa_lake_bad_records_skipped_total",
                        "Bad records dropped under `bad_records = \"skip\"`, by the stage they failed in.",
                    ),
                    &["table", "version", "stage"],
                ),
            ),
            buffer_bytes: registered(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "kappa_lake_buffer_bytes",
                        "Memory held by open files and dead letters not yet committed.",
                    ),
                    &VERSION_LABELS,
                ),
            ),
            lag: registered(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "kappa_lake_consumer_lag",
                        "Broker high watermark minus the offset the version has committed, per partition.",
                    ),
                    &["table", "version", "partition"],
                ),
            ),
            assigned: registered(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "kappa_lake_partitions_assigned",
                        "Source partitions this process writes.",
                    ),
                    &VERSION_LABELS,
                ),
            ),
            rebuild_progress: gauge(
                "kappa_lake_rebuild_progress_ratio",
                "A version being rebuilt: the fraction of the offsets it must reach that it has committed.",
            ),
            last_commit: gauge(
                "kappa_lake_last_commit_timestamp_seconds",
                "When the version last committed (Unix time).",
            ),
            since_commit: gauge(
                "kappa_lake_seconds_since_last_commit",
                "Seconds since the version last committed in this process.",
            ),
            compacted_files: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "kappa_lake_compaction_files_removed_total",
                        "Small files `run`'s automatic compaction replaced.",
                    ),
                    &["table"],
                ),
            ),
            compacted_bytes: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "kappa_lake_compaction_bytes_rewritten_total",
                        "Bytes of small files `run`'s automatic compaction read and rewrote.",
                    ),
                    &["table"],
                ),
            ),
            compaction_waiting: registered(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "kappa_lake_compaction_partitions_waiting",
                        "Partitions with small files to compact that are still being written to (younger than compact_after).",
                    ),
                    &["table"],
                ),
            ),
            vacuumed_files: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "kappa_lake_vacuum_files_deleted_total",
                        "Unreferenced data files `run`'s automatic vacuum deleted.",
                    ),
                    &["table"],
                ),
            ),
            commit_times: Mutex::default(),
            tables: Mutex::default(),
            registry: r,
        }
    }

    /// The process's metrics.
    pub fn global() -> &'static Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(Metrics::new)
    }

    /// Records a pass of `run`'s automatic compaction of `table` (every family starts at 0).
    pub fn compaction(&self, table: &str, files_removed: u64, bytes: u64, waiting: usize) {
        self.compacted_files
            .with_label_values(&[table])
            .inc_by(files_removed);
        self.compacted_bytes
            .with_label_values(&[table])
            .inc_by(bytes);
        self.compaction_waiting
            .with_label_values(&[table])
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    /// Records a pass of `run`'s automatic vacuum of `table` (the family starts at 0).
    pub fn vacuum(&self, table: &str, files_deleted: u64) {
        self.vacuumed_files
            .with_label_values(&[table])
            .inc_by(files_deleted);
    }

    /// A handle for one table version's writer.
    pub fn version(&'static self, table: &str, version: u32) -> VersionMetrics {
        let v = version.to_string();
        let labels = [table, v.as_str()];
        // Every stage starts at 0, so that a rate over the first dead letter is not lost.
        for stage in [
            Stage::Read,
            Stage::Decode,
            Stage::EventTime,
            Stage::Transform,
        ] {
            self.dead_letters
                .with_label_values(&[table, v.as_str(), stage.as_str()]);
            self.bad_records_skipped
                .with_label_values(&[table, v.as_str(), stage.as_str()]);
        }
        VersionMetrics {
            metrics: self,
            table: table.to_string(),
            version,
            readiness: true,
            events: self.events.with_label_values(&labels),
            skipped: self.skipped.with_label_values(&labels),
            rows: self.rows.with_label_values(&labels),
            bytes: self.bytes.with_label_values(&labels),
            files: self.files.with_label_values(&labels),
            commits: self.commits.with_label_values(&labels),
            conflicts: self.conflicts.with_label_values(&labels),
            commit_seconds: self.commit_seconds.with_label_values(&labels),
            buffer_bytes: self.buffer_bytes.with_label_values(&labels),
            assigned: self.assigned.with_label_values(&labels),
            rebuild_progress: self.rebuild_progress.with_label_values(&labels),
            lagging: Mutex::default(),
        }
    }

    /// The names of every metric family (histograms without their `_bucket`/`_sum`/`_count`
    /// suffixes), whether or not it has samples yet.
    pub fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        let collectors: [&dyn Collector; 16] = [
            &self.events,
            &self.skipped,
            &self.rows,
            &self.bytes,
            &self.files,
            &self.commits,
            &self.conflicts,
            &self.commit_seconds,
            &self.dead_letters,
            &self.bad_records_skipped,
            &self.buffer_bytes,
            &self.lag,
            &self.assigned,
            &self.rebuild_progress,
            &self.last_commit,
            &self.since_commit,
        ];
        collectors
            .iter()
            .flat_map(|c| c.desc())
            .map(|d| d.fq_name.clone())
            .collect()
    }

    /// Declares the tables this process runs: it is ready only when all of them are.
    pub fn expect_tables<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut tables = lock(&self.tables);
        for name in names {
            tables.entry(name.to_string()).or_default();
        }
    }

    /// Whether every table is ready, and each one's state.
    pub fn readiness(&self) -> Readiness {
        let tables = lock(&self.tables).clone();
        Readiness {
            ready: !tables.is_empty() && tables.values().all(TableReadiness::ready),
            tables,
        }
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let now = unix_now();
        for ((table, version), at) in lock(&self.commit_times).iter() {
            self.since_commit
                .with_label_values(&[table.as_str(), version.as_str()])
                .set((now - at).max(0.0));
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding the metrics failed: {e}\n"))
    }

    fn set_readiness(&self, table: &str, f: impl FnOnce(&mut TableReadiness)) {
        f(lock(&self.tables).entry(table.to_string()).or_default());
    }
}

/// The figures of one successful commit.
#[derive(Debug, Default)]
pub struct CommitFigures {
    /// Rows committed.
    pub rows: u64,
    /// Bytes of data files committed.
    pub bytes: u64,
    /// Data files committed.
    pub files: u64,
    /// Dead letters committed, by stage.
    pub dead_letters: Vec<(Stage, u64)>,
}

/// One table version's metrics (see [`Metrics::version`]).
pub struct VersionMetrics {
    metrics: &'static Metrics,
    table: String,
    version: u32,
    /// Whether this writer decides the table's readiness (the live version's writer does; a
    /// rebuild running beside it does not).
    readiness: bool,
    events: IntCounter,
    skipped: IntCounter,
    rows: IntCounter,
    bytes: IntCounter,
    files: IntCounter,
    commits: IntCounter,
    conflicts: IntCounter,
    commit_seconds: Histogram,
    buffer_bytes: IntGauge,
    assigned: IntGauge,
    rebuild_progress: Gauge,
    /// Partitions with a lag series, removed when the writer ends.
    lagging: Mutex<std::collections::BTreeSet<String>>,
}

/// A writer that ends (shutdown, a version switch) leaves no lag, buffer or assignment behind
/// that would look current; its counters stay (they are totals).
impl Drop for VersionMetrics {
    fn drop(&mut self) {
        let lagging = std::mem::take(&mut *lock(&self.lagging));
        for partition in lagging {
            self.forget_lag(&partition);
        }
        self.buffer_bytes.set(0);
        self.assigned(0);
    }
}

impl VersionMetrics {
    /// Whether this writer decides its table's readiness (default: yes).
    pub fn decide_readiness(&mut self, yes: bool) {
        self.readiness = yes;
    }

    fn labels(&self) -> [String; 2] {
        [self.table.clone(), self.version.to_string()]
    }

    /// Records received (`taken`) and records dropped as already held (`skipped`).
    pub fn consumed(&self, taken: u64, skipped: u64) {
        self.events.inc_by(taken);
        self.skipped.inc_by(skipped);
    }

    /// A commit made, and how long it took.
    pub fn committed(&self, figures: &CommitFigures, took: Duration) {
        self.commits.inc();
        self.rows.inc_by(figures.rows);
        self.bytes.inc_by(figures.bytes);
        self.files.inc_by(figures.files);
        self.commit_seconds.observe(took.as_secs_f64());
        let [table, version] = self.labels();
        for (stage, n) in &figures.dead_letters {
            self.metrics
                .dead_letters
                .with_label_values(&[table.as_str(), version.as_str(), stage.as_str()])
                .inc_by(*n);
        }
        let now = unix_now();
        self.metrics
            .last_commit
            .with_label_values(&[table.as_str(), version.as_str()])
            .set(now);
        lock(&self.metrics.commit_times).insert((table, version), now);
    }

    /// A bad record dropped (`bad_records = "skip"`).
    pub fn skipped_bad_record(&self, stage: Stage) {
        let [table, version] = self.labels();
        self.metrics
            .bad_records_skipped
            .with_label_values(&[table.as_str(), version.as_str(), stage.as_str()])
            .inc();
    }

    /// A commit refused because another writer got there first.
    pub fn conflict(&self) {
        self.conflicts.inc();
    }

    /// Memory held by what is not committed yet.
    pub fn buffered(&self, bytes: usize) {
        self.buffer_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A partition's lag (`topic/partition`).
    pub fn lag(&self, partition: &str, lag: i64) {
        lock(&self.lagging).insert(partition.to_string());
        let [table, version] = self.labels();
        self.metrics
            .lag
            .with_label_values(&[table.as_str(), version.as_str(), partition])
            .set(lag);
    }

    /// Forgets the lag of partitions this writer no longer holds.
    pub fn forget_lag(&self, partition: &str) {
        lock(&self.lagging).remove(partition);
        let [table, version] = self.labels();
        // Absent already is fine: nothing to forget.
        let _ =
            self.metrics
                .lag
                .remove_label_values(&[table.as_str(), version.as_str(), partition]);
    }

    /// The source partitions now held; holding none makes the table not ready.
    pub fn assigned(&self, partitions: usize) {
        self.assigned
            .set(i64::try_from(partitions).unwrap_or(i64::MAX));
        if !self.readiness {
            return;
        }
        let version = self.version;
        self.metrics.set_readiness(&self.table, |r| {
            r.version = Some(version);
            r.assigned = partitions;
            if partitions == 0 {
                r.committing = false;
            }
        });
    }

    /// A commit landed, or every partition held is caught up with nothing to commit: with
    /// partitions held, the table is ready.
    pub fn committing(&self) {
        if !self.readiness {
            return;
        }
        self.metrics.set_readiness(&self.table, |r| {
            if r.assigned > 0 {
                r.committing = true;
            }
        });
    }

    /// A rebuild's progress, from 0 to 1.
    pub fn rebuild_progress(&self, ratio: f64) {
        self.rebuild_progress.set(ratio.clamp(0.0, 1.0));
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The HTTP endpoint; stops serving when dropped.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Serves `/metrics`, `/health` and `/ready` for `metrics` on `addr`, on a thread of its
    /// own (a scrape never waits for the data path, nor the data path for a scrape).
    pub fn start(addr: SocketAddr, metrics: &'static Metrics) -> Result<MetricsServer> {
        let server = tiny_http::Server::http(addr).map_err(|e| Error::Metrics {
            addr: addr.to_string(),
            source: e,
        })?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("kappa-lake-metrics".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    let response = respond(metrics, request.method(), request.url());
                    if let Err(e) = request.respond(response) {
                        tracing::debug!(error = %e, "a metrics client went away");
                    }
                }
            })
            .map_err(|e| Error::Metrics {
                addr: addr.to_string(),
                source: e.into(),
            })?;
        tracing::info!(addr = %bound, "serving /metrics, /health and /ready");
        Ok(MetricsServer {
            server,
            thread: Some(thread),
            addr: bound,
        })
    }

    /// The address served (with the port the system chose for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Response = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn respond(metrics: &Metrics, method: &tiny_http::Method, url: &str) -> Response {
    let path = url.split('?').next().unwrap_or(url);
    if *method != tiny_http::Method::Get && *method != tiny_http::Method::Head {
        return text(405, "only GET and HEAD are served\n".into(), "text/plain");
    }
    match path {
        "/metrics" => text(200, metrics.render(), "text/plain; version=0.0.4"),
        "/health" => text(200, "ok\n".into(), "text/plain"),
        "/ready" => {
            let readiness = metrics.readiness();
            let body = serde_json::to_string(&readiness).unwrap_or_default();
            text(
                if readiness.ready { 200 } else { 503 },
                body,
                "application/json",
            )
        }
        _ => text(
            404,
            "not found: try /metrics, /health or /ready\n".into(),
            "text/plain",
        ),
    }
}

fn text(status: u16, body: String, content_type: &str) -> Response {
    let mut response = tiny_http::Response::from_data(body.into_bytes()).with_status_code(status);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes()) {
        response.add_header(h);
    }
    response
}

#[cfg(test)]
mod tests;
