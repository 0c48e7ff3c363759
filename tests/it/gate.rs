//! The release gate (issue 18): the CLI as a client of a real `sitediff serve` (crawl, pair,
//! approve, reject, status, report through the API; exit codes; `--no-wait`; token errors; the
//! daemon stopping mid-wait), `POST /api/pairs` bounded by `server.pair_prefixes`, `--wait-for`,
//! the JUnit report read by a real JUnit consumer (Python's junitparser) and the HTML report
//! opened from file:// in headless Chromium.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::helpers::{
    post_json, run_sitediff_in, sitediff_bin, Daemon, FixtureServer, Response, TempProject,
};

const TOKEN: &str = "gate-secret-token";

fn site_pages(srv: &FixtureServer, prefix: &str, n: usize, colour: &str) {
    let links: String = (1..=n).map(|i| format!("<a href='p{i}.html'>{i}</a> ")).collect();
    srv.set(prefix, Response::html(format!("<title>home</title><h1>Home</h1>{links}")));
    for i in 1..=n {
        srv.set(
            &format!("{prefix}p{i}.html"),
            Response::html(format!(
                "<title>p{i}</title><body style='background:{colour}'><h1>Page {i}</h1></body>"
            )),
        );
    }
}

fn config(srv: &FixtureServer, extra_server: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"GATE_DAEMON_TOKEN\"\n{extra_server}\n\
         [browser]\nsessions = 1\n\
         [[sites]]\nname = \"docs\"\nstart = \"{}\"\nviewport = {{ width = 640, height = 480 }}\n",
        srv.url("/docs/")
    )
}

fn start_daemon(cfg: &str) -> Daemon {
    Daemon::start_with_env(cfg, &[("GATE_DAEMON_TOKEN", TOKEN)])
}

/// Run the CLI as a client of `daemon` (with the token unless `token` is None).
async fn client(
    dir: &Path,
    daemon: &Daemon,
    token: Option<&str>,
    args: &[&str],
) -> crate::helpers::RunOutput {
    let mut env: Vec<(&str, &str)> = vec![("SITEDIFF_SERVER", daemon.base.as_str())];
    if let Some(t) = token {
        env.push(("SITEDIFF_TOKEN", t));
    }
    run_sitediff_in(Some(dir), &env, args).await
}

/// The directory junitparser was installed into by `scripts/install-test-tools`.
fn tools_pip() -> PathBuf {
    let dir = std::env::var("SITEDIFF_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/sitediff-tools"));
    let pip = dir.join("pip");
    assert!(
        pip.join("junitparser").is_dir(),
        "junitparser is missing from {}: run scripts/install-test-tools",
        pip.display()
    );
    pip
}

/// Read a JUnit file with junitparser: (tests, failures, errors, skipped, [(classname, name, result)]).
fn junit_counts(path: &Path) -> serde_json::Value {
    let script = r#"
import json, sys
from junitparser import JUnitXml, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
out = {"suites": 0, "tests": 0, "failures": 0, "errors": 0, "skipped": 0, "cases": []}
for suite in xml:
    out["suites"] += 1
    out["tests"] += suite.tests
    out["failures"] += suite.failures
    out["errors"] += suite.errors
    out["skipped"] += suite.skipped
    for case in suite:
        kinds = [type(r).__name__ for r in case.result]
        out["cases"].append([case.classname, case.name, kinds])
print(json.dumps(out))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .env("PYTHONPATH", tools_pip())
        .output()
        .expect("run python3");
    assert!(out.status.success(), "junitparser failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Open `index` from file:// in headless Chromium: (images, images loaded, resource URLs).
async fn open_html_report(index: &Path) -> (u64, u64, Vec<String>) {
    use sitediff::capture::{find_chromedriver, ChromeDriver};
    let cancel = tokio_util::sync::CancellationToken::new();
    let driver = ChromeDriver::spawn(&find_chromedriver(None).unwrap(), &cancel).await.unwrap();
    let cfg = sitediff::config::Config::parse("", Path::new("/tmp/x/sitediff.toml")).unwrap();
    let caps = sitediff::capture::pool::capabilities(&cfg.browser, true);
    let mut builder = fantoccini::ClientBuilder::rustls().unwrap();
    builder.capabilities(caps);
    let browser = builder.connect(driver.url().as_str()).await.unwrap();
    browser.goto(&format!("file://{}", index.display())).await.unwrap();
    let js = r#"
        const imgs = [...document.images];
        await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = r; i.onerror = r; })));
        return [imgs.length, imgs.filter(i => i.complete && i.naturalWidth > 0).length,
                performance.getEntriesByType('resource').map(e => e.name)];
    "#;
    let v = browser.execute(&format!("return (async () => {{ {js} }})()"), vec![]).await.unwrap();
    browser.close().await.unwrap();
    std::sync::Arc::new(driver).shutdown().await;
    let urls = v[2].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()).collect();
    (v[0].as_u64().unwrap(), v[1].as_u64().unwrap(), urls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mode_crawls_reviews_and_reports_through_the_daemon() {
    let srv = FixtureServer::start().await;
    site_pages(&srv, "/docs/", 3, "white");
    srv.set("/ready", Response::html("ok"));
    srv.set("/never-ready", Response::status(503, "deploying"));
    let project = TempProject::new();
    let cfg = project.write_config(&config(&srv, ""));
    let daemon = start_daemon(&cfg);
    let dir = project.dir.path();

    // The token missing or wrong: a clear message and exit 2, nothing started.
    let out = client(dir, &daemon, None, &["crawl", "docs"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("needs a write token") && out.stderr.contains("SITEDIFF_TOKEN"),
        "{}",
        out.stderr
    );
    let out = client(dir, &daemon, Some("wrong"), &["crawl", "docs"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("refused the token in SITEDIFF_TOKEN"), "{}", out.stderr);

    // The first crawl: every page new, nothing over threshold: exit 0, the local JSON shape.
    let out =
        client(dir, &daemon, Some(TOKEN), &["crawl", "docs", "--json", "--wait-for", &srv.url("/ready")])
            .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, daemon.log());
    let first = out.json();
    assert_eq!(first["site"], "docs");
    assert_eq!(first["new"], 4, "{first}");
    assert_eq!(first["page_results"].as_array().unwrap().len(), 4);
    let first_id = first["crawl"].as_u64().unwrap();

    // Approve it through the daemon (another variable named with --token-env).
    let out = run_sitediff_in(
        Some(dir),
        &[("SITEDIFF_SERVER", daemon.base.as_str()), ("CI_SITEDIFF", TOKEN)],
        &["approve", "docs", "--token-env", "CI_SITEDIFF"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("crawl {first_id} of docs approved")), "{}", out.stderr);

    // A change: exit 1, with the JUnit and HTML reports written from the daemon's records.
    srv.set(
        "/docs/p2.html",
        Response::html("<title>p2</title><body style='background:#c00'><h1>Changed</h1></body>"),
    );
    let junit = dir.join("junit.xml");
    let html = dir.join("html");
    let (j, h) = (junit.display().to_string(), html.display().to_string());
    let out =
        client(dir, &daemon, Some(TOKEN), &["crawl", "docs", "--json", "--junit", &j, "--html", &h]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let second = out.json();
    assert_eq!(second["changed"], 1, "{second}");
    assert_eq!(second["page_results"][0]["key"], "/p2.html");
    let second_id = second["crawl"].as_u64().unwrap();
    let parsed = junit_counts(&junit);
    assert_eq!((parsed["suites"].as_u64(), parsed["tests"].as_u64()), (Some(1), Some(4)), "{parsed}");
    assert_eq!((parsed["failures"].as_u64(), parsed["errors"].as_u64()), (Some(1), Some(0)), "{parsed}");
    assert!(parsed["cases"].as_array().unwrap().contains(&serde_json::json!([
        "docs",
        "/p2.html",
        ["Failure"]
    ])));
    let (images, loaded, urls) = open_html_report(&html.join("index.html")).await;
    assert_eq!(images, 3, "baseline, capture and diff of the changed page");
    assert_eq!(loaded, images, "every image loads from file://");
    assert!(urls.iter().all(|u| u.starts_with("file://")), "only local files are requested: {urls:?}");
    let index = std::fs::read_to_string(html.join("index.html")).unwrap();
    assert!(!index.contains("src=\"http"), "no remote resource in the report");

    // The same report from the local store (read beside the daemon) and through the daemon.
    let id = second_id.to_string();
    let local = run_sitediff_in(Some(dir), &[], &["report", &id, "--format", "junit", "-c", &cfg]).await;
    assert_eq!(local.code, 0, "{}", local.stderr);
    let remote = client(dir, &daemon, None, &["report", &id, "--format", "junit"]).await;
    assert_eq!(remote.code, 0, "{}", remote.stderr);
    // Alike but for the UI address in the links (local: server.listen; remote: --server).
    assert_eq!(local.stdout.matches("<failure").count(), 1, "{}", local.stdout);
    assert_eq!(remote.stdout.matches("<testcase").count(), 4, "{}", remote.stdout);
    assert_eq!(local.stdout.replace("http://127.0.0.1:0", "UI"), remote.stdout.replace(&daemon.base, "UI"));

    // Status and reject through the daemon.
    let out = client(dir, &daemon, None, &["status", "docs", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["sites"][0]["latest"]["id"].as_u64(), Some(second_id));
    let out = client(dir, &daemon, Some(TOKEN), &["reject", "docs"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("crawl {second_id} of docs rejected")), "{}", out.stderr);

    // --no-wait: the id at once, exit 0; the crawl then finishes on its own.
    let out = client(dir, &daemon, Some(TOKEN), &["crawl", "docs", "--no-wait", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let third = out.json()["crawl"].as_u64().unwrap();
    assert!(third > second_id);
    crate::helpers::wait_for(Duration::from_secs(120), "the --no-wait crawl to finish", || {
        let url = daemon.url(&format!("/api/crawls/{third}/progress?wait=5&since=0"));
        async move {
            let (_, body) = crate::helpers::http_get(&url).await;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (v["running"] == false).then_some(())
        }
    })
    .await;

    // --wait-for a server that never gets ready: exit 2 naming it, nothing started.
    let never = srv.url("/never-ready");
    let out =
        client(dir, &daemon, Some(TOKEN), &["crawl", "docs", "--wait-for", &never, "--wait-timeout", "2"])
            .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no 2xx answer within 2 s") && out.stderr.contains("HTTP 503"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_through_the_api_only_for_allowed_prefixes() {
    let srv = FixtureServer::start().await;
    site_pages(&srv, "/prod/", 2, "white");
    site_pages(&srv, "/pr-7/", 2, "white");
    srv.set(
        "/pr-7/p2.html",
        Response::html("<title>p2</title><body style='background:#00c'><h1>New look</h1></body>"),
    );
    let project = TempProject::new();
    let allowed = format!("pair_prefixes = [\"{}\", \"{}\"]", srv.url("/prod/"), srv.url("/pr-7/"));
    let cfg = project.write_config(&config(&srv, &allowed));
    let daemon = start_daemon(&cfg);
    let dir = project.dir.path();
    let (base, head) = (srv.url("/prod/"), srv.url("/pr-7/"));

    let out = client(dir, &daemon, Some(TOKEN), &["pair", "--base", &base, "--head", &head, "--json"]).await;
    assert_eq!(out.code, 1, "one page differs: {}\n{}", out.stderr, daemon.log());
    let r = out.json();
    assert_eq!(r["kind"], "pair");
    assert_eq!(r["changed"], 1, "{r}");
    assert_eq!(r["compare_to"].as_str(), Some(base.as_str()));

    // Outside the list: 403 with the reason, and exit 2 from the CLI.
    let other = format!("http://localhost:{}/pr-7/", srv.addr.port());
    let out = client(dir, &daemon, Some(TOKEN), &["pair", "--base", &base, "--head", &other]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("403") && out.stderr.contains("server.pair_prefixes"), "{}", out.stderr);
    let (code, body) =
        post_json_body(&daemon.url("/api/pairs"), serde_json::json!({ "base": other, "head": head })).await;
    assert_eq!(code, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("base"), "{body}");
    // No token: 401 before anything else.
    let (code, _) = post_json(&daemon.url("/api/pairs"), None).await;
    assert_eq!(code, 401);
}

async fn post_json_body(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    (code, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_stopping_mid_wait_is_exit_2_not_a_hang() {
    let srv = FixtureServer::start().await;
    let links: String = (1..=40).map(|i| format!("<a href='p{i}.html'>{i}</a> ")).collect();
    srv.set("/docs/", Response::html(format!("<title>home</title>{links}")));
    for i in 1..=40 {
        srv.set(
            &format!("/docs/p{i}.html"),
            Response::html("<h1>slow</h1>").delayed(Duration::from_millis(400)),
        );
    }
    let project = TempProject::new();
    let cfg = project.write_config(&config(&srv, ""));
    let mut daemon = start_daemon(&cfg);
    let mut child = std::process::Command::new(sitediff_bin())
        .args(["crawl", "docs"])
        .env("SITEDIFF_SERVER", &daemon.base)
        .env("SITEDIFF_TOKEN", TOKEN)
        .env_remove("SITEDIFF_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the crawl is under way (pages done), then stop the daemon.
    crate::helpers::wait_for(Duration::from_secs(60), "the crawl to be under way", || {
        let url = daemon.url("/api/sites/docs/crawls");
        async move {
            let (_, body) = crate::helpers::http_get(&url).await;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let id = v["crawls"][0]["id"].as_u64()?;
            let (_, p) = crate::helpers::http_get(
                &url.replace("/sites/docs/crawls", &format!("/crawls/{id}/progress")),
            )
            .await;
            let p: serde_json::Value = serde_json::from_str(&p).ok()?;
            (p["done"].as_u64()? >= 2).then_some(())
        }
    })
    .await;
    // The long poll: asked with the version just seen, it answers only once something moved.
    let (_, crawls) = crate::helpers::http_get(&daemon.url("/api/sites/docs/crawls")).await;
    let id = serde_json::from_str::<serde_json::Value>(&crawls).unwrap()["crawls"][0]["id"].as_u64().unwrap();
    let progress = daemon.url(&format!("/api/crawls/{id}/progress"));
    let (_, now) = crate::helpers::http_get(&progress).await;
    let now: serde_json::Value = serde_json::from_str(&now).unwrap();
    let seen = now["version"].as_u64().unwrap();
    let (_, next) = crate::helpers::http_get(&format!("{progress}?wait=8&since={seen}")).await;
    let next: serde_json::Value = serde_json::from_str(&next).unwrap();
    assert!(next["version"].as_u64().unwrap() > seen || next["running"] == false, "{now} -> {next}");
    assert!(next["done"].as_u64() >= now["done"].as_u64(), "{now} -> {next}");
    let (code, _) = daemon.terminate(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", daemon.log());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the client hangs after the daemon stopped");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted") || stderr.contains("cannot reach the daemon"), "{stderr}");
}
