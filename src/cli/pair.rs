//! `sitediff pair --base PREFIX --head PREFIX [--site NAME] [--json]`: Pair Diff of two live copies
//! of a site (e.g. staging against production), page by page, stored as a reviewable pair crawl.

use std::process::ExitCode;

use url::Url;

use super::crawl::run_site;
use super::{remote, ConfigArg, GateArgs};
use sitediff::config::Config;
use sitediff::pair::pair_site;

#[derive(Debug, clap::Args)]
pub struct PairArgs {
    /// The reference copy (e.g. production): each page's counterpart is captured under this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub base: String,
    /// The copy under test (e.g. staging): crawled from this prefix.
    #[arg(long, value_name = "PREFIX")]
    pub head: String,
    /// Store the crawl under this site name (default: `pair-` + the head's host, port and path). A
    /// configured site of that name lends its settings (viewport, thresholds, selectors, plugins).
    #[arg(long)]
    pub site: Option<String>,
    /// One JSON object on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub gate: GateArgs,
    #[command(flatten)]
    pub config: ConfigArg,
}

fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    let location = Config::locate(arg.config.as_deref());
    if arg.config.is_none() && !location.path.exists() {
        eprintln!("sitediff: no config at {}: using defaults", location.path.display());
        return Ok(Config::parse("", &location.path)?);
    }
    Ok(Config::load_located(&location)?)
}

pub fn run(args: &PairArgs) -> anyhow::Result<ExitCode> {
    if let Some(client) = args.gate.server.client()? {
        return remote::pair(&client, &args.base, &args.head, args.site.as_deref(), args.json, &args.gate);
    }
    if args.gate.no_wait {
        anyhow::bail!(
            "--no-wait needs --server (or SITEDIFF_SERVER): a local pair crawl runs in this process"
        );
    }
    let cfg = load_config(&args.config)?;
    let site = pair_site(&cfg, args.site.as_deref(), &args.head, &args.base)?;
    eprintln!(
        "pair {}: {} (head) against {} (base)",
        site.name,
        site.scope.prefix(),
        site.compare_to.as_ref().map(Url::as_str).unwrap_or("?")
    );
    run_site(&cfg, site, args.json, &args.gate, false)
}
