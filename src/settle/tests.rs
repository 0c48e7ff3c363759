//! Unit tests of settling: still-failing pages, passed crawls, superseded pending crawls, and the
//! gauges exported from the store at start (real redb files, real metrics registry).

use std::path::Path;

use super::*;
use crate::config::Config;
use crate::store::{CrawlCounts, StructuralDiff};

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.redb")).unwrap();
    (dir, store)
}

fn ok(key: &str, change: PageChange) -> PageRecord {
    PageRecord { change, http_status: Some(200), ..PageRecord::new(key.into(), format!("http://h{key}")) }
}

fn failing(key: &str, outcome: PageOutcome, status: Option<u16>) -> PageRecord {
    let mut p = PageRecord::failed(key.into(), format!("http://h{key}"), outcome, "boom".into());
    p.http_status = status;
    p
}

fn crawl(id: u64, kind: CrawlKind, status: CrawlStatus, counts: CrawlCounts) -> CrawlRecord {
    CrawlRecord {
        id,
        site: "docs".into(),
        kind,
        status,
        started_at: 1_000,
        finished_at: Some(2_000),
        reviewed_at: None,
        prefix: "http://h/".into(),
        compare_to: None,
        counts,
        max_distortion: 0.0,
        error: None,
        structure: None,
        warnings: Vec::new(),
        incremental: false,
    }
}

/// Store a finished crawl of `site` with `pages`, tallied and settled as the sweep does, with
/// `status` forced afterwards when given (an approval).
fn stored_crawl(
    store: &Store,
    site: &str,
    kind: CrawlKind,
    pages: &mut [PageRecord],
    status: Option<CrawlStatus>,
) -> CrawlRecord {
    let against = store.comparison_basis(site).unwrap().against;
    let mut rec = store.begin_crawl(site, kind, "http://h/", None).unwrap();
    for p in pages.iter() {
        store.put_page(rec.id, p, &[]).unwrap();
    }
    rec.tally(pages);
    rec.status = CrawlStatus::Reviewing;
    rec.finished_at = Some(crate::store::now_ms());
    rec.structure = Some(crate::structure::of_crawl(store, &rec, against, pages).unwrap());
    let restated = settle_finished(store, &mut rec, pages).unwrap();
    store.finish_crawl(&rec, &restated).unwrap();
    if let Some(s) = status {
        rec.status = s;
        store.update_crawl(&rec).unwrap();
    }
    rec
}

#[test]
fn a_page_still_fails_only_with_the_same_outcome_and_status() {
    let known = KnownFailures::of(&[
        failing("/404", PageOutcome::HttpError, Some(404)),
        failing("/gone", PageOutcome::HttpError, None),
        failing("/slow", PageOutcome::CaptureError, Some(200)),
        ok("/fine", PageChange::Unchanged),
    ]);
    let mut pages = vec![
        failing("/404", PageOutcome::HttpError, Some(404)),
        failing("/gone", PageOutcome::HttpError, None),
        failing("/slow", PageOutcome::CaptureError, Some(200)),
        // Failing differently, or where nothing failed before: newly failing.
        failing("/fine", PageOutcome::HttpError, Some(500)),
        failing("/new", PageOutcome::HttpError, Some(404)),
        ok("/ok", PageChange::Unchanged),
    ];
    let mut other = failing("/404", PageOutcome::HttpError, Some(410));
    assert!(!known.fails_the_same_way(&other), "another status");
    other = failing("/404", PageOutcome::CaptureError, Some(404));
    assert!(!known.fails_the_same_way(&other), "another outcome");

    let restated = known.restate(&mut pages);
    let keys: Vec<&str> = restated.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["/404", "/gone", "/slow"]);
    assert!(restated.iter().all(|p| p.change == PageChange::StillFailing));
    let changes: Vec<PageChange> = pages.iter().map(|p| p.change).collect();
    use PageChange::*;
    assert_eq!(changes, [StillFailing, StillFailing, StillFailing, Failed, Failed, Unchanged]);
    // A page still failing in the reference crawl is a known failure too.
    let again = KnownFailures::of(&pages);
    assert!(again.fails_the_same_way(&failing("/404", PageOutcome::HttpError, Some(404))));
    assert!(!again.fails_the_same_way(&failing("/ok", PageOutcome::HttpError, Some(404))));
}

#[test]
fn nothing_to_review_passes() {
    let counts = |changed, new, failed, still_failing, added, removed| CrawlCounts {
        pages: 10,
        unchanged: 3,
        changed,
        new,
        failed,
        still_failing,
        added,
        removed,
        ..CrawlCounts::default()
    };
    let site = |c: CrawlCounts| crawl(5, CrawlKind::Site, CrawlStatus::Reviewing, c);
    assert_eq!(settled_status(&site(counts(0, 0, 0, 4, 0, 0))), CrawlStatus::Passed);
    for c in [
        counts(1, 0, 0, 0, 0, 0),
        counts(0, 1, 0, 0, 0, 0),
        counts(0, 0, 1, 0, 0, 0),
        counts(0, 0, 0, 0, 1, 0),
        counts(0, 0, 0, 0, 0, 1),
    ] {
        assert_eq!(settled_status(&site(c)), CrawlStatus::Reviewing, "{c:?}");
        assert!(needs_review(&site(c)));
    }
    // Pages added or removed since the approved crawl are review items of a site crawl.
    let mut c = site(counts(0, 0, 0, 0, 0, 0));
    c.structure =
        Some(StructuralDiff { removed: 1, error: 2, unchanged: 3, redirected: 1, ..Default::default() });
    assert_eq!(review_items(&c), 1);
    c.structure = Some(StructuralDiff { added: 2, ..Default::default() });
    assert_eq!(settled_status(&c), CrawlStatus::Reviewing);
    c.structure = Some(StructuralDiff { redirected: 1, error: 1, ..Default::default() });
    assert_eq!(settled_status(&c), CrawlStatus::Passed, "redirects and known errors are not review items");
    // A crawl not under review needs no verdict, whatever it holds.
    for status in
        [CrawlStatus::Approved, CrawlStatus::Passed, CrawlStatus::Rejected, CrawlStatus::Interrupted]
    {
        let c = crawl(5, CrawlKind::Site, status, counts(3, 1, 1, 0, 0, 0));
        assert!(!needs_review(&c), "{status}");
    }
}

#[test]
fn only_the_newest_finished_crawl_of_each_kind_can_be_pending() {
    let changed = CrawlCounts { changed: 1, ..CrawlCounts::default() };
    let quiet = CrawlCounts { unchanged: 1, ..CrawlCounts::default() };
    let c = |id, kind, status, counts| crawl(id, kind, status, counts);
    let ids = |crawls: &[CrawlRecord]| pending(crawls).iter().map(|c| c.id).collect::<Vec<_>>();
    use CrawlKind::*;
    use CrawlStatus::*;

    assert_eq!(ids(&[c(4, Site, Reviewing, changed), c(3, Site, Reviewing, changed)]), [4], "3 superseded");
    assert_eq!(ids(&[c(4, Site, Passed, quiet), c(3, Site, Reviewing, changed)]), Vec::<u64>::new());
    assert_eq!(ids(&[c(4, Site, Approved, changed), c(3, Site, Reviewing, changed)]), Vec::<u64>::new());
    assert_eq!(ids(&[c(4, Site, Rejected, changed), c(3, Site, Reviewing, changed)]), Vec::<u64>::new());
    // Crawls that did not finish comparing supersede nothing.
    for unfinished in [Running, Interrupted, Failed] {
        assert_eq!(
            ids(&[c(4, Site, unfinished, quiet), c(3, Site, Reviewing, changed)]),
            [3],
            "{unfinished}"
        );
    }
    // Kinds are separate: an upload of a few screenshots does not settle the site's crawl.
    let mixed = [c(5, Upload, Passed, quiet), c(4, Pair, Reviewing, changed), c(3, Site, Reviewing, changed)];
    assert_eq!(ids(&mixed), [3, 4]);
    assert_eq!(ids(&[c(3, Site, Reviewing, quiet)]), Vec::<u64>::new(), "nothing to review");
    assert!(pending(&[]).is_empty());
}

#[test]
fn a_permanent_404_of_the_approved_crawl_does_not_keep_later_crawls_pending() {
    let (_d, store) = temp_store();
    let broken = || failing("/broken", PageOutcome::HttpError, Some(404));
    // First crawl: every page new, the 404 newly failing: for review.
    let mut first = vec![ok("/", PageChange::New), broken()];
    let c1 = stored_crawl(&store, "docs", CrawlKind::Site, &mut first, None);
    assert_eq!((c1.status, c1.counts.failed, c1.counts.still_failing), (CrawlStatus::Reviewing, 1, 0));
    store.approve_crawl(c1.id).unwrap();

    // Same 404 again, nothing else: passed, the page still failing (stored so, counted).
    let mut second = vec![ok("/", PageChange::Unchanged), broken()];
    let c2 = stored_crawl(&store, "docs", CrawlKind::Site, &mut second, None);
    assert_eq!(c2.status, CrawlStatus::Passed);
    assert_eq!((c2.counts.failed, c2.counts.still_failing, c2.counts.pages), (0, 1, 2));
    assert_eq!(store.crawl(c2.id).unwrap().unwrap(), c2, "the settled record is stored");
    assert_eq!(store.page(c2.id, "/broken").unwrap().unwrap().change, PageChange::StillFailing);
    assert_eq!(second[1].change, PageChange::StillFailing, "the caller's pages are restated too");
    assert_eq!(pending(&store.crawls("docs").unwrap()).len(), 0);

    // The same page failing another way, and a page newly failing: for review again.
    let mut third = vec![
        ok("/", PageChange::Unchanged),
        failing("/broken", PageOutcome::HttpError, Some(500)),
        failing("/other", PageOutcome::CaptureError, Some(200)),
    ];
    let c3 = stored_crawl(&store, "docs", CrawlKind::Site, &mut third, None);
    assert_eq!((c3.status, c3.counts.failed, c3.counts.still_failing), (CrawlStatus::Reviewing, 2, 0));
    assert_eq!(pending(&store.crawls("docs").unwrap()).iter().map(|c| c.id).collect::<Vec<_>>(), [c3.id]);

    // The reference is the *approved* crawl: a passed crawl's failures do not become known.
    let mut fourth =
        vec![ok("/", PageChange::Unchanged), failing("/other", PageOutcome::CaptureError, Some(200))];
    let c4 = stored_crawl(&store, "docs", CrawlKind::Site, &mut fourth, None);
    assert_eq!(c4.status, CrawlStatus::Reviewing);
}

#[test]
fn an_unchanged_crawl_passes_but_a_first_crawl_is_for_review() {
    let (_d, store) = temp_store();
    let mut first = vec![ok("/", PageChange::New), ok("/a", PageChange::New)];
    let c1 = stored_crawl(&store, "docs", CrawlKind::Site, &mut first, None);
    assert_eq!(c1.status, CrawlStatus::Reviewing, "the first crawl's pages are new");
    store.approve_crawl(c1.id).unwrap();
    let mut same = vec![ok("/", PageChange::Unchanged), ok("/a", PageChange::Unchanged)];
    let c2 = stored_crawl(&store, "docs", CrawlKind::Site, &mut same, None);
    assert_eq!(c2.status, CrawlStatus::Passed);
    // A page gone since the approved crawl is a review item, though nothing else changed.
    let mut fewer = vec![ok("/", PageChange::Unchanged)];
    let c3 = stored_crawl(&store, "docs", CrawlKind::Site, &mut fewer, None);
    assert_eq!((c3.status, c3.structure.as_ref().map(|s| s.removed)), (CrawlStatus::Reviewing, Some(1)));
    // An interrupted crawl stays interrupted.
    let mut rec = store.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    rec.status = CrawlStatus::Interrupted;
    settle_finished(&store, &mut rec, &mut []).unwrap();
    assert_eq!(rec.status, CrawlStatus::Interrupted);
}

#[test]
fn pair_crawls_compare_failures_with_the_approved_pair_crawl() {
    let (_d, store) = temp_store();
    let broken = || failing("/b", PageOutcome::HttpError, Some(404));
    let site = stored_crawl(&store, "docs", CrawlKind::Site, &mut [broken()], Some(CrawlStatus::Approved));
    let p1 = stored_crawl(&store, "docs", CrawlKind::Pair, &mut [broken()], None);
    assert_eq!(p1.status, CrawlStatus::Reviewing, "an approved site crawl is no reference for a pair crawl");
    store.approve_crawl(p1.id).unwrap();
    let p2 = stored_crawl(&store, "docs", CrawlKind::Pair, &mut [broken()], None);
    assert_eq!((p2.status, p2.counts.still_failing), (CrawlStatus::Passed, 1));
    let s2 = stored_crawl(&store, "docs", CrawlKind::Site, &mut [broken()], None);
    assert_eq!(reference_crawl(&store, &s2).unwrap().map(|c| c.id), Some(site.id));
    assert_eq!(s2.status, CrawlStatus::Passed);
}

#[test]
fn the_last_finished_crawl_of_each_configured_site_is_exported_at_start() {
    let (_d, store) = temp_store();
    let cfg = Config::parse(
        "[[sites]]\nname = \"docs\"\nstart = \"http://127.0.0.1:9/docs/\"\n\
         [[sites]]\nname = \"quiet\"\nstart = \"http://127.0.0.1:9/q/\"\npage_metrics = false\n\
         [[sites]]\nname = \"never\"\nstart = \"http://127.0.0.1:9/n/\"\n",
        Path::new("/tmp/x/sitediff.toml"),
    )
    .unwrap();
    let mut changed = ok("/a", PageChange::Changed);
    changed.distortion = Some(0.25);
    let mut docs = vec![changed, failing("/x", PageOutcome::HttpError, Some(404))];
    let c1 = stored_crawl(&store, "docs", CrawlKind::Site, &mut docs, None);
    // A later crawl that was interrupted is not the last *finished* one.
    let mut c2 = store.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    c2.status = CrawlStatus::Interrupted;
    c2.finished_at = Some(9_999_999_999_000);
    store.update_crawl(&c2).unwrap();
    let mut q = ok("/q", PageChange::Unchanged);
    q.distortion = Some(0.0);
    stored_crawl(&store, "quiet", CrawlKind::Site, &mut [q], Some(CrawlStatus::Approved));
    stored_crawl(&store, "gone", CrawlKind::Site, &mut [ok("/g", PageChange::New)], None);

    let metrics = Metrics::new().unwrap();
    let exported = export_stored_crawls(&store, &metrics, &cfg.sites).unwrap();
    assert_eq!(exported, [("docs".to_string(), c1.id), ("quiet".to_string(), 3)]);
    let text = metrics.render().unwrap();
    let ts = c1.finished_at.unwrap() as f64 / 1000.0;
    for line in [
        "sitediff_site_max_distortion{site=\"docs\"} 0.25".to_string(),
        "sitediff_site_changed_pages{site=\"docs\"} 1".to_string(),
        format!("sitediff_last_crawl_timestamp_seconds{{site=\"docs\"}} {ts}"),
        "sitediff_site_pages{change=\"error\",site=\"docs\"} 1".to_string(),
        "sitediff_site_pages{change=\"added\",site=\"docs\"} 1".to_string(),
        "sitediff_site_failed_pages{site=\"docs\",state=\"new\"} 1".to_string(),
        "sitediff_page_distortion{page=\"/a\",site=\"docs\"} 0.25".to_string(),
        "sitediff_site_max_distortion{site=\"quiet\"} 0".to_string(),
        "sitediff_site_changed_pages{site=\"quiet\"} 0".to_string(),
    ] {
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("page=\"/q\""), "page metrics are off for quiet:\n{text}");
    assert!(!text.contains("site=\"never\"") && !text.contains("site=\"gone\""), "{text}");
}

#[test]
fn a_human_can_still_approve_or_reject_a_passed_crawl() {
    let (_d, store) = temp_store();
    let mut png_page = ok("/", PageChange::New);
    png_page.png = Some(crate::store::Hash::of(b"png"));
    let c1 = stored_crawl(&store, "docs", CrawlKind::Site, &mut [png_page.clone()], None);
    store.approve_crawl(c1.id).unwrap();
    png_page.change = PageChange::Unchanged;
    png_page.png = Some(crate::store::Hash::of(b"png, drifted below the threshold"));
    let c2 = stored_crawl(&store, "docs", CrawlKind::Site, &mut [png_page.clone()], None);
    assert_eq!(c2.status, CrawlStatus::Passed);
    assert_eq!(store.reject_crawl(c2.id).unwrap().status, CrawlStatus::Rejected);
    let c3 = stored_crawl(&store, "docs", CrawlKind::Site, &mut [png_page], None);
    assert_eq!(c3.status, CrawlStatus::Passed);
    assert_eq!(store.approve_crawl(c3.id).unwrap().status, CrawlStatus::Approved);
    assert_eq!(
        store.baseline("docs", "/").unwrap().map(|b| b.crawl),
        Some(c3.id),
        "its captures are the baselines"
    );
}

#[test]
fn finishing_an_unknown_crawl_writes_nothing() {
    let (_d, store) = temp_store();
    let ghost = crawl(42, CrawlKind::Site, CrawlStatus::Passed, CrawlCounts::default());
    let page = failing("/x", PageOutcome::HttpError, Some(404));
    assert!(matches!(store.finish_crawl(&ghost, &[page]), Err(StoreError::NoSuchCrawl { id: 42 })));
    assert!(store.page(42, "/x").unwrap().is_none());
}
