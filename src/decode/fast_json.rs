//! A JSON → Arrow decoder specialised to one schema: a single pass over each record straight
//! into typed column buffers, with no tape, no value tree and no copy of a string that needs
//! no unescaping.
//!
//! Fields are found by guessing that a record repeats the field order of the last one (events
//! from one producer do), then by a scan of the struct's few names. The record is checked for
//! UTF-8 once, with SIMD, before it is parsed.
//!
//! Invariant: it accepts a record only when arrow-json (the oracle, `json.rs`) decodes the same
//! bytes to the same row. It accepts strict JSON in the forms producers write (numbers in
//! JSON's grammar, RFC 3339 times ending in `Z`, decimals that need no rounding); anything
//! else, valid or not, is a [`Miss`]: the record's partial row is taken back and the caller
//! hands the record to the oracle, which decodes it or rejects it with its reason. So the
//! oracle alone decides every error and every lenient form, and this module only has to be
//! right about what it accepts (the `json_differential` fuzz target checks exactly that).

use arrow::array::{ArrayData, ArrayRef, BooleanBufferBuilder, make_array};
use arrow::buffer::{Buffer, NullBuffer};
use arrow::datatypes::{DataType, Field, Fields, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use cursor::Cursor;
use scalars::{decimal, timestamp};

#[path = "fast_json/cursor.rs"]
mod cursor;
pub use cursor::member_spans;
#[path = "fast_json/scalars.rs"]
mod scalars;

/// The record is not in the subset this decoder accepts: the oracle decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Miss;

type Parsed<T = ()> = Result<T, Miss>;

/// Whether `schema` is one this decoder covers: every type is one it builds, no struct has more
/// than 64 fields (the seen-fields mask), and no field name has a quote or a backslash (names
/// are compared in place, in the record's bytes).
pub fn supports(schema: &SchemaRef) -> bool {
    fields_supported(schema.fields())
}

fn fields_supported(fields: &Fields) -> bool {
    fields.len() <= 64
        && fields
            .iter()
            .all(|f| !f.name().contains(['"', '\\']) && supported(f.data_type()))
}

fn supported(data_type: &DataType) -> bool {
    match data_type {
        DataType::Boolean
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::Timestamp(_, _) => true,
        DataType::Decimal128(_, scale) => *scale >= 0,
        DataType::List(item) => supported(item.data_type()),
        DataType::Struct(fields) => fields_supported(fields),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                kv[0].data_type() == &DataType::Utf8 && supported(kv[1].data_type())
            }
            _ => false,
        },
        _ => false,
    }
}

/// Rows decoded so far for one batch. Built per decode call; [`RowBuilder::finish`] hands the
/// rows over as a batch and leaves the builder empty.
#[derive(Debug)]
pub struct RowBuilder {
    schema: SchemaRef,
    root: Object,
    rows: usize,
    /// Bytes of the records pushed so far, and of all the records expected (0: unknown).
    bytes: usize,
    expected_bytes: usize,
}

/// Rows decoded before the buffers are sized for the rest of the batch by their example.
const SAMPLE_ROWS: usize = 64;

impl RowBuilder {
    /// A builder for `schema`, which must be [`supports`]ed.
    pub fn new(schema: &SchemaRef) -> Self {
        Self::with_capacity(schema, 0)
    }

    /// A builder with room for `rows` rows (growing buffers cost page faults and copies).
    pub fn with_capacity(schema: &SchemaRef, rows: usize) -> Self {
        RowBuilder {
            schema: schema.clone(),
            root: Object::new(schema.fields(), rows),
            rows: 0,
            bytes: 0,
            expected_bytes: 0,
        }
    }

    /// A builder with room for `rows` rows decoded from about `bytes` bytes of records. After
    /// the first few rows, every buffer (strings, list items) is sized for the rest by their
    /// example, scaled by bytes, so a buffer is not copied each time it doubles.
    pub fn expecting(schema: &SchemaRef, rows: usize, bytes: usize) -> Self {
        RowBuilder {
            expected_bytes: bytes,
            ..Self::with_capacity(schema, rows)
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends `record` as a row, or leaves the builder as it was and returns [`Miss`].
    pub fn push(&mut self, record: &[u8]) -> Parsed {
        let parsed = simdutf8::basic::from_utf8(record)
            .map_err(|_| Miss)
            .and_then(|_| {
                let mut p = Cursor { b: record, i: 0 };
                p.ws();
                if p.peek() != Some(b'{') {
                    return Err(Miss);
                }
                self.root.object(&mut p)?;
                p.ws();
                if p.i == record.len() {
                    Ok(())
                } else {
                    Err(Miss)
                }
            });
        match parsed {
            Ok(()) => {
                self.rows += 1;
                self.bytes += record.len();
                if self.rows == SAMPLE_ROWS && self.expected_bytes > 2 * self.bytes {
                    self.root.reserve_like(self.bytes, self.expected_bytes);
                }
            }
            Err(Miss) => self.root.truncate(self.rows),
        }
        parsed
    }

    /// The rows held, as a batch of the schema; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let rows = std::mem::take(&mut self.rows);
        // The rest of the records, if more follow (a miss ended these rows): sized again by
        // the example of their own first rows.
        self.expected_bytes = self.expected_bytes.saturating_sub(self.bytes);
        self.bytes = 0;
        let columns: Vec<ArrayRef> = self
            .root
            .children
            .iter_mut()
            .map(|c| c.finish(rows).map(make_array))
            .collect::<Result<_, _>>()?;
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

/// The fields of a struct (or of the record).
#[derive(Debug)]
struct Object {
    names: Vec<Box<[u8]>>,
    children: Vec<Column>,
    /// The field after the last one found: where the next key is looked for first.
    guess: usize,
}

impl Object {
    fn new(fields: &Fields, rows: usize) -> Self {
        Object {
            names: fields.iter().map(|f| f.name().as_bytes().into()).collect(),
            children: fields.iter().map(|f| Column::new(f, rows)).collect(),
            guess: 0,
        }
    }

    /// The field of the key at `p` (at its opening quote), `None` for a key the schema does
    /// not have; `p` is after the key's closing quote. The guessed field's name is compared in
    /// place, without first searching for the key's end.
    fn key(&self, p: &mut Cursor<'_>) -> Parsed<Option<usize>> {
        if let Some(name) = self.names.get(self.guess) {
            let n = name.len();
            let rest = &p.b[p.i..];
            if rest.len() > n + 1 && rest[n + 1] == b'"' && rest[1..=n] == **name && rest[0] == b'"'
            {
                p.i += n + 2;
                return Ok(Some(self.guess));
            }
        }
        let key = p.plain_string()?;
        Ok(self.names.iter().position(|name| **name == *key))
    }

    /// Parses the object at `p` (at its `{`) into the children.
    fn object(&mut self, p: &mut Cursor<'_>) -> Parsed {
        p.i += 1;
        let mut seen: u64 = 0;
        p.ws();
        if p.peek() == Some(b'}') {
            p.i += 1;
        } else {
            loop {
                let field = self.key(p)?;
                p.ws();
                p.expect(b':')?;
                p.ws();
                match field {
                    Some(f) => {
                        let bit = 1u64 << f;
                        if seen & bit != 0 {
                            return Err(Miss); // a repeated key: the oracle keeps the last
                        }
                        seen |= bit;
                        self.children[f].value(p)?;
                        self.guess = f + 1;
                    }
                    None => p.skip_value(0)?,
                }
                p.ws();
                match p.next() {
                    Some(b',') => p.ws(),
                    Some(b'}') => break,
                    _ => return Err(Miss),
                }
            }
        }
        let all = u64::MAX >> (64 - self.children.len().max(1));
        if seen != all {
            for (f, child) in self.children.iter_mut().enumerate() {
                if seen & (1u64 << f) == 0 {
                    child.null()?;
                }
            }
        }
        Ok(())
    }

    fn truncate(&mut self, rows: usize) {
        for c in &mut self.children {
            c.truncate(rows);
        }
    }

    /// Sizes every buffer for `total` bytes of records, by the example of the `done` bytes
    /// decoded into it so far.
    fn reserve_like(&mut self, done: usize, total: usize) {
        for c in &mut self.children {
            c.reserve_like(done, total);
        }
    }
}

/// Grows `v` to hold what `total` bytes of records would put in it if they are like the `done`
/// bytes that put `v.len()` items there, with an eighth more for the variation.
fn reserve_like<T>(v: &mut Vec<T>, done: usize, total: usize) {
    let want = scaled(v.len(), done, total);
    v.reserve_exact(want.saturating_sub(v.len()));
}

fn scaled(len: usize, done: usize, total: usize) -> usize {
    let want = (len as u128 * total as u128 / done.max(1) as u128) as usize;
    want.saturating_add(want / 8)
}

/// One column's buffers and how its JSON values are read.
#[derive(Debug)]
struct Column {
    data_type: DataType,
    nullable: bool,
    validity: BooleanBufferBuilder,
    nulls: usize,
    values: Values,
}

#[derive(Debug)]
enum Values {
    Bool(BooleanBufferBuilder),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// A timestamp: an integer as is, or an RFC 3339 string; `naive_utc` when a string
    /// without an offset means UTC (the column has no time zone, or UTC).
    Time {
        unit: TimeUnit,
        naive_utc: bool,
        values: Vec<i64>,
    },
    Decimal {
        precision: u8,
        scale: u8,
        values: Vec<i128>,
    },
    Utf8(Strings),
    List {
        offsets: Vec<i32>,
        item: Box<Column>,
    },
    Struct(Box<Object>),
    Map {
        offsets: Vec<i32>,
        keys: Strings,
        values: Box<Column>,
    },
}

#[derive(Debug, Default)]
struct Strings {
    offsets: Vec<i32>,
    data: Vec<u8>,
}

impl Strings {
    fn new(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Strings {
            offsets,
            data: Vec::with_capacity(rows * 16),
        }
    }

    fn push(&mut self, p: &mut Cursor<'_>) -> Parsed {
        p.string_into(&mut self.data)?;
        let end = i32::try_from(self.data.len()).map_err(|_| Miss)?;
        self.offsets.push(end);
        Ok(())
    }

    fn reserve_like(&mut self, done: usize, total: usize) {
        reserve_like(&mut self.offsets, done, total);
        reserve_like(&mut self.data, done, total);
    }

    fn push_empty(&mut self) {
        let end = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(end);
    }

    fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        let end = self.offsets.last().map_or(0, |&o| o as usize);
        self.data.truncate(end);
    }

    fn finish(
        &mut self,
        data_type: DataType,
        len: usize,
        nulls: Option<NullBuffer>,
    ) -> Result<ArrayData, ArrowError> {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let data = std::mem::take(&mut self.data);
        ArrayData::builder(data_type)
            .len(len)
            .add_buffer(Buffer::from_vec(offsets))
            .add_buffer(Buffer::from_vec(data))
            .nulls(nulls)
            .build()
    }
}

impl Column {
    /// A column with room for `rows` values (and as many items for a list or map).
    fn new(field: &Field, rows: usize) -> Self {
        let offsets = || {
            let mut offsets = Vec::with_capacity(rows + 1);
            offsets.push(0);
            offsets
        };
        let values = match field.data_type() {
            DataType::Boolean => Values::Bool(BooleanBufferBuilder::new(rows)),
            DataType::Int32 => Values::I32(Vec::with_capacity(rows)),
            DataType::Int64 => Values::I64(Vec::with_capacity(rows)),
            DataType::Float32 => Values::F32(Vec::with_capacity(rows)),
            DataType::Float64 => Values::F64(Vec::with_capacity(rows)),
            DataType::Timestamp(unit, tz) => Values::Time {
                unit: *unit,
                naive_utc: tz.as_deref().is_none_or(|tz| tz == "+00:00" || tz == "UTC"),
                values: Vec::with_capacity(rows),
            },
            DataType::Decimal128(precision, scale) => Values::Decimal {
                precision: *precision,
                scale: u8::try_from(*scale).unwrap_or(0),
                values: Vec::with_capacity(rows),
            },
            DataType::List(item) => Values::List {
                offsets: offsets(),
                item: Box::new(Column::new(item, rows)),
            },
            DataType::Struct(fields) => Values::Struct(Box::new(Object::new(fields, rows))),
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) => Values::Map {
                    offsets: offsets(),
                    keys: Strings::new(rows),
                    values: Box::new(Column::new(&kv[1], rows)),
                },
                _ => unreachable!("supports() admits maps of key-value structs only"),
            },
            // Utf8, and (never reached: `supports` rules them out) anything else.
            _ => Values::Utf8(Strings::new(rows)),
        };
        Column {
            data_type: field.data_type().clone(),
            nullable: field.is_nullable(),
            validity: BooleanBufferBuilder::new(rows),
            nulls: 0,
            values,
        }
    }

    /// A JSON `null`, or the field missing: a null where the field allows one.
    fn null(&mut self) -> Parsed {
        if !self.nullable {
            return Err(Miss);
        }
        self.push_null();
        Ok(())
    }

    /// A null slot, also in the children of a null struct (arrow-json does the same).
    fn push_null(&mut self) {
        self.validity.append(false);
        self.nulls += 1;
        match &mut self.values {
            Values::Bool(v) => v.append(false),
            Values::I32(v) => v.push(0),
            Values::I64(v) | Values::Time { values: v, .. } => v.push(0),
            Values::F32(v) => v.push(0.0),
            Values::F64(v) => v.push(0.0),
            Values::Decimal { values, .. } => values.push(0),
            Values::Utf8(s) => s.push_empty(),
            Values::List { offsets, .. } | Values::Map { offsets, .. } => {
                let end = *offsets.last().unwrap_or(&0);
                offsets.push(end);
            }
            Values::Struct(object) => {
                for c in &mut object.children {
                    c.push_null();
                }
            }
        }
    }

    fn value(&mut self, p: &mut Cursor<'_>) -> Parsed {
        if p.peek() == Some(b'n') {
            p.literal(b"null")?;
            return self.null();
        }
        match &mut self.values {
            Values::Bool(v) => match p.peek() {
                Some(b't') => {
                    p.literal(b"true")?;
                    v.append(true);
                }
                Some(b'f') => {
                    p.literal(b"false")?;
                    v.append(false);
                }
                _ => return Err(Miss),
            },
            Values::I32(v) => v.push(i32::try_from(p.integer()?).map_err(|_| Miss)?),
            Values::I64(v) => v.push(p.integer()?),
            Values::F32(v) => {
                let x: f32 = p.float_token()?.parse().map_err(|_| Miss)?;
                if !x.is_finite() {
                    return Err(Miss);
                }
                v.push(x);
            }
            Values::F64(v) => {
                let x: f64 = p.float_token()?.parse().map_err(|_| Miss)?;
                if !x.is_finite() {
                    return Err(Miss);
                }
                v.push(x);
            }
            Values::Time {
                unit,
                naive_utc,
                values,
            } => {
                let t = match p.peek() {
                    Some(b'"') => timestamp(p.plain_string()?, *unit, *naive_utc)?,
                    _ => p.integer()?,
                };
                values.push(t);
            }
            Values::Decimal {
                precision,
                scale,
                values,
            } => {
                let text = match p.peek() {
                    Some(b'"') => p.plain_string()?,
                    _ => p.float_token()?.as_bytes(),
                };
                values.push(decimal(text, *precision, *scale)?);
            }
            Values::Utf8(s) => {
                if p.peek() != Some(b'"') {
                    return Err(Miss);
                }
                s.push(p)?;
            }
            Values::List { offsets, item } => {
                p.expect(b'[')?;
                p.ws();
                let mut n = *offsets.last().unwrap_or(&0);
                if p.peek() == Some(b']') {
                    p.i += 1;
                } else {
                    loop {
                        item.value(p)?;
                        n = n.checked_add(1).ok_or(Miss)?;
                        p.ws();
                        match p.next() {
                            Some(b',') => p.ws(),
                            Some(b']') => break,
                            _ => return Err(Miss),
                        }
                    }
                }
                offsets.push(n);
            }
            Values::Struct(object) => {
                if p.peek() != Some(b'{') {
                    return Err(Miss);
                }
                object.object(p)?;
            }
            Values::Map {
                offsets,
                keys,
                values,
            } => {
                p.expect(b'{')?;
                p.ws();
                let mut n = *offsets.last().unwrap_or(&0);
                if p.peek() == Some(b'}') {
                    p.i += 1;
                } else {
                    loop {
                        if p.peek() != Some(b'"') {
                            return Err(Miss);
                        }
                        keys.push(p)?;
                        p.ws();
                        p.expect(b':')?;
                        p.ws();
                        values.value(p)?;
                        n = n.checked_add(1).ok_or(Miss)?;
                        p.ws();
                        match p.next() {
                            Some(b',') => p.ws(),
                            Some(b'}') => break,
                            _ => return Err(Miss),
                        }
                    }
                }
                offsets.push(n);
            }
        }
        self.validity.append(true);
        Ok(())
    }

    /// Sizes the buffers for `total` bytes of records like the `done` bytes decoded so far.
    fn reserve_like(&mut self, done: usize, total: usize) {
        let slots = self.validity.len();
        self.validity
            .reserve(scaled(slots, done, total).saturating_sub(slots));
        match &mut self.values {
            Values::Bool(v) => {
                let len = v.len();
                v.reserve(scaled(len, done, total).saturating_sub(len));
            }
            Values::I32(v) => reserve_like(v, done, total),
            Values::I64(v) | Values::Time { values: v, .. } => reserve_like(v, done, total),
            Values::F32(v) => reserve_like(v, done, total),
            Values::F64(v) => reserve_like(v, done, total),
            Values::Decimal { values, .. } => reserve_like(values, done, total),
            Values::Utf8(s) => s.reserve_like(done, total),
            Values::List { offsets, item } => {
                reserve_like(offsets, done, total);
                item.reserve_like(done, total);
            }
            Values::Struct(object) => object.reserve_like(done, total),
            Values::Map {
                offsets,
                keys,
                values,
            } => {
                reserve_like(offsets, done, total);
                keys.reserve_like(done, total);
                values.reserve_like(done, total);
            }
        }
    }

    /// Takes back everything after the first `len` slots.
    fn truncate(&mut self, len: usize) {
        if self.validity.len() > len {
            let dropped = (len..self.validity.len())
                .filter(|&i| !self.validity.get_bit(i))
                .count();
            self.nulls -= dropped;
            self.validity.truncate(len);
        }
        match &mut self.values {
            Values::Bool(v) => v.truncate(len),
            Values::I32(v) => v.truncate(len),
            Values::I64(v) | Values::Time { values: v, .. } => v.truncate(len),
            Values::F32(v) => v.truncate(len),
            Values::F64(v) => v.truncate(len),
            Values::Decimal { values, .. } => values.truncate(len),
            Values::Utf8(s) => s.truncate(len),
            Values::List { offsets, item } => {
                offsets.truncate(len + 1);
                item.truncate(offsets.last().map_or(0, |&o| o as usize));
            }
            Values::Map {
                offsets,
                keys,
                values,
            } => {
                offsets.truncate(len + 1);
                let entries = offsets.last().map_or(0, |&o| o as usize);
                keys.truncate(entries);
                values.truncate(entries);
            }
            Values::Struct(object) => object.truncate(len),
        }
    }

    /// The `len` slots as Arrow data; the column is empty afterwards.
    fn finish(&mut self, len: usize) -> Result<ArrayData, ArrowError> {
        let mut validity = std::mem::replace(&mut self.validity, BooleanBufferBuilder::new(0));
        let nulls =
            (std::mem::take(&mut self.nulls) > 0).then(|| NullBuffer::new(validity.finish()));
        let data_type = self.data_type.clone();
        let primitive = |buffer: Buffer| {
            ArrayData::builder(data_type.clone())
                .len(len)
                .add_buffer(buffer)
                .nulls(nulls.clone())
                .build()
        };
        match &mut self.values {
            Values::Bool(v) => primitive(v.finish().into_inner()),
            Values::I32(v) => primitive(Buffer::from_vec(std::mem::take(v))),
            Values::I64(v) | Values::Time { values: v, .. } => {
                primitive(Buffer::from_vec(std::mem::take(v)))
            }
            Values::F32(v) => primitive(Buffer::from_vec(std::mem::take(v))),
            Values::F64(v) => primitive(Buffer::from_vec(std::mem::take(v))),
            Values::Decimal { values, .. } => primitive(Buffer::from_vec(std::mem::take(values))),
            Values::Utf8(s) => s.finish(data_type.clone(), len, nulls.clone()),
            Values::List { offsets, item } => {
                let offsets = std::mem::replace(offsets, vec![0]);
                let items = offsets.last().map_or(0, |&o| o as usize);
                let child = item.finish(items)?;
                ArrayData::builder(data_type.clone())
                    .len(len)
                    .add_buffer(Buffer::from_vec(offsets))
                    .add_child_data(child)
                    .nulls(nulls.clone())
                    .build()
            }
            Values::Struct(object) => {
                let children = object
                    .children
                    .iter_mut()
                    .map(|c| c.finish(len))
                    .collect::<Result<Vec<_>, _>>()?;
                ArrayData::builder(data_type.clone())
                    .len(len)
                    .child_data(children)
                    .nulls(nulls.clone())
                    .build()
            }
            Values::Map {
                offsets,
                keys,
                values,
            } => {
                let DataType::Map(entries_field, _) = &data_type else {
                    unreachable!("a map column has a map type");
                };
                let DataType::Struct(kv) = entries_field.data_type() else {
                    unreachable!("supports() admits maps of key-value structs only");
                };
                let offsets = std::mem::replace(offsets, vec![0]);
                let entries = offsets.last().map_or(0, |&o| o as usize);
                let keys = keys.finish(kv[0].data_type().clone(), entries, None)?;
                let values = values.finish(entries)?;
                let entries_data = ArrayData::builder(entries_field.data_type().clone())
                    .len(entries)
                    .child_data(vec![keys, values])
                    .build()?;
                ArrayData::builder(data_type.clone())
                    .len(len)
                    .add_buffer(Buffer::from_vec(offsets))
                    .add_child_data(entries_data)
                    .nulls(nulls.clone())
                    .build()
            }
        }
    }
}

#[cfg(test)]
#[path = "fast_json/tests.rs"]
mod tests;
