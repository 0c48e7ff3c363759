//! Built-in masking with the real browser: a live clock named in `mask_selectors` (no plugin) stays
//! unchanged crawl after crawl while a change beside it is flagged, the API lists what was masked
//! and the page view outlines it; the example config works copied anywhere (bundled plugin), and a
//! plugin path in an error is the resolved, absolute one.

use std::path::Path;

use sitediff::config::{Config, PluginSource};
use sitediff::plugin::PluginHost;

use crate::helpers::{http_get, run_sitediff, Daemon, FixtureServer, Response, RunOutput, TempProject};

/// A page whose `#clock` shows the time to the millisecond, updated every 100 ms, and a second
/// masked element whose selector needs escaping in HTML.
fn clock_page(para: &str) -> Response {
    Response::html(format!(
        "<!doctype html><title>clock</title><style>body{{margin:0;font:18px sans-serif}}\
         #clock{{display:inline-block;margin:40px 20px;background:#ffd}}#para{{margin:20px}}</style>\
         <h1>Live clock</h1><span id=clock></span>\
         <p id=para>{para}</p><p data-note=\"&lt;b&gt;&amp;\">A note, masked too.</p>\
         <script>const c = document.getElementById('clock');\
         const tick = () => {{ const d = new Date(); c.textContent = d.toLocaleTimeString() + '.' + d.getMilliseconds() + ' ' + Math.random(); }};\
         tick(); setInterval(tick, 100);</script>"
    ))
}

fn page_of<'a>(crawl: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    crawl["page_results"]
        .as_array()
        .and_then(|pages| pages.iter().find(|p| p["key"] == key))
        .unwrap_or_else(|| panic!("no page {key} in {crawl}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mask_selectors_keep_a_live_clock_unchanged_without_a_plugin() {
    let srv = FixtureServer::start().await;
    srv.set("/m/", Response::html("<title>home</title><h1>Home</h1><a href='clock.html'>clock</a>"));
    srv.set("/m/clock.html", clock_page("Steady text."));
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nallow_anonymous_writes = true\n\n\
         [[sites]]\nname = \"clock\"\nstart = \"{}\"\nviewport = {{ width = 640, height = 480 }}\n\
         mask_selectors = [\"#clock\", \"[data-note='<b>&']\"]\n",
        srv.url("/m/")
    ));
    let crawl = || async {
        let out = run_sitediff(&["crawl", "clock", "--config", &cfg, "--json"]).await;
        assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
        (out.code, out.json())
    };

    let (_, first) = crawl().await;
    assert_eq!(page_of(&first, "/clock.html")["change"], "new");
    assert_eq!(run_sitediff(&["approve", "clock", "--config", &cfg]).await.code, 0);
    let mut ids = Vec::new();
    for round in 1..=3 {
        let (code, j) = crawl().await;
        let p = page_of(&j, "/clock.html");
        assert_eq!((code, &p["change"]), (0, &serde_json::json!("unchanged")), "re-crawl {round}: {j}");
        assert_eq!(p["distortion"], 0.0, "re-crawl {round}: {p}");
        ids.push(j["crawl"].as_u64().expect("crawl id"));
    }

    // A real change beside the clock is still flagged.
    srv.set("/m/clock.html", clock_page("A paragraph that really changed, with many more words in it."));
    let (code, j) = crawl().await;
    let p = page_of(&j, "/clock.html");
    assert_eq!((code, &p["change"]), (1, &serde_json::json!("changed")), "{j}");
    let changed = j["crawl"].as_u64().expect("crawl id");

    // The API lists what was masked; the captures really differed (the clock moved on).
    let daemon = Daemon::start(&cfg);
    for id in ids.iter().chain([&changed]) {
        let (status, body) = http_get(&daemon.url(&format!("/api/crawls/{id}"))).await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let page = v["pages"].as_array().unwrap().iter().find(|p| p["key"] == "/clock.html").unwrap();
        assert_ne!(page["png"], page["baseline_png"], "crawl {id}: the clock did not move: {page}");
        let masked = page["masked"].as_array().expect("masked list");
        for (selector, image) in
            [("#clock", "capture"), ("#clock", "baseline"), ("[data-note='<b>&']", "capture")]
        {
            assert!(
                masked.iter().any(|m| m["selector"] == selector
                    && m["image"] == image
                    && m["width"].as_u64() > Some(0)
                    && m["height"].as_u64() > Some(0)),
                "crawl {id}: no {selector} rectangle on the {image}: {masked:?}"
            );
        }
    }

    // The page view outlines the masked areas over the baseline and the capture, labels escaped.
    let (status, html) = http_get(&daemon.url(&format!("/crawls/{}/page?key=%2Fclock.html", ids[0]))).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.matches("<svg class=\"masks\"").count() >= 2, "no mask outlines over both images:\n{html}");
    for figure in ["id=\"shot-baseline\"", "id=\"shot-new\""] {
        let at = html.find(figure).unwrap_or_else(|| panic!("no {figure}"));
        let rest = &html[at..];
        let end = rest.find("</figure>").expect("figure end");
        assert!(rest[..end].contains("data-selector=\"#clock\""), "{figure} has no #clock outline:\n{html}");
    }
    assert!(html.contains("id=\"masked\""), "no masked row:\n{html}");
    assert!(html.contains("&lt;b&gt;&amp;"), "the selector label is not escaped:\n{html}");
    assert!(!html.contains("<b>&"), "a raw selector reached the page:\n{html}");
}

/// Run sitediff in `dir` (relative paths given are relative to it).
async fn run_in(dir: &Path, args: &[&str]) -> RunOutput {
    crate::helpers::run_sitediff_in(Some(dir), &[("SITEDIFF_TOKEN", "mask-test-token")], args).await
}

fn ad_page(ad: &str) -> Response {
    Response::html(format!(
        "<!doctype html><title>ad</title><style>body{{margin:0;font:16px sans-serif}}.ad{{margin:30px;background:#eef}}</style>\
         <h1>Docs with an ad</h1><div class=ad>{ad}</div><p>Text.</p>"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_config_works_copied_anywhere() {
    let srv = FixtureServer::start().await;
    srv.set("/docs/", Response::html("<title>docs</title><h1>Docs</h1><a href='ad.html'>ad</a>"));
    srv.set("/docs/ad.html", ad_page("Buy one"));
    srv.set("/blog/index.html", Response::html("<title>blog</title><h1>Blog</h1>"));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sitediff.example.toml");
    let text = std::fs::read_to_string(&example).expect("example config");
    assert!(text.contains("http://127.0.0.1:8000/"), "the example's sites moved: rewrite this test");
    let text = text.replace("http://127.0.0.1:8000/", &srv.url("/"));
    let tmp = TempProject::new();
    let dir = tmp.dir.path().join("anywhere");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg_path = dir.join("sitediff.toml");
    std::fs::write(&cfg_path, &text).unwrap();

    // It loads, and its plugins resolve and compile.
    let cfg = Config::load(&cfg_path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cfg.plugins.iter().any(|p| matches!(p.source, PluginSource::Builtin { .. })),
        "{:?}",
        cfg.plugins
    );
    let host = PluginHost::load(&cfg.plugins).unwrap_or_else(|e| panic!("{e:?}"));
    for p in &cfg.plugins {
        assert!(host.kind(&p.name).is_some(), "{} not loaded", p.name);
    }
    assert_eq!(cfg.store.path, dir.join("data/sitediff.redb"));

    // It crawls from another directory, through a relative --config, with its bundled plugin.
    let crawl = |site: &'static str| {
        let tmp_dir = tmp.dir.path().to_path_buf();
        async move {
            let out =
                run_in(&tmp_dir, &["crawl", site, "--config", "anywhere/sitediff.toml", "--json"]).await;
            assert!(out.code == 0 || out.code == 1, "{site}: {}", out.stderr);
            (out.code, out.json())
        }
    };
    let (code, j) = crawl("docs").await;
    assert_eq!(code, 0, "{j}");
    assert_eq!(page_of(&j, "/ad.html")["outcome"], "ok", "{j}");
    assert!(dir.join("data/sitediff.redb").is_file(), "the store is not beside the copied config");
    let (code, j) = crawl("blog").await;
    assert_eq!((code, &page_of(&j, "/index.html")["outcome"]), (0, &serde_json::json!("ok")), "{j}");
    assert_eq!(
        run_in(tmp.dir.path(), &["approve", "docs", "--config", "anywhere/sitediff.toml"]).await.code,
        0
    );
    srv.set("/docs/ad.html", ad_page("Buy two, get a third one for free"));
    let (code, j) = crawl("docs").await;
    let p = page_of(&j, "/ad.html");
    assert_eq!((code, &p["change"]), (0, &serde_json::json!("unchanged")), "the .ad change is masked: {j}");

    // A plugin file that is not there is reported by its resolved, absolute path.
    let missing = text.replace("builtin:mask_selectors", "plugins/mine.wat");
    std::fs::write(&cfg_path, missing).unwrap();
    let out = run_in(tmp.dir.path(), &["crawl", "docs", "--config", "anywhere/sitediff.toml"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let want = dir.join("plugins/mine.wat");
    assert!(out.stderr.contains(&format!("cannot read {}", want.display())), "{}", out.stderr);
}
