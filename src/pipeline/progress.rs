//! Progress of a replay: events and bytes done, rate, per-partition percentages and an ETA.
//!
//! Pure bookkeeping over explicit timestamps, so the numbers can be checked on a recorded run;
//! the rebuild draws it as a bar on a terminal and prints plain lines otherwise.

use std::collections::{BTreeMap, VecDeque};

/// Seconds of history the rate (and so the ETA) is computed over.
const RATE_WINDOW_SECS: f64 = 20.0;

/// One partition's span: from where the replay started to where it has to get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    target: u64,
    position: u64,
}

impl Span {
    fn total(&self) -> u64 {
        self.target.saturating_sub(self.start)
    }
    fn done(&self) -> u64 {
        self.position.min(self.target).saturating_sub(self.start)
    }
}

/// The progress of one replay.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    spans: BTreeMap<i32, Span>,
    bytes: u64,
    /// (seconds since start, events done) samples within the rate window.
    samples: VecDeque<(f64, u64)>,
}

impl Progress {
    /// Sets partition `p`'s start and target (the snapshot taken when it was assigned).
    pub fn span(&mut self, p: i32, start: u64, target: u64) {
        self.spans.insert(
            p,
            Span {
                start,
                target: target.max(start),
                position: start,
            },
        );
    }

    /// Whether partition `p` has a span.
    pub fn has_span(&self, p: i32) -> bool {
        self.spans.contains_key(&p)
    }

    /// Records that partition `p` has been read up to `next_offset`, with `bytes` more payload.
    pub fn advance(&mut self, p: i32, next_offset: u64, bytes: u64) {
        if let Some(s) = self.spans.get_mut(&p) {
            s.position = s.position.max(next_offset);
        }
        self.bytes += bytes;
    }

    /// Events to replay in total.
    pub fn total(&self) -> u64 {
        self.spans.values().map(Span::total).sum()
    }

    /// Events replayed.
    pub fn done(&self) -> u64 {
        self.spans.values().map(Span::done).sum()
    }

    /// Takes a rate sample at `now` (seconds since the replay started).
    pub fn sample(&mut self, now: f64) {
        let done = self.done();
        self.samples.push_back((now, done));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now - t > RATE_WINDOW_SECS)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
    }

    /// Events per second over the rate window.
    pub fn rate(&self) -> Option<f64> {
        let (t0, d0) = *self.samples.front()?;
        let (t1, d1) = *self.samples.back()?;
        (t1 - t0 > 0.0).then(|| (d1.saturating_sub(d0)) as f64 / (t1 - t0))
    }

    /// Seconds until done at the current rate.
    pub fn eta(&self) -> Option<f64> {
        let remaining = self.total().saturating_sub(self.done());
        if remaining == 0 {
            return Some(0.0);
        }
        self.rate()
            .filter(|r| *r > 0.0)
            .map(|r| remaining as f64 / r)
    }

    /// Per-partition percentages, `p0 100% p1 42% …`.
    fn partitions(&self) -> String {
        self.spans
            .iter()
            .map(|(p, s)| {
                let pct = if s.total() == 0 {
                    100.0
                } else {
                    100.0 * s.done() as f64 / s.total() as f64
                };
                format!("p{p} {pct:.0}%")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// One line: `12,000/50,000 events (24%), 3.1 MB, 8,200 ev/s, ETA 5s | p0 30% p1 18% …`.
    pub fn line(&self) -> String {
        let (done, total) = (self.done(), self.total());
        let pct = if total == 0 {
            100.0
        } else {
            100.0 * done as f64 / total as f64
        };
        let rate = self
            .rate()
            .map_or("–".to_string(), |r| format!("{} ev/s", group(r as u64)));
        let eta = self.eta().map_or("–".to_string(), |s| {
            format!(
                "{}",
                humantime::format_duration(std::time::Duration::from_secs(s.round() as u64))
            )
        });
        format!(
            "{}/{} events ({pct:.0}%), {:.1} MB, {rate}, ETA {eta} | {}",
            group(done),
            group(total),
            self.bytes as f64 / 1e6,
            self.partitions()
        )
    }
}

/// `1234567` → `1,234,567`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_percentages_follow_the_spans() {
        let mut p = Progress::default();
        p.span(0, 100, 1100);
        p.span(1, 0, 0);
        assert_eq!(p.total(), 1000);
        p.advance(0, 600, 5_000_000);
        assert_eq!(p.done(), 500);
        // Reading past the target (events that arrived since) does not count beyond it.
        p.advance(0, 5000, 0);
        assert_eq!(p.done(), 1000);
        assert!(
            p.line().starts_with("1,000/1,000 events (100%), 5.0 MB"),
            "{}",
            p.line()
        );
        assert!(p.line().contains("p0 100% p1 100%"), "{}", p.line());
    }

    /// A recorded replay: (seconds, next offset of the single partition). The rate varies
    /// (±15 % around 10,000 events/s) but is steady overall; once the replay is under way the
    /// ETA must stay within ±30 % of the true finishing time.
    #[test]
    fn eta_on_a_recorded_steady_replay_is_within_30_percent() {
        let total = 1_000_000u64;
        let position = |t: f64| 10_000.0 * (t - 0.15 / 0.7 * ((0.7 * t).cos() - 1.0));
        let recorded: Vec<(f64, u64)> = (0..=120)
            .map(|s| {
                let t = s as f64;
                (t, (position(t) as u64).min(total))
            })
            .collect();
        let finish = recorded
            .iter()
            .find(|(_, o)| *o >= total)
            .map(|(t, _)| *t)
            .unwrap();
        let mut p = Progress::default();
        p.span(0, 0, total);
        for &(t, offset) in &recorded {
            p.advance(0, offset, 0);
            p.sample(t);
            if t >= 10.0 && t < finish - 5.0 {
                let eta = p.eta().expect("an ETA while running");
                let truth = finish - t;
                assert!(
                    (eta - truth).abs() <= 0.3 * truth,
                    "at {t}s: ETA {eta:.1}s, true {truth:.1}s"
                );
            }
        }
        assert_eq!(p.eta(), Some(0.0));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }
}
