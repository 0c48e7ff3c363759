//! sitediff command line entry point: parse arguments, set up tracing, run, map the outcome to an exit code.
//!
//! The command line (`cli/`, with clap, indicatif and anyhow) lives in the binary; the library
//! (`sitediff::*`) has no CLI dependencies and returns typed errors.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_tracing(cli.verbose, cli.color, cli.log_format);
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sitediff: error: {}", sitediff::errors::chain(err.as_ref()));
            ExitCode::from(cli::EXIT_ERROR)
        }
    }
}
