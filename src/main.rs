//! The `envctl` binary: glue between the command line and the `ops` layer.

mod boxes;
mod cli;
mod commands;
mod interrupt;
mod inventory;
mod keys;
mod liveness;
mod machine_readable;
mod ops;
mod output;
mod providers;
mod registry;
mod ssh;
mod state;

use std::process::ExitCode;

use clap::Parser;
// The Machinefile lives in the library (src/lib.rs) so the fuzz target can reach it;
// this keeps every `crate::manifest::...` path of the binary as it was.
use envctl::manifest;

use crate::manifest::ManifestError;

/// Bad input (a Machinefile with problems or none at all, machine names that select
/// nothing, or a bad command line) exits with 2.
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    output::set_verbosity(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            output::error(&format!("starting the async runtime: {err}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Backend calls still running on the blocking pool are not waited for.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<interrupt::Interrupted>() => {
            output::error(&err.to_string());
            ExitCode::from(interrupt::EXIT_INTERRUPTED)
        }
        Err(err) => match err.downcast_ref::<ManifestError>() {
            Some(manifest_error) => {
                output::error(&manifest_error.to_string());
                ExitCode::from(EXIT_BAD_INPUT)
            }
            None if err.is::<ops::SelectError>() || err.is::<ops::NoMachinefile>() => {
                output::error(&format!("{err:#}"));
                ExitCode::from(EXIT_BAD_INPUT)
            }
            None => {
                output::error(&format!("{err:#}"));
                ExitCode::FAILURE
            }
        },
    }
}
