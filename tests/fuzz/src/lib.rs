//! kappa-lake's decoders, compiled from the crate's own source files, and the invariants every
//! fuzz target checks.

pub mod decode;

use arrow::datatypes::SchemaRef;
use decode::json::Decoded;

/// What must hold for any input: every record is either a row or rejected (with a reason),
/// exactly once, in order; the batches hold exactly the rows, in the version's schema.
pub fn check(decoded: &Decoded, records: usize, schema: &SchemaRef) {
    assert_eq!(
        decoded.rows.len() + decoded.rejected.len(),
        records,
        "every record is a row or rejected"
    );
    let rows: usize = decoded.batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, decoded.rows.len(), "batches hold exactly the rows");
    let mut seen = vec![false; records];
    for &i in decoded
        .rows
        .iter()
        .chain(decoded.rejected.iter().map(|r| &r.index))
    {
        assert!(!seen[i], "record {i} accounted twice");
        seen[i] = true;
    }
    assert!(
        decoded.rows.windows(2).all(|w| w[0] < w[1]),
        "rows in order"
    );
    for r in &decoded.rejected {
        assert!(!r.reason.is_empty(), "a rejection has a reason");
    }
    for b in &decoded.batches {
        assert_eq!(&b.schema(), schema, "batches have the version's schema");
    }
}

pub mod json_gen;
pub mod schemas;
