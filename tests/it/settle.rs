//! Review state that settles (issue 16.2) against the real daemon and CLI: a crawl with nothing to
//! review passes by itself, a permanent 404 of the approved crawl is "still failing" and keeps no
//! crawl pending, an older crawl under review is superseded by a newer one, and verdicts and
//! auto-passes are counted in `sitediff_crawls_total`.

use std::time::Duration;

use crate::helpers::{
    http_get, metric_value, run_sitediff, wait_for, Daemon, FixtureServer, Response, TempProject,
};

const TOKEN: &str = "settle-test-token";

fn page(color: &str) -> Response {
    Response::html(format!("<title>p</title><style>body{{background:{color};margin:0}}</style><h1>Page</h1>"))
}

/// A site whose index links a page and a link that was always broken (404).
fn site(srv: &FixtureServer) {
    srv.set("/s/", Response::html("<title>s</title><a href='p.html'>p</a> <a href='broken.html'>b</a>"));
    srv.set("/s/p.html", page("#ffffff"));
}

async fn post(url: &str) -> (u16, serde_json::Value) {
    crate::helpers::post_json(url, Some(TOKEN)).await
}

async fn get_json(url: &str) -> serde_json::Value {
    let (code, text) = http_get(url).await;
    assert_eq!(code, 200, "{url}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Start a crawl through the API and wait until it has finished; returns the crawl.
async fn crawl(daemon: &Daemon, previous: usize) -> serde_json::Value {
    let (code, body) = post(&daemon.url("/api/sites/settle/crawl")).await;
    assert_eq!(code, 202, "{body}");
    let url = daemon.url("/api/sites/settle/crawls");
    wait_for(Duration::from_secs(90), "the crawl to finish", || {
        let url = url.clone();
        async move {
            let (_, text) = http_get(&url).await;
            let j: serde_json::Value = serde_json::from_str(&text).ok()?;
            let crawls = j["crawls"].as_array()?;
            let latest = crawls.first()?;
            (crawls.len() > previous && latest["status"] != "running").then(|| latest.clone())
        }
    })
    .await
}

/// The value of a series of the site `settle` on `/metrics` (0 when absent).
async fn metric(daemon: &Daemon, series: &str) -> f64 {
    let (_, text) = http_get(&daemon.url("/metrics")).await;
    metric_value(&text, series).unwrap_or(0.0)
}

async fn counted(daemon: &Daemon, status: &str) -> f64 {
    metric(daemon, &format!("sitediff_crawls_total{{site=\"settle\",status=\"{status}\"}}")).await
}

async fn pending(daemon: &Daemon) -> f64 {
    metric(daemon, "sitediff_review_pending_crawls{site=\"settle\"}").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_settles_passed_still_failing_and_superseded_crawls() {
    let srv = FixtureServer::start().await;
    site(&srv);
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SITEDIFF_SETTLE_TEST_TOKEN\"\n[browser]\nsessions = 1\n\
         [[sites]]\nname = \"settle\"\nstart = \"{}\"\nviewport = {{ width = 400, height = 300 }}\n",
        srv.url("/s/")
    ));
    let daemon = Daemon::start_with_env(&cfg, &[("SITEDIFF_SETTLE_TEST_TOKEN", TOKEN)]);

    // 1. The first crawl: new pages and a newly failing link, for review.
    let first = crawl(&daemon, 0).await;
    assert_eq!(first["status"], "reviewing", "{first}");
    assert_eq!((first["counts"]["new"].as_u64(), first["counts"]["failed"].as_u64()), (Some(2), Some(1)));
    assert_eq!((pending(&daemon).await, counted(&daemon, "reviewing").await), (1.0, 1.0));
    let (code, body) = post(&daemon.url(&format!("/api/crawls/{}/approve", first["id"]))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!((pending(&daemon).await, counted(&daemon, "approved").await), (0.0, 1.0));

    // 2. Nothing changed, the link still broken: passed, by itself; the 404 shown and counted.
    let second = crawl(&daemon, 1).await;
    assert_eq!(second["status"], "passed", "{second}");
    assert_eq!(second["needs_review"], false);
    let counts = &second["counts"];
    assert_eq!(
        (counts["failed"].as_u64(), counts["still_failing"].as_u64(), counts["unchanged"].as_u64()),
        (Some(0), Some(1), Some(2)),
        "{second}"
    );
    let id = second["id"].as_u64().unwrap();
    let listing = get_json(&daemon.url(&format!("/api/crawls/{id}?filter=failed"))).await;
    let failed = listing["pages"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{listing}");
    assert_eq!(
        (failed[0]["key"].as_str(), failed[0]["change"].as_str()),
        (Some("/broken.html"), Some("still_failing"))
    );
    assert_eq!(failed[0]["http_status"], 404);
    assert_eq!(pending(&daemon).await, 0.0, "a passed crawl is not pending");
    assert_eq!(counted(&daemon, "passed").await, 1.0);
    assert_eq!(metric(&daemon, "sitediff_site_failed_pages{site=\"settle\",state=\"still\"}").await, 1.0);
    assert_eq!(metric(&daemon, "sitediff_site_failed_pages{site=\"settle\",state=\"new\"}").await, 0.0);
    let sites = get_json(&daemon.url("/api/sites")).await;
    assert_eq!(sites["sites"][0]["pending_reviews"], 0, "{sites}");
    let (_, html) = http_get(&daemon.url(&format!("/crawls/{id}"))).await;
    assert!(html.contains("status-passed") && html.contains("id=\"passed-note\""), "{html}");
    assert!(html.contains("1 still failing"), "{html}");

    // 3. A visible change: for review. A second crawl with the same change supersedes it: still
    // one crawl pending, not two.
    srv.set("/s/p.html", page("#3366ff"));
    let third = crawl(&daemon, 2).await;
    assert_eq!((third["status"].as_str(), third["counts"]["changed"].as_u64()), (Some("reviewing"), Some(1)));
    assert_eq!(pending(&daemon).await, 1.0);
    let fourth = crawl(&daemon, 3).await;
    assert_eq!(fourth["status"], "reviewing", "{fourth}");
    assert_eq!(pending(&daemon).await, 1.0, "the older crawl under review is superseded");
    let sites = get_json(&daemon.url("/api/sites")).await;
    assert_eq!(sites["sites"][0]["pending_reviews"], 1, "{sites}");

    // 4. Rejecting the newest settles the site; the verdict is counted.
    let (code, body) = post(&daemon.url(&format!("/api/crawls/{}/reject", fourth["id"]))).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!((pending(&daemon).await, counted(&daemon, "rejected").await), (0.0, 1.0));
    assert_eq!(counted(&daemon, "reviewing").await, 3.0, "crawls 1, 3 and 4 ended in review");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_crawl_with_only_a_known_404_passes_and_exits_0() {
    let srv = FixtureServer::start().await;
    site(&srv);
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[browser]\nsessions = 1\n[[sites]]\nname = \"settle\"\nstart = \"{}\"\nviewport = {{ width = 400, height = 300 }}\n",
        srv.url("/s/")
    ));
    let out = run_sitediff(&["crawl", "settle", "--config", &cfg, "--json"]).await;
    // New pages are for review, not changes; a newly failing page fails the run (exit 1).
    assert_eq!(out.code, 1, "a new failure exits 1\n{}", out.stderr);
    assert_eq!((out.json()["status"].as_str(), out.json()["failed"].as_u64()), (Some("reviewing"), Some(1)));
    assert_eq!(run_sitediff(&["approve", "settle", "--config", &cfg]).await.code, 0);

    let out = run_sitediff(&["crawl", "settle", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    assert_eq!(
        (j["status"].as_str(), j["failed"].as_u64(), j["still_failing"].as_u64()),
        (Some("passed"), Some(0), Some(1))
    );
    let broken = j["page_results"].as_array().unwrap().iter().find(|p| p["key"] == "/broken.html").unwrap();
    assert_eq!(broken["change"], "still_failing", "{broken}");

    let out = run_sitediff(&["crawl", "settle", "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let human = format!("{}{}", out.stdout, out.stderr);
    assert!(human.contains(": passed ("), "{human}");
    assert!(human.contains("still failing  /broken.html"), "{human}");
    assert!(human.contains("nothing to review: passed"), "{human}");

    // A page that starts failing now is new: for review again, and it fails the run (exit 1).
    srv.set("/s/p.html", Response::status(500, "<h1>down</h1>"));
    let out = run_sitediff(&["crawl", "settle", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let j = out.json();
    assert_eq!(
        (j["status"].as_str(), j["failed"].as_u64(), j["still_failing"].as_u64()),
        (Some("reviewing"), Some(1), Some(1))
    );
}
