//! Confluent wire-format records (magic byte, schema id, datum) → the header parser and
//! `AvroDecoder` with two writer schemas (one older, resolved against the version's) and ids
//! that are unknown: no panic, every record accounted for once.
#![no_main]

use kappa_lake_fuzz::decode::avro::{AvroDecoder, Framing, confluent_schema_id};
use kappa_lake_fuzz::{check, schemas};
use libfuzzer_sys::fuzz_target;

fn wire(id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fuzz_target!(|input: (Vec<Vec<u8>>, Vec<(u8, u8)>)| {
    let (mut records, picks) = input;
    for (n, (id, cut)) in picks.into_iter().take(8).enumerate() {
        let body = if id % 2 == 0 {
            schemas::datum(n as i64)
        } else {
            schemas::old_datum(n as i32)
        };
        let keep = body.len() - usize::from(cut) % (body.len() + 1) / 4;
        records.push(wire(u32::from(id % 4), &body[..keep]));
    }
    for r in &records {
        if let Ok(id) = confluent_schema_id(r) {
            assert_eq!(r[0], 0);
            assert_eq!(id.to_be_bytes(), r[1..5]);
        }
    }
    let mut d = AvroDecoder::new(schemas::AVSC, schemas::arrow(), Framing::Confluent, 4096)
        .expect("the schema is usable");
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    for id in d.unknown_ids(&refs) {
        match id {
            0 => d.add_writer_schema(0, Ok(schemas::AVSC)),
            1 => d.add_writer_schema(1, Ok(schemas::OLD_AVSC)),
            _ => d.add_writer_schema(id, Err(format!("schema id {id} is not in the registry"))),
        }
    }
    assert!(d.unknown_ids(&refs).is_empty());
    check(&d.decode(&refs), refs.len(), &schemas::arrow());
});
