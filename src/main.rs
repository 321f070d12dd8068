//! The `envctl` binary: glue between the command line and the `ops` layer.

mod boxes;
mod cli;
mod commands;
mod inventory;
mod keys;
mod manifest;
mod ops;
mod output;
mod providers;
mod ssh;
mod state;

use std::process::ExitCode;

use clap::Parser;

use crate::manifest::ManifestError;

/// Bad input (a Machinefile with problems, or a bad command line) exits with 2.
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
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<ManifestError>() {
            Some(manifest_error) => {
                output::error(&manifest_error.to_string());
                ExitCode::from(EXIT_BAD_INPUT)
            }
            None => {
                output::error(&format!("{err:#}"));
                ExitCode::FAILURE
            }
        },
    }
}
