//! The `kappa-lake` binary: parse the command line, set up logging, run the subcommand, map
//! errors to exit codes (0 ok, 1 runtime failure, 2 bad usage or config).
//!
//! Invariant: `anyhow` stops here — the library returns typed errors; this edge prints the
//! chain (`{:#}`) and takes the exit code from the first [`kappa_lake::Error`] in it.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, LogFormat};

fn main() -> ExitCode {
    #[cfg(feature = "failpoints")]
    let _crash_points = kappa_lake::failpoints::setup();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", kappa_lake::error::chain_text(e.chain()));
            let code = e
                .chain()
                .find_map(|c| c.downcast_ref::<kappa_lake::Error>())
                .map_or(1, kappa_lake::Error::exit_code);
            ExitCode::from(code)
        }
    }
}

/// Logs to stderr, filtered by `KAPPA_LAKE_LOG` (default `info`), as text or JSON lines.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    // delta-rs and its kernel log every snapshot at INFO; keep them at WARN unless the user
    // names them (e.g. KAPPA_LAKE_LOG=info,buoyant_kernel=debug).
    let mut directives = std::env::var("KAPPA_LAKE_LOG").unwrap_or_else(|_| "info".into());
    for noisy in ["buoyant_kernel", "deltalake_core"] {
        if !directives.contains(noisy) {
            directives.push_str(&format!(",{noisy}=warn"));
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
