//! Readers follow `current` without kappa-lake code: ready-to-run view definitions over each
//! table's current version, and the `on_promote` hook that can refresh them.

use crate::config::Format;
use crate::error::Result;
use crate::pipeline::handle::TableHandle;
use crate::table::{pointer, version};

/// A SQL engine to write view definitions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// DuckDB (Delta versions through its `delta` extension).
    Duckdb,
    /// Spark SQL (Delta versions need the delta-spark package).
    Spark,
}

fn quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// `CREATE OR REPLACE VIEW <table> AS …` over the table's current version (a comment when it
/// has none yet).
pub async fn view_sql(table: &TableHandle, engine: Engine) -> Result<String> {
    let (lake, layout) = (&table.lake, &table.layout);
    let name = &table.cfg.name;
    let Some(ptr) = pointer::read(lake, layout).await? else {
        return Ok(format!("-- {name}: no current version yet"));
    };
    let format = version::load(lake, layout, ptr.version)
        .await?
        .map_or(table.cfg.format, |d| d.definition.format);
    let loc = table.version_location(ptr.version);
    let v = ptr.version;
    Ok(match (engine, format) {
        (Engine::Duckdb, Format::Delta) => format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT * FROM delta_scan('{}'); -- v{v}",
            quote(&loc)
        ),
        (Engine::Duckdb, Format::Parquet) => format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{}/**/*.parquet', hive_partitioning = true); -- v{v}",
            quote(&loc)
        ),
        (Engine::Spark, Format::Delta) => format!(
            "CREATE OR REPLACE TEMPORARY VIEW {name} AS SELECT * FROM delta.`{}`; -- v{v}",
            loc.replace('`', "``")
        ),
        (Engine::Spark, Format::Parquet) => format!(
            "CREATE OR REPLACE TEMPORARY VIEW {name} USING parquet OPTIONS (path '{}'); -- v{v}",
            quote(&loc)
        ),
    })
}

/// Runs the table's `on_promote` command (if any) after the pointer moved from `from` to `to`.
/// Its failure is reported, never undoes the move.
pub async fn on_promote(table: &TableHandle, from: Option<u32>, to: u32) {
    let Some(cmd) = &table.cfg.versions.on_promote else {
        return;
    };
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("KAPPA_LAKE_TABLE", &table.cfg.name)
        .env(
            "KAPPA_LAKE_FROM_VERSION",
            from.map(|v| v.to_string()).unwrap_or_default(),
        )
        .env("KAPPA_LAKE_TO_VERSION", to.to_string())
        .env("KAPPA_LAKE_VERSION_PATH", table.version_location(to))
        .status()
        .await;
    match status {
        Ok(s) if s.success() => {
            tracing::info!(table = %table.cfg.name, to, "on_promote command done");
        }
        Ok(s) => {
            tracing::warn!(table = %table.cfg.name, to, status = %s, "on_promote command failed; the pointer move stands");
        }
        Err(e) => {
            tracing::warn!(table = %table.cfg.name, to, error = %e, "on_promote command could not start; the pointer move stands");
        }
    }
}
