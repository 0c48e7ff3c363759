//! `sitediff rescore CRAWL`: compare a kept crawl's pages again from their stored images (no
//! recapture), under the site's current ignore areas, masks and thresholds. Exit 0 when the crawl
//! afterwards has no changed page, 1 when it has, 2 on error.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{find_site, load_plugins, open_store, ConfigArg, EXIT_CHANGES, EXIT_OK};
use sitediff::compare::Comparer;
use sitediff::rescore;

#[derive(Debug, clap::Args)]
pub struct RescoreArgs {
    /// The crawl id.
    pub crawl: u64,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}

pub fn run(args: &RescoreArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load()?;
    let store = open_store(&cfg)?;
    let crawl = store.crawl(args.crawl)?.with_context(|| format!("no crawl with id {}", args.crawl))?;
    let site = find_site(&cfg, &crawl.site)?;
    let plugins = load_plugins(&cfg, &site.plugins)?;
    let comparer = Comparer::new(store, plugins, None);
    let done = rescore::rescore(&comparer, site, args.crawl, None, None)?;
    if args.json {
        println!("{}", serde_json::to_string(&done)?);
    } else {
        let c = &done.crawl;
        eprintln!(
            "crawl {} of {}: {} page(s) compared again in {} ms, {} moved; now {}: {} changed, {} unchanged",
            c.id,
            c.site,
            done.pages,
            done.millis,
            done.moved.len(),
            c.status,
            c.counts.changed,
            c.counts.unchanged
        );
        for key in &done.moved {
            eprintln!("  moved: {key}");
        }
    }
    Ok(ExitCode::from(if done.crawl.counts.changed > 0 { EXIT_CHANGES } else { EXIT_OK }))
}
