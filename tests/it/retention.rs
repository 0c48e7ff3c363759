//! Storage lifecycle: unchanged re-crawls add no artifacts, old crawls are removed, and the file
//! stops growing. Set SITEDIFF_RETENTION_CRAWLS=50 to measure the 50-crawl figure.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::helpers::{FixtureServer, Response, TempProject};
use sitediff::capture::pool::BrowserPool;
use sitediff::config::Config;
use sitediff::store::{CrawlStatus, Store};
use sitediff::sweep::{NoObserver, Sweeper};

const KEEP: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_recrawls_grow_the_store_by_metadata_only() {
    let crawls: usize =
        std::env::var("SITEDIFF_RETENTION_CRAWLS").ok().and_then(|v| v.parse().ok()).unwrap_or(14);
    let srv = FixtureServer::start().await;
    let links: String = (1..=8).map(|i| format!("<a href='p{i}.html'>{i}</a> ")).collect();
    srv.set("/r/", Response::html(format!("<title>r</title>{links}")));
    for i in 1..=8 {
        let rows: String = (0..40).map(|r| format!("<tr><td>row {r}</td><td>{}</td></tr>", r * i)).collect();
        srv.set(&format!("/r/p{i}.html"), Response::html(format!("<h1>Page {i}</h1><table>{rows}</table>")));
    }
    let project = TempProject::new();
    let cfg_path = project.write_config(&format!(
        "[store]\nkeep_crawls = {KEEP}\n[browser]\nsessions = 2\n[[sites]]\nname = \"r\"\nstart = \"{}\"\nviewport = {{ width = 800, height = 600 }}\n",
        srv.url("/r/")
    ));
    // write_config put its own [store] table first; merge ours into it.
    let text = std::fs::read_to_string(&cfg_path).unwrap().replacen("\n\n[store]\n", "\n", 1);
    let config = Config::parse(&text, std::path::Path::new(&cfg_path)).unwrap();
    let site = config.site("r").unwrap().clone();

    let store = Store::open(&config.store.path).unwrap();
    let cancel = CancellationToken::new();
    let pool = Arc::new(BrowserPool::start(&config.browser, cancel.clone()).await.unwrap());
    let sweeper = Sweeper::new(
        store.clone(),
        pool.clone(),
        None,
        None,
        config.browser.sessions,
        config.store.keep_crawls as usize,
    );

    let size = || std::fs::metadata(&config.store.path).unwrap().len();
    let mut sizes = Vec::new();
    let mut blobs_after_first = 0;
    for n in 1..=crawls {
        let rec = sweeper.run(&site, cancel.clone(), Arc::new(NoObserver)).await.unwrap();
        // The first crawl's pages are new; unchanged re-crawls have nothing to review.
        let settled = if n == 1 { CrawlStatus::Reviewing } else { CrawlStatus::Passed };
        assert_eq!(rec.status, settled, "crawl {n}");
        if n == 1 {
            store.approve_crawl(rec.id).unwrap();
            blobs_after_first = store.blob_count().unwrap();
        } else {
            assert_eq!(rec.counts.changed, 0, "crawl {n} flagged changes");
            assert_eq!(
                store.blob_count().unwrap(),
                blobs_after_first,
                "crawl {n} stored new artifacts for unchanged pages"
            );
        }
        sizes.push(size());
        let ids = store.crawl_ids("r").unwrap();
        assert!(ids.len() <= KEEP as usize + 1, "retention keeps {KEEP} crawls + the baseline: {ids:?}");
    }
    pool.shutdown().await;
    let first = sizes[0];
    let mid = sizes[crawls / 2];
    let last = *sizes.last().unwrap();
    eprintln!(
        "retention: {} artifacts; file after 1 crawl {first} B, after {} crawls {mid} B, after {crawls} crawls {last} B \
         (growth after the first: {:.1}%)",
        blobs_after_first,
        crawls / 2 + 1,
        (last as f64 / first as f64 - 1.0) * 100.0
    );
    // Steady state: once old crawls are being removed, the file stops growing (free pages reused).
    assert!(last <= mid + mid / 4, "file kept growing: {sizes:?}");
}
