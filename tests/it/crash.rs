//! Crash safety: the real binary is killed with SIGKILL at 20 moments of crawls (incremental ones,
//! which reuse approved captures, and full ones, which render every page) and approvals; the
//! database must open every time, with every approval committed before the kill intact.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::helpers::{kill_hard, run_sitediff, sitediff_bin, FixtureServer, Response, TempProject};
use sitediff::store::{CrawlStatus, Store};

const KILLS: usize = 20;

/// Approved crawls and baselines: what must survive every crash.
fn approvals(store: &Store, site: &str) -> (Vec<u64>, BTreeMap<String, u64>) {
    let approved = store
        .crawls(site)
        .unwrap()
        .into_iter()
        .filter(|c| c.status == CrawlStatus::Approved)
        .map(|c| c.id)
        .collect();
    let baselines = store.baselines(site).unwrap().into_iter().map(|(k, b)| (k, b.crawl)).collect();
    (approved, baselines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_twenty_moments_loses_no_approval() {
    let srv = FixtureServer::start().await;
    let links: String = (1..=12).map(|i| format!("<a href='p{i}.html'>{i}</a> ")).collect();
    srv.set("/c/", Response::html(format!("<title>c</title>{links}")));
    for i in 1..=12 {
        srv.set(
            &format!("/c/p{i}.html"),
            Response::html(format!("<h1>Page {i}</h1>")).delayed(Duration::from_millis(200)),
        );
    }
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[browser]\nsessions = 1\n[[sites]]\nname = \"c\"\nstart = \"{}\"\nviewport = {{ width = 480, height = 360 }}\n",
        srv.url("/c/")
    ));
    // A first crawl, approved: there is something to lose from the start.
    let out = run_sitediff(&["crawl", "c", "--config", &cfg]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(run_sitediff(&["approve", "c", "--config", &cfg]).await.code, 0);
    // How long a crawl takes here: incremental (the default: every page reused) and full (every
    // page rendered). The crawl kills land at spread fractions of these, inside the crawls.
    let mut took = Vec::new();
    for full in [false, true] {
        let args: &[&str] = if full {
            &["crawl", "c", "--config", &cfg, "--full"]
        } else {
            &["crawl", "c", "--config", &cfg]
        };
        let t = Instant::now();
        assert_eq!(run_sitediff(args).await.code, 0);
        took.push(t.elapsed());
    }
    let (incremental_takes, full_takes) = (took[0], took[1]);
    assert!(incremental_takes < full_takes, "{incremental_takes:?} reusing vs {full_takes:?} rendering");

    let mut kills_during_crawl = 0;
    for round in 0..KILLS {
        let before = {
            let store = Store::open(&project.db_path()).unwrap();
            approvals(&store, "c")
        };
        assert!(!before.0.is_empty());
        // Alternate: kill a crawl part-way through, or an approval right after it starts.
        let (args, delay): (Vec<&str>, Duration) = if round % 2 == 0 {
            // Crawl k of KILLS / 2, full and incremental in turn, killed at (k + 1) / (KILLS / 2 + 1)
            // of what such a crawl takes.
            let k = (round / 2) as u32;
            let fraction = |d: Duration| d * (k + 1) / (KILLS as u32 / 2 + 1);
            match k % 2 {
                0 => (vec!["crawl", "c", "--config", &cfg], fraction(incremental_takes)),
                _ => (vec!["crawl", "c", "--config", &cfg, "--full"], fraction(full_takes)),
            }
        } else {
            (vec!["approve", "c", "--config", &cfg], Duration::from_millis(5 * round as u64))
        };
        let mut child = std::process::Command::new(sitediff_bin())
            .args(&args)
            .env_remove("SITEDIFF_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(delay).await;
        let finished = child.try_wait().unwrap().is_some();
        if !finished && round % 2 == 0 {
            kills_during_crawl += 1;
        }
        kill_hard(&mut child);

        // The database opens, and nothing approved before the kill is lost.
        let store = Store::open(&project.db_path())
            .unwrap_or_else(|e| panic!("round {round}: database does not open after SIGKILL: {e}"));
        let after = approvals(&store, "c");
        for id in &before.0 {
            assert!(after.0.contains(id), "round {round}: approval of crawl {id} lost");
        }
        for (key, crawl) in &before.1 {
            let now = after.1.get(key).unwrap_or_else(|| panic!("round {round}: baseline {key} lost"));
            assert!(now >= crawl, "round {round}: baseline {key} went back from crawl {crawl} to {now}");
        }
        for (key, _) in store.baselines("c").unwrap() {
            let b = store.baseline("c", &key).unwrap().unwrap();
            assert!(store.blob(&b.png).unwrap().is_some(), "round {round}: baseline PNG of {key} missing");
        }
    }
    eprintln!("{kills_during_crawl} of {} crawl kills landed during the crawl (incremental {incremental_takes:?}, full {full_takes:?})", KILLS / 2);
    assert!(kills_during_crawl >= 5, "only {kills_during_crawl} kills landed during a crawl");

    // Crawls killed mid-way are marked interrupted on the next open, and the next crawl works.
    let out = run_sitediff(&["crawl", "c", "--config", &cfg, "--json"]).await;
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    // Passed when it matches the baselines (nothing to review), reviewing if a page differs.
    let status = out.json()["status"].clone();
    assert!(status == "passed" || status == "reviewing", "{status}");
    let store = Store::open(&project.db_path()).unwrap();
    let crawls = store.crawls("c").unwrap();
    assert!(crawls.iter().all(|c| c.status != CrawlStatus::Running), "{crawls:?}");
    assert!(crawls.iter().any(|c| c.status == CrawlStatus::Interrupted));
}
