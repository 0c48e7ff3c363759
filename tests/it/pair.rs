//! Pair Diff, URL lists, supplied images and the structural site diff, end to end with the real
//! browser, real fixture servers on 127.0.0.1:0, the CLI and the daemon.

use std::collections::BTreeMap;
use std::time::Duration;

use sitediff::diff::{encode_png, RgbaImage};
use sitediff::store::Store;

use crate::helpers::{
    http_get, metric_value, run_sitediff, solid_png, wait_for, Daemon, FixtureServer, Response, TempProject,
};

fn page(title: &str, body: &str) -> Response {
    Response::html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title>\
         <style>body{{margin:0;font:16px sans-serif}} p{{font-size:32px}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    ))
}

/// The index links every page either side may have, so it renders the same on both.
const INDEX_LINKS: &str =
    "<a href='a.html'>a</a> <a href='b.html'>b</a> <a href='c.html'>c</a> <a href='d.html'>d</a>";

/// Base: /, a, b, c. Head: /, a, b (text changed), d (added); c is gone (404).
fn serve_pair(base: &FixtureServer, head: &FixtureServer) {
    for srv in [base, head] {
        srv.set("/site/", page("Index", INDEX_LINKS));
        srv.set("/site/a.html", page("A", "<p>same on both sides</p>"));
    }
    base.set("/site/b.html", page("B", "<p>old wording</p>"));
    head.set("/site/b.html", page("B", "<p>NEW WORDING, much longer than before</p>"));
    base.set("/site/c.html", page("C", "<p>only on the base</p>"));
    head.set("/site/d.html", page("D", "<p>only on the head</p>"));
}

fn by_key(j: &serde_json::Value) -> BTreeMap<String, String> {
    j["page_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["key"].as_str().unwrap().to_string(), p["change"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_flags_exactly_the_changed_added_and_removed_pages() {
    let (base, head) = (FixtureServer::start().await, FixtureServer::start().await);
    serve_pair(&base, &head);
    let project = TempProject::new();
    let cfg = project.write_config("[browser]\nsessions = 2\n");
    let out = run_sitediff(&[
        "pair",
        "--base",
        &base.url("/site/"),
        "--head",
        &head.url("/site/"),
        "--config",
        &cfg,
        "--json",
    ])
    .await;
    assert_eq!(out.code, 1, "differences found means exit 1\n{}", out.stderr);
    let j = out.json();
    assert_eq!(j["kind"], "pair");
    assert_eq!(j["compare_to"].as_str().unwrap(), base.url("/site/"));
    let changes = by_key(&j);
    let expected: BTreeMap<String, String> = [
        ("/", "unchanged"),
        ("/a.html", "unchanged"),
        ("/b.html", "changed"),
        ("/c.html", "removed"),
        ("/d.html", "added"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(changes, expected, "{}", out.stdout);
    assert_eq!(
        (j["changed"].as_u64(), j["added"].as_u64(), j["removed"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    let st = &j["structure"];
    assert_eq!(
        (st["added"].as_u64(), st["removed"].as_u64(), st["unchanged"].as_u64()),
        (Some(1), Some(1), Some(3))
    );
    assert_eq!(st["removed_keys"], serde_json::json!(["/c.html"]));

    // The stored records: both sides' captures, a diff only for the changed page.
    let site = j["site"].as_str().unwrap().to_string();
    assert!(site.starts_with("pair-127.0.0.1-"), "{site}");
    let crawl = j["crawl"].as_u64().unwrap();
    {
        let store = Store::open(&project.db_path()).unwrap();
        let b = store.page(crawl, "/b.html").unwrap().unwrap();
        assert!(b.png.is_some() && b.baseline_png.is_some() && b.diff.is_some());
        assert!(b.distortion.unwrap() > 0.0);
        let a = store.page(crawl, "/a.html").unwrap().unwrap();
        assert_eq!(a.distortion, Some(0.0));
        let c = store.page(crawl, "/c.html").unwrap().unwrap();
        assert!(c.png.is_none() && c.baseline_png.is_some(), "a removed page keeps its base capture");
        let d = store.page(crawl, "/d.html").unwrap().unwrap();
        assert!(d.png.is_some() && d.baseline_png.is_none());
    }
    // Reviewable like any crawl, without making baselines.
    let out = run_sitediff(&["approve", &site, "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let store = Store::open(&project.db_path()).unwrap();
    assert_eq!(store.crawl(crawl).unwrap().unwrap().status.as_str(), "approved");
    assert!(store.baselines(&site).unwrap().is_empty(), "pair crawls never set baselines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_list_captures_at_per_url_viewports() {
    let srv = FixtureServer::start().await;
    for name in ["wide", "narrow", "listed"] {
        srv.set(&format!("/l/{name}.html"), page(name, "<p>a page of a URL list</p>"));
    }
    let project = TempProject::new();
    std::fs::write(project.dir.path().join("urls.txt"), "# from a file\nlisted.html\n").unwrap();
    let cfg = project.write_config(&format!(
        "[[sites]]\nname = \"list\"\nstart = \"{}\"\ncrawl = false\nviewport = {{ width = 800, height = 600 }}\n\
         urls = [\"wide.html\", {{ url = \"narrow.html\", viewport = {{ width = 375, height = 600 }} }}]\n\
         urls_file = \"urls.txt\"\n",
        srv.url("/l/")
    ));
    let out = run_sitediff(&["crawl", "list", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    let keys: Vec<String> = by_key(&j).into_keys().collect();
    assert_eq!(keys, ["/listed.html", "/narrow.html", "/wide.html"], "only the listed pages");
    let store = Store::open(&project.db_path()).unwrap();
    let crawl = j["crawl"].as_u64().unwrap();
    let width = |k: &str| store.page(crawl, k).unwrap().unwrap().width;
    assert_eq!(width("/narrow.html"), 375);
    assert_eq!(width("/wide.html"), 800);
    assert_eq!(width("/listed.html"), 800);
    assert!(!srv.hits().iter().any(|h| h == "/l/"), "crawl = false: the start page is not fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_dir_twice_flags_only_the_changed_image() {
    let project = TempProject::new();
    let cfg = project.write_config(
        "[[sites]]\nname = \"shots\"\nstart = \"http://127.0.0.1:9/app/\"\nmax_distortion = 0.001\n",
    );
    let dir = project.dir.path().join("shots");
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("index.png"), solid_png(40, 30, [10, 20, 200, 255])).unwrap();
    std::fs::write(dir.join("docs/intro.html.png"), solid_png(40, 60, [200, 200, 200, 255])).unwrap();
    std::fs::write(dir.join("%2F.png"), solid_png(20, 20, [0, 0, 0, 255])).unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let dir_s = dir.display().to_string();

    let out = run_sitediff(&["upload", "shots", &dir_s, "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 0, "first upload: all pages new\n{}", out.stderr);
    let j = out.json();
    assert_eq!(j["kind"], "upload");
    let changes = by_key(&j);
    assert_eq!(changes.keys().collect::<Vec<_>>(), ["/", "/docs/intro.html", "/index"]);
    assert!(changes.values().all(|c| c == "new"), "{changes:?}");
    let out = run_sitediff(&["approve", "shots", "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Second upload: one image changed (a red band over the top), one left out.
    let mut data = vec![200u8; 40 * 60 * 4];
    for (i, px) in data.chunks_mut(4).enumerate() {
        px[3] = 255;
        if i < 40 * 10 {
            px.copy_from_slice(&[255, 0, 0, 255]);
        }
    }
    let changed = encode_png(&RgbaImage { width: 40, height: 60, data }).unwrap();
    std::fs::write(dir.join("docs/intro.html.png"), &changed).unwrap();
    std::fs::remove_file(dir.join("%2F.png")).unwrap();
    let out = run_sitediff(&["upload", "shots", &dir_s, "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 1, "one image changed\n{}", out.stderr);
    let j = out.json();
    let changes = by_key(&j);
    assert_eq!(changes["/docs/intro.html"], "changed");
    assert_eq!(changes["/index"], "unchanged");
    assert_eq!(changes.len(), 2);
    assert_eq!(
        j["structure"]["removed_keys"],
        serde_json::json!(["/"]),
        "the missing image is a removed page"
    );
    assert_eq!(j["structure"]["against"].as_u64(), j["crawl"].as_u64().map(|c| c - 1));

    // Approve works as for crawls: the changed image becomes the baseline.
    let out = run_sitediff(&["approve", "shots", "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let store = Store::open(&project.db_path()).unwrap();
    let b = store.baseline("shots", "/docs/intro.html").unwrap().unwrap();
    assert_eq!(b.png, sitediff::store::Hash::of(&changed));
    assert_eq!(store.baseline("shots", "/").unwrap().unwrap().crawl, 1, "a left-out page keeps its baseline");
}

fn multipart(parts: &[(&str, &str, &[u8])], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                 Content-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_api_needs_the_token_and_pair_sites_sweep_in_the_daemon() {
    let (base, head) = (FixtureServer::start().await, FixtureServer::start().await);
    serve_pair(&base, &head);
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SITEDIFF_PAIR_TEST_TOKEN\"\n\n\
         [[sites]]\nname = \"up\"\nstart = \"http://127.0.0.1:9/up/\"\n\n\
         [[sites]]\nname = \"stage\"\nstart = \"{}\"\ncompare_to = \"{}\"\n",
        head.url("/site/"),
        base.url("/site/")
    ));
    let daemon = Daemon::start_with_env(&cfg, &[("SITEDIFF_PAIR_TEST_TOKEN", "s3cret")]);
    let client = reqwest::Client::new();
    let png = solid_png(16, 16, [1, 2, 3, 255]);
    let boundary = "XyZboundary42";
    let body = multipart(&[("image", "home.png", &png), ("/", "root.png", &png)], boundary);
    let post = |token: Option<&str>| {
        let mut r = client
            .post(daemon.url("/api/sites/up/uploads"))
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(post(Some("wrong")).await.unwrap().status().as_u16(), 401);
    let resp = post(Some("s3cret")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let crawl: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(crawl["kind"], "upload");
    assert_eq!(crawl["counts"]["pages"], 2);
    assert_eq!(crawl["needs_review"], true);
    let (code, listing) = http_get(&daemon.url(&format!("/api/crawls/{}", crawl["id"]))).await;
    assert_eq!(code, 200);
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let keys: std::collections::BTreeSet<String> =
        listing["pages"].as_array().unwrap().iter().map(|p| p["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys, ["/".to_string(), "/home".to_string()].into());
    // Not a PNG: refused, nothing stored.
    let bad = multipart(&[("image", "x.png", b"GIF89a not a png")], boundary);
    let resp = client
        .post(daemon.url("/api/sites/up/uploads"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .bearer_auth("s3cret")
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let (_, metrics) = http_get(&daemon.url("/metrics")).await;
    assert_eq!(metric_value(&metrics, "sitediff_site_pages{change=\"added\",site=\"up\"}"), Some(2.0));

    // A site with compare_to runs pair sweeps in the daemon.
    let resp = client.post(daemon.url("/api/sites/stage/crawl")).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let crawl = wait_for(Duration::from_secs(120), "the pair sweep to finish", || async {
        let (_, text) = http_get(&daemon.url("/api/sites/stage/crawls")).await;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let c = v["crawls"].get(0)?.clone();
        (c["status"] == "reviewing").then_some(c)
    })
    .await;
    assert_eq!(crawl["kind"], "pair");
    let counts = &crawl["counts"];
    assert_eq!(
        (counts["changed"].as_u64(), counts["added"].as_u64(), counts["removed"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    let (_, metrics) = http_get(&daemon.url("/metrics")).await;
    for (change, n) in
        [("added", 1.0), ("removed", 1.0), ("unchanged", 3.0), ("redirected", 0.0), ("error", 0.0)]
    {
        let series = format!("sitediff_site_pages{{change=\"{change}\",site=\"stage\"}}");
        assert_eq!(metric_value(&metrics, &series), Some(n), "{series}\n{}", daemon.log());
    }
    // The crawl view shows the pair and its structure.
    let (code, html) = http_get(&daemon.url(&format!("/crawls/{}", crawl["id"]))).await;
    assert_eq!(code, 200);
    assert!(html.contains("id=\"structure\"") && html.contains("Pair diff"), "{html}");
    assert!(html.contains("removed (1)") && html.contains("added (1)"), "filter tabs for pair pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structural_diff_against_the_approved_crawl() {
    let srv = FixtureServer::start().await;
    let links = "<a href='keep.html'>k</a> <a href='gone.html'>g</a> <a href='moved.html'>m</a> \
                 <a href='broken.html'>b</a> <a href='fresh.html'>f</a>";
    srv.set("/s/", page("Index", links));
    for p in ["keep", "gone", "moved", "broken"] {
        srv.set(&format!("/s/{p}.html"), page(p, "<p>x</p>"));
    }
    let project = TempProject::new();
    let cfg = project.write_config(&format!("[[sites]]\nname = \"s\"\nstart = \"{}\"\n", srv.url("/s/")));
    let out = run_sitediff(&["crawl", "s", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 1, "fresh.html newly failed: exit 1\n{}", out.stderr);
    let st = &out.json()["structure"];
    assert_eq!(st["against"], serde_json::Value::Null);
    assert_eq!(st["added"].as_u64(), Some(5), "no approved crawl: every answering page is added");
    assert_eq!(st["error"].as_u64(), Some(1), "fresh.html is a 404 for now");
    assert_eq!(run_sitediff(&["approve", "s", "--config", &cfg]).await.code, 0);

    srv.remove("/s/gone.html");
    srv.set("/s/moved.html", Response::redirect("/s/new-home.html"));
    srv.set("/s/new-home.html", page("moved", "<p>x</p>"));
    srv.set("/s/broken.html", Response::status(500, "<h1>boom</h1>"));
    srv.set("/s/fresh.html", page("fresh", "<p>new</p>"));
    let out = run_sitediff(&["crawl", "s", "--config", &cfg, "--json"]).await;
    let j = out.json();
    let st = &j["structure"];
    assert_eq!(st["against"].as_u64(), Some(1));
    assert_eq!(st["added_keys"], serde_json::json!(["/fresh.html"]));
    assert_eq!(st["redirects"], serde_json::json!([{ "from": "/moved.html", "to": "/new-home.html" }]));
    assert_eq!(st["error_keys"], serde_json::json!(["/broken.html", "/gone.html"]));
    assert_eq!(st["removed"].as_u64(), Some(0), "gone.html answers 404: an error, not silently removed");
    assert_eq!(st["unchanged"].as_u64(), Some(2), "/ and keep.html");

    // Unlink a page: now it is removed.
    srv.set("/s/", page("Index", "<a href='keep.html'>k</a>"));
    let out = run_sitediff(&["crawl", "s", "--config", &cfg, "--json"]).await;
    let st = &out.json()["structure"];
    assert_eq!(
        st["removed_keys"],
        serde_json::json!(["/broken.html", "/gone.html", "/moved.html"]),
        "{}",
        out.stdout
    );
}
