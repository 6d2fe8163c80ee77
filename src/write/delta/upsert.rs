//! An upsert commit's copy-on-write: the snapshot's files that hold a key the commit changes
//! are rewritten without those rows, by the writer that writes the keys' new rows.
//!
//! Invariant: a file is replaced only by files holding exactly its rows whose keys are
//! untouched, and the `remove`s land in the commit that adds the new rows and moves the
//! offsets: a reader sees every key at most once, as of one commit.

use std::collections::HashSet;

use arrow::array::BooleanArray;
use arrow::error::ArrowError;
use arrow::row::RowConverter;
use bytes::Bytes;
use deltalake::kernel::Remove;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::compact::bucket_of;
use super::{DeltaLog, delta_err};
use crate::config::Granularity;
use crate::error::{BoxError, Error, Result};
use crate::partition::key_buckets;
use crate::write::DeltaFileWriter;
use crate::write::upsert::TouchedKeys;

/// What rewriting the files that hold touched keys did.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// The files replaced.
    pub removes: Vec<Remove>,
    /// Rows dropped from them (old versions of the touched keys).
    pub rows_dropped: u64,
    /// Rows they kept, written again.
    pub rows_kept: u64,
}

impl DeltaLog {
    /// Writes, with `writer`, every row of the snapshot's files that hold any of `touched`'s
    /// keys except those keys' rows; returns the `remove` actions of those files. Files
    /// without touched keys are left as they are.
    pub async fn rewrite_without(
        &self,
        touched: &TouchedKeys,
        writer: &mut DeltaFileWriter,
        granularity: Granularity,
    ) -> Result<Rewrite> {
        let mut out = Rewrite::default();
        let Some(table) = &self.table else {
            return Ok(out);
        };
        if touched.keys.is_empty() {
            return Ok(out);
        }
        let snapshot = table.snapshot().map_err(|e| delta_err(&self.dir, e))?;
        let mut files = Vec::new();
        for f in snapshot.log_data().iter() {
            if f.deletion_vector_descriptor().is_some() {
                return Err(delta_err(
                    &self.dir,
                    format!(
                        "{} has a deletion vector, which kappa-lake does not write or apply",
                        f.path()
                    ),
                ));
            }
            let bucket = bucket_of(&f.partition_values_map(), granularity);
            files.push((f.path().into_owned(), f.remove_action(true), bucket));
        }
        let converter = touched
            .columns
            .converter()
            .map_err(|e| delta_err(&self.dir, e))?;
        // Partitioned by key bucket, a key's rows are in its bucket's files only: the other
        // buckets' files are not even read.
        if let Granularity::KeyBuckets(n) = granularity {
            let buckets =
                touched_buckets(touched, &converter, n).map_err(|e| delta_err(&self.dir, e))?;
            files.retain(|(_, _, b)| b.is_none_or(|b| buckets.contains(&b)));
        }
        let now = self.lake.clock.now().timestamp_millis();
        for (rel, mut remove, bucket) in files {
            let path = rel.split('/').fold(self.dir.clone(), |p, s| p.join(s));
            let bytes = self.lake.read_all(&path).await?;
            if !holds_any(&bytes, touched, &converter).map_err(|e| delta_err(&path, e))? {
                continue;
            }
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .and_then(|b| b.build())
                .map_err(|e| delta_err(&path, e))?;
            let mut kept = Vec::new();
            let mut hit = false;
            for batch in reader {
                let batch = writer.conform(&batch.map_err(|e| delta_err(&path, e))?)?;
                match touched
                    .keep(&batch, &converter)
                    .map_err(|e| delta_err(&path, e))?
                {
                    None => kept.push(batch),
                    Some(keep) => {
                        hit = true;
                        let rows = batch.num_rows();
                        let batch =
                            arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep))
                                .map_err(|e| delta_err(&path, e))?;
                        out.rows_dropped += (rows - batch.num_rows()) as u64;
                        kept.push(batch);
                    }
                }
            }
            if !hit {
                continue;
            }
            let Some(bucket) = bucket else {
                return Err(Error::Corrupt {
                    path,
                    source: "the file's partition values name no time bucket".into(),
                });
            };
            for batch in kept.iter().filter(|b| b.num_rows() > 0) {
                out.rows_kept += batch.num_rows() as u64;
                writer.write(batch, &vec![bucket; batch.num_rows()]).await?;
            }
            remove.deletion_timestamp = Some(now);
            out.removes.push(remove);
        }
        Ok(out)
    }
}

/// The key buckets (of `n`) of `touched`'s keys.
fn touched_buckets(
    touched: &TouchedKeys,
    converter: &RowConverter,
    n: u32,
) -> std::result::Result<HashSet<i64>, ArrowError> {
    let parser = converter.parser();
    let columns = converter.convert_rows(touched.keys.iter().map(|k| parser.parse(k)))?;
    Ok(key_buckets(&columns, n)?.into_iter().collect())
}

/// Whether the Parquet file `bytes` holds any of `touched`'s keys, reading only its key
/// columns (most files of a large table hold none of a commit's keys).
fn holds_any(
    bytes: &Bytes,
    touched: &TouchedKeys,
    converter: &RowConverter,
) -> std::result::Result<bool, BoxError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())?;
    let schema = builder.schema().clone();
    let roots = touched
        .columns
        .names()
        .iter()
        .map(|n| schema.index_of(n))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    for batch in builder.with_projection(mask).build()? {
        match touched.keep(&batch?, converter) {
            Ok(None) => {}
            // A hit, or a key column written before the schema evolved its type: the full
            // read conforms the file's rows to the version's schema and decides.
            Ok(Some(_)) | Err(_) => return Ok(true),
        }
    }
    Ok(false)
}
