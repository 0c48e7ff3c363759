//! Capture layer against real chromedriver + Chromium and pages served by `FixtureServer`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sitediff::capture::{BrowserPool, Capture, CaptureError, CaptureRequest, Capturer};
use sitediff::config::{BrowserConfig, Capacity, CaptureOptions, Transport, Viewport, WebDriverEndpoint};
use sitediff::crawl::links::Scope;
use sitediff::diff::{decode_png, Rect, RgbaImage};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::helpers::{children_of, solid_png, FixtureServer, Response};

/// Browser tests share 2 cores: run them one at a time.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    BROWSER.lock().await
}

fn browser_cfg(sessions: usize) -> BrowserConfig {
    BrowserConfig {
        webdriver: WebDriverEndpoint::Spawn,
        sessions,
        capacity: Capacity::Fixed,
        transport: Transport::Auto,
        node_devtools: true,
        session_timeout: Duration::from_secs(60),
        chromedriver: None,
        chromium: None,
        recycle_after: 200,
    }
}

fn options() -> CaptureOptions {
    CaptureOptions { page_timeout: Duration::from_secs(30), max_height: 30_000, ..CaptureOptions::default() }
}

/// A request whose site prefix is the URL's origin (`/`).
fn request(url: &str, width: u32, height: u32, options: CaptureOptions) -> CaptureRequest {
    let url = Url::parse(url).unwrap();
    let scope = Scope::new(&url.join("/").unwrap());
    CaptureRequest {
        site: "test".into(),
        url,
        scope,
        viewport: Viewport { width, height },
        options: Arc::new(options),
        expected_png: None,
        sweep_started: Instant::now(),
    }
}

/// A chromedriver of the test's own, for pools pointed at it as a remote endpoint.
async fn own_chromedriver(cancel: &CancellationToken) -> sitediff::capture::ChromeDriver {
    let path = sitediff::capture::find_chromedriver(None).unwrap();
    sitediff::capture::ChromeDriver::spawn(&path, cancel).await.unwrap()
}

/// One session against `endpoint` (`browser.webdriver`): WebDriver all the way (no DevTools
/// connection of our own, even to the loopback browser), nothing spawned.
fn remote_cfg(endpoint: &Url) -> BrowserConfig {
    BrowserConfig {
        webdriver: WebDriverEndpoint::Remote(endpoint.clone()),
        transport: Transport::WebDriver,
        node_devtools: true,
        ..browser_cfg(1)
    }
}

async fn pool(sessions: usize) -> BrowserPool {
    BrowserPool::start(&browser_cfg(sessions), CancellationToken::new()).await.expect("browser pool starts")
}

fn pixels(c: &Capture) -> RgbaImage {
    decode_png(&c.png, "capture").expect("capture is a PNG")
}

fn px(img: &RgbaImage, x: u32, y: u32) -> [u8; 4] {
    let i = ((y * img.width + x) * 4) as usize;
    [img.data[i], img.data[i + 1], img.data[i + 2], img.data[i + 3]]
}

const RED: [u8; 4] = [255, 0, 0, 255];
const BLUE: [u8; 4] = [0, 0, 255, 255];
const WHITE: [u8; 4] = [255, 255, 255, 255];

fn page(body: &str) -> Response {
    Response::html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>t</title>\
         <style>html,body{{margin:0;padding:0;background:#fff}}</style></head><body>{body}</body></html>"
    ))
}

#[tokio::test]
async fn viewport_width_and_height_are_exact() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set(
        "/vp",
        page(
            "<div style='width:100vw;height:100vh;background:#f00'></div>\
             <script>document.title = innerWidth + 'x' + innerHeight</script>",
        ),
    );
    let pool = pool(1).await;
    let c = pool.capture(request(&srv.url("/vp"), 1000, 700, options())).await.unwrap();
    assert_eq!(c.title.as_deref(), Some("1000x700"));
    assert_eq!((c.width, c.height), (1000, 700));
    let img = pixels(&c);
    assert_eq!(px(&img, 999, 699), RED);
    assert!(!c.truncated);
    // Another viewport on the same session.
    let c = pool.capture(request(&srv.url("/vp"), 412, 915, options())).await.unwrap();
    assert_eq!(c.title.as_deref(), Some("412x915"));
    assert_eq!((c.width, c.height), (412, 915));
    pool.shutdown().await;
}

const TALL: &str =
    "<div style='height:5990px;background:#f00'></div><div style='height:10px;background:#00f'></div>";

#[tokio::test]
async fn tall_page_is_captured_at_full_height() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/tall", page(TALL));
    let pool = pool(1).await;
    let c = pool.capture(request(&srv.url("/tall"), 800, 600, options())).await.unwrap();
    assert_eq!((c.width, c.height), (800, 6000));
    assert!(!c.truncated);
    let img = pixels(&c);
    assert_eq!(px(&img, 400, 10), RED);
    assert_eq!(px(&img, 400, 3000), RED);
    assert_eq!(px(&img, 400, 5995), BLUE);
    pool.shutdown().await;
}

#[tokio::test]
async fn page_taller_than_max_height_is_truncated() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/tall", page(TALL));
    let pool = pool(1).await;
    let opts = CaptureOptions { max_height: 2000, ..options() };
    let c = pool.capture(request(&srv.url("/tall"), 800, 600, opts)).await.unwrap();
    assert_eq!((c.width, c.height), (800, 2000));
    assert!(c.truncated);
    assert_eq!(px(&pixels(&c), 400, 1999), RED);
    pool.shutdown().await;
}

#[tokio::test]
async fn hide_selectors_hide_and_inject_css_applies() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set(
        "/hide",
        page(
            "<div class='ad' style='position:absolute;left:0;top:0;width:100px;height:100px;background:#f00'></div>\
             <div id='keep' style='position:absolute;left:200px;top:0;width:100px;height:100px;background:#f00'></div>\
             <div id='styled' style='position:absolute;left:400px;top:0;width:100px;height:100px'></div>",
        ),
    );
    let pool = pool(1).await;
    let opts = CaptureOptions {
        hide_selectors: vec![".ad".into()],
        inject_css: "#styled { background: #00f; }".into(),
        ..options()
    };
    let c = pool.capture(request(&srv.url("/hide"), 800, 600, opts)).await.unwrap();
    let img = pixels(&c);
    assert_eq!(px(&img, 50, 50), WHITE, "hidden element must not be painted");
    assert_eq!(px(&img, 250, 50), RED, "other elements stay visible");
    assert_eq!(px(&img, 450, 50), BLUE, "inject_css applies");
    pool.shutdown().await;
}

#[tokio::test]
async fn mask_rects_are_measured_in_page_coordinates() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set(
        "/mask",
        page(
            "<div style='height:3000px'></div>\
             <div class='m' style='position:absolute;left:100px;top:2500px;width:50px;height:60px'></div>\
             <div class='m' style='position:absolute;left:750px;top:10px;width:100px;height:20px'></div>\
             <div class='m' style='display:none'></div>\
             <span id='s' style='position:absolute;left:10.5px;top:20.25px;width:5px;height:5px;display:block'></span>",
        ),
    );
    let pool = pool(1).await;
    let opts = CaptureOptions { mask_selectors: vec![".m".into(), "#s".into(), ".none".into()], ..options() };
    let c = pool.capture(request(&srv.url("/mask"), 800, 600, opts)).await.unwrap();
    assert_eq!(c.height, 3000);
    assert_eq!(c.mask_rects.len(), 3);
    assert_eq!(c.mask_rects[0].selector, ".m");
    assert_eq!(
        c.mask_rects[0].rects,
        vec![Rect { x: 100, y: 2500, width: 50, height: 60 }, Rect { x: 750, y: 10, width: 50, height: 20 }]
    );
    assert_eq!(c.mask_rects[1].rects, vec![Rect { x: 10, y: 20, width: 6, height: 6 }]);
    assert!(c.mask_rects[2].rects.is_empty());
    pool.shutdown().await;
}

const RICH: &str = "<h1>Heading</h1><p>Some <b>text</b> with <a href='#'>a link</a>, \
    <input value='an input' autofocus> and a <button>button</button>.</p>\
    <ul><li>one</li><li>two</li></ul><div style='height:2000px;background:linear-gradient(#fff,#abc)'></div>";

#[tokio::test]
async fn same_page_twice_gives_identical_png_bytes() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/rich", page(RICH));
    srv.set("/other", page("<p>another page, another viewport</p>"));
    let pool = pool(1).await;
    let a = pool.capture(request(&srv.url("/rich"), 800, 600, options())).await.unwrap();
    // Something else in between on the same session, at another viewport.
    pool.capture(request(&srv.url("/other"), 1280, 900, options())).await.unwrap();
    let b = pool.capture(request(&srv.url("/rich"), 800, 600, options())).await.unwrap();
    pool.shutdown().await;
    // A fresh browser (the next crawl).
    let pool = self::pool(1).await;
    let c = pool.capture(request(&srv.url("/rich"), 800, 600, options())).await.unwrap();
    pool.shutdown().await;
    assert!(a.height > 2000);
    assert_eq!((a.width, a.height), (b.width, b.height));
    assert!(a.png == b.png, "screenshots of an unchanged page differ (same session)");
    assert!(a.png == c.png, "screenshots of an unchanged page differ (new browser)");
    assert!(a.html.contains("<h1>Heading</h1>"));
    assert_eq!(a.title.as_deref(), Some("t"));
    assert_eq!(a.final_url.as_str(), srv.url("/rich"));
}

/// The two ways a shot travels (the session's own DevTools connection, a WebDriver endpoint's
/// DevTools passthrough) give the same bytes: switching between them never shows as a change.
#[tokio::test]
async fn devtools_connection_and_webdriver_passthrough_give_identical_shots() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/rich", page(RICH));
    let pool = pool(1).await;
    let direct = pool.capture(request(&srv.url("/rich"), 800, 600, options())).await.unwrap();
    assert_eq!(pool.stats().devtools_sessions, 1, "{:?}", pool.stats());
    pool.shutdown().await;

    let cancel = CancellationToken::new();
    let driver = own_chromedriver(&cancel).await;
    let cfg = BrowserConfig {
        chromium: sitediff::capture::pool::browser_binary(&browser_cfg(1), true),
        ..remote_cfg(driver.url())
    };
    let pool = BrowserPool::start(&cfg, cancel.clone()).await.unwrap();
    let relayed = pool.capture(request(&srv.url("/rich"), 800, 600, options())).await.unwrap();
    assert_eq!(pool.stats().devtools_sessions, 0, "{:?}", pool.stats());
    pool.shutdown().await;
    driver.kill();
    assert_eq!((direct.width, direct.height), (relayed.width, relayed.height));
    assert!(direct.png == relayed.png, "the DevTools connection and the passthrough shots differ");
    assert_eq!(direct.html, relayed.html);
}

#[tokio::test]
async fn animated_page_twice_gives_identical_pixels() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set(
        "/anim",
        page(
            "<style>@keyframes spin { from { transform: rotate(0deg) } to { transform: rotate(360deg) } }\
             @keyframes fade { from { opacity: 0 } to { opacity: 1 } }\
             .spin { animation: spin 0.7s linear infinite; width:200px; height:40px; background:#f00; margin:80px }\
             .fade { animation: fade 3.3s linear infinite; width:100px; height:100px; background:#00f }\
             .tr { transition: width 5s; width: 10px; height: 30px; background: #0a0 }</style>\
             <div class='spin'></div><div class='fade'></div><div class='tr' id='tr'></div><div id='js'>js</div>\
             <script>setTimeout(() => { document.getElementById('tr').style.width = '400px' }, 10);\
             document.getElementById('js').animate([{ transform: 'translateX(0)' }, { transform: 'translateX(300px)' }],\
             { duration: 900, iterations: Infinity });</script>",
        ),
    );
    let pool = pool(1).await;
    let a = pool.capture(request(&srv.url("/anim"), 800, 600, options())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(333)).await;
    let b = pool.capture(request(&srv.url("/anim"), 800, 600, options())).await.unwrap();
    assert_eq!(pixels(&a), pixels(&b), "animations must be frozen");
    pool.shutdown().await;
}

#[tokio::test]
async fn two_sessions_capture_ten_pages_concurrently() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    for i in 0..10 {
        srv.set(&format!("/p{i}"), Response::html(format!("<title>page {i}</title><h1>Page {i}</h1>")));
    }
    let pool = pool(2).await;
    let caps = futures::future::join_all((0..10).map(|i| {
        let pool = pool.clone();
        let url = srv.url(&format!("/p{i}"));
        async move { pool.capture(request(&url, 640, 480, options())).await }
    }))
    .await;
    for (i, c) in caps.into_iter().enumerate() {
        let c = c.unwrap_or_else(|e| panic!("page {i}: {e}"));
        assert_eq!(c.title, Some(format!("page {i}")));
        assert_eq!(c.final_url.as_str(), srv.url(&format!("/p{i}")));
        assert!(c.html.contains(&format!("<h1>Page {i}</h1>")));
    }
    let stats = pool.stats();
    assert_eq!(stats.sessions_started, 2, "{stats:?}");
    assert_eq!(stats.sessions_replaced, 0, "{stats:?}");
    // Spawned chromedriver: both sessions' pages went over their own DevTools connection.
    assert_eq!(stats.devtools_sessions, 2, "{stats:?}");
    pool.shutdown().await;
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn killed_chromedriver_is_restarted_and_reaped() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/a", Response::html("<title>a</title>A"));
    let pool = pool(1).await;
    pool.capture(request(&srv.url("/a"), 640, 480, options())).await.unwrap();
    let pid = pool.driver_pid().await.expect("spawned chromedriver has a pid");
    assert!(process_exists(pid));
    // SAFETY: signalling a process this test's pool spawned.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    for i in 0..3 {
        let c = pool.capture(request(&srv.url("/a"), 640, 480, options())).await;
        let c = c.unwrap_or_else(|e| panic!("capture {i} after the kill: {e}"));
        assert_eq!(c.title.as_deref(), Some("a"));
    }
    let stats = pool.stats();
    assert_eq!(stats.driver_restarts, 1, "{stats:?}");
    let new_pid = pool.driver_pid().await.expect("restarted chromedriver");
    assert_ne!(new_pid, pid);
    assert!(!process_exists(pid), "the killed chromedriver was not reaped");
    pool.shutdown().await;
    assert!(!process_exists(new_pid), "chromedriver left running (or unreaped) after shutdown");
    assert_eq!(pool.driver_pid().await, None);
    let after = pool.capture(request(&srv.url("/a"), 640, 480, options())).await;
    assert!(matches!(after, Err(CaptureError::Closed)), "{after:?}");
}

#[tokio::test]
async fn missing_chromedriver_names_the_debian_packages() {
    let cfg =
        BrowserConfig { chromedriver: Some(PathBuf::from("/nonexistent/chromedriver")), ..browser_cfg(1) };
    let err = BrowserPool::start(&cfg, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, CaptureError::DriverNotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("`chromium`") && msg.contains("`chromium-driver`"), "{msg}");
    assert!(msg.contains("/nonexistent/chromedriver"), "{msg}");
}

#[tokio::test]
async fn page_that_alerts_on_load_is_captured() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set(
        "/alert",
        page(
            "<div style='width:100px;height:100px;background:#f00'></div>\
             <script>alert('hello'); document.title = 'after alert';</script>",
        ),
    );
    srv.set(
        "/confirm",
        page("<script>window.onload = () => { confirm('sure?'); alert('again'); };</script>B"),
    );
    let pool = pool(1).await;
    let c = pool.capture(request(&srv.url("/alert"), 640, 480, options())).await.unwrap();
    assert_eq!(c.title.as_deref(), Some("after alert"));
    assert_eq!(px(&pixels(&c), 50, 50), RED);
    let c = pool.capture(request(&srv.url("/confirm"), 640, 480, options())).await.unwrap();
    assert!(c.html.contains("B"));
    assert_eq!(pool.stats().sessions_replaced, 0);
    pool.shutdown().await;
}

#[tokio::test]
async fn navigation_timeout_then_session_still_usable() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/hang", Response::hang());
    srv.set("/ok", Response::html("<title>ok</title>fine"));
    let pool = pool(1).await;
    let opts = CaptureOptions { page_timeout: Duration::from_secs(2), ..options() };
    let err = pool.capture(request(&srv.url("/hang"), 640, 480, opts.clone())).await.unwrap_err();
    assert!(matches!(err, CaptureError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("/hang"), "{err}");
    let c = pool.capture(request(&srv.url("/ok"), 640, 480, opts)).await.unwrap();
    assert_eq!(c.title.as_deref(), Some("ok"));
    let stats = pool.stats();
    assert_eq!((stats.sessions_started, stats.sessions_replaced), (1, 0), "{stats:?}");
    pool.shutdown().await;
}

#[tokio::test]
async fn sessions_are_recycled_after_recycle_after_pages() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/r", Response::html("<title>r</title>r"));
    let cfg = BrowserConfig { recycle_after: 2, ..browser_cfg(1) };
    let pool = BrowserPool::start(&cfg, CancellationToken::new()).await.unwrap();
    for _ in 0..5 {
        pool.capture(request(&srv.url("/r"), 640, 480, options())).await.unwrap();
    }
    let stats = pool.stats();
    assert_eq!(stats.sessions_recycled, 2, "{stats:?}");
    assert_eq!(stats.sessions_started, 3, "{stats:?}");
    pool.shutdown().await;
}

#[tokio::test]
async fn cancelling_the_token_ends_a_hanging_capture() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/hang", Response::hang());
    let cancel = CancellationToken::new();
    let pool = BrowserPool::start(&browser_cfg(1), cancel.clone()).await.unwrap();
    let req = request(&srv.url("/hang"), 640, 480, options());
    let p = pool.clone();
    let task = tokio::spawn(async move { p.capture(req).await });
    // Cancel once the browser is waiting on the page (the server has its request).
    srv.wait_for_request("/hang").await;
    cancel.cancel();
    let res = task.await.unwrap();
    assert!(matches!(res, Err(CaptureError::Cancelled)), "{res:?}");
    pool.shutdown().await;
}

/// Throughput benchmark (not a pass/fail test): `cargo test --test it capture::throughput -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn throughput() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    const PAGES: usize = 30;
    for i in 0..PAGES {
        srv.set(
            &format!("/s{i}"),
            Response::html(format!("<title>{i}</title><h1>Small page {i}</h1><p>text</p>")),
        );
    }
    for sessions in [1, 2] {
        let pool = pool(sessions).await;
        // Warm up every session.
        futures::future::join_all((0..sessions).map(|i| {
            let pool = pool.clone();
            let url = srv.url(&format!("/s{i}"));
            async move { pool.capture(request(&url, 1280, 800, options())).await.unwrap() }
        }))
        .await;
        let t = Instant::now();
        let caps = futures::future::join_all((0..PAGES).map(|i| {
            let pool = pool.clone();
            let url = srv.url(&format!("/s{i}"));
            async move { pool.capture(request(&url, 1280, 800, options())).await }
        }))
        .await;
        let secs = t.elapsed().as_secs_f64();
        assert!(caps.iter().all(|c| c.is_ok()));
        println!("sessions={sessions}: {PAGES} pages in {secs:.2}s = {:.2} pages/s", PAGES as f64 / secs);
        pool.shutdown().await;
    }
}

/// A W3C-only WebDriver endpoint: forwards to a real chromedriver but answers `unknown command` to
/// chromedriver's DevTools passthrough (like a Grid that does not forward vendor commands). The
/// base path `/wd/hub/` is stripped. Returns the proxy's base URL and a counter of refused CDP calls.
async fn w3c_only_proxy(upstream: Url) -> (Url, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}/wd/hub/", listener.local_addr().unwrap())).unwrap();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = refused.clone();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { break };
            let (http, upstream, counter) = (http.clone(), upstream.clone(), counter.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut parts = head.split_whitespace();
                let (method, target) =
                    (parts.next().unwrap_or("GET").to_string(), parts.next().unwrap_or("/").to_string());
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = buf[head_end..head_end + len].to_vec();
                let (status, reply) = if target.contains("/goog/cdp/") {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let v = serde_json::json!({"value": {"error": "unknown command",
                        "message": "no DevTools here", "stacktrace": ""}});
                    (404, v.to_string().into_bytes())
                } else {
                    let path = target.strip_prefix("/wd/hub").unwrap_or(&target);
                    let url = upstream.join(path.trim_start_matches('/')).unwrap();
                    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                    let mut rb = http.request(m, url).header("Content-Type", "application/json");
                    if len > 0 {
                        rb = rb.body(body);
                    }
                    match rb.send().await {
                        Ok(r) => {
                            (r.status().as_u16(), r.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
                        }
                        Err(_) => return,
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    reply.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&reply).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (base, refused)
}

#[tokio::test]
async fn remote_w3c_only_endpoint_uses_window_resize_fallbacks() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set(
        "/tall",
        page(
            "<div style='height:2990px;background:#f00'></div><div style='height:10px;background:#00f'></div>\
             <script>document.title = innerWidth + 'x' + innerHeight</script>",
        ),
    );
    let cancel = CancellationToken::new();
    let driver = own_chromedriver(&cancel).await;
    let (proxy, refused) = w3c_only_proxy(driver.url().clone()).await;
    let cfg = remote_cfg(&proxy);
    let pool = BrowserPool::start(&cfg, cancel.clone()).await.unwrap();
    assert_eq!(pool.driver_pid().await, None, "remote mode spawns nothing");
    let c = pool.capture(request(&srv.url("/tall"), 800, 600, options())).await.unwrap();
    assert!(refused.load(std::sync::atomic::Ordering::SeqCst) > 0, "the CDP path was not even tried");
    assert_eq!(c.title.as_deref(), Some("800x600"), "viewport corrected for the browser chrome");
    assert_eq!((c.width, c.height), (800, 3000));
    let img = pixels(&c);
    assert_eq!(px(&img, 400, 100), RED);
    assert_eq!(px(&img, 400, 2995), BLUE);
    // The viewport is restored for the next page.
    let c = pool.capture(request(&srv.url("/tall"), 800, 600, options())).await.unwrap();
    assert_eq!(c.title.as_deref(), Some("800x600"));
    // W3C fallbacks: cookies through the cookie jar, off-prefix navigation still refused (guard
    // installed after load), DevTools-only options refused with a clear error.
    srv.set("/cookie", Response::html("<script>document.title = document.cookie</script>"));
    let opts = CaptureOptions {
        cookies: vec![sitediff::config::Cookie { name: "k".into(), value: "v".into() }],
        ..options()
    };
    let c = pool.capture(request(&srv.url("/cookie"), 800, 600, opts)).await.unwrap();
    assert_eq!(c.title.as_deref(), Some("k=v"));
    srv.set("/late", page("<script>setTimeout(() => location.href = '/x/late.html', 300)</script>"));
    srv.set("/x/late.html", page("<h1>trap</h1>"));
    let mut req = request(&srv.url("/late"), 800, 600, options());
    req.scope = Scope::new(&Url::parse(&srv.url("/")).unwrap().join("/late").unwrap());
    let c = pool.capture(req).await.unwrap();
    assert_eq!(c.blocked_navigations.len(), 1, "{:?}", c.blocked_navigations);
    assert!(!srv.hits().iter().any(|h| h == "/x/late.html"));
    let opts = CaptureOptions { block_urls: vec!["*/ads/*".into()], ..options() };
    let err = pool.capture(request(&srv.url("/tall"), 800, 600, opts)).await.unwrap_err();
    assert!(matches!(err, CaptureError::Unsupported { option: "block_urls", .. }), "{err:?}");
    let opts = CaptureOptions { headers: vec![("X-A".into(), "b".into())], ..options() };
    let err = pool.capture(request(&srv.url("/tall"), 800, 600, opts)).await.unwrap_err();
    assert!(matches!(err, CaptureError::SiteOnly { option: "headers", .. }), "{err:?}");
    pool.shutdown().await;
    driver.kill();
}

#[tokio::test]
async fn page_navigating_during_stabilisation_is_captured_on_its_final_document() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    // Page A leaves as soon as our stabilisation style lands in it.
    srv.set(
        "/a",
        Response::html(
            "<title>A</title><body style='margin:0;background:#f00'>A\
             <script>new MutationObserver(() => { if (document.querySelector('style[data-sitediff]')) \
             location.href = '/b'; }).observe(document.documentElement, { childList: true, subtree: true });\
             </script>",
        ),
    );
    srv.set(
        "/b",
        Response::html(
            "<title>B</title><body style='margin:0;background:#00f'><p id=b>B</p>\
             <div class=ad style='position:absolute;left:0;top:0;width:100px;height:100px;background:#f00'></div>",
        ),
    );
    let pool = pool(1).await;
    let opts = CaptureOptions { hide_selectors: vec![".ad".into()], ..options() };
    let c = pool.capture(request(&srv.url("/a"), 640, 480, opts)).await.unwrap();
    assert_eq!(c.final_url.as_str(), srv.url("/b"));
    assert_eq!(c.title.as_deref(), Some("B"));
    assert!(c.html.contains("<p id=\"b\">B</p>"), "{}", c.html);
    let img = pixels(&c);
    assert_eq!(px(&img, 600, 400), BLUE);
    assert_eq!(px(&img, 50, 50), BLUE, "the final document was not stabilised (hide_selectors)");
    pool.shutdown().await;
}

#[tokio::test]
async fn crashed_browser_session_is_replaced() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/a", Response::html("<title>a</title>A"));
    let pool = pool(1).await;
    pool.capture(request(&srv.url("/a"), 640, 480, options())).await.unwrap();
    let driver = pool.driver_pid().await.unwrap();
    let browsers: Vec<u32> =
        children_of(driver).into_iter().filter(|(_, c)| c.contains("chrom")).map(|(p, _)| p).collect();
    assert!(!browsers.is_empty(), "no browser process under chromedriver {driver}");
    for b in &browsers {
        // SAFETY: signalling the browser this test's pool started.
        unsafe { libc::kill(*b as libc::pid_t, libc::SIGKILL) };
    }
    let c = pool.capture(request(&srv.url("/a"), 640, 480, options())).await.unwrap();
    assert_eq!(c.title.as_deref(), Some("a"));
    let stats = pool.stats();
    assert_eq!(
        (stats.sessions_replaced, stats.driver_restarts, stats.sessions_started),
        (1, 0, 2),
        "{stats:?}"
    );
    assert_eq!(pool.driver_pid().await, Some(driver));
    pool.shutdown().await;
}

/// A chromedriver that still exists but no longer answers (here: stopped; after a kill: not yet
/// reaped) is restarted before a session is opened on it, not trusted because its process has not
/// exited. (Pages of open sessions go over DevTools and do not notice; a new session would wait
/// out the session start timeout.)
#[tokio::test]
async fn unresponsive_chromedriver_is_restarted() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/a", Response::html("<title>a</title>A"));
    // Every page on a new session.
    let cfg = BrowserConfig { recycle_after: 1, ..browser_cfg(1) };
    let pool = BrowserPool::start(&cfg, CancellationToken::new()).await.unwrap();
    let sweep = Instant::now();
    let req = || {
        let mut r = request(
            &srv.url("/a"),
            640,
            480,
            CaptureOptions { page_timeout: Duration::from_secs(3), ..options() },
        );
        r.sweep_started = sweep;
        r
    };
    pool.capture(req()).await.unwrap();
    let driver = pool.driver_pid().await.unwrap();
    // SAFETY: signalling the chromedriver this test's pool started.
    unsafe { libc::kill(driver as libc::pid_t, libc::SIGSTOP) };
    let c = pool.capture(req()).await;
    // SAFETY: as above (a no-op if the pool already killed it).
    unsafe { libc::kill(driver as libc::pid_t, libc::SIGCONT) };
    assert_eq!(c.unwrap().title.as_deref(), Some("a"));
    let stats = pool.stats();
    assert_eq!(stats.driver_restarts, 1, "{stats:?}");
    // Replaced before a session was opened on it: no attempt was spent waiting on it.
    assert_eq!(stats.page_retries, 0, "{stats:?}");
    assert_ne!(pool.driver_pid().await, Some(driver));
    pool.shutdown().await;
}

#[tokio::test]
async fn unreachable_remote_endpoint_is_a_session_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/wd/hub")).unwrap();
    let cfg = BrowserConfig { webdriver: WebDriverEndpoint::Remote(url), ..browser_cfg(1) };
    let err = BrowserPool::start(&cfg, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, CaptureError::Session { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}/wd/hub/")), "{err}");
}

#[tokio::test]
async fn lazy_images_below_the_fold_are_in_the_shot() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/red.png", Response::with_type(200, "image/png", solid_png(100, 100, RED)));
    srv.set(
        "/lazy",
        page(
            "<div style='height:5000px'></div>\
             <img loading=lazy src='/red.png' width=100 height=100 style='display:block'>\
             <div style='height:500px'></div>",
        ),
    );
    let pool = pool(1).await;
    let c = pool.capture(request(&srv.url("/lazy"), 800, 600, options())).await.unwrap();
    assert_eq!(c.height, 5600);
    assert_eq!(px(&pixels(&c), 50, 5050), RED, "lazy image missing from the full-page shot");
    pool.shutdown().await;
}

#[tokio::test]
async fn refused_connection_is_a_navigation_error_and_keeps_the_session() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/ok", Response::html("<title>ok</title>ok"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let pool = pool(1).await;
    let err =
        pool.capture(request(&format!("http://127.0.0.1:{port}/x"), 640, 480, options())).await.unwrap_err();
    assert!(matches!(err, CaptureError::Load { .. }), "{err:?}");
    assert!(err.to_string().contains("ERR_CONNECTION_REFUSED"), "{err}");
    let cause = std::error::Error::source(&err).expect("the browser's error is kept as the source");
    assert!(cause.to_string().contains("ERR_CONNECTION_REFUSED"), "{cause}");
    let c = pool.capture(request(&srv.url("/ok"), 640, 480, options())).await.unwrap();
    assert_eq!(c.title.as_deref(), Some("ok"));
    let stats = pool.stats();
    assert_eq!((stats.sessions_started, stats.sessions_replaced, stats.page_retries), (1, 0, 0), "{stats:?}");
    pool.shutdown().await;
}

/// A request for a site whose prefix is `/p/` on the fixture server.
fn scoped_request(srv: &FixtureServer, path: &str, options: CaptureOptions) -> CaptureRequest {
    let url = Url::parse(&srv.url(path)).unwrap();
    let scope = Scope::new(&Url::parse(&srv.url("/p/")).unwrap());
    CaptureRequest {
        site: "test".into(),
        url,
        scope,
        viewport: Viewport { width: 640, height: 480 },
        options: Arc::new(options),
        expected_png: None,
        sweep_started: Instant::now(),
    }
}

#[tokio::test]
async fn pages_cannot_navigate_the_browser_outside_the_prefix() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    let traps =
        ["/x/loc.html", "/x/meta.html", "/x/form.html", "/x/open.html", "/x/late.html", "/x/top.html"];
    for t in traps {
        srv.set(t, Response::html("<h1>trap</h1>"));
    }
    srv.set("/p/loc", page("<h1>loc</h1><script>location.href = '/x/loc.html'</script>"));
    srv.set("/p/meta", page("<meta http-equiv=refresh content='0;url=/x/meta.html'><h1>meta</h1>"));
    srv.set("/p/form", page("<form id=f action='/x/form.html'></form><script>f.submit()</script>"));
    srv.set(
        "/p/open",
        page("<script>window.open('/x/open.html'); window.open('/x/open.html', '_self')</script>"),
    );
    srv.set("/p/late", page("<script>setTimeout(() => location.replace('/x/late.html'), 50)</script>"));
    srv.set(
        "/p/frame",
        page("<iframe srcdoc=\"<script>top.location.href = '/x/top.html'</script>\"></iframe>"),
    );
    srv.set("/p/inside", page("<script>location.href = '/p/target'</script>"));
    srv.set("/p/target", Response::html("<title>target</title><h1>target</h1>"));
    let pool = pool(1).await;
    for p in ["/p/loc", "/p/meta", "/p/form", "/p/open", "/p/late", "/p/frame"] {
        let c = pool.capture(scoped_request(&srv, p, options())).await.unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(c.final_url.as_str(), srv.url(p), "{p}");
        if p != "/p/open" {
            assert_eq!(c.blocked_navigations.len(), 1, "{p}: {:?}", c.blocked_navigations);
            assert!(c.blocked_navigations[0].contains("/x/"), "{p}: {:?}", c.blocked_navigations);
        }
    }
    // Navigation inside the prefix is allowed.
    let c = pool.capture(scoped_request(&srv, "/p/inside", options())).await.unwrap();
    assert_eq!(c.final_url.as_str(), srv.url("/p/target"));
    assert_eq!(c.title.as_deref(), Some("target"));
    let hits = srv.hits();
    assert!(!hits.iter().any(|h| h.starts_with("/x/")), "the browser left the prefix: {hits:?}");
    assert_eq!(pool.stats().sessions_started, 1, "no extra window or session");
    pool.shutdown().await;
}

#[tokio::test]
async fn redirect_outside_the_prefix_is_a_capture_error_naming_it() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/p/away", Response::redirect("/x/landing.html"));
    srv.set("/x/landing.html", Response::html("<h1>elsewhere</h1>"));
    let pool = pool(1).await;
    let err = pool.capture(scoped_request(&srv, "/p/away", options())).await.unwrap_err();
    assert!(matches!(err, CaptureError::OffPrefix { .. }), "{err:?}");
    assert!(err.to_string().contains(&srv.url("/x/landing.html")), "{err}");
    // The session is kept: it is the page's fault.
    srv.set("/p/ok", Response::html("<title>ok</title>"));
    assert_eq!(
        pool.capture(scoped_request(&srv, "/p/ok", options())).await.unwrap().title.as_deref(),
        Some("ok")
    );
    assert_eq!(pool.stats().sessions_started, 1);
    pool.shutdown().await;
}

/// Site options reach the browser both ways DevTools commands travel: over the session's own
/// DevTools connection (a chromedriver we spawn) and through a WebDriver endpoint's DevTools
/// passthrough (`browser.webdriver` pointing at a chromedriver, as at a Grid of Chrome nodes).
/// Extra headers and basic auth need the session's own connection (they are kept to the site's
/// origin by intercepting each request): over the passthrough they are refused, naming the option.
#[tokio::test]
async fn site_options_reach_the_browser() {
    let _g = serial().await;
    let pool = pool(1).await;
    site_options_reach(&pool, true).await;
    assert_eq!(pool.stats().devtools_sessions, 1, "{:?}", pool.stats());
    pool.shutdown().await;

    let cancel = CancellationToken::new();
    let driver = own_chromedriver(&cancel).await;
    let cfg = remote_cfg(driver.url());
    let pool = BrowserPool::start(&cfg, cancel.clone()).await.unwrap();
    site_options_reach(&pool, false).await;
    assert_eq!(pool.stats().devtools_sessions, 0, "{:?}", pool.stats());
    pool.shutdown().await;
    driver.kill();
}

/// `own_devtools`: the pool's sessions have their own DevTools connection (headers and basic auth
/// are sent), else they go through a WebDriver endpoint (headers and basic auth are refused).
pub(crate) async fn site_options_reach(pool: &BrowserPool, own_devtools: bool) {
    use sitediff::config::{BasicAuth, Cookie};
    let html = "<!doctype html><html><head><title>t</title><style>html,body{margin:0;background:#fff}</style></head><body>\
        <div class=banner style='height:100px;background:#f00'></div>\
        <div id=box style='width:100px;height:100px;background:#fff'></div>\
        <img src='/p/ads/pixel.png' width=10 height=10>\
        <script>document.title = navigator.userAgent + '|' + document.cookie</script></body></html>";
    let srv = FixtureServer::start().await;
    srv.set("/p/opts", Response::html(html));
    srv.set("/p/ads/pixel.png", Response::with_type(200, "image/png", solid_png(10, 10, RED)));
    let base = srv.url("");
    let mut opts = CaptureOptions {
        headers: vec![("X-Env".into(), "staging".into())],
        cookies: vec![Cookie { name: "consent".into(), value: "yes".into() }],
        basic_auth: Some(BasicAuth { user: "me".into(), password: "pw".into() }),
        user_agent: Some("sitediff-test-agent".into()),
        block_urls: vec!["*/ads/*".into()],
        remove_selectors: vec![".banner".into()],
        inject_js: "document.getElementById('box').style.background = '#00f'".into(),
        ..options()
    };
    let url = Url::parse(&format!("{base}/p/opts")).unwrap();
    let request_with = |opts: &CaptureOptions| CaptureRequest {
        site: "test".into(),
        url: url.clone(),
        scope: Scope::new(&Url::parse(&format!("{base}/p/")).unwrap()),
        viewport: Viewport { width: 640, height: 480 },
        options: Arc::new(opts.clone()),
        expected_png: None,
        sweep_started: Instant::now(),
    };
    if own_devtools {
        srv.require_authorization("Basic bWU6cHc=");
    } else {
        let err = pool.capture(request_with(&opts)).await.unwrap_err();
        assert!(matches!(err, CaptureError::SiteOnly { option: "headers", .. }), "{err:?}");
        assert!(err.to_string().contains("sent only to the site's own origin"), "{err}");
        opts.headers.clear();
        let err = pool.capture(request_with(&opts)).await.unwrap_err();
        assert!(matches!(err, CaptureError::SiteOnly { option: "basic_auth", .. }), "{err:?}");
        opts.basic_auth = None;
        assert!(srv.requests().is_empty(), "a refused page was loaded: {:?}", srv.requests());
    }
    let c = pool.capture(request_with(&opts)).await.unwrap();
    assert_eq!(c.title.as_deref(), Some("sitediff-test-agent|consent=yes"));
    assert_eq!(c.final_url, url, "no credentials in the recorded URL");
    let img = pixels(&c);
    assert_eq!(px(&img, 50, 50), BLUE, "banner removed from layout and inject_js ran");
    let log = srv.requests();
    assert!(!log.iter().any(|(t, _)| t.contains("/ads/")), "a blocked URL was requested: {log:?}");
    let page_req = log
        .iter()
        .rev()
        .find(|(t, h)| t == "/p/opts" && (!own_devtools || h.iter().any(|(k, _)| k == "authorization")))
        .unwrap_or_else(|| panic!("no authorised page request: {log:?}"));
    let header = |name: &str| page_req.1.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(header("x-env"), own_devtools.then_some("staging"));
    assert_eq!(header("authorization"), own_devtools.then_some("Basic bWU6cHc="));
    assert_eq!(header("cookie"), Some("consent=yes"));
    assert_eq!(header("user-agent"), Some("sitediff-test-agent"));
    // A site without options on the same session gets none of them.
    let srv2 = FixtureServer::start().await;
    srv2.set("/p/none", Response::html("<title>none</title>"));
    let base2 = srv2.url("");
    let url2 = Url::parse(&format!("{base2}/p/none")).unwrap();
    let req2 = CaptureRequest {
        site: "other".into(),
        url: url2.clone(),
        scope: Scope::new(&Url::parse(&format!("{base2}/p/")).unwrap()),
        viewport: Viewport { width: 640, height: 480 },
        options: Arc::new(options()),
        expected_png: None,
        sweep_started: Instant::now(),
    };
    pool.capture(req2).await.unwrap();
    let log2 = srv2.requests();
    let (_, h) = log2.iter().find(|(t, _)| t == "/p/none").unwrap();
    assert!(!h.iter().any(|(k, _)| k == "x-env" || k == "authorization"), "{h:?}");
    let ua = h.iter().find(|(k, _)| k == "user-agent").map(|(_, v)| v.as_str()).unwrap_or("");
    assert!(ua.contains("Chrome"), "user agent override not removed: {ua}");
}

#[tokio::test]
async fn stable_page_takes_one_shot_and_unstable_page_is_recorded() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/stable", page("<h1>still</h1>"));
    // A worker keeps changing a box's colour: nothing in the page itself to freeze.
    srv.set(
        "/unstable",
        page(
            "<div style='height:200px'></div><div id=b style='margin-left:100px;width:50px;height:40px;background:#000'></div>\
             <script>const w = new Worker(URL.createObjectURL(new Blob(['let i = 0; setInterval(() => postMessage(i++), 15)'])));\
             w.onmessage = e => { b.style.background = 'rgb(' + (e.data * 37 % 256) + ',0,0)'; };</script>",
        ),
    );
    let pool = pool(1).await;
    let c = pool.capture(request(&srv.url("/stable"), 640, 480, options())).await.unwrap();
    // Nothing on it can move once frozen: one shot is proof (issue 19).
    assert_eq!(c.timing.shots, 1);
    assert_eq!((c.unstable_area, c.unstable_rect), (None, None));
    let c = pool.capture(request(&srv.url("/unstable"), 640, 480, options())).await.unwrap();
    assert_eq!(c.timing.shots, sitediff::capture::page::MAX_SHOTS);
    assert_eq!(c.unstable_area, Some(50 * 40), "{c:?}");
    assert_eq!(c.unstable_rect, Some(Rect { x: 100, y: 200, width: 50, height: 40 }));
    pool.shutdown().await;
}

#[tokio::test]
async fn timers_network_and_lazy_content_are_settled_before_the_shot() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set(
        "/slow.json",
        Response::with_type(200, "application/json", b"{\"c\":\"#00f\"}".to_vec())
            .delayed(Duration::from_millis(700)),
    );
    srv.set(
        "/settle",
        page(
            "<div id=carousel style='height:100px;background:#f00'></div>\
             <div id=fetched style='height:100px;background:#fff'></div>\
             <div style='height:3000px'></div><div id=lazy style='height:100px;background:#fff'></div>\
             <script>\
             let slide = 0; setInterval(() => { slide++; carousel.style.background = slide % 2 ? '#0f0' : '#00f'; }, 1500);\
             fetch('/slow.json').then(r => r.json()).then(j => { fetched.style.background = j.c; });\
             new IntersectionObserver(es => { if (es.some(e => e.isIntersecting)) lazy.style.background = '#f00'; }).observe(lazy);\
             </script>",
        ),
    );
    let pool = pool(1).await;
    let c = pool.capture(request(&srv.url("/settle"), 640, 480, options())).await.unwrap();
    let img = pixels(&c);
    assert_eq!(px(&img, 10, 50), RED, "the carousel moved (a long timer fired)");
    assert_eq!(px(&img, 10, 150), BLUE, "the shot did not wait for the request in flight");
    assert_eq!(px(&img, 10, 3250), RED, "lazy content was not triggered by scrolling");
    assert_eq!(c.unstable_area, None);
    pool.shutdown().await;
}

/// Scrolling through is skipped on pages where nothing could load content when seen; these pages
/// load it from scroll handlers (no IntersectionObserver), so they must still be scrolled. And a
/// request a script starts shortly after `load` is waited for (the quiet window applies to pages
/// with scripts, even short ones that are not scrolled).
#[tokio::test]
async fn scroll_handlers_and_late_requests_are_settled_before_the_shot() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/late.json", Response::with_type(200, "application/json", b"{\"c\":\"#00f\"}".to_vec()));
    let lazy = |hook: &str| {
        format!(
            "<div style='height:3000px'></div><div id=lazy style='height:100px;background:#fff'></div>\
             <script>\
             const reveal = () => {{ if (lazy.getBoundingClientRect().top < innerHeight) lazy.style.background = '#f00'; }};\
             {hook}\
             </script>"
        )
    };
    srv.set("/listener", page(&lazy("document.addEventListener('scroll', reveal);")));
    srv.set("/property", page(&lazy("window.onscroll = reveal;")));
    srv.set(
        "/late",
        page(
            "<div id=late style='height:100px;background:#fff'></div>\
             <script>addEventListener('load', () => setTimeout(() => fetch('/late.json').then(r => r.json())\
               .then(j => { late.style.background = j.c; }), 60));</script>",
        ),
    );
    let pool = pool(1).await;
    for path in ["/listener", "/property"] {
        let c = pool.capture(request(&srv.url(path), 640, 480, options())).await.unwrap();
        assert_eq!(px(&pixels(&c), 10, 3050), RED, "{path}: content shown by a scroll handler is missing");
        assert_eq!(c.unstable_area, None, "{path}");
    }
    let c = pool.capture(request(&srv.url("/late"), 640, 480, options())).await.unwrap();
    assert_eq!(px(&pixels(&c), 10, 50), BLUE, "the shot did not wait for the request started after load");
    pool.shutdown().await;
}

#[tokio::test]
async fn sticky_and_fixed_elements_appear_once() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set(
        "/sticky",
        page(
            "<header style='position:sticky;top:0;height:50px;background:#f00'></header>\
             <div style='height:100vh;background:#fff'></div><div style='height:3000px;background:#fff'></div>\
             <nav style='position:fixed;top:60px;left:0;width:20px;height:20px;background:#00f'></nav>",
        ),
    );
    let pool = pool(1).await;
    let c = pool.capture(request(&srv.url("/sticky"), 640, 480, options())).await.unwrap();
    assert_eq!(c.height, 50 + 480 + 3000, "100vh stays one viewport high in the full-page shot");
    let img = pixels(&c);
    let red_rows = (0..c.height).filter(|&y| px(&img, 300, y) == RED).count();
    let blue_rows = (0..c.height).filter(|&y| px(&img, 10, y) == BLUE).count();
    assert_eq!(red_rows, 50, "the sticky header is in the shot exactly once, at the top");
    assert_eq!(px(&img, 300, 0), RED);
    assert_eq!(blue_rows, 20, "the fixed element is in the shot exactly once");
    assert_eq!(px(&img, 10, 60), BLUE);
    pool.shutdown().await;
}

/// The pages of one sweep share the browser's HTTP cache like a visitor's browser; a later sweep
/// on the same (reused) session never sees what an earlier one cached.
#[tokio::test]
async fn a_sweep_shares_the_cache_and_a_later_sweep_never_sees_it() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    // Cacheable by every rule: explicit max-age and an old Last-Modified (heuristic freshness).
    let cacheable = |mut r: Response| {
        r.headers.push(("Cache-Control".into(), "public, max-age=86400".into()));
        r.headers.push(("Last-Modified".into(), "Mon, 01 Jan 2024 00:00:00 GMT".into()));
        r
    };
    let css = |color: &str| {
        cacheable(Response::with_type(
            200,
            "text/css",
            format!("html,body{{margin:0}}.box{{width:100vw;height:100vh;background:{color}}}").into_bytes(),
        ))
    };
    let doc = |title: &str| {
        cacheable(Response::html(format!(
            "<!doctype html><title>{title}</title><link rel=stylesheet href='/style.css'><div class=box></div>"
        )))
    };
    let hits = |path: &str| srv.hits().iter().filter(|h| *h == path).count();
    srv.set("/style.css", css("#f00"));
    srv.set("/a.html", doc("a"));
    srv.set("/b.html", doc("b"));
    let pool = pool(1).await;
    let at = |path: &str, sweep: Instant| {
        let mut r = request(&srv.url(path), 400, 300, options());
        r.sweep_started = sweep;
        r
    };

    let first = Instant::now();
    let c = pool.capture(at("/a.html", first)).await.unwrap();
    assert_eq!(px(&pixels(&c), 200, 150), RED);
    let c = pool.capture(at("/b.html", first)).await.unwrap();
    assert_eq!(px(&pixels(&c), 200, 150), RED);
    assert_eq!(hits("/style.css"), 1, "the second page of the sweep reused the cached stylesheet");

    // The site changes; the next sweep sees the new stylesheet and document, not the cached ones.
    srv.set("/style.css", css("#00f"));
    srv.set("/a.html", doc("a2"));
    let second = Instant::now();
    let c = pool.capture(at("/a.html", second)).await.unwrap();
    assert_eq!(c.title.as_deref(), Some("a2"), "the cached document was shown");
    assert_eq!(px(&pixels(&c), 200, 150), BLUE, "the cached stylesheet was shown");
    assert_eq!((hits("/a.html"), hits("/style.css")), (2, 2));
    // A page of the earlier sweep, still running, does not empty the newer cache again.
    pool.capture(at("/b.html", first)).await.unwrap();
    assert_eq!(hits("/style.css"), 2);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_shot_reproducing_the_baseline_needs_no_second_shot() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    // A (paused, empty) video could move: without a baseline the page is proven stable by two shots.
    srv.set("/same.html", page("<h1>Stable</h1><p>nothing moves here</p><video width=20 height=20></video>"));
    let pool = pool(1).await;
    let first = pool.capture(request(&srv.url("/same.html"), 500, 400, options())).await.unwrap();
    assert!(first.timing.shots >= 2, "without a baseline the page is proven stable by two shots");
    let mut req = request(&srv.url("/same.html"), 500, 400, options());
    req.expected_png = Some(*blake3::hash(&first.png).as_bytes());
    let again = pool.capture(req).await.unwrap();
    assert_eq!(again.timing.shots, 1);
    assert!(again.png == first.png);
    // A different expectation changes nothing about the rigour.
    let mut req = request(&srv.url("/same.html"), 500, 400, options());
    req.expected_png = Some([7; 32]);
    assert!(pool.capture(req).await.unwrap().timing.shots >= 2);
    pool.shutdown().await;
}

/// sitediff prefers Debian's `chromium-headless-shell` when it is installed: baselines taken with
/// `/usr/bin/chromium`: both must render a page alike.
#[tokio::test]
async fn headless_shell_and_full_chromium_render_alike() {
    let _g = serial().await;
    for bin in [sitediff::capture::pool::HEADLESS_SHELL, sitediff::capture::pool::DEFAULT_CHROMIUM] {
        assert!(std::path::Path::new(bin).is_file(), "{bin} is not installed (.ci/run installs it)");
    }
    let srv = FixtureServer::start().await;
    srv.set("/img.png", Response::with_type(200, "image/png", solid_png(120, 80, [30, 140, 200, 255])));
    let words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ".repeat(12);
    let rows: String = (0..30)
        .map(|i| format!("<tr><td>{i}</td><td>{}</td><td>{}</td></tr>", i * 37 % 101, &words[..i + 5]))
        .collect();
    srv.set(
        "/rich.html",
        Response::html(format!(
            "<!doctype html><html><head><meta charset=utf-8><title>rich</title><style>\
             body{{font:15px/1.4 sans-serif;margin:0;color:#222}}\
             header{{background:linear-gradient(90deg,#234,#4a7);color:#fff;padding:14px 24px;\
             box-shadow:0 3px 8px rgba(0,0,0,.4)}}\
             .card{{border:2px solid #ccd;border-radius:14px;margin:16px;padding:12px;transform:rotate(-1.5deg)}}\
             table{{border-collapse:collapse;margin:16px}}td{{border:1px solid #bbb;padding:3px 8px}}\
             h2{{font:italic bold 26px serif}}code{{font:13px monospace;background:#eee}}\
             </style></head><body><header><h1>Header &amp; ünïcödé — ✓</h1></header>\
             <div class=card><h2>Serif heading</h2><p>{words}</p><code>fn main() {{ }}</code>\
             <img src='/img.png' width=120 height=80 alt=''></div>\
             <svg width=300 height=120><circle cx=60 cy=60 r=50 fill='#e33' opacity=.7/>\
             <path d='M120 100 Q 180 0 280 100' stroke='#333' stroke-width=3 fill=none/></svg>\
             <table>{rows}</table><p style='opacity:.6'>{words}</p></body></html>"
        )),
    );
    let mut shots = Vec::new();
    for bin in [sitediff::capture::pool::HEADLESS_SHELL, sitediff::capture::pool::DEFAULT_CHROMIUM] {
        let cfg = BrowserConfig { chromium: Some(PathBuf::from(bin)), ..browser_cfg(1) };
        let pool = BrowserPool::start(&cfg, CancellationToken::new()).await.expect("browser pool starts");
        let c = pool.capture(request(&srv.url("/rich.html"), 900, 600, options())).await.unwrap();
        pool.shutdown().await;
        shots.push(pixels(&c));
    }
    let (shell, full) = (&shots[0], &shots[1]);
    assert_eq!((shell.width, shell.height), (full.width, full.height), "page sizes differ");
    assert!(shell.height > 1000, "the page is taller than the viewport: {}", shell.height);
    // Layout, colours, images, gradients, SVG, transforms and named fonts render identically. The
    // generic `monospace` family and some symbol glyphs are positioned a little differently (about
    // a hundred edge pixels here), which a page using them shows once when the binary changes.
    let out = sitediff::diff::compare(shell, full, &sitediff::diff::DiffOptions::default());
    let raw = shell.data.chunks(4).zip(full.data.chunks(4)).filter(|(a, b)| a != b).count() as u64;
    assert!(out.distortion < 1e-4, "distortion {} in {:?}", out.distortion, out.regions);
    assert!(raw < 3_000, "{raw} raw pixel differences");
    assert!(out.regions.iter().all(|r| r.width <= 120 && r.height <= 30), "{:?}", out.regions);
}

/// Issue 19: one shot is proof of stability when nothing on the page can move once frozen (a
/// clock read or a held timer does not move it); a page with media, a frame or an image still
/// loading gets shots until two agree. Every capture carries its fingerprint inputs.
#[tokio::test]
async fn still_pages_need_one_shot_and_moving_ones_two() {
    let _g = serial().await;
    let srv = FixtureServer::start().await;
    srv.set("/img.png", Response::with_type(200, "image/png", solid_png(40, 40, [0, 0, 255, 255])));
    srv.set("/still", page("<h1>still</h1><img src='/img.png' width=40 height=40>"));
    srv.set(
        "/clock",
        page("<p id=t></p><script>t.textContent = new Date().getFullYear(); setInterval(() => {}, 50);</script>"),
    );
    srv.set("/media", page("<video width=40 height=30></video>"));
    srv.set("/frame", page("<iframe src='/still' width=200 height=100></iframe>"));
    let pool = pool(1).await;
    let shoot = |path: &str| pool.capture(request(&srv.url(path), 800, 600, options()));

    let still = shoot("/still").await.unwrap();
    assert_eq!(still.timing.shots, 1, "nothing can move: one shot");
    let inputs = still.inputs.expect("DevTools sessions record fingerprint inputs");
    assert!(inputs.dynamic.is_empty(), "{:?}", inputs.dynamic);
    assert!(
        inputs.resources.iter().any(|r| r.url.ends_with("/img.png") && r.status == Some(200)),
        "{inputs:?}"
    );
    assert!(inputs.environment.is_some_and(|e| !e.browser.is_empty()));

    let clock = shoot("/clock").await.unwrap();
    assert_eq!(clock.timing.shots, 1, "frozen timers and a clock read do not move the page");
    let dynamic = clock.inputs.unwrap().dynamic;
    assert!(dynamic.contains(&"clock".to_string()) && dynamic.contains(&"timer".to_string()), "{dynamic:?}");

    for path in ["/media", "/frame"] {
        let c = shoot(path).await.unwrap();
        assert!(c.timing.shots >= 2, "{path}: could move: shots until two agree");
        assert!(!c.inputs.unwrap().dynamic.is_empty(), "{path}");
    }
    pool.shutdown().await;
}
