//! The schema-1 store written by an earlier binary (tests/fixtures/store-v1) is upgraded to the
//! current schema on open and keeps every crawl, approval and baseline with its artifacts.

use std::path::Path;

use redb::ReadableDatabase;
use sitediff::store::schema::{META, META_SCHEMA_VERSION, SCHEMA_VERSION};
use sitediff::store::*;

fn schema_version(path: &Path) -> u64 {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let rtx = db.begin_read().unwrap();
    let meta = rtx.open_table(META).unwrap();
    let version = meta.get(META_SCHEMA_VERSION).unwrap().unwrap().value();
    version
}

fn fixture_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1/sitediff.redb")
}

#[test]
fn schema_one_fixture_is_upgraded_once_and_in_place() {
    assert_eq!(schema_version(&fixture_path()), 1, "the committed fixture stays at schema 1");
    let (dir, store) = fixture_copy();
    drop(store);
    let path = dir.path().join("sitediff.redb");
    assert_eq!(schema_version(&path), SCHEMA_VERSION);
    // Opening again is a no-op that keeps the data.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.crawl_ids("docs").unwrap(), [1, 3, 4, 6]);
}

fn fixture_copy() -> (tempfile::TempDir, Store) {
    let src = fixture_path();
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("sitediff.redb");
    std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("cannot copy {}: {e}", src.display()));
    let store = Store::open(&dst).unwrap();
    (dir, store)
}

#[test]
fn schema_one_fixture_keeps_crawls_approvals_and_baselines() {
    let (_dir, store) = fixture_copy();
    let mut sites = store.site_names().unwrap();
    sites.sort();
    assert_eq!(sites, ["blog", "docs"]);

    let status = |id: u64| store.crawl(id).unwrap().unwrap_or_else(|| panic!("crawl {id} missing")).status;
    assert_eq!(status(1), CrawlStatus::Approved);
    assert_eq!(status(2), CrawlStatus::Approved);
    assert_eq!(status(3), CrawlStatus::Reviewing);
    assert_eq!(status(4), CrawlStatus::Rejected);
    assert_eq!(status(5), CrawlStatus::Reviewing);
    assert_eq!(status(6), CrawlStatus::Reviewing);
    assert_eq!(store.crawl_ids("docs").unwrap(), [1, 3, 4, 6]);
    assert_eq!(store.crawl_ids("blog").unwrap(), [2, 5]);

    let about = store.page(3, "/about.html").unwrap().expect("page /about.html of crawl 3");
    assert!(about.approved, "the page approval of crawl 3 is kept");
    let failed = store.page(6, "/guide/setup.html").unwrap().expect("page /guide/setup.html of crawl 6");
    assert_eq!(failed.http_status, Some(404));

    let from = |site: &str| -> Vec<(String, u64)> {
        let mut v: Vec<_> = store.baselines(site).unwrap().into_iter().map(|(k, b)| (k, b.crawl)).collect();
        v.sort();
        v
    };
    assert_eq!(
        from("docs"),
        [
            ("/about.html".to_string(), 3),
            ("/guide/intro.html".to_string(), 1),
            ("/guide/setup.html".to_string(), 1),
            ("/index.html".to_string(), 1)
        ]
    );
    assert_eq!(from("blog"), [("/intro.html".to_string(), 2), ("/setup.html".to_string(), 2)]);

    for site in ["docs", "blog"] {
        for (key, b) in store.baselines(site).unwrap() {
            let png =
                store.blob(&b.png).unwrap().unwrap_or_else(|| panic!("{site} {key}: baseline PNG missing"));
            let img = image::load_from_memory(&png).unwrap();
            assert_eq!((img.width(), img.height()), (b.width, b.height), "{site} {key}");
            if let Some(html) = b.html {
                assert!(store.blob(&html).unwrap().is_some(), "{site} {key}: baseline HTML missing");
            }
        }
    }
}
