//! Dead letters: records that could not be materialized, with the reason and coordinates.
//!
//! Dead letters are buffered with the batch they came from and written as one NDJSON file per
//! commit under `<table>/_dead_letters/vN/`, before the commit record that lists the file.
//! They are therefore committed exactly once together with the data: a crash before the commit
//! leaves an unreferenced file that recovery deletes, and the records are re-read. Each line is
//! `{"version", "stage", "reason", "source", "offset", "raw" | "raw_base64", "raw_bytes",
//! "truncated", "timestamp_ms", "key" | "key_base64", "headers", "dead_lettered_at"}` (Kafka
//! records: `timestamp_ms` and, when present, the key and the headers as `[{"name", "value"}]`;
//! a header value that is not UTF-8 is `{"base64": …}`). Raw
//! payloads longer than [`MAX_RAW_KEPT`] are cut to that length (`truncated: true`); the source
//! still holds the whole record at `source`/`offset`.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::decode::Headers;
use crate::error::{Error, Result};
use crate::storage::Lake;
use crate::table::TableLayout;

pub use super::stage::Stage;

/// One dead-letter file, as a commit lists it (the commit makes it visible).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterFile {
    /// File name within `<table>/_dead_letters/vN/`.
    pub path: String,
    /// Dead letters in it.
    pub records: u64,
}

/// Raw bytes kept per dead letter.
pub const MAX_RAW_KEPT: usize = 64 * 1024;

/// One rejected record.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Where it failed.
    pub stage: Stage,
    /// Why, in words.
    pub reason: String,
    /// Source partition (Kafka `topic/partition`, or the file name).
    pub source: Arc<str>,
    /// Offset within the source partition (line index for files).
    pub offset: u64,
    /// The raw record (possibly a prefix of it).
    pub raw: Bytes,
    /// The record's full length in bytes.
    pub raw_len: u64,
    /// The record's source timestamp (Kafka), ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The record's key (Kafka).
    pub key: Option<Bytes>,
    /// The record's headers (Kafka).
    pub headers: Option<Headers>,
}

/// Bytes as JSON: text where they are UTF-8, else base64.
#[derive(Serialize)]
#[serde(untagged)]
enum Text<'a> {
    Utf8(&'a str),
    Base64 { base64: String },
}

impl<'a> Text<'a> {
    fn of(bytes: &'a [u8]) -> Text<'a> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Text::Utf8(s),
            Err(_) => Text::Base64 {
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
    }
}

#[derive(Serialize)]
struct Header<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Text<'a>>,
}

#[derive(Serialize)]
struct Line<'a> {
    version: u32,
    stage: Stage,
    reason: &'a str,
    source: &'a str,
    offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    raw_bytes: u64,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_base64: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<Header<'a>>,
    dead_lettered_at: String,
}

/// Dead letters waiting for the next commit.
#[derive(Debug, Default)]
pub struct DeadLetterBuffer {
    records: Vec<DeadLetter>,
    bytes: usize,
}

impl DeadLetterBuffer {
    /// Adds one dead letter.
    pub fn push(&mut self, mut dl: DeadLetter) {
        // A Kafka source partition is `topic/N`; a files source is named by its file.
        match dl.source.rsplit_once('/') {
            Some((topic, partition)) if partition.parse::<i32>().is_ok() => {
                tracing::debug!(topic, partition, offset = dl.offset, stage = dl.stage.as_str(), reason = %dl.reason, "dead letter");
            }
            _ => {
                tracing::debug!(file = %dl.source, offset = dl.offset, stage = dl.stage.as_str(), reason = %dl.reason, "dead letter");
            }
        }
        if dl.raw.len() > MAX_RAW_KEPT {
            // A copy: a slice would keep the whole (possibly huge) record alive until the flush,
            // outside what `buffered_bytes` counts.
            dl.raw = Bytes::copy_from_slice(&dl.raw[..MAX_RAW_KEPT]);
        }
        self.bytes += dl.raw.len() + dl.reason.len() + 128;
        self.records.push(dl);
    }

    /// Records buffered.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records buffered, per stage.
    pub fn by_stage(&self) -> Vec<(Stage, u64)> {
        let mut counts: Vec<(Stage, u64)> = Vec::new();
        for dl in &self.records {
            match counts.iter_mut().find(|(s, _)| *s == dl.stage) {
                Some((_, n)) => *n += 1,
                None => counts.push((dl.stage, 1)),
            }
        }
        counts
    }

    /// Approximate bytes buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Writes the buffered dead letters as one file and empties the buffer.
    pub async fn flush(
        &mut self,
        lake: &Lake,
        layout: &TableLayout,
        version: u32,
        writer_id: &str,
    ) -> Result<Option<DeadLetterFile>> {
        if self.records.is_empty() {
            return Ok(None);
        }
        let now = Utc::now().to_rfc3339();
        let mut out = Vec::with_capacity(self.bytes);
        for dl in &self.records {
            let text = std::str::from_utf8(&dl.raw).ok();
            let key_text = dl.key.as_deref().and_then(|k| std::str::from_utf8(k).ok());
            let line = Line {
                version,
                stage: dl.stage,
                reason: &dl.reason,
                source: &dl.source,
                offset: dl.offset,
                raw: text,
                raw_base64: text
                    .is_none()
                    .then(|| base64::engine::general_purpose::STANDARD.encode(&dl.raw)),
                raw_bytes: dl.raw_len,
                truncated: (dl.raw.len() as u64) < dl.raw_len,
                timestamp_ms: dl.timestamp_ms,
                key: key_text,
                key_base64: dl
                    .key
                    .as_ref()
                    .filter(|_| key_text.is_none())
                    .map(|k| base64::engine::general_purpose::STANDARD.encode(k)),
                headers: dl
                    .headers
                    .iter()
                    .flat_map(|h| h.iter())
                    .map(|(name, value)| Header {
                        name,
                        value: value.as_deref().map(Text::of),
                    })
                    .collect(),
                dead_lettered_at: now.clone(),
            };
            serde_json::to_writer(&mut out, &line).map_err(|e| Error::Write {
                path: layout.dead_letter_dir(version),
                source: e.into(),
            })?;
            out.push(b'\n');
        }
        let name = format!(
            "dead-letters-{writer_id}-{}.ndjson",
            uuid::Uuid::new_v4().simple()
        );
        let path = layout.dead_letter_dir(version).join(name.as_str());
        lake.store
            .put(&path, out.into())
            .await
            .map_err(|e| Error::storage(&path, e))?;
        let file = DeadLetterFile {
            path: name,
            records: self.records.len() as u64,
        };
        self.records.clear();
        self.bytes = 0;
        Ok(Some(file))
    }
}
