//! Unit tests of the version writer (`pipeline::ingest::writer`).

use bytes::Bytes;

use super::*;
use crate::config::Config;
use crate::pipeline::handle::TableHandle;
use crate::source::{Origin, Record};

/// A table on its own `memory://` root with a files source, and its first version.
struct Fixture {
    _dir: tempfile::TempDir,
    handle: TableHandle,
    def: VersionDefinition,
}

async fn fixture(bad_records: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
            dir.path().join("events.avsc"),
            r#"{"type":"record","name":"E","fields":[{"name":"ts","type":"long"},{"name":"n","type":"long"}]}"#,
        )
        .unwrap();
    let path = dir.path().join("kappa-lake.toml");
    std::fs::write(
        &path,
        format!(
            "[[table]]\nname = \"t\"\nroot = \"memory://writer-{}\"\nschema = \"events.avsc\"\n\
                 bad_records = \"{bad_records}\"\n\
                 time = {{ field = \"ts\", granularity = \"day\" }}\n\
                 [table.source]\nkind = \"files\"\npath = \"in\"\n",
            uuid::Uuid::new_v4()
        ),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let handle = TableHandle::open(&config.tables[0]).unwrap();
    let def = handle.live_version().await.unwrap().def;
    Fixture {
        _dir: dir,
        handle,
        def,
    }
}

impl Fixture {
    async fn writer(&self) -> VersionWriter<'_> {
        VersionWriter::open(
            &self.handle.lake,
            &self.handle.layout,
            &self.def,
            &self.handle.cfg,
        )
        .await
        .unwrap()
    }
}

/// Lines `start..` of file `a.ndjson`, as the files source would hand them over.
fn batch(start: u64, lines: &[&str]) -> SourceBatch {
    SourceBatch {
        partition: "a.ndjson".into(),
        origin: Origin::File,
        start,
        records: lines
            .iter()
            .zip(start..)
            .map(|(line, offset)| Record {
                bytes: Bytes::copy_from_slice(line.as_bytes()),
                oversized: None,
                offset,
                timestamp_ms: None,
                timestamp_type: None,
                tombstone: false,
                key: None,
                headers: None,
            })
            .collect(),
        position: SourcePosition {
            offset: start + lines.len() as u64,
            end_byte: None,
            eof: false,
        },
    }
}

const GOOD: &str = r#"{"ts": 1700000000000, "n": 1}"#;

fn stored_offset(w: &VersionWriter<'_>) -> Option<u64> {
    w.log.state().positions.get("a.ndjson").map(|p| p.offset)
}

#[tokio::test]
async fn writes_then_commits_rows_with_their_offsets() {
    let f = fixture("dead_letter").await;
    let mut w = f.writer().await;
    w.write_all(vec![batch(0, &[GOOD, GOOD, GOOD])])
        .await
        .unwrap();
    assert_eq!(
        stored_offset(&w),
        None,
        "nothing is visible before the commit"
    );
    w.commit().await.unwrap();
    assert_eq!(stored_offset(&w), Some(3));
    let report = w.finish(Ok(Stop::End)).await.unwrap();
    assert_eq!((report.rows, report.commits), (3, 1));
    assert!(report.files >= 1);
    assert_eq!(report.dead_letters, 0);
}

#[tokio::test]
async fn a_commit_with_nothing_written_is_no_commit() {
    let f = fixture("dead_letter").await;
    let mut w = f.writer().await;
    w.commit().await.unwrap();
    let report = w.finish(Ok(Stop::Interrupted)).await.unwrap();
    assert_eq!(report.commits, 0);
    assert!(report.interrupted);
}

#[tokio::test]
async fn a_reopened_writer_resumes_after_the_committed_offsets() {
    let f = fixture("dead_letter").await;
    let mut w = f.writer().await;
    w.write_all(vec![batch(0, &[GOOD, GOOD])]).await.unwrap();
    w.commit().await.unwrap();
    w.finish(Ok(Stop::End)).await.unwrap();

    let mut w = f.writer().await;
    assert_eq!(
        stored_offset(&w),
        Some(2),
        "resumes where the last commit ended"
    );
    w.write_all(vec![batch(2, &[GOOD])]).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(stored_offset(&w), Some(3));
    let report = w.finish(Ok(Stop::End)).await.unwrap();
    assert_eq!((report.rows, report.commits), (1, 1));
}

#[tokio::test]
async fn a_bad_record_becomes_a_dead_letter_committed_with_the_rows() {
    let f = fixture("dead_letter").await;
    let mut w = f.writer().await;
    w.write_all(vec![batch(0, &[GOOD, "not json", GOOD])])
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_eq!(
        stored_offset(&w),
        Some(3),
        "the dead letter's offset is covered"
    );
    assert_eq!(w.log.state().dead_letter_files.len(), 1);
    let report = w.finish(Ok(Stop::End)).await.unwrap();
    assert_eq!((report.rows, report.dead_letters), (2, 1));
}

#[tokio::test]
async fn a_bad_record_stops_the_writer_when_bad_records_is_fail() {
    let f = fixture("fail").await;
    let mut w = f.writer().await;
    let e = w
        .write_all(vec![batch(0, &[GOOD, "not json"])])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::BadRecord { offset: 1, .. }), "{e}");
    let e = w.finish(Err(e)).await.unwrap_err();
    assert!(matches!(e, Error::BadRecord { .. }), "{e}");
}

#[tokio::test]
async fn a_skipped_bad_record_is_counted_not_kept() {
    let f = fixture("skip").await;
    let mut w = f.writer().await;
    w.write_all(vec![batch(0, &[GOOD, "not json"])])
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert!(w.log.state().dead_letter_files.is_empty());
    let report = w.finish(Ok(Stop::End)).await.unwrap();
    assert_eq!((report.rows, report.bad_records_skipped), (1, 1));
}

/// Data files (`part-…parquet`) under the version's directory.
async fn data_files(w: &VersionWriter<'_>) -> Vec<String> {
    let dir = w.layout.version_dir(w.version());
    w.lake
        .list_dir(&dir)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .filter(|p| p.ends_with(".parquet"))
        .collect()
}

#[tokio::test]
async fn a_writer_paused_past_its_lease_refuses_to_commit_and_leaves_nothing_behind() {
    let mut f = fixture("dead_letter").await;
    let clock = crate::clock::ManualClock::new();
    f.handle.lake.clock = clock.clone();
    let mut w = f.writer().await;
    w.write_all(vec![batch(0, &[GOOD, "not json"])])
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_eq!(stored_offset(&w), Some(2));
    let committed = data_files(&w).await;

    // Paused (a long GC, a frozen VM) past its lease: another writer may have deleted its
    // uncommitted files, so its commit must not make them visible.
    w.write_all(vec![batch(2, &[GOOD])]).await.unwrap();
    clock.advance(std::time::Duration::from_secs(w.lease.ttl_secs + 1));
    let e = w.commit().await.unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    assert_eq!(stored_offset(&w), Some(2), "the offsets did not move");
    assert_eq!(
        data_files(&w).await,
        committed,
        "the refused commit's files are gone"
    );
    assert_eq!(w.report.conflicts, 1);
}

#[test]
fn only_what_a_commit_alone_frees_makes_the_budget_commit() {
    const MIB: usize = 1 << 20;
    // An append table's open files a little over the budget (encoding still in flight): the
    // file writer closes the coldest on its next write, so no commit.
    assert!(!only_a_commit_frees(256 * MIB, 256 * MIB + MIB / 2, 0, 0));
    assert!(!only_a_commit_frees(256 * MIB, 10 * 256 * MIB, 0, 0));
    // An upsert table's changes wait for the commit that applies them.
    assert!(only_a_commit_frees(256 * MIB, 0, 256 * MIB + 1, 0));
    assert!(only_a_commit_frees(256 * MIB, 200 * MIB, 57 * MIB, 0));
    assert!(!only_a_commit_frees(256 * MIB, 0, 255 * MIB, 0));
    // Dead letters are written by the commit, over a quarter of the budget.
    assert!(only_a_commit_frees(256 * MIB, 0, 0, 64 * MIB + 1));
    assert!(!only_a_commit_frees(256 * MIB, 0, 0, 64 * MIB));
}
