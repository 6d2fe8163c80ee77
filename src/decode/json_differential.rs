//! The fast JSON decoder held to the oracle (arrow-json alone) on generated records of the
//! shipped schemas and of a schema with every type the fast decoder builds: both must give the
//! same rows, values, rejections and reasons. (`tests/fuzz`'s `json_differential` target does
//! the same under libFuzzer, from the same generator.)

use arrow::datatypes::SchemaRef;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::decode::JsonDecoder;
use crate::decode::fast_json::RowBuilder;
use crate::schema::EventSchema;

#[path = "../../tests/fuzz/src/json_gen.rs"]
mod json_gen;

fn shipped(name: &str) -> SchemaRef {
    let path = format!("{}/schemas/{name}.avsc", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("shipped schema");
    EventSchema::parse(&text)
        .expect("shipped schema parses")
        .arrow
}

/// Decodes `batches` batches of generated records both ways; panics at the first difference.
fn agree(schema: &SchemaRef, seed: u64, batches: usize) {
    let fast = JsonDecoder::new(schema.clone(), 4096);
    assert!(fast.is_fast(), "the fast decoder covers {schema:?}");
    let oracle = fast.clone().oracle_only();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pick = |n: u32| rng.random_range(0..n);
    let mut taken = 0; // records the fast decoder decodes itself
    let mut total = 0;
    for _ in 0..batches {
        let count = 1 + pick(40) as usize;
        let records: Vec<Vec<u8>> = (0..count)
            .map(|_| json_gen::record(schema, &mut pick))
            .collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let (a, b) = (fast.decode(&refs), oracle.decode(&refs));
        if let Some(diff) = a.differs_from(&b, schema) {
            let shown: Vec<_> = records.iter().map(|r| String::from_utf8_lossy(r)).collect();
            panic!("fast vs oracle: {diff}\nrecords: {shown:#?}");
        }
        let mut rows = RowBuilder::new(schema);
        taken += refs.iter().filter(|r| rows.push(r).is_ok()).count();
        total += refs.len();
    }
    // Half the records are clean; most of those (a record with an escape in a time, say, is a
    // miss) must take the fast path, or this test would only exercise the oracle.
    assert!(
        taken * 3 > total,
        "the fast decoder took {taken} of {total} records"
    );
}

#[test]
fn agrees_with_the_oracle_on_every_type() {
    agree(&json_gen::every_type(), 1, 400);
}

#[test]
fn agrees_with_the_oracle_on_the_shipped_schemas() {
    agree(&shipped("page_views"), 2, 300);
    agree(&shipped("orders"), 3, 100);
}

#[test]
fn takes_the_common_forms_itself() {
    let mut rows = RowBuilder::new(&shipped("orders"));
    let order = br#"{"order_id":1,"customer_id":"C1","ts":"2026-11-26T10:00:00.123Z","status":"paid","amount":"12.50","currency":"EUR","items":[{"sku":"S\u00e9","quantity":2,"unit_price":1.25}],"shipping":null,"coupon":null,"tags":{"a":"b"}}"#;
    assert_eq!(rows.push(order), Ok(()));
    let mut rows = RowBuilder::new(&shipped("page_views"));
    let view = br#"{"view_id":"6f1c","user_id":null,"ts":1795651200000000,"url":"https://x/p?q=1","referrer":null,"duration_ms":5,"device":{"kind":"mobile","os":"iOS 18"}}"#;
    assert_eq!(rows.push(view), Ok(()));
}

#[test]
fn decoding_in_parallel_pieces_gives_the_same_result() {
    use crate::decode::{PARALLEL_PIECE, RecordDecoder};
    let schema = json_gen::every_type();
    let decoder = RecordDecoder::Json(JsonDecoder::new(schema.clone(), 4096));
    let mut rng = StdRng::seed_from_u64(4);
    let mut pick = |n: u32| rng.random_range(0..n);
    let records: Vec<Vec<u8>> = (0..2 * PARALLEL_PIECE + 77)
        .map(|_| json_gen::record(&schema, &mut pick))
        .collect();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let (whole, pieces) = (decoder.decode(&refs), decoder.decode_parallel(&refs));
    assert!(
        whole.rejected.len() > 100 && whole.rows.len() > 100,
        "rows and rejections in every piece"
    );
    assert_eq!(pieces.differs_from(&whole, &schema), None);
}
