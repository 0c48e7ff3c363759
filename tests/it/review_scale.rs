//! Review at scale (issue 20): change groups (100 + 1), ignore areas saved through the API and
//! drawn in the UI with real pointer actions in headless Chromium (re-scoring without a new
//! crawl: counts, metrics, review state follow), `sitediff rescore`, the crawl view's image bytes
//! with very tall changed pages, JPEG and WebP in `sitediff diff`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sitediff::diff::{encode_png, RgbaImage};
use tokio_util::sync::CancellationToken;

use crate::helpers::{metric_value, run_sitediff, Daemon, TempProject};

const TOKEN: &str = "review-scale-token";
const TOKEN_ENV: &str = "SITEDIFF_REVIEW_SCALE_TOKEN";

/// An RGBA image from a per-pixel function.
fn image(width: u32, height: u32, f: impl Fn(u32, u32) -> [u8; 4]) -> RgbaImage {
    let mut data = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            data.extend_from_slice(&f(x, y));
        }
    }
    RgbaImage { width, height, data }
}

fn write_png(dir: &Path, name: &str, img: &RgbaImage) {
    std::fs::write(dir.join(name), encode_png(img).unwrap()).unwrap();
}

/// A project with one site `name` fed by uploads, the daemon's token in `TOKEN_ENV`.
fn project(name: &str, extra: &str) -> (TempProject, String) {
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\n\n\
         [[sites]]\nname = \"{name}\"\nstart = \"http://127.0.0.1:9/{name}/\"\n{extra}"
    ));
    (project, cfg)
}

/// Upload `dir` as a crawl of `site`; the JSON report and the exit code.
async fn upload(site: &str, dir: &Path, cfg: &str) -> (i32, serde_json::Value) {
    let out = run_sitediff(&["upload", site, dir.to_str().unwrap(), "--config", cfg, "--json"]).await;
    assert!(out.code == 0 || out.code == 1, "upload failed: {}", out.stderr);
    (out.code, out.json())
}

async fn approve(site: &str, cfg: &str) {
    let out = run_sitediff(&["approve", site, "--config", cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

async fn get_json(url: &str) -> serde_json::Value {
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET {url}");
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

/// Send a write with the token (or none); (status, JSON body or null).
async fn write(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = client().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(serde_json::to_vec(&b).unwrap());
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, serde_json::from_str(&r.text().await.unwrap()).unwrap_or(serde_json::Value::Null))
}

/// The crawl record and its pages' (key, change, approved), in key order, from the API.
async fn page_states(daemon: &Daemon, crawl: u64) -> (serde_json::Value, Vec<(String, String, bool)>) {
    let v = get_json(&daemon.url(&format!("/api/crawls/{crawl}"))).await;
    let mut pages: Vec<(String, String, bool)> = v["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_string(),
                p["change"].as_str().unwrap().to_string(),
                p["approved"].as_bool().unwrap(),
            )
        })
        .collect();
    pages.sort();
    (v["crawl"].clone(), pages)
}

async fn metric(daemon: &Daemon, series: &str) -> Option<f64> {
    let text = client().get(daemon.url("/metrics")).send().await.unwrap().text().await.unwrap();
    metric_value(&text, series)
}

/// A page of the group fixture: a grey header (rows 0..8), a white band, then a body colour of
/// its own; `header` paints the header, `spot` a block low on the page.
fn group_page(i: u32, header: [u8; 4], spot: bool) -> RgbaImage {
    image(64, 48, |x, y| match y {
        0..8 => header,
        8..16 => [255, 255, 255, 255],
        _ if spot && (40..44).contains(&y) && (20..30).contains(&x) => [0, 0, 0, 255],
        _ => [(i * 2) as u8, (255 - i * 2) as u8, 60, 255],
    })
}

/// A header changed the same way on 100 pages plus an unrelated change on one more: two change
/// groups (100 + 1), listed by the API and first in the crawl view; approving the big group
/// approves exactly those 100 pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_change_on_100_pages_is_one_group_and_one_approval() {
    let (project, cfg) = project("grp", "");
    let dir = project.dir.path().join("shots");
    std::fs::create_dir_all(&dir).unwrap();
    let grey = [120, 120, 120, 255];
    for i in 0..=100 {
        write_png(&dir, &format!("p{i:03}.png"), &group_page(i, grey, false));
    }
    assert_eq!(upload("grp", &dir, &cfg).await.0, 0);
    approve("grp", &cfg).await;
    for i in 0..100 {
        write_png(&dir, &format!("p{i:03}.png"), &group_page(i, [200, 0, 0, 255], false));
    }
    write_png(&dir, "p100.png", &group_page(100, grey, true));
    let (code, report) = upload("grp", &dir, &cfg).await;
    assert_eq!(code, 1, "{report}");
    let crawl = report["crawl"].as_u64().unwrap();
    assert_eq!(report["changed"], 101, "{report}");

    let daemon = Daemon::start_with_env(&cfg, &[(TOKEN_ENV, TOKEN)]);
    let v = get_json(&daemon.url(&format!("/api/crawls/{crawl}/groups"))).await;
    let groups = v["groups"].as_array().unwrap();
    let sizes: Vec<u64> = groups.iter().map(|g| g["pages"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [100, 1], "{v}");
    assert_eq!(groups[1]["keys"], serde_json::json!(["/p100"]));
    assert_eq!(groups[0]["pending"], 100);
    let big = groups[0]["id"].as_str().unwrap().to_string();

    // The crawl view shows the groups first, with counts and a preview each.
    let html =
        client().get(daemon.url(&format!("/crawls/{crawl}"))).send().await.unwrap().text().await.unwrap();
    let (groups_at, list_at) =
        (html.find("id=\"groups\"").unwrap(), html.find("<ol class=\"pages\"").unwrap());
    assert!(groups_at < list_at, "groups come first");
    assert!(html.contains("100 pages") && html.contains("1 page<"), "counts shown");

    let url = daemon.url(&format!("/api/crawls/{crawl}/groups/{big}/approve"));
    assert_eq!(write(reqwest::Method::POST, &url, None, None).await.0, 401, "token-guarded");
    let (code, done) = write(reqwest::Method::POST, &url, Some(TOKEN), None).await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["approved"].as_array().unwrap().len(), 100);
    let (rec, pages) = page_states(&daemon, crawl).await;
    let approved: Vec<&str> = pages.iter().filter(|p| p.2).map(|p| p.0.as_str()).collect();
    let want: Vec<String> = (0..100).map(|i| format!("/p{i:03}")).collect();
    assert_eq!(approved, want, "exactly the 100 pages of the group");
    assert_eq!(rec["status"], "reviewing", "/p100 is still pending");
    let (code, _) = write(
        reqwest::Method::POST,
        &daemon.url(&format!("/api/crawls/{crawl}/groups/nope/approve")),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 404);
}

/// Two pages whose banner (rows 0..10) changed, plus an untouched one.
async fn banner_fixture(site: &str, extra: &str) -> (TempProject, String, u64) {
    let (project, cfg) = project(site, extra);
    let dir = project.dir.path().join("shots");
    std::fs::create_dir_all(&dir).unwrap();
    let page = |banner: [u8; 4], body: u8| {
        image(64, 48, move |_, y| if y < 10 { banner } else { [body, body, 255, 255] })
    };
    for (name, body) in [("a.png", 40), ("b.png", 90), ("c.png", 140)] {
        write_png(&dir, name, &page([200, 200, 200, 255], body));
    }
    assert_eq!(upload(site, &dir, &cfg).await.0, 0);
    approve(site, &cfg).await;
    for (name, body) in [("a.png", 40), ("b.png", 90)] {
        write_png(&dir, name, &page([250, 180, 0, 255], body));
    }
    let (code, report) = upload(site, &dir, &cfg).await;
    assert_eq!((code, report["changed"].as_u64()), (1, Some(2)), "{report}");
    let crawl = report["crawl"].as_u64().unwrap();
    (project, cfg, crawl)
}

/// Saving an ignore area through the API re-scores the current crawl from the stored images (no
/// new crawl): counts, page changes, `/metrics` and the review state follow; "*" covers every
/// page; removing it brings the change back; `sitediff rescore` does the same from the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_areas_from_the_api_rescore_the_current_crawl() {
    let (project, cfg, crawl) = banner_fixture("ig", "").await;
    let mut daemon = Daemon::start_with_env(&cfg, &[(TOKEN_ENV, TOKEN)]);
    let changed = "sitediff_site_changed_pages{site=\"ig\"}";
    let pending = "sitediff_review_pending_crawls{site=\"ig\"}";
    assert_eq!(metric(&daemon, changed).await, Some(2.0));
    let url = daemon.url("/api/sites/ig/ignore");
    let banner =
        |key: &str| serde_json::json!({ "key": key, "x": 0, "y": 0, "w": 64, "h": 10, "by": "tester" });

    assert_eq!(write(reqwest::Method::POST, &url, None, Some(banner("/a"))).await.0, 401);
    assert_eq!(write(reqwest::Method::POST, &url, Some("wrong"), Some(banner("/a"))).await.0, 401);
    let empty = serde_json::json!({ "key": "/a", "x": 0, "y": 0, "w": 0, "h": 10 });
    assert_eq!(write(reqwest::Method::POST, &url, Some(TOKEN), Some(empty)).await.0, 400);
    let other = daemon.url("/api/sites/nope/ignore");
    assert_eq!(write(reqwest::Method::POST, &other, Some(TOKEN), Some(banner("/a"))).await.0, 404);

    let (code, done) = write(reqwest::Method::POST, &url, Some(TOKEN), Some(banner("/a"))).await;
    assert_eq!(code, 201, "{done}");
    assert_eq!(done["rescored"]["moved"], serde_json::json!(["/a"]), "{done}");
    assert_eq!(done["rescored"]["crawl"]["id"].as_u64(), Some(crawl), "no new crawl");
    let (rec, pages) = page_states(&daemon, crawl).await;
    assert_eq!((rec["counts"]["changed"].as_u64(), rec["status"].as_str()), (Some(1), Some("reviewing")));
    assert_eq!(pages.iter().map(|p| p.1.as_str()).collect::<Vec<_>>(), ["unchanged", "changed", "unchanged"]);
    assert_eq!(metric(&daemon, changed).await, Some(1.0));
    assert_eq!(metric(&daemon, pending).await, Some(1.0));

    let (code, every) = write(reqwest::Method::POST, &url, Some(TOKEN), Some(banner("*"))).await;
    assert_eq!(code, 201, "{every}");
    let (rec, _) = page_states(&daemon, crawl).await;
    assert_eq!((rec["counts"]["changed"].as_u64(), rec["status"].as_str()), (Some(0), Some("passed")));
    assert_eq!(metric(&daemon, changed).await, Some(0.0));
    assert_eq!(metric(&daemon, pending).await, Some(0.0));

    let list = get_json(&url).await;
    let areas = list["areas"].as_array().unwrap();
    assert_eq!(areas.len(), 2, "{list}");
    assert!(areas
        .iter()
        .all(|a| a["created_by"] == "tester" && a["source"] == "stored" && a["created_at"].is_i64()));
    let id = every["area"]["id"].as_u64().unwrap();
    let del = daemon.url(&format!("/api/sites/ig/ignore/{id}"));
    assert_eq!(write(reqwest::Method::DELETE, &del, None, None).await.0, 401);
    let (code, removed) = write(reqwest::Method::DELETE, &del, Some(TOKEN), None).await;
    assert_eq!(code, 200, "{removed}");
    let (rec, _) = page_states(&daemon, crawl).await;
    assert_eq!((rec["counts"]["changed"].as_u64(), rec["status"].as_str()), (Some(1), Some("reviewing")));
    assert_eq!(metric(&daemon, changed).await, Some(1.0));
    assert_eq!(write(reqwest::Method::DELETE, &del, Some(TOKEN), None).await.0, 404, "gone");
    // Half the banner of /b ignored: still changed, with a diff image no crawl made (checked below).
    let half = serde_json::json!({ "key": "/b", "x": 0, "y": 0, "w": 32, "h": 10, "by": "tester" });
    let (code, halved) = write(reqwest::Method::POST, &url, Some(TOKEN), Some(half)).await;
    assert_eq!((code, &halved["rescored"]["moved"]), (201, &serde_json::json!([])), "{halved}");
    let (code, again) =
        write(reqwest::Method::POST, &daemon.url(&format!("/api/crawls/{crawl}/rescore")), Some(TOKEN), None)
            .await;
    assert_eq!((code, again["pages"].as_u64()), (200, Some(3)), "{again}");
    let (code, _) = daemon.terminate(Duration::from_secs(40));
    assert_eq!(code, Some(0), "{}", daemon.log());
    // Every artifact the re-scored records name is stored: the diff images and change previews
    // made by the re-scores (the changed pages have them), the captures they did not hold.
    let store = sitediff::store::Store::open(&project.db_path()).unwrap();
    let pages = store.pages(crawl).unwrap();
    assert!(pages
        .iter()
        .filter(|p| p.change == sitediff::store::PageChange::Changed)
        .all(|p| p.diff.is_some()));
    for p in &pages {
        for h in p.artifacts() {
            assert!(store.blob(&h).unwrap().is_some(), "{} names {h}, which is not stored", p.key);
        }
    }
    drop(store);

    // The CLI re-scores under the config's ignore areas too ("*" over the banner).
    let text = std::fs::read_to_string(&cfg).unwrap()
        + "ignore_areas = [{ key = \"/b\", x = 0, y = 0, w = 64, h = 10 }]\n";
    std::fs::write(&cfg, text).unwrap();
    let out = run_sitediff(&["rescore", &crawl.to_string(), "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 0, "no page changed any more\n{}", out.stderr);
    let j = out.json();
    assert_eq!(
        (j["crawl"]["counts"]["changed"].as_u64(), j["crawl"]["status"].as_str()),
        (Some(0), Some("passed"))
    );
    assert_eq!(j["moved"], serde_json::json!(["/b"]));
    drop(project);
}

/// Pixel counts of `sitediff diff --json` on two files.
async fn diff_pixels(a: &Path, b: &Path) -> u64 {
    let out = run_sitediff(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]).await;
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    out.json()["diff_pixels"].as_u64().unwrap()
}

/// JPEG and WebP inputs of `sitediff diff` give the counts of the same pixels as PNG: WebP
/// (lossless) the very images, JPEG the images its decoder yields (re-encoded as PNG here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jpeg_and_webp_pairs_count_like_png() {
    let dir = tempfile::tempdir().unwrap();
    let a = image(120, 80, |x, y| [(x * 2) as u8, (y * 3) as u8, 90, 255]);
    let b = image(120, 80, |x, y| {
        if (30..60).contains(&x) && (20..40).contains(&y) {
            [250, 10, 10, 255]
        } else {
            [(x * 2) as u8, (y * 3) as u8, 90, 255]
        }
    });
    let p = |n: &str| dir.path().join(n);
    let save = |img: &RgbaImage, name: &str, format: image::ImageFormat| {
        let buf = image::RgbaImage::from_raw(img.width, img.height, img.data.clone()).unwrap();
        match format {
            image::ImageFormat::Jpeg => {
                image::DynamicImage::ImageRgba8(buf).to_rgb8().save_with_format(p(name), format).unwrap()
            }
            _ => buf.save_with_format(p(name), format).unwrap(),
        }
    };
    write_png(dir.path(), "a.png", &a);
    write_png(dir.path(), "b.png", &b);
    save(&a, "a.webp", image::ImageFormat::WebP);
    save(&b, "b.webp", image::ImageFormat::WebP);
    save(&a, "a.jpg", image::ImageFormat::Jpeg);
    save(&b, "b.jpg", image::ImageFormat::Jpeg);
    for n in ["a", "b"] {
        let decoded = image::open(p(&format!("{n}.jpg"))).unwrap().to_rgba8();
        decoded.save_with_format(p(&format!("{n}.jpg.png")), image::ImageFormat::Png).unwrap();
    }
    let png = diff_pixels(&p("a.png"), &p("b.png")).await;
    assert_eq!(png, 30 * 20);
    assert_eq!(diff_pixels(&p("a.webp"), &p("b.webp")).await, png, "WebP");
    assert_eq!(diff_pixels(&p("a.png"), &p("b.webp")).await, png, "mixed");
    let jpeg = diff_pixels(&p("a.jpg"), &p("b.jpg")).await;
    assert_eq!(jpeg, diff_pixels(&p("a.jpg.png"), &p("b.jpg.png")).await, "JPEG");
    assert!(jpeg >= png, "the block is found in the JPEGs too ({jpeg})");
    let out = run_sitediff(&["diff", p("a.png").to_str().unwrap(), "/etc/hostname"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("not a PNG, JPEG or WebP image"), "{}", out.stderr);
}

/// A headless Chromium session over a chromedriver of our own.
struct Browser {
    client: fantoccini::Client,
    driver: Arc<sitediff::capture::driver::ChromeDriver>,
    _cancel: CancellationToken,
}

impl Browser {
    async fn start() -> Browser {
        use sitediff::capture::driver::{find_chromedriver, ChromeDriver};
        use sitediff::capture::pool::capabilities;
        let cancel = CancellationToken::new();
        let driver = Arc::new(ChromeDriver::spawn(&find_chromedriver(None).unwrap(), &cancel).await.unwrap());
        let cfg = crate::helpers::spawned_browser(1);
        let client = fantoccini::ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities(&cfg, true))
            .connect(driver.url().as_str())
            .await
            .unwrap();
        client.set_window_size(1400, 1000).await.unwrap();
        Browser { client, driver, _cancel: cancel }
    }

    fn wait(&self) -> fantoccini::wait::Wait<'_> {
        self.client.wait().at_most(Duration::from_secs(30))
    }

    async fn login(&self, base: &str) {
        use fantoccini::Locator;
        self.client.goto(&format!("{base}/login")).await.unwrap();
        self.wait().for_element(Locator::Css("#token")).await.unwrap().send_keys(TOKEN).await.unwrap();
        self.client.find(Locator::Css("form.login button")).await.unwrap().click().await.unwrap();
        self.wait().for_element(Locator::Css("a[href='/logout'], form[action='/logout']")).await.unwrap();
    }

    async fn stop(self) {
        self.client.close().await.unwrap();
        self.driver.shutdown().await;
    }
}

/// Drag with the mouse over the capture of the open page view, from its top-left corner to
/// beyond its right edge at `down` (a fraction of its height): real pointer actions.
async fn drag_over_capture(b: &Browser, down: f64) {
    use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
    use fantoccini::Locator;
    let img = b.client.find(Locator::Css("#shot-new .shot-frame img")).await.unwrap();
    let (_, _, w, h) = img.rectangle().await.unwrap();
    let actions = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: img.clone(),
            duration: None,
            x: -w / 2.0 + 1.0,
            y: -h / 2.0 + 1.0,
        })
        .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
        .then(PointerAction::MoveToElement {
            element: img.clone(),
            duration: Some(Duration::from_millis(200)),
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::MoveToElement {
            element: img,
            duration: Some(Duration::from_millis(200)),
            x: w / 2.0 + 8.0,
            y: -h / 2.0 + h * down,
        })
        .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
    b.client.perform_actions(actions).await.unwrap();
}

/// The UI: open a changed page, draw a rectangle over the changed banner with pointer actions,
/// save for this page: the page becomes unchanged without a new crawl, the crawl's counts and
/// `/metrics` follow; then the same on the other page for every page of the site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drawing_an_ignore_area_in_the_ui_rescores_without_a_crawl() {
    use fantoccini::Locator;
    let (_project, cfg, crawl) = banner_fixture("draw", "").await;
    let mut daemon = Daemon::start_with_env(&cfg, &[(TOKEN_ENV, TOKEN)]);
    let base = daemon.base.clone();
    let changed = "sitediff_site_changed_pages{site=\"draw\"}";
    assert_eq!(metric(&daemon, changed).await, Some(2.0));
    let b = Browser::start().await;
    b.login(&base).await;

    b.client.goto(&format!("{base}/crawls/{crawl}/page?key=%2Fa")).await.unwrap();
    b.wait().for_element(Locator::Css(".facts .change-changed")).await.unwrap();
    drag_over_capture(&b, 0.3).await;
    let mut values = Vec::new();
    for id in ["ignore-x", "ignore-y", "ignore-w", "ignore-h"] {
        values.push(
            b.client.find(Locator::Id(id)).await.unwrap().prop("value").await.unwrap().unwrap_or_default(),
        );
    }
    let [x, y, w, h] = <[String; 4]>::try_from(values).unwrap();
    assert_eq!(
        (x.as_str(), y.as_str(), w.as_str()),
        ("0", "0", "64"),
        "drawn from the corner across ({x},{y} {w}x{h})"
    );
    let h: u32 = h.parse().unwrap();
    assert!((10..=20).contains(&h), "down past the banner only: {h}");
    assert_eq!(
        b.client.current_url().await.unwrap().path(),
        format!("/crawls/{crawl}/page"),
        "the drag did not follow the image link"
    );
    b.client.find(Locator::Id("ignore-save")).await.unwrap().click().await.unwrap();
    b.wait().for_element(Locator::Css(".facts .change-unchanged")).await.unwrap();
    b.client.find(Locator::Css("#ignore-list li")).await.unwrap();
    let (rec, pages) = page_states(&daemon, crawl).await;
    assert_eq!((rec["id"].as_u64(), rec["counts"]["changed"].as_u64()), (Some(crawl), Some(1)), "{rec}");
    assert_eq!(pages[0].1, "unchanged");
    assert_eq!(metric(&daemon, changed).await, Some(1.0));

    // The other page, for every page of the site: nothing is left to review.
    b.client.goto(&format!("{base}/crawls/{crawl}/page?key=%2Fb")).await.unwrap();
    b.wait().for_element(Locator::Css(".facts .change-changed")).await.unwrap();
    drag_over_capture(&b, 0.25).await;
    b.client.find(Locator::Id("ignore-scope-site")).await.unwrap().click().await.unwrap();
    b.client.find(Locator::Id("ignore-save")).await.unwrap().click().await.unwrap();
    b.wait().for_element(Locator::Css(".facts .change-unchanged")).await.unwrap();
    let (rec, _) = page_states(&daemon, crawl).await;
    assert_eq!(
        (rec["counts"]["changed"].as_u64(), rec["status"].as_str()),
        (Some(0), Some("passed")),
        "{rec}"
    );
    assert_eq!(metric(&daemon, changed).await, Some(0.0));
    let areas = get_json(&daemon.url("/api/sites/draw/ignore")).await;
    let keys: Vec<&str> =
        areas["areas"].as_array().unwrap().iter().map(|a| a["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["/a", "*"]);
    assert_eq!(areas["areas"][0]["created_by"], "reviewer");

    b.stop().await;
    let (code, _) = daemon.terminate(Duration::from_secs(40));
    assert_eq!(code, Some(0), "{}", daemon.log());
}

/// A documentation-like page, `height` rows of 1280: text lines (noise that compresses like real
/// text does) in a pattern of its own per `i`, and with `changed` a red band at a place of its own.
fn text_page(i: u32, height: u32, changed: bool) -> RgbaImage {
    const W: usize = 1280;
    let line = |seed: u32| -> Vec<u8> {
        let mut row = vec![250u8; W * 4];
        for x in 16..1200usize {
            if (x as u32 / 7 + seed * 31 + i * 7) % 11 > 3 {
                let v = ((x as u32 * 13 + seed * 7 + i) % 90) as u8;
                row[x * 4..x * 4 + 3].fill(v);
            }
        }
        row
    };
    let patterns: Vec<Vec<u8>> = (0..6).map(line).collect();
    let blank = vec![250u8; W * 4];
    let red: Vec<u8> = [220u8, 40, 40, 250].repeat(W);
    let band = 300 + (i * 97) % (height.saturating_sub(400).max(1));
    let mut data = Vec::with_capacity(W * 4 * height as usize);
    for y in 0..height {
        let row = if changed && (band..band + 40).contains(&y) {
            &red
        } else if (y / 18) % 3 == 0 {
            &blank
        } else {
            &patterns[((y / 18 + y % 18) % 6) as usize]
        };
        data.extend_from_slice(row);
    }
    for px in data.chunks_exact_mut(4) {
        px[3] = 255;
    }
    RgbaImage { width: W as u32, height, data }
}

/// The crawl view of 50 changed pages, 12 of them very tall, loads only previews: every image the
/// page can load in headless Chromium (lazy images made eager, so all of them count) stays under
/// 1 MB, against the full-size images the rows used to show (each page's diff image).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crawl_view_of_tall_changed_pages_loads_under_a_megabyte() {
    use fantoccini::Locator;
    const PAGES: u32 = 50;
    const BUDGET: u64 = 1024 * 1024;
    let (project, cfg) = project("tall", "");
    let dir = project.dir.path().join("shots");
    std::fs::create_dir_all(&dir).unwrap();
    let height = |i: u32| if i.is_multiple_of(4) { 8000 } else { 1400 };
    for i in 0..PAGES {
        write_png(&dir, &format!("p{i:02}.png"), &text_page(i, height(i), false));
    }
    assert_eq!(upload("tall", &dir, &cfg).await.0, 0);
    approve("tall", &cfg).await;
    for i in 0..PAGES {
        write_png(&dir, &format!("p{i:02}.png"), &text_page(i, height(i), true));
    }
    let (code, report) = upload("tall", &dir, &cfg).await;
    assert_eq!((code, report["changed"].as_u64()), (1, Some(PAGES as u64)), "{report}");
    let crawl = report["crawl"].as_u64().unwrap();
    let mut daemon = Daemon::start_with_env(&cfg, &[(TOKEN_ENV, TOKEN)]);
    let base = daemon.base.clone();

    // Before: what the rows showed until now (each page's diff image, full size).
    let v = get_json(&daemon.url(&format!("/api/crawls/{crawl}?limit=50"))).await;
    let mut before = 0u64;
    for p in v["pages"].as_array().unwrap() {
        let h = p["diff"].as_str().unwrap();
        before += client()
            .get(daemon.url(&format!("/artifacts/{h}")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len() as u64;
    }

    let b = Browser::start().await;
    b.client.goto(&format!("{base}/crawls/{crawl}")).await.unwrap();
    b.wait().for_element(Locator::Css("ol.pages")).await.unwrap();
    b.client
        .execute(
            "Array.prototype.forEach.call(document.images, function (i) { i.loading = 'eager'; });",
            vec![],
        )
        .await
        .unwrap();
    let script = "var imgs = Array.prototype.slice.call(document.images);\
        if (!imgs.every(function (i) { return i.complete; })) return null;\
        var seen = performance.getEntriesByType('resource').filter(function (e) { return e.initiatorType === 'img'; });\
        return { images: imgs.length, loaded: imgs.filter(function (i) { return i.naturalWidth > 0; }).length,\
                 entries: seen.length, bytes: seen.reduce(function (s, e) { return s + e.encodedBodySize; }, 0) };";
    let mut seen = serde_json::Value::Null;
    for _ in 0..240 {
        seen = b.client.execute(script, vec![]).await.unwrap();
        if !seen.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = seen["bytes"].as_u64().unwrap_or(u64::MAX);
    eprintln!("crawl view of {PAGES} changed pages (12 of 1280x8000): images before {before} bytes, after {after} bytes ({seen})");
    assert!(seen["images"].as_u64() >= Some(PAGES as u64), "every row has a picture: {seen}");
    assert_eq!(seen["images"], seen["loaded"], "every image loaded: {seen}");
    assert!(seen["entries"].as_u64() > Some(0));
    assert!(after <= BUDGET, "{after} bytes of images (budget {BUDGET})");
    assert!(before > 4 * BUDGET, "the full-size images weigh {before} bytes: the fixture is heavy enough");

    // The page view of a very tall page: strips read server-side, loaded as they come into view.
    let tall = v["pages"].as_array().unwrap().iter().find(|p| p["height"] == 8000).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{base}/crawls/{crawl}/page?key={}", tall.replace('/', "%2F"));
    b.client.goto(&url).await.unwrap();
    let strips = b.wait().for_element(Locator::Css("#shot-new img.strip")).await.unwrap();
    let src = strips.attr("src").await.unwrap().unwrap();
    assert!(src.ends_with("/rows/0-2000"), "{src}");
    let r = client().get(format!("{base}{src}")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    let strip = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((strip.width(), strip.height()), (1280, 2000));
    assert_eq!(b.client.find_all(Locator::Css("#shot-new img.strip")).await.unwrap().len(), 4);
    b.client.find(Locator::Id("next-change")).await.unwrap();

    b.stop().await;
    let (code, _) = daemon.terminate(Duration::from_secs(40));
    assert_eq!(code, Some(0), "{}", daemon.log());
}

/// Uploads take JPEG and WebP files beside PNG (stored as PNG): a lossless WebP of the baseline's
/// pixels is unchanged, a JPEG with a red block is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_take_jpeg_and_webp() {
    let (project, cfg) = project("up", "");
    let dir = project.dir.path().join("shots");
    std::fs::create_dir_all(&dir).unwrap();
    let plain = image(80, 60, |x, y| [(x * 3) as u8, (y * 4) as u8, 120, 255]);
    let block = image(80, 60, |x, y| {
        if x < 20 && y < 20 {
            [255, 0, 0, 255]
        } else {
            [(x * 3) as u8, (y * 4) as u8, 120, 255]
        }
    });
    write_png(&dir, "a.png", &plain);
    write_png(&dir, "b.png", &plain);
    assert_eq!(upload("up", &dir, &cfg).await.0, 0);
    approve("up", &cfg).await;
    std::fs::remove_file(dir.join("a.png")).unwrap();
    std::fs::remove_file(dir.join("b.png")).unwrap();
    let buf = |img: &RgbaImage| image::RgbaImage::from_raw(img.width, img.height, img.data.clone()).unwrap();
    buf(&plain).save_with_format(dir.join("a.webp"), image::ImageFormat::WebP).unwrap();
    image::DynamicImage::ImageRgba8(buf(&block))
        .to_rgb8()
        .save_with_format(dir.join("b.jpg"), image::ImageFormat::Jpeg)
        .unwrap();
    let (code, report) = upload("up", &dir, &cfg).await;
    assert_eq!(code, 1, "{report}");
    let changes: Vec<(String, String)> = report["page_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["key"].as_str().unwrap().to_string(),
                p["outcome"].as_str().unwrap_or("").to_string() + "/" + p["change"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(changes.contains(&("/a".into(), "ok/unchanged".into())), "{changes:?}");
    assert!(changes.contains(&("/b".into(), "ok/changed".into())), "{changes:?}");
}
