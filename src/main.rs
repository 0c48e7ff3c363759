//! sitediff command line entry point: parse arguments, set up tracing, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sitediff::cli::Cli::parse();
    sitediff::cli::init_tracing(cli.verbose);
    match sitediff::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sitediff: error: {err:#}");
            ExitCode::from(sitediff::cli::EXIT_ERROR)
        }
    }
}
