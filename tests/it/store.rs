//! The store against real redb files: lifecycle, baselines, retention, schema checks, bad files.

use redb::Database;
use sitediff::store::schema::{META, META_SCHEMA_VERSION, SCHEMA_VERSION};
use sitediff::store::*;
fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sub/db.redb")).unwrap();
    (dir, store)
}

fn page(key: &str, png: &[u8]) -> PageRecord {
    let mut p = PageRecord::failed(key.into(), format!("http://h{key}"), PageOutcome::Ok, String::new());
    p.error = None;
    p.change = PageChange::New;
    p.png = Some(Hash::of(png));
    p.width = 10;
    p.height = 20;
    p
}

#[test]
fn crawl_lifecycle_and_baselines() {
    let (_d, s) = temp_store();
    let c = s.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    assert_eq!(c.id, 1);
    s.put_page(c.id, &page("/a", b"A"), &[Blob::new(b"A")]).unwrap();
    s.put_page(c.id, &page("/b", b"B"), &[Blob::new(b"B")]).unwrap();
    assert!(s.approve_crawl(c.id).is_err(), "a running crawl cannot be approved");
    let mut rec = s.crawl(c.id).unwrap().unwrap();
    rec.status = CrawlStatus::Reviewing;
    s.update_crawl(&rec).unwrap();
    s.approve_crawl(c.id).unwrap();
    assert_eq!(s.baseline("docs", "/a").unwrap().unwrap().png, Hash::of(b"A"));
    assert_eq!(s.baselines("docs").unwrap().len(), 2);
    assert_eq!(s.baselines("doc").unwrap().len(), 0);

    let c2 = s.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    assert_eq!(c2.id, 2);
    // Same bytes again: stored once.
    s.put_page(c2.id, &page("/a", b"A"), &[Blob::new(b"A")]).unwrap();
    s.put_page(c2.id, &page("/b", b"B2"), &[Blob::new(b"B2")]).unwrap();
    assert_eq!(s.blob_count().unwrap(), 3);
    assert_eq!(s.interrupt_running("test").unwrap(), vec![2]);
    assert_eq!(s.crawl(2).unwrap().unwrap().status, CrawlStatus::Interrupted);
    s.approve_page(2, "/b").unwrap();
    assert_eq!(s.baseline("docs", "/b").unwrap().unwrap().png, Hash::of(b"B2"));
    assert!(s.page(2, "/b").unwrap().unwrap().approved);
    assert_eq!(s.pages(1).unwrap().len(), 2);
    assert_eq!(s.crawls("docs").unwrap().iter().map(|c| c.id).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(s.site_names().unwrap(), vec!["docs".to_string()]);
    assert!(matches!(s.resolve_crawl("other", Some(1)), Err(StoreError::NoSuchCrawl { .. })));
}

#[test]
fn retention_keeps_baselines_and_latest_and_collects_garbage() {
    let (_d, s) = temp_store();
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let c = s.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
        let bytes = [i; 4];
        s.put_page(c.id, &page("/a", &bytes), &[Blob::new(&bytes), Blob::new(b"shared")]).unwrap();
        let mut rec = s.crawl(c.id).unwrap().unwrap();
        rec.status = CrawlStatus::Reviewing;
        s.update_crawl(&rec).unwrap();
        if i == 1 {
            s.approve_crawl(c.id).unwrap();
        }
        ids.push(c.id);
    }
    // Another site's crawl is never touched.
    let other = s.begin_crawl("blog", CrawlKind::Site, "http://h/b/", None).unwrap();
    assert_eq!(s.blob_count().unwrap(), 6);
    let r = s.apply_retention("docs", 2).unwrap();
    assert_eq!(r, RetentionReport { crawls_removed: 2, blobs_removed: 3 });
    let left: Vec<u64> = s.crawl_ids("docs").unwrap();
    assert_eq!(left, vec![ids[1], ids[3], ids[4]]);
    assert!(s.pages(ids[0]).unwrap().is_empty());
    assert!(s.blob(&Hash::of(&[1u8; 4])).unwrap().is_some(), "the baseline's PNG survives");
    assert!(s.blob(&Hash::of(&[0u8; 4])).unwrap().is_none());
    assert!(s.blob(&Hash::of(b"shared")).unwrap().is_none(), "not referenced by any page record");
    assert!(s.crawl(other.id).unwrap().is_some());
    // Idempotent.
    assert_eq!(s.apply_retention("docs", 2).unwrap(), RetentionReport::default());
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let s = Store::open(&path).unwrap();
        s.begin_crawl("x", CrawlKind::Site, "http://h/", None).unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.latest_crawl("x").unwrap().unwrap().id, 1);
    assert_eq!(s.begin_crawl("x", CrawlKind::Site, "http://h/", None).unwrap().id, 2);
}

#[test]
fn newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let db = Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(META).unwrap().insert(META_SCHEMA_VERSION, SCHEMA_VERSION + 1).unwrap();
        w.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    assert!(err.to_string().contains("newer sitediff"), "{err}");
    assert!(std::fs::read(&path).unwrap() == before, "the file was modified");
    let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(beside, ["db.redb"], "nothing is written beside a newer store either");
}

#[test]
fn garbage_file_is_an_error_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    std::fs::write(&path, b"this is not a database at all, just some bytes").unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(err.to_string().contains("cannot open database"), "{err}");
    assert!(std::fs::read(&path).unwrap() == b"this is not a database at all, just some bytes");
}

#[test]
fn truncated_database_is_a_clear_error_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let s = Store::open(&path).unwrap();
        for i in 0..20u8 {
            let c = s.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
            let bytes = vec![i; 50_000];
            s.put_page(c.id, &page("/a", &bytes), &[Blob::new(&bytes)]).unwrap();
        }
    }
    let full = std::fs::read(&path).unwrap();
    for cut in [full.len() / 2, 1000, 10] {
        std::fs::write(&path, &full[..cut]).unwrap();
        let before = std::fs::read(&path).unwrap();
        match Store::open(&path) {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("cannot open database") && msg.contains("db.redb"), "{msg}");
                assert!(std::fs::read(&path).unwrap() == before, "a refused file was modified (cut {cut})");
            }
            // redb may recover a file cut after its last commit; then everything readable must be sane.
            Ok(s) => {
                for c in s.crawls("docs").unwrap() {
                    let _ = s.pages(c.id).unwrap();
                }
            }
        }
    }
}
