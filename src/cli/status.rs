//! `sitediff status [SITE] [--json]`: sites, their crawls and changed pages, on stdout. It reads
//! the store beside a running daemon (a read-only handle) rather than being refused.

use std::process::ExitCode;

use serde::Serialize;

use super::client::{DaemonClient, ServerArgs};
use super::remote::{seg, Records};
use super::{find_site, open_store_for_reading, runtime, ConfigArg, EXIT_OK};
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
    pub server: ServerArgs,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Serialize)]
struct SiteStatus {
    site: String,
    start: String,
    schedule: Option<String>,
    /// Unknown (absent) in client mode: the API does not count them.
    #[serde(skip_serializing_if = "Option::is_none")]
    baselines: Option<usize>,
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
    if let Some(client) = args.server.client()? {
        let out = runtime()?.block_on(remote_status(&client, args.site.as_deref()))?;
        return print(&out, args.json);
    }
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
            baselines: Some(store.baselines(&site.name)?.len()),
            latest: crawls.first().map(CrawlSummary::from),
            crawls: crawls.iter().take(shown).map(CrawlSummary::from).collect(),
            latest_pages,
        });
    }
    print(&out, args.json)
}

/// The same status, from the daemon's API (`GET /api/sites`, the site's crawls and the latest
/// crawl's records).
async fn remote_status(client: &DaemonClient, site: Option<&str>) -> anyhow::Result<Vec<SiteStatus>> {
    let sites: serde_json::Value = client.get("/api/sites").await?;
    let mut out = Vec::new();
    for s in sites["sites"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default().to_string();
        if site.is_some_and(|want| want != name) {
            continue;
        }
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let mut status = SiteStatus {
            site: name.clone(),
            start: text(&s["start"]).unwrap_or_default(),
            schedule: text(&s["schedule"]),
            baselines: None,
            latest: None,
            crawls: Vec::new(),
            latest_pages: None,
        };
        if let Some(last) = s.get("last_crawl").filter(|v| !v.is_null()) {
            let rec: CrawlRecord = serde_json::from_value(last.clone())?;
            status.latest = Some(CrawlSummary::from(&rec));
        }
        if site.is_some() {
            let list: serde_json::Value = client.get(&format!("/api/sites/{}/crawls", seg(&name))).await?;
            let crawls: Vec<CrawlRecord> = serde_json::from_value(list["crawls"].clone())?;
            status.latest = crawls.first().map(CrawlSummary::from);
            status.crawls = crawls.iter().take(CRAWLS_SHOWN).map(CrawlSummary::from).collect();
            if let Some(c) = crawls.first() {
                let r: Records = client.get(&format!("/api/crawls/{}/records", c.id)).await?;
                status.latest_pages = Some(CrawlReport::new(&r.crawl, &r.pages));
            }
        }
        out.push(status);
    }
    if let (Some(want), true) = (site, out.is_empty()) {
        anyhow::bail!("the daemon at {} has no site named {want:?}", client.base());
    }
    Ok(out)
}

fn print(out: &[SiteStatus], json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::json!({ "sites": out }));
        return Ok(ExitCode::from(EXIT_OK));
    }
    for s in out {
        let baselines = s.baselines.map(|n| format!(" ({n} baselines)")).unwrap_or_default();
        match &s.latest {
            None => println!("{}: no crawls yet{baselines} start {}", s.site, s.start),
            Some(c) => println!(
                "{}: crawl {} {} — {} pages, {} changed, {} new, {} failed, max distortion {:.6}{baselines}",
                s.site, c.id, c.status, c.pages, c.changed, c.new, c.failed, c.max_distortion
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
