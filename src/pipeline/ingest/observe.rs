//! Observers of a run: what it publishes without steering it. The progress view of a replay
//! (a bar on a terminal, lines otherwise), and after each Kafka commit the per-partition lag,
//! the replay's progress and the writer lease's heartbeat with those figures.
//!
//! Invariant: nothing here changes what is written or committed; a failure to publish is
//! logged, never fatal.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::pipeline::ingest::writer::VersionWriter;
use crate::pipeline::progress::Progress;
use crate::source::kafka::{KafkaMessage, StartAt};
use crate::source::kafka_partition_key;
use crate::write::lease::PartitionMetrics;

/// How often progress lines are printed when stdout is not a terminal.
const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(5);

/// After a Kafka commit: publishes each assigned partition's lag, a replay's progress towards
/// `targets`, and refreshes the writer lease with the per-partition figures.
pub(super) async fn after_commit(
    w: &mut VersionWriter<'_>,
    topic: &str,
    partitions: &[i32],
    high: &BTreeMap<i32, i64>,
    targets: Option<&BTreeMap<i32, u64>>,
) {
    let metrics = partition_metrics(w, topic, partitions, high);
    for (partition, m) in &metrics {
        if let Some(lag) = m.lag {
            w.metrics.lag(partition, lag);
        }
    }
    if let Some(t) = targets {
        let progress = replay_progress(w, topic, t);
        w.metrics.rebuild_progress(progress);
    }
    w.heartbeat(Some(metrics)).await;
}

/// Each assigned partition's position (as the version stores it), high watermark and lag.
fn partition_metrics(
    w: &VersionWriter<'_>,
    topic: &str,
    partitions: &[i32],
    high: &BTreeMap<i32, i64>,
) -> BTreeMap<String, PartitionMetrics> {
    partitions
        .iter()
        .map(|&p| {
            let key = kafka_partition_key(topic, p);
            let position = w.log.state().positions.get(&key).map(|s| s.offset);
            let high_watermark = high.get(&p).copied();
            let lag = high_watermark
                .map(|h| (h - position.map_or(0, |o| i64::try_from(o).unwrap_or(i64::MAX))).max(0));
            (
                key,
                PartitionMetrics {
                    position,
                    high_watermark,
                    lag,
                },
            )
        })
        .collect()
}

/// A replay's progress: the fraction of the target offsets (summed over partitions) that
/// the version has committed.
fn replay_progress(w: &VersionWriter<'_>, topic: &str, targets: &BTreeMap<i32, u64>) -> f64 {
    let positions = &w.log.state().positions;
    let (mut done, mut total) = (0u64, 0u64);
    for (&p, &target) in targets {
        let at = positions
            .get(&kafka_partition_key(topic, p))
            .map_or(0, |s| s.offset);
        done += at.min(target);
        total += target;
    }
    if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    }
}

/// Progress of a replay, shown as a bar on a terminal and as lines otherwise.
pub(super) struct ProgressView {
    version: u32,
    progress: Progress,
    started: Instant,
    bar: Option<indicatif::ProgressBar>,
    last_line: Option<Instant>,
}

impl ProgressView {
    pub(super) fn new(version: u32) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} v{prefix} [{bar:30}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(version.to_string());
            bar
        });
        ProgressView {
            version,
            progress: Progress::default(),
            started: Instant::now(),
            bar,
            last_line: None,
        }
    }

    /// Snapshots each partition's span: from its start to the live version's offset (or the
    /// high watermark when there is no live version).
    pub(super) fn assigned(
        &mut self,
        starts: &[(i32, StartAt)],
        targets: &Option<BTreeMap<i32, u64>>,
        high: &BTreeMap<i32, i64>,
    ) {
        for (p, at) in starts {
            let start = match at {
                StartAt::Offset(o) => *o,
                StartAt::Beginning | StartAt::Default => 0,
            };
            let target = match targets {
                Some(t) => t.get(p).copied().unwrap_or(0),
                None => high.get(p).map_or(0, |h| u64::try_from(*h).unwrap_or(0)),
            };
            self.progress.span(*p, start, target);
        }
    }

    pub(super) fn messages(&mut self, messages: &[KafkaMessage]) {
        for m in messages {
            let next = u64::try_from(m.offset).unwrap_or(0) + 1;
            self.progress
                .advance(m.partition, next, m.payload.len() as u64);
        }
    }

    pub(super) fn tick(&mut self) {
        self.progress.sample(self.started.elapsed().as_secs_f64());
        let line = self.progress.line();
        match &self.bar {
            Some(bar) => {
                bar.set_length(self.progress.total());
                bar.set_position(self.progress.done());
                bar.set_message(line);
            }
            None => {
                if self
                    .last_line
                    .is_none_or(|t| t.elapsed() >= PROGRESS_LINE_EVERY)
                {
                    self.last_line = Some(Instant::now());
                    println!("rebuild v{}: {line}", self.version);
                }
            }
        }
    }
}

impl Drop for ProgressView {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        println!("rebuild v{}: {}", self.version, self.progress.line());
    }
}
