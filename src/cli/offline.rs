//! The commands that work from the config alone, touching no source: `validate`, `transform`
//! (a table's definition over sample events) and `sql` (view definitions for a SQL engine).
//!
//! Invariant: nothing here writes to a lake; `transform` writes only to stdout or `--output`.

use std::io::Write;

use anyhow::Context;
use arrow::record_batch::RecordBatch;
use kappa_lake::pipeline::{TableHandle, views};

use super::args::{ConfigArg, SampleFormat, SqlArgs, SqlEngine, TransformArgs};
use super::load;

/// `validate`: loads the config (schemas and transforms included) and says what it found.
pub fn validate(arg: ConfigArg) -> anyhow::Result<()> {
    let config = load(&arg.config)?;
    for t in &config.tables {
        println!(
            "table {}: root {}, format {:?}, schema {} ({} fields), source {}",
            t.name,
            t.root,
            t.format,
            t.schema_file,
            t.event_schema().arrow.fields().len(),
            t.source.identity()
        );
        if t.transform.is_some() {
            let from = t.transform_file.as_deref().unwrap_or("inline SQL");
            println!("  transform ({from}): compiles");
        }
    }
    println!("{}: OK", arg.config.display());
    Ok(())
}

/// `transform`: the rows a table would get from sample events; rejected lines on stderr.
pub fn transform(args: TransformArgs) -> anyhow::Result<()> {
    let TransformArgs {
        table,
        input,
        format,
        output,
    } = args;
    let config = load(&table.config.config)?;
    let cfg = config
        .table(&table.table)
        .map_err(kappa_lake::Error::from)?;
    let sample = kappa_lake::pipeline::sample::run(cfg, &input)?;
    let mut out: Box<dyn Write + Send> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    write_rows(&sample.rows, format, &mut out)?;
    out.flush()?;
    for r in &sample.rejected {
        eprintln!(
            "{}:{}: {} error: {}",
            input.display(),
            r.line,
            r.stage.as_str(),
            r.reason
        );
    }
    eprintln!(
        "{} rows; {} dead letters; {} filtered out by the transform",
        sample.rows.num_rows(),
        sample.rejected.len(),
        sample.filtered
    );
    Ok(())
}

/// `rows` in `format` to `out`.
fn write_rows(
    rows: &RecordBatch,
    format: SampleFormat,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match format {
        SampleFormat::Table => {
            writeln!(
                out,
                "{}",
                arrow::util::pretty::pretty_format_batches(std::slice::from_ref(rows))?
            )?;
        }
        SampleFormat::Ndjson => {
            let mut writer = arrow::json::LineDelimitedWriter::new(out);
            writer.write(rows)?;
            writer.finish()?;
        }
        SampleFormat::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut writer = parquet::arrow::ArrowWriter::try_new(out, rows.schema(), Some(props))?;
            writer.write(rows)?;
            writer.close()?;
        }
    }
    Ok(())
}

/// `sql`: one view definition per table, over its current version.
pub async fn sql(args: SqlArgs) -> anyhow::Result<()> {
    let config = load(&args.config.config)?;
    let engine = match args.engine {
        SqlEngine::Duckdb => views::Engine::Duckdb,
        SqlEngine::Spark => views::Engine::Spark,
    };
    for t in &config.tables {
        let handle = TableHandle::open(t).map_err(kappa_lake::Error::from)?;
        println!("{}", views::view_sql(&handle, engine).await?);
    }
    Ok(())
}
