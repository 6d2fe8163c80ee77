//! The read plan ([`ArchiveReader::steps`]): every file once, in an order every partition
//! agrees with.

use super::*;
use crate::domain::Root;

fn reader(spans: &[(i32, &str, u64, u64)], ends: &[(i32, u64)]) -> ArchiveReader {
    let url = url::Url::parse("memory://archive").expect("a URL");
    let mut by_partition: BTreeMap<i32, Vec<Span>> = BTreeMap::new();
    for &(p, file, first, last) in spans {
        by_partition.entry(p).or_default().push(Span {
            file: file.to_string(),
            first,
            last,
        });
    }
    for s in by_partition.values_mut() {
        s.sort_by_key(|s| (s.first, s.last));
    }
    ArchiveReader {
        files: ArchiveFiles {
            lake: Lake::open(&Root::Url(url), "root").expect("a local lake"),
            layout: TableLayout::new("archive"),
            version: 1,
            topic: "events".into(),
            in_order: Arc::default(),
        },
        name: "archive".into(),
        index: BTreeMap::new(),
        index_changed: false,
        ends: ends.iter().copied().collect(),
        spans: by_partition,
    }
}

fn all(r: &ArchiveReader) -> BTreeMap<i32, (u64, u64)> {
    r.partitions().map(|p| (p, (0, r.end(p)))).collect()
}

#[test]
fn every_file_is_read_once_in_an_order_every_partition_agrees_with() {
    // Three commits (a, b, c), each a file per day; b's two day files overlap in
    // partition 0 (records of one partition spread over two days).
    let r = reader(
        &[
            (0, "d1/a", 0, 9),
            (1, "d1/a", 0, 4),
            (0, "d1/b", 10, 19),
            (0, "d2/b", 12, 25),
            (1, "d2/b", 5, 9),
            (0, "d2/c", 26, 30),
            (1, "d2/c", 10, 12),
        ],
        &[(0, 31), (1, 13)],
    );
    let steps = r.steps(&all(&r));
    assert_eq!(
        steps,
        vec![
            vec!["d1/a".to_string()],
            vec!["d1/b".to_string(), "d2/b".to_string()],
            vec!["d2/c".to_string()],
        ]
    );
    // Only what is left to read: partition 0 from 26 on, partition 1 from 5 on.
    let left = BTreeMap::from([(0, (26, 31)), (1, (5, 13))]);
    assert_eq!(
        r.steps(&left),
        vec![vec!["d2/b".to_string()], vec!["d2/c".to_string()],]
    );
}

#[test]
fn files_in_opposite_orders_in_two_partitions_are_read_together() {
    // x before y in partition 0, y before x in partition 1; z after both everywhere.
    let r = reader(
        &[
            (0, "x", 0, 4),
            (0, "y", 5, 9),
            (1, "y", 0, 4),
            (1, "x", 5, 9),
            (0, "z", 10, 11),
            (1, "z", 10, 11),
        ],
        &[(0, 12), (1, 12)],
    );
    assert_eq!(
        r.steps(&all(&r)),
        vec![
            vec!["x".to_string(), "y".to_string()],
            vec!["z".to_string()]
        ]
    );
}
