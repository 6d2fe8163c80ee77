//! Unit tests of `write::parquet`: rolling Parquet files and the file entries they return.

use super::*;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::config::Root;

fn lake() -> Lake {
    let url = url::Url::parse(&format!("memory://{}", uuid::Uuid::new_v4())).unwrap();
    Lake::open(&Root::Url(url), "root").unwrap()
}

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let names: Vec<Option<String>> = ids
        .clone()
        .map(|i| (i % 3 != 0).then(|| format!("name-{i}")))
        .collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

/// Reads a written file back: its row group sizes and its ids in order.
async fn read_back(lake: &Lake, dir: &Path, f: &FileEntry) -> (Vec<i64>, Vec<i64>) {
    let path = Path::parse(format!("{dir}/{}", f.path)).unwrap();
    let bytes = lake.read_all(&path).await.unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let groups = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    let mut ids = Vec::new();
    for b in reader.build().unwrap() {
        let b = b.unwrap();
        let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        ids.extend(col.values().iter().copied());
    }
    (groups, ids)
}

#[tokio::test]
async fn parts_fill_row_groups_exactly_and_every_row_lands_once_in_order() {
    let (lake, dir) = (lake(), Path::from("t/v1"));
    let cfg = WriterConfig {
        row_group_rows: 100,
        ..WriterConfig::default()
    };
    let mut w = PartitionedWriter::new(
        lake.clone(),
        dir.clone(),
        batch(0..1).schema(),
        cfg,
        Granularity::Hour,
        "w1",
    )
    .unwrap();
    // Even ids in hour 10, odd ids in hour 11: 125 rows per hour and batch.
    for start in [0, 250, 500] {
        let b = batch(start..start + 250);
        let buckets: Vec<i64> = (start..start + 250).map(|i| 10 + i % 2).collect();
        w.write(&b, &buckets).await.unwrap();
    }
    assert!(w.buffered_bytes() > 0);
    let mut files = w.finish_files().await.unwrap();
    files.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    assert_eq!(files.len(), 2, "one file per hour");
    assert_eq!(w.buffered_bytes(), 0);
    for (hour, f) in files.iter().enumerate() {
        assert_eq!(f.entry.rows, 375);
        assert_eq!(f.metadata.file_metadata().num_rows(), 375);
        assert_eq!(
            f.entry.partition,
            [
                ("date".into(), "1970-01-01".into()),
                ("hour".into(), format!("{:02}", 10 + hour))
            ]
        );
        let (groups, ids) = read_back(&lake, &dir, &f.entry).await;
        assert_eq!(groups, [100, 100, 100, 75]);
        let want: Vec<i64> = (0..750).filter(|i| i % 2 == hour as i64).collect();
        assert_eq!(ids, want);
    }
}

#[tokio::test]
async fn files_roll_at_the_target_size_and_the_budget_closes_files_early() {
    let (lake, dir) = (lake(), Path::from("t/v1"));
    let cfg = WriterConfig {
        row_group_rows: 1000,
        target_file_size: 1024,
        ..WriterConfig::default()
    };
    let mut w = PartitionedWriter::new(
        lake.clone(),
        dir.clone(),
        batch(0..1).schema(),
        cfg,
        Granularity::Day,
        "w1",
    )
    .unwrap();
    for start in (0..10_000).step_by(1000) {
        w.write(&batch(start..start + 1000), &[3; 1000])
            .await
            .unwrap();
    }
    let files = w.finish().await.unwrap();
    assert!(files.len() >= 5, "rolled at ~1 KiB: {files:?}");
    let mut ids = Vec::new();
    for f in &files {
        ids.extend(read_back(&lake, &dir, f).await.1);
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..10_000).collect::<Vec<_>>());

    // A budget of 1 MiB with rows spread over many days: open files are closed early,
    // so what stays buffered never passes it by more than the last write.
    let cfg = WriterConfig {
        max_buffer_bytes: 1 << 20,
        ..WriterConfig::default()
    };
    let mut w = PartitionedWriter::new(
        lake.clone(),
        dir.clone(),
        batch(0..1).schema(),
        cfg,
        Granularity::Day,
        "w2",
    )
    .unwrap();
    let mut peak = 0;
    for start in (0..400_000).step_by(20_000) {
        let buckets: Vec<i64> = (start..start + 20_000).map(|i| i % 40).collect();
        w.write(&batch(start..start + 20_000), &buckets)
            .await
            .unwrap();
        peak = peak.max(w.buffered_bytes());
    }
    assert!(peak <= 1 << 20, "buffered {peak} bytes");
    let files = w.finish().await.unwrap();
    assert!(files.len() > 40, "closed early: {} files", files.len());
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 400_000);
}

#[tokio::test]
async fn over_budget_the_partitions_written_least_recently_are_closed_first() {
    let (lake, dir) = (lake(), Path::from("t/v1"));
    let cfg = WriterConfig {
        max_buffer_bytes: 8 << 20,
        ..WriterConfig::default()
    };
    let mut w = PartitionedWriter::new(
        lake.clone(),
        dir.clone(),
        batch(0..1).schema(),
        cfg,
        Granularity::Hour,
        "w1",
    )
    .unwrap();
    assert!(w.context_bytes > 100_000, "{}", w.context_bytes);
    // Round r fills hour r (25,000 rows: its zstd contexts count) and brings 100 late
    // rows for hour r - 1, in one batch. Over budget, earlier hours are closed; the hour
    // being filled never is.
    let mut id = 0;
    for hour in 1..=8 {
        let b = batch(id..id + 25_100);
        id += 25_100;
        let mut buckets = vec![hour; 25_000];
        buckets.extend([hour - 1; 100]);
        w.write(&b, &buckets).await.unwrap();
        assert!(w.buffered_bytes() <= 8 << 20);
    }
    let files = w.finish().await.unwrap();
    // One file per hour: each was closed after its late rows came, none while filled.
    assert_eq!(files.len(), 9, "{files:?}");
    for hour in 1..=8 {
        let name = format!("{hour:02}");
        let of_hour: Vec<u64> = files
            .iter()
            .filter(|f| f.partition[1].1 == name)
            .map(|f| f.rows)
            .collect();
        assert!(
            of_hour.iter().any(|rows| *rows >= 25_000),
            "hour {hour} was split while being filled: {of_hour:?}"
        );
    }
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 8 * 25_100);
}

#[test]
fn dictionaries_are_left_out_for_mostly_distinct_strings_integers_and_times() {
    use arrow::array::{Int32Array, TimestampMicrosecondArray};
    let n = 1000i64;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("kind", DataType::Int32, false),
        Field::new(
            "ts",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("name", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|i| i * 7919 % 100_003),
            )),
            Arc::new(Int32Array::from_iter_values((0..n).map(|i| (i % 5) as i32))),
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                (0..n).map(|i| 1_700_000_000_000_000 + i * 1_000),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("n{i}")),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| ["de", "fr", "us"][(i % 3) as usize]),
            )),
        ],
    )
    .unwrap();
    let mut distinct = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        mostly_distinct(field, column, &mut Vec::new(), &mut distinct);
    }
    let names: Vec<String> = distinct.into_iter().map(|c| c.path.join(".")).collect();
    assert_eq!(names, ["id", "ts", "name"]);
    // Too few values to judge: dictionaries stay.
    let few = batch.slice(0, 100);
    let mut distinct = Vec::new();
    for (field, column) in schema.fields().iter().zip(few.columns()) {
        mostly_distinct(field, column, &mut Vec::new(), &mut distinct);
    }
    assert!(distinct.is_empty(), "{distinct:?}");
}

/// A column of random identifiers is compressed at zstd's fastest level (as small there, and
/// faster), judged once per writer on a sample big enough; numbers keep the configured level.
#[test]
fn random_identifiers_are_compressed_at_the_fastest_level() {
    use arrow::array::TimestampMicrosecondArray;
    let n = 4096u64;
    // A fixed pseudo-random sequence (splitmix64), formatted as UUIDs.
    let random = |i: u64| {
        let mut z = i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let ids = (0..n).map(|i| {
        let (a, b) = (random(2 * i), random(2 * i + 1));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    });
    let schema = Arc::new(Schema::new(vec![
        Field::new("view_id", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            false,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(ids)),
            Arc::new(TimestampMicrosecondArray::from_iter_values((0..n).map(
                |i| 1_795_651_307_420_369 + (i * 700_000 + random(i) % 700_000) as i64,
            ))),
        ],
    )
    .unwrap();
    let mut w = PartitionedWriter::new(
        lake(),
        Path::from("t/v1"),
        schema,
        WriterConfig::default(),
        Granularity::Hour,
        "w1",
    )
    .unwrap();
    let fast = Compression::ZSTD(ZstdLevel::try_new(FAST_LEVEL).unwrap());
    let configured = Compression::ZSTD(ZstdLevel::try_new(3).unwrap());
    let level_of =
        |props: &WriterProperties, name: &str| props.compression(&ColumnPath::from(name));
    // 300 identifiers are mostly distinct, but too few bytes to judge the level on.
    let props = w.props_for(&batch.slice(0, 300));
    assert_eq!(level_of(&props, "view_id"), configured);
    let props = w.props_for(&batch);
    assert_eq!(level_of(&props, "view_id"), fast);
    assert_eq!(level_of(&props, "ts"), configured);
    // Judged once: a later file with a small first part gets the same.
    let props = w.props_for(&batch.slice(0, 300));
    assert_eq!(level_of(&props, "view_id"), fast);
    // At level 1 already: nothing to choose.
    let at_one = WriterConfig {
        zstd_level: 1,
        ..WriterConfig::default()
    };
    let mut w = PartitionedWriter::new(
        lake(),
        Path::from("t/v1"),
        batch.schema(),
        at_one,
        Granularity::Hour,
        "w1",
    )
    .unwrap();
    assert_eq!(
        w.props_for(&batch)
            .compression(&ColumnPath::from("view_id")),
        fast
    );
}
