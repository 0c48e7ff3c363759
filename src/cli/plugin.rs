//! `sitediff plugin check|run`: validate or try a WebAssembly plugin (owned by the plugin work, issue 4).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Load a plugin and verify its exports and ABI version.
    Check { file: PathBuf },
}

pub fn run(_cmd: &PluginCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sitediff plugin` is not built yet (issue 4)")
}
