//! Raw Avro records (arbitrary bytes, and valid datums cut or spliced) → `AvroDecoder`: no
//! panic, every record accounted for once.
#![no_main]

use std::sync::OnceLock;

use kappa_lake_fuzz::decode::avro::{AvroDecoder, Framing};
use kappa_lake_fuzz::{check, schemas};
use libfuzzer_sys::fuzz_target;

fn decoder() -> &'static AvroDecoder {
    static D: OnceLock<AvroDecoder> = OnceLock::new();
    D.get_or_init(|| {
        let d = AvroDecoder::new(schemas::AVSC, schemas::arrow(), Framing::Raw, 4096)
            .expect("the schema is usable");
        let good = schemas::datum(7);
        let out = d.decode(&[good.as_slice()]);
        assert_eq!(out.rows, [0], "a valid record decodes: {:?}", out.rejected);
        d
    })
}

fuzz_target!(|input: (Vec<Vec<u8>>, Vec<(u8, u16)>)| {
    let (mut records, edits) = input;
    // Valid datums with one edit each: mostly near-valid input reaches deep into the decoder.
    for (n, (op, at)) in edits.into_iter().take(8).enumerate() {
        let mut d = schemas::datum(n as i64);
        let at = usize::from(at) % (d.len() + 1);
        match op % 3 {
            0 => d.truncate(at),
            1 => d.insert(at, op),
            _ => {
                if let Some(b) = d.get_mut(at) {
                    *b ^= op | 1;
                }
            }
        }
        records.push(d);
    }
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    check(&decoder().decode(&refs), refs.len(), &schemas::arrow());
});
