//! Mistakes explained (issue 16, point 4), each checked by the message the user sees: the built
//! binary on a real config, real HTTP fixture servers, real Chromium, and a real daemon.

use std::time::Duration;

use crate::helpers::{sitediff_bin, wait_for, Daemon, FixtureServer, Response, RunOutput, TempProject};

/// The variable the daemon tests keep their write token in.
const TOKEN_ENV: &str = "SITEDIFF_TEST_MISTAKES_TOKEN";
const TOKEN: &str = "mistakes-token";

/// Run the binary in `dir` with `env` (SITEDIFF_CONFIG removed unless given).
async fn run_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> RunOutput {
    let mut cmd = std::process::Command::new(sitediff_bin());
    cmd.args(args).current_dir(dir).env_remove("SITEDIFF_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run sitediff")).await.expect("join");
    RunOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn run(project: &TempProject, args: &[&str]) -> RunOutput {
    run_in(project.dir.path(), args, &[]).await
}

#[tokio::test]
async fn every_unknown_key_is_reported_at_once_with_a_did_you_mean() {
    let project = TempProject::new();
    // write_config puts `[store]` and its `path` on lines 1-2.
    let cfg = project.write_config(
        "[server]\nlistn = \"127.0.0.1:0\"\n\n[[sites]]\nname = \"docs\"\nstart = \"http://127.0.0.1:1/\"\nthreshhold = 0.2\nmask_selector = [\".ad\"]\n",
    );
    let out = run(&project, &["status", "--config", &cfg]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines[0], format!("sitediff: error: config file {cfg} has 3 problem(s):"), "{}", out.stderr);
    assert_eq!(
        lines[1..],
        [
            "  - line 5: server.listn: unknown key, did you mean \"listen\"?",
            "  - line 10: sites[0].threshhold: unknown key, did you mean \"threshold\"?",
            "  - line 11: sites[0].mask_selector: unknown key, did you mean \"mask_selectors\"?",
        ],
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_missing_config_file_names_the_flag_the_variable_and_the_path_tried() {
    let project = TempProject::new();
    let dir = project.dir.path();
    let check = |out: &RunOutput, tried: &str, origin: &str| {
        assert_eq!(out.code, 2, "{}", out.stderr);
        let msg = out.stderr.trim_end();
        assert!(msg.contains(&format!("looked for {tried})")), "the path tried: {msg}");
        assert!(msg.contains(origin), "why there: {msg}");
        assert!(
            msg.ends_with("name the config file with --config PATH or the SITEDIFF_CONFIG variable"),
            "{msg}"
        );
        assert!(!msg.contains("os error"), "no raw OS error, let alone twice: {msg}");
    };
    let default = dir.join("config/sitediff.toml");
    let out = run_in(dir, &["status"], &[]).await;
    check(&out, &default.display().to_string(), "neither --config nor SITEDIFF_CONFIG is set");
    assert!(
        out.stderr.starts_with("sitediff: error: config file config/sitediff.toml not found"),
        "{}",
        out.stderr
    );

    let out = run_in(dir, &["crawl", "docs", "--config", "nope.toml"], &[]).await;
    check(&out, &dir.join("nope.toml").display().to_string(), "(given with --config;");

    let out = run_in(dir, &["approve", "docs"], &[("SITEDIFF_CONFIG", "/nonexistent/s.toml")]).await;
    check(&out, "/nonexistent/s.toml", "(named by SITEDIFF_CONFIG;");
}

fn page(title: &str, body: &str) -> Response {
    Response::html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"
    ))
}

fn site_config(start: &str, extra: &str) -> String {
    format!(
        "[browser]\nsessions = 1\n\n[[sites]]\nname = \"docs\"\nstart = \"{start}\"\nviewport = {{ width = 480, height = 320 }}\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_whose_start_page_fails_exits_2_naming_the_url_and_the_answer() {
    let srv = FixtureServer::start().await;
    let project = TempProject::new();

    // A start page answering 404 (the fixture answers 404 for anything not set).
    let start = srv.url("/docs/");
    let cfg = project.write_config(&site_config(&start, ""));
    let out = run(&project, &["crawl", "docs", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "sitediff: error: site docs: the start page {start} answered HTTP 404 Not Found: check the site's `start` URL"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // A start URL nothing answers at.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{port}/docs/");
    let cfg = project.write_config(&site_config(&dead, ""));
    let out = run(&project, &["crawl", "docs", "--config", &cfg]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let want = format!("sitediff: error: site docs: the start page {dead} did not answer (");
    assert!(out.stderr.contains(&want) && out.stderr.contains("is the site up?"), "{}", out.stderr);

    // Both crawls are recorded failed with that message (the status report on stdout says so).
    let out = run(&project, &["status", "docs", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let crawls = out.json()["sites"][0]["crawls"].as_array().unwrap().clone();
    let statuses: Vec<&str> = crawls.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "failed"], "{crawls:?}");
    let out = run(&project, &["status", "--config", &cfg]).await;
    assert!(
        out.stdout.contains(&format!("\n  error: {}", want.trim_start_matches("sitediff: error: "))),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_naming_a_file_crawls_one_page_and_says_which_prefix_was_meant() {
    let srv = FixtureServer::start().await;
    srv.set(
        "/docs/index.html",
        page("Docs", "<a href='a.html'>a</a> <a href='b.html'>b</a> <a href='/docs/c/'>c</a> <a href='http://other.invalid/x'>x</a>"),
    );
    for p in ["/docs/a.html", "/docs/b.html", "/docs/c/"] {
        srv.set(p, page(p, ""));
    }
    let project = TempProject::new();
    let start = srv.url("/docs/index.html");
    let cfg = project.write_config(&site_config(&start, &format!("prefix = \"{start}\"\n")));

    let out = run(&project, &["crawl", "docs", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    assert_eq!(j["pages"], 1, "{j}");
    let dir = srv.url("/docs/");
    let want = format!(
        "only the start page was crawled: it has 3 links outside the prefix {start} (e.g. {dir}a.html, \
         {dir}b.html, {dir}c/); the prefix names a file, not a directory: did you mean prefix = \"{dir}\"?"
    );
    assert_eq!(j["warnings"], serde_json::json!([want]), "{j}");

    // The human report says it too, and the crawl record keeps it (status reads it back).
    let out = run(&project, &["crawl", "docs", "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("warning: {want}")), "{}", out.stderr);
    let out = run(&project, &["status", "docs", "--config", &cfg, "--json"]).await;
    assert_eq!(out.json()["sites"][0]["latest_pages"]["warnings"], serde_json::json!([want]));
    let out = run(&project, &["status", "--config", &cfg]).await;
    assert!(out.stdout.contains(&format!("\n  warning: {want}\n")), "{}", out.stdout);

    // With the directory as the prefix the same site crawls whole, without a warning.
    let cfg = project.write_config(&site_config(&start, &format!("prefix = \"{dir}\"\n")));
    let out = run(&project, &["crawl", "docs", "--config", &cfg, "--json"]).await;
    let j = out.json();
    assert_eq!((j["pages"].as_u64(), &j["warnings"]), (Some(4), &serde_json::json!([])), "{j}");
}

async fn post(url: &str) -> (u16, serde_json::Value) {
    crate::helpers::post_json(url, Some(TOKEN)).await
}

async fn get_json(url: &str) -> serde_json::Value {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_answers_triggers_with_the_crawl_id_status_reads_beside_it_and_failures_show_their_referrer(
) {
    let srv = FixtureServer::start().await;
    srv.set("/s/", page("Home", "<a href='ok.html'>ok</a> <a href='gone.html'>broken</a>"));
    srv.set("/s/ok.html", page("OK", "<a href='deeper/missing.html'>deeper</a>"));
    // gone.html and deeper/missing.html are not set: 404.
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\n\n{}",
        site_config(&srv.url("/s/"), "")
    ));
    let daemon = Daemon::start_with_env(&cfg, &[(TOKEN_ENV, TOKEN)]);

    // The trigger answers with the new crawl's id, and that crawl exists at once.
    let (code, v) = post(&daemon.url("/api/sites/docs/crawl")).await;
    assert_eq!(code, 202, "{v}");
    let id = v["crawl"].as_u64().unwrap_or_else(|| panic!("no crawl id in {v}"));
    assert_eq!(v["url"], format!("/api/crawls/{id}"));
    let c = get_json(&daemon.url(&format!("/api/crawls/{id}"))).await;
    assert_eq!(c["crawl"]["site"], "docs", "{c}");
    let crawl_url = daemon.url(&format!("/api/crawls/{id}"));
    let c = wait_for(Duration::from_secs(90), "the triggered crawl to finish", || {
        let url = crawl_url.clone();
        async move {
            let c = get_json(&url).await;
            (c["crawl"]["status"] != "running").then_some(c)
        }
    })
    .await;
    assert_eq!(c["crawl"]["status"], "reviewing", "{c}");

    // Failed pages name the page that links to them (API and UI), and say their status once.
    let pages = c["pages"].as_array().unwrap();
    let referrer = |key: &str| pages.iter().find(|p| p["key"] == key).map(|p| p["referrer"].clone());
    assert_eq!(referrer("/gone.html"), Some(serde_json::json!("/")), "{c}");
    assert_eq!(referrer("/deeper/missing.html"), Some(serde_json::json!("/ok.html")), "{c}");
    assert_eq!(referrer("/"), Some(serde_json::Value::Null), "the start page has none");
    let html =
        reqwest::get(daemon.url(&format!("/crawls/{id}?filter=failed"))).await.unwrap().text().await.unwrap();
    assert!(!html.contains("HTTP 404 · HTTP 404"), "{html}");
    assert_eq!(html.matches("HTTP 404 Not Found").count(), 2, "{html}");
    assert!(html.contains("linked from <a href=\"/crawls/"), "{html}");
    assert!(html.contains(">/ok.html</a>"), "{html}");

    // `status` reads beside the running daemon, on stdout; writing commands are still refused.
    let out = run(&project, &["status", "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with(&format!("docs: crawl {id} reviewing — 4 pages, 0 changed, 2 new, 2 failed")),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    let out = run(&project, &["status", "docs", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["sites"][0]["latest"]["id"], id);
    let out = run(&project, &["approve", "docs", "--config", &cfg]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is in use by another sitediff process"), "{}", out.stderr);

    // A second trigger while nothing runs gets the next id; status sees it as the daemon commits.
    let (code, v) = post(&daemon.url("/api/sites/docs/crawl")).await;
    assert_eq!(code, 202, "{v}");
    let next = v["crawl"].as_u64().unwrap();
    assert!(next > id);
    let out = run(&project, &["status", "docs", "--config", &cfg, "--json"]).await;
    assert_eq!(out.json()["sites"][0]["latest"]["id"], next, "{}", out.stdout);
    drop(daemon);
}
