use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Float64Array, Int64Array, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::*;

fn input() -> (SchemaRef, RecordBatch) {
    let address = Fields::from(vec![Field::new("city", DataType::Utf8, true)]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("customer", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, true),
        Field::new("code", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            false,
        ),
        Field::new("address", DataType::Struct(address.clone()), true),
        Field::new("_kafka_offset", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(StringArray::from(vec!["ann", "bob", "cid", "dee"])),
            Arc::new(Float64Array::from(vec![
                Some(10.0),
                None,
                Some(250.5),
                Some(3.0),
            ])),
            Arc::new(StringArray::from(vec![
                Some("7"),
                Some("x"),
                Some("9"),
                None,
            ])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    1_700_000_000_000_000,
                    1_700_000_060_000_000,
                    1_700_003_600_000_000,
                    1_700_007_200_000_000,
                ])
                .with_timezone("+00:00"),
            ),
            Arc::new(StructArray::new(
                address,
                vec![Arc::new(StringArray::from(vec![
                    Some("Oslo"),
                    None,
                    Some("Lyon"),
                    Some("Rome"),
                ]))],
                None,
            )),
            Arc::new(Int64Array::from(vec![100, 101, 102, 103])),
        ],
    )
    .unwrap();
    (schema, batch)
}

fn compile(sql: &str) -> Result<Transform, TransformError> {
    Transform::compile(sql, input().0)
}

fn error(sql: &str) -> (Option<u64>, Option<u64>, String) {
    match compile(sql) {
        Err(TransformError::Invalid {
            line,
            column,
            reason,
        }) => (line, column, reason),
        Err(e) => panic!("unexpected error {e}"),
        Ok(t) => panic!("`{sql}` compiled to {:?}", t.output_schema()),
    }
}

#[test]
fn projects_renames_casts_computes_and_filters() {
    let (_, batch) = input();
    let t = compile(
        "SELECT id AS order_id,
                upper(customer) AS customer,
                CAST(amount * 2 AS BIGINT) AS doubled,
                CASE WHEN amount > 100 THEN 'big' ELSE 'small' END AS size,
                address['city'] AS city,
                date_trunc('hour', ts) AS hour,
                from_epoch(_kafka_offset, 's') AS seen,
                _kafka_offset
         FROM events
         WHERE amount IS NOT NULL",
    )
    .unwrap();
    let names: Vec<_> = t
        .output_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "order_id",
            "customer",
            "doubled",
            "size",
            "city",
            "hour",
            "seen",
            "_kafka_offset"
        ]
    );
    assert_eq!(t.output_schema().field(1).data_type(), &DataType::Utf8);
    let out = t.apply(&batch);
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.rows, vec![0, 2, 3]);
    assert_eq!(out.batch.schema(), *t.output_schema());
    let col = |name: &str| out.batch.column_by_name(name).unwrap().clone();
    assert_eq!(
        col("order_id")
            .as_primitive::<Int64Type>()
            .values()
            .to_vec(),
        vec![1, 3, 4]
    );
    assert_eq!(col("customer").as_string::<i32>().value(1), "CID");
    assert_eq!(
        col("doubled").as_primitive::<Int64Type>().values().to_vec(),
        vec![20, 501, 6]
    );
    assert_eq!(col("size").as_string::<i32>().value(1), "big");
    assert_eq!(col("city").as_string::<i32>().value(2), "Rome");
    let seen = col("seen");
    assert_eq!(
        seen.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .value(0),
        100_000_000
    );
}

#[test]
fn select_star_is_the_identity_and_costs_a_clone() {
    let (schema, batch) = input();
    let t = compile("SELECT * FROM events").unwrap();
    assert!(t.identity);
    assert_eq!(t.output_schema(), &schema);
    let out = t.apply(&batch);
    assert_eq!(out.batch, batch);
    assert_eq!(out.rows, vec![0, 1, 2, 3]);
}

#[test]
fn a_failing_row_is_isolated_and_the_rest_transformed() {
    let (_, batch) = input();
    let t = compile("SELECT id, CAST(code AS INT) AS code FROM events").unwrap();
    let out = t.apply(&batch);
    assert_eq!(out.failed.len(), 1, "{:?}", out.failed);
    assert_eq!(out.failed[0].0, 1);
    assert!(out.failed[0].1.contains("'x'"), "{}", out.failed[0].1);
    assert_eq!(out.rows, vec![0, 2, 3]);
    assert_eq!(out.batch.num_rows(), 3);
    assert!(out.batch.column(1).is_null(2));
}

#[test]
fn subqueries_in_from_and_ctes_are_per_record_too() {
    let (_, batch) = input();
    let t = compile(
        "WITH big AS (SELECT id, amount FROM events WHERE amount > 5)
         SELECT id, amount + 1 AS amount FROM (SELECT * FROM big) AS b",
    )
    .unwrap();
    let out = t.apply(&batch);
    assert_eq!(out.rows, vec![0, 2]);
}

#[test]
fn invalid_sql_points_at_the_position() {
    let (line, column, reason) = error("SELECT id\nFROM events\nWHERE (id > 1");
    assert_eq!((line, column), (Some(3), Some(14)), "{reason}");
    assert!(reason.starts_with("invalid SQL"), "{reason}");
}

#[test]
fn unknown_columns_are_named_with_their_position() {
    let (line, column, reason) = error("SELECT id,\n       nope FROM events");
    assert!(reason.contains("nope"), "{reason}");
    assert_eq!((line, column), (Some(2), Some(8)), "{reason}");
}

#[test]
fn functions_a_replay_would_not_reproduce_are_refused() {
    for (sql, name, (l, c)) in [
        ("SELECT id, now() AS seen FROM events", "now", (1, 12)),
        (
            "SELECT id FROM events\nWHERE random() < 0.5",
            "random",
            (2, 7),
        ),
        ("SELECT id, uuid() AS u FROM events", "uuid", (1, 12)),
    ] {
        let (line, column, reason) = error(sql);
        assert!(
            reason.contains(&format!("function `{name}`")),
            "`{sql}`: {reason}"
        );
        assert!(reason.contains("replay"), "`{sql}`: {reason}");
        assert_eq!((line, column), (Some(l), Some(c)), "`{sql}`: {reason}");
    }
    // Deterministic functions, including the shipped one, are fine.
    compile("SELECT upper(customer) AS c, from_epoch(_kafka_offset, 's') AS t FROM events")
        .unwrap();
}

#[test]
fn aggregates_joins_and_other_cross_row_operators_are_refused() {
    let cases = [
        (
            "SELECT sum(amount) AS s FROM events",
            "aggregate function `sum`",
            (1, 8),
        ),
        ("SELECT id FROM events GROUP BY id", "GROUP BY", (1, 32)),
        (
            "SELECT a.id FROM events a\nJOIN events b ON a.id = b.id",
            "joins are not allowed",
            (2, 6),
        ),
        (
            "SELECT a.id FROM events a, events b",
            "joins are not allowed",
            (1, 28),
        ),
        (
            "SELECT id, row_number() OVER () AS n FROM events",
            "window function",
            (1, 12),
        ),
        ("SELECT id FROM events ORDER BY id", "ORDER BY", (1, 32)),
        ("SELECT id FROM events LIMIT 3", "LIMIT", (1, 29)),
        ("SELECT DISTINCT id FROM events", "DISTINCT", (1, 1)),
        (
            "SELECT id FROM events UNION ALL SELECT id FROM events",
            "only a single SELECT",
            (1, 1),
        ),
        (
            "SELECT id FROM events WHERE id IN (SELECT id FROM events)",
            "subqueries",
            (1, 29),
        ),
    ];
    for (sql, expected, (l, c)) in cases {
        let (line, column, reason) = error(sql);
        assert!(reason.contains(expected), "`{sql}`: {reason}");
        assert!(reason.contains("stateless") || expected == "only a single SELECT");
        assert_eq!((line, column), (Some(l), Some(c)), "`{sql}`: {reason}");
    }
}

#[test]
fn other_tables_unnamed_columns_and_unstorable_types_are_refused() {
    let (_, _, reason) = error("SELECT id FROM orders");
    assert!(reason.contains("reads only `events`"), "{reason}");
    let (line, column, reason) = error("SELECT id, amount * 2 FROM events");
    assert!(reason.contains("AS <name>"), "{reason}");
    assert_eq!((line, column), (Some(1), Some(12)));
    let (_, _, reason) = error("SELECT NULL AS nothing FROM events");
    assert!(reason.contains("CAST(NULL AS"), "{reason}");
    let (_, _, reason) = error("DELETE FROM events");
    assert!(reason.contains("a transform is a query"), "{reason}");
    let (_, _, reason) = error("SELECT 1 AS a FROM events; SELECT 2 AS b FROM events");
    assert!(reason.contains("single SELECT"), "{reason}");
}
