//! The web server over real HTTP: JSON API reads and writes (bearer token), artifacts by hash,
//! the review UI (escaping of hostile crawled content, CSP, login, CSRF, same-origin), `/metrics`
//! through `promtool check metrics`, and `config/alerts.yml` through `promtool`.
//!
//! The store is a real redb file filled through the Store API with real PNGs; the scheduler is the
//! real one. Its sweeper gets a capturer without a browser: no test here reaches a capture (the
//! trigger test's site hangs in discovery); browser-driven UI tests live with the daemon tests.

use std::net::SocketAddr;
use std::sync::Arc;

use sitediff::capture::{Capture, CaptureError, CaptureRequest, Capturer};
use sitediff::config::Config;
use sitediff::diff::Rect;
use sitediff::metrics::Metrics;
use sitediff::scheduler::Scheduler;
use sitediff::store::{Blob, CrawlKind, CrawlStatus, Hash, PageChange, PageOutcome, PageRecord, Store};
use sitediff::sweep::Sweeper;
use sitediff::web::{self, WebState};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::helpers::{csrf_of, session_cookie, solid_png, FixtureServer, Response as FixtureResponse};

const TOKEN: &str = "t0ken-for-tests";
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; frame-ancestors 'none'";
/// Hostile crawled content: every view must show it escaped.
const XSS_KEY: &str = "/x<script>alert(1)</script>\"'.html";
const XSS_TITLE: &str = "<script>alert(\"title\")</script>'\"";
const XSS_ERROR: &str = "<img src=x onerror=alert(2)>";
const XSS_TEXT: &str = "&lt;script&gt;alert(3)&lt;/script&gt;";

/// A capturer for tests that never capture (see the module doc): every call fails.
struct NoBrowser;

impl Capturer for NoBrowser {
    async fn capture(&self, req: CaptureRequest) -> Result<Capture, CaptureError> {
        Err(CaptureError::Navigate { url: req.url.to_string(), reason: "no browser in this test".into() })
    }
}

fn page(key: &str, change: PageChange, png_hash: Option<Hash>, html: Option<Hash>) -> PageRecord {
    let mut p = PageRecord::failed(
        key.into(),
        format!("http://127.0.0.1:1/docs{key}"),
        PageOutcome::Ok,
        String::new(),
    );
    p.error = None;
    p.change = change;
    p.png = png_hash;
    p.html = html;
    p.width = 40;
    p.height = 30;
    p.http_status = Some(200);
    p.title = Some(format!("Title of {key}"));
    p
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    addr: SocketAddr,
    cancel: CancellationToken,
    old_png: Vec<u8>,
    new_png: Vec<u8>,
    new_html: Vec<u8>,
    _sites: Option<FixtureServer>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Crawl 1 (approved): `/`, `/changed.html`, the XSS page. Crawl 2 (reviewing): those three (two
/// changed), `/failed.html` (hostile error text) and `/new.html`.
fn fill_store(store: &Store) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let old_png = solid_png(40, 30, [255, 255, 255, 255]);
    let new_png = solid_png(40, 30, [200, 0, 0, 255]);
    let diff_png = solid_png(40, 30, [255, 0, 0, 255]);
    let old_html = b"<html><body><h1>Hello</h1><p>old words</p></body></html>".to_vec();
    let new_html =
        format!("<html><body><h1>Hello</h1><p>new words</p><p>{XSS_TEXT}</p></body></html>").into_bytes();
    let (oh, nh) = (Hash::of(&old_png), Hash::of(&new_png));
    let (ohtml, nhtml) = (Hash::of(&old_html), Hash::of(&new_html));

    let c1 = store.begin_crawl("docs", CrawlKind::Site, "http://127.0.0.1:1/docs/", None).unwrap();
    for key in ["/", "/changed.html", XSS_KEY] {
        store
            .put_page(
                c1.id,
                &page(key, PageChange::New, Some(oh), Some(ohtml)),
                &[Blob::new(&old_png), Blob::new(&old_html)],
            )
            .unwrap();
    }
    let mut r1 = store.crawl(c1.id).unwrap().unwrap();
    r1.status = CrawlStatus::Reviewing;
    r1.counts.pages = 3;
    r1.counts.new = 3;
    store.update_crawl(&r1).unwrap();
    store.approve_crawl(c1.id).unwrap();

    let c2 = store.begin_crawl("docs", CrawlKind::Site, "http://127.0.0.1:1/docs/", None).unwrap();
    let mut same = page("/", PageChange::Unchanged, Some(oh), Some(ohtml));
    same.distortion = Some(0.0);
    same.baseline_crawl = Some(c1.id);
    same.baseline_png = Some(oh);
    store.put_page(c2.id, &same, &[]).unwrap();
    for (key, d) in [("/changed.html", 0.25), (XSS_KEY, 0.5)] {
        let mut p = page(key, PageChange::Changed, Some(nh), Some(nhtml));
        p.distortion = Some(d);
        p.score = Some(d);
        p.baseline_crawl = Some(c1.id);
        p.baseline_png = Some(oh);
        p.diff = Some(Hash::of(&diff_png));
        p.diff_pixels = 300;
        p.regions = vec![Rect { x: 2, y: 3, width: 20, height: 10 }];
        if key == XSS_KEY {
            p.title = Some(XSS_TITLE.into());
            p.url = format!("http://127.0.0.1:1/docs{key}");
        }
        store
            .put_page(c2.id, &p, &[Blob::new(&new_png), Blob::new(&new_html), Blob::new(&diff_png)])
            .unwrap();
    }
    let mut failed = PageRecord::failed(
        "/failed.html".into(),
        "http://127.0.0.1:1/docs/failed.html".into(),
        PageOutcome::HttpError,
        XSS_ERROR.into(),
    );
    failed.http_status = Some(500);
    store.put_page(c2.id, &failed, &[]).unwrap();
    store.put_page(c2.id, &page("/new.html", PageChange::New, Some(nh), Some(nhtml)), &[]).unwrap();
    let mut r2 = store.crawl(c2.id).unwrap().unwrap();
    r2.status = CrawlStatus::Reviewing;
    r2.finished_at = Some(r2.started_at + 1000);
    r2.counts.pages = 5;
    r2.counts.changed = 2;
    r2.counts.unchanged = 1;
    r2.counts.failed = 1;
    r2.counts.new = 1;
    r2.max_distortion = 0.5;
    store.update_crawl(&r2).unwrap();
    (old_png, new_png, new_html)
}

/// Start the web server over a filled store; `hang_site` adds a site whose start URL never answers.
async fn start(token: Option<&str>, hang_site: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sitediff.redb");
    let mut cfg = format!(
        "[store]\npath = {:?}\n\n[[sites]]\nname = \"docs\"\nstart = \"http://127.0.0.1:1/docs/\"\nschedule = \"0 3 * * *\"\n",
        db.display().to_string()
    );
    let sites = if hang_site {
        let srv = FixtureServer::start().await;
        srv.set("/slow/", FixtureResponse::hang());
        cfg.push_str(&format!("\n[[sites]]\nname = \"slow\"\nstart = {:?}\n", srv.url("/slow/")));
        Some(srv)
    } else {
        None
    };
    let config = Arc::new(Config::parse(&cfg, &dir.path().join("sitediff.toml")).expect("config"));
    let store = Store::open(&db).unwrap();
    let (old_png, new_png, new_html) = fill_store(&store);
    let metrics = Metrics::new().unwrap();
    let cancel = CancellationToken::new();
    let sweeper =
        Arc::new(Sweeper::new(store.clone(), Arc::new(NoBrowser), None, Some(metrics.clone()), 1, 20));
    let (scheduler, handle) =
        Scheduler::new(config.clone(), sweeper, metrics.clone(), TaskTracker::new(), cancel.clone());
    tokio::spawn(scheduler.run());
    let state = WebState {
        config,
        store: store.clone(),
        metrics,
        scheduler: handle,
        token: token.map(str::to_string),
        browser: Arc::new(|| Box::pin(async { true })),
    };
    let listener = web::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(web::serve(state, listener, cancel.clone()));
    Fixture { _dir: dir, store, addr, cancel, old_png, new_png, new_html, _sites: sites }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        client().get(self.url(path)).send().await.unwrap()
    }

    async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.get(path).await;
        let code = r.status().as_u16();
        assert_eq!(header(&r, "content-type"), "application/json", "{path}");
        (code, serde_json::from_str(&r.text().await.unwrap()).unwrap())
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let mut req = client().post(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        let text = r.text().await.unwrap();
        (code, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")))
    }

    fn crawl_status(&self, id: u64) -> CrawlStatus {
        self.store.crawl(id).unwrap().unwrap().status
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn api_reads_sites_crawls_and_filtered_pages() {
    let f = start(None, false).await;
    let (code, v) = f.get_json("/api/sites").await;
    assert_eq!(code, 200);
    let docs = &v["sites"][0];
    assert_eq!(docs["name"], "docs");
    assert_eq!(docs["last_crawl"]["id"], 2);
    assert_eq!(docs["last_crawl"]["status"], "reviewing");
    assert_eq!(docs["pending_reviews"], 1);
    assert_eq!(docs["schedule"], "0 3 * * *");
    assert!(docs["next_run"].as_str().unwrap().ends_with("03:00:00Z"), "{docs}");

    let (code, v) = f.get_json("/api/sites/docs/crawls").await;
    assert_eq!(code, 200);
    let ids: Vec<u64> = v["crawls"].as_array().unwrap().iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [2, 1]);
    assert_eq!(v["crawls"][0]["needs_review"], true);
    assert_eq!(v["crawls"][1]["status"], "approved");
    let (code, v) = f.get_json("/api/sites/nope/crawls").await;
    assert_eq!(code, 404);
    assert!(v["error"].as_str().unwrap().contains("nope"));

    let (code, v) = f.get_json("/api/crawls/2").await;
    assert_eq!(code, 200);
    assert_eq!(v["total"], 5);
    let keys: Vec<&str> = v["pages"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, [XSS_KEY, "/changed.html", "/failed.html", "/new.html", "/"], "review order");
    assert_eq!(v["pages"][0]["png"], Hash::of(&f.new_png).to_hex());
    assert_eq!(v["pages"][0]["baseline_png"], Hash::of(&f.old_png).to_hex());

    let (_, v) = f.get_json("/api/crawls/2?filter=changed").await;
    assert_eq!((v["total"].as_u64(), v["pages"].as_array().unwrap().len()), (Some(2), 2));
    let (_, v) = f.get_json("/api/crawls/2?filter=failed").await;
    assert_eq!(v["pages"][0]["key"], "/failed.html");
    assert_eq!(v["pages"][0]["outcome"], "http_error");
    let (_, v) = f.get_json("/api/crawls/2?filter=new").await;
    assert_eq!(v["pages"][0]["key"], "/new.html");
    let (_, v) = f.get_json("/api/crawls/2?offset=1&limit=2").await;
    let keys: Vec<&str> = v["pages"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["/changed.html", "/failed.html"]);
    assert_eq!(v["next_offset"], 3);

    assert_eq!(f.get_json("/api/crawls/2?filter=bogus").await.0, 400);
    assert_eq!(f.get_json("/api/crawls/2?limit=-1").await.0, 400);
    assert_eq!(f.get_json("/api/crawls/999").await.0, 404);
    assert_eq!(f.get_json("/api/crawls/abc").await.0, 404);
    assert_eq!(f.get_json("/api/nothing").await.0, 404);
    // A write route with GET.
    assert_eq!(f.get_json("/api/crawls/2/approve").await.0, 405);
}

#[tokio::test]
async fn api_writes_need_the_token() {
    let f = start(Some(TOKEN), false).await;
    let bearer = format!("Bearer {TOKEN}");
    let (code, v) = f.post("/api/crawls/2/approve", &[]).await;
    assert_eq!(code, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("token"));
    let (code, _) = f.post("/api/crawls/2/approve", &[("authorization", "Bearer wrong")]).await;
    assert_eq!(code, 401);
    assert_eq!(f.crawl_status(2), CrawlStatus::Reviewing, "nothing changed without the token");
    // Page approval: key percent-encoded into one path segment.
    let path = format!("/api/crawls/2/pages/{}/approve", enc(XSS_KEY));
    assert_eq!(f.post(&path, &[]).await.0, 401);
    // A browser on another origin is refused even with the token.
    let (code, _) = f.post(&path, &[("authorization", &bearer), ("origin", "http://evil.example")]).await;
    assert_eq!(code, 403);
    let (code, v) = f.post(&path, &[("authorization", &bearer)]).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["page"]["key"], XSS_KEY);
    assert_eq!(v["page"]["approved"], true);
    assert_eq!(v["crawl"]["status"], "reviewing", "other pages still wait");
    assert_eq!(f.store.baseline("docs", XSS_KEY).unwrap().unwrap().png, Hash::of(&f.new_png));
    let missing = format!("/api/crawls/2/pages/{}/approve", enc("/nope.html"));
    assert_eq!(f.post(&missing, &[("authorization", &bearer)]).await.0, 404);

    let (code, v) = f.post("/api/crawls/2/approve", &[("authorization", &bearer)]).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "approved");
    assert_eq!(f.crawl_status(2), CrawlStatus::Approved);
    assert_eq!(f.store.baseline("docs", "/changed.html").unwrap().unwrap().crawl, 2);
    // An approved crawl cannot be rejected: 409.
    let (code, v) = f.post("/api/crawls/2/reject", &[("authorization", &bearer)]).await;
    assert_eq!(code, 409, "{v}");
    assert_eq!(f.post("/api/crawls/77/approve", &[("authorization", &bearer)]).await.0, 404);

    // Oversized bodies are refused.
    let r = client()
        .post(f.url("/api/crawls/2/approve"))
        .header("authorization", &bearer)
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
}

#[tokio::test]
async fn api_writes_without_a_token_and_auto_approval_of_the_last_page() {
    let f = start(None, false).await;
    let (code, v) = f.post("/api/crawls/2/reject", &[]).await;
    assert_eq!((code, v["status"].as_str()), (200, Some("rejected")));
    let (code, v) = f.post("/api/crawls/1/approve", &[]).await;
    assert_eq!(code, 200, "{v}");
    // Back to a crawl under review: approving its changed and new pages one by one approves it,
    // unless a page failed.
    let mut rec = f.store.crawl(2).unwrap().unwrap();
    rec.status = CrawlStatus::Reviewing;
    f.store.update_crawl(&rec).unwrap();
    for key in ["/changed.html", XSS_KEY, "/new.html"] {
        let (code, v) = f.post(&format!("/api/crawls/2/pages/{}/approve", enc(key)), &[]).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["crawl"]["status"], "reviewing", "the failed page keeps the crawl open");
    }
    let (code, _) = f.post(&format!("/api/crawls/2/pages/{}/approve", enc("/failed.html")), &[]).await;
    assert_eq!(code, 404, "a failed page has no capture to approve");
    // Without the failed page, the last approval settles the crawl.
    let c3 = f.store.begin_crawl("docs", CrawlKind::Site, "http://127.0.0.1:1/docs/", None).unwrap();
    let h = Hash::of(&f.new_png);
    f.store
        .put_page(c3.id, &page("/a", PageChange::Changed, Some(h), None), &[Blob::new(&f.new_png)])
        .unwrap();
    f.store.put_page(c3.id, &page("/b", PageChange::Unchanged, Some(h), None), &[]).unwrap();
    let mut r3 = f.store.crawl(c3.id).unwrap().unwrap();
    r3.status = CrawlStatus::Reviewing;
    r3.counts.changed = 1;
    f.store.update_crawl(&r3).unwrap();
    let (code, v) = f.post(&format!("/api/crawls/{}/pages/%2Fa/approve", c3.id), &[]).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["crawl"]["status"], "approved");
    assert_eq!(f.crawl_status(c3.id), CrawlStatus::Approved);
}

#[tokio::test]
async fn artifacts_by_hash_only() {
    let f = start(None, false).await;
    let r = f.get(&format!("/artifacts/{}", Hash::of(&f.new_png))).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "content-type"), "image/png");
    assert!(header(&r, "cache-control").contains("immutable"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), f.new_png.as_slice());
    // Captured HTML is never served as HTML.
    let r = f.get(&format!("/artifacts/{}", Hash::of(&f.new_html))).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(header(&r, "content-type").starts_with("text/plain"));
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    for bad in [
        "/artifacts/../../etc/passwd".to_string(),
        "/artifacts/..%2f..%2fetc%2fpasswd".to_string(),
        format!("/artifacts/{}", &Hash::of(&f.new_png).to_hex()[..63]),
        format!("/artifacts/{}0", Hash::of(&f.new_png)),
        format!("/artifacts/{}/x", Hash::of(&f.new_png)),
        format!("/artifacts/{}", "z".repeat(64)),
        format!("/artifacts/{}", Hash::of(b"never stored")),
        "/artifacts/".to_string(),
    ] {
        let r = f.get(&bad).await;
        assert_eq!(r.status().as_u16(), 404, "{bad}");
    }
    // Unnormalised targets straight on the socket (HTTP clients would clean them up).
    for raw in ["/artifacts/../../etc/passwd", "/artifacts/%2e%2e", "/artifacts/..%2F..%2Fetc%2Fpasswd"] {
        assert_eq!(raw_get_status(f.addr, raw).await, 404, "{raw}");
    }
}

/// `GET target` over a plain socket; the response status.
async fn raw_get_status(addr: SocketAddr, target: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Every HTML view: CSP header, and no hostile string unescaped.
fn assert_safe_html(path: &str, code: u16, csp: &str, body: &str) {
    assert_eq!(code, 200, "{path}: {body}");
    assert_eq!(csp, CSP, "{path}");
    for raw in ["<script>alert", "<img src=x", "alert(\"title\")</script>'\""] {
        assert!(!body.contains(raw), "{path} contains unescaped {raw:?}");
    }
    // The only scripts are our own file.
    assert_eq!(body.matches("<script").count(), 1, "{path}");
    assert!(!body.contains(" style=\""), "{path}: inline style");
}

async fn html(f: &Fixture, path: &str) -> String {
    let r = f.get(path).await;
    let code = r.status().as_u16();
    let csp = header(&r, "content-security-policy");
    let body = r.text().await.unwrap();
    assert_safe_html(path, code, &csp, &body);
    body
}

#[tokio::test]
async fn ui_escapes_crawled_content_everywhere() {
    let f = start(None, false).await;
    let dash = html(&f, "/").await;
    assert!(dash.contains("docs") && dash.contains("Crawl now"), "{dash}");
    html(&f, "/sites/docs").await;
    for filter in ["", "?filter=changed", "?filter=failed", "?filter=new"] {
        let body = html(&f, &format!("/crawls/2{filter}")).await;
        if filter.is_empty() || filter.contains("changed") {
            assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{filter}: key shown escaped");
            assert!(
                body.contains("&lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt;"),
                "{filter}: title escaped"
            );
        }
        if filter.contains("failed") {
            assert!(body.contains("&lt;img src=x onerror=alert(2)&gt;"), "error shown escaped");
        }
    }
    let page = html(&f, &format!("/crawls/2/page?key={}", enc(XSS_KEY))).await;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;'.html")
            || page.contains("&lt;script&gt;alert(1)&lt;/script&gt;\"'.html")
    );
    // Text change: the page's text mentions "<script>alert(3)</script>", shown escaped.
    assert!(page.contains("&lt;script&gt;alert(3)&lt;/script&gt;"), "text change");
    assert!(page.contains("old words") && page.contains("new words"));
    assert!(page.contains(&format!("/artifacts/{}", Hash::of(&f.old_png))), "baseline image");
    assert!(page.contains("<rect x=\"2\" y=\"3\" width=\"20\" height=\"10\""), "region box");
    assert!(page.contains("id=\"next-page\""), "j goes to the next page");
    html(&f, "/crawls/2/page?key=%2Ffailed.html&filter=failed").await;
    html(&f, "/login").await;
    // Errors are pages too, escaped.
    let r = f.get(&format!("/crawls/2/page?key={}", enc("<script>alert(9)</script>"))).await;
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(header(&r, "content-security-policy"), CSP);
    assert!(!r.text().await.unwrap().contains("<script>alert(9)"));
    // Static assets are served from the binary.
    let r = f.get("/static/app.js").await;
    assert_eq!((r.status().as_u16(), header(&r, "content-type").starts_with("text/javascript")), (200, true));
    assert!(r.text().await.unwrap().contains("keydown"));
    assert_eq!(f.get("/static/../Cargo.toml").await.status().as_u16(), 404);
}

async fn form_post(
    f: &Fixture,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
    origin: Option<&str>,
) -> reqwest::Response {
    let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let mut req =
        client().post(f.url(path)).header("content-type", "application/x-www-form-urlencoded").body(body);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn ui_login_csrf_and_same_origin() {
    let f = start(Some(TOKEN), false).await;
    let origin = format!("http://{}", f.addr);
    let r = f.get("/crawls/2").await;
    let cookie = session_cookie(&r).expect("a session cookie");
    let set = header(&r, "set-cookie");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let body = r.text().await.unwrap();
    assert!(!body.contains("Approve crawl"), "no write buttons before login");
    let login = f.get("/login").await;
    assert_eq!(login.status().as_u16(), 200);
    // The login form of this browser's session.
    let r = client().get(f.url("/login")).header("cookie", &cookie).send().await.unwrap();
    let csrf = csrf_of(&r.text().await.unwrap());

    // Not logged in: a valid CSRF token is not enough.
    let r = form_post(&f, "/crawls/2/approve", Some(&cookie), &[("csrf", &csrf)], Some(&origin)).await;
    assert_eq!(r.status().as_u16(), 401);
    // Wrong token, no CSRF token, foreign origin: refused.
    let r =
        form_post(&f, "/login", Some(&cookie), &[("csrf", &csrf), ("token", "nope")], Some(&origin)).await;
    assert_eq!(r.status().as_u16(), 401);
    let r = form_post(&f, "/login", Some(&cookie), &[("token", TOKEN)], Some(&origin)).await;
    assert_eq!(r.status().as_u16(), 403);
    let r = form_post(
        &f,
        "/login",
        Some(&cookie),
        &[("csrf", &csrf), ("token", TOKEN)],
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    let r = form_post(&f, "/login", Some(&cookie), &[("csrf", &csrf), ("token", TOKEN)], Some(&origin)).await;
    assert_eq!(r.status().as_u16(), 303);
    let authed = session_cookie(&r).expect("a new session on login");
    assert_ne!(authed, cookie, "the session id is rotated on login");

    let r = client().get(f.url("/crawls/2")).header("cookie", &authed).send().await.unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("Approve crawl"), "write buttons after login");
    let csrf2 = csrf_of(&body);
    // A POST without the CSRF token fails, so does one with the old session's token or another origin.
    let r = form_post(&f, "/crawls/2/approve", Some(&authed), &[], Some(&origin)).await;
    assert_eq!(r.status().as_u16(), 403);
    let r = form_post(&f, "/crawls/2/approve", Some(&authed), &[("csrf", &csrf)], Some(&origin)).await;
    assert_eq!(r.status().as_u16(), 403);
    let r =
        form_post(&f, "/crawls/2/approve", Some(&authed), &[("csrf", &csrf2)], Some("http://evil.example"))
            .await;
    assert_eq!(r.status().as_u16(), 403);
    let r = form_post(&f, "/crawls/2/approve", None, &[("csrf", &csrf2)], None).await;
    assert_eq!(r.status().as_u16(), 403, "no cookie");
    assert_eq!(f.crawl_status(2), CrawlStatus::Reviewing);

    // The page approval form works and redirects back to the page.
    let r = form_post(
        &f,
        "/crawls/2/page/approve",
        Some(&authed),
        &[("csrf", &csrf2), ("key", "/changed.html"), ("filter", "changed")],
        Some(&origin),
    )
    .await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(header(&r, "location"), "/crawls/2/page?key=%2Fchanged%2Ehtml&filter=changed");
    assert!(f.store.page(2, "/changed.html").unwrap().unwrap().approved);
    let r = form_post(&f, "/crawls/2/approve", Some(&authed), &[("csrf", &csrf2)], Some(&origin)).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(f.crawl_status(2), CrawlStatus::Approved);
    let body = client()
        .get(f.url("/crawls/2"))
        .header("cookie", &authed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("status-approved"));
    // A forged cookie (authed flag flipped) is not a session.
    let forged = cookie.replacen(".0.", ".1.", 1);
    let r = form_post(&f, "/crawls/2/reject", Some(&forged), &[("csrf", &csrf)], None).await;
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test]
async fn crawl_trigger_over_the_api() {
    let f = start(Some(TOKEN), true).await;
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(f.post("/api/sites/slow/crawl", &[]).await.0, 401);
    let (code, v) = f.post("/api/sites/slow/crawl", &[("authorization", &bearer)]).await;
    assert_eq!((code, v["status"].as_str()), (202, Some("started")), "{v}");
    // Its start page never answers, so the crawl is still running.
    let (code, v) = f.post("/api/sites/slow/crawl", &[("authorization", &bearer)]).await;
    assert_eq!(code, 409, "{v}");
    let (code, _) = f.post("/api/sites/nope/crawl", &[("authorization", &bearer)]).await;
    assert_eq!(code, 404);
    let (_, v) = f.get_json("/api/sites").await;
    let slow = v["sites"].as_array().unwrap().iter().find(|s| s["name"] == "slow").unwrap().clone();
    assert_eq!(slow["busy"], true, "{slow}");
}

#[tokio::test]
async fn metrics_pass_promtool_and_track_reviews() {
    let f = start(None, false).await;
    let text = f.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("sitediff_review_pending_crawls{site=\"docs\"} 1"), "{text}");
    promtool(&["check", "metrics"], Some(&text));
    assert_eq!(f.post("/api/crawls/2/approve", &[]).await.0, 200);
    let text = f.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("sitediff_review_pending_crawls{site=\"docs\"} 0"), "{text}");
}

/// Run promtool; panics with its output when it fails.
fn promtool(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{all}");
    all
}

#[test]
fn alert_rules_pass_promtool() {
    let out = promtool(&["check", "rules", "config/alerts.yml"], None);
    assert!(out.contains("SUCCESS: 5 rules found"), "{out}");
    promtool(&["test", "rules", "config/alerts_test.yml"], None);
}

#[tokio::test]
async fn crawl_view_paging_at_2000_pages() {
    let f = start(None, false).await;
    const PAGES: usize = 2000;
    let c = f.store.begin_crawl("docs", CrawlKind::Site, "http://127.0.0.1:1/docs/", None).unwrap();
    let h = Hash::of(&f.new_png);
    for i in 0..PAGES {
        let mut p = page(&format!("/p{i:04}.html"), PageChange::Changed, Some(h), None);
        p.distortion = Some((i % 997) as f64 / 1000.0);
        f.store.put_page(c.id, &p, &[]).unwrap();
    }
    let mut rec = f.store.crawl(c.id).unwrap().unwrap();
    rec.status = CrawlStatus::Reviewing;
    rec.counts.pages = PAGES as u32;
    rec.counts.changed = PAGES as u32;
    f.store.update_crawl(&rec).unwrap();

    let t0 = std::time::Instant::now();
    let first = html(&f, &format!("/crawls/{}", c.id)).await;
    let cold = t0.elapsed();
    assert!(first.contains("1–50 of 2000"), "pager");
    assert!(first.contains("/p0996.html"), "largest distortion first");
    let t1 = std::time::Instant::now();
    let last = html(&f, &format!("/crawls/{}?offset=1950", c.id)).await;
    let warm = t1.elapsed();
    assert!(last.contains("1951–2000 of 2000"));
    let (_, v) = f.get_json(&format!("/api/crawls/{}?offset=1999", c.id)).await;
    assert_eq!(v["pages"].as_array().unwrap().len(), 1);
    assert_eq!(v["next_offset"], serde_json::Value::Null);
    eprintln!("crawl view at {PAGES} pages: first request {cold:?} (sorts and caches), later page {warm:?}");
}

/// The daemon's crawl `n` of `site`, once it is no longer running (polls the API).
async fn wait_crawl_done(base: &str, site: &str, n: u64) -> serde_json::Value {
    let url = format!("{base}/api/sites/{site}/crawls");
    crate::helpers::wait_for(std::time::Duration::from_secs(120), "the crawl to finish", || {
        let url = url.clone();
        async move {
            let (_, body) = crate::helpers::http_get(&url).await;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let c = v["crawls"].as_array()?.first()?.clone();
            (c["id"].as_u64() == Some(n) && c["status"] != "running").then_some(c)
        }
    })
    .await
}

async fn api_post(base: &str, path: &str, token: &str) -> (u16, serde_json::Value) {
    let r = client()
        .post(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, serde_json::from_str(&r.text().await.unwrap()).unwrap())
}

async fn press(c: &fantoccini::Client, key: char) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    c.perform_actions(keys).await.unwrap();
}

/// The whole review loop in headless Chromium over WebDriver against `sitediff serve`: two crawls
/// started through the API (the second finds one changed page), then in the browser: dashboard,
/// log in, open the crawl, `j` + Enter opens the changed page, `a` approves it, and the crawl is
/// shown approved (its only pending page was approved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_in_headless_chromium() {
    use fantoccini::Locator;
    use sitediff::capture::driver::{find_chromedriver, ChromeDriver};
    use sitediff::capture::pool::capabilities;

    let srv = FixtureServer::start().await;
    let page = |title: &str, body: &str| {
        FixtureResponse::html(format!(
            "<!doctype html><title>{title}</title><body style='margin:0;font:16px sans-serif'>\
             <h1>{title}</h1>{body}<p><a href='p1.html'>1</a> <a href='p2.html'>2</a> <a href='p3.html'>3</a></p></body>"
        ))
    };
    srv.set("/s/", page("Home", "<p>welcome</p>"));
    srv.set("/s/p1.html", page("One", "<p>first</p>"));
    srv.set("/s/p2.html", page("Two", "<p>second</p>"));
    srv.set("/s/p3.html", page("Three", "<p>third</p>"));
    let project = crate::helpers::TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SITEDIFF_WEB_TEST_TOKEN\"\n[browser]\nsessions = 1\n\
         [[sites]]\nname = \"ui\"\nstart = \"{}\"\nviewport = {{ width = 640, height = 480 }}\n",
        srv.url("/s/")
    ));
    let mut daemon = crate::helpers::Daemon::start_with_env(&cfg, &[("SITEDIFF_WEB_TEST_TOKEN", TOKEN)]);
    let base = daemon.base.clone();

    assert_eq!(api_post(&base, "/api/sites/ui/crawl", "wrong").await.0, 401);
    let (code, v) = api_post(&base, "/api/sites/ui/crawl", TOKEN).await;
    assert_eq!(code, 202, "{v}");
    let first = wait_crawl_done(&base, "ui", 1).await;
    assert_eq!(
        (first["status"].as_str(), first["counts"]["new"].as_u64()),
        (Some("reviewing"), Some(4)),
        "{first}"
    );
    assert_eq!(api_post(&base, "/api/crawls/1/approve", TOKEN).await.0, 200);
    srv.set(
        "/s/p2.html",
        page(
            "Two &lt;changed&gt;",
            "<p>second, now with <b>different</b> words</p><div style='height:80px;background:#c00'></div>",
        ),
    );
    assert_eq!(api_post(&base, "/api/sites/ui/crawl", TOKEN).await.0, 202);
    let second = wait_crawl_done(&base, "ui", 2).await;
    assert_eq!(second["counts"]["changed"], 1, "exactly p2 changed: {second}");
    assert_eq!(second["counts"]["unchanged"], 3, "{second}");

    let cancel = CancellationToken::new();
    let driver = Arc::new(ChromeDriver::spawn(&find_chromedriver(None).unwrap(), &cancel).await.unwrap());
    let browser_cfg = crate::helpers::spawned_browser(1);
    let c = fantoccini::ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities(&browser_cfg, true))
        .connect(driver.url().as_str())
        .await
        .unwrap();
    fn wait(c: &fantoccini::Client) -> fantoccini::wait::Wait<'_> {
        c.wait().at_most(std::time::Duration::from_secs(20))
    }

    // Dashboard, read-only until logged in.
    c.goto(&format!("{base}/")).await.unwrap();
    let row = c.find(Locator::Css("tr[data-site='ui']")).await.unwrap();
    assert!(row.text().await.unwrap().contains("#2"));
    assert!(
        c.find(Locator::Css("form[action='/sites/ui/crawl']")).await.is_err(),
        "no write form before login"
    );
    c.find(Locator::Css("header a[href='/login']")).await.unwrap().click().await.unwrap();
    wait(&c).for_element(Locator::Css("#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
    c.find(Locator::Css("form.login button")).await.unwrap().click().await.unwrap();
    wait(&c).for_element(Locator::Css("form[action='/sites/ui/crawl'] button")).await.unwrap();

    // The crawl, then `j` + Enter opens the first page in review order: the changed one.
    c.find(Locator::Css("tr[data-site='ui'] a.crawl-link")).await.unwrap().click().await.unwrap();
    wait(&c).for_element(Locator::Css("ol.pages")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/crawls/2"));
    press(&c, 'j').await;
    press(&c, '\u{E007}').await; // Enter
    let key = wait(&c).for_element(Locator::Css("h1.page-key")).await.unwrap();
    assert_eq!(key.text().await.unwrap(), "/p2.html");
    assert!(c.find(Locator::Css(".facts .change-changed")).await.is_ok());
    assert!(c.find(Locator::Css("#shot-new svg.regions rect")).await.is_ok(), "changed-region boxes");
    let text = c.find(Locator::Css("#textdiff")).await.unwrap().text().await.unwrap();
    assert!(text.contains("Two <changed>") && text.contains("different"), "{text}");
    // `o` switches to the overlay slider.
    press(&c, 'o').await;
    assert!(c.find(Locator::Css("#compare")).await.unwrap().is_displayed().await.unwrap());
    assert!(!c.find(Locator::Css("#shots")).await.unwrap().is_displayed().await.unwrap());

    // `a` approves the page; it was the only pending one, so the crawl is approved.
    press(&c, 'a').await;
    wait(&c).for_element(Locator::Css("#page-approved")).await.unwrap();
    c.find(Locator::Css("#crawl-status .status-approved")).await.unwrap();
    press(&c, 'u').await;
    let status = wait(&c).for_element(Locator::Css("h1 #crawl-status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "approved");
    let (_, body) = crate::helpers::http_get(&format!("{base}/api/crawls/2")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["crawl"]["status"], "approved");

    c.close().await.unwrap();
    driver.shutdown().await;
    let (code, _) = daemon.terminate(std::time::Duration::from_secs(40));
    assert_eq!(code, Some(0), "{}", daemon.log());
}

/// Every route family answered by method: status, content type, security headers (`nosec`: none),
/// `WWW-Authenticate` (`+auth`), a new session cookie (`+cookie`); HTML always with CSP and no-store. The table was taken from the server before the web
/// layer was restructured (issue 14); it pins 404/405/401/403 behaviour, HEAD and unknown methods.
#[tokio::test]
async fn routes_answer_every_method_as_before() {
    let f = start(Some(TOKEN), false).await;
    let hash = Hash::of(&f.new_png).to_hex();
    let paths = [
        "/",
        "/login",
        "/logout",
        "/sites/docs",
        "/sites/docs/crawl",
        "/sites/%ff",
        "/crawls/2",
        "/crawls/abc",
        "/crawls/2/approve",
        "/crawls/2/reject",
        "/crawls/2/page?key=%2F",
        "/crawls/2/page/approve",
        "/nope",
        "/api/sites",
        "/api/sites/docs/crawls",
        "/api/sites/%ff/crawls",
        "/api/sites/docs/crawl",
        "/api/sites/docs/uploads",
        "/api/crawls/2",
        "/api/crawls/abc",
        "/api/crawls/abc/approve",
        "/api/crawls/2/approve",
        "/api/crawls/2/reject",
        "/api/crawls/2/pages/%2F/approve",
        "/api/nothing",
        "/api",
        "/artifacts/HASH",
        "/artifacts/zzz",
        "/artifacts/",
        "/static/app.css",
        "/static/app.js",
        "/static/nope.css",
        "/static/app.css/x",
        "/metrics",
        "/healthz",
        "/demo/index.html",
    ];
    let methods = ["GET", "HEAD", "POST", "PUT", "DELETE"];
    let mut table = String::new();
    for path in paths {
        let path = path.replace("HASH", &hash);
        let mut row = format!("{:<32}", path.replace(&hash, "HASH"));
        for m in methods {
            let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
            let r = client().request(method, f.url(&path)).send().await.unwrap();
            let ct = header(&r, "content-type");
            let kind = match ct.split(';').next().unwrap_or("") {
                "application/json" => "json",
                "text/html" => "html",
                "text/plain" => "text",
                "text/css" => "css",
                "text/javascript" => "js",
                "image/png" => "png",
                "" => "-",
                other => panic!("{m} {path}: content type {other}"),
            };
            let security = ["x-content-type-options", "referrer-policy", "x-frame-options"]
                .map(|h| !header(&r, h).is_empty());
            let mut marks = match security {
                [true, true, true] => "",
                [false, false, false] => " nosec",
                _ => " !sec",
            }
            .to_string();
            if kind == "html" {
                assert_eq!(header(&r, "content-security-policy"), CSP, "{m} {path}");
                assert_eq!(header(&r, "cache-control"), "no-store", "{m} {path}");
            }
            if !header(&r, "www-authenticate").is_empty() {
                marks.push_str(" +auth");
            }
            if session_cookie(&r).is_some() {
                marks.push_str(" +cookie");
            }
            row.push_str(&format!(" {m} {} {kind}{marks} |", r.status().as_u16()));
        }
        table.push_str(row.trim_end_matches(" |"));
        table.push('\n');
    }
    if table != ROUTE_TABLE {
        panic!("routes answer differently; got:\n{table}");
    }
}

/// What `routes_answer_every_method_as_before` expects (see there).
const ROUTE_TABLE: &str = "\
/                                GET 200 html +cookie | HEAD 200 html +cookie | POST 405 html +cookie | PUT 405 html +cookie | DELETE 405 html +cookie
/login                           GET 200 html +cookie | HEAD 200 html +cookie | POST 403 html +cookie | PUT 405 html +cookie | DELETE 405 html +cookie
/logout                          GET 405 html +cookie | HEAD 405 html +cookie | POST 403 html +cookie | PUT 405 html +cookie | DELETE 405 html +cookie
/sites/docs                      GET 200 html +cookie | HEAD 200 html +cookie | POST 405 html +cookie | PUT 405 html +cookie | DELETE 405 html +cookie
/sites/docs/crawl                GET 405 html +cookie | HEAD 405 html +cookie | POST 403 html +cookie | PUT 405 html +cookie | DELETE 405 html +cookie
/sites/%ff                       GET 400 html +cookie | HEAD 400 html +cookie | POST 400 html +cookie | PUT 400 html +cookie | DELETE 400 html +cookie
/crawls/2                        GET 200 html +cookie | HEAD 200 html +cookie | POST 405 html +cookie | PUT 405 html +cookie | DELETE 405 html +cookie
/crawls/abc                      GET 404 html +cookie | HEAD 404 html +cookie | POST 404 html +cookie | PUT 404 html +cookie | DELETE 404 html +cookie
/crawls/2/approve                GET 405 html +cookie | HEAD 405 html +cookie | POST 403 html +cookie | PUT 405 html +cookie | DELETE 405 html +cookie
/crawls/2/reject                 GET 405 html +cookie | HEAD 405 html +cookie | POST 403 html +cookie | PUT 405 html +cookie | DELETE 405 html +cookie
/crawls/2/page?key=%2F           GET 200 html +cookie | HEAD 200 html +cookie | POST 405 html +cookie | PUT 405 html +cookie | DELETE 405 html +cookie
/crawls/2/page/approve           GET 405 html +cookie | HEAD 405 html +cookie | POST 403 html +cookie | PUT 405 html +cookie | DELETE 405 html +cookie
/nope                            GET 404 html +cookie | HEAD 404 html +cookie | POST 404 html +cookie | PUT 404 html +cookie | DELETE 404 html +cookie
/api/sites                       GET 200 json | HEAD 200 json | POST 405 json | PUT 405 json | DELETE 405 json
/api/sites/docs/crawls           GET 200 json | HEAD 200 json | POST 405 json | PUT 405 json | DELETE 405 json
/api/sites/%ff/crawls            GET 400 json | HEAD 400 json | POST 400 json | PUT 400 json | DELETE 400 json
/api/sites/docs/crawl            GET 405 json | HEAD 405 json | POST 401 json +auth | PUT 405 json | DELETE 405 json
/api/sites/docs/uploads          GET 405 json | HEAD 405 json | POST 401 json +auth | PUT 405 json | DELETE 405 json
/api/crawls/2                    GET 200 json | HEAD 200 json | POST 405 json | PUT 405 json | DELETE 405 json
/api/crawls/abc                  GET 404 json | HEAD 404 json | POST 404 json | PUT 404 json | DELETE 404 json
/api/crawls/abc/approve          GET 404 json | HEAD 404 json | POST 404 json | PUT 404 json | DELETE 404 json
/api/crawls/2/approve            GET 405 json | HEAD 405 json | POST 401 json +auth | PUT 405 json | DELETE 405 json
/api/crawls/2/reject             GET 405 json | HEAD 405 json | POST 401 json +auth | PUT 405 json | DELETE 405 json
/api/crawls/2/pages/%2F/approve  GET 405 json | HEAD 405 json | POST 401 json +auth | PUT 405 json | DELETE 405 json
/api/nothing                     GET 404 json | HEAD 404 json | POST 404 json | PUT 404 json | DELETE 404 json
/api                             GET 404 json | HEAD 404 json | POST 404 json | PUT 404 json | DELETE 404 json
/artifacts/HASH                  GET 200 png | HEAD 200 png | POST 405 text | PUT 405 text | DELETE 405 text
/artifacts/zzz                   GET 404 text | HEAD 404 text | POST 405 text | PUT 405 text | DELETE 405 text
/artifacts/                      GET 404 text | HEAD 404 text | POST 405 text | PUT 405 text | DELETE 405 text
/static/app.css                  GET 200 css | HEAD 200 css | POST 405 text | PUT 405 text | DELETE 405 text
/static/app.js                   GET 200 js | HEAD 200 js | POST 405 text | PUT 405 text | DELETE 405 text
/static/nope.css                 GET 404 text | HEAD 404 text | POST 404 text | PUT 404 text | DELETE 404 text
/static/app.css/x                GET 404 text | HEAD 404 text | POST 404 text | PUT 404 text | DELETE 404 text
/metrics                         GET 200 text nosec | HEAD 404 html +cookie | POST 404 html +cookie | PUT 404 html +cookie | DELETE 404 html +cookie
/healthz                         GET 200 json nosec | HEAD 404 html +cookie | POST 404 html +cookie | PUT 404 html +cookie | DELETE 404 html +cookie
/demo/index.html                 GET 404 html +cookie | HEAD 404 html +cookie | POST 404 html +cookie | PUT 404 html +cookie | DELETE 404 html +cookie
";

/// `sitediff upload SITE DIR --server URL`: the images go to a running server's upload API as
/// multipart/form-data with the bearer token; keys that need percent-encoding survive the trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_upload_to_a_server() {
    let f = start(Some(TOKEN), false).await;
    let project = tempfile::tempdir().unwrap();
    let cfg = project.path().join("sitediff.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ntoken_env = \"SITEDIFF_UPLOAD_TEST_TOKEN\"\n[store]\npath = {:?}\n\n\
             [[sites]]\nname = \"docs\"\nstart = \"http://127.0.0.1:1/docs/\"\n",
            project.path().join("unused.redb").display().to_string()
        ),
    )
    .unwrap();
    let dir = project.path().join("shots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("%2F.png"), &f.old_png).unwrap();
    std::fs::write(dir.join("changed.html.png"), &f.new_png).unwrap();
    std::fs::write(dir.join("search%3Fq%3D1 x%C3%A9.png"), &f.new_png).unwrap();
    let run = |token: &str| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitediff"));
        cmd.args(["upload", "docs"])
            .arg(&dir)
            .args(["--json", "--server", &f.url(""), "--config"])
            .arg(&cfg)
            .env_remove("SITEDIFF_CONFIG")
            .env("SITEDIFF_UPLOAD_TEST_TOKEN", token);
        cmd.output()
    };
    let out = run("wrong").await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    let out = run(TOKEN).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "one image changed\n{stderr}");
    let crawl: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(crawl["kind"], "upload");
    let counts = &crawl["counts"];
    assert_eq!(
        (counts["pages"].as_u64(), counts["changed"].as_u64(), counts["unchanged"].as_u64()),
        (Some(3), Some(1), Some(1)),
        "{crawl}"
    );
    let id = crawl["id"].as_u64().unwrap();
    let mut keys: Vec<String> = f.store.pages(id).unwrap().into_iter().map(|p| p.key).collect();
    keys.sort();
    assert_eq!(keys, ["/", "/changed.html", "/search?q=1 xé"]);
}
