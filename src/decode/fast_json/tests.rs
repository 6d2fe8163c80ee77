//! Unit tests of the fast decoder's parts; `json_differential.rs` holds it to arrow-json.

use super::cursor::quote_or_backslash;
use super::*;
use arrow::datatypes::Schema;
use std::sync::Arc;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            false,
        ),
    ]))
}

#[test]
fn a_miss_takes_the_partial_row_back() {
    let mut rows = RowBuilder::new(&schema());
    assert_eq!(
        rows.push(br#"{"id":1,"name":"a","ts":"2026-11-26T10:00:00.5Z"}"#),
        Ok(())
    );
    assert_eq!(
        rows.push(br#"{"id":2,"name":"b","ts":"yesterday"}"#),
        Err(Miss)
    );
    assert_eq!(rows.push(br#"{"name":"c\n","id":3,"ts":1}"#), Ok(()));
    let batch = rows.finish().expect("batch");
    assert_eq!(batch.num_rows(), 2);
    assert!(rows.is_empty());
}

#[test]
fn forms_the_oracle_reads_leniently_are_misses() {
    let mut rows = RowBuilder::new(&schema());
    for record in [
        &br#"{"id":1.0,"ts":1}"#[..],
        br#"{"id":01,"ts":1}"#,
        br#"{"id":1,"id":2,"ts":1}"#,
        br#"{"id":1,"ts":"2026-11-26T10:00:00+02:00"}"#,
        br#"{"id":1,,"ts":1}"#,
        br#"{"id":1}"#,
        br#"{"id":1,"ts":1} x"#,
    ] {
        assert_eq!(
            rows.push(record),
            Err(Miss),
            "{}",
            String::from_utf8_lossy(record)
        );
    }
    assert!(rows.is_empty());
}

#[test]
fn finds_the_first_quote_or_backslash_at_any_position() {
    for len in 0..100 {
        for at in 0..len {
            for special in [b'"', b'\\'] {
                let mut s = vec![b'a'; len];
                s[at] = special;
                if at + 1 < len {
                    s[len - 1] = b'"';
                }
                assert_eq!(quote_or_backslash(&s), Some(at), "len {len}, at {at}");
            }
        }
        assert_eq!(quote_or_backslash(&vec![0xC3; len]), None);
    }
}

#[test]
fn decimals_follow_parse_decimal() {
    assert_eq!(decimal(b"12.5", 12, 2), Ok(1250));
    assert_eq!(decimal(b"-0.05", 12, 2), Ok(-5));
    assert_eq!(decimal(b"007", 3, 2), Ok(700));
    assert_eq!(decimal(b"1.234", 12, 2), Err(Miss));
    assert_eq!(decimal(b"1234", 5, 2), Err(Miss));
}

#[test]
fn buffers_are_sized_for_the_batch_by_its_first_rows() {
    let item = Arc::new(Field::new("item", DataType::Utf8, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("tags", DataType::List(item), true),
    ]));
    let records: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"name":"user-{i:06}-of-the-batch","tags":["a{i:04}","b{i:04}","c{i:04}"]}}"#
            )
            .into_bytes()
        })
        .collect();
    let bytes = records.iter().map(Vec::len).sum();
    let mut rows = RowBuilder::expecting(&schema, records.len(), bytes);
    let capacities =
        |rows: &RowBuilder| match (&rows.root.children[0].values, &rows.root.children[1].values) {
            (Values::Utf8(name), Values::List { offsets, item }) => match &item.values {
                Values::Utf8(tags) => [
                    name.data.capacity(),
                    offsets.capacity(),
                    tags.offsets.capacity(),
                    tags.data.capacity(),
                ],
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
    for record in &records[..SAMPLE_ROWS] {
        assert_eq!(rows.push(record), Ok(()));
    }
    let sized = capacities(&rows);
    for record in &records[SAMPLE_ROWS..] {
        assert_eq!(rows.push(record), Ok(()));
    }
    assert_eq!(
        capacities(&rows),
        sized,
        "no buffer grew after the first {SAMPLE_ROWS} rows"
    );
    let batch = rows.finish().expect("batch");
    assert_eq!(batch.num_rows(), 1000);
    assert!(rows.is_empty());

    // A miss ends the rows before it; those after it are sized again by their own first rows.
    let mut rows = RowBuilder::expecting(&schema, records.len(), bytes);
    for record in &records[..100] {
        assert_eq!(rows.push(record), Ok(()));
    }
    assert_eq!(rows.push(br#"{"name":"cut sho"#), Err(Miss));
    assert_eq!(rows.finish().expect("batch").num_rows(), 100);
    for record in &records[100..100 + SAMPLE_ROWS] {
        assert_eq!(rows.push(record), Ok(()));
    }
    let sized = capacities(&rows);
    for record in &records[100 + SAMPLE_ROWS..] {
        assert_eq!(rows.push(record), Ok(()));
    }
    assert_eq!(
        capacities(&rows),
        sized,
        "no buffer grew after the first {SAMPLE_ROWS} rows past the miss"
    );
}
