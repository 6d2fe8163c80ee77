//! JSON records for an Arrow schema, mostly valid and often in the lenient or broken forms a
//! decoder must get exactly right: numbers in every grammar, times in every format arrow reads
//! (and some it does not), escapes and surrogates, missing, repeated, unknown and reordered
//! fields, wrong types, whitespace, and a byte changed now and then.
//!
//! Randomness comes from `pick(n)`, a number below `n`: the `json_differential` fuzz target
//! feeds it from libFuzzer's input, the unit tests (`src/decode/json_differential.rs`, which
//! include this file) from a seeded generator.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// Where the generator gets its choices: a number below `n` (`n` > 0).
pub type Pick<'a> = &'a mut dyn FnMut(u32) -> u32;

/// The choices, and whether this record may be broken or lenient (half the records are not:
/// those exercise the decoder's own path on whole rows).
struct Gen<'a, 'b> {
    pick: &'a mut Pick<'b>,
    noisy: bool,
}

impl Gen<'_, '_> {
    fn pick(&mut self, n: u32) -> u32 {
        (self.pick)(n)
    }

    /// One time in `one_in`, in a noisy record; never in a clean one.
    fn bad(&mut self, one_in: u32) -> bool {
        self.noisy && self.pick(one_in) == 0
    }
}

/// Every type the fast decoder builds, nullable and not, nested.
pub fn every_type() -> SchemaRef {
    let utc = Some("+00:00".into());
    let kv = Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Int64, true),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("b", DataType::Boolean, true),
        Field::new("i32", DataType::Int32, false),
        Field::new("i64", DataType::Int64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("f64", DataType::Float64, false),
        Field::new("s", DataType::Utf8, false),
        Field::new("ts_s", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new(
            "ts_ms",
            DataType::Timestamp(TimeUnit::Millisecond, utc.clone()),
            false,
        ),
        Field::new(
            "ts_us",
            DataType::Timestamp(TimeUnit::Microsecond, utc),
            true,
        ),
        Field::new(
            "ts_ns",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+01:00".into())),
            true,
        ),
        Field::new("d", DataType::Decimal128(12, 2), true),
        Field::new("d0", DataType::Decimal128(5, 0), true),
        Field::new(
            "l",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
            true,
        ),
        Field::new(
            "st",
            DataType::Struct(Fields::from(vec![
                Field::new("a", DataType::Utf8, false),
                Field::new("n", DataType::Int32, true),
                Field::new(
                    "inner",
                    DataType::Struct(Fields::from(vec![Field::new(
                        "z",
                        DataType::Float64,
                        false,
                    )])),
                    false,
                ),
            ])),
            true,
        ),
        Field::new(
            "m",
            DataType::Map(
                Arc::new(Field::new("entries", DataType::Struct(kv), false)),
                false,
            ),
            true,
        ),
    ]))
}

/// One record of `schema`.
pub fn record(schema: &Schema, mut pick: Pick<'_>) -> Vec<u8> {
    let noisy = pick(2) == 0;
    let g = &mut Gen {
        pick: &mut pick,
        noisy,
    };
    let mut out = Vec::new();
    ws(g, &mut out);
    object(schema.fields(), g, &mut out);
    ws(g, &mut out);
    if g.bad(8) {
        mutate(g, &mut out);
    }
    out
}

fn chance(g: &mut Gen<'_, '_>, one_in: u32) -> bool {
    g.pick(one_in) == 0
}

fn ws(g: &mut Gen<'_, '_>, out: &mut Vec<u8>) {
    if chance(g, 6) {
        let spaces: &[&[u8]] = &[b" ", b"\n", b"\t ", b"\r\n  "];
        out.extend_from_slice(spaces[g.pick(spaces.len() as u32) as usize]);
    }
}

fn one<'s>(g: &mut Gen<'_, '_>, choices: &[&'s str]) -> &'s str {
    choices[g.pick(choices.len() as u32) as usize]
}

fn object(fields: &Fields, g: &mut Gen<'_, '_>, out: &mut Vec<u8>) {
    let mut order: Vec<usize> = (0..fields.len()).collect();
    if chance(g, 8) {
        for i in (1..order.len()).rev() {
            order.swap(i, g.pick(i as u32 + 1) as usize);
        }
    }
    out.push(b'{');
    let mut first = true;
    let mut member = |name: &str,
                      g: &mut Gen<'_, '_>,
                      out: &mut Vec<u8>,
                      value: &dyn Fn(&mut Gen<'_, '_>, &mut Vec<u8>)| {
        if !first {
            out.push(b',');
        }
        first = false;
        ws(g, out);
        out.extend_from_slice(format!("{name:?}").as_bytes());
        ws(g, out);
        out.push(b':');
        ws(g, out);
        value(g, out);
        ws(g, out);
    };
    for i in order {
        let f = &fields[i];
        if g.bad(25) {
            continue; // missing
        }
        let repeats = if g.bad(40) { 2 } else { 1 };
        for _ in 0..repeats {
            member(f.name(), g, out, &|g, out| value(f.data_type(), g, out));
        }
        if chance(g, 20) {
            let name = one(g, &["extra", "x", "nested", "Id", ""]);
            member(name, g, out, &|g, out| unknown(g, out, 0));
        }
    }
    out.push(b'}');
}

/// A value for a field the schema does not have.
fn unknown(g: &mut Gen<'_, '_>, out: &mut Vec<u8>, depth: u32) {
    match g.pick(if depth > 3 { 4 } else { 6 }) {
        0 => {
            out.extend_from_slice(one(g, &["null", "true", "false", "-1.5e3", "0", "7"]).as_bytes())
        }
        1 | 2 => string(g, out),
        3 => out.extend_from_slice(b"12345678901234567890123"),
        4 => {
            out.push(b'[');
            for i in 0..g.pick(3) {
                if i > 0 {
                    out.push(b',');
                }
                unknown(g, out, depth + 1);
            }
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            for i in 0..g.pick(3) {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(format!("\"k{i}\":").as_bytes());
                unknown(g, out, depth + 1);
            }
            out.push(b'}');
        }
    }
}

fn value(data_type: &DataType, g: &mut Gen<'_, '_>, out: &mut Vec<u8>) {
    if g.bad(20) {
        out.extend_from_slice(b"null");
        return;
    }
    if g.bad(40) {
        let wrong = one(g, &["\"x\"", "1", "true", "[]", "{}", "1.5", "\"1\"", "-"]);
        out.extend_from_slice(wrong.as_bytes());
        return;
    }
    let text = match data_type {
        DataType::Boolean if g.noisy => one(g, &["true", "false", "\"true\"", "1"]).to_string(),
        DataType::Boolean => one(g, &["true", "false"]).to_string(),
        DataType::Int32 => integer(g, false),
        DataType::Int64 => integer(g, true),
        DataType::Float32 | DataType::Float64 => float(g),
        DataType::Utf8 => return string(g, out),
        DataType::Timestamp(_, _) => timestamp(g),
        DataType::Decimal128(_, scale) => {
            let d = decimal(g, usize::try_from(*scale).unwrap_or(0));
            if chance(g, 3) { d } else { format!("\"{d}\"") }
        }
        DataType::List(item) => {
            out.push(b'[');
            for i in 0..g.pick(5) {
                if i > 0 {
                    out.push(b',');
                }
                ws(g, out);
                value(item.data_type(), g, out);
            }
            out.push(b']');
            return;
        }
        DataType::Struct(fields) => return object(fields, g, out),
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return out.extend_from_slice(b"{}");
            };
            out.push(b'{');
            for i in 0..g.pick(5) {
                if i > 0 {
                    out.push(b',');
                }
                string(g, out);
                out.push(b':');
                value(kv[1].data_type(), g, out);
            }
            out.push(b'}');
            return;
        }
        _ => "null".to_string(),
    };
    out.extend_from_slice(text.as_bytes());
}

fn integer(g: &mut Gen<'_, '_>, wide: bool) -> String {
    let magnitude = match g.pick(if wide || g.noisy { 6 } else { 2 }) {
        0 => i64::from(g.pick(10)),
        1 => i64::from(g.pick(100_000)),
        2 => i64::from(i32::MAX) + i64::from(g.pick(3)) - 1,
        3 => i64::MAX - i64::from(g.pick(3)),
        _ => i64::from(g.pick(u32::MAX)) * i64::from(g.pick(1 << 20)),
    };
    let n = if chance(g, 4) { -magnitude } else { magnitude };
    if !g.noisy {
        return n.to_string();
    }
    match g.pick(20) {
        0 => format!("{n}.0"),
        1 => format!("0{n}"),
        2 => format!("{n}e1"),
        3 => format!("\"{n}\""),
        4 => "-0".to_string(),
        5 => "9223372036854775808".to_string(),
        6 => "-9223372036854775808".to_string(),
        _ => n.to_string(),
    }
}

fn float(g: &mut Gen<'_, '_>) -> String {
    if !g.noisy {
        return match g.pick(3) {
            0 => integer(g, false),
            1 => format!(
                "-{}.{:03}e{}",
                g.pick(10),
                g.pick(1000),
                g.pick(40) as i32 - 20
            ),
            _ => format!("{}.{:02}", g.pick(20_000), g.pick(100)),
        };
    }
    match g.pick(14) {
        0 => integer(g, true),
        1 => format!("{}.{}", g.pick(100_000), g.pick(1000)),
        2 => format!(
            "-{}.{:03}e{}",
            g.pick(10),
            g.pick(1000),
            g.pick(40) as i32 - 20
        ),
        3 => one(
            g,
            &[
                "1E+400",
                "-1e-400",
                "1.7976931348623157e308",
                "5e-324",
                "2.2250738585072011e-308",
            ],
        )
        .to_string(),
        4 => "0.1000000000000000055511151231257827021181583404541015625".to_string(),
        5 => one(g, &["-0.0", "0.0", "1.", ".5", "1e", "+1", "1.5E3"]).to_string(),
        6 => format!("\"{}.5\"", g.pick(100)),
        _ => format!("{}.{:02}", g.pick(20_000), g.pick(100)),
    }
}

fn decimal(g: &mut Gen<'_, '_>, scale: usize) -> String {
    if !g.noisy {
        let int = g.pick(100_000);
        return match (scale, g.pick(2)) {
            (0, _) | (_, 0) => int.to_string(),
            _ => format!("{int}.{:0scale$}", g.pick(10u32.pow(scale.min(9) as u32))),
        };
    }
    match g.pick(12) {
        0 => format!("{}", g.pick(100_000)),
        1 => format!("{}.{}", g.pick(1000), g.pick(10)),
        2 => format!("-{}.{:03}", g.pick(1000), g.pick(1000)),
        3 => format!("00{}.{:02}", g.pick(100), g.pick(100)),
        4 => one(
            g,
            &[
                "1e3",
                "+5",
                ".5",
                "5.",
                "-0",
                "1.2.3",
                "",
                "12345678901234567890",
                "9999999999.99",
            ],
        )
        .to_string(),
        _ => format!("{}.{:02}", g.pick(20_000), g.pick(100)),
    }
}

fn timestamp(g: &mut Gen<'_, '_>) -> String {
    if chance(g, 3) {
        return match g.pick(if g.noisy { 4 } else { 2 }) {
            0 => format!("{}", i64::from(g.pick(u32::MAX)) * 1000),
            1 => format!("{}", 1_795_000_000_000_000i64 + i64::from(g.pick(u32::MAX))),
            2 => format!("{}.5", g.pick(1000)),
            _ => format!("{}", 1_795_000_000_000_000i64 + i64::from(g.pick(u32::MAX))),
        };
    }
    let year = match g.pick(8) {
        0 => g.pick(10_000),
        1 => 1969 + g.pick(2),
        _ => 2020 + g.pick(10),
    };
    let (month, day) = if g.bad(10) {
        (g.pick(14), g.pick(33))
    } else {
        (1 + g.pick(12), 1 + g.pick(28))
    };
    let date = format!("{year:04}-{month:02}-{day:02}");
    if chance(g, 10) {
        return format!("\"{date}\"");
    }
    let sep = if g.noisy {
        one(g, &["T", "t", " ", "_"])
    } else {
        "T"
    };
    let (hour, second) = if g.bad(12) {
        (24, 60)
    } else {
        (g.pick(24), g.pick(60))
    };
    let mut s = format!("{date}{sep}{hour:02}:{:02}:{second:02}", g.pick(60));
    if chance(g, 2) {
        let digits = 1 + g.pick(if g.noisy { 12 } else { 9 }) as usize;
        let fraction: String = (0..digits)
            .map(|_| char::from(b'0' + g.pick(10) as u8))
            .collect();
        s.push('.');
        s.push_str(&fraction);
    }
    if g.noisy {
        s.push_str(one(
            g,
            &["Z", "z", "", "+02:00", "-05:30", "+0000", " UTC", "Zx"],
        ));
    } else {
        s.push('Z');
    }
    format!("\"{s}\"")
}

fn string(g: &mut Gen<'_, '_>, out: &mut Vec<u8>) {
    out.push(b'"');
    for _ in 0..g.pick(6) {
        let piece: &[u8] = match g.pick(24) {
            6..=8 | 11 if !g.noisy => b"ok",
            0 => b"\\n",
            1 => b"\\\"",
            2 => b"\\\\",
            3 => b"\\/",
            4 => b"\\u00e9",
            5 => b"\\ud83d\\ude00",
            6 => b"\\ud800",
            7 => b"\\udc00x",
            8 => b"\\x",
            9 => "é€😀".as_bytes(),
            10 => b"\x01",
            11 => b"\\u12G4",
            _ => one(
                g,
                &[
                    "https://shop.example.com/p/1",
                    "a",
                    "Linux",
                    "desktop",
                    "EUR",
                    " ",
                ],
            )
            .as_bytes(),
        };
        out.extend_from_slice(piece);
    }
    out.push(b'"');
}

/// Changes one byte, drops one, or cuts the record short.
fn mutate(g: &mut Gen<'_, '_>, out: &mut Vec<u8>) {
    if out.is_empty() {
        return;
    }
    let at = g.pick(out.len() as u32) as usize;
    match g.pick(4) {
        0 => out[at] = g.pick(256) as u8,
        1 => {
            out.remove(at);
        }
        2 => out.truncate(at),
        _ => out.insert(
            at,
            *b"{}[],:\"\\0-e".get(g.pick(11) as usize).unwrap_or(&b'x'),
        ),
    }
}
