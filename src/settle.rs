//! Review state that settles by itself: pages failing the same way as in the site's approved crawl
//! are *still failing* (shown and counted, not a review item); a finished crawl with nothing to
//! review is *passed* without a human; only the newest finished crawl of a site (per kind) can wait
//! for review, older ones are superseded. Also what the per-site gauges show of a site's last
//! finished crawl, at the end of a crawl and when the daemon starts. Store work here is blocking.

use std::collections::HashMap;

use crate::config::SiteConfig;
use crate::metrics::Metrics;
use crate::store::{
    CrawlKind, CrawlRecord, CrawlStatus, PageChange, PageOutcome, PageRecord, Store, StoreError,
};

/// How a page failed: its outcome and HTTP status (`None`: no answer).
type Failure = (PageOutcome, Option<u16>);

/// The failing pages of a reference crawl, by page key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KnownFailures(HashMap<String, Failure>);

impl KnownFailures {
    /// The pages of `pages` that failed (newly or still), with how they failed.
    pub fn of(pages: &[PageRecord]) -> KnownFailures {
        KnownFailures(
            pages
                .iter()
                .filter(|p| matches!(p.change, PageChange::Failed | PageChange::StillFailing))
                .map(|p| (p.key.clone(), (p.outcome, p.http_status)))
                .collect(),
        )
    }

    /// Whether a failed page fails the same way (outcome and HTTP status) as its key did.
    pub fn fails_the_same_way(&self, page: &PageRecord) -> bool {
        page.change == PageChange::Failed && self.0.get(&page.key) == Some(&(page.outcome, page.http_status))
    }

    /// Mark the pages failing the same way as still failing; returns the changed records.
    pub fn restate(&self, pages: &mut [PageRecord]) -> Vec<PageRecord> {
        let mut restated = Vec::new();
        for p in pages.iter_mut().filter(|p| self.fails_the_same_way(p)) {
            p.change = PageChange::StillFailing;
            restated.push(p.clone());
        }
        restated
    }
}

/// The crawl a finished crawl's failures are compared with: the approved crawl its structural diff
/// is against (read with its baselines when it started); for a pair crawl, the newest approved
/// pair crawl of the site.
pub fn reference_crawl(store: &Store, crawl: &CrawlRecord) -> Result<Option<CrawlRecord>, StoreError> {
    if crawl.kind != CrawlKind::Pair {
        return match crawl.structure.as_ref().and_then(|s| s.against) {
            Some(id) => store.crawl(id),
            None => Ok(None),
        };
    }
    for id in store.crawl_ids(&crawl.site)?.into_iter().rev().filter(|id| *id < crawl.id) {
        if let Some(c) = store.crawl(id)? {
            if c.status == CrawlStatus::Approved && c.kind == CrawlKind::Pair {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

/// Settle a finished crawl (its counts tallied from `pages`): failed pages failing the same way as
/// in the reference crawl become still failing (in `pages` and in the counts), and a crawl left
/// `reviewing` with nothing to review becomes `passed`. Returns the restated page records, to be
/// stored with the crawl record ([`Store::finish_crawl`]). Reads the store (blocking).
pub fn settle_finished(
    store: &Store,
    rec: &mut CrawlRecord,
    pages: &mut [PageRecord],
) -> Result<Vec<PageRecord>, StoreError> {
    let mut restated = Vec::new();
    if pages.iter().any(|p| p.change == PageChange::Failed) {
        if let Some(reference) = reference_crawl(store, rec)? {
            restated = KnownFailures::of(&store.pages(reference.id)?).restate(pages);
            let n = restated.len() as u32;
            rec.counts.failed = rec.counts.failed.saturating_sub(n);
            rec.counts.still_failing += n;
        }
    }
    if rec.status == CrawlStatus::Reviewing {
        rec.status = settled_status(rec);
    }
    Ok(restated)
}

/// What a reviewer has to look at in a crawl: changed, new and newly failing pages, pages only on
/// one side of a pair, and, for other crawls, pages added or removed since the approved crawl.
/// Unchanged and still-failing pages (and redirects) are not review items.
pub fn review_items(c: &CrawlRecord) -> u32 {
    let n = &c.counts;
    let mut items = n.changed + n.new + n.failed + n.added + n.removed;
    if c.kind != CrawlKind::Pair {
        if let Some(st) = &c.structure {
            items += st.added + st.removed;
        }
    }
    items
}

/// The status a finished crawl settles in: `passed` with nothing to review, else `reviewing`.
pub fn settled_status(c: &CrawlRecord) -> CrawlStatus {
    if review_items(c) == 0 {
        CrawlStatus::Passed
    } else {
        CrawlStatus::Reviewing
    }
}

/// Whether a crawl waits for someone's verdict: `reviewing`, with review items.
pub fn needs_review(c: &CrawlRecord) -> bool {
    c.status == CrawlStatus::Reviewing && review_items(c) > 0
}

/// Whether a crawl ran to its end and compared its pages: reviewing, passed, approved, rejected
/// (not running, interrupted or failed).
pub fn is_completed(status: CrawlStatus) -> bool {
    matches!(
        status,
        CrawlStatus::Reviewing | CrawlStatus::Passed | CrawlStatus::Approved | CrawlStatus::Rejected
    )
}

/// The crawls of one site waiting for review: of each kind (site, pair, upload), the newest
/// completed crawl when it needs review. An older crawl under review is superseded by any newer
/// completed crawl of its kind (which compared the same pages again).
pub fn pending(crawls: &[CrawlRecord]) -> Vec<&CrawlRecord> {
    [CrawlKind::Site, CrawlKind::Pair, CrawlKind::Upload]
        .into_iter()
        .filter_map(|kind| {
            crawls.iter().filter(|c| c.kind == kind && is_completed(c.status)).max_by_key(|c| c.id)
        })
        .filter(|c| needs_review(c))
        .collect()
}

/// The newest completed crawl of a site (blocking).
pub fn last_completed_crawl(store: &Store, site: &str) -> Result<Option<CrawlRecord>, StoreError> {
    for id in store.crawl_ids(site)?.into_iter().rev() {
        if let Some(c) = store.crawl(id)? {
            if is_completed(c.status) {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

/// Export a completed crawl as its site's last crawl: the per-site gauges, and the per-page
/// distortions from `pages` (`None`: page metrics are off for the site, its page series go).
pub fn export_last_crawl(metrics: &Metrics, rec: &CrawlRecord, pages: Option<&[PageRecord]>) {
    metrics.set_last_crawl(rec);
    match pages {
        Some(pages) => metrics.set_page_distortions(
            &rec.site,
            pages.iter().filter_map(|p| p.distortion.map(|d| (p.key.as_str(), d))),
        ),
        None => metrics.clear_page_distortions(&rec.site),
    }
}

/// At start: export each configured site's last completed crawl from the store, so gauges (and
/// the alerts on them) are right before the daemon finishes a crawl itself. Returns the crawl
/// exported per site (blocking).
pub fn export_stored_crawls(
    store: &Store,
    metrics: &Metrics,
    sites: &[SiteConfig],
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut exported = Vec::new();
    for site in sites {
        let Some(rec) = last_completed_crawl(store, &site.name)? else { continue };
        let pages = match site.page_metrics {
            true => Some(store.pages(rec.id)?),
            false => None,
        };
        export_last_crawl(metrics, &rec, pages.as_deref());
        exported.push((site.name.clone(), rec.id));
    }
    Ok(exported)
}

#[cfg(test)]
mod tests;
