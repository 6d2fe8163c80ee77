//! Key buckets: an upsert table partitioned by `partition_by = { key_buckets = N }` puts each
//! row in bucket `hash(key) mod N`.
//!
//! Invariant: a key's bucket depends only on its values and `N`, never on the build, the
//! Arrow version or the process: the hash is FNV-1a (64-bit) over a canonical encoding of the
//! key (per column: a null tag, or a value tag, the value's byte length and its bytes,
//! fixed-width values little-endian as Arrow holds them), finished by SplitMix64's mixer. A
//! key's rows, its deletes and the files that hold it agree on its bucket across every
//! commit, restart and release; the golden test below fails if that would change.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::error::ArrowError;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Whether a key column of type `t` can be bucketed (fixed-width scalars, booleans, strings
/// and binaries).
pub fn hashable(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Boolean
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    ) || t.primitive_width().is_some()
}

/// Each row's bucket in `0..buckets` (`buckets` ≥ 1), from its key `columns` in key order.
pub fn key_buckets(columns: &[ArrayRef], buckets: u32) -> Result<Vec<i64>, ArrowError> {
    let rows = columns.first().map_or(0, |c| c.len());
    let mut states = vec![FNV_OFFSET; rows];
    for column in columns {
        feed_column(column.as_ref(), &mut states)?;
    }
    let n = u64::from(buckets.max(1));
    Ok(states
        .into_iter()
        // The remainder is below `buckets`, a u32: it fits an i64.
        .map(|h| (mix(h) % n) as i64)
        .collect())
}

/// Folds each row's value of `column` into its hash state.
fn feed_column(column: &dyn Array, states: &mut [u64]) -> Result<(), ArrowError> {
    fn each<'a>(states: &mut [u64], values: impl Iterator<Item = Option<&'a [u8]>>) {
        for (state, value) in states.iter_mut().zip(values) {
            *state = match value {
                None => fnv(*state, &[0]),
                Some(bytes) => {
                    let s = fnv(*state, &[1]);
                    let s = fnv(s, &(bytes.len() as u64).to_le_bytes());
                    fnv(s, bytes)
                }
            };
        }
    }
    match column.data_type() {
        DataType::Boolean => {
            let a = column.as_boolean();
            let bytes = |b: bool| -> &'static [u8] { if b { &[1] } else { &[0] } };
            each(states, a.iter().map(|v| v.map(bytes)));
        }
        DataType::Utf8 => each(states, column.as_string::<i32>().iter().map(as_bytes)),
        DataType::LargeUtf8 => each(states, column.as_string::<i64>().iter().map(as_bytes)),
        DataType::Utf8View => each(states, column.as_string_view().iter().map(as_bytes)),
        DataType::Binary => each(states, column.as_binary::<i32>().iter()),
        DataType::LargeBinary => each(states, column.as_binary::<i64>().iter()),
        DataType::BinaryView => each(states, column.as_binary_view().iter()),
        DataType::FixedSizeBinary(_) => each(states, column.as_fixed_size_binary().iter()),
        t => {
            let Some(width) = t.primitive_width() else {
                return Err(ArrowError::NotYetImplemented(format!(
                    "key buckets of {t} key columns"
                )));
            };
            let data = column.to_data();
            let values = data.buffers()[0].as_slice();
            let start = data.offset() * width;
            each(
                states,
                (0..column.len()).map(|i| {
                    column.is_valid(i).then(|| {
                        let at = start + i * width;
                        &values[at..at + width]
                    })
                }),
            );
        }
    }
    Ok(())
}

fn as_bytes(v: Option<&str>) -> Option<&[u8]> {
    v.map(str::as_bytes)
}

fn fnv(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// SplitMix64's finalizer: spreads FNV's low-entropy high bits before the modulo.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, Int64Array, StringArray, StringViewArray};

    use super::*;

    #[test]
    fn buckets_are_the_same_in_every_release() {
        // Golden values: if this fails, existing tables would see keys in other buckets.
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 1_000_000, -7]));
        assert_eq!(key_buckets(&[ids], 16).unwrap(), GOLDEN_IDS);
        let names: ArrayRef = Arc::new(StringArray::from(vec!["a", "", "kappa"]));
        assert_eq!(key_buckets(&[names], 1000).unwrap(), GOLDEN_NAMES);
    }

    // Computed independently of this code (a few lines of Python following the module doc).
    const GOLDEN_IDS: [i64; 5] = [12, 2, 3, 4, 4];
    const GOLDEN_NAMES: [i64; 3] = [675, 315, 289];

    #[test]
    fn a_key_has_one_bucket_whatever_its_array_layout() {
        let plain: ArrayRef = Arc::new(StringArray::from(vec!["x", "y", "zz"]));
        let view: ArrayRef = Arc::new(StringViewArray::from(vec!["x", "y", "zz"]));
        assert_eq!(
            key_buckets(&[plain], 64).unwrap(),
            key_buckets(&[view], 64).unwrap()
        );
        let whole: ArrayRef = Arc::new(Int32Array::from(vec![5, 6, 7, 8]));
        let sliced = whole.slice(2, 2);
        assert_eq!(
            key_buckets(&[sliced], 64).unwrap(),
            key_buckets(&[whole], 64).unwrap()[2..]
        );
    }

    #[test]
    fn composite_keys_do_not_collide_by_concatenation() {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["ab", "a"]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["c", "bc"]));
        let mut states = vec![FNV_OFFSET; 2];
        feed_column(a.as_ref(), &mut states).unwrap();
        feed_column(b.as_ref(), &mut states).unwrap();
        assert_ne!(states[0], states[1]);
    }

    #[test]
    fn keys_spread_over_the_buckets() {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..16_000));
        let mut counts = [0usize; 16];
        for b in key_buckets(&[ids], 16).unwrap() {
            counts[b as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}
