//! Incremental sweeps (issue 19) through the CLI with real Chromium: an approved fixture site
//! re-crawled unchanged reuses every static page (and never one that reads the clock or a random
//! source); each kind of change (document text, a stylesheet, an image's bytes, a web font, a
//! script that writes the DOM, JSON fetched by a script, a redirect target) is flagged on the next
//! crawl and only those pages are rendered; a changed capture option, a recorded browser build
//! that differs, and `--full` render every page.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{run_sitediff, solid_png, FixtureServer, Response, TempProject};

const SANS: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SERIF: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf";

/// Static pages: every one of them must be reused by an unchanged re-crawl.
const STATIC: [&str; 12] = [
    "/",
    "/s1.html",
    "/s2.html",
    "/s3.html",
    "/text.html",
    "/css.html",
    "/img.html",
    "/font.html",
    "/script.html",
    "/json.html",
    "/redirect.html",
    "/frozen-timer.html",
];
/// Pages whose content comes from the clock or a random source: never reused.
const DYNAMIC: [&str; 2] = ["/clock.html", "/random.html"];
/// The pages the change round changes, one kind of change each.
const CHANGED: [&str; 7] =
    ["/text.html", "/css.html", "/img.html", "/font.html", "/script.html", "/json.html", "/redirect.html"];

fn page(title: &str, head: &str, body: &str) -> Response {
    Response::html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title>\
         <link rel=stylesheet href='/i/style.css'>{head}</head><body><h1>{title}</h1>{body}</body></html>"
    ))
}

fn css(body: &str) -> Response {
    Response::with_type(200, "text/css", body.as_bytes().to_vec())
}

fn font(path: &str) -> Response {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!("{path}: {e}; install the Debian package fonts-dejavu-core (CI installs it)")
    });
    Response::with_type(200, "font/ttf", bytes)
}

fn build_site(srv: &FixtureServer) {
    let links: String = STATIC
        .iter()
        .chain(DYNAMIC.iter())
        .filter(|k| **k != "/")
        .map(|k| format!("<a href='/i{k}'>{k}</a> "))
        .collect();
    srv.set("/i/", page("Index", "", &format!("<p>{links}</p>")));
    srv.set(
        "/i/style.css",
        css("body { margin: 0; font: 18px sans-serif; background: #fff } h1 { color: #223 }"),
    );
    for i in 1..=3 {
        srv.set(&format!("/i/s{i}.html"), page(&format!("Static {i}"), "", "<p>Nothing moves here.</p>"));
    }
    srv.set("/i/text.html", page("Text", "", "<p>The text as approved.</p>"));
    srv.set(
        "/i/css.html",
        page("Own style", "<link rel=stylesheet href='/i/only.css'>", "<p class=box>styled</p>"),
    );
    srv.set("/i/only.css", css(".box { background: #0a0; height: 80px; width: 300px }"));
    srv.set("/i/img.html", page("Image", "", "<img src='/i/pic.png' width=120 height=80>"));
    srv.set("/i/pic.png", Response::with_type(200, "image/png", solid_png(120, 80, [20, 120, 200, 255])));
    srv.set(
        "/i/font.html",
        page(
            "Font",
            "<style>@font-face { font-family: Web; src: url(/i/web.ttf) format('truetype') } \
             .f { font: 32px Web, monospace }</style>",
            "<p class=f>Hamburgefonstiv 0123456789</p>",
        ),
    );
    srv.set("/i/web.ttf", font(SANS));
    srv.set("/i/script.html", page("Script", "", "<p id=x>?</p><script src='/i/dom.js'></script>"));
    srv.set(
        "/i/dom.js",
        Response::with_type(200, "text/javascript", b"x.textContent = 'written by the script';".to_vec()),
    );
    srv.set(
        "/i/json.html",
        page(
            "JSON",
            "",
            "<p id=j>loading</p><script>fetch('/i/data.json').then(r => r.json()).then(d => { j.textContent = d.text; });</script>",
        ),
    );
    srv.set(
        "/i/data.json",
        Response::with_type(200, "application/json", br#"{"text": "from the API"}"#.to_vec()),
    );
    srv.set("/i/redirect.html", page("Redirect", "", "<img src='/i/logo' width=60 height=60>"));
    srv.set("/i/logo", Response::redirect("/i/logo-a.png"));
    srv.set("/i/logo-a.png", Response::with_type(200, "image/png", solid_png(60, 60, [200, 20, 20, 255])));
    srv.set("/i/logo-b.png", Response::with_type(200, "image/png", solid_png(60, 60, [20, 200, 20, 255])));
    // A long timer never fires during a capture (see the document-start script): still a timer.
    srv.set(
        "/i/frozen-timer.html",
        page("Timer-free", "", "<p id=t>static</p><script>setTimeout(() => {}, 0);</script>"),
    );
    srv.set(
        "/i/clock.html",
        page("Clock", "", "<p id=c></p><script>c.textContent = 'year ' + new Date().getFullYear();</script>"),
    );
    // The picture never changes, but the page reads a random source: it could.
    srv.set(
        "/i/random.html",
        page(
            "Random",
            "",
            "<p id=r></p><script>r.textContent = Math.random() < 2 ? 'always' : 'never';</script>",
        ),
    );
}

fn config(srv: &FixtureServer, extra: &str) -> String {
    format!(
        "[browser]\nsessions = 2\n\n[[sites]]\nname = \"inc\"\nstart = \"{}\"\nincremental = true\n\
         viewport = {{ width = 800, height = 600 }}\n{extra}",
        srv.url("/i/")
    )
}

/// Run a crawl; returns its JSON report (the exit code must be `code`).
async fn crawl(cfg: &str, extra: &[&str], code: i32) -> Value {
    let mut args = vec!["crawl", "inc", "--config", cfg, "--json"];
    args.extend_from_slice(extra);
    let out = run_sitediff(&args).await;
    assert_eq!(out.code, code, "{}\n{}", out.stdout, out.stderr);
    out.json()
}

/// Page keys of a report whose result satisfies `f`.
fn keys(j: &Value, f: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    j["page_results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| f(p))
        .map(|p| p["key"].as_str().unwrap().to_string())
        .collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_pages_are_reused_and_every_kind_of_change_is_rendered_and_flagged() {
    let srv = FixtureServer::start().await;
    build_site(&srv);
    let project = TempProject::new();
    let cfg = project.write_config(&config(&srv, ""));

    let first = crawl(&cfg, &[], 0).await;
    assert_eq!(first["new"].as_u64(), Some((STATIC.len() + DYNAMIC.len()) as u64), "{first}");
    assert_eq!(first["reused"], 0, "nothing approved yet: {first}");
    let first_id = first["crawl"].as_u64().unwrap();
    let out = run_sitediff(&["approve", "inc", "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Unchanged: every static page reused from the approved crawl, the clock and random pages
    // rendered (and unchanged).
    let j = crawl(&cfg, &[], 0).await;
    assert_eq!(j["incremental"], true, "{j}");
    assert_eq!(j["changed"], 0, "{j}");
    assert_eq!(j["unchanged"].as_u64(), Some((STATIC.len() + DYNAMIC.len()) as u64), "{j}");
    assert_eq!(j["reused"].as_u64(), Some(STATIC.len() as u64), "{j}");
    assert_eq!(keys(&j, |p| p["reused_from"].as_u64() == Some(first_id)), set(&STATIC), "{j}");
    assert!(keys(&j, |p| !p["reused_from"].is_null()).is_disjoint(&set(&DYNAMIC)), "{j}");

    // The record and the store agree.
    let store = sitediff::store::Store::open(&project.db_path()).unwrap();
    let rec = store.page(j["crawl"].as_u64().unwrap(), "/s1.html").unwrap().unwrap();
    assert_eq!(rec.reused_from, Some(first_id));
    let clock = store.page(first_id, "/clock.html").unwrap().unwrap().fingerprint.unwrap();
    assert!(clock.dynamic.iter().any(|d| d == "clock"), "{:?}", clock.dynamic);
    let random = store.page(first_id, "/random.html").unwrap().unwrap().fingerprint.unwrap();
    assert_eq!(random.dynamic, ["random"]);
    let json = store.page(first_id, "/json.html").unwrap().unwrap().fingerprint.unwrap();
    assert!(json.resources.iter().any(|r| r.url.ends_with("/i/data.json")), "{:?}", json.resources);
    drop(store);

    // One change of each kind, each on its own page.
    srv.set("/i/text.html", page("Text", "", "<p>The text as CHANGED.</p>"));
    srv.set("/i/only.css", css(".box { background: #a00; height: 80px; width: 300px }"));
    srv.set("/i/pic.png", Response::with_type(200, "image/png", solid_png(120, 80, [200, 120, 20, 255])));
    srv.set("/i/web.ttf", font(SERIF));
    srv.set(
        "/i/dom.js",
        Response::with_type(200, "text/javascript", b"x.textContent = 'the script CHANGED';".to_vec()),
    );
    srv.set(
        "/i/data.json",
        Response::with_type(200, "application/json", br#"{"text": "the API CHANGED"}"#.to_vec()),
    );
    srv.set("/i/logo", Response::redirect("/i/logo-b.png"));
    let j = crawl(&cfg, &[], 1).await;
    assert_eq!(keys(&j, |p| p["changed"] == true), set(&CHANGED), "each change flagged, nothing else: {j}");
    let unchanged_static: BTreeSet<String> = set(&STATIC).difference(&set(&CHANGED)).cloned().collect();
    assert_eq!(
        keys(&j, |p| !p["reused_from"].is_null()),
        unchanged_static,
        "exactly the changed pages rendered: {j}"
    );

    // A capture option changed: every page rendered.
    let cfg = project.write_config(&config(&srv, "inject_css = \"p { outline: 0 solid red }\"\n"));
    let j = crawl(&cfg, &[], 1).await;
    assert_eq!(j["reused"], 0, "{j}");

    // Back to the approved options: reused again ...
    let cfg = project.write_config(&config(&srv, ""));
    let j = crawl(&cfg, &[], 1).await;
    assert_eq!(j["reused"].as_u64(), Some(unchanged_static.len() as u64), "{j}");
    // ... but not with --full,
    let j = crawl(&cfg, &["--full"], 1).await;
    assert_eq!((j["reused"].as_u64(), &j["incremental"]), (Some(0), &Value::Bool(false)), "{j}");

    // ... nor when the approved captures were made by another browser build.
    let store = sitediff::store::Store::open(&project.db_path()).unwrap();
    for mut p in store.pages(first_id).unwrap() {
        if let Some(fp) = p.fingerprint.as_mut() {
            fp.browser = "Chrome/1.0 (revision 1; an older build)".into();
        }
        store.put_page(first_id, &p, &[]).unwrap();
    }
    drop(store);
    let j = crawl(&cfg, &[], 1).await;
    assert_eq!(j["reused"], 0, "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_every_renders_every_nth_crawl() {
    let srv = FixtureServer::start().await;
    srv.set("/i/", page("Index", "", "<p><a href='/i/s1.html'>one</a></p>"));
    srv.set("/i/style.css", css("body { margin: 0 }"));
    srv.set("/i/s1.html", page("Static 1", "", "<p>still</p>"));
    let project = TempProject::new();
    let cfg = project.write_config(&config(&srv, "full_every = 2\n"));
    crawl(&cfg, &[], 0).await;
    let out = run_sitediff(&["approve", "inc", "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The first crawl was incremental (nothing to reuse yet): the second is due for a full one.
    let reused: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(crawl(&cfg, &[], 0).await["reused"].as_u64().unwrap());
        }
        v
    };
    assert_eq!(reused, [0, 2, 0], "every 2nd crawl renders every page");
}
