//! Parquet and CSV files of a files source, row by row, as the JSON objects the JSON decoder
//! reads: a historical load goes through the same decoding, dead letters and coordinates as
//! NDJSON.
//!
//! Invariant: every row after the skipped ones is handed on exactly once, in file order; a
//! file that cannot be read (not Parquet, a broken CSV) is an error naming the file, not a
//! dead letter.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{BoxError, Error, Result};

fn source_err(path: &Path, e: impl Into<BoxError>) -> Error {
    Error::Source {
        location: path.display().to_string(),
        source: std::io::Error::other(e.into()),
    }
}

/// The rows of the Parquet file at `path` after the first `skip`, each as a JSON object (what
/// arrow's JSON writer makes of it: nulls left out), handed to `emit` until it returns false.
pub(super) fn parquet_rows(
    path: &Path,
    skip: u64,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<()> {
    let file = File::open(path).map_err(|e| source_err(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| source_err(path, e))?
        .with_offset(usize::try_from(skip).unwrap_or(usize::MAX))
        .build()
        .map_err(|e| source_err(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| source_err(path, e))?;
        let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
        writer
            .write_batches(&[&batch])
            .and_then(|()| writer.finish())
            .map_err(|e| source_err(path, e))?;
        let lines = writer.into_inner();
        for row in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if !emit(row.to_vec()) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The rows of the CSV file at `path` (a header line first; `.gz` decompressed) after the
/// first `skip`, each as a JSON object of its columns typed by `schema`'s fields of the same
/// name, handed to `emit` until it returns false.
pub(super) fn csv_rows(
    path: &Path,
    schema: &SchemaRef,
    skip: u64,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<()> {
    let file = File::open(path).map_err(|e| source_err(path, e))?;
    let input: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(file)
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 20, input));
    let headers = csv.byte_headers().map_err(|e| source_err(path, e))?.clone();
    let types: Vec<Option<DataType>> = headers
        .iter()
        .map(|h| {
            let name = String::from_utf8_lossy(h);
            schema
                .field_with_name(&name)
                .ok()
                .map(|f| f.data_type().clone())
        })
        .collect();
    let mut row = csv::ByteRecord::new();
    let mut index = 0u64;
    while csv
        .read_byte_record(&mut row)
        .map_err(|e| source_err(path, e))?
    {
        index += 1;
        if index <= skip {
            continue;
        }
        if !emit(csv_object(&headers, &types, &row)) {
            return Ok(());
        }
    }
    Ok(())
}

/// One CSV row as a JSON object: a value whose field is a number, a time or a boolean in the
/// schema is written as that literal when it is one (otherwise as a string, which the decoder rejects
/// with its reason), every other value as a string, an empty value as null. Bytes that are not
/// UTF-8 are replaced (the decoder sees U+FFFD).
fn csv_object(
    headers: &csv::ByteRecord,
    types: &[Option<DataType>],
    row: &csv::ByteRecord,
) -> Vec<u8> {
    let mut object = serde_json::Map::with_capacity(row.len());
    for (i, value) in row.iter().enumerate() {
        let name = headers.get(i).map_or_else(
            || format!("column_{}", i + 1),
            |h| String::from_utf8_lossy(h).into_owned(),
        );
        let text = String::from_utf8_lossy(value);
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            match types.get(i).and_then(Option::as_ref) {
                Some(DataType::Boolean) => match text.as_ref() {
                    "true" => serde_json::Value::Bool(true),
                    "false" => serde_json::Value::Bool(false),
                    _ => serde_json::Value::String(text.into_owned()),
                },
                // Numbers, and temporal fields given as epoch numbers (`2026-11-26T…` stays a
                // string, which the decoder parses).
                Some(t) if t.is_numeric() || t.is_temporal() => {
                    match serde_json::from_str::<serde_json::Number>(&text) {
                        Ok(n) => serde_json::Value::Number(n),
                        Err(_) => serde_json::Value::String(text.into_owned()),
                    }
                }
                _ => serde_json::Value::String(text.into_owned()),
            }
        };
        object.insert(name, json);
    }
    serde_json::Value::Object(object).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn csv_values_are_typed_by_the_schema() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ok", DataType::Boolean, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let types: Vec<Option<DataType>> = ["id", "ok", "name", "extra"]
            .iter()
            .map(|n| {
                schema
                    .field_with_name(n)
                    .ok()
                    .map(|f| f.data_type().clone())
            })
            .collect();
        let headers = csv::ByteRecord::from(vec!["id", "ok", "name", "extra"]);
        let row = csv::ByteRecord::from(vec!["42", "true", "007", ""]);
        assert_eq!(
            String::from_utf8(csv_object(&headers, &types, &row)).unwrap(),
            r#"{"extra":null,"id":42,"name":"007","ok":true}"#
        );
        let bad = csv::ByteRecord::from(vec!["forty", "yes", "x", "y"]);
        assert_eq!(
            String::from_utf8(csv_object(&headers, &types, &bad)).unwrap(),
            r#"{"extra":"y","id":"forty","name":"x","ok":"yes"}"#
        );
    }
}
