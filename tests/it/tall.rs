//! Tall pages (issue 17): a 100,000-px page captured whole in tiles (every row where it belongs, a
//! sticky header once), a change at y = 95,000 flagged there, an unchanged re-crawl unchanged, the
//! CLI's peak RSS bounded; a page over a small `max_height` fails as `truncated` in the exit code,
//! `crawl --json`, the API, the crawl view and `/metrics`; and captures equal to playwright-core's
//! `fullPage` screenshots of the same pages (short, 20,000 px, 100,000 px, sticky header, lazy
//! images) pixel for pixel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sitediff::capture::{BrowserPool, Capture, CaptureRequest, Capturer};
use sitediff::config::{BrowserConfig, CaptureOptions, Viewport};
use sitediff::crawl::links::Scope;
use sitediff::diff::{exact_difference, PngRows};
use sitediff::store::Store;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::helpers::{
    http_get, metric_value, npm_tool, post_json, run_sitediff, sitediff_bin, wait_for, Daemon, FixtureServer,
    Response, TempProject,
};

/// Browser tests share 2 cores: run them one at a time.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const HEADER: u32 = 40;
const ROW: u32 = 100;
const ROWS: u32 = 999;
const FOOTER: u32 = 60;
/// HEADER + ROWS * ROW + FOOTER.
const TALL: u32 = 100_000;
/// Peak RSS allowed to the sitediff process (browser excluded) through sweeps of the tall page.
const MAX_RSS_KB: u64 = 300 * 1024;

/// Row `i`'s colour: neighbours always differ.
fn row_rgb(i: u32) -> [u8; 3] {
    [(i % 256) as u8, ((i * 7 + 50) % 256) as u8, ((i * 13 + 100) % 256) as u8]
}

/// A page exactly [`TALL`] px high: a sticky header, [`ROWS`] rows of distinct colours each
/// labelled with its place, a footer; `extra` is added (absolutely placed elements).
fn tall_page(extra: &str) -> Response {
    let mut rows = String::new();
    for i in 0..ROWS {
        let [r, g, b] = row_rgb(i);
        rows.push_str(&format!(
            "<div class=r style='background:rgb({r},{g},{b})'>row {i} at y={}</div>",
            HEADER + i * ROW
        ));
    }
    Response::html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>tall</title><style>\
         html,body{{margin:0;padding:0;background:#fff;font:16px/20px sans-serif}}\
         header{{position:sticky;top:0;height:{HEADER}px;background:#123;color:#fff;z-index:2}}\
         .r{{height:{ROW}px}} footer{{height:{FOOTER}px}}</style></head><body>\
         <header>Sticky header</header>{rows}<footer>end</footer>{extra}</body></html>"
    ))
}

/// Every row of a capture of [`tall_page`] has its colour at its place (sampled right of the
/// labels, mid-row), and the sticky header is at the top only.
fn assert_rows_in_place(png: &[u8]) {
    let mut rows = PngRows::open(png, "capture").unwrap();
    assert_eq!((rows.width(), rows.height()), (1280, TALL as usize));
    let mut buf = vec![0u8; rows.width() * 4];
    let x = (rows.width() - 20) * 4;
    let header = [0x11, 0x22, 0x33];
    for y in 0..TALL {
        rows.read_into(&mut buf).unwrap();
        let px = [buf[x], buf[x + 1], buf[x + 2]];
        if y < HEADER {
            assert_eq!(px, header, "the sticky header at y={y}");
        } else if y < HEADER + ROWS * ROW && (y - HEADER) % ROW == ROW / 2 {
            let i = (y - HEADER) / ROW;
            assert_eq!(px, row_rgb(i), "row {i} at y={y} (a tile may be blank or misplaced)");
        } else if y >= HEADER && px == header {
            panic!("the sticky header repeated at y={y}");
        }
    }
}

fn browser_cfg() -> BrowserConfig {
    crate::helpers::spawned_browser(1)
}

fn request(url: &str, width: u32, height: u32) -> CaptureRequest {
    let url = Url::parse(url).unwrap();
    let scope = Scope::new(&url.join("/").unwrap());
    CaptureRequest {
        site: "tall".into(),
        url,
        scope,
        viewport: Viewport { width, height },
        options: Arc::new(CaptureOptions {
            page_timeout: Duration::from_secs(60),
            max_height: 150_000,
            ..CaptureOptions::default()
        }),
        expected_png: None,
        sweep_started: Instant::now(),
    }
}

async fn capture(pool: &BrowserPool, url: &str, width: u32, height: u32) -> Capture {
    pool.capture(request(url, width, height)).await.unwrap_or_else(|e| panic!("capture {url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100000_px_page_is_captured_whole_in_tiles() {
    let _g = BROWSER.lock().await;
    let srv = FixtureServer::start().await;
    srv.set("/tall.html", tall_page(""));
    let pool = BrowserPool::start(&browser_cfg(), CancellationToken::new()).await.unwrap();
    let c = capture(&pool, &srv.url("/tall.html"), 1280, 800).await;
    pool.shutdown().await;
    assert!(!c.truncated, "a max_height of 150,000 holds a 100,000-px page");
    assert_eq!((c.width, c.height, c.page_height), (1280, TALL, TALL));
    tokio::task::spawn_blocking(move || assert_rows_in_place(&c.png)).await.unwrap();
}

/// Run `sitediff ARGS` and return its exit code, stdout and peak RSS (VmHWM, kB) of the sitediff
/// process itself (its browser is another process).
async fn run_measured(args: &[&str]) -> (i32, String, String, u64) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut child = std::process::Command::new(sitediff_bin())
            .args(&args)
            .env_remove("SITEDIFF_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            out.read_to_string(&mut s).unwrap();
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            err.read_to_string(&mut s).unwrap();
            s
        });
        let status_path = format!("/proc/{}/status", child.id());
        let mut peak = 0u64;
        loop {
            // VmHWM is a high-water mark: any read after the peak sees it; it is gone once the
            // process is a zombie.
            let hwm = std::fs::read_to_string(&status_path).ok().and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                })
            });
            match hwm {
                Some(v) => peak = peak.max(v),
                None => break,
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let code = child.wait().unwrap().code().unwrap_or(-1);
        (code, out_t.join().unwrap(), err_t.join().unwrap(), peak)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_at_y_95000_is_flagged_there_and_an_unchanged_recrawl_is_unchanged() {
    let _g = BROWSER.lock().await;
    let srv = FixtureServer::start().await;
    srv.set("/t/tall.html", tall_page(""));
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[browser]\nsessions = 1\n[[sites]]\nname = \"tall\"\nstart = \"{}\"\nprefix = \"{}\"\n\
         viewport = {{ width = 1280, height = 800 }}\npage_timeout_ms = 60000\n",
        srv.url("/t/tall.html"),
        srv.url("/t/")
    ));
    let crawl = ["crawl", "tall", "--config", cfg.as_str(), "--json"];
    let mut peak = 0;
    let (code, out, err, rss) = run_measured(&crawl).await;
    peak = peak.max(rss);
    let first: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(
        (code, first["new"].as_u64(), first["failed"].as_u64()),
        (0, Some(1), Some(0)),
        "{first}\n{err}"
    );
    let approve = run_sitediff(&["approve", "tall", "--config", &cfg]).await;
    assert_eq!(approve.code, 0, "{}", approve.stderr);

    let (code, out, err, rss) = run_measured(&crawl).await;
    peak = peak.max(rss);
    let same: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (code, same["changed"].as_u64(), same["unchanged"].as_u64()),
        (0, Some(0), Some(1)),
        "{same}\n{err}"
    );

    // A 200 x 20 black bar at y = 95,000 (right of the labels).
    srv.set(
        "/t/tall.html",
        tall_page("<div style='position:absolute;left:600px;top:95000px;width:200px;height:20px;background:#000'></div>"),
    );
    let (code, out, err, rss) = run_measured(&crawl).await;
    peak = peak.max(rss);
    let changed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, changed["changed"].as_u64()), (1, Some(1)), "{changed}\n{err}");
    let page = &changed["page_results"][0];
    assert_eq!(
        (page["truncated"].as_bool(), page["distortion"].as_f64().map(|d| d > 0.0)),
        (Some(false), Some(true))
    );

    let store = Store::open_read_only(&project.db_path()).unwrap();
    let rec = store.pages(changed["crawl"].as_u64().unwrap()).unwrap().remove(0);
    assert_eq!(rec.height, TALL);
    assert_eq!(rec.diff_pixels, 200 * 20, "{rec:?}");
    let r = rec.regions[0];
    assert_eq!(rec.regions.len(), 1, "{:?}", rec.regions);
    assert_eq!((r.x, r.y, r.width, r.height), (600, 95_000, 200, 20));
    eprintln!("sitediff peak RSS through three crawls of a 100,000-px page: {} MB", peak / 1024);
    assert!(peak > 0 && peak < MAX_RSS_KB, "peak RSS {peak} kB");
}

const TOKEN: &str = "tall-test-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_over_max_height_fails_as_truncated_everywhere() {
    let _g = BROWSER.lock().await;
    let srv = FixtureServer::start().await;
    srv.set("/t/", Response::html("<title>i</title><a href='long.html'>long</a><p>short page</p>"));
    srv.set(
        "/t/long.html",
        Response::html(
            "<title>l</title><style>body{margin:0}</style><div style='height:6000px;background:#f00'></div>",
        ),
    );
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SITEDIFF_TALL_TEST_TOKEN\"\n[browser]\nsessions = 1\n\
         [[sites]]\nname = \"cut\"\nstart = \"{}\"\nmax_height = 2000\nviewport = {{ width = 400, height = 300 }}\n",
        srv.url("/t/")
    ));
    // The CLI: exit 1, the page failed with reason truncated in the JSON.
    let run = run_sitediff(&["crawl", "cut", "--config", &cfg, "--json"]).await;
    assert_eq!(run.code, 1, "a truncated page fails the run\n{}\n{}", run.stdout, run.stderr);
    let j = run.json();
    assert_eq!(
        (j["failed"].as_u64(), j["truncated"].as_u64(), j["new"].as_u64()),
        (Some(1), Some(1), Some(1)),
        "{j}"
    );
    let long = long_page(&j["page_results"]);
    assert_eq!(
        (long["truncated"].as_bool(), long["outcome"].as_str(), long["change"].as_str()),
        (Some(true), Some("truncated"), Some("failed")),
        "{long}"
    );
    assert!(long["error"].as_str().unwrap().contains("6000 px tall"), "{long}");

    // The daemon: the API's page record, the crawl view and the metric.
    let daemon = Daemon::start_with_env(&cfg, &[("SITEDIFF_TALL_TEST_TOKEN", TOKEN)]);
    let (code, body) = post_json(&daemon.url("/api/sites/cut/crawl"), Some(TOKEN)).await;
    assert_eq!(code, 202, "{body}");
    let url = daemon.url("/api/sites/cut/crawls");
    let crawl = wait_for(Duration::from_secs(120), "the crawl to finish", || {
        let url = url.clone();
        async move {
            let (_, text) = http_get(&url).await;
            let j: serde_json::Value = serde_json::from_str(&text).ok()?;
            let crawls = j["crawls"].as_array()?;
            (crawls.len() > 1 && crawls[0]["status"] != "running").then(|| crawls[0].clone())
        }
    })
    .await;
    let id = crawl["id"].as_u64().unwrap();
    let (_, text) = http_get(&daemon.url(&format!("/api/crawls/{id}"))).await;
    let listing: serde_json::Value = serde_json::from_str(&text).unwrap();
    let page = long_page(&listing["pages"]);
    assert_eq!(
        (page["truncated"].as_bool(), page["outcome"].as_str()),
        (Some(true), Some("truncated")),
        "{page}"
    );
    let (code, html) = http_get(&daemon.url(&format!("/crawls/{id}"))).await;
    assert_eq!(code, 200);
    assert!(html.contains("badge warn truncated"), "the crawl view flags the page: {html}");
    let (_, metrics) = http_get(&daemon.url("/metrics")).await;
    assert_eq!(
        metric_value(&metrics, "sitediff_pages_truncated_total{site=\"cut\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "sitediff_pages_captured_total{outcome=\"truncated\",site=\"cut\"}"),
        Some(1.0)
    );
}

/// The pages of the cross-check: (path, body).
fn cross_check_pages(srv: &FixtureServer) -> Vec<&'static str> {
    let block = |n: u32, h: u32| -> String {
        (0..n)
            .map(|i| {
                let [r, g, b] = row_rgb(i);
                format!("<div style='height:{h}px;background:rgb({r},{g},{b})'>block {i}: some text to render</div>")
            })
            .collect()
    };
    let doc = |body: String| {
        Response::html(format!(
            "<!doctype html><html><head><meta charset=utf-8><title>x</title><style>\
             body{{margin:0;font:16px/20px sans-serif}} header{{position:sticky;top:0;height:50px;background:#345;color:#fff}}\
             </style></head><body>{body}</body></html>"
        ))
    };
    srv.set("/x/short.html", doc(format!("<h1>Short</h1>{}", block(3, 100))));
    srv.set("/x/20k.html", doc(block(200, 100)));
    srv.set("/x/100k.html", doc(block(1000, 100)));
    srv.set("/x/sticky.html", doc(format!("<header>Sticky</header>{}", block(60, 100))));
    let imgs: String = (0..8)
        .map(|i| format!("<div style='height:1500px'>gap {i}</div><img src='img{i}.png' loading=lazy width=200 height=100 alt=''>"))
        .collect();
    srv.set("/x/lazy.html", doc(imgs));
    for i in 0..8u32 {
        let [r, g, b] = row_rgb(i * 31);
        srv.set(
            &format!("/x/img{i}.png"),
            Response::with_type(200, "image/png", crate::helpers::solid_png(200, 100, [r, g, b, 255])),
        );
    }
    vec!["short.html", "20k.html", "100k.html", "sticky.html", "lazy.html"]
}

/// playwright-core (`fullPage: true`, same Chromium, same viewport) against sitediff's captures of
/// the same pages: 0 differing pixels. What sitediff changes on purpose is applied on the
/// Playwright side too (its freezing style sheet: no animations, no caret, no scrollbars; lazy
/// images loaded, as sitediff's settle step does). The viewport is 800 wide: at 1280, Chromium's
/// one-shot full page (Playwright's) is blank below ~86,600 px of a 100,000-px page, which
/// sitediff's tiles are not (see `a_100000_px_page_is_captured_whole_in_tiles`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_equal_playwright_full_page_screenshots() {
    let _g = BROWSER.lock().await;
    let playwright = npm_tool("playwright-core");
    let srv = FixtureServer::start().await;
    let pages = cross_check_pages(&srv);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("shots.js");
    std::fs::write(&script, PLAYWRIGHT_SHOTS).unwrap();
    let urls: Vec<String> = pages.iter().map(|p| srv.url(&format!("/x/{p}"))).collect();
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&playwright)
        .arg(dir.path())
        .args(&urls)
        .env("FREEZE_CSS", sitediff::capture::scripts::page_css("", &[], &[]))
        .output()
        .await
        .expect("run node");
    assert!(out.status.success(), "playwright: {}", String::from_utf8_lossy(&out.stderr));

    let pool = BrowserPool::start(&browser_cfg(), CancellationToken::new()).await.unwrap();
    let mut results = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let c = capture(&pool, url, 800, 600).await;
        let theirs = std::fs::read(dir.path().join(format!("{i}.png"))).unwrap();
        let diff =
            tokio::task::spawn_blocking(move || exact_difference(&c.png, &theirs).map(|d| (c.height, d)))
                .await
                .unwrap()
                .unwrap();
        results.push((pages[i], diff));
    }
    pool.shutdown().await;
    eprintln!("{results:?}");
    let heights: Vec<u32> = results.iter().map(|(_, (h, _))| *h).collect();
    assert!(heights[1] >= 20_000 && heights[2] >= 100_000, "{heights:?}");
    for (page, (_, diff)) in results {
        assert_eq!(diff, None, "{page}: sitediff's capture differs from playwright's fullPage shot");
    }
}

const PLAYWRIGHT_SHOTS: &str = r#"
const [pw, outDir, ...urls] = process.argv.slice(2);
const { chromium } = require(pw);
(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync'] });
  const context = await browser.newContext({ viewport: { width: 800, height: 600 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  for (const [i, url] of urls.entries()) {
    await page.goto(url, { waitUntil: 'load' });
    await page.addStyleTag({ content: process.env.FREEZE_CSS });
    await page.evaluate(async () => {
      for (const img of document.querySelectorAll('img[loading=lazy]')) { img.loading = 'eager'; }
      await Promise.all([...document.images].map(img => img.complete ? null
        : new Promise(r => { img.onload = r; img.onerror = r; })));
    });
    await page.screenshot({ path: `${outDir}/${i}.png`, fullPage: true });
  }
  await browser.close();
})().catch(e => { console.error(e); process.exit(1); });
"#;

/// The `long.html` entry of a JSON list of pages (`crawl --json`'s or the API's).
fn long_page(pages: &serde_json::Value) -> serde_json::Value {
    let list = pages.as_array().expect("a list of pages");
    list.iter()
        .find(|p| p["key"].as_str().is_some_and(|k| k.ends_with("long.html")))
        .unwrap_or_else(|| panic!("no long.html in {pages}"))
        .clone()
}
