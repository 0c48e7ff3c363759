//! Unit tests of the sweep's pure parts (page jobs, page and crawl records) and of the crawl
//! records it writes, on a real store, with a site whose server does not answer (no browser).

use std::path::Path;

use url::Url;

use super::*;
use crate::capture::{Capture, CaptureError};
use crate::config::{Config, Viewport};
use crate::crawl::DiscoveryStats;
use crate::store::{CrawlCounts, PageChange};

/// A capturer for sites whose pages never reach the browser (their server does not answer).
pub(crate) struct NoBrowser;

impl Capturer for NoBrowser {
    async fn capture(&self, _req: CaptureRequest) -> Result<Capture, CaptureError> {
        Err(CaptureError::Closed)
    }
}

/// The `[[sites]]` table of a site named `name` whose start URL refuses connections (a loopback
/// port just released), plus `extra` lines.
pub(crate) fn dead_site(name: &str, extra: &str) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("[[sites]]\nname = \"{name}\"\nstart = \"http://127.0.0.1:{port}/\"\n{extra}\n")
}

fn site(extra: &str) -> SiteConfig {
    Config::parse(&dead_site("docs", extra), Path::new("/tmp/x/sitediff.toml")).unwrap().sites.remove(0)
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.redb")).unwrap();
    (dir, store)
}

fn discovered(key: &str, result: FetchResult) -> DiscoveredPage {
    DiscoveredPage {
        key: key.into(),
        url: Url::parse(&format!("http://h{key}")).unwrap(),
        result,
        fetch_ms: 7,
        redirected_from: Some("/old".into()),
        referrer: Some("/links.html".into()),
        document: None,
    }
}

fn html_page(key: &str) -> DiscoveredPage {
    discovered(key, FetchResult::Page { status: 200, title: Some("T".into()) })
}

fn page_with(key: &str, change: PageChange, distortion: Option<f64>) -> PageRecord {
    PageRecord { change, distortion, ..PageRecord::new(key.into(), key.into()) }
}

#[test]
fn every_viewport_but_the_first_gets_a_suffixed_key() {
    let vps = [
        Viewport { width: 1280, height: 800 },
        Viewport { width: 375, height: 667 },
        Viewport { width: 768, height: 1024 },
    ];
    let jobs = viewport_pages(html_page("/a"), &vps);
    let keys: Vec<(&str, u32)> = jobs.iter().map(|(p, v)| (p.key.as_str(), v.width)).collect();
    assert_eq!(keys, [("/a", 1280), ("/a@375", 375), ("/a@768", 768)]);
    assert!(jobs.iter().all(|(p, _)| p.url.as_str() == "http://h/a"), "same URL at every width");

    let failed = discovered("/b", FetchResult::HttpError { status: Some(500), reason: "HTTP 500".into() });
    let jobs = viewport_pages(failed, &vps);
    assert_eq!(jobs.len(), 1, "a page that failed to fetch is recorded once");
    assert_eq!((jobs[0].0.key.as_str(), jobs[0].1.width), ("/b", 1280));
    assert!(viewport_pages(html_page("/c"), &[]).is_empty());
}

#[test]
fn an_http_error_page_is_failed_with_its_status_and_timing() {
    let page = discovered("/x", FetchResult::HttpError { status: Some(404), reason: "HTTP 404".into() });
    let r = http_error_record(&page, Some(404), "HTTP 404".into());
    assert_eq!((r.outcome, r.change), (PageOutcome::HttpError, PageChange::Failed));
    assert_eq!((r.http_status, r.error.as_deref()), (Some(404), Some("HTTP 404")));
    assert_eq!((r.key.as_str(), r.url.as_str()), ("/x", "http://h/x"));
    assert_eq!(r.timing.fetch_ms, 7);
    assert_eq!(r.redirected_from.as_deref(), Some("/old"));
    assert_eq!(r.referrer.as_deref(), Some("/links.html"), "the page that links to it");
    assert_eq!((r.png, r.distortion), (None, None));
}

#[test]
fn a_capture_error_page_keeps_the_fetch_facts_and_the_error_text() {
    let page = html_page("/y");
    let e = CaptureError::Cancelled;
    let r = capture_error_record("docs", &page, 200, Some("Title".into()), &e);
    assert_eq!((r.outcome, r.change), (PageOutcome::CaptureError, PageChange::Failed));
    assert_eq!((r.http_status, r.title.as_deref()), (Some(200), Some("Title")));
    assert_eq!(r.error, Some(e.to_string()));
    assert_eq!(r.timing.fetch_ms, 7);
}

#[test]
fn a_finished_crawl_counts_its_pages_and_goes_to_review_or_is_interrupted() {
    let (_d, store) = temp_store();
    let crawl = store.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    let stats = DiscoveryStats {
        pages: 4,
        skipped_non_html: 1,
        skipped_off_prefix_redirect: 2,
        skipped_max_pages: 3,
        skipped_query_variants: 4,
        ignored_links: 9,
        start: None,
    };
    let pages = [
        page_with("/a", PageChange::Changed, Some(0.25)),
        page_with("/b", PageChange::Unchanged, Some(0.0)),
        page_with("/c", PageChange::New, None),
        page_with("/d", PageChange::Failed, None),
    ];
    let rec = finished_record(crawl.clone(), &stats, &pages, false);
    assert_eq!(rec.status, CrawlStatus::Reviewing);
    assert!(rec.finished_at.is_some() && rec.error.is_none());
    assert_eq!(
        rec.counts,
        CrawlCounts {
            pages: 4,
            changed: 1,
            unchanged: 1,
            new: 1,
            failed: 1,
            skipped_non_html: 1,
            skipped_max_pages: 3,
            skipped_query_variants: 4,
            skipped_off_prefix_redirect: 2,
            ..CrawlCounts::default()
        }
    );
    assert_eq!(rec.max_distortion, 0.25);

    let rec = finished_record(crawl, &stats, &pages[..1], true);
    assert_eq!(rec.status, CrawlStatus::Interrupted);
    assert_eq!(rec.error.as_deref(), Some(INTERRUPTED_REASON));
    assert_eq!(rec.counts.pages, 1);
}

#[tokio::test]
async fn a_failed_crawl_is_written_as_failed_with_its_error() {
    let (_d, store) = temp_store();
    let crawl = store.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    let error = SweepError::Store { site: "docs".into(), source: StoreError::NoSuchCrawl { id: 99 } };
    let rec = failed_record(&crawl, &error);
    assert_eq!(rec.status, CrawlStatus::Failed);
    assert_eq!(rec.error.as_deref(), Some("site docs: no crawl with id 99"));
    record_failure(&store, rec).await;
    let stored = store.crawl(crawl.id).unwrap().unwrap();
    assert_eq!(stored.status, CrawlStatus::Failed);
    assert!(stored.finished_at.is_some());
    assert_eq!(stored.error.as_deref(), Some("site docs: no crawl with id 99"));

    // Writing the record of a crawl the store does not know fails quietly (logged): the crawl's
    // own error is what the caller reports.
    let ghost = CrawlRecord { id: crawl.id + 1, ..crawl };
    record_failure(&store, failed_record(&ghost, &error)).await;
    assert!(store.crawl(ghost.id).unwrap().is_none());
}

#[test]
fn storing_a_finished_crawl_adds_its_structure_and_applies_retention() {
    let (_d, store) = temp_store();
    let old = store.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    let mut old_rec = finished_record(old, &DiscoveryStats::default(), &[], false);
    store_finished_crawl(&store, &mut old_rec, None, &mut [], "docs", 1).unwrap();

    let crawl = store.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    let mut pages = [page_with("/a", PageChange::New, None)];
    for p in &pages {
        store.put_page(crawl.id, p, &[]).unwrap();
    }
    let mut rec = finished_record(crawl, &DiscoveryStats::default(), &pages, false);
    let report = store_finished_crawl(&store, &mut rec, None, &mut pages, "docs", 1).unwrap();
    let structure = rec.structure.clone().expect("the structural diff is set");
    assert_eq!((structure.against, structure.added_keys.as_slice()), (None, ["/a".to_string()].as_slice()));
    assert_eq!(store.crawl(rec.id).unwrap().unwrap(), rec, "the record is stored as returned");
    assert_eq!(report.crawls_removed, 1, "keep 1: the older crawl goes");
    assert_eq!(store.crawl_ids("docs").unwrap(), vec![rec.id]);
}

#[tokio::test]
async fn a_crawl_whose_start_page_does_not_answer_fails_naming_it() {
    let (_d, store) = temp_store();
    let metrics = crate::metrics::Metrics::new().unwrap();
    let sweeper = Sweeper::new(store.clone(), Arc::new(NoBrowser), None, Some(metrics.clone()), 1, 5);
    let site = site("");
    let e = sweeper.run(&site, CancellationToken::new(), Arc::new(NoObserver)).await.unwrap_err();
    let want = format!("site docs: the start page {} did not answer (", site.start);
    assert!(matches!(e, SweepError::StartPage { .. }) && e.to_string().starts_with(&want), "{e}");
    assert!(e.to_string().ends_with("): is the site up?"), "{e}");
    // The crawl is recorded failed with that message, its failed page kept.
    let rec = store.latest_crawl("docs").unwrap().unwrap();
    assert_eq!(rec.status, CrawlStatus::Failed);
    assert_eq!(rec.error.as_deref(), Some(e.to_string().as_str()));
    assert!(rec.finished_at.is_some());
    assert_eq!((rec.counts.pages, rec.counts.failed), (1, 1));
    let pages = store.pages(rec.id).unwrap();
    assert_eq!((pages[0].key.as_str(), pages[0].outcome), ("/", PageOutcome::HttpError));
    let text = metrics.render().unwrap();
    assert!(text.contains("sitediff_pages_captured_total{outcome=\"http_error\",site=\"docs\"} 1"), "{text}");
    assert!(!text.contains("status=\"reviewing\"} 1"), "nothing to review: {text}");
}

#[tokio::test]
async fn a_crawl_cancelled_before_it_starts_is_interrupted() {
    let (_d, store) = temp_store();
    let sweeper = Sweeper::new(store.clone(), Arc::new(NoBrowser), None, None, 1, 5);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let rec = sweeper.run(&site(""), cancel, Arc::new(NoObserver)).await.unwrap();
    assert_eq!(rec.status, CrawlStatus::Interrupted);
    assert_eq!(rec.counts.pages, 0);
    assert_eq!(store.crawl(rec.id).unwrap().unwrap().error.as_deref(), Some(INTERRUPTED_REASON));
}

#[test]
fn discovery_sends_the_site_s_headers_cookies_auth_and_user_agent() {
    use crate::config::{BasicAuth, Cookie};
    let mut s = site("");
    s.capture.headers = vec![("X-Env".into(), "staging".into())];
    s.capture.cookies = vec![Cookie { name: "a".into(), value: "1".into() }];
    s.capture.basic_auth = Some(BasicAuth { user: "u".into(), password: "pw".into() });
    s.capture.user_agent = Some("bot/1".into());
    let r = request_options(&s.capture);
    assert_eq!(r.headers, [("X-Env".to_string(), "staging".to_string())]);
    assert_eq!(r.cookies, [("a".to_string(), "1".to_string())]);
    assert_eq!(r.basic_auth, Some(("u".to_string(), "pw".to_string())));
    assert_eq!(r.user_agent.as_deref(), Some("bot/1"));
}

#[test]
fn full_every_n_forces_a_full_sweep_after_n_minus_1_incremental_ones() {
    let (_d, store) = temp_store();
    let begun = store.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    let crawl = |incremental: bool, status: CrawlStatus| CrawlRecord { incremental, status, ..begun.clone() };
    let done = CrawlStatus::Passed;
    assert!(!full_sweep_due(None, &[]), "no full_every: never forced");
    assert!(full_sweep_due(Some(1), &[]), "full_every = 1: every crawl is full");
    assert!(!full_sweep_due(Some(2), &[]), "the first crawl has nothing before it");
    // Newest first.
    assert!(full_sweep_due(Some(2), &[crawl(true, done)]));
    assert!(!full_sweep_due(Some(2), &[crawl(false, done), crawl(true, done)]));
    assert!(!full_sweep_due(Some(3), &[crawl(true, done), crawl(false, done)]));
    assert!(full_sweep_due(
        Some(3),
        &[crawl(true, done), crawl(true, CrawlStatus::Failed), crawl(true, done)]
    ));
}
