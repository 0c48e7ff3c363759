//! Flake and fault tests through the CLI with real Chromium: a site full of the usual flake
//! sources (web fonts, CSS animations, a JS carousel, a blinking caret, lazy images, a sticky
//! header, a tall page) crawled three times unchanged gives zero changed pages; one visible change
//! flags exactly that page; chromedriver killed mid-crawl loses no page.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::helpers::{
    children_of, run_sitediff, sitediff_bin, solid_png, FixtureServer, Response, TempProject,
};

/// Debian package `fonts-dejavu-core` (installed in CI).
const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Pages of the fault-test site.
const FAULT_PAGES: usize = 24;

fn page(title: &str, head: &str, body: &str) -> Response {
    Response::html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title>\
         <style>@font-face {{ font-family: Fixture; src: url(/f/font.ttf) format('truetype'); }}\
         html, body {{ margin: 0; font: 18px Fixture, monospace; background: #fff }}\
         header {{ position: sticky; top: 0; height: 48px; background: #234; color: #fff }}</style>\
         {head}</head><body><header>Fixture site &mdash; {title}</header>{body}\
         <p><a href='/f/'>home</a> <a href='fonts.html'>fonts</a> <a href='anim.html'>anim</a> \
         <a href='carousel.html'>carousel</a> <a href='caret.html'>caret</a> <a href='lazy.html'>lazy</a> \
         <a href='tall.html'>tall</a></p></body></html>"
    ))
}

fn fonts_page(text: &str) -> Response {
    page("Fonts", "", &format!("<h1>Web fonts</h1><p style='font-size:28px'>{text}</p>"))
}

fn build_flaky_site(srv: &FixtureServer) {
    let font = std::fs::read(FONT_PATH).unwrap_or_else(|e| {
        panic!("{FONT_PATH}: {e}; install the Debian package fonts-dejavu-core (CI installs it)")
    });
    // Slow font and images: a capture that does not wait for them differs from one that does.
    srv.set("/f/font.ttf", Response::with_type(200, "font/ttf", font).delayed(Duration::from_millis(400)));
    srv.set(
        "/f/img/lazy.png",
        Response::with_type(200, "image/png", solid_png(120, 80, [200, 30, 30, 255]))
            .delayed(Duration::from_millis(300)),
    );
    srv.set(
        "/f/img/io.png",
        Response::with_type(200, "image/png", solid_png(120, 80, [30, 30, 200, 255]))
            .delayed(Duration::from_millis(300)),
    );
    srv.set(
        "/f/",
        page(
            "Home",
            "",
            "<h1>Home</h1><p>The quick brown fox jumps over the lazy dog 0123456789.</p>\
             <table border=1><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>",
        ),
    );
    srv.set("/f/fonts.html", fonts_page("Hamburgefonstiv 0123456789 — unchanged"));
    srv.set(
        "/f/anim.html",
        page(
            "Animations",
            "<style>@keyframes spin { to { transform: rotate(360deg) } }\
             @keyframes pulse { 50% { background: #f80; width: 300px } }\
             .spin { width: 80px; height: 80px; background: #0a0; animation: spin 0.7s linear infinite }\
             .pulse { height: 40px; width: 100px; background: #08f; animation: pulse 1.3s ease-in-out infinite }\
             .fade { opacity: 0; transition: opacity 2s } .fade.in { opacity: 1 }</style>",
            "<div class=spin></div><div class=pulse></div><p class=fade id=f>fading in</p>\
             <script>requestAnimationFrame(() => f.classList.add('in'))</script>",
        ),
    );
    srv.set(
        "/f/carousel.html",
        page(
            "Carousel",
            "<style>.slide { height: 160px; color: #fff; font-size: 40px; transition: background 0.8s, padding 0.8s }</style>",
            "<div id=c class=slide style='background:#a00'>slide 1</div>\
             <script>const colours = ['#a00', '#0a0', '#00a']; let i = 0;\
             setInterval(() => { i = (i + 1) % 3; c.style.background = colours[i]; c.style.paddingLeft = (i * 60) + 'px';\
             c.textContent = 'slide ' + (i + 1); }, 1200);</script>",
        ),
    );
    srv.set(
        "/f/caret.html",
        page(
            "Caret",
            "",
            "<form><input autofocus id=q value='search text' style='font-size:24px;width:400px'>\
             <textarea style='width:400px;height:80px'>more text</textarea></form>\
             <script>q.focus(); q.setSelectionRange(3, 3);</script>",
        ),
    );
    srv.set(
        "/f/lazy.html",
        page(
            "Lazy",
            "",
            "<div style='height:2500px'>far below:</div>\
             <img loading=lazy src='/f/img/lazy.png' width=120 height=80 style='display:block'>\
             <div style='height:1500px'></div><img id=io data-src='/f/img/io.png' width=120 height=80 style='display:block'>\
             <script>new IntersectionObserver((es, o) => es.forEach(e => { if (e.isIntersecting) { \
             e.target.src = e.target.dataset.src; o.unobserve(e.target); } })).observe(io);</script>",
        ),
    );
    let mut tall = String::new();
    for i in 0..300 {
        tall.push_str(&format!("<p>Paragraph {i}: lorem ipsum dolor sit amet, consectetur adipiscing.</p>"));
    }
    srv.set("/f/tall.html", page("Tall", "", &tall));
}

/// The site at two viewports (the second gives `@375` page keys); `incremental` on or off.
fn flaky_config(srv: &FixtureServer, incremental: bool) -> String {
    format!(
        "[browser]\nsessions = 2\n\n[[sites]]\nname = \"flaky\"\nstart = \"{}\"\n\
         viewports = [{{ width = 800, height = 600 }}, {{ width = 375, height = 667 }}]\nincremental = {incremental}\n",
        srv.url("/f/")
    )
}

const FLAKY_PAGES: [&str; 7] =
    ["/", "/fonts.html", "/anim.html", "/carousel.html", "/caret.html", "/lazy.html", "/tall.html"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_site_crawled_three_times_unchanged_then_one_change_is_caught() {
    flaky_rounds(false).await;
}

/// The same with incremental sweeps (issue 19): pages reused or rendered, nothing is flagged until
/// the one change, which is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_site_stays_quiet_and_the_change_is_caught_with_incremental_sweeps() {
    flaky_rounds(true).await;
}

async fn flaky_rounds(incremental: bool) {
    let srv = FixtureServer::start().await;
    build_flaky_site(&srv);
    let project = TempProject::new();
    let cfg = project.write_config(&flaky_config(&srv, incremental));
    let expected: BTreeSet<String> =
        FLAKY_PAGES.iter().flat_map(|k| [k.to_string(), format!("{k}@375")]).collect();

    for round in 1..=3 {
        let out = run_sitediff(&["crawl", "flaky", "--config", &cfg, "--json"]).await;
        assert_eq!(out.code, 0, "round {round}:\n{}\n{}", out.stdout, out.stderr);
        let j = out.json();
        let results = j["page_results"].as_array().unwrap();
        let keys: BTreeSet<String> = results.iter().map(|p| p["key"].as_str().unwrap().to_string()).collect();
        assert_eq!(keys, expected, "round {round}");
        assert_eq!(j["failed"], 0, "round {round}: {}", j);
        assert_eq!(j["changed"], 0, "round {round}: unchanged site flagged changes: {}", j);
        if round == 1 {
            assert_eq!(j["new"].as_u64().unwrap() as usize, expected.len());
            let out = run_sitediff(&["approve", "flaky", "--config", &cfg]).await;
            assert_eq!(out.code, 0, "{}", out.stderr);
        } else {
            assert_eq!(j["unchanged"].as_u64().unwrap() as usize, expected.len(), "round {round}: {j}");
            assert_eq!(j["max_distortion"].as_f64(), Some(0.0), "round {round}: {j}");
            if incremental {
                // The plain pages (no script, no animation) are not rendered again.
                let reused = j["reused"].as_u64().unwrap();
                assert!(reused >= 4, "round {round}: {j}");
            }
        }
    }

    // Web fonts were really used (the captured text is not in the fallback font): the page in
    // monospace fallback is another picture.
    let store = sitediff::store::Store::open(&project.db_path()).unwrap();
    let crawl = store.latest_crawl("flaky").unwrap().unwrap();
    let lazy = store.page(crawl.id, "/lazy.html").unwrap().unwrap();
    let img = sitediff::diff::decode_png(&store.blob(&lazy.png.unwrap()).unwrap().unwrap(), "lazy").unwrap();
    let has = |rgb: [u8; 3]| img.data.chunks_exact(4).any(|p| p[..3] == rgb);
    assert!(has([200, 30, 30]) && has([30, 30, 200]), "lazy images missing from the shot");
    drop(store);

    // One visible change: exactly that page is flagged (at both widths).
    srv.set("/f/fonts.html", fonts_page("Hamburgefonstiv 0123456789 — CHANGED"));
    let out = run_sitediff(&["crawl", "flaky", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let j = out.json();
    let changed: BTreeSet<&str> = j["page_results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["changed"] == true)
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(changed, BTreeSet::from(["/fonts.html", "/fonts.html@375"]), "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromedriver_killed_mid_crawl_loses_no_page() {
    let srv = FixtureServer::start().await;
    let mut links = String::new();
    for i in 0..FAULT_PAGES {
        links.push_str(&format!("<a href='p{i}.html'>{i}</a> "));
        // Only the browser loads the image: its requests show how far capture has got.
        srv.set(
            &format!("/k/p{i}.html"),
            Response::html(format!("<title>{i}</title><h1>page {i}</h1><img src='/k/img{i}.png'>")),
        );
        srv.set(
            &format!("/k/img{i}.png"),
            Response::with_type(200, "image/png", solid_png(10, 10, [0, 0, 0, 255]))
                .delayed(Duration::from_millis(150)),
        );
    }
    srv.set("/k/", Response::html(format!("<title>index</title>{links}")));
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[browser]\nsessions = 2\n\n[[sites]]\nname = \"k\"\nstart = \"{}\"\nviewport = {{ width = 640, height = 480 }}\n",
        srv.url("/k/")
    ));
    let child = std::process::Command::new(sitediff_bin())
        .args(["crawl", "k", "--config", &cfg, "--json"])
        .env_remove("SITEDIFF_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();

    // Wait until a few pages have been captured, then kill chromedriver.
    let captured = || srv.hits().iter().filter(|h| h.starts_with("/k/img")).count();
    let started = std::time::Instant::now();
    while captured() < 5 {
        assert!(started.elapsed() < Duration::from_secs(120), "capture never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let driver = children_of(pid)
        .into_iter()
        .find(|(_, comm)| comm.contains("chromedriver"))
        .map(|(p, _)| p)
        .expect("chromedriver is a child of sitediff");
    let before = captured();
    // SAFETY: signalling the chromedriver this test's sitediff started.
    unsafe { libc::kill(driver as libc::pid_t, libc::SIGKILL) };
    assert!(
        before < FAULT_PAGES,
        "the crawl was already over ({before} images) when chromedriver was killed"
    );

    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(j["pages"].as_u64().unwrap() as usize, FAULT_PAGES + 1, "{j}");
    assert_eq!(j["failed"], 0, "{j}");
    assert!(j["page_results"].as_array().unwrap().iter().all(|p| p["outcome"] == "ok"), "{j}");
}
