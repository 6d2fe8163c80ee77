//! One criterion group per stage of the ingest hot path, on generated events, 8192 per
//! iteration (one source batch). Read the ratios between stages and the throughput figures
//! (events/s, bytes/s); absolute times vary a lot on shared machines.
//!
//! | group              | one iteration |
//! |--------------------|---------------|
//! | `decode_json`      | `JsonDecoder::decode` of 8192 page views (~250 B) or orders (~1.9 KB, 16–24 items), with the schema-specialised decoder and with arrow-json alone (`…/arrow_json`) |
//! | `decode_avro`      | `AvroDecoder::decode` of the same events as Avro datums, bare (`raw/…`) or in the Confluent wire format (`confluent/…`) |
//! | `partition`        | `partition::field_times`, `partition::bucket` per row, `partition::split_by_bucket`, events over 48 hours |
//! | `transform`        | the Kafka / files metadata columns the ingest appends (`pipeline::shape::with_metadata_columns`, public for this benchmark), the `filter_record_batch` that drops rows without an event time, and SQL transforms (`transform::Transform::apply`): `SELECT *`, the shipped `schemas/transforms/orders.sql`, and the same with one failing row |
//! | `parquet_encode`   | zstd Parquet of 8192 orders with Kafka metadata: `ArrowWriter` into a `Vec` (the floor), `PartitionedWriter` and `DeltaFileWriter` into a local lake (and `PartitionedWriter` into a `memory://` one), `finish()`ed |
//! | `commit`           | one commit of 4 files and one offset range: `CommitLog` (Parquet versions), `DeltaLog` (Delta versions), on a local lake |
//!
//! `cargo bench --bench stages` (quicker: `cargo bench --bench stages -- --warm-up-time 1
//! --measurement-time 3`; one group: `cargo bench --bench stages -- commit`). See
//! `benches/README.md`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use apache_avro::Schema as AvroSchema;
use apache_avro::types::Value as AvroValue;
use arrow::array::BooleanArray;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::SecondsFormat;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use deltalake::kernel::Add;
use kappa_lake::config::{
    Encoding, EpochUnit, Format, Granularity, Root, SourceIdentity, TimeSpec, WriterConfig,
};
use kappa_lake::decode::avro::{AvroDecoder, CONFLUENT_MAGIC, Framing};
use kappa_lake::decode::json::JsonDecoder;
use kappa_lake::partition;
use kappa_lake::pipeline::shape::{file_schema, with_metadata_columns};
use kappa_lake::schema::EventSchema;
use kappa_lake::source::{Origin, Record, SourceBatch};
use kappa_lake::storage::Lake;
use kappa_lake::table::version::{Definition, Partitioning};
use kappa_lake::table::{TableLayout, VersionDefinition, VersionState};
use kappa_lake::write::commit::OffsetRange;
use kappa_lake::write::delta::CreateSpec;
use kappa_lake::write::parquet::writer_properties;
use kappa_lake::write::{
    CommitLog, DeltaFileWriter, DeltaLog, FileEntry, PartitionedWriter, PendingCommit,
    SourcePosition,
};
use parquet::arrow::ArrowWriter;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;

/// Records per iteration: one source batch.
const EVENTS: usize = 8192;
/// Event times: 48 hours from 2025-11-26T00:00:00Z.
const START_MS: i64 = 1_764_115_200_000;
const SPAN_MS: i64 = 48 * 3_600_000;
const PAGE_VIEWS_SCHEMA: &str = include_str!("../schemas/page_views.avsc");
const ORDERS_SCHEMA: &str = include_str!("../schemas/orders.avsc");
const TOPIC: &str = "orders";
/// Browser user agents, for the orders' tags.
const USER_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];
/// Delta commits onto one table before the benchmark starts a fresh one.
const DELTA_COMMITS_PER_TABLE: u64 = 100;

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("time in range")
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Page views of ~250 B: RFC 3339 µs timestamps, half with a referrer, a third anonymous.
fn page_view_lines() -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(7);
    let sections = ["products", "blog", "help", "account", "checkout"];
    let kinds = ["desktop", "mobile", "tablet"];
    let oses = [
        "Windows 11",
        "macOS 15.1",
        "Android 15",
        "iOS 18.2",
        "Linux",
    ];
    (0..EVENTS)
        .map(|i| {
            let ts = START_MS * 1000 + rng.random_range(0..SPAN_MS * 1000);
            let view_id = format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                rng.random::<u32>(),
                rng.random::<u16>(),
                rng.random_range(0..0x1000u16),
                rng.random_range(0x8000..0xc000u16),
                rng.random_range(0..1u64 << 48)
            );
            serde_json::json!({
                "view_id": view_id,
                "user_id": (i % 3 != 0).then(|| rng.random_range(1..5_000_000i64)),
                "ts": rfc3339(ts),
                "url": format!(
                    "https://shop.example.com/{}/item-{:06}",
                    sections[i % sections.len()],
                    rng.random_range(0..1_000_000)
                ),
                "referrer": (i % 2 == 0).then(|| format!(
                    "https://search.example.org/?q=item+{}",
                    rng.random_range(0..100_000)
                )),
                "duration_ms": rng.random_range(100..120_000),
                "device": {
                    "kind": kinds[i % kinds.len()],
                    "os": oses[rng.random_range(0..oses.len())],
                },
            })
            .to_string()
            .into_bytes()
        })
        .collect()
}

/// Orders of ~1.9 KB: 16–24 line items, epoch-ms timestamps (every third in RFC 3339), like
/// `kappa_lake::demo::order_lines` but with the item count of a real basket.
fn order_lines() -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(42);
    let statuses = ["created", "paid", "shipped", "cancelled"];
    let countries = ["DE", "FR", "NL", "US", "JP"];
    let categories = ["ELEC", "HOME", "TOYS", "BOOK", "FOOD"];
    (0..EVENTS)
        .map(|i| {
            let ts = START_MS + rng.random_range(0..SPAN_MS);
            let ts = if i % 3 == 0 {
                serde_json::json!(rfc3339(ts * 1000))
            } else {
                serde_json::json!(ts)
            };
            let items: Vec<_> = (0..rng.random_range(16..=24))
                .map(|_| {
                    serde_json::json!({
                        "sku": format!(
                            "SKU-{}-{:06}-{}-{}",
                            categories[rng.random_range(0..categories.len())],
                            rng.random_range(0..1_000_000),
                            ["BLK", "WHT", "RED", "BLU"][rng.random_range(0..4)],
                            ["S", "M", "L", "XL"][rng.random_range(0..4)]
                        ),
                        "quantity": rng.random_range(1..5),
                        "unit_price": f64::from(rng.random_range(100..20_000i32)) / 100.0,
                    })
                })
                .collect();
            serde_json::json!({
                "order_id": i as i64 + 1,
                "customer_id": format!("C{:08}", rng.random_range(0..10_000_000)),
                "ts": ts,
                "status": statuses[rng.random_range(0..statuses.len())],
                "amount": format!("{}.{:02}", rng.random_range(1..20_000), rng.random_range(0..100)),
                "currency": "EUR",
                "items": items,
                "shipping": (i % 5 != 0).then(|| serde_json::json!({
                    "country": countries[i % countries.len()],
                    "city": format!("City {}", rng.random_range(0..1000)),
                    "zip": (i % 2 == 0).then(|| format!("{:05}", rng.random_range(0..99_999))),
                })),
                "coupon": (i % 7 == 0).then_some("WELCOME10"),
                "tags": {
                    "channel": if i % 2 == 0 { "web" } else { "app" },
                    "campaign": "black-friday-2025",
                    "session": format!("{:016x}", rng.random::<u64>()),
                    "user_agent": USER_AGENTS[i % USER_AGENTS.len()],
                    "ab_tests": "checkout-v2:B,search-ranking:A,free-shipping-threshold:control",
                    "referrer": format!(
                        "https://search.example.org/?q=gift+ideas+{}",
                        rng.random_range(0..100_000)
                    ),
                    "landing_page": format!(
                        "https://shop.example.com/{}/deals?page={}",
                        categories[i % categories.len()].to_lowercase(),
                        rng.random_range(1..50)
                    ),
                },
            })
            .to_string()
            .into_bytes()
        })
        .collect()
}

/// One generated data set: its lines and their decoded batch.
struct Events {
    name: &'static str,
    schema: EventSchema,
    lines: Vec<Vec<u8>>,
    bytes: u64,
    batch: RecordBatch,
}

impl Events {
    fn new(name: &'static str, schema: &str, lines: Vec<Vec<u8>>) -> Self {
        let schema = EventSchema::parse(schema).expect("schema");
        let records: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let decoded = JsonDecoder::new(schema.arrow.clone(), 1 << 20).decode(&records);
        assert!(
            decoded.rejected.is_empty(),
            "generated {name} rejected: {:?}",
            decoded.rejected.first()
        );
        let batch =
            arrow::compute::concat_batches(&schema.arrow, &decoded.batches).expect("one batch");
        let bytes = lines.iter().map(|l| l.len() as u64 + 1).sum();
        eprintln!(
            "{name}: {EVENTS} events, {} B on average",
            bytes / EVENTS as u64
        );
        Events {
            name,
            schema,
            lines,
            bytes,
            batch,
        }
    }

    fn records(&self) -> Vec<&[u8]> {
        self.lines.iter().map(Vec::as_slice).collect()
    }

    /// Event time (µs) of every row, from the `ts` field.
    fn times(&self) -> Vec<i64> {
        partition::field_times(&self.batch, "ts", EpochUnit::Ms)
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("event times")
    }

    fn buckets(&self, granularity: Granularity) -> Vec<i64> {
        self.times()
            .into_iter()
            .map(|t| partition::bucket(t, granularity))
            .collect::<Result<_, _>>()
            .expect("buckets")
    }

    /// The events as one source batch of `origin`, with Kafka-like timestamps.
    fn source_batch(&self, partition: &str, origin: Origin) -> SourceBatch {
        let records = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| Record {
                bytes: bytes::Bytes::from(l.clone()),
                oversized: None,
                offset: i as u64,
                timestamp_ms: Some(START_MS + i as i64),
                timestamp_type: None,
                tombstone: false,
                key: None,
                headers: None,
            })
            .collect();
        SourceBatch {
            partition: partition.into(),
            origin,
            start: 0,
            records,
            position: SourcePosition {
                offset: EVENTS as u64,
                end_byte: None,
                eof: false,
            },
        }
    }
}

/// A version definition of the orders table reading `source` (metadata columns on).
fn orders_definition(source: SourceIdentity) -> VersionDefinition {
    VersionDefinition {
        version: 1,
        table: TOPIC.into(),
        definition: Definition {
            schema: serde_json::from_str(ORDERS_SCHEMA).expect("orders schema"),
            schema_file: "schemas/orders.avsc".into(),
            transform: None,
            partitioning: Partitioning {
                time: Some(TimeSpec::Field {
                    name: "ts".into(),
                    unit: EpochUnit::Ms,
                }),
                granularity: Granularity::Hour,
            },
            format: Format::Parquet,
            source,
            metadata_columns: true,
            changes: Default::default(),
        },
        definition_hash: String::new(),
        created_at: chrono::Utc::now(),
        state: VersionState::Building,
        retired_at: None,
        evolutions: Vec::new(),
    }
}

/// The orders as the ingest hands them to the writer: event fields plus Kafka metadata.
struct KafkaOrders {
    def: VersionDefinition,
    schema: SchemaRef,
    source: SourceBatch,
    rows: Vec<usize>,
}

impl KafkaOrders {
    fn new(orders: &Events) -> Self {
        let def = orders_definition(SourceIdentity::Kafka {
            topic: TOPIC.into(),
            encoding: Some(Encoding::Json),
        });
        KafkaOrders {
            schema: file_schema(&orders.schema.arrow, &def).expect("no transform"),
            source: orders.source_batch(
                &format!("{TOPIC}/0"),
                Origin::Kafka {
                    topic: TOPIC.into(),
                    partition: 0,
                },
            ),
            def,
            rows: (0..EVENTS).collect(),
        }
    }

    fn batch(&self, orders: &Events) -> RecordBatch {
        with_metadata_columns(
            &self.def,
            &self.schema,
            orders.batch.clone(),
            &self.source,
            &self.rows,
        )
        .expect("metadata columns")
        .expect("a Kafka batch")
    }
}

/// Settings for benchmarks of tens of milliseconds per iteration.
fn slow(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
}

fn local_lake(dir: &Path) -> Lake {
    Lake::open(&Root::Local(dir.to_path_buf()), "bench").expect("local lake")
}

fn range(start: u64, end: u64) -> OffsetRange {
    OffsetRange {
        start,
        end,
        end_byte: None,
        eof: false,
    }
}

fn decode_json(c: &mut Criterion, inputs: &[&Events]) {
    let mut group = c.benchmark_group("decode_json");
    slow(&mut group);
    for events in inputs {
        let fast = JsonDecoder::new(events.schema.arrow.clone(), 1 << 20);
        let records = events.records();
        group.throughput(Throughput::Bytes(events.bytes));
        // The schema-specialised decoder, which must take every record itself (one batch: no
        // record went to arrow-json), then arrow-json alone (the decoder before it).
        for (name, decoder, batches) in [
            (events.name.to_string(), fast.clone(), Some(1)),
            (
                format!("{}/arrow_json", events.name),
                fast.clone().oracle_only(),
                None,
            ),
        ] {
            group.bench_function(name, |b| {
                b.iter(|| {
                    let decoded = decoder.decode(black_box(&records));
                    assert!(decoded.rejected.is_empty());
                    assert!(batches.is_none_or(|n| decoded.batches.len() == n));
                    decoded.batches
                })
            });
        }
    }
    group.finish();
}

/// One generated JSON event as an Avro value of `schema` (the shipped schemas' types only).
fn avro_value(json: &serde_json::Value, schema: &AvroSchema) -> AvroValue {
    use serde_json::Value as J;
    match (schema, json) {
        (AvroSchema::Record(r), J::Object(o)) => AvroValue::Record(
            r.fields
                .iter()
                .map(|f| {
                    let v = o.get(&f.name).unwrap_or(&J::Null);
                    (f.name.clone(), avro_value(v, &f.schema))
                })
                .collect(),
        ),
        (AvroSchema::Union(u), _) => {
            let i = u
                .variants()
                .iter()
                .position(|v| (*v == AvroSchema::Null) == json.is_null())
                .expect("a union variant for the value");
            AvroValue::Union(i as u32, Box::new(avro_value(json, &u.variants()[i])))
        }
        (AvroSchema::Null, J::Null) => AvroValue::Null,
        (AvroSchema::Enum(e), J::String(s)) => AvroValue::Enum(
            e.symbols.iter().position(|x| x == s).expect("a symbol") as u32,
            s.clone(),
        ),
        (AvroSchema::String | AvroSchema::Uuid, J::String(s)) => AvroValue::String(s.clone()),
        (AvroSchema::Int, J::Number(n)) => AvroValue::Int(
            n.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .expect("an int"),
        ),
        (AvroSchema::Long, J::Number(n)) => AvroValue::Long(n.as_i64().expect("a long")),
        (AvroSchema::Double, J::Number(n)) => AvroValue::Double(n.as_f64().expect("a double")),
        (AvroSchema::TimestampMicros, J::String(s)) => AvroValue::TimestampMicros(
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("RFC 3339")
                .timestamp_micros(),
        ),
        (AvroSchema::TimestampMillis, J::String(s)) => AvroValue::TimestampMillis(
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("RFC 3339")
                .timestamp_millis(),
        ),
        (AvroSchema::TimestampMillis, J::Number(n)) => {
            AvroValue::TimestampMillis(n.as_i64().expect("epoch ms"))
        }
        (AvroSchema::Decimal(d), J::String(s)) => {
            let (units, cents) = s.split_once('.').expect("a decimal with cents");
            assert_eq!(d.scale, 2, "the generated decimals have two places");
            let unscaled: i64 = format!("{units}{cents}").parse().expect("digits");
            AvroValue::Decimal(unscaled.to_be_bytes().into())
        }
        (AvroSchema::Array(a), J::Array(items)) => {
            AvroValue::Array(items.iter().map(|v| avro_value(v, &a.items)).collect())
        }
        (AvroSchema::Map(m), J::Object(o)) => AvroValue::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), avro_value(v, &m.types)))
                .collect(),
        ),
        (schema, json) => panic!("no Avro value of {schema:?} for {json}"),
    }
}

/// The schema id the Confluent-framed benchmark records carry.
const WRITER_SCHEMA_ID: u32 = 1;

/// The events of `events` as Avro datums, bare (`Framing::Raw`) or in the Confluent wire
/// format with [`WRITER_SCHEMA_ID`].
fn avro_records(events: &Events, avsc: &str, framing: Framing) -> Vec<Vec<u8>> {
    let schema = AvroSchema::parse_str(avsc).expect("Avro schema");
    events
        .lines
        .iter()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_slice(line).expect("JSON");
            let datum = apache_avro::to_avro_datum(&schema, avro_value(&json, &schema))
                .expect("an Avro datum");
            match framing {
                Framing::Raw => datum,
                Framing::Confluent => [
                    &[CONFLUENT_MAGIC][..],
                    &WRITER_SCHEMA_ID.to_be_bytes(),
                    &datum,
                ]
                .concat(),
            }
        })
        .collect()
}

fn decode_avro(c: &mut Criterion, inputs: &[(&Events, &str)]) {
    let mut group = c.benchmark_group("decode_avro");
    slow(&mut group);
    for (events, avsc) in inputs {
        for (framing, name) in [(Framing::Raw, "raw"), (Framing::Confluent, "confluent")] {
            let lines = avro_records(events, avsc, framing);
            let records: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let mut decoder = AvroDecoder::new(avsc, events.schema.arrow.clone(), framing, 1 << 20)
                .expect("Avro decoder");
            if framing == Framing::Confluent {
                decoder.add_writer_schema(WRITER_SCHEMA_ID, Ok(avsc));
            }
            let bytes: usize = lines.iter().map(Vec::len).sum();
            eprintln!(
                "{} ({name} Avro): {} B on average",
                events.name,
                bytes / lines.len()
            );
            group.throughput(Throughput::Bytes(bytes as u64));
            group.bench_function(format!("{name}/{}", events.name), |b| {
                b.iter(|| {
                    let decoded = decoder.decode(black_box(&records));
                    assert!(
                        decoded.rejected.is_empty(),
                        "{:?}",
                        decoded.rejected.first()
                    );
                    decoded.batches
                })
            });
        }
    }
    group.finish();
}

fn partition_stage(c: &mut Criterion, page_views: &Events, orders: &Events) {
    let mut group = c.benchmark_group("partition");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("field_times", |b| {
        b.iter(|| partition::field_times(black_box(&orders.batch), "ts", EpochUnit::Ms))
    });
    let times = orders.times();
    group.bench_function("bucket_hour", |b| {
        b.iter(|| {
            black_box(&times)
                .iter()
                .map(|t| partition::bucket(*t, Granularity::Hour))
                .collect::<Result<Vec<_>, _>>()
        })
    });
    for (events, granularity, id) in [
        (orders, Granularity::Hour, "split_by_bucket_hour/orders"),
        (orders, Granularity::Day, "split_by_bucket_day/orders"),
        (
            page_views,
            Granularity::Hour,
            "split_by_bucket_hour/page_views",
        ),
    ] {
        let buckets = events.buckets(granularity);
        group.bench_function(id, |b| {
            b.iter(|| partition::split_by_bucket(black_box(&events.batch), &buckets))
        });
    }
    group.finish();
}

fn transform(c: &mut Criterion, orders: &Events, kafka: &KafkaOrders) {
    let mut group = c.benchmark_group("transform");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("kafka_metadata_columns", |b| {
        b.iter(|| {
            with_metadata_columns(
                &kafka.def,
                &kafka.schema,
                black_box(orders.batch.clone()),
                &kafka.source,
                &kafka.rows,
            )
        })
    });
    let files_def = orders_definition(SourceIdentity::Files {
        path: "events".into(),
        encoding: Some(Encoding::Json),
    });
    let files_schema = file_schema(&orders.schema.arrow, &files_def).expect("no transform");
    let files_batch = orders.source_batch("orders-000.ndjson", Origin::File);
    group.bench_function("file_metadata_columns", |b| {
        b.iter(|| {
            with_metadata_columns(
                &files_def,
                &files_schema,
                black_box(orders.batch.clone()),
                &files_batch,
                &kafka.rows,
            )
        })
    });
    // The ingest filters only when a row has no valid event time; one such row costs a copy.
    let batch = kafka.batch(orders);
    let keep = BooleanArray::from_iter((0..EVENTS).map(|i| Some(i != EVENTS / 2)));
    group.bench_function("filter_one_bad_event_time", |b| {
        b.iter(|| arrow::compute::filter_record_batch(black_box(&batch), &keep))
    });
    // SQL transforms (with the `sql` feature, a default one).
    #[cfg(feature = "sql")]
    sql_transforms(&mut group, &batch);
    group.finish();
}

/// SQL transforms over the orders with their Kafka metadata: `SELECT *` (passes batches
/// through), the shipped `schemas/transforms/orders.sql` (casts, arithmetic on decimals,
/// string functions, struct and map access, CASE, a filter), and the same with one row whose
/// cast fails (isolated by bisection, then dead-lettered).
#[cfg(feature = "sql")]
fn sql_transforms(group: &mut BenchmarkGroup<'_, WallTime>, batch: &RecordBatch) {
    use kappa_lake::transform::Transform;
    let identity = Transform::compile("SELECT * FROM events", batch.schema()).expect("compiles");
    group.bench_function("sql_identity", |b| {
        b.iter(|| identity.apply(black_box(batch)))
    });
    let orders_sql = include_str!("../schemas/transforms/orders.sql");
    let typical = Transform::compile(orders_sql, batch.schema()).expect("compiles");
    group.bench_function("sql_orders", |b| b.iter(|| typical.apply(black_box(batch))));
    let failing = Transform::compile(
        &orders_sql.replace(
            "CAST(tags['discount_pct'] AS INT)",
            "CAST(CASE WHEN order_id = 4100 THEN 'ten' ELSE '5' END AS INT)",
        ),
        batch.schema(),
    )
    .expect("compiles");
    group.bench_function("sql_orders_one_failing_row", |b| {
        b.iter(|| {
            let out = failing.apply(black_box(batch));
            assert_eq!(out.failed.len(), 1);
            out
        })
    });
}

fn parquet_encode(c: &mut Criterion, rt: &Runtime, orders: &Events, kafka: &KafkaOrders) {
    let batch = kafka.batch(orders);
    let cfg = WriterConfig::default();
    let props = writer_properties(&cfg).expect("writer properties");
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = local_lake(dir.path());
    let layout = TableLayout::new(TOPIC);
    let hours = orders.buckets(Granularity::Hour);
    let days = orders.buckets(Granularity::Day);

    let mut group = c.benchmark_group("parquet_encode");
    slow(&mut group);
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("arrow_writer_vec", |b| {
        b.iter(|| {
            let mut w = ArrowWriter::try_new(
                Vec::with_capacity(4 << 20),
                batch.schema(),
                Some(props.clone()),
            )
            .expect("arrow writer");
            w.write(black_box(&batch)).expect("write");
            w.into_inner().expect("close").len()
        })
    });
    // The same writer on an in-memory store: the difference to the local lake is the cost of
    // creating the files.
    let memory = Lake::open(
        &Root::Url(url::Url::parse("memory://kappa-lake-bench").expect("memory url")),
        "bench",
    )
    .expect("memory lake");
    for (lake, granularity, buckets, id) in [
        (&lake, Granularity::Day, &days, "partitioned_writer_day"),
        (&lake, Granularity::Hour, &hours, "partitioned_writer_hour"),
        (
            &memory,
            Granularity::Hour,
            &hours,
            "partitioned_writer_hour_memory_store",
        ),
    ] {
        group.bench_function(id, |b| {
            b.iter(|| {
                let mut w = PartitionedWriter::new(
                    lake.clone(),
                    layout.version_dir(1),
                    batch.schema(),
                    cfg.clone(),
                    granularity,
                    "bench",
                )
                .expect("writer");
                rt.block_on(async {
                    w.write(black_box(&batch), buckets).await.expect("write");
                    w.finish().await.expect("finish")
                })
            })
        });
    }
    let schema = batch.schema();
    let spec = CreateSpec {
        file_schema: &schema,
        granularity: Granularity::Hour,
        writer: &cfg,
    };
    let log = rt
        .block_on(DeltaLog::open(&lake, &layout, 2, Some(spec)))
        .expect("delta table");
    group.bench_function("delta_file_writer_hour", |b| {
        b.iter(|| {
            let mut w =
                DeltaFileWriter::new(&log, &cfg, Granularity::Hour, "bench").expect("writer");
            rt.block_on(async {
                w.write(black_box(&batch), &hours).await.expect("write");
                w.finish().await.expect("finish")
            })
        })
    });
    group.finish();
}

fn commit(c: &mut Criterion, rt: &Runtime, orders: &Events, kafka: &KafkaOrders) {
    const FILES: u64 = 4;
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = local_lake(dir.path());
    let layout = TableLayout::new(TOPIC);
    let cfg = WriterConfig::default();
    let partition = format!("{TOPIC}/0");
    let batch = kafka.batch(orders);
    let schema = batch.schema();
    let spec = CreateSpec {
        file_schema: &schema,
        granularity: Granularity::Hour,
        writer: &cfg,
    };
    // Real `add` actions (with statistics) of four files of 512 rows, written once.
    let (adds, files): (Vec<Add>, Vec<FileEntry>) = rt.block_on(async {
        let log = DeltaLog::open(&lake, &TableLayout::new("setup"), 1, Some(spec))
            .await
            .expect("setup table");
        let mut w = DeltaFileWriter::new(&log, &cfg, Granularity::Hour, "bench").expect("writer");
        let rows = batch.slice(0, 512);
        let first = orders.buckets(Granularity::Hour)[0];
        let buckets: Vec<i64> = (0..512).map(|i| first + i % FILES as i64).collect();
        w.write(&rows, &buckets).await.expect("write");
        w.finish().await.expect("finish")
    });
    assert_eq!(adds.len(), FILES as usize);
    // The n-th commit: the same files under new names, the next EVENTS offsets.
    let pending = |n: u64, delta: bool| PendingCommit {
        files: files
            .iter()
            .map(|f| FileEntry {
                path: f.path.replace("part-", &format!("part-{n}-")),
                ..f.clone()
            })
            .collect(),
        dead_letters: Vec::new(),
        ranges: [(
            partition.clone(),
            range(n * EVENTS as u64, (n + 1) * EVENTS as u64),
        )]
        .into(),
        adds: if delta {
            adds.iter()
                .map(|a| {
                    let mut a = a.clone();
                    a.path = a.path.replace("part-", &format!("part-{n}-"));
                    a
                })
                .collect()
        } else {
            Vec::new()
        },
        removes: Vec::new(),
    };

    let mut group = c.benchmark_group("commit");
    group.throughput(Throughput::Elements(1));
    let mut log = rt
        .block_on(CommitLog::open(&lake, &layout, 1))
        .expect("commit log");
    let mut n = 0;
    group.bench_function("commit_log_parquet", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let p = pending(n, false);
                let start = Instant::now();
                rt.block_on(log.commit(p)).expect("commit");
                spent += start.elapsed();
                n += 1;
            }
            spent
        })
    });
    slow(&mut group);
    // A fresh table every DELTA_COMMITS_PER_TABLE commits, so the log stays the size of a
    // live version's between checkpoints (the default checkpoint_interval is 100).
    let mut delta: Option<DeltaLog> = None;
    let (mut version, mut n) = (1, 0);
    group.bench_function("delta_log", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if n % DELTA_COMMITS_PER_TABLE == 0 {
                    version += 1;
                    n = 0;
                    delta = Some(
                        rt.block_on(DeltaLog::open(&lake, &layout, version, Some(spec)))
                            .expect("delta table"),
                    );
                }
                let log = delta.as_mut().expect("opened above");
                let p = pending(n, true);
                let start = Instant::now();
                rt.block_on(log.commit(p)).expect("delta commit");
                spent += start.elapsed();
                n += 1;
            }
            spent
        })
    });
    group.finish();
}

fn stages(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let page_views = Events::new("page_views", PAGE_VIEWS_SCHEMA, page_view_lines());
    let orders = Events::new("orders", ORDERS_SCHEMA, order_lines());
    let kafka = KafkaOrders::new(&orders);
    decode_json(c, &[&page_views, &orders]);
    decode_avro(
        c,
        &[(&page_views, PAGE_VIEWS_SCHEMA), (&orders, ORDERS_SCHEMA)],
    );
    partition_stage(c, &page_views, &orders);
    transform(c, &orders, &kafka);
    parquet_encode(c, &rt, &orders, &kafka);
    commit(c, &rt, &orders, &kafka);
}

criterion_group!(benches, stages);
criterion_main!(benches);
