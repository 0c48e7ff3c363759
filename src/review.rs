//! Review actions, shared by the JSON API, the review UI and the CLI: start a crawl now, record a
//! verdict on a crawl, approve one page (approving the last pending page approves the crawl), and
//! keep the review-pending gauge right. They talk to the store, the scheduler and the metrics and
//! know nothing of HTTP; store work here is blocking.

use std::fmt;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::scheduler::{SchedulerError, SchedulerHandle, TriggerOutcome};
use crate::store::{CrawlRecord, CrawlStatus, PageChange, PageRecord, Store, StoreError};

/// A crawl-level review decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        })
    }
}

/// Why a review action did not happen. The cause, when there is one, is the error's source.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("not found: site {site:?}")]
    UnknownSite { site: String },
    #[error("site {site:?} already has a crawl running")]
    AlreadyRunning { site: String },
    #[error("cannot start a crawl of {site:?}: the daemon is shutting down")]
    ShuttingDown { site: String },
    #[error("cannot start a crawl of {site:?}: {error}")]
    NotStarted { site: String, error: String },
    #[error("cannot start a crawl of {site:?}")]
    Scheduler {
        site: String,
        #[source]
        source: SchedulerError,
    },
    #[error("cannot {verdict} crawl {crawl}")]
    Verdict {
        crawl: u64,
        verdict: Verdict,
        #[source]
        source: StoreError,
    },
    #[error("cannot approve page {key:?} of crawl {crawl}")]
    ApprovePage {
        crawl: u64,
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("page {key:?} of crawl {crawl} is approved, but the crawl's state cannot be settled")]
    Settle {
        crawl: u64,
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot count the crawls of {site:?} waiting for review")]
    Pending {
        site: String,
        #[source]
        source: StoreError,
    },
}

/// What kind of failure a [`ReviewError`] is (callers map it to an exit code or HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewErrorKind {
    /// No such site, crawl or page.
    NotFound,
    /// The site or crawl is not in a state that allows the action.
    Conflict,
    /// The daemon cannot take the action now (shutting down).
    Unavailable,
    /// The store failed.
    Internal,
}

impl ReviewError {
    pub fn kind(&self) -> ReviewErrorKind {
        match self {
            ReviewError::UnknownSite { .. } => ReviewErrorKind::NotFound,
            ReviewError::AlreadyRunning { .. } => ReviewErrorKind::Conflict,
            ReviewError::ShuttingDown { .. } | ReviewError::Scheduler { .. } => ReviewErrorKind::Unavailable,
            ReviewError::NotStarted { .. } => ReviewErrorKind::Internal,
            ReviewError::Verdict { source, .. }
            | ReviewError::ApprovePage { source, .. }
            | ReviewError::Settle { source, .. }
            | ReviewError::Pending { source, .. } => match source {
                StoreError::NoSuchCrawl { .. }
                | StoreError::NoSuchPage { .. }
                | StoreError::NoCrawls { .. } => ReviewErrorKind::NotFound,
                StoreError::BadTransition { .. } => ReviewErrorKind::Conflict,
                _ => ReviewErrorKind::Internal,
            },
        }
    }
}

/// Start a crawl of `site` now (through the daemon's scheduler); the new crawl's id.
pub async fn trigger(scheduler: &SchedulerHandle, site: &str) -> Result<u64, ReviewError> {
    let outcome = scheduler
        .trigger(site)
        .await
        .map_err(|source| ReviewError::Scheduler { site: site.to_string(), source })?;
    match outcome {
        TriggerOutcome::Started { crawl } => {
            tracing::info!(site, crawl, "crawl started by a review action");
            Ok(crawl)
        }
        TriggerOutcome::NotStarted { error } => {
            Err(ReviewError::NotStarted { site: site.to_string(), error })
        }
        TriggerOutcome::AlreadyRunning => Err(ReviewError::AlreadyRunning { site: site.to_string() }),
        TriggerOutcome::UnknownSite => Err(ReviewError::UnknownSite { site: site.to_string() }),
        TriggerOutcome::ShuttingDown => Err(ReviewError::ShuttingDown { site: site.to_string() }),
    }
}

/// Whether a crawl waits for someone's verdict: reviewing, with changed, new, failed, added or
/// removed pages.
pub fn needs_review(c: &CrawlRecord) -> bool {
    c.status == CrawlStatus::Reviewing
        && c.counts.changed + c.counts.new + c.counts.failed + c.counts.added + c.counts.removed > 0
}

/// The last-pending-page rule: a crawl under review is settled once every changed, new, added and
/// removed page is approved and no page failed.
pub fn all_pages_settled(pages: &[PageRecord]) -> bool {
    pages.iter().all(|p| match p.change {
        PageChange::Changed | PageChange::New | PageChange::Added | PageChange::Removed => p.approved,
        PageChange::Failed => false,
        PageChange::Unchanged | PageChange::StillFailing => true,
    })
}

/// A page approval: the page, and its crawl as it is afterwards.
#[derive(Debug, Clone)]
pub struct PageApproval {
    pub page: PageRecord,
    pub crawl: CrawlRecord,
    /// The page was the last pending one: the crawl was approved with it.
    pub crawl_approved: bool,
}

/// The review actions on one store.
#[derive(Clone)]
pub struct Review {
    store: Store,
    gauge: Option<PendingGauge>,
}

/// `sitediff_review_pending_crawls`, kept for the configured sites (the daemon's metrics).
#[derive(Clone)]
struct PendingGauge {
    metrics: Metrics,
    sites: Arc<[String]>,
}

impl Review {
    /// Review actions without metrics (the CLI: the daemon recounts its gauge when scraped).
    pub fn new(store: Store) -> Review {
        Review { store, gauge: None }
    }

    /// Also keep the review-pending gauge of these sites right after every action.
    pub fn with_pending_gauge(self, metrics: Metrics, sites: impl IntoIterator<Item = String>) -> Review {
        Review { gauge: Some(PendingGauge { metrics, sites: sites.into_iter().collect() }), ..self }
    }

    /// Approve (its pages become baselines) or reject a whole crawl (blocking).
    pub fn verdict(&self, crawl: u64, verdict: Verdict) -> Result<CrawlRecord, ReviewError> {
        let rec = match verdict {
            Verdict::Approve => self.store.approve_crawl(crawl),
            Verdict::Reject => self.store.reject_crawl(crawl),
        }
        .map_err(|source| ReviewError::Verdict { crawl, verdict, source })?;
        tracing::info!(crawl, site = %rec.site, %verdict, "review verdict");
        self.refresh_pending()?;
        Ok(rec)
    }

    /// Approve one page (blocking); when it was the last pending page of a crawl under review (see
    /// [`all_pages_settled`]), the crawl itself is approved.
    pub fn approve_page(&self, crawl: u64, key: &str) -> Result<PageApproval, ReviewError> {
        let page = self.store.approve_page(crawl, key).map_err(|source| ReviewError::ApprovePage {
            crawl,
            key: key.to_string(),
            source,
        })?;
        let settle = |source| ReviewError::Settle { crawl, key: key.to_string(), source };
        let mut rec = self
            .store
            .crawl(crawl)
            .map_err(settle)?
            .ok_or_else(|| settle(StoreError::NoSuchCrawl { id: crawl }))?;
        let mut crawl_approved = false;
        if rec.status == CrawlStatus::Reviewing
            && all_pages_settled(&self.store.pages(crawl).map_err(settle)?)
        {
            rec = self.store.approve_crawl(crawl).map_err(settle)?;
            crawl_approved = true;
            tracing::info!(crawl, site = %rec.site, "last pending page approved: crawl approved");
        }
        self.refresh_pending()?;
        Ok(PageApproval { page, crawl: rec, crawl_approved })
    }

    /// Recount `sitediff_review_pending_crawls` for every configured site from the store
    /// (blocking); a no-op without metrics.
    pub fn refresh_pending(&self) -> Result<(), ReviewError> {
        let Some(g) = &self.gauge else { return Ok(()) };
        for site in g.sites.iter() {
            let crawls = self
                .store
                .crawls(site)
                .map_err(|source| ReviewError::Pending { site: site.clone(), source })?;
            g.metrics.set_review_pending(site, crawls.iter().filter(|c| needs_review(c)).count());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Blob, CrawlKind, Hash, PageOutcome};

    fn page(key: &str, change: PageChange, png: Option<&[u8]>) -> PageRecord {
        let mut p = PageRecord::failed(key.into(), format!("http://h{key}"), PageOutcome::Ok, String::new());
        p.error = None;
        p.change = change;
        p.png = png.map(Hash::of);
        p
    }

    #[test]
    fn settled_only_when_every_pending_page_is_approved_and_none_failed() {
        let mut changed = page("/c", PageChange::Changed, None);
        let unchanged = page("/u", PageChange::Unchanged, None);
        assert!(!all_pages_settled(&[changed.clone(), unchanged.clone()]));
        changed.approved = true;
        assert!(all_pages_settled(&[changed.clone(), unchanged.clone()]));
        let mut failed = page("/f", PageChange::Failed, None);
        failed.approved = true;
        assert!(!all_pages_settled(&[changed.clone(), failed]), "a failed page keeps the crawl open");
        for c in [PageChange::New, PageChange::Added, PageChange::Removed] {
            assert!(!all_pages_settled(&[changed.clone(), page("/x", c, None)]), "{c:?}");
        }
        assert!(all_pages_settled(&[]));
    }

    /// A reviewing crawl with one changed and one new page: approving both one by one approves it.
    fn reviewing_crawl(store: &Store) -> u64 {
        let png = b"not really a png".as_slice();
        let c = store.begin_crawl("s", CrawlKind::Site, "http://h/", None).unwrap();
        for (key, change) in
            [("/a", PageChange::Changed), ("/b", PageChange::New), ("/u", PageChange::Unchanged)]
        {
            store.put_page(c.id, &page(key, change, Some(png)), &[Blob::new(png)]).unwrap();
        }
        let mut rec = store.crawl(c.id).unwrap().unwrap();
        rec.status = CrawlStatus::Reviewing;
        rec.counts.changed = 1;
        rec.counts.new = 1;
        store.update_crawl(&rec).unwrap();
        c.id
    }

    #[test]
    fn approving_the_last_pending_page_approves_the_crawl() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let metrics = Metrics::new().unwrap();
        let review = Review::new(store.clone()).with_pending_gauge(metrics.clone(), ["s".to_string()]);
        let id = reviewing_crawl(&store);
        review.refresh_pending().unwrap();
        assert!(metrics.render().unwrap().contains("sitediff_review_pending_crawls{site=\"s\"} 1"));

        let first = review.approve_page(id, "/a").unwrap();
        assert!(first.page.approved);
        assert_eq!((first.crawl.status, first.crawl_approved), (CrawlStatus::Reviewing, false));
        let last = review.approve_page(id, "/b").unwrap();
        assert_eq!((last.crawl.status, last.crawl_approved), (CrawlStatus::Approved, true));
        assert_eq!(store.crawl(id).unwrap().unwrap().status, CrawlStatus::Approved);
        assert!(metrics.render().unwrap().contains("sitediff_review_pending_crawls{site=\"s\"} 0"));

        let e = review.approve_page(id, "/nope").unwrap_err();
        assert_eq!(e.kind(), ReviewErrorKind::NotFound, "{e}");
        let e = review.verdict(id, Verdict::Reject).unwrap_err();
        assert_eq!(e.kind(), ReviewErrorKind::Conflict, "an approved crawl cannot be rejected: {e}");
        assert_eq!(e.to_string(), format!("cannot reject crawl {id}"));
        let e = review.verdict(999, Verdict::Approve).unwrap_err();
        assert_eq!(e.kind(), ReviewErrorKind::NotFound);
    }

    #[test]
    fn verdicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let review = Review::new(store.clone());
        let id = reviewing_crawl(&store);
        assert_eq!(review.verdict(id, Verdict::Reject).unwrap().status, CrawlStatus::Rejected);
        assert_eq!(review.verdict(id, Verdict::Approve).unwrap().status, CrawlStatus::Approved);
        assert!(store.baseline("s", "/a").unwrap().is_some(), "approval made baselines");
    }
}
