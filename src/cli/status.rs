//! `sitediff status [SITE] [--json]`: sites, their crawls and changed pages, on stdout. It reads
//! the store beside a running daemon (a read-only handle) rather than being refused.

use std::process::ExitCode;

use serde::Serialize;

use super::{find_site, open_store_for_reading, ConfigArg, EXIT_OK};
use sitediff::report::CrawlReport;
use sitediff::store::CrawlRecord;

/// Crawls listed per site in `status SITE`.
const CRAWLS_SHOWN: usize = 20;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this site, with its recent crawls and the latest crawl's pages.
    pub site: Option<String>,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Serialize)]
struct SiteStatus {
    site: String,
    start: String,
    schedule: Option<String>,
    baselines: usize,
    latest: Option<CrawlSummary>,
    crawls: Vec<CrawlSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_pages: Option<CrawlReport>,
}

#[derive(Serialize)]
struct CrawlSummary {
    id: u64,
    status: &'static str,
    started_at: i64,
    finished_at: Option<i64>,
    pages: u32,
    changed: u32,
    new: u32,
    failed: u32,
    max_distortion: f64,
    /// Why it failed or was interrupted.
    error: Option<String>,
    /// What it noticed about the site's setup.
    warnings: Vec<String>,
}

impl From<&CrawlRecord> for CrawlSummary {
    fn from(c: &CrawlRecord) -> Self {
        CrawlSummary {
            id: c.id,
            status: c.status.as_str(),
            started_at: c.started_at,
            finished_at: c.finished_at,
            pages: c.counts.pages,
            changed: c.counts.changed,
            new: c.counts.new,
            failed: c.counts.failed,
            max_distortion: c.max_distortion,
            error: c.error.clone(),
            warnings: c.warnings.clone(),
        }
    }
}

pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load()?;
    let sites: Vec<_> = match &args.site {
        Some(name) => vec![find_site(&cfg, name)?],
        None => cfg.sites.iter().collect(),
    };
    let store = open_store_for_reading(&cfg)?;
    let mut out = Vec::new();
    for site in sites {
        let crawls = store.crawls(&site.name)?;
        let latest_pages = match (&args.site, crawls.first()) {
            (Some(_), Some(c)) => Some(CrawlReport::new(c, &store.pages(c.id)?)),
            _ => None,
        };
        let shown = if args.site.is_some() { CRAWLS_SHOWN } else { 0 };
        out.push(SiteStatus {
            site: site.name.clone(),
            start: site.start.to_string(),
            schedule: site.schedule.as_ref().map(|s| s.expr.clone()),
            baselines: store.baselines(&site.name)?.len(),
            latest: crawls.first().map(CrawlSummary::from),
            crawls: crawls.iter().take(shown).map(CrawlSummary::from).collect(),
            latest_pages,
        });
    }
    if args.json {
        println!("{}", serde_json::json!({ "sites": out }));
        return Ok(ExitCode::from(EXIT_OK));
    }
    for s in &out {
        match &s.latest {
            None => println!("{}: no crawls yet ({} baselines) start {}", s.site, s.baselines, s.start),
            Some(c) => println!(
                "{}: crawl {} {} — {} pages, {} changed, {} new, {} failed, max distortion {:.6} ({} baselines)",
                s.site, c.id, c.status, c.pages, c.changed, c.new, c.failed, c.max_distortion, s.baselines
            ),
        }
        if let Some(c) = &s.latest {
            if let Some(e) = &c.error {
                println!("  error: {e}");
            }
            // `status SITE` prints them with the latest crawl's report below.
            if s.latest_pages.is_none() {
                for w in &c.warnings {
                    println!("  warning: {w}");
                }
            }
        }
        for c in s.crawls.iter().skip(1) {
            println!("  crawl {} {} — {} pages, {} changed", c.id, c.status, c.pages, c.changed);
        }
        if let Some(r) = &s.latest_pages {
            print!("{}", r.human());
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}
