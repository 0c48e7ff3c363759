//! Config reload on a running daemon: SIGHUP with a valid new config (a site added with a
//! schedule, a plugin added, the running crawl's site changed) leaves the running crawl to finish
//! with the settings it started with; `POST /api/reload` (token-guarded) with an invalid config
//! keeps the previous one, logs every problem, and shows in the metric and in `/healthz`.

use std::time::Duration;

use crate::helpers::{
    crawl_finished, http_get, metric_value, wait_for, Daemon, FixtureServer, Response, TempProject,
};

const TOKEN: &str = "reload-test-token";

fn site(name: &str, start: &str, width: u32, extra: &str) -> String {
    format!(
        "[[sites]]\nname = \"{name}\"\nstart = \"{start}\"\nviewport = {{ width = {width}, height = 360 }}\n{extra}\n"
    )
}

fn write(project: &TempProject, sites: &str) -> String {
    project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SITEDIFF_TEST_RELOAD_TOKEN\"\n\
         [browser]\nsessions = 1\n\n{sites}"
    ))
}

async fn api_sites(daemon: &Daemon) -> serde_json::Value {
    let (status, body) = http_get(&daemon.url("/api/sites")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn names(v: &serde_json::Value) -> Vec<(String, bool)> {
    v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["configured"].as_bool().unwrap()))
        .collect()
}

async fn reload_metric(daemon: &Daemon) -> f64 {
    let (_, text) = http_get(&daemon.url("/metrics")).await;
    metric_value(&text, "sitediff_config_reload_success").expect("the reload metric")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_while_a_crawl_runs_valid_then_invalid() {
    let srv = FixtureServer::start().await;
    // Slow pages keep the crawl running across the reload.
    let links: String = (0..4).map(|i| format!("<a href=\"p{i}.html\">p{i}</a> ")).collect();
    srv.set("/a/", Response::html(format!("<title>a</title><h1>A</h1>{links}")));
    for i in 0..4 {
        srv.set(
            &format!("/a/p{i}.html"),
            Response::html(format!("<title>p{i}</title><h1>P{i}</h1>")).delayed(Duration::from_millis(1500)),
        );
    }
    srv.set("/b/", Response::html("<title>b</title><h1>B</h1>"));
    let project = TempProject::new();
    let cfg = write(&project, &site("a", &srv.url("/a/"), 480, ""));
    let daemon = Daemon::start_with_env(&cfg, &[("SITEDIFF_TEST_RELOAD_TOKEN", TOKEN)]);
    assert_eq!(reload_metric(&daemon).await, 1.0, "1 before any reload");
    let client = reqwest::Client::new();
    let r = client.post(daemon.url("/api/sites/a/crawl")).bearer_auth(TOKEN).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let crawl: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let id = crawl["crawl"].as_u64().unwrap();
    srv.wait_for_request("/a/p0.html").await;

    // 1. A valid config: `a` wider, `b` added with a schedule, a plugin added; SIGHUP.
    let plugin = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/examples/mask_selectors.wat");
    write(
        &project,
        &format!(
            "{}{}[[plugins]]\nname = \"sel\"\npath = \"{plugin}\"\n",
            site("a", &srv.url("/a/"), 640, ""),
            site("b", &srv.url("/b/"), 480, "schedule = \"0 3 * * *\"\nplugins = [\"sel\"]"),
        ),
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(daemon.child.id() as libc::pid_t, libc::SIGHUP);
    }
    let log_of = |d: &Daemon| d.log();
    wait_for(Duration::from_secs(60), "the SIGHUP reload", || {
        let log = log_of(&daemon);
        async move { log.contains("config reloaded").then_some(()) }
    })
    .await;
    let sites = api_sites(&daemon).await;
    assert_eq!(names(&sites), [("a".to_string(), true), ("b".to_string(), true)], "{sites}");
    let b = sites["sites"].as_array().unwrap().iter().find(|s| s["name"] == "b").unwrap();
    assert!(b["next_run"].is_string(), "the added site's schedule is planned: {b}");
    assert_eq!(reload_metric(&daemon).await, 1.0);
    // The running crawl was not interrupted and kept its viewport.
    let url = daemon.url(&format!("/api/crawls/{id}"));
    let done = crawl_finished(&url, "the running crawl to finish").await;
    assert_ne!(done["crawl"]["status"], "interrupted", "{done}");
    assert_eq!(done["crawl"]["counts"]["pages"], 5, "{done}");
    let (_, page) = http_get(&daemon.url(&format!("/api/crawls/{id}?limit=10"))).await;
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    for p in page["pages"].as_array().unwrap() {
        assert_eq!(p["width"], 480, "captured with the viewport it started with: {p}");
    }
    // Crawls started now use the new settings: the changed site's new viewport, the added site.
    let r = client.post(daemon.url("/api/sites/a/crawl")).bearer_auth(TOKEN).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let next: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let url = daemon.url(&format!("/api/crawls/{}?limit=10", next["crawl"].as_u64().unwrap()));
    let after = crawl_finished(&url, "the crawl after the reload to finish").await;
    let pages = after["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 5, "{after}");
    for p in pages {
        assert_eq!(p["width"], 640, "captured with the reloaded viewport: {p}");
    }
    // The added site, approved once, then crawled again: its pages go through the reloaded plugin.
    for round in 0..2 {
        let r = client.post(daemon.url("/api/sites/b/crawl")).bearer_auth(TOKEN).send().await.unwrap();
        assert!(r.status().is_success(), "the added site can be crawled: {}", r.status());
        let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        let id = v["crawl"].as_u64().unwrap();
        let url = daemon.url(&format!("/api/crawls/{id}"));
        wait_for(Duration::from_secs(120), "the crawl of b to finish", || {
            let url = url.clone();
            async move {
                let (_, body) = http_get(&url).await;
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                (v["crawl"]["status"] != "running").then_some(())
            }
        })
        .await;
        if round == 0 {
            let r =
                client.post(daemon.url(&format!("/api/crawls/{id}/approve"))).bearer_auth(TOKEN).send().await;
            assert_eq!(r.unwrap().status(), 200);
            // A changed page is compared (an identical capture is not).
            srv.set("/b/", Response::html("<title>b</title><h1>B, changed</h1>"));
        }
    }
    let (_, text) = http_get(&daemon.url("/metrics")).await;
    let calls = metric_value(&text, "sitediff_plugin_calls_total{outcome=\"ok\",plugin=\"sel\"}");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("plugin")).collect();
    assert!(
        calls.is_some_and(|n| n >= 1.0),
        "the reloaded plugin ran: {calls:?} {lines:#?}\n{}",
        daemon.log()
    );

    // 2. An invalid config through the API: refused without the token, kept out with it.
    write(
        &project,
        &format!(
            "{}schedul = \"x\"\n[[plugins]]\nname = \"gone\"\npath = \"/nonexistent/gone.wat\"\n",
            site("a", &srv.url("/a/"), 800, "")
        ),
    );
    let r = client.post(daemon.url("/api/reload")).send().await.unwrap();
    assert_eq!(r.status(), 401, "reload needs the token");
    let r = client.post(daemon.url("/api/reload")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let problems: Vec<String> =
        body["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    assert!(problems.iter().any(|p| p.contains("schedul")), "{problems:?}");
    assert_eq!(reload_metric(&daemon).await, 0.0);
    let (status, health) = http_get(&daemon.url("/healthz")).await;
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["config"]["reload_ok"], false, "{health} ({status})");
    assert!(!health["config"]["problems"].as_array().unwrap().is_empty(), "{health}");
    let log = daemon.log();
    for p in &problems {
        let first = p.lines().next().unwrap();
        assert!(log.contains(first), "problem not logged: {first}\n{log}");
    }
    assert_eq!(names(&api_sites(&daemon).await), [("a".to_string(), true), ("b".to_string(), true)]);

    // 3. Fixed again: the metric and /healthz recover.
    write(&project, &site("a", &srv.url("/a/"), 480, ""));
    let r = client.post(daemon.url("/api/reload")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(reload_metric(&daemon).await, 1.0);
    let (_, health) = http_get(&daemon.url("/healthz")).await;
    assert!(health.contains("\"reload_ok\":true"), "{health}");
    // `b` is no longer configured; its crawl history keeps it listed as unconfigured.
    let sites = names(&api_sites(&daemon).await);
    assert!(sites.contains(&("a".to_string(), true)), "{sites:?}");
    assert!(!sites.contains(&("b".to_string(), true)), "{sites:?}");
}
