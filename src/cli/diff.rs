//! `sitediff diff A.png B.png`: compare two images (owned by the diff engine work, issue 3).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// First (baseline) image.
    pub a: PathBuf,
    /// Second (new) image.
    pub b: PathBuf,
}

pub fn run(_args: &DiffArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sitediff diff` is not built yet (issue 3)")
}
