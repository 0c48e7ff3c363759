//! The real Prometheus server scrapes the daemon with the shipped alert rules, and reports the
//! distortion alert firing after a changed crawl, and the right alerts right after a restart (the
//! per-site gauges exported from the store).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{
    http_get, metric_value, run_sitediff, wait_for, Daemon, FixtureServer, Response, TempProject,
};
use sitediff::store::Store;

struct Prometheus(Child);

/// Start the real Prometheus server scraping `target` (host:port) every second with
/// `config/alerts.yml`, its data under `project`; returns it and its base URL once ready.
async fn start_prometheus(project: &TempProject, target: &str) -> (Prometheus, String) {
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/alerts.yml");
    let prom_dir = project.dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom_cfg = prom_dir.join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: sitediff\n    static_configs:\n      - targets: [{target:?}]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!("--storage.tsdb.path={}", prom_dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the prometheus server (Debian package `prometheus`) must be installed");
    let prom = Prometheus(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_for(Duration::from_secs(60), "prometheus to be ready", || {
        let url = format!("{base}/-/ready");
        async move { reqwest::get(&url).await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await;
    (prom, base)
}

/// The alerts Prometheus has now (pending and firing), as `(alertname, site, state)`.
async fn alerts(prom: &str) -> Option<Vec<(String, String, String)>> {
    let (_, text) = http_get(&format!("{prom}/api/v1/alerts")).await;
    let j: serde_json::Value = serde_json::from_str(&text).ok()?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut all: Vec<(String, String, String)> = j["data"]["alerts"]
        .as_array()?
        .iter()
        .map(|a| (text(&a["labels"]["alertname"]), text(&a["labels"]["site"]), text(&a["state"])))
        .collect();
    all.sort();
    Some(all)
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn page(color: &str) -> Response {
    Response::html(format!("<title>p</title><style>body{{background:{color};margin:0}}</style><h1>Page</h1>"))
}

async fn post(url: &str) -> (u16, serde_json::Value) {
    crate::helpers::post_json(url, None).await
}

/// Trigger a crawl through the API and wait for it to finish; returns its id.
async fn crawl_via_api(daemon: &Daemon, site: &str, previous: usize) -> u64 {
    let (code, body) = post(&daemon.url(&format!("/api/sites/{site}/crawl"))).await;
    assert_eq!(code, 202, "{body}");
    let url = daemon.url(&format!("/api/sites/{site}/crawls"));
    wait_for(Duration::from_secs(90), "the crawl to finish", || {
        let url = url.clone();
        async move {
            let (_, text) = http_get(&url).await;
            let j: serde_json::Value = serde_json::from_str(&text).ok()?;
            let crawls = j["crawls"].as_array()?;
            let latest = crawls.first()?;
            (crawls.len() > previous && latest["status"] == "reviewing")
                .then(|| latest["id"].as_u64().unwrap())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_fires_the_distortion_alert_after_a_changed_crawl() {
    let srv = FixtureServer::start().await;
    srv.set("/m/", Response::html("<title>m</title><a href='p.html'>p</a>"));
    srv.set("/m/p.html", page("#ffffff"));
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nallow_anonymous_writes = true\n[browser]\nsessions = 1\n\
         [[sites]]\nname = \"watched\"\nstart = \"{}\"\nviewport = {{ width = 400, height = 300 }}\n",
        srv.url("/m/")
    ));
    let daemon = Daemon::start(&cfg);
    let target = daemon.base.trim_start_matches("http://").to_string();
    let (_prom, prom) = start_prometheus(&project, &target).await;

    // Baseline, approved; then a visible change.
    let first = crawl_via_api(&daemon, "watched", 0).await;
    let (code, body) = post(&daemon.url(&format!("/api/crawls/{first}/approve"))).await;
    assert_eq!(code, 200, "{body}");
    srv.set("/m/p.html", page("#3366ff"));
    let second = crawl_via_api(&daemon, "watched", 1).await;
    let (_, text) = http_get(&daemon.url(&format!("/api/crawls/{second}"))).await;
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(j["crawl"]["counts"]["changed"].as_u64().unwrap() >= 1, "{j}");

    // Prometheus scrapes, evaluates config/alerts.yml, and the alert fires for this site.
    let alerts_url = format!("{prom}/api/v1/alerts");
    let alert = wait_for(Duration::from_secs(60), "SitediffDistortionHigh to fire", || {
        let url = alerts_url.clone();
        async move {
            let (_, text) = http_get(&url).await;
            let j: serde_json::Value = serde_json::from_str(&text).ok()?;
            j["data"]["alerts"]
                .as_array()?
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == "SitediffDistortionHigh"
                        && a["labels"]["site"] == "watched"
                        && a["state"] == "firing"
                })
                .cloned()
        }
    })
    .await;
    eprintln!("alert: {alert}");

    // Approving the crawl resolves it.
    let (code, _) = post(&daemon.url(&format!("/api/crawls/{second}/approve"))).await;
    assert_eq!(code, 200);
    wait_for(Duration::from_secs(60), "the alert to resolve", || {
        let url = alerts_url.clone();
        async move {
            let (_, text) = http_get(&url).await;
            let j: serde_json::Value = serde_json::from_str(&text).ok()?;
            let firing = j["data"]["alerts"]
                .as_array()?
                .iter()
                .any(|a| a["labels"]["alertname"] == "SitediffDistortionHigh");
            (!firing).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_right_right_after_a_restart() {
    let srv = FixtureServer::start().await;
    srv.set("/m/", Response::html("<title>m</title><a href='p.html'>p</a>"));
    srv.set("/m/p.html", page("#ffffff"));
    srv.set("/o/", page("#eeeeee"));
    let project = TempProject::new();
    let site = |name: &str, path: &str| {
        format!(
            "[[sites]]\nname = \"{name}\"\nstart = \"{}\"\nviewport = {{ width = 400, height = 300 }}\n",
            srv.url(path)
        )
    };
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SITEDIFF_PROM_TEST_TOKEN\"\n[browser]\nsessions = 1\n{}{}{}",
        site("watched", "/m/"),
        site("old", "/o/"),
        site("never", "/n/"),
    ));

    // Before the daemon: crawls with the CLI. `watched`: approved, then a visible change pending
    // review. `old`: crawled and approved, its record then dated two days back.
    let cli = |args: &'static [&'static str]| {
        let cfg = cfg.clone();
        async move {
            let mut all: Vec<&str> = args.to_vec();
            all.extend(["--config", &cfg]);
            run_sitediff(&all).await
        }
    };
    assert_eq!(cli(&["crawl", "watched"]).await.code, 0);
    assert_eq!(cli(&["approve", "watched"]).await.code, 0);
    srv.set("/m/p.html", page("#3366ff"));
    let out = cli(&["crawl", "watched", "--json"]).await;
    assert_eq!(out.code, 1, "a changed page: {}", out.stderr);
    let max_distortion = out.json()["max_distortion"].as_f64().unwrap();
    assert!(max_distortion > 0.01, "{}", out.stdout);
    assert_eq!(cli(&["crawl", "old"]).await.code, 0);
    assert_eq!(cli(&["approve", "old"]).await.code, 0);
    let two_days_ago = sitediff::store::now_ms() - 2 * 86_400_000;
    {
        let store = Store::open(&project.db_path()).unwrap();
        let mut rec = store.latest_crawl("old").unwrap().unwrap();
        rec.started_at = two_days_ago - 5_000;
        rec.finished_at = Some(two_days_ago);
        store.update_crawl(&rec).unwrap();
    }

    // The daemon starts (it crawls nothing: no schedule) and exports the stored crawls.
    let daemon = Daemon::start_with_env(&cfg, &[("SITEDIFF_PROM_TEST_TOKEN", "t0ken")]);
    let (_, text) = http_get(&daemon.url("/metrics")).await;
    assert_eq!(
        metric_value(&text, "sitediff_site_max_distortion{site=\"watched\"}"),
        Some(max_distortion),
        "{text}"
    );
    assert_eq!(metric_value(&text, "sitediff_site_changed_pages{site=\"watched\"}"), Some(1.0), "{text}");
    assert_eq!(metric_value(&text, "sitediff_review_pending_crawls{site=\"watched\"}"), Some(1.0), "{text}");
    assert!(
        metric_value(&text, "sitediff_page_distortion{page=\"/p.html\",site=\"watched\"}").unwrap() > 0.01
    );
    assert_eq!(metric_value(&text, "sitediff_site_pages{change=\"unchanged\",site=\"watched\"}"), Some(2.0));
    assert_eq!(
        metric_value(&text, "sitediff_last_crawl_timestamp_seconds{site=\"old\"}"),
        Some(two_days_ago as f64 / 1000.0),
        "{text}"
    );
    assert_eq!(metric_value(&text, "sitediff_review_pending_crawls{site=\"old\"}"), Some(0.0));
    assert_eq!(metric_value(&text, "sitediff_last_crawl_timestamp_seconds{site=\"never\"}"), None);

    // The real Prometheus server with config/alerts.yml: the distortion of `watched` fires (its
    // review has been pending a moment: that rule waits 3 days), `old` is stale, and only `never`
    // is never crawled (pending: that rule waits a day to fire). Nothing else.
    let target = daemon.base.trim_start_matches("http://").to_string();
    let (_prom, prom) = start_prometheus(&project, &target).await;
    let expected: Vec<(String, String, String)> = [
        ("SitediffCrawlStale", "old", "firing"),
        ("SitediffDistortionHigh", "watched", "firing"),
        ("SitediffNeverCrawled", "never", "pending"),
        ("SitediffReviewPendingTooLong", "watched", "pending"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    // Bounded wait (the rules are evaluated every second), saying what Prometheus had on a timeout.
    let started = std::time::Instant::now();
    loop {
        let all = alerts(&prom).await.unwrap_or_default();
        if all == expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "alerts after the restart: want {expected:?}, Prometheus has {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The rules keep saying so a few evaluations later.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(alerts(&prom).await.unwrap(), expected);
    }
}
