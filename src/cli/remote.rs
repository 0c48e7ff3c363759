//! Client mode (`--server URL`): `crawl`, `pair`, `approve`, `reject` and `status` through a running
//! daemon's JSON API with [`DaemonClient`]: trigger, show progress (a bar on a terminal, plain
//! lines otherwise), wait for the crawl with long polls, then print, write reports and exit
//! exactly as the local command does (the report is built from the daemon's stored records).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::client::{DaemonClient, Progress};
use super::outcome::{exit_code, print_report, write_html, write_junit};
use super::{runtime, GateArgs, EXIT_OK};
use sitediff::report::CrawlReport;
use sitediff::store::{CrawlRecord, Hash, PageRecord};

/// The answer of `POST /api/sites/{site}/crawl` and `POST /api/pairs`.
#[derive(Debug, Deserialize)]
struct Started {
    site: String,
    crawl: u64,
}

/// `GET /api/crawls/{id}/records`.
#[derive(Debug, Deserialize)]
pub struct Records {
    pub crawl: CrawlRecord,
    pub pages: Vec<PageRecord>,
}

/// A path segment, percent-encoded.
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// `sitediff crawl SITE --server URL`.
pub fn crawl(client: &DaemonClient, site: &str, json: bool, gate: &GateArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        gate.wait_until_ready().await?;
        let started: Started = client.post(&format!("/api/sites/{}/crawl", seg(site)), None).await?;
        finish(client, started, json, gate).await
    })
}

/// `sitediff pair --base B --head H [--site S] --server URL` (`POST /api/pairs`).
pub fn pair(
    client: &DaemonClient,
    base: &str,
    head: &str,
    site: Option<&str>,
    json: bool,
    gate: &GateArgs,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        gate.wait_until_ready().await?;
        let body = serde_json::json!({ "base": base, "head": head, "site": site });
        let started: Started = client.post("/api/pairs", Some(&body)).await?;
        eprintln!("pair {}: {head} (head) against {base} (base)", started.site);
        finish(client, started, json, gate).await
    })
}

/// Wait for a started crawl (unless `--no-wait`), then print, write reports and exit as locally.
async fn finish(
    client: &DaemonClient,
    started: Started,
    json: bool,
    gate: &GateArgs,
) -> anyhow::Result<ExitCode> {
    let id = started.crawl;
    if gate.no_wait {
        if json {
            let url = format!("{}/api/crawls/{id}", client.base());
            println!(
                "{}",
                serde_json::json!({ "site": started.site, "crawl": id, "status": "started", "url": url })
            );
        } else {
            println!("{id}");
            eprintln!("crawl {id} of {} started: {}/crawls/{id}", started.site, client.base());
        }
        return Ok(ExitCode::from(EXIT_OK));
    }
    let mut shown = ProgressShown::new(id, &started.site);
    let last = client.wait_crawl(id, |p| shown.update(p)).await;
    shown.finish();
    last.map_err(|e| anyhow::Error::new(e).context(format!("waiting for crawl {id} of {}", started.site)))?;
    let records: Records = client.get(&format!("/api/crawls/{id}/records")).await?;
    let report = CrawlReport::new(&records.crawl, &records.pages);
    print_report(&report, json)?;
    write_reports(client, &report, &records.pages, gate).await?;
    Ok(ExitCode::from(exit_code(records.crawl.status, &records.crawl.counts, &gate.fail_on)))
}

/// Write `--junit` / `--html` with artifacts fetched from the daemon.
pub async fn write_reports(
    client: &DaemonClient,
    report: &CrawlReport,
    pages: &[PageRecord],
    gate: &GateArgs,
) -> anyhow::Result<()> {
    if let Some(path) = &gate.junit {
        write_junit(path, report, &client.base())?;
    }
    if let Some(dir) = &gate.html {
        let blobs = fetch_blobs(client, pages).await?;
        write_html(dir, report, pages, &blobs, &client.base())?;
    }
    Ok(())
}

/// The artifacts the HTML report needs, from the daemon.
pub async fn fetch_blobs(
    client: &DaemonClient,
    pages: &[PageRecord],
) -> anyhow::Result<HashMap<Hash, Vec<u8>>> {
    let mut blobs = HashMap::new();
    for h in sitediff::report::html::needed_blobs(pages) {
        blobs.insert(h, client.artifact(&h.to_hex()).await?);
    }
    Ok(blobs)
}

/// Progress on stderr: a bar on a terminal, a plain line per change otherwise.
struct ProgressShown {
    bar: Option<ProgressBar>,
    last: Option<(u32, u32, u32)>,
    label: String,
}

impl ProgressShown {
    fn new(id: u64, site: &str) -> ProgressShown {
        let label = format!("crawl {id} of {site}");
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} pages {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(label.clone());
            bar
        });
        ProgressShown { bar, last: None, label }
    }

    fn update(&mut self, p: &Progress) {
        let now = (p.done, p.discovered, p.changed);
        if self.last == Some(now) {
            return;
        }
        self.last = Some(now);
        match &self.bar {
            Some(bar) => {
                bar.set_length(u64::from(p.discovered));
                bar.set_position(u64::from(p.done));
                bar.set_message(format!("{} ({} changed)", self.label, p.changed));
            }
            None => eprintln!(
                "{}: {} {}/{} pages, {} changed, {} failed",
                self.label, p.status, p.done, p.discovered, p.changed, p.failed
            ),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The crawl `id`, or the site's newest crawl, through the daemon.
pub async fn resolve_crawl(client: &DaemonClient, site: &str, id: Option<u64>) -> anyhow::Result<u64> {
    if let Some(id) = id {
        return Ok(id);
    }
    let list: serde_json::Value = client.get(&format!("/api/sites/{}/crawls", seg(site))).await?;
    list["crawls"][0]["id"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("site {site:?} has no crawls on the daemon at {}", client.base()))
}

/// `sitediff approve|reject SITE [--crawl ID] [--restore] --server URL`.
pub fn verdict(
    client: &DaemonClient,
    site: &str,
    crawl: Option<u64>,
    action: &str,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let id = resolve_crawl(client, site, crawl).await?;
        let done: serde_json::Value = client.post(&format!("/api/crawls/{id}/{action}"), None).await?;
        let rec = done.get("crawl").unwrap_or(&done);
        let site = rec["site"].as_str().unwrap_or(site);
        match action {
            "approve" => eprintln!("crawl {id} of {site} approved"),
            "reject" => eprintln!("crawl {id} of {site} rejected; baselines unchanged"),
            _ => {
                let moved = done["moved"].as_array().map(Vec::len).unwrap_or(0);
                eprintln!("crawl {id} of {site} restored: {moved} baselines changed");
                for m in done["moved"].as_array().into_iter().flatten() {
                    let from = m["from"].as_u64().map_or("(none)".to_string(), |f| format!("crawl {f}"));
                    eprintln!("  {}: {from} -> crawl {}", m["key"].as_str().unwrap_or("?"), m["to"]);
                }
            }
        }
        Ok(ExitCode::from(EXIT_OK))
    })
}
