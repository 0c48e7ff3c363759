//! `sitediff check-config`: validate the config file, its plugins and its write protection without
//! starting anything (for `ExecStartPre` and before a reload). Exit 0 when it would start, 2 with
//! every problem named when not.

use std::process::ExitCode;

use super::{load_plugins, ConfigArg, EXIT_OK};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load()?;
    sitediff::web::WriteAccess::from_config(&cfg.server)?;
    let all: Vec<String> = cfg.plugins.iter().map(|p| p.name.clone()).collect();
    load_plugins(&cfg, &all)?;
    println!(
        "config {} is valid: {} site(s), {} plugin(s), store {}",
        cfg.source.display(),
        cfg.sites.len(),
        cfg.plugins.len(),
        cfg.store.path.display()
    );
    Ok(ExitCode::from(EXIT_OK))
}
