//! `schema check`: finds the two schemas to compare — two `.avsc` files, or a table's current
//! version and `--against` / the registry's latest / the config's schema file — and hands them
//! to [`SchemaCheck`], which judges them.
//!
//! Invariant: only reads (files, the table's log, the registry); exit 1 when the required
//! level (or, without one, an in-place evolution) does not hold.

use std::path::Path;

use anyhow::Context;
use kappa_lake::config::SourceConfig;
use kappa_lake::pipeline::TableHandle;
use kappa_lake::registry::SchemaRegistry;
use kappa_lake::schema::EventSchema;
use kappa_lake::table::schema_check::SchemaCheck;

use super::args::SchemaCheckArgs;
use super::load;
use super::render::print_json;

/// A schema to compare, and what to call it in the report.
struct Named {
    schema: EventSchema,
    name: String,
}

/// `schema check`.
pub async fn check(args: SchemaCheckArgs) -> anyhow::Result<()> {
    let SchemaCheckArgs {
        old,
        new,
        config,
        table,
        against,
        level,
        json,
    } = args;
    let (old, new) = match (old, new, table) {
        (Some(old), Some(new), None) => (read(&old)?, read(&new)?),
        (None, None, Some(table)) => table_and_against(&config.config, &table, against).await?,
        _ => anyhow::bail!(
            "give two schemas (`schema check OLD NEW`) or a table (`schema check --config F --table T [--against NEW]`)"
        ),
    };
    let check = SchemaCheck::compare(old.name, &old.schema, new.name, &new.schema);
    if json {
        print_json(&check.to_json())?;
    } else {
        print!("{check}");
    }
    Ok(check.verdict(level)?)
}

/// The `.avsc` file at `path`, named by its path.
fn read(path: &Path) -> anyhow::Result<Named> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let schema = EventSchema::parse(&text)
        .with_context(|| format!("{} is not a valid schema", path.display()))?;
    Ok(Named {
        schema,
        name: path.display().to_string(),
    })
}

/// The current version's schema of `table`, and the schema it would get: `against`, else the
/// latest of the source's registry subject, else the config's schema file.
async fn table_and_against(
    config: &Path,
    table: &str,
    against: Option<std::path::PathBuf>,
) -> anyhow::Result<(Named, Named)> {
    let config = load(config)?;
    let cfg = config.table(table).map_err(kappa_lake::Error::from)?;
    let handle = TableHandle::open(cfg).map_err(kappa_lake::Error::from)?;
    let current = handle
        .current_definition()
        .await?
        .with_context(|| format!("table `{table}` has no version yet: nothing to check against"))?;
    let registry = match &cfg.source {
        SourceConfig::Kafka(k) => k.registry.as_deref(),
        SourceConfig::Files(_) => None,
    };
    let new = match (against, registry) {
        (Some(p), _) => read(&p)?,
        (None, Some(r)) => {
            let latest = SchemaRegistry::new(r)?.latest(&r.subject).await?;
            let schema = EventSchema::parse(&latest.schema)
                .with_context(|| format!("the registry's schema {} is not usable", latest.id))?;
            let name = format!(
                "subject `{}` version {} (schema id {})",
                latest.subject, latest.version, latest.id
            );
            Named { schema, name }
        }
        (None, None) => Named {
            schema: cfg.event_schema().clone(),
            name: cfg.schema_file.clone(),
        },
    };
    let old = Named {
        schema: current.definition.event_schema()?,
        name: format!("v{} of `{table}`", current.version),
    };
    Ok((old, new))
}
