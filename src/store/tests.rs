//! Unit tests of the store on real redb files in a temporary directory: the crawl status
//! transitions, restarts, retention and the errors' sources.

use std::error::Error as _;

use super::*;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.redb")).unwrap();
    (dir, store)
}

/// A captured page whose PNG is `png`.
fn page(key: &str, png: &[u8]) -> PageRecord {
    PageRecord { png: Some(Hash::of(png)), width: 10, height: 20, ..PageRecord::new(key.into(), key.into()) }
}

/// Begin a crawl of `site` with the pages `(key, png)` stored, left `running`.
fn running_crawl(s: &Store, site: &str, pages: &[(&str, &[u8])]) -> CrawlRecord {
    let c = s.begin_crawl(site, CrawlKind::Site, "http://h/", None).unwrap();
    for (key, png) in pages {
        s.put_page(c.id, &page(key, png), &[Blob::new(png)]).unwrap();
    }
    c
}

/// What the sweep does at the end of a crawl: the record goes to `reviewing`.
fn finish(s: &Store, id: u64) -> CrawlRecord {
    let mut rec = s.crawl(id).unwrap().unwrap();
    rec.status = CrawlStatus::Reviewing;
    rec.finished_at = Some(now_ms());
    s.update_crawl(&rec).unwrap();
    rec
}

fn status(s: &Store, id: u64) -> CrawlStatus {
    s.crawl(id).unwrap().unwrap().status
}

fn baseline_crawl(s: &Store, site: &str, key: &str) -> Option<u64> {
    s.baseline(site, key).unwrap().map(|b| b.crawl)
}

fn assert_bad_transition(r: Result<impl std::fmt::Debug, StoreError>, from: CrawlStatus, verb: &str) {
    match r {
        Err(StoreError::BadTransition { status, action, .. }) => {
            assert_eq!((status, action), (from, verb));
        }
        other => panic!("expected a refused transition from {from} ({verb}), got {other:?}"),
    }
}

#[test]
fn a_new_crawl_is_running_and_cannot_be_reviewed_yet() {
    let (_d, s) = temp_store();
    let c = running_crawl(&s, "docs", &[("/a", b"A")]);
    assert_eq!(c.status, CrawlStatus::Running);
    assert_eq!(status(&s, c.id), CrawlStatus::Running);
    assert_bad_transition(s.approve_crawl(c.id), CrawlStatus::Running, "approved");
    assert_bad_transition(s.reject_crawl(c.id), CrawlStatus::Running, "rejected");
    assert_bad_transition(s.approve_page(c.id, "/a"), CrawlStatus::Running, "page-approved");
    assert_eq!(baseline_crawl(&s, "docs", "/a"), None, "a refused approval wrote no baseline");
}

#[test]
fn running_to_reviewing_to_approved_makes_the_baselines() {
    let (_d, s) = temp_store();
    let c = running_crawl(&s, "docs", &[("/a", b"A"), ("/b", b"B")]);
    let mut failed = PageRecord::failed("/c".into(), "/c".into(), PageOutcome::CaptureError, "x".into());
    failed.png = Some(Hash::of(b"C"));
    s.put_page(c.id, &failed, &[]).unwrap();
    finish(&s, c.id);
    assert_eq!(status(&s, c.id), CrawlStatus::Reviewing);

    let approved = s.approve_crawl(c.id).unwrap();
    assert_eq!(approved.status, CrawlStatus::Approved);
    assert!(approved.reviewed_at.is_some());
    assert_eq!(status(&s, c.id), CrawlStatus::Approved, "the new status is stored");
    assert_eq!(s.baseline("docs", "/a").unwrap().unwrap().png, Hash::of(b"A"));
    assert_eq!(baseline_crawl(&s, "docs", "/b"), Some(c.id));
    assert_eq!(baseline_crawl(&s, "docs", "/c"), None, "a failed page never becomes a baseline");
    // Approving again is allowed (idempotent) and rejecting an approved crawl is not.
    s.approve_crawl(c.id).unwrap();
    assert_bad_transition(s.reject_crawl(c.id), CrawlStatus::Approved, "rejected");
}

#[test]
fn reviewing_to_rejected_keeps_the_baselines_and_can_still_be_approved() {
    let (_d, s) = temp_store();
    let first = running_crawl(&s, "docs", &[("/a", b"A")]);
    finish(&s, first.id);
    s.approve_crawl(first.id).unwrap();
    let second = running_crawl(&s, "docs", &[("/a", b"A2")]);
    finish(&s, second.id);

    let rejected = s.reject_crawl(second.id).unwrap();
    assert_eq!(rejected.status, CrawlStatus::Rejected);
    assert_eq!(status(&s, second.id), CrawlStatus::Rejected);
    assert_eq!(baseline_crawl(&s, "docs", "/a"), Some(first.id), "rejecting leaves baselines alone");
    s.reject_crawl(second.id).unwrap();

    s.approve_crawl(second.id).unwrap();
    assert_eq!(baseline_crawl(&s, "docs", "/a"), Some(second.id));
    assert_eq!(s.baseline("docs", "/a").unwrap().unwrap().png, Hash::of(b"A2"));
}

#[test]
fn approving_keeps_the_old_baseline_of_pages_the_crawl_did_not_capture() {
    let (_d, s) = temp_store();
    let first = running_crawl(&s, "docs", &[("/a", b"A"), ("/b", b"B")]);
    finish(&s, first.id);
    s.approve_crawl(first.id).unwrap();
    let second = running_crawl(&s, "docs", &[("/a", b"A2")]);
    s.put_page(
        second.id,
        &PageRecord::failed("/b".into(), "/b".into(), PageOutcome::HttpError, "500".into()),
        &[],
    )
    .unwrap();
    finish(&s, second.id);
    s.approve_crawl(second.id).unwrap();
    assert_eq!(baseline_crawl(&s, "docs", "/a"), Some(second.id));
    assert_eq!(baseline_crawl(&s, "docs", "/b"), Some(first.id));
}

#[test]
fn approving_a_pair_crawl_touches_no_baseline() {
    let (_d, s) = temp_store();
    let c = s.begin_crawl("docs", CrawlKind::Pair, "http://h/", Some("http://b/")).unwrap();
    s.put_page(c.id, &page("/a", b"A"), &[Blob::new(b"A")]).unwrap();
    let mut removed = PageRecord::new("/gone".into(), "/gone".into());
    removed.change = PageChange::Removed;
    s.put_page(c.id, &removed, &[]).unwrap();
    finish(&s, c.id);
    s.approve_crawl(c.id).unwrap();
    assert!(s.baselines("docs").unwrap().is_empty());
    // A page only on the base side (no capture of its own) can be accepted in a pair crawl.
    assert!(s.approve_page(c.id, "/gone").unwrap().page.approved);
    assert!(s.page(c.id, "/gone").unwrap().unwrap().approved);
    assert!(s.baselines("docs").unwrap().is_empty());
}

#[test]
fn approving_one_page_moves_only_its_baseline() {
    let (_d, s) = temp_store();
    let c = running_crawl(&s, "docs", &[("/a", b"A"), ("/b", b"B")]);
    s.put_page(
        c.id,
        &PageRecord::failed("/x".into(), "/x".into(), PageOutcome::HttpError, "404".into()),
        &[],
    )
    .unwrap();
    finish(&s, c.id);
    let p = s.approve_page(c.id, "/a").unwrap();
    assert!(p.page.approved);
    assert_eq!(baseline_crawl(&s, "docs", "/a"), Some(c.id));
    assert_eq!(baseline_crawl(&s, "docs", "/b"), None);
    assert_eq!(status(&s, c.id), CrawlStatus::Reviewing, "the crawl itself stays in review");
    assert!(matches!(s.approve_page(c.id, "/nope"), Err(StoreError::NoSuchPage { .. })));
    match s.approve_page(c.id, "/x") {
        Err(StoreError::NoSuchPage { key, .. }) => assert!(key.contains("no capture"), "{key}"),
        other => panic!("a page without a capture cannot be approved: {other:?}"),
    }
}

#[test]
fn approving_pages_together_is_all_or_nothing() {
    let (_d, s) = temp_store();
    let c = running_crawl(&s, "docs", &[("/a", b"A"), ("/b", b"B"), ("/c", b"C")]);
    finish(&s, c.id);
    // One key cannot be approved: none of the others is.
    let keys = ["/a".to_string(), "/nope".to_string()];
    assert!(matches!(s.approve_pages(c.id, &keys), Err(StoreError::NoSuchPage { .. })));
    assert_eq!(baseline_crawl(&s, "docs", "/a"), None, "a refused group leaves no page approved");
    assert!(!s.pages(c.id).unwrap().iter().any(|p| p.approved));
    // Two of three: both baselines move, the crawl stays in review.
    let done = s.approve_pages(c.id, &["/a".to_string(), "/b".to_string()]).unwrap();
    assert_eq!(done.pages.len(), 2);
    assert!(!done.crawl_approved);
    assert_eq!(
        (baseline_crawl(&s, "docs", "/a"), baseline_crawl(&s, "docs", "/b")),
        (Some(c.id), Some(c.id))
    );
    assert_eq!(status(&s, c.id), CrawlStatus::Reviewing);
    // The last pending page approves the crawl in the same transaction.
    let done = s.approve_pages(c.id, &["/c".to_string()]).unwrap();
    assert!(done.crawl_approved);
    assert_eq!(status(&s, c.id), CrawlStatus::Approved);
}

#[test]
fn crawls_left_running_are_interrupted_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let (running, reviewed) = {
        let s = Store::open(&path).unwrap();
        let reviewed = running_crawl(&s, "docs", &[("/a", b"A")]);
        finish(&s, reviewed.id);
        let running = running_crawl(&s, "docs", &[("/a", b"A2")]);
        (running.id, reviewed.id)
        // The process "dies" here: the store is dropped with a crawl still running.
    };
    let s = Store::open(&path).unwrap();
    assert_eq!(status(&s, running), CrawlStatus::Running, "opening alone changes nothing");
    assert_eq!(s.interrupt_running("stopped").unwrap(), vec![running]);
    let rec = s.crawl(running).unwrap().unwrap();
    assert_eq!(rec.status, CrawlStatus::Interrupted);
    assert_eq!(rec.error.as_deref(), Some("stopped"));
    assert!(rec.finished_at.is_some());
    assert_eq!(status(&s, reviewed), CrawlStatus::Reviewing, "finished crawls are left alone");
    assert_eq!(s.interrupt_running("again").unwrap(), Vec::<u64>::new());
    // An interrupted crawl can be rejected or have single pages approved, not be approved whole.
    assert_bad_transition(s.approve_crawl(running), CrawlStatus::Interrupted, "approved");
    s.approve_page(running, "/a").unwrap();
    assert_eq!(baseline_crawl(&s, "docs", "/a"), Some(running));
    assert_eq!(s.reject_crawl(running).unwrap().status, CrawlStatus::Rejected);
}

#[test]
fn a_failed_crawl_cannot_be_reviewed() {
    let (_d, s) = temp_store();
    let c = running_crawl(&s, "docs", &[("/a", b"A")]);
    let mut rec = s.crawl(c.id).unwrap().unwrap();
    rec.status = CrawlStatus::Failed;
    s.update_crawl(&rec).unwrap();
    assert_bad_transition(s.approve_crawl(c.id), CrawlStatus::Failed, "approved");
    assert_bad_transition(s.reject_crawl(c.id), CrawlStatus::Failed, "rejected");
}

#[test]
fn update_of_an_unknown_crawl_is_refused() {
    let (_d, s) = temp_store();
    let c = running_crawl(&s, "docs", &[]);
    let ghost = CrawlRecord { id: c.id + 10, ..c };
    assert!(matches!(s.update_crawl(&ghost), Err(StoreError::NoSuchCrawl { id }) if id == ghost.id));
    assert!(matches!(s.approve_crawl(99), Err(StoreError::NoSuchCrawl { id: 99 })));
}

#[test]
fn retention_keeps_baseline_crawls_running_crawls_and_the_newest() {
    let (_d, s) = temp_store();
    // Crawl 1 approved whole, crawl 2 with one page approved, crawl 3 still running, 4-6 reviewed.
    let mut ids = Vec::new();
    for i in 0..6u8 {
        let png = [i; 3];
        let c = running_crawl(&s, "docs", &[("/a", &png), (if i == 1 { "/b" } else { "/c" }, b"shared")]);
        if i != 2 {
            finish(&s, c.id);
        }
        ids.push(c.id);
    }
    s.approve_crawl(ids[0]).unwrap();
    s.approve_page(ids[1], "/b").unwrap();
    let report = s.apply_retention("docs", 1).unwrap();
    assert_eq!(s.crawl_ids("docs").unwrap(), vec![ids[0], ids[1], ids[2], ids[5]], "{report:?}");
    assert_eq!(report.crawls_removed, 2);
    assert!(s.pages(ids[3]).unwrap().is_empty(), "page records of removed crawls are gone");
    assert!(s.crawl(ids[4]).unwrap().is_none());
    assert_eq!(status(&s, ids[2]), CrawlStatus::Running);
    // Artifacts of baselines and of kept crawls survive; the others were collected.
    for kept in [0u8, 1, 2, 5] {
        assert!(s.blob(&Hash::of(&[kept; 3])).unwrap().is_some(), "artifact {kept}");
    }
    assert!(s.blob(&Hash::of(b"shared")).unwrap().is_some(), "still referenced by the kept crawls");
    for gone in [3u8, 4] {
        assert!(s.blob(&Hash::of(&[gone; 3])).unwrap().is_none(), "artifact {gone}");
    }
    assert_eq!(report.blobs_removed, 2);
    assert_eq!(s.apply_retention("docs", 1).unwrap(), RetentionReport::default(), "idempotent");
}

#[test]
fn a_corrupt_record_names_itself_and_keeps_the_json_error() {
    let (_d, s) = temp_store();
    let c = running_crawl(&s, "docs", &[("/a", b"A")]);
    {
        let w = s.db.begin_write().unwrap();
        w.open_table(schema::CRAWLS).unwrap().insert(c.id, b"{not json".as_slice()).unwrap();
        w.open_table(schema::PAGES).unwrap().insert((c.id, "/a"), b"[]".as_slice()).unwrap();
        w.commit().unwrap();
    }
    let e = s.crawl(c.id).unwrap_err();
    assert!(matches!(&e, StoreError::Corrupt { what: "crawl", key, .. } if key == "crawl 1"), "{e:?}");
    assert!(e.to_string().contains("corrupt crawl record (crawl 1)"), "{e}");
    let source = e.source().expect("the JSON error is kept as the source");
    assert!(source.downcast_ref::<serde_json::Error>().is_some(), "{source:?}");
    let e = s.pages(c.id).unwrap_err();
    assert!(e.to_string().contains("corrupt page record (crawl 1, page \"/a\")"), "{e}");
    assert!(matches!(s.interrupt_running("x"), Err(StoreError::Corrupt { what: "crawl", .. })));
}

#[test]
fn open_errors_keep_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let e = Store::open(&file.join("db.redb")).unwrap_err();
    assert!(matches!(&e, StoreError::CreateDir { dir, .. } if *dir == file), "{e:?}");
    assert!(e.to_string().starts_with("cannot open database"), "{e}");
    assert!(e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).is_some(), "{e:?}");

    std::fs::write(dir.path().join("junk.redb"), b"not a database").unwrap();
    let e = Store::open(&dir.path().join("junk.redb")).unwrap_err();
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    assert!(e.source().and_then(|s| s.downcast_ref::<redb::DatabaseError>()).is_some(), "{e:?}");
}

#[test]
fn a_second_handle_on_an_open_file_is_refused() {
    let (d, _s) = temp_store();
    let e = Store::open(&d.path().join("db.redb")).unwrap_err();
    assert!(matches!(e, StoreError::InUse { .. }), "{e:?}");
}

#[test]
fn a_read_only_handle_reads_beside_the_writer_and_follows_its_commits() {
    let (d, s) = temp_store();
    let path = d.path().join("db.redb");
    let first = finish(&s, running_crawl(&s, "docs", &[("/a", b"A")]).id);
    let r = Store::open_read_only(&path).expect("a reader beside the open writer");
    assert!(r.is_read_only() && !s.is_read_only());
    assert_eq!(r.crawls("docs").unwrap(), std::slice::from_ref(&first));
    assert_eq!(r.pages(first.id).unwrap().len(), 1);
    // The writer goes on; the reader sees each commit.
    let second = s.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    assert_eq!(r.latest_crawl("docs").unwrap().map(|c| c.id), Some(second.id));
    // The reader cannot write, and a second writer is still refused.
    let e = r.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { op: "starting a crawl", .. }), "{e:?}");
    assert!(e.to_string().contains("is open read-only"), "{e}");
    assert!(matches!(Store::open(&path).unwrap_err(), StoreError::InUse { .. }));
    // A writer can open while only readers have the file.
    drop(s);
    let w = Store::open(&path).expect("a writer beside a reader");
    w.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    assert_eq!(r.crawl_ids("docs").unwrap().len(), 3);
}

#[test]
fn a_read_only_handle_refuses_a_file_it_cannot_read_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let e = Store::open_read_only(&dir.path().join("none.redb")).unwrap_err();
    assert!(matches!(e, StoreError::Open { .. }), "a missing file is not created: {e:?}");
    assert!(!dir.path().join("none.redb").exists());
    // A schema-1 file is upgraded by the writer, not read as if it were current.
    let v1 = dir.path().join("v1.redb");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1/sitediff.redb"), &v1)
        .unwrap();
    let e = Store::open_read_only(&v1).unwrap_err();
    assert!(matches!(e, StoreError::NeedsUpgrade { found: 1, .. }), "{e:?}");
    drop(Store::open(&v1).unwrap());
    assert!(Store::open_read_only(&v1).is_ok());
}

#[test]
fn a_restore_right_after_an_approval_is_the_reference_even_within_one_millisecond() {
    let (_d, s) = temp_store();
    let c1 = running_crawl(&s, "docs", &[("/a", b"A1")]);
    finish(&s, c1.id);
    let c2 = running_crawl(&s, "docs", &[("/a", b"A2")]);
    finish(&s, c2.id);
    s.approve_crawl(c2.id).unwrap();
    // The newer approval carries a time ahead of this clock (one millisecond apart at most on a
    // fast machine, or a clock stepped back since): the restore must still come after it.
    let mut newer = s.crawl(c2.id).unwrap().unwrap();
    let ahead = now_ms() + 3_600_000;
    newer.reviewed_at = Some(ahead);
    s.update_crawl(&newer).unwrap();
    let restored = s.restore_crawl(c1.id).unwrap().crawl;
    assert!(restored.reviewed_at > Some(ahead), "{:?} after {ahead}", restored.reviewed_at);
    assert_eq!(s.last_approved_crawl("docs", u64::MAX).unwrap().map(|c| c.id), Some(c1.id));
    assert_eq!(s.comparison_basis("docs").unwrap().against, Some(c1.id));
    // Re-approving the newest orders it last again.
    let again = s.approve_crawl(c2.id).unwrap();
    assert!(again.reviewed_at > restored.reviewed_at);
    assert_eq!(s.last_approved_crawl("docs", u64::MAX).unwrap().map(|c| c.id), Some(c2.id));
}
