//! JSON decode → Arrow, against a per-record `serde_json::Value` parse of the same events
//! in the same run (the ratio is what to read; absolute figures vary on shared machines).
//!
//! `cargo bench --bench decode`

use std::hint::black_box;
use std::io::BufRead;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kappa_lake::decode::json::JsonDecoder;
use kappa_lake::schema::EventSchema;

const EVENTS: usize = 8192;

fn order_lines() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("temp dir");
    kappa_lake::demo::generate_orders(dir.path(), EVENTS * 4, 0).expect("generate events");
    // File 000 is plain NDJSON (odd files are gzipped).
    let file = std::fs::File::open(dir.path().join("orders-000.ndjson")).expect("open events");
    std::io::BufReader::new(file)
        .split(b'\n')
        .map(|l| l.expect("read line"))
        .collect()
}

fn decode(c: &mut Criterion) {
    let schema = EventSchema::parse(kappa_lake::demo::ORDERS_SCHEMA).expect("orders schema");
    let lines = order_lines();
    let records: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let decoder = JsonDecoder::new(schema.arrow.clone(), 1 << 20);

    let mut group = c.benchmark_group("json_decode_orders");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("kappa_lake_arrow", |b| {
        b.iter(|| {
            let decoded = decoder.decode(black_box(&records));
            assert!(decoded.rejected.is_empty());
            decoded.rows.len()
        })
    });
    group.bench_function("baseline_serde_json_value", |b| {
        b.iter(|| {
            records
                .iter()
                .map(|r| serde_json::from_slice::<serde_json::Value>(black_box(r)).map(|_| ()))
                .filter(Result::is_ok)
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
