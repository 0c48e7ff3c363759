//! Summaries of crawls for people and programs: the `crawl --json` / `status --json` shapes and
//! the human lines. Shared by the CLI and the JSON API.

use serde::Serialize;

use crate::store::{CrawlKind, CrawlRecord, PageChange, PageRecord};
use crate::structure::{StructuralChange, StructuralDiff};

/// One page in a crawl report.
#[derive(Debug, Clone, Serialize)]
pub struct PageResult {
    pub key: String,
    pub url: String,
    pub outcome: &'static str,
    pub change: &'static str,
    pub http_status: Option<u16>,
    pub distortion: Option<f64>,
    /// The score that decided `change`: a score plugin's (the highest), else the distortion.
    pub score: Option<f64>,
    /// The score plugin's reason, as `PLUGIN: reason`.
    pub score_reason: Option<String>,
    pub changed: bool,
    /// The page was taller than the site's `max_height`: only its top was captured (it fails).
    pub truncated: bool,
    pub error: Option<String>,
    /// The page whose links led discovery here first.
    pub referrer: Option<String>,
    /// The approved crawl whose capture was reused without rendering (incremental crawls).
    pub reused_from: Option<u64>,
}

impl From<&PageRecord> for PageResult {
    fn from(p: &PageRecord) -> Self {
        PageResult {
            key: p.key.clone(),
            url: p.url.clone(),
            outcome: p.outcome.as_str(),
            change: p.change.as_str(),
            http_status: p.http_status,
            distortion: p.distortion,
            score: p.score,
            score_reason: p.score_reason.clone(),
            changed: p.change == PageChange::Changed,
            truncated: p.truncated,
            error: p.error.clone(),
            referrer: p.referrer.clone(),
            reused_from: p.reused_from,
        }
    }
}

impl PageResult {
    /// ` (score 0.012: plugin: reason)` when a score plugin decided, else nothing.
    pub fn score_note(&self) -> String {
        match (&self.score_reason, self.score) {
            (Some(r), Some(score)) => format!(" (score {score:.6}: {r})"),
            (None, Some(score)) if Some(score) != self.distortion => format!(" (score {score:.6})"),
            _ => String::new(),
        }
    }
}

/// The report of one crawl (`sitediff crawl --json`).
#[derive(Debug, Clone, Serialize)]
pub struct CrawlReport {
    pub site: String,
    pub crawl: u64,
    pub kind: CrawlKind,
    pub status: &'static str,
    pub pages: u32,
    pub changed: u32,
    pub new: u32,
    pub unchanged: u32,
    /// Unchanged pages whose approved capture was reused without rendering.
    pub reused: u32,
    /// Approved captures could be reused (the site is incremental and no full sweep was due).
    pub incremental: bool,
    /// Pages failing unlike in the approved crawl (review items).
    pub failed: u32,
    /// Pages failing the same way as in the approved crawl (not review items).
    pub still_failing: u32,
    /// Pages taller than the site's `max_height` (cut, and failed or still failing).
    pub truncated: u32,
    /// Pair crawls: pages only on the head / only on the base side.
    pub added: u32,
    pub removed: u32,
    pub skipped_non_html: u32,
    pub skipped_max_pages: u32,
    pub skipped_query_variants: u32,
    pub skipped_off_prefix_redirect: u32,
    pub max_distortion: f64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Pair crawls: the base prefix.
    pub compare_to: Option<String>,
    /// Pages added, removed, redirected or failing compared with the approved crawl.
    pub structure: Option<StructuralDiff>,
    /// What the crawl noticed about its own setup (e.g. only the start page crawled while it
    /// links outside the prefix), for people.
    pub warnings: Vec<String>,
    pub page_results: Vec<PageResult>,
}

impl CrawlReport {
    /// Pages sorted: changed first (by distortion, largest first), then removed, added, failed,
    /// new, still failing, unchanged.
    pub fn new(crawl: &CrawlRecord, pages: &[PageRecord]) -> CrawlReport {
        let mut results: Vec<PageResult> = pages.iter().map(PageResult::from).collect();
        results.sort_by(|a, b| {
            rank(a.change).cmp(&rank(b.change)).then_with(|| {
                b.distortion
                    .unwrap_or(0.0)
                    .total_cmp(&a.distortion.unwrap_or(0.0))
                    .then_with(|| a.key.cmp(&b.key))
            })
        });
        CrawlReport {
            site: crawl.site.clone(),
            crawl: crawl.id,
            kind: crawl.kind,
            status: crawl.status.as_str(),
            pages: crawl.counts.pages,
            changed: crawl.counts.changed,
            new: crawl.counts.new,
            unchanged: crawl.counts.unchanged,
            reused: crawl.counts.reused,
            incremental: crawl.incremental,
            failed: crawl.counts.failed,
            still_failing: crawl.counts.still_failing,
            truncated: pages.iter().filter(|p| p.truncated).count() as u32,
            added: crawl.counts.added,
            removed: crawl.counts.removed,
            skipped_non_html: crawl.counts.skipped_non_html,
            skipped_max_pages: crawl.counts.skipped_max_pages,
            skipped_query_variants: crawl.counts.skipped_query_variants,
            skipped_off_prefix_redirect: crawl.counts.skipped_off_prefix_redirect,
            max_distortion: crawl.max_distortion,
            started_at: crawl.started_at,
            finished_at: crawl.finished_at,
            compare_to: crawl.compare_to.clone(),
            structure: crawl.structure.clone(),
            warnings: crawl.warnings.clone(),
            page_results: results,
        }
    }

    /// Human summary.
    pub fn human(&self) -> String {
        let mut s = format!(
            "crawl {} of {}: {} ({} pages: {} changed, {} new, {} unchanged, {} failed; max distortion {:.6})\n",
            self.crawl,
            self.site,
            self.status,
            self.pages,
            self.changed,
            self.new,
            self.unchanged,
            self.failed,
            self.max_distortion
        );
        if self.incremental {
            s.push_str(&format!("  incremental: {} unchanged pages reused without rendering\n", self.reused));
        }
        if self.still_failing > 0 {
            s.push_str(&format!(
                "  {} still failing (as in the approved crawl; not for review)\n",
                self.still_failing
            ));
        }
        if self.truncated > 0 {
            s.push_str(&format!(
                "  {} truncated: taller than max_height, only their top was captured (failed)\n",
                self.truncated
            ));
        }
        if self.status == "passed" {
            s.push_str("  nothing to review: passed\n");
        }
        if self.added + self.removed > 0 {
            s.push_str(&format!("  pair: {} added, {} removed\n", self.added, self.removed));
        }
        if let Some(st) = &self.structure {
            let parts: Vec<String> =
                StructuralChange::ALL.iter().map(|c| format!("{} {}", st.count(*c), c.as_str())).collect();
            s.push_str(&format!("  structure: {}\n", parts.join(", ")));
        }
        for p in &self.page_results {
            match p.change {
                "added" | "removed" => s.push_str(&format!("  {:<8} {}\n", p.change, p.key)),
                "changed" => s.push_str(&format!(
                    "  changed  {:.6}  {}{}\n",
                    p.distortion.unwrap_or(0.0),
                    p.key,
                    p.score_note()
                )),
                "failed" => s.push_str(&format!(
                    "  failed   {}  {}{}\n",
                    p.key,
                    p.error.as_deref().unwrap_or("unknown error"),
                    p.referrer.as_deref().map(|r| format!(" (linked from {r})")).unwrap_or_default()
                )),
                "still_failing" => s.push_str(&format!(
                    "  still failing  {}  {}\n",
                    p.key,
                    p.error.as_deref().unwrap_or("unknown error")
                )),
                _ => {}
            }
        }
        let skipped = [
            (self.skipped_non_html, "non-HTML links"),
            (self.skipped_max_pages, "links beyond max_pages"),
            (self.skipped_query_variants, "links beyond max_query_variants"),
            (self.skipped_off_prefix_redirect, "redirects out of the prefix"),
        ];
        let parts: Vec<String> =
            skipped.iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")).collect();
        if !parts.is_empty() {
            s.push_str(&format!("  skipped: {}\n", parts.join(", ")));
        }
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s
    }
}

fn rank(change: &str) -> u8 {
    match change {
        "changed" => 0,
        "removed" => 1,
        "added" => 2,
        "failed" => 3,
        "new" => 4,
        "still_failing" => 5,
        _ => 6,
    }
}

pub mod html;
pub mod junit;
