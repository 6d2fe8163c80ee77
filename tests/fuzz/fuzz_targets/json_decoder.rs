//! JSON records (arbitrary bytes) → `JsonDecoder`: no panic, every record accounted for once.
#![no_main]

use std::sync::OnceLock;

use kappa_lake_fuzz::decode::json::JsonDecoder;
use kappa_lake_fuzz::{check, schemas};
use libfuzzer_sys::fuzz_target;

fn decoder() -> &'static JsonDecoder {
    static D: OnceLock<JsonDecoder> = OnceLock::new();
    D.get_or_init(|| {
        let d = JsonDecoder::new(schemas::json_arrow(), 4096);
        let good: &[u8] = br#"{"id":1,"name":"a","ts":"2026-11-26T10:00:00Z","amount":1.5,"tags":["x"],"addr":{"zip":"1"}}"#;
        let out = d.decode(&[good]);
        assert_eq!(out.rows, [0], "a valid record decodes: {:?}", out.rejected);
        d
    })
}

fuzz_target!(|records: Vec<Vec<u8>>| {
    let d = decoder();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    check(&d.decode(&refs), refs.len(), &schemas::json_arrow());
});
