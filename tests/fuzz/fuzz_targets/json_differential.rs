//! The fast JSON decoder against the oracle (arrow-json alone): generated records of two schemas
//! (every type the fast decoder builds; the shipped orders), with choices drawn from libFuzzer's
//! input, plus the input's raw bytes as records. Any difference in rows, values, rejections or
//! reasons is a crash.
#![no_main]

use std::sync::OnceLock;

use arrow::datatypes::SchemaRef;
use kappa_lake_fuzz::decode::json::JsonDecoder;
use kappa_lake_fuzz::{check, json_gen, schemas};
use libfuzzer_sys::fuzz_target;

fn decoders() -> &'static [(SchemaRef, JsonDecoder, JsonDecoder)] {
    static D: OnceLock<Vec<(SchemaRef, JsonDecoder, JsonDecoder)>> = OnceLock::new();
    D.get_or_init(|| {
        [schemas::every_type(), schemas::orders()]
            .into_iter()
            .map(|schema| {
                let fast = JsonDecoder::new(schema.clone(), 4096);
                assert!(fast.is_fast(), "the fast decoder covers {schema:?}");
                let oracle = fast.clone().oracle_only();
                (schema, fast, oracle)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (schema, fast, oracle) = &decoders()[usize::from(which) % 2];
    // Choices from the input's bytes, then zeros (the shortest valid forms).
    let mut bytes = rest.iter();
    let mut pick = |n: u32| {
        let mut v = 0u32;
        for _ in 0..(if n > 256 { 4 } else { 1 }) {
            v = (v << 8) | u32::from(*bytes.next().unwrap_or(&0));
        }
        v % n
    };
    let count = 1 + pick(12) as usize;
    let mut records: Vec<Vec<u8>> = (0..count)
        .map(|_| json_gen::record(schema, &mut pick))
        .collect();
    if usize::from(which) % 4 >= 2 {
        records.push(rest.to_vec()); // the raw input as one more record
    }
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let (a, b) = (fast.decode(&refs), oracle.decode(&refs));
    check(&a, refs.len(), schema);
    if let Some(diff) = a.differs_from(&b, schema) {
        let shown: Vec<_> = records.iter().map(|r| String::from_utf8_lossy(r)).collect();
        panic!("fast vs oracle: {diff}\nrecords: {shown:#?}");
    }
});
