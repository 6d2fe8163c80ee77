//! `dead-letters replay` as a source of batches: a version's committed dead letters, read
//! back from `_dead_letters/` and fed through the version writer again.
//!
//! Invariant: each dead-letter file is a position key `_replay/v<N>/<file>` counting its
//! lines, committed atomically with the rows, so every letter is replayed at most once;
//! letters failing again are counted, never dead-lettered twice.

use std::collections::BTreeMap;

use crate::config::SourceConfig;
use crate::error::{ContextError, Error, Missing, Result};
use crate::pipeline::handle::TableHandle;
use crate::pipeline::ingest::report::Stop;
use crate::pipeline::ingest::writer::VersionWriter;
use crate::source::{Origin, Record, SourceBatch};
use crate::write::{self, SourcePosition};

/// What `dead-letters replay` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplayReport {
    /// The table.
    pub table: String,
    /// The version whose dead letters were replayed into it.
    pub version: u32,
    /// Dead letters read that an earlier replay had not handled.
    pub letters: u64,
    /// Of those, landed as rows now.
    pub replayed: u64,
    /// Dead letters an earlier replay handled (not read again).
    pub already_replayed: u64,
    /// Failing again, counted by `stage: reason`; they stay dead letters.
    pub still_failing: BTreeMap<String, u64>,
    /// Stored cut short (over 64 KiB): the source still holds them at their coordinates.
    pub truncated: u64,
    /// Commits made.
    pub commits: u64,
}

/// A dead-letter line, as far as replay needs it.
#[derive(serde::Deserialize)]
struct StoredLetter {
    source: String,
    offset: u64,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    raw_base64: Option<String>,
    #[serde(default)]
    truncated: bool,
    #[serde(default)]
    timestamp_ms: Option<i64>,
}

/// `dead-letters replay`: decodes version `version`'s committed dead letters again with what
/// the table has now (its settings such as `max_record_bytes`, the registry's schemas, an
/// in-place schema evolution) and commits the ones that now materialize into the same
/// version, with their original source coordinates, exactly once.
///
/// Each dead-letter file is a position key `_replay/v<N>/<file>` counting its lines, committed
/// atomically with the rows, like a source partition's offsets: a replay that crashed resumes
/// where its last commit ended, and a second replay reads only what no replay handled yet.
/// Letters that fail again are counted, not dead-lettered twice. These keys are not the
/// source's: status, catch-up and promotion ignore them. A new version (a rebuild) does not
/// need this: it reads the source itself.
pub async fn replay_dead_letters(handle: &TableHandle, version: u32) -> Result<ReplayReport> {
    let (lake, layout, table) = (&handle.lake, &handle.layout, &handle.cfg);
    let def = crate::table::version::load(lake, layout, version)
        .await?
        .ok_or_else(|| Missing::Version {
            table: table.name.clone(),
            version,
        })?;
    let mut ingest = VersionWriter::open(lake, layout, &def, table).await?;
    ingest.replay_failures = Some(BTreeMap::new());
    let mut report = ReplayReport {
        table: table.name.clone(),
        version,
        ..ReplayReport::default()
    };
    let outcome = replay_files(&mut ingest, &mut report).await;
    report.still_failing = ingest.replay_failures.take().unwrap_or_default();
    let ingested = ingest.finish(outcome.map(|()| Stop::End)).await?;
    report.replayed = ingested.rows;
    report.commits = ingested.commits;
    Ok(report)
}

/// Feeds every dead-letter file of the version, from where the last replay's commit ended,
/// through the writer: one batch per run of letters from the same source partition.
async fn replay_files(w: &mut VersionWriter<'_>, report: &mut ReplayReport) -> Result<()> {
    let version = w.version();
    let mut files: Vec<String> = w.log.state().dead_letter_files.iter().cloned().collect();
    files.sort();
    for name in files {
        let key = format!("{}v{version}/{name}", write::REPLAY_KEY_PREFIX);
        let done = w.log.state().positions.get(&key).map_or(0, |p| p.offset) as usize;
        let path = w.layout.dead_letter_dir(version).join(name.as_str());
        let bytes = w.lake.read_all(&path).await?;
        let lines: Vec<&[u8]> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        report.already_replayed += done.min(lines.len()) as u64;
        let mut batch: Option<SourceBatch> = None;
        for (i, line) in lines.iter().enumerate().skip(done) {
            let letter: StoredLetter =
                serde_json::from_slice(line).map_err(|e| Error::Corrupt {
                    path: path.clone(),
                    source: ContextError::new(format!("line {}: not a dead letter", i + 1), e)
                        .into(),
                })?;
            report.letters += 1;
            if let Some(b) = batch.take_if(|b| *b.partition != *letter.source) {
                replay_batch(w, b, &key).await?;
            }
            let b = batch.get_or_insert_with(|| batch_of(&w.table.source, &letter.source, i));
            b.position.offset = i as u64 + 1;
            if letter.truncated {
                report.truncated += 1;
                continue;
            }
            let raw = match (letter.raw, letter.raw_base64) {
                (Some(text), _) => bytes::Bytes::from(text),
                (None, Some(b64)) => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| Error::Corrupt {
                            path: path.clone(),
                            source: ContextError::new(format!("line {}: raw_base64", i + 1), e)
                                .into(),
                        })?
                        .into()
                }
                (None, None) => bytes::Bytes::new(),
            };
            b.records.push(Record {
                bytes: raw,
                oversized: None,
                offset: letter.offset,
                timestamp_ms: letter.timestamp_ms,
                timestamp_type: None,
                tombstone: false,
                key: None,
                headers: None,
            });
        }
        if let Some(b) = batch.take() {
            replay_batch(w, b, &key).await?;
        }
        w.commit().await?;
    }
    Ok(())
}

/// An empty batch of letters from `source`, starting at line `line` of its file.
fn batch_of(kind: &SourceConfig, source: &str, line: usize) -> SourceBatch {
    let kafka = match (kind, source.rsplit_once('/')) {
        (SourceConfig::Kafka(_), Some((topic, p))) => p.parse::<i32>().ok().map(|p| (topic, p)),
        _ => None,
    };
    let origin = match kafka {
        Some((topic, partition)) => Origin::Kafka {
            topic: topic.into(),
            partition,
        },
        None => Origin::File,
    };
    SourceBatch {
        partition: source.into(),
        origin,
        start: line as u64,
        records: Vec::new(),
        position: SourcePosition {
            offset: line as u64,
            end_byte: None,
            eof: false,
        },
    }
}

async fn replay_batch(w: &mut VersionWriter<'_>, batch: SourceBatch, key: &str) -> Result<()> {
    w.decoder
        .resolve(&batch.records, w.registry.as_ref())
        .await?;
    let decoded = w.decoder.decode(&batch.records);
    w.write_decoded(&batch, decoded, key).await
}
