//! An upsert table's changes between two commits, and the keys they touch.
//!
//! Changes arrive in log order per source partition: rows that set a key (with their time
//! buckets) and keys deleted. Only the last change of each key counts, so the buffer keeps,
//! per key, the row that set it last or nothing (deleted). The commit takes it: the touched
//! keys (to remove from the snapshot's files) and the rows to add.
//!
//! Invariant: for every key changed since the last commit, exactly its last change counts; a
//! record that both deletes and sets (an update of the key) deletes first.

use std::collections::{HashMap, HashSet};

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::row::{OwnedRow, RowConverter, SortField};

/// Keys as comparable bytes (Arrow's row format), and the columns they are read from.
#[derive(Debug, Clone)]
pub struct KeyColumns {
    names: Vec<String>,
    fields: Vec<SortField>,
}

impl KeyColumns {
    /// The key `names`, with their types in `schema` (checked when the config was loaded).
    pub fn new(schema: &SchemaRef, names: &[String]) -> Result<KeyColumns, ArrowError> {
        let fields = names
            .iter()
            .map(|n| {
                Ok(SortField::new(
                    schema.field_with_name(n)?.data_type().clone(),
                ))
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        Ok(KeyColumns {
            names: names.to_vec(),
            fields,
        })
    }

    /// A converter of key columns into rows.
    pub fn converter(&self) -> Result<RowConverter, ArrowError> {
        RowConverter::new(self.fields.clone())
    }

    /// The key column names, in key order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The key columns of `batch` (a row batch), in key order.
    pub fn columns(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, ArrowError> {
        self.names
            .iter()
            .map(|n| {
                batch.column_by_name(n).cloned().ok_or_else(|| {
                    ArrowError::SchemaError(format!("the rows have no key column `{n}`"))
                })
            })
            .collect()
    }
}

/// The keys a commit changes, to be removed from the files that hold them.
#[derive(Debug)]
pub struct TouchedKeys {
    /// How keys are read.
    pub columns: KeyColumns,
    /// The keys, as row-format bytes.
    pub keys: HashSet<Box<[u8]>>,
}

impl TouchedKeys {
    /// For each row of `batch`, whether its key is untouched (the row stays); `None` when no
    /// row's key is touched.
    pub fn keep(
        &self,
        batch: &RecordBatch,
        converter: &RowConverter,
    ) -> Result<Option<Vec<bool>>, ArrowError> {
        let rows = converter.convert_columns(&self.columns.columns(batch)?)?;
        let keep: Vec<bool> = rows
            .iter()
            .map(|r| !self.keys.contains(r.as_ref()))
            .collect();
        Ok((!keep.iter().all(|k| *k)).then_some(keep))
    }
}

/// What a commit applies: the keys it touches and the rows it sets.
#[derive(Debug)]
pub struct Drained {
    /// Every key changed (set or deleted).
    pub touched: TouchedKeys,
    /// The rows that set keys, one per key still present, and each row's time bucket.
    pub rows: Option<(RecordBatch, Vec<i64>)>,
    /// Keys deleted (their last change was a delete).
    pub deleted: usize,
}

/// One change: its record index, whether it sets (after a delete of the same record), the
/// row it sets (batch, row) or `None` for a delete, and the key.
type Change = (usize, bool, Option<(usize, usize)>, OwnedRow);

/// The changes since the last commit, last one per key.
#[derive(Debug)]
pub struct UpsertBuffer {
    columns: KeyColumns,
    converter: RowConverter,
    batches: Vec<(RecordBatch, Vec<i64>)>,
    latest: HashMap<OwnedRow, Option<(usize, usize)>>,
    bytes: usize,
}

impl UpsertBuffer {
    /// A buffer for rows of `schema` keyed by `key`.
    pub fn new(schema: &SchemaRef, key: &[String]) -> Result<UpsertBuffer, ArrowError> {
        let columns = KeyColumns::new(schema, key)?;
        Ok(UpsertBuffer {
            converter: columns.converter()?,
            columns,
            batches: Vec::new(),
            latest: HashMap::new(),
            bytes: 0,
        })
    }

    /// Memory held.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Keys changed since the last commit.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether nothing changed since the last commit.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Applies one source batch's changes in record order: `rows` are row batches with each
    /// row's time bucket and record index; `deleted` are key batches (the key columns, in key
    /// order) with each key's record index. A record that deletes and sets deletes first.
    pub fn apply(
        &mut self,
        rows: Vec<(RecordBatch, Vec<i64>, Vec<usize>)>,
        deleted: &[RecordBatch],
        deleted_at: &[usize],
    ) -> Result<(), ArrowError> {
        let mut changes: Vec<Change> = Vec::new();
        let mut at = deleted_at.iter();
        for keys in deleted {
            let keys = self.converter.convert_columns(keys.columns())?;
            for (key, &index) in keys.iter().zip(&mut at) {
                changes.push((index, false, None, key.owned()));
            }
        }
        for (batch, buckets, records) in rows {
            let keys = self
                .converter
                .convert_columns(&self.columns.columns(&batch)?)?;
            let b = self.batches.len();
            for (row, (key, &index)) in keys.iter().zip(&records).enumerate() {
                changes.push((index, true, Some((b, row)), key.owned()));
            }
            self.bytes += batch.get_array_memory_size();
            self.batches.push((batch, buckets));
        }
        changes.sort_by_key(|c| (c.0, c.1));
        for (_, _, target, key) in changes {
            self.bytes += key.as_ref().len();
            self.latest.insert(key, target);
        }
        Ok(())
    }

    /// Takes what the next commit applies, leaving the buffer empty.
    pub fn drain(&mut self) -> Result<Drained, ArrowError> {
        let latest = std::mem::take(&mut self.latest);
        let batches = std::mem::take(&mut self.batches);
        self.bytes = 0;
        let mut keys = HashSet::with_capacity(latest.len());
        let mut set: Vec<(usize, usize)> = Vec::with_capacity(latest.len());
        for (key, target) in latest {
            set.extend(target);
            keys.insert(Box::from(key.as_ref()));
        }
        let deleted = keys.len() - set.len();
        // In arrival order, so files keep the log's order of rows.
        set.sort_unstable();
        let rows = if set.is_empty() {
            None
        } else {
            let refs: Vec<&RecordBatch> = batches.iter().map(|(b, _)| b).collect();
            let batch = arrow::compute::interleave_record_batch(&refs, &set)?;
            let buckets = set.iter().map(|&(b, r)| batches[b].1[r]).collect();
            Some((batch, buckets))
        };
        Ok(Drained {
            touched: TouchedKeys {
                columns: self.columns.clone(),
                keys,
            },
            rows,
            deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, false),
        ]))
    }

    fn rows(ids: &[i64], vs: &[&str]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(vs.to_vec())),
            ],
        )
        .unwrap()
    }

    fn keys(ids: &[i64]) -> RecordBatch {
        let s = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        RecordBatch::try_new(s, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap()
    }

    #[test]
    fn the_last_change_of_each_key_wins_and_a_key_change_deletes_first() {
        let mut b = UpsertBuffer::new(&schema(), &["id".to_string()]).unwrap();
        // Records 0..5: set 1, set 2, delete 1, set 3, (key change 3 → 4: delete 3, set 4).
        b.apply(
            vec![(
                rows(&[1, 2, 3, 4], &["a", "b", "c", "d"]),
                vec![7; 4],
                vec![0, 1, 3, 4],
            )],
            &[keys(&[1, 3])],
            &[2, 4],
        )
        .unwrap();
        // The next batch: 2 updated, 1 set again.
        b.apply(
            vec![(rows(&[2, 1], &["b2", "a2"]), vec![8, 9], vec![0, 1])],
            &[],
            &[],
        )
        .unwrap();
        let d = b.drain().unwrap();
        assert!(b.is_empty());
        assert_eq!(d.touched.keys.len(), 4);
        assert_eq!(d.deleted, 1, "3 is deleted");
        let (batch, buckets) = d.rows.unwrap();
        let ids: Vec<i64> = batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        let vs: Vec<&str> = batch
            .column(1)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(ids, vec![4, 2, 1]);
        assert_eq!(vs, vec!["d", "b2", "a2"]);
        assert_eq!(buckets, vec![7, 8, 9]);
        // The touched keys find the rows of a file that must go.
        let converter = d.touched.columns.converter().unwrap();
        let keep = d
            .touched
            .keep(&rows(&[5, 3, 1], &["x", "y", "z"]), &converter);
        assert_eq!(keep.unwrap(), Some(vec![true, false, false]));
        assert_eq!(
            d.touched.keep(&rows(&[5], &["x"]), &converter).unwrap(),
            None
        );
    }
}
