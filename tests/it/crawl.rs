//! The walking skeleton end to end with real Chromium: crawl a fixture site, approve, re-crawl
//! unchanged, change one page, and check exactly that page is flagged with a red diff.

use std::collections::BTreeSet;

use crate::helpers::{run_sitediff, FixtureServer, Response, TempProject};

/// Number of plain numbered pages in the fixture site.
const NUMBERED_PAGES: usize = 30;

fn page(title: &str, body: &str) -> Response {
    Response::html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title>\
         <style>body{{margin:0;font:16px sans-serif}} #change{{position:absolute;top:200px;left:20px;\
         height:60px;width:600px;overflow:hidden;font-size:32px}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    ))
}

/// Serve the fixture site under /site/ and return the page keys a correct crawl must find.
fn build_site(srv: &FixtureServer) -> BTreeSet<String> {
    let base = srv.url("");
    let mut index_links = String::new();
    for i in 1..=NUMBERED_PAGES {
        // Mix relative, absolute, `..`, query and fragment forms of the same links.
        let href = match i % 5 {
            0 => format!("{base}/site/page{i}.html"),
            1 => format!("sub/../page{i}.html"),
            2 => format!("page{i}.html#section"),
            3 => format!("./page{i}.html"),
            _ => format!("page{i}.html"),
        };
        index_links.push_str(&format!("<li><a href=\"{href}\">page {i}</a></li>"));
    }
    index_links.push_str(concat!(
        "<li><a href='page7.html?x=1'>query</a></li>",
        "<li><a href='/outside/off.html'>off prefix</a></li>",
        "<li><a href='redirect-in'>redirect inside</a></li>",
        "<li><a href='redirect-out'>redirect outside</a></li>",
        "<li><a href='missing.html'>404</a></li>",
        "<li><a href='error.html'>500</a></li>",
        "<li><a href='doc.pdf'>pdf</a></li>",
        "<li><a href='img.png'>image</a></li>",
        "<li><a href='tall.html'>tall</a></li>",
        "<li><a href='sub/'>sub</a></li>",
        "<li><a href='javascript:void(0)'>js</a> <a href='mailto:a@b'>mail</a></li>",
        "<map name=m><area href='area.html' shape=rect coords='0,0,10,10'></map>",
    ));
    srv.set("/site/", page("Index", &format!("<ul>{index_links}</ul>")));
    for i in 1..=NUMBERED_PAGES {
        let next = i % NUMBERED_PAGES + 1;
        srv.set(
            &format!("/site/page{i}.html"),
            page(
                &format!("Page {i}"),
                &format!("<div id=change>Text of page {i}</div><a href='page{next}.html'>next</a>"),
            ),
        );
    }
    srv.set("/site/page7.html?x=1", page("Page 7 query", "<p>query variant</p>"));
    srv.set(
        "/site/sub/",
        page("Sub", "<base href='/site/sub/'><a href='../page10.html'>up</a><a href='deep.html'>deep</a>"),
    );
    srv.set("/site/sub/deep.html", page("Deep", "<p>deep</p>"));
    srv.set("/site/area.html", page("Area", "<p>from an area link</p>"));
    srv.set("/outside/off.html", page("Off", "<p>must never be fetched</p>"));
    srv.set("/outside/x.html", page("Off 2", "<p>must never be fetched</p>"));
    srv.set("/site/redirect-in", Response::redirect("/site/page9.html"));
    srv.set("/site/redirect-out", Response::redirect("/outside/x.html"));
    srv.set("/site/error.html", Response::status(500, "<h1>boom</h1>"));
    srv.set("/site/doc.pdf", Response::with_type(200, "application/pdf", b"%PDF-1.4 fake".to_vec()));
    srv.set("/site/img.png", Response::with_type(200, "image/png", vec![0x89, b'P', b'N', b'G']));
    srv.set(
        "/site/tall.html",
        page("Tall", "<div style='height:6000px;background:linear-gradient(#fff,#39f)'>tall</div><p>end</p>"),
    );
    // missing.html is not set: the fixture answers 404.

    let mut keys: BTreeSet<String> = (1..=NUMBERED_PAGES).map(|i| format!("/page{i}.html")).collect();
    for k in [
        "/",
        "/page7.html?x=1",
        "/sub/",
        "/sub/deep.html",
        "/area.html",
        "/tall.html",
        "/missing.html",
        "/error.html",
    ] {
        keys.insert(k.to_string());
    }
    keys
}

fn config(srv: &FixtureServer) -> String {
    format!(
        "[browser]\nsessions = 2\n\n[[sites]]\nname = \"fixture\"\nstart = \"{}\"\nviewport = {{ width = 800, height = 600 }}\n",
        srv.url("/site/")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_approve_recrawl_and_detect_one_change() {
    let srv = FixtureServer::start().await;
    let expected = build_site(&srv);
    let project = TempProject::new();
    let cfg = project.write_config(&config(&srv));

    // 1. First crawl: every in-prefix page exactly once, all new.
    let started = std::time::Instant::now();
    let out = run_sitediff(&["crawl", "fixture", "--config", &cfg, "--json"]).await;
    let elapsed = started.elapsed();
    assert_eq!(
        out.code, 1,
        "first crawl: nothing changed (no baseline), but two pages newly failed\n{}",
        out.stderr
    );
    let j = out.json();
    let results = j["page_results"].as_array().unwrap();
    let keys: Vec<String> = results.iter().map(|p| p["key"].as_str().unwrap().to_string()).collect();
    let unique: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(keys.len(), unique.len(), "a page was visited twice: {keys:?}");
    assert_eq!(unique, expected);
    eprintln!(
        "first crawl: {} pages in {:.2}s = {:.2} pages/s",
        keys.len(),
        elapsed.as_secs_f64(),
        keys.len() as f64 / elapsed.as_secs_f64()
    );
    let by_key = |k: &str| results.iter().find(|p| p["key"] == k).unwrap().clone();
    assert_eq!(by_key("/missing.html")["outcome"], "http_error");
    assert_eq!(by_key("/missing.html")["http_status"], 404);
    assert_eq!(by_key("/error.html")["http_status"], 500);
    assert_eq!(by_key("/page3.html")["outcome"], "ok");
    assert_eq!(by_key("/page3.html")["change"], "new");
    assert_eq!(j["changed"], 0);
    assert_eq!(j["failed"], 2);
    assert_eq!(j["new"].as_u64().unwrap() as usize, expected.len() - 2);
    assert_eq!(j["skipped_non_html"], 2, "the PDF and the PNG are skipped and counted");
    let hits = srv.hits();
    assert!(hits.iter().all(|h| !h.starts_with("/outside/")), "off-prefix fetched: {hits:?}");
    assert!(!hits.iter().any(|h| h.contains("mailto") || h.contains("javascript")));

    // The tall page is captured at full height.
    {
        let store = sitediff::store::Store::open(&project.db_path()).unwrap();
        let crawl = store.latest_crawl("fixture").unwrap().unwrap();
        let tall = store.page(crawl.id, "/tall.html").unwrap().unwrap();
        assert!(tall.height > 6000, "tall page captured {}px high", tall.height);
        let png = store.blob(&tall.png.unwrap()).unwrap().unwrap();
        let img = sitediff::diff::decode_png(&png, "tall").unwrap();
        assert_eq!((img.width, img.height), (800, tall.height));
    }

    // 2. Approve, crawl again unchanged: nothing changed.
    let out = run_sitediff(&["approve", "fixture", "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_sitediff(&["crawl", "fixture", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 0, "unchanged re-crawl flagged changes:\n{}\n{}", out.stdout, out.stderr);
    let j = out.json();
    assert_eq!(j["changed"], 0);
    assert_eq!(j["new"], 0);
    assert_eq!(j["unchanged"].as_u64().unwrap() as usize, expected.len() - 2);

    // 3. Change one page's text: exactly that page is changed, with a red diff where the text is.
    srv.set(
        "/site/page12.html",
        page("Page 12", "<div id=change>Completely different words</div><a href='page13.html'>next</a>"),
    );
    let out = run_sitediff(&["crawl", "fixture", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 1, "a change must exit 1\n{}", out.stderr);
    let j = out.json();
    assert_eq!(j["changed"], 1, "{}", out.stdout);
    let changed: Vec<&serde_json::Value> =
        j["page_results"].as_array().unwrap().iter().filter(|p| p["changed"] == true).collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["key"], "/page12.html");
    assert!(changed[0]["distortion"].as_f64().unwrap() > 0.0);

    let store = sitediff::store::Store::open(&project.db_path()).unwrap();
    let crawl = store.latest_crawl("fixture").unwrap().unwrap();
    let rec = store.page(crawl.id, "/page12.html").unwrap().unwrap();
    let diff_png = store.blob(&rec.diff.expect("a diff image")).unwrap().unwrap();
    let img = sitediff::diff::decode_png(&diff_png, "diff").unwrap();
    let mut red_rows = BTreeSet::new();
    for y in 0..img.height {
        for x in 0..img.width {
            let i = ((y * img.width + x) * 4) as usize;
            if img.data[i] == 255 && img.data[i + 1] == 0 && img.data[i + 2] == 0 {
                red_rows.insert(y);
            }
        }
    }
    assert!(!red_rows.is_empty(), "the diff image has no red pixel");
    let (first, last) = (*red_rows.first().unwrap(), *red_rows.last().unwrap());
    assert!(first >= 200 && last < 260, "red outside the changed text box: rows {first}..={last}");
    assert!(!rec.regions.is_empty());
}

#[tokio::test]
async fn config_errors_name_the_problem() {
    let project = TempProject::new();
    let cases: [(&str, &[&str]); 4] = [
        (
            "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1:1/\"\nthreshhold = 0.3\n",
            &["threshhold", "line 7"],
        ),
        ("[[sites]]\nname = \"a\"\nstart = \"not a url\"\n", &["sites[0].start", "not a URL"]),
        ("[[sites]]\nname = \"a\"\n", &["sites[0].start", "no start URL"]),
        (
            "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1:1/\"\nmax_pages = 0\nthreshold = 7\n",
            &["max_pages", "threshold"],
        ),
    ];
    for (body, needles) in cases {
        let cfg = project.write_config(body);
        let out = run_sitediff(&["crawl", "a", "--config", &cfg]).await;
        assert_eq!(out.code, 2, "{body}\n{}", out.stderr);
        for n in needles {
            assert!(out.stderr.contains(n), "message for {body:?} lacks {n:?}:\n{}", out.stderr);
        }
    }
    // A site that is not in the config.
    let cfg = project.write_config("[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1:1/\"\n");
    let out = run_sitediff(&["crawl", "nope", "--config", &cfg]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no site named \"nope\"") && out.stderr.contains("configured: a"),
        "{}",
        out.stderr
    );
    // A config file that does not exist.
    let out = run_sitediff(&["status", "--config", "/nonexistent/sitediff.toml"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("/nonexistent/sitediff.toml"), "{}", out.stderr);
}
