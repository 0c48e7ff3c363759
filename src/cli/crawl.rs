//! `sitediff crawl SITE [--json]`: one crawl now, with a progress bar; exit 0 no change, 1 changes or failed pages, 2 error.

use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::outcome::{exit_code, print_report, write_html, write_junit};
use super::{
    find_site, load_plugins, local_ui_base, open_store, remote, runtime, ConfigArg, GateArgs, EXIT_ERROR,
};
use sitediff::capture::pool::BrowserPool;
use sitediff::config::{Config, SiteConfig};
use sitediff::crawl::DiscoveredPage;
use sitediff::report::CrawlReport;
use sitediff::store::{CrawlRecord, PageRecord};
use sitediff::sweep::{SweepObserver, Sweeper};

#[derive(Debug, clap::Args)]
pub struct CrawlArgs {
    /// The site to crawl (its `name` in the config).
    pub site: String,
    /// One JSON object on stdout instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Render every page: no approved capture is reused, whatever the site's `incremental`.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub gate: GateArgs,
    #[command(flatten)]
    pub config: ConfigArg,
}

struct Progress(ProgressBar);

impl SweepObserver for Progress {
    fn started(&self, crawl: &CrawlRecord) {
        self.0.set_message(format!("crawl {} of {}", crawl.id, crawl.site));
    }
    fn discovered(&self, _page: &DiscoveredPage) {
        self.0.inc_length(1);
    }
    fn page_done(&self, page: &PageRecord) {
        self.0.inc(1);
        if page.change == sitediff::store::PageChange::Failed {
            self.0.println(format!(
                "  failed {}: {}",
                page.key,
                page.error.as_deref().unwrap_or("unknown error")
            ));
        }
    }
}

pub fn run(args: &CrawlArgs) -> anyhow::Result<ExitCode> {
    if let Some(client) = args.gate.server.client()? {
        return remote::crawl(&client, &args.site, args.json, &args.gate);
    }
    if args.gate.no_wait {
        anyhow::bail!("--no-wait needs --server (or SITEDIFF_SERVER): a local crawl runs in this process");
    }
    let cfg = args.config.load()?;
    let site = find_site(&cfg, &args.site)?.clone();
    run_site(&cfg, site, args.json, &args.gate, args.full)
}

/// Crawl one site (a configured one, or a pair site built by `sitediff pair`) with a progress bar,
/// print its report, write the report files asked for (`full`: render every page, no approved
/// capture reused), and exit by the shared policy
/// ([`exit_code`]: 0 nothing over threshold, 1 changes/failures, 2 error).
pub fn run_site(
    cfg: &Config,
    site: SiteConfig,
    json: bool,
    gate: &GateArgs,
    full: bool,
) -> anyhow::Result<ExitCode> {
    let plugins = load_plugins(cfg, &site.plugins)?;
    let rt = runtime()?;
    rt.block_on(gate.wait_until_ready())?;
    let store = open_store(cfg)?;
    let (crawl, pages) = rt.block_on(async {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("sitediff: stopping: finishing pages in flight (ctrl-c again to abort)");
                on_signal.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(EXIT_ERROR));
                }
            }
        });
        let pool = Arc::new(BrowserPool::start(&cfg.browser, cancel.child_token()).await?);
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} pages {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let sweeper = Sweeper::new(
            store.clone(),
            pool.clone(),
            plugins,
            None,
            cfg.browser.sessions,
            cfg.store.keep_crawls as usize,
        );
        let result = sweeper.run_full(&site, full, cancel, Arc::new(Progress(bar.clone()))).await;
        bar.finish_and_clear();
        pool.shutdown().await;
        let crawl = result?;
        let pages = store.pages(crawl.id)?;
        anyhow::Ok((crawl, pages))
    })?;
    let report = CrawlReport::new(&crawl, &pages);
    print_report(&report, json)?;
    let ui = local_ui_base(cfg);
    if let Some(path) = &gate.junit {
        write_junit(path, &report, &ui)?;
    }
    if let Some(dir) = &gate.html {
        let mut blobs = std::collections::HashMap::new();
        for h in sitediff::report::html::needed_blobs(&pages) {
            if let Some(b) = store.blob(&h)? {
                blobs.insert(h, b);
            }
        }
        write_html(dir, &report, &pages, &blobs, &ui)?;
    }
    Ok(ExitCode::from(exit_code(crawl.status, &crawl.counts, &gate.fail_on)))
}
