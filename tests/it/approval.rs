//! Approvals on a real redb file: they only move forward (approving an older crawl or page is
//! refused, restoring it is the explicit way back and lists what moves), each one reads and writes
//! in one transaction (races with retention never leave a baseline without its artifacts; the
//! last-pending-page rule cannot interleave with a rejection), and a crawl's pages and structure
//! agree on what they were compared against. Store level, the CLI, and the API of a real daemon.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use sitediff::store::*;

use crate::helpers::{csrf_of, run_sitediff, session_cookie, solid_png, Daemon, TempProject};

/// A captured page: a PNG (its colour from the hash of site, crawl and key) and HTML unique to
/// (site, crawl, key).
fn captured(site: &str, crawl: u64, key: &str) -> (PageRecord, Vec<u8>, Vec<u8>) {
    let tag = Hash::of(format!("{site} {crawl} {key}").as_bytes()).0;
    let png = solid_png(10, 10, [tag[0], tag[1], tag[2], 255]);
    let html = format!("<p>{site} {crawl} {key}</p>").into_bytes();
    let mut p = PageRecord::new(key.into(), format!("http://h{key}"));
    p.png = Some(Hash::of(&png));
    p.html = Some(Hash::of(&html));
    p.width = 10;
    p.height = 10;
    p.http_status = Some(200);
    p.change = PageChange::Changed;
    (p, png, html)
}

/// A finished (`reviewing`) crawl of `site` with these keys captured and these keys failed.
fn crawl_with(s: &Store, site: &str, ok: &[&str], failed: &[&str]) -> u64 {
    let c = s.begin_crawl(site, CrawlKind::Site, "http://h/", None).unwrap();
    for key in ok {
        let (p, png, html) = captured(site, c.id, key);
        s.put_page(c.id, &p, &[Blob::new(&png), Blob::new(&html)]).unwrap();
    }
    for key in failed {
        let mut p =
            PageRecord::failed((*key).into(), format!("http://h{key}"), PageOutcome::HttpError, "500".into());
        p.http_status = Some(500);
        s.put_page(c.id, &p, &[]).unwrap();
    }
    let mut rec = s.crawl(c.id).unwrap().unwrap();
    rec.status = CrawlStatus::Reviewing;
    rec.finished_at = Some(now_ms());
    rec.tally(&s.pages(c.id).unwrap());
    s.update_crawl(&rec).unwrap();
    c.id
}

fn baselines(s: &Store, site: &str) -> BTreeMap<String, BaselineRecord> {
    s.baselines(site).unwrap().into_iter().collect()
}

fn from_crawl(s: &Store, site: &str) -> BTreeMap<String, u64> {
    baselines(s, site).into_iter().map(|(k, b)| (k, b.crawl)).collect()
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("approval.redb")).unwrap();
    (dir, store)
}

/// Crawl 1 approved, crawls 2 and 3 pending. Keys: `/a` and `/b` in every crawl, `/c` failing in
/// 2, `/only2` only in 2, `/only3` only in 3.
fn pending_history(s: &Store) -> (u64, u64, u64) {
    let c1 = crawl_with(s, "docs", &["/a", "/b", "/c"], &[]);
    s.approve_crawl(c1).unwrap();
    let c2 = crawl_with(s, "docs", &["/a", "/b", "/only2"], &["/c"]);
    let c3 = crawl_with(s, "docs", &["/a", "/b", "/c", "/only3"], &[]);
    (c1, c2, c3)
}

/// The history: [`pending_history`], then crawl 3 approved (crawl 2 still pending).
fn history(s: &Store) -> (u64, u64, u64) {
    let ids = pending_history(s);
    s.approve_crawl(ids.2).unwrap();
    ids
}

#[test]
fn approving_an_older_crawl_is_refused_and_changes_nothing() {
    let (_d, s) = temp_store();
    let (_, c2, c3) = history(&s);
    let before = baselines(&s, "docs");
    let err = s.approve_crawl(c2).unwrap_err();
    match &err {
        StoreError::OlderThanApproved { id, site, newer, back } => {
            assert_eq!((*id, site.as_str(), *newer, *back), (c2, "docs", c3, 2), "{err}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(err.is_rollback());
    assert_eq!(
        err.to_string(),
        format!(
            "crawl {c2} is older than the newest approval of site \"docs\" (crawl {c3}): approving it would \
             move 2 baseline(s) back to older captures; restore it to do that on purpose"
        )
    );
    assert_eq!(baselines(&s, "docs"), before, "a refused approval wrote nothing");
    assert_eq!(s.crawl(c2).unwrap().unwrap().status, CrawlStatus::Reviewing);
    // Still refused when only a page of a newer crawl was approved (the newest approval is a page).
    let (_d2, s2) = temp_store();
    let old = crawl_with(&s2, "docs", &["/a"], &[]);
    let new = crawl_with(&s2, "docs", &["/b"], &[]);
    s2.approve_page(new, "/b").unwrap();
    assert!(
        matches!(s2.approve_crawl(old), Err(StoreError::OlderThanApproved { newer, back: 0, .. }) if newer == new)
    );
    // Forward approvals and re-approving the newest stay allowed.
    s.approve_crawl(c3).unwrap();
    let c4 = crawl_with(&s, "docs", &["/a"], &[]);
    s.approve_crawl(c4).unwrap();
    assert_eq!(from_crawl(&s, "docs")["/a"], c4);
}

#[test]
fn restoring_moves_exactly_the_listed_baselines_and_becomes_the_reference() {
    let (_d, s) = temp_store();
    let (_, c2, c3) = history(&s);
    let before = baselines(&s, "docs");
    let preview = s.restore_preview(c2, None).unwrap();
    let done = s.restore_crawl(c2).unwrap();
    assert_eq!(done.moved, preview, "the preview says what the restore does");
    assert_eq!(done.crawl.status, CrawlStatus::Approved);
    let moved: Vec<(&str, Option<u64>, u64)> =
        done.moved.iter().map(|m| (m.key.as_str(), m.from, m.to)).collect();
    assert_eq!(moved, [("/a", Some(c3), c2), ("/b", Some(c3), c2), ("/only2", None, c2)]);
    assert_eq!(done.moved.iter().filter(|m| m.is_back()).count(), 2);
    let after = baselines(&s, "docs");
    for (key, b) in &after {
        match done.moved.iter().find(|m| &m.key == key) {
            Some(m) => {
                assert_eq!(b.crawl, m.to, "{key}");
                assert_eq!(before.get(key).map(|b| b.crawl), m.from, "{key}");
                assert_eq!(b.png, captured("docs", c2, key).0.png.unwrap(), "{key}: the restored capture");
            }
            None => assert_eq!(Some(b), before.get(key), "{key} is not listed and must not change"),
        }
    }
    assert_eq!(after.len(), before.len() + 1);
    // The restored crawl is the structural reference now, and what the next crawl is compared with.
    assert_eq!(s.last_approved_crawl("docs", u64::MAX).unwrap().map(|c| c.id), Some(c2));
    let basis = s.comparison_basis("docs").unwrap();
    assert_eq!(basis.against, Some(c2));
    assert_eq!(basis.baselines["/a"].crawl, c2);
    // Retention keeps the reference even when nothing else would.
    s.apply_retention("docs", 0).unwrap();
    assert!(s.crawl(c2).unwrap().is_some());
    // Restoring a running crawl is refused like approving it.
    let running = s.begin_crawl("docs", CrawlKind::Site, "http://h/", None).unwrap();
    assert!(matches!(s.restore_crawl(running.id), Err(StoreError::BadTransition { action: "restored", .. })));
}

#[test]
fn page_approvals_follow_the_same_rule() {
    let (_d, s) = temp_store();
    let (_, c2, c3) = history(&s);
    let before = baselines(&s, "docs");
    let err = s.approve_page(c2, "/a").unwrap_err();
    assert!(
        matches!(&err, StoreError::OlderThanBaseline { crawl, key, baseline } if *crawl == c2 && key == "/a" && *baseline == c3),
        "{err:?}"
    );
    assert!(err.to_string().contains("is older than its baseline (from crawl"), "{err}");
    assert_eq!(baselines(&s, "docs"), before);
    assert!(!s.page(c2, "/a").unwrap().unwrap().approved, "the refused page is not marked approved");
    // A key whose baseline is older than the crawl (or that has none) moves forward as before.
    let done = s.approve_page(c2, "/only2").unwrap();
    assert_eq!(done.moved, [BaselineMove { key: "/only2".into(), from: None, to: c2 }]);
    let c4 = crawl_with(&s, "docs", &["/c"], &[]);
    assert_eq!(s.approve_page(c4, "/c").unwrap().moved[0].from, Some(c3));
    // Restoring the page moves exactly that baseline back.
    let before = baselines(&s, "docs");
    assert_eq!(s.restore_preview(c2, Some("/a")).unwrap().len(), 1);
    let done = s.restore_page(c2, "/a").unwrap();
    assert_eq!(done.moved, [BaselineMove { key: "/a".into(), from: Some(c3), to: c2 }]);
    assert!(done.page.approved && !done.crawl_approved);
    let after = baselines(&s, "docs");
    for (key, b) in &after {
        if key == "/a" {
            assert_eq!(b.crawl, c2);
        } else {
            assert_eq!(Some(b), before.get(key), "{key} must not change");
        }
    }
}

#[test]
fn the_last_pending_page_approves_its_crawl_in_the_same_transaction() {
    let (_d, s) = temp_store();
    let c1 = crawl_with(&s, "docs", &["/a", "/b"], &[]);
    let first = s.approve_page(c1, "/a").unwrap();
    assert!(!first.crawl_approved && first.crawl.status == CrawlStatus::Reviewing);
    let last = s.approve_page(c1, "/b").unwrap();
    assert!(last.crawl_approved && last.crawl.status == CrawlStatus::Approved);
    assert_eq!(s.crawl(c1).unwrap().unwrap().status, CrawlStatus::Approved);

    // An older crawl whose pages all get approved stays in review: approving it whole would move
    // the baselines of its other pages back.
    let old = crawl_with(&s, "docs", &["/a", "/b"], &[]);
    let new = crawl_with(&s, "docs", &["/a"], &[]);
    s.approve_crawl(new).unwrap();
    s.restore_page(old, "/a").unwrap();
    let done = s.approve_page(old, "/b").unwrap();
    assert!(!done.crawl_approved, "{:?}", done.crawl.status);
    assert_eq!(from_crawl(&s, "docs")["/a"], old, "only the restored page moved back");
}

/// Serialisable outcomes only: a rejection racing the last page approval either wins (the crawl
/// is rejected and the page approval does not approve it) or loses (the crawl is approved and the
/// rejection refused), never both.
#[test]
fn rejecting_while_the_last_page_is_approved_is_one_or_the_other() {
    let (_d, s) = temp_store();
    for i in 0..60 {
        let c = crawl_with(&s, &format!("r{i}"), &["/a"], &[]);
        let barrier = Arc::new(Barrier::new(2));
        let (s1, b1) = (s.clone(), barrier.clone());
        let approve = std::thread::spawn(move || {
            b1.wait();
            s1.approve_page(c, "/a").unwrap()
        });
        let (s2, b2) = (s.clone(), barrier);
        let reject = std::thread::spawn(move || {
            b2.wait();
            s2.reject_crawl(c)
        });
        let approved = approve.join().unwrap();
        let rejected = reject.join().unwrap();
        let status = s.crawl(c).unwrap().unwrap().status;
        match (rejected.is_ok(), approved.crawl_approved) {
            (true, false) => assert_eq!(status, CrawlStatus::Rejected, "iteration {i}"),
            (false, true) => assert_eq!(status, CrawlStatus::Approved, "iteration {i}"),
            both => panic!("iteration {i}: reject ok / crawl approved = {both:?}, final status {status}"),
        }
    }
}

/// One store operation for a racing thread.
type StoreOp = dyn FnOnce(&Store) -> Result<(), StoreError> + Send;

/// Approvals (crawl and page) race retention on one file; afterwards every baseline's crawl and
/// artifacts (PNG and HTML) are still there.
#[test]
fn approvals_racing_retention_never_lose_a_baseline_artifact() {
    let (_d, s) = temp_store();
    let (mut won, mut lost, mut checked) = (0, 0, 0);
    for i in 0..80 {
        let site = format!("race{i}");
        let ids: Vec<u64> = (0..4).map(|_| crawl_with(&s, &site, &["/a", "/b"], &[])).collect();
        let barrier = Arc::new(Barrier::new(3));
        let spawn = |f: Box<StoreOp>| {
            let (s, b) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                f(&s)
            })
        };
        let (old, mid) = (ids[1], ids[2]);
        let threads = [
            spawn(Box::new(move |s| s.approve_crawl(old).map(|_| ()))),
            spawn(Box::new(move |s| s.approve_page(mid, "/b").map(|_| ()))),
            spawn(Box::new(move |s| s.apply_retention(&format!("race{i}"), 1).map(|_| ()))),
        ];
        for t in threads {
            match t.join().unwrap() {
                Ok(()) => won += 1,
                // Lost the race fairly: retention removed the crawl first, or the page approval
                // of the newer crawl made the crawl approval a step back.
                Err(StoreError::NoSuchCrawl { .. } | StoreError::OlderThanApproved { .. }) => lost += 1,
                Err(e) => panic!("iteration {i}: {e}"),
            }
        }
        for (key, b) in s.baselines(&site).unwrap() {
            assert!(
                s.crawl(b.crawl).unwrap().is_some(),
                "iteration {i}: {key}: crawl {} of its baseline is gone",
                b.crawl
            );
            assert!(s.blob(&b.png).unwrap().is_some(), "iteration {i}: {key}: baseline PNG gone");
            let html = b.html.expect("captured with HTML");
            assert!(s.blob(&html).unwrap().is_some(), "iteration {i}: {key}: baseline HTML gone");
            checked += 1;
        }
    }
    // Which side wins each race is up to the scheduler; only the outcome is asserted.
    eprintln!(
        "approval races: {won} operations went through, {lost} lost fairly, {checked} baselines checked"
    );
}

/// A store filled by `fill`, plus a config naming it (writes need the token in `token_env`).
fn project_with(
    token_env: &str,
    fill: fn(&Store) -> (u64, u64, u64),
) -> (TempProject, String, (u64, u64, u64)) {
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{token_env}\"\n[browser]\nsessions = 1\n\
         [[sites]]\nname = \"docs\"\nstart = \"http://127.0.0.1:1/docs/\"\n"
    ));
    let s = Store::open(&project.db_path()).unwrap();
    let ids = fill(&s);
    (project, cfg, ids)
}

#[tokio::test]
async fn cli_refuses_an_older_crawl_and_restores_it_on_request() {
    let (project, cfg, (_, c2, c3)) = project_with("SITEDIFF_APPROVAL_CLI_TOKEN", history);
    let c2s = c2.to_string();
    let out = run_sitediff(&["approve", "docs", "--crawl", &c2s, "--config", &cfg]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "cannot approve crawl {c2}: crawl {c2} is older than the newest approval of site \"docs\" (crawl {c3})"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("sitediff approve docs --crawl {c2} --restore")), "{}", out.stderr);
    let s = Store::open(&project.db_path()).unwrap();
    assert_eq!(from_crawl(&s, "docs")["/a"], c3, "baselines unchanged");
    drop(s);

    let out = run_sitediff(&["approve", "docs", "--crawl", &c2s, "--restore", "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("crawl {c2} of docs restored: 3 baselines changed, 2 moved back")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("  /a: crawl {c3} -> crawl {c2}")), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("  /only2: (none) -> crawl {c2}")), "{}", out.stderr);
    let s = Store::open(&project.db_path()).unwrap();
    assert_eq!(from_crawl(&s, "docs")["/a"], c2);
    assert_eq!(from_crawl(&s, "docs")["/only3"], c3);
}

/// After a restore, a new crawl's pages and its structure name the same crawl (the issue: the page
/// said "Baseline from crawl #2" while the structure said against 3). An upload is a real crawl
/// that needs no browser.
#[tokio::test]
async fn after_a_restore_pages_and_structure_agree_on_the_baseline() {
    let (project, cfg, (_, c2, _)) = project_with("SITEDIFF_APPROVAL_UPLOAD_TOKEN", history);
    {
        let s = Store::open(&project.db_path()).unwrap();
        s.restore_crawl(c2).unwrap();
    }
    let shots = project.dir.path().join("shots");
    std::fs::create_dir(&shots).unwrap();
    for name in ["a", "b"] {
        std::fs::write(shots.join(format!("{name}.png")), solid_png(10, 10, [9, 9, 9, 255])).unwrap();
    }
    let out = run_sitediff(&["upload", "docs", shots.to_str().unwrap(), "--config", &cfg]).await;
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let s = Store::open(&project.db_path()).unwrap();
    let up = s.latest_crawl("docs").unwrap().unwrap();
    assert_eq!(up.kind, CrawlKind::Upload);
    let against = up.structure.as_ref().and_then(|st| st.against);
    assert_eq!(against, Some(c2), "the structure compares with the restored crawl");
    for p in s.pages(up.id).unwrap() {
        assert_eq!(p.baseline_crawl, against, "{}: page and structure disagree", p.key);
    }
}

fn api_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn api_post(d: &Daemon, path: &str, token: &str) -> (u16, serde_json::Value) {
    let r = api_client().post(d.url(path)).bearer_auth(token).send().await.unwrap();
    let code = r.status().as_u16();
    let text = r.text().await.unwrap();
    (code, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")))
}

fn moves(v: &serde_json::Value) -> Vec<(String, Option<u64>, u64)> {
    v["moved"]
        .as_array()
        .unwrap_or_else(|| panic!("no moved list: {v}"))
        .iter()
        .map(|m| (m["key"].as_str().unwrap().to_string(), m["from"].as_u64(), m["to"].as_u64().unwrap()))
        .collect()
}

/// The API and the UI of a real daemon: approve #3, then #2 -> 409 and nothing moves; a page of
/// #2 -> 409; restoring that page, then the crawl (after the UI's confirmation page) moves exactly
/// the listed baselines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_older_approvals_and_restores_what_it_lists() {
    const TOKEN: &str = "approval-test-token";
    const VAR: &str = "SITEDIFF_APPROVAL_API_TOKEN";
    let (project, cfg, (_, c2, c3)) = project_with(VAR, pending_history);
    let mut daemon = Daemon::start_with_env(&cfg, &[(VAR, TOKEN)]);
    let (code, v) = api_post(&daemon, &format!("/api/crawls/{c3}/approve"), TOKEN).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("approved")), "{v}");

    let (code, v) = api_post(&daemon, &format!("/api/crawls/{c2}/approve"), TOKEN).await;
    assert_eq!(code, 409, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains(&format!("is older than the newest approval of site \"docs\" (crawl {c3})")),
        "{msg}"
    );
    assert!(msg.contains("restore it"), "{msg}");
    let (code, v) = api_post(&daemon, &format!("/api/crawls/{c2}/pages/%2Fb/approve"), TOKEN).await;
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains(&format!("older than its baseline (from crawl {c3})")),
        "{v}"
    );
    // Restores are writes: no token, no restore.
    let r = api_client().post(daemon.url(&format!("/api/crawls/{c2}/restore"))).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let http = api_client();
    let (code, v) = api_post(&daemon, &format!("/api/crawls/{c2}/pages/%2Fb/restore"), TOKEN).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(moves(&v), [("/b".to_string(), Some(c3), c2)]);
    assert_eq!(v["page"]["approved"], true);

    // The UI: the crawl offers a restore (not an approval) and its confirmation lists the moves.
    let login = http.get(daemon.url("/login")).send().await.unwrap();
    let cookie = session_cookie(&login).expect("a session");
    let body = login.text().await.unwrap();
    let r = http
        .post(daemon.url("/login"))
        .header("cookie", &cookie)
        .header("origin", &daemon.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}&token={TOKEN}", csrf_of(&body)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "login");
    let authed = session_cookie(&r).expect("a logged-in session");
    let page = |path: String| {
        let (http, authed) = (http.clone(), authed.clone());
        let url = daemon.url(&path);
        async move {
            let r = http.get(url).header("cookie", authed).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            r.text().await.unwrap()
        }
    };
    let crawl_page = page(format!("/crawls/{c2}")).await;
    assert!(crawl_page.contains("id=\"restore-crawl\""), "{crawl_page}");
    assert!(!crawl_page.contains("id=\"approve-crawl\""), "an older crawl offers no approval");
    assert!(crawl_page.contains(&format!("Crawl #{c3} holds a newer approval")), "{crawl_page}");
    let page_view = page(format!("/crawls/{c2}/page?key=%2Fa")).await;
    assert!(page_view.contains("id=\"restore-page\""), "{page_view}");
    assert!(!page_view.contains("id=\"approve-page\""), "an older page offers no approval");
    let confirm = page(format!("/crawls/{c2}/restore")).await;
    for key in ["/a", "/only2"] {
        assert!(confirm.contains(&format!("data-key=\"{key}\"")), "{key} listed: {confirm}");
    }
    assert!(!confirm.contains("data-key=\"/b\""), "/b is restored already: {confirm}");
    assert!(!confirm.contains("data-key=\"/only3\""), "/only3 does not move: {confirm}");
    let r = http
        .post(daemon.url(&format!("/crawls/{c2}/restore")))
        .header("cookie", &authed)
        .header("origin", &daemon.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", csrf_of(&confirm)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let done = r.text().await.unwrap();
    assert!(done.contains("id=\"restore-result\""), "{done}");
    assert!(done.contains("2 baseline(s) moved"), "{done}");

    let (code, v) = api_post(&daemon, &format!("/api/crawls/{c2}/restore"), TOKEN).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(moves(&v), [], "restoring twice moves nothing");
    assert_eq!(v["crawl"]["status"], "approved");
    let (code, _) = daemon.terminate(std::time::Duration::from_secs(40));
    assert_eq!(code, Some(0), "{}", daemon.log());
    let log = daemon.log();
    assert!(log.contains("crawl restored as the baseline"), "the restore is logged: {log}");
    assert!(log.contains("page restored as the baseline"), "{log}");

    let s = Store::open(&project.db_path()).unwrap();
    let from = from_crawl(&s, "docs");
    let expected: BTreeMap<String, u64> =
        [("/a", c2), ("/b", c2), ("/c", c3), ("/only2", c2), ("/only3", c3)]
            .into_iter()
            .map(|(k, c)| (k.to_string(), c))
            .collect();
    assert_eq!(from, expected);
}
