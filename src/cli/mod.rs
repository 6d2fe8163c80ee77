//! The binary's commands: [`args`] defines the command line, [`dispatch`] sends each
//! subcommand to its one handler, and the handlers (grouped by what they act on) call the
//! library and print through [`render`].
//!
//! Invariant: no domain logic here — a handler opens what it needs, calls one library entry
//! point and renders the result. Errors are `anyhow` (this is the binary's edge); a
//! [`kappa_lake::Error`] anywhere in the chain decides the exit code in `main`.

pub mod args;
mod dead_letters;
mod maintenance;
mod offline;
mod render;
mod run;
mod schema;
mod signals;
mod versions;

use std::path::Path;

use kappa_lake::config::Config;
use kappa_lake::pipeline::TableHandle;

use args::{Command, DeadLettersCommand, SchemaCommand, VersionsCommand};

/// Runs one subcommand to its end.
pub async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(a) => run::run(a).await,
        Command::Rebuild(a) => run::rebuild(a).await,
        Command::Demo(a) => run::demo(a).await,
        Command::Promote(a) => versions::promote(a).await,
        Command::Rollback(a) => versions::rollback(a).await,
        Command::Status(a) => {
            versions::list(&a.base.config.config, None, a.base.json, a.topic).await
        }
        Command::Versions(VersionsCommand::List(a)) => {
            versions::list(&a.config.config, a.table.as_deref(), a.json, false).await
        }
        Command::Plan(a) => versions::plan(a).await,
        Command::Gc(a) => versions::gc(a).await,
        Command::Compact(a) => maintenance::compact(a).await,
        Command::Vacuum(a) => maintenance::vacuum(a).await,
        Command::Diff(a) => versions::diff(a).await,
        Command::Schema(SchemaCommand::Check(a)) => schema::check(a).await,
        Command::DeadLetters(DeadLettersCommand::List(a)) => dead_letters::list(a).await,
        Command::DeadLetters(DeadLettersCommand::Show(a)) => dead_letters::show(a).await,
        Command::DeadLetters(DeadLettersCommand::Replay(a)) => dead_letters::replay(a).await,
        Command::Sql(a) => offline::sql(a).await,
        Command::Validate(a) => offline::validate(a),
        Command::Transform(a) => offline::transform(a),
    }
}

/// The config at `path`; a bad one is a [`kappa_lake::Error::Config`] (exit 2).
fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::Error::new(kappa_lake::Error::Config(e)))
}

/// The table `--table` names in `--config`, opened for reading or for writing.
async fn open_table(arg: &args::TableArg, writing: bool) -> anyhow::Result<TableHandle> {
    let config = load(&arg.config.config)?;
    let cfg = config.table(&arg.table).map_err(kappa_lake::Error::from)?;
    let handle = if writing {
        TableHandle::open_for_writing(cfg).await
    } else {
        TableHandle::open(cfg)
    };
    Ok(handle.map_err(kappa_lake::Error::from)?)
}

/// Table `name` of the config at `config`, opened for reading (e.g. a table's raw archive).
fn open_named_table(config: &std::path::Path, name: &str) -> anyhow::Result<TableHandle> {
    let config = load(config)?;
    let cfg = config.table(name).map_err(kappa_lake::Error::from)?;
    Ok(TableHandle::open(cfg).map_err(kappa_lake::Error::from)?)
}

/// `version` as given (the command reports a missing one itself), or the table's current
/// version.
async fn version_or_current(handle: &TableHandle, version: Option<u32>) -> anyhow::Result<u32> {
    match version {
        Some(v) => Ok(v),
        None => Ok(handle.version_or_current(None).await?.version),
    }
}
