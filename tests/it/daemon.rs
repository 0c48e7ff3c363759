//! The daemon process: scheduled crawls, health, metrics, and an orderly SIGTERM shutdown.

use std::time::Duration;

use crate::helpers::{http_get, metric_value, wait_for, Daemon, FixtureServer, Response, TempProject};
use sitediff::store::{CrawlStatus, Store};

fn small_site(srv: &FixtureServer, pages: usize, delay: Duration) {
    let links: String = (1..=pages).map(|i| format!("<a href='p{i}.html'>{i}</a> ")).collect();
    srv.set("/s/", Response::html(format!("<title>home</title><h1>Home</h1>{links}")));
    for i in 1..=pages {
        srv.set(
            &format!("/s/p{i}.html"),
            Response::html(format!("<title>p{i}</title><h1>Page {i}</h1>")).delayed(delay),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_scheduled_crawls_with_health_and_metrics() {
    let srv = FixtureServer::start().await;
    small_site(&srv, 4, Duration::ZERO);
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nallow_anonymous_writes = true\n[browser]\nsessions = 1\n\
         [[sites]]\nname = \"sched\"\nstart = \"{}\"\nschedule = \"*/2 * * * * *\"\nviewport = {{ width = 640, height = 480 }}\n",
        srv.url("/s/")
    ));
    let mut daemon = Daemon::start(&cfg);

    let (code, body) = http_get(&daemon.url("/healthz")).await;
    assert_eq!(code, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["store"], true);
    assert_eq!(health["browser"], true);

    // Two scheduled crawls complete without any manual trigger.
    let metrics_url = daemon.url("/metrics");
    let text = wait_for(Duration::from_secs(90), "two scheduled crawls", || {
        let url = metrics_url.clone();
        async move {
            let (_, text) = http_get(&url).await;
            let n = metric_value(&text, "sitediff_crawls_total{site=\"sched\",status=\"reviewing\"}")?;
            (n >= 2.0).then_some(text)
        }
    })
    .await;
    assert_eq!(
        metric_value(&text, "sitediff_pages_captured_total{outcome=\"ok\",site=\"sched\"}")
            .map(|v| v >= 10.0),
        Some(true),
        "{text}"
    );
    assert!(metric_value(&text, "sitediff_last_crawl_timestamp_seconds{site=\"sched\"}").unwrap() > 1.7e9);
    assert!(text.contains("sitediff_crawl_duration_seconds_count{site=\"sched\"}"));

    let (code, took) = daemon.terminate(Duration::from_secs(40));
    assert_eq!(code, Some(0), "{}", daemon.log());
    eprintln!("daemon stopped {took:?} after SIGTERM");

    let store = Store::open(&project.db_path()).unwrap();
    let crawls = store.crawls("sched").unwrap();
    assert!(crawls.len() >= 2);
    assert!(crawls.iter().all(|c| c.status != CrawlStatus::Running), "{crawls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_crawl_interrupts_it_and_keeps_the_store() {
    const PAGES: usize = 60;
    let srv = FixtureServer::start().await;
    small_site(&srv, PAGES, Duration::from_millis(300));
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nallow_anonymous_writes = true\n[browser]\nsessions = 1\n\
         [[sites]]\nname = \"slow\"\nstart = \"{}\"\nschedule = \"* * * * * *\"\nviewport = {{ width = 640, height = 480 }}\n",
        srv.url("/s/")
    ));
    let mut daemon = Daemon::start(&cfg);
    let metrics_url = daemon.url("/metrics");
    wait_for(Duration::from_secs(60), "the crawl to be under way", || {
        let url = metrics_url.clone();
        async move {
            let (_, text) = http_get(&url).await;
            let n = metric_value(&text, "sitediff_pages_captured_total{outcome=\"ok\",site=\"slow\"}")?;
            (n >= 3.0).then_some(())
        }
    })
    .await;
    let (code, took) = daemon.terminate(Duration::from_secs(45));
    assert_eq!(code, Some(0), "{}", daemon.log());
    assert!(took < sitediff::daemon::SHUTDOWN_DEADLINE + Duration::from_secs(10), "shutdown took {took:?}");

    let store = Store::open(&project.db_path()).unwrap();
    let crawl = store.latest_crawl("slow").unwrap().unwrap();
    assert_eq!(crawl.status, CrawlStatus::Interrupted, "{crawl:?}");
    let pages = store.pages(crawl.id).unwrap();
    assert!(!pages.is_empty() && pages.len() < PAGES + 1, "{} pages stored", pages.len());
    // Every stored page's artifacts are there: the store is intact.
    for p in &pages {
        if let Some(h) = p.png {
            assert!(store.blob(&h).unwrap().is_some());
        }
    }
}
