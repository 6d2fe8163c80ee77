//! Delta versions as independent readers see them: DuckDB (`delta_scan`), delta-rs (Python),
//! Polars and pyarrow agree after 500 commits, the log has checkpoints, and files outside the
//! log (a compaction's removed inputs, a crashed writer's leftovers) are never visible.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Int32Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, Remove};
use deltalake::protocol::DeltaOperation;
use kappa_lake::config::{Granularity, Root, WriterConfig};
use kappa_lake::storage::Lake;
use kappa_lake::table::TableLayout;
use kappa_lake::write::commit::OffsetRange;
use kappa_lake::write::delta::CreateSpec;
use kappa_lake::write::{DeltaFileWriter, DeltaLog, PendingCommit};

use crate::fixture::{Cli, TableConfig, World};
use crate::support::{duckdb, read_lake, sql_path};

const COMMITS: i64 = 500;
const ROWS_PER_COMMIT: i64 = 20;
const PARTITIONS: i64 = 3;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("_kafka_partition", DataType::Int32, false),
        Field::new("_kafka_offset", DataType::Int64, false),
    ]))
}

/// Rows `ids`, all from source partition `p` starting at offset `first_offset`, spread over
/// five hours.
fn batch(ids: std::ops::Range<i64>, p: i64, first_offset: i64) -> (RecordBatch, Vec<i64>) {
    let n = ids.end - ids.start;
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(Int32Array::from_iter_values(std::iter::repeat_n(
                p as i32, n as usize,
            ))),
            Arc::new(Int64Array::from_iter_values(first_offset..first_offset + n)),
        ],
    )
    .unwrap();
    let buckets = ids.map(|i| 490_000 + i % 5).collect();
    (batch, buckets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_commits_read_alike_and_removed_files_stay_invisible() {
    let dir = crate::support::Workdir::new();
    let lake = Lake::open(&Root::Local(dir.path().join("lake")), "root").unwrap();
    let layout = TableLayout::new("events");
    let cfg = WriterConfig::default();
    let file_schema = schema();
    let spec = CreateSpec {
        file_schema: &file_schema,
        granularity: Granularity::Hour,
        writer: &cfg,
    };
    let mut log = DeltaLog::open(&lake, &layout, 1, Some(spec)).await.unwrap();
    let mut writer = DeltaFileWriter::new(&log, &cfg, Granularity::Hour, "w1").unwrap();
    let mut next_offset = [0i64; PARTITIONS as usize];
    let mut first_commit_adds: Vec<Add> = Vec::new();
    for c in 0..COMMITS {
        let p = c % PARTITIONS;
        let start = next_offset[p as usize];
        let ids = c * ROWS_PER_COMMIT..(c + 1) * ROWS_PER_COMMIT;
        let (rows, buckets) = batch(ids, p, start);
        writer.write(&rows, &buckets).await.unwrap();
        let (adds, files) = writer.finish().await.unwrap();
        if c == 0 {
            first_commit_adds = adds.clone();
        }
        let end = start + ROWS_PER_COMMIT;
        next_offset[p as usize] = end;
        let range = OffsetRange {
            start: start as u64,
            end: end as u64,
            end_byte: None,
            eof: false,
        };
        log.commit(PendingCommit {
            files,
            adds,
            ranges: [(format!("events/{p}"), range)].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let total = COMMITS * ROWS_PER_COMMIT;
    let id_sum: i64 = (0..total).sum();

    // A compaction rewrites the first commit's rows into a new file and removes the old ones
    // in one transaction; the removed files stay on disk until a vacuum.
    let (rows, buckets) = batch(0..ROWS_PER_COMMIT, 0, 0);
    writer.write(&rows, &buckets).await.unwrap();
    let (rewritten, _) = writer.finish().await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let mut actions: Vec<Action> = rewritten
        .into_iter()
        .map(|mut a| {
            a.data_change = false;
            Action::Add(a)
        })
        .collect();
    actions.extend(first_commit_adds.iter().map(|a| {
        Action::Remove(Remove {
            path: a.path.clone(),
            data_change: false,
            deletion_timestamp: Some(now),
            extended_file_metadata: Some(true),
            partition_values: Some(a.partition_values.clone()),
            size: Some(a.size),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
        })
    }));
    let table = log.table().unwrap();
    CommitBuilder::default()
        .with_actions(actions)
        .build(
            Some(table.snapshot().unwrap()),
            table.log_store(),
            DeltaOperation::Optimize {
                predicate: None,
                target_size: 1 << 20,
            },
        )
        .await
        .unwrap();
    // A crashed writer's leftovers: written, never committed.
    let (rows, buckets) = batch(total..total + 777, 1, 999_999);
    writer.write(&rows, &buckets).await.unwrap();
    let (leftover, _) = writer.finish().await.unwrap();
    assert!(!leftover.is_empty());
    for a in first_commit_adds.iter().chain(&leftover) {
        assert!(
            dir.path().join("lake/events/v1").join(&a.path).exists(),
            "{} is on disk",
            a.path
        );
    }

    // Every reader that goes through the Delta log sees each row exactly once.
    let seen = read_lake(dir.path(), "events", 1, "delta", &[], "id");
    let names: Vec<&String> = seen.keys().collect();
    assert_eq!(names, ["deltars", "duckdb", "polars", "pyarrow"]);
    for (reader, s) in &seen {
        assert_eq!(s["rows"], total, "{reader}: rows");
        assert_eq!(s["distinct_ids"], total, "{reader}: distinct ids");
        assert_eq!(s["distinct_offsets"], total, "{reader}: distinct offsets");
        assert_eq!(
            s["sum"].to_string().trim_matches('"'),
            id_sum.to_string(),
            "{reader}: sum"
        );
    }
    let checkpoints = seen["deltars"]["checkpoints"].as_array().unwrap();
    assert!(
        checkpoints.len() >= 5,
        "a checkpoint every 100 commits: {checkpoints:?}"
    );
    assert_eq!(seen["deltars"]["delta_version"], COMMITS + 1);

    // A path glob is not a Delta reader: it does see the removed and the uncommitted files.
    let glob = duckdb(&format!(
        "SELECT count(*) FROM read_parquet('{}/date=*/**/*.parquet', hive_partitioning = true)",
        sql_path(&dir.path().join("lake/events/v1"))
    ));
    assert_eq!(glob[0][0], total + ROWS_PER_COMMIT + 777);

    // The offsets come back from the log's `txn` actions.
    let reopened = DeltaLog::open(&lake, &layout, 1, None).await.unwrap();
    let offsets: HashMap<String, u64> = reopened.state().offsets().into_iter().collect();
    for p in 0..PARTITIONS {
        assert_eq!(
            offsets[&format!("events/{p}")],
            next_offset[p as usize] as u64
        );
    }
}

/// A `format = "parquet"` version, written by `run` from a files source, reads the same in
/// PySpark, DuckDB and pyarrow.
#[test]
fn a_parquet_version_reads_alike_in_pyspark_duckdb_and_pyarrow() {
    let w = World::with(&TableConfig::files().format("parquet"));
    let d = w.path();
    let n = 5000i64;
    let lines: String = (0..n)
        .map(|id| {
            format!(
                "{{\"id\":{id},\"ts\":{},\"name\":\"n{}\"}}\n",
                1_795_651_200_000 + id * 37_000,
                id % 13
            )
        })
        .collect();
    std::fs::write(d.join("input/events.ndjson"), lines).unwrap();
    Cli::new(d).run_ok(&[]);
    assert_eq!(crate::support::version_format(d, 1), "parquet");
    let seen = read_lake(
        d,
        "events",
        1,
        "parquet",
        &["duckdb", "pyarrow", "pyspark"],
        "id",
    );
    let names: Vec<&String> = seen.keys().collect();
    assert_eq!(names, ["duckdb", "pyarrow", "pyspark"]);
    for (reader, s) in &seen {
        assert_eq!(s["rows"], n, "{reader}: rows");
        assert_eq!(s["distinct_ids"], n, "{reader}: distinct ids");
        assert_eq!(
            s["sum"].to_string().trim_matches('"'),
            ((0..n).sum::<i64>()).to_string(),
            "{reader}: sum"
        );
        assert_eq!(s, &seen["duckdb"], "{reader} and DuckDB differ");
    }
}
