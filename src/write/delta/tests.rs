//! Unit tests of `write::delta`: creating, committing to and reading offsets back from a Delta version.

use super::schema::bucket_values;
use super::*;
use crate::config::Root;
use crate::source::OffsetRange;
use crate::write::FileEntry;
use crate::write::commit::PendingCommit;
use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use delta_kernel::expressions::Scalar;
use deltalake::kernel::Add;

fn lake() -> Lake {
    let url = url::Url::parse(&format!("memory://{}", uuid::Uuid::new_v4())).unwrap();
    Lake::open(&Root::Url(url), "root").unwrap()
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn spec<'a>(schema: &'a SchemaRef, cfg: &'a WriterConfig) -> CreateSpec<'a> {
    CreateSpec {
        file_schema: schema,
        granularity: Granularity::Hour,
        writer: cfg,
    }
}

fn pending(p: &str, start: u64, end: u64) -> PendingCommit {
    PendingCommit {
        ranges: [(
            p.to_string(),
            OffsetRange {
                start,
                end,
                end_byte: None,
                eof: false,
            },
        )]
        .into(),
        ..Default::default()
    }
}

async fn rows(
    writer: &mut DeltaFileWriter,
    ids: std::ops::Range<i64>,
) -> (Vec<Add>, Vec<FileEntry>) {
    let n = (ids.end - ids.start) as usize;
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(StringArray::from(vec![Some("x"); n])),
        ],
    )
    .unwrap();
    // Two hours: the rows split into two partitions.
    let buckets: Vec<i64> = ids.map(|i| 490_000 + i % 2).collect();
    writer.write(&batch, &buckets).await.unwrap();
    writer.finish().await.unwrap()
}

#[test]
fn partition_values_are_typed_date_and_hour() {
    // 2026-11-26T15:00Z is hour 498_807 and day 20_783 since the epoch.
    let v = bucket_values(498_807, Granularity::Hour);
    assert_eq!(v["date"], Scalar::Date(20_783));
    assert_eq!(v["hour"], Scalar::Integer(15));
    assert_eq!(
        bucket_values(20_783, Granularity::Day)
            .into_iter()
            .collect::<Vec<_>>(),
        [("date".to_string(), Scalar::Date(20_783))]
    );
    // Before the epoch: 1969-12-31T23:00Z.
    let v = bucket_values(-1, Granularity::Hour);
    assert_eq!(
        (v["date"].clone(), v["hour"].clone()),
        (Scalar::Date(-1), Scalar::Integer(23))
    );
}

#[tokio::test]
async fn first_open_creates_the_table_and_offsets_come_back_from_txn() {
    let (lake, layout, cfg, schema) = (
        lake(),
        TableLayout::new("t"),
        WriterConfig::default(),
        schema(),
    );
    let mut log = DeltaLog::open(&lake, &layout, 1, Some(spec(&schema, &cfg)))
        .await
        .unwrap();
    assert_eq!(log.table_version(), Some(0));
    let mut writer = DeltaFileWriter::new(&log, &cfg, Granularity::Hour, "w1").unwrap();
    let (adds, files) = rows(&mut writer, 0..10).await;
    assert_eq!(adds.len(), 2, "one file per hour partition");
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 10);
    assert!(adds.iter().all(|a| a.path.starts_with("date=")), "{adds:?}");
    let mut c = pending("topic/0", 0, 10);
    c.adds = adds;
    c.files = files;
    log.commit(c).await.unwrap();
    log.commit(pending("topic/1", 0, 3)).await.unwrap();

    let reopened = DeltaLog::open(&lake, &layout, 1, None).await.unwrap();
    assert_eq!(
        reopened.state().offsets(),
        [("topic/0".into(), 10), ("topic/1".into(), 3)].into()
    );
    assert_eq!(reopened.state().rows, 10);
    assert_eq!(reopened.state().commits, 2);
    // The offsets-only read (kernel snapshot, no file list) agrees, also after a partition
    // moved on in a later commit than the other's last one.
    log.commit(pending("topic/1", 3, 7)).await.unwrap();
    assert_eq!(
        offsets(&lake, &layout, 1).await.unwrap(),
        [("topic/0".into(), 10), ("topic/1".into(), 7)].into()
    );
    // A version nobody wrote reads as empty.
    let empty = DeltaLog::open(&lake, &layout, 2, None).await.unwrap();
    assert!(empty.state().offsets().is_empty());
    assert!(offsets(&lake, &layout, 2).await.unwrap().is_empty());
}

/// A store whose next Delta commit lands but is reported as failed (a lost response).
#[derive(Debug)]
struct LostResponse {
    inner: Arc<dyn object_store::ObjectStore>,
    armed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Display for LostResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LostResponse({})", self.inner)
    }
}

impl LostResponse {
    fn lose(&self, to: &Path) -> bool {
        to.as_ref().contains("_delta_log/")
            && to.as_ref().ends_with(".json")
            && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
    fn lost() -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source: "connection reset after the request was sent".into(),
        }
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for LostResponse {
    async fn put_opts(
        &self,
        location: &Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        let done = self.inner.put_opts(location, payload, opts).await?;
        if self.lose(location) {
            return Err(Self::lost());
        }
        Ok(done)
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        if self.lose(to) {
            return Err(Self::lost());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_commit_whose_response_was_lost_is_not_committed_twice() {
    let inner = lake();
    let flaky = Arc::new(LostResponse {
        inner: inner.store.clone(),
        armed: false.into(),
    });
    let lake = Lake {
        store: flaky.clone(),
        ..inner
    };
    let (layout, cfg, schema) = (TableLayout::new("t"), WriterConfig::default(), schema());
    let mut log = DeltaLog::open(&lake, &layout, 1, Some(spec(&schema, &cfg)))
        .await
        .unwrap();
    log.commit(pending("p0", 0, 5)).await.unwrap();
    flaky.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    log.commit(pending("p0", 5, 9)).await.unwrap();
    assert!(
        !flaky.armed.load(std::sync::atomic::Ordering::SeqCst),
        "the fault fired"
    );
    let after = DeltaLog::open(&lake, &layout, 1, None).await.unwrap();
    assert_eq!(
        after.table_version(),
        Some(2),
        "one Delta commit per pending commit"
    );
    assert_eq!(after.state().offsets(), [("p0".into(), 9)].into());
    // And the writer goes on from there.
    log.commit(pending("p0", 9, 12)).await.unwrap();
}

#[tokio::test]
async fn stale_writers_are_refused_and_never_overwrite() {
    let (lake, layout, cfg, schema) = (
        lake(),
        TableLayout::new("t"),
        WriterConfig::default(),
        schema(),
    );
    let mut a = DeltaLog::open(&lake, &layout, 1, Some(spec(&schema, &cfg)))
        .await
        .unwrap();
    let mut b = DeltaLog::open(&lake, &layout, 1, Some(spec(&schema, &cfg)))
        .await
        .unwrap();
    a.commit(pending("p0", 0, 5)).await.unwrap();
    // b has not seen a's commit: a different partition rebases and lands after it.
    b.commit(pending("p1", 0, 3)).await.unwrap();
    // b moving p0 from a stale start is refused after re-reading, never overwritten.
    assert!(matches!(
        b.commit(pending("p0", 0, 7)).await,
        Err(Error::Conflict { .. })
    ));
    let after = DeltaLog::open(&lake, &layout, 1, None).await.unwrap();
    assert_eq!(
        after.state().offsets(),
        [("p0".into(), 5), ("p1".into(), 3)].into()
    );
    // A gap is refused up front.
    assert!(matches!(
        a.commit(pending("p0", 6, 9)).await,
        Err(Error::Conflict { .. })
    ));
}

#[tokio::test]
async fn another_writers_commit_of_the_same_range_is_not_taken_for_ours() {
    let (lake, layout, cfg, schema) = (
        lake(),
        TableLayout::new("t"),
        WriterConfig::default(),
        schema(),
    );
    let mut a = DeltaLog::open(&lake, &layout, 1, Some(spec(&schema, &cfg)))
        .await
        .unwrap();
    let mut b = DeltaLog::open(&lake, &layout, 1, Some(spec(&schema, &cfg)))
        .await
        .unwrap();
    // Both read the same records [0, 10) and wrote their own files.
    let mut commits = Vec::new();
    for log in [&a, &b] {
        let mut writer = DeltaFileWriter::new(log, &cfg, Granularity::Hour, "w1").unwrap();
        let (adds, files) = rows(&mut writer, 0..10).await;
        let mut c = pending("p0", 0, 10);
        (c.adds, c.files) = (adds, files);
        commits.push(c);
    }
    let (theirs, ours) = (commits.remove(0), commits.remove(0));
    a.commit(theirs.clone()).await.unwrap();
    // The log now holds b's end offsets, but not b's files: b's commit did not land, and
    // saying it did would leave b counting rows that are not in the table.
    assert!(matches!(b.commit(ours).await, Err(Error::Conflict { .. })));
    let after = DeltaLog::open(&lake, &layout, 1, None).await.unwrap();
    assert_eq!(after.state().rows, 10);
    let files: HashSet<String> = theirs.adds.iter().map(|a| a.path.clone()).collect();
    assert_eq!(after.state().files, files);
}

#[tokio::test]
async fn a_commit_rebased_over_another_writers_folds_their_offsets_and_files() {
    let (lake, layout, cfg, schema) = (
        lake(),
        TableLayout::new("t"),
        WriterConfig::default(),
        schema(),
    );
    let mut a = DeltaLog::open(&lake, &layout, 1, Some(spec(&schema, &cfg)))
        .await
        .unwrap();
    a.commit(pending("p0", 0, 5)).await.unwrap();
    a.commit(pending("p1", 0, 5)).await.unwrap();
    // b knows both partitions; a moves p1 on, with files, while b writes p0.
    let mut b = DeltaLog::open(&lake, &layout, 1, None).await.unwrap();
    let theirs = pending_with_rows(&a, &cfg, "p1", 5..8).await;
    let ours = pending_with_rows(&b, &cfg, "p0", 5..9).await;
    a.commit(theirs).await.unwrap();
    assert_eq!(b.commit(ours).await.unwrap(), 4, "rebased over a's commit");
    // What b folded is what the log says.
    let fresh = DeltaLog::open(&lake, &layout, 1, None).await.unwrap();
    assert_eq!(
        b.state().offsets(),
        [("p0".into(), 9), ("p1".into(), 8)].into()
    );
    assert_eq!(b.state().offsets(), fresh.state().offsets());
    assert_eq!(b.state().files, fresh.state().files);
    assert_eq!((b.state().rows, b.state().bytes), (7, fresh.state().bytes));
    assert_eq!(b.state().commits, fresh.state().commits);
    // b now knows where p1 stands: a stale start is refused up front.
    assert!(matches!(
        b.commit(pending("p1", 5, 9)).await,
        Err(Error::Conflict { .. })
    ));
}

/// A commit of partition `p`'s `range`, one row per offset, written to files of `log`.
async fn pending_with_rows(
    log: &DeltaLog,
    cfg: &WriterConfig,
    p: &str,
    range: std::ops::Range<u64>,
) -> PendingCommit {
    let mut writer = DeltaFileWriter::new(log, cfg, Granularity::Hour, p).unwrap();
    let mut c = pending(p, range.start, range.end);
    (c.adds, c.files) = rows(&mut writer, range.start as i64..range.end as i64).await;
    c
}

#[test]
fn only_a_vanished_log_file_is_read_again() {
    let not_found = |path: &str| {
        let e = deltalake::DeltaTableError::ObjectStore {
            source: object_store::Error::NotFound {
                path: path.into(),
                source: "gone".into(),
            },
        };
        delta_err(&Path::from("t/v1"), e)
    };
    assert!(log_file_vanished(&not_found(
        "t/v1/_delta_log/00000000000000001488.json"
    )));
    assert!(!log_file_vanished(&not_found(
        "t/v1/date=2026-11-26/part-1.parquet"
    )));
    let kernel = deltalake::DeltaTableError::KernelError(delta_kernel::Error::FileNotFound(
        "t/v1/_delta_log/00000000000000000007.json".into(),
    ));
    assert!(log_file_vanished(&delta_err(&Path::from("t/v1"), kernel)));
}
