//! Command line: argument definitions and dispatch to one module per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod diff;
pub mod plugin;

/// Exit code: success, nothing over threshold.
pub const EXIT_OK: u8 = 0;
/// Exit code: the run worked and found changes.
pub const EXIT_CHANGES: u8 = 1;
/// Exit code: an error stopped the run.
pub const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "sitediff",
    version,
    about = "Whole-site visual regression: crawl, capture, diff, review, alert"
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare two PNG images.
    Diff(diff::DiffArgs),
    /// Validate or try a WebAssembly plugin.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Options shared by the commands that read the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Config file (default: $SITEDIFF_CONFIG, then config/sitediff.toml).
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// Install the tracing subscriber (stderr).
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,sitediff=info",
        _ => "debug,sitediff=debug,hyper=info,h2=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Run one command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Diff(args) => diff::run(&args),
        Command::Plugin(cmd) => plugin::run(&cmd),
    }
}
