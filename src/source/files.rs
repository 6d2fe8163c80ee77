//! `source.kind = "files"`: a directory of NDJSON files read as an immutable log, and of
//! Parquet and CSV files (a one-time historical load: an export from a warehouse).
//!
//! Each file is a source partition named by its file name; its offsets are line indexes
//! (0-based; offset N means "the first N lines are consumed"), or row indexes for Parquet and
//! CSV (the header is not a row). Files are read in lexical order of their names; `.ndjson`,
//! `.jsonl` and `.json` files, optionally `.gz`-compressed, `.parquet` files and `.csv` files
//! (optionally `.gz`) are read; names starting with `.` or `_` are ignored. Files must be
//! complete when they appear (write elsewhere, then rename into the directory) and never change
//! afterwards.
//!
//! A Parquet or CSV row becomes the JSON object of its columns, decoded against the version's
//! schema like any NDJSON line (so a row that does not fit is dead-lettered with its file and
//! row, and its object as the raw record). CSV values are typed by the schema's field of the
//! same name: numbers and booleans as JSON literals, everything else as a string, an empty
//! value as null.
//!
//! On resume, a file recorded as fully read is skipped, an uncompressed file is reopened at the
//! stored byte position, and a compressed one is decompressed again and its first lines skipped.
//! Lines longer than `max_record_bytes` are not held in memory: their first `max_record_bytes`
//! are kept for the dead-letter record and the rest is skipped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::mpsc;

use arrow::datatypes::SchemaRef;

use crate::config::FilesSourceConfig;
use crate::error::{Error, Result};
use crate::source::{Origin, Record, SourceBatch, SourcePosition};

mod tabular;

/// Bytes of record data per batch, at most (besides the record-count limit).
const MAX_BATCH_BYTES: usize = 4 << 20;

/// Room in a batch's buffer beyond its expected size, for the line that crosses it.
const LAST_LINE_ROOM: usize = 64 << 10;

/// Lists the log files of `dir`, in the order they are read.
pub fn list_files(dir: &Path) -> Result<Vec<String>> {
    let io = |source| Error::Source {
        location: dir.display().to_string(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_log = [".ndjson", ".jsonl", ".json", ".csv"]
            .iter()
            .any(|ext| name.ends_with(ext) || name.ends_with(&format!("{ext}.gz")))
            || name.ends_with(".parquet");
        if is_log && !name.starts_with(['.', '_']) && entry.file_type().map_err(io)?.is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// A running file source: a reader thread sends batches through a bounded channel.
#[derive(Debug)]
pub struct FilesSource {
    rx: mpsc::Receiver<Result<SourceBatch>>,
}

impl FilesSource {
    /// Starts reading `cfg.path`, resuming every file at `positions`; CSV values are typed by
    /// the fields of `schema` (the version's event schema).
    pub fn start(
        cfg: &FilesSourceConfig,
        positions: &BTreeMap<String, SourcePosition>,
        schema: SchemaRef,
    ) -> Result<FilesSource> {
        let files = list_files(&cfg.path)?;
        let (tx, rx) = mpsc::channel(2);
        let reader = Reader {
            dir: cfg.path.clone(),
            files,
            positions: positions.clone(),
            batch_size: cfg.batch_size,
            max_record_bytes: cfg.max_record_bytes,
            schema,
            tx,
        };
        std::thread::Builder::new()
            .name("kappa-files-source".into())
            .spawn(move || reader.run())
            .map_err(|source| Error::Source {
                location: cfg.path.display().to_string(),
                source,
            })?;
        Ok(FilesSource { rx })
    }

    /// The next batch; `None` once every file is read.
    pub async fn next(&mut self) -> Option<Result<SourceBatch>> {
        self.rx.recv().await
    }
}

struct Reader {
    dir: PathBuf,
    files: Vec<String>,
    positions: BTreeMap<String, SourcePosition>,
    batch_size: usize,
    max_record_bytes: usize,
    schema: SchemaRef,
    tx: mpsc::Sender<Result<SourceBatch>>,
}

impl Reader {
    fn run(self) {
        for name in &self.files {
            let pos = self.positions.get(name).copied().unwrap_or_default();
            if pos.eof {
                continue;
            }
            if let Err(e) = self.read_file(name, pos) {
                // The receiver may be gone (shutdown); nothing more to do then.
                let _ = self.tx.blocking_send(Err(e));
                return;
            }
        }
    }

    /// Returns Ok even when the receiver hung up (shutdown): reading simply stops.
    fn read_file(&self, name: &str, pos: SourcePosition) -> Result<()> {
        if name.ends_with(".parquet") {
            return self.read_rows(name, pos, |path, skip, emit| {
                tabular::parquet_rows(path, skip, emit)
            });
        }
        if name.ends_with(".csv") || name.ends_with(".csv.gz") {
            return self.read_rows(name, pos, |path, skip, emit| {
                tabular::csv_rows(path, &self.schema, skip, emit)
            });
        }
        self.read_lines(name, pos)
    }

    /// A Parquet or CSV file: `rows(path, skip, emit)` hands each row after the first `skip`
    /// to `emit` as a JSON object (`emit` returns false once the receiver hung up).
    fn read_rows(
        &self,
        name: &str,
        pos: SourcePosition,
        rows: impl FnOnce(&Path, u64, &mut dyn FnMut(Vec<u8>) -> bool) -> Result<()>,
    ) -> Result<()> {
        let path = self.dir.join(name);
        let partition: Arc<str> = Arc::from(name);
        let mut first = pos.offset;
        let mut records: Vec<Record> = Vec::with_capacity(self.batch_size);
        let mut bytes = 0usize;
        let mut open = true;
        let send = |records: &mut Vec<Record>, first: &mut u64, eof: bool| {
            let batch = SourceBatch {
                partition: partition.clone(),
                origin: Origin::File,
                start: *first,
                position: SourcePosition {
                    offset: *first + records.len() as u64,
                    end_byte: None,
                    eof,
                },
                records: std::mem::take(records),
            };
            *first = batch.position.offset;
            self.tx.blocking_send(Ok(batch)).is_ok()
        };
        rows(&path, pos.offset, &mut |row: Vec<u8>| {
            let len = row.len();
            records.push(Record {
                oversized: (len > self.max_record_bytes).then_some(len as u64),
                bytes: row.into(),
                offset: first + records.len() as u64,
                timestamp_ms: None,
                timestamp_type: None,
                tombstone: false,
                key: None,
                headers: None,
            });
            bytes += len;
            if records.len() >= self.batch_size || bytes >= MAX_BATCH_BYTES {
                bytes = 0;
                open = send(&mut records, &mut first, false);
            }
            open
        })?;
        if open {
            send(&mut records, &mut first, true);
        }
        Ok(())
    }

    fn read_lines(&self, name: &str, pos: SourcePosition) -> Result<()> {
        let path = self.dir.join(name);
        let io = |source| Error::Source {
            location: path.display().to_string(),
            source,
        };
        let mut file = File::open(&path).map_err(io)?;
        let gz = name.ends_with(".gz");
        let (mut input, mut byte_pos, skip_lines): (Box<dyn BufRead>, Option<u64>, u64) =
            match (gz, pos.end_byte) {
                (false, Some(b)) => {
                    file.seek(SeekFrom::Start(b)).map_err(io)?;
                    (
                        Box::new(BufReader::with_capacity(1 << 20, file)),
                        Some(b),
                        0,
                    )
                }
                (false, None) => (
                    Box::new(BufReader::with_capacity(1 << 20, file)),
                    Some(0),
                    pos.offset,
                ),
                (true, _) => {
                    let dec = flate2::read::MultiGzDecoder::new(BufReader::new(file));
                    (
                        Box::new(BufReader::with_capacity(1 << 20, dec)),
                        None,
                        pos.offset,
                    )
                }
            };
        let partition: Arc<str> = Arc::from(name);
        let mut offset = 0u64;
        let mut line = LineReader::new(self.max_record_bytes);
        // Skip lines already consumed (compressed files, or no byte hint).
        let mut skipped = BytesMut::new();
        while offset < skip_lines {
            match line.next(&mut input, &mut skipped).map_err(io)? {
                Some(n) => {
                    offset += 1;
                    if let Some(b) = byte_pos.as_mut() {
                        *b += n;
                    }
                }
                None => break,
            }
            skipped.clear();
        }
        let mut offset = offset.max(pos.offset);
        // Room for a whole batch, so a batch's lines are copied once (a batch ends at the
        // first line past `MAX_BATCH_BYTES`).
        let capacity = MAX_BATCH_BYTES.min(self.batch_size * 512) + LAST_LINE_ROOM;
        let mut buf = BytesMut::with_capacity(capacity);
        let mut spans: Vec<(usize, usize, Option<u64>)> = Vec::with_capacity(self.batch_size);
        let mut first = offset;
        loop {
            // The whole lines already in the reader's buffer, copied at once; a line that
            // is cut there, or too long, is read by `line` below.
            let whole = line
                .whole_lines(&mut input, &mut buf, &mut spans, self.batch_size)
                .map_err(io)?;
            offset += whole.lines;
            if let Some(b) = byte_pos.as_mut() {
                *b += whole.bytes;
            }
            let full = spans.len() >= self.batch_size || buf.len() >= MAX_BATCH_BYTES;
            let mut eof = false;
            if !full {
                let start = buf.len();
                let consumed = line.next(&mut input, &mut buf).map_err(io)?;
                eof = consumed.is_none();
                if let Some(n) = consumed {
                    spans.push((start, buf.len(), line.oversized()));
                    offset += 1;
                    if let Some(b) = byte_pos.as_mut() {
                        *b += n;
                    }
                }
            }
            if eof || spans.len() >= self.batch_size || buf.len() >= MAX_BATCH_BYTES {
                let data = buf.split().freeze();
                // The next batch's buffer, whole (growing it would copy it several times).
                buf.reserve(capacity);
                let records = spans
                    .drain(..)
                    .enumerate()
                    .map(|(i, (s, e, oversized))| Record {
                        bytes: data.slice(s..e),
                        oversized,
                        offset: first + i as u64,
                        timestamp_ms: None,
                        timestamp_type: None,
                        tombstone: false,
                        key: None,
                        headers: None,
                    })
                    .collect();
                let batch = SourceBatch {
                    partition: partition.clone(),
                    origin: Origin::File,
                    start: first,
                    records,
                    position: SourcePosition {
                        offset,
                        end_byte: byte_pos,
                        eof,
                    },
                };
                if self.tx.blocking_send(Ok(batch)).is_err() {
                    return Ok(());
                }
                first = offset;
            }
            if eof {
                return Ok(());
            }
        }
    }
}

/// What [`LineReader::whole_lines`] took: lines, and bytes with their newlines.
struct Whole {
    lines: u64,
    bytes: u64,
}

/// Reads `\n`-terminated lines straight into the batch's buffer, keeping at most `max` bytes
/// of each (without the `\n` and a trailing `\r`).
struct LineReader {
    max: usize,
    /// The full length of the current line.
    total: u64,
}

impl LineReader {
    fn new(max: usize) -> Self {
        LineReader { max, total: 0 }
    }

    /// Reads one line and appends its kept bytes to `out`; returns the bytes consumed
    /// (including the newline), or `None` at EOF.
    fn next(
        &mut self,
        input: &mut dyn BufRead,
        out: &mut BytesMut,
    ) -> std::io::Result<Option<u64>> {
        let start = out.len();
        let mut consumed = 0u64;
        self.total = 0;
        loop {
            let chunk = input.fill_buf()?;
            if chunk.is_empty() {
                self.keep(out, start);
                return Ok((consumed > 0).then_some(consumed));
            }
            let (take, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let body = if done {
                &chunk[..take - 1]
            } else {
                &chunk[..take]
            };
            let room = (self.max + 1).saturating_sub(out.len() - start);
            out.extend_from_slice(&body[..body.len().min(room)]);
            self.total += body.len() as u64;
            input.consume(take);
            consumed += take as u64;
            if done {
                self.keep(out, start);
                return Ok(Some(consumed));
            }
        }
    }

    /// Appends the whole lines of `input`'s buffer to `out` in one copy, each line's span
    /// (without its `\n` and a trailing `\r`) to `spans`, as [`LineReader::next`] would line
    /// by line: it stops before a line cut by the buffer's end or longer than `max`, and
    /// once `spans` holds `most` lines or `out` reaches [`MAX_BATCH_BYTES`] (after the line
    /// that reached it). Reads nothing from the file: it only takes what is buffered.
    fn whole_lines(
        &self,
        input: &mut dyn BufRead,
        out: &mut BytesMut,
        spans: &mut Vec<(usize, usize, Option<u64>)>,
        most: usize,
    ) -> std::io::Result<Whole> {
        let chunk = input.fill_buf()?;
        let base = out.len();
        let mut taken = 0;
        let mut lines = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            if spans.len() >= most || base + taken >= MAX_BATCH_BYTES {
                break;
            }
            let body = &chunk[taken..nl];
            if body.len() > self.max {
                break;
            }
            let end = base + nl - usize::from(body.last() == Some(&b'\r'));
            spans.push((base + taken, end, None));
            taken = nl + 1;
            lines += 1;
        }
        out.extend_from_slice(&chunk[..taken]);
        input.consume(taken);
        Ok(Whole {
            lines,
            bytes: taken as u64,
        })
    }

    /// Cuts the line that starts at `start` in `out` to `max` bytes and a trailing `\r` off.
    fn keep(&self, out: &mut BytesMut, start: usize) {
        let mut end = out.len().min(start + self.max);
        if end > start && out[end - 1] == b'\r' {
            end -= 1;
        }
        out.truncate(end);
    }

    /// The full length when the line was longer than `max`.
    fn oversized(&self) -> Option<u64> {
        (self.total > self.max as u64).then_some(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn line_reader_bounds_memory_and_counts_bytes() {
        let data = b"ab\r\n0123456789\nlast";
        let mut input = Cursor::new(&data[..]);
        let mut r = LineReader::new(4);
        let mut out = BytesMut::new();
        assert_eq!(r.next(&mut input, &mut out).unwrap(), Some(4));
        assert_eq!(&out[..], b"ab");
        assert_eq!(r.oversized(), None);
        out.clear();
        assert_eq!(r.next(&mut input, &mut out).unwrap(), Some(11));
        assert_eq!(&out[..], b"0123");
        assert_eq!(r.oversized(), Some(10));
        // Lines append after what the buffer holds.
        assert_eq!(r.next(&mut input, &mut out).unwrap(), Some(4));
        assert_eq!(&out[..], b"0123last");
        out.clear();
        assert_eq!(r.next(&mut input, &mut out).unwrap(), None);
        assert!(out.is_empty());
    }

    /// Every line's kept bytes and full length when too long, and the bytes consumed.
    type Lines = (Vec<(Vec<u8>, Option<u64>)>, u64);

    fn line_by_line(data: &[u8], max: usize) -> Lines {
        let mut input = Cursor::new(data);
        let mut r = LineReader::new(max);
        let (mut lines, mut consumed) = (Vec::new(), 0);
        let mut out = BytesMut::new();
        while let Some(n) = r.next(&mut input, &mut out).unwrap() {
            lines.push((out.to_vec(), r.oversized()));
            consumed += n;
            out.clear();
        }
        (lines, consumed)
    }

    fn whole_then_cut(data: &[u8], max: usize, capacity: usize, most: usize) -> Lines {
        let mut input = BufReader::with_capacity(capacity, Cursor::new(data));
        let mut r = LineReader::new(max);
        let (mut lines, mut consumed) = (Vec::new(), 0);
        let mut out = BytesMut::new();
        let mut spans = Vec::new();
        loop {
            let whole = r
                .whole_lines(&mut input, &mut out, &mut spans, most)
                .unwrap();
            consumed += whole.bytes;
            assert_eq!(whole.lines as usize, spans.len());
            assert!(spans.len() <= most);
            let start = out.len();
            let next = r.next(&mut input, &mut out).unwrap();
            if let Some(n) = next {
                spans.push((start, out.len(), r.oversized()));
                consumed += n;
            }
            for (s, e, oversized) in spans.drain(..) {
                lines.push((out[s..e].to_vec(), oversized));
            }
            out.clear();
            if next.is_none() {
                return (lines, consumed);
            }
        }
    }

    #[test]
    fn whole_lines_at_once_match_lines_one_by_one() {
        let data: &[u8] =
            b"a\r\n\nbc\n0123456789abcdef\n\r\nxyz\r\n\n0123456789\r\nlong line here\nlast\r";
        for max in [1, 3, 4, 10, 11, 100] {
            let expected = line_by_line(data, max);
            for capacity in [1, 2, 5, 7, 16, 64, 1024] {
                for most in [1, 2, 3, 100] {
                    assert_eq!(
                        whole_then_cut(data, max, capacity, most),
                        expected,
                        "max {max}, buffer {capacity}, at most {most} lines at once"
                    );
                }
            }
        }
    }
}
