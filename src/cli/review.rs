//! `sitediff approve|reject SITE [--crawl ID]`: review verdicts from the command line, through the
//! same review actions as the daemon's UI and API.

use std::process::ExitCode;

use super::{find_site, open_store, ConfigArg, EXIT_OK};
use sitediff::review::Review;
pub use sitediff::review::Verdict;

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// The site whose crawl is reviewed.
    pub site: String,
    /// The crawl id (default: the site's latest crawl).
    #[arg(long)]
    pub crawl: Option<u64>,
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(args: &ReviewArgs, verdict: Verdict) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load()?;
    let store = open_store(&cfg)?;
    // Pair crawls run with `sitediff pair` live under a site name the config need not have.
    if cfg.site(&args.site).is_none() && store.crawl_ids(&args.site)?.is_empty() {
        find_site(&cfg, &args.site)?;
    }
    let crawl = store.resolve_crawl(&args.site, args.crawl)?;
    let rec = Review::new(store.clone()).verdict(crawl.id, verdict)?;
    match verdict {
        Verdict::Approve => {
            let n = store.baselines(&args.site)?.len();
            eprintln!("crawl {} of {} approved: {n} page baselines", rec.id, rec.site);
        }
        Verdict::Reject => eprintln!("crawl {} of {} rejected; baselines unchanged", rec.id, rec.site),
    }
    Ok(ExitCode::from(EXIT_OK))
}
