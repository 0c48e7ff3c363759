//! The real Prometheus server scrapes the daemon with the shipped alert rules, and reports the
//! distortion alert firing after a changed crawl.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{http_get, wait_for, Daemon, FixtureServer, Response, TempProject};

struct Prometheus(Child);

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
    let resp = reqwest::Client::new().post(url).send().await.unwrap();
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (code, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
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
    let _prom = Prometheus(child);
    let prom = format!("http://127.0.0.1:{port}");
    wait_for(Duration::from_secs(60), "prometheus to be ready", || {
        let url = format!("{prom}/-/ready");
        async move { reqwest::get(&url).await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await;

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
