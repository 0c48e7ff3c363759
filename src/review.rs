//! Review actions, shared by the JSON API, the review UI and the CLI: start a crawl now, record a
//! verdict on a crawl, approve one page (approving the last pending page approves the crawl, in the
//! store's transaction), restore an older crawl or page on purpose (logged, with the baselines it
//! moves), and keep the review-pending gauge right. They talk to the store, the scheduler and the
//! metrics and know nothing of HTTP; store work here is blocking.

use std::fmt;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::scheduler::{SchedulerError, SchedulerHandle, TriggerOutcome};
pub use crate::store::{all_pages_settled, BaselineMove, CrawlApproval, PageApproval};
use crate::store::{CrawlRecord, Store, StoreError};

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
    #[error("cannot restore crawl {crawl}")]
    Restore {
        crawl: u64,
        #[source]
        source: StoreError,
    },
    #[error("cannot restore page {key:?} of crawl {crawl}")]
    RestorePage {
        crawl: u64,
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot approve change group {group:?} of crawl {crawl}")]
    ApproveGroup {
        crawl: u64,
        group: String,
        #[source]
        source: StoreError,
    },
    #[error("not found: crawl {crawl} has no change group {group:?}")]
    NoSuchGroup { crawl: u64, group: String },
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
            ReviewError::UnknownSite { .. } | ReviewError::NoSuchGroup { .. } => ReviewErrorKind::NotFound,
            ReviewError::AlreadyRunning { .. } => ReviewErrorKind::Conflict,
            ReviewError::ShuttingDown { .. } | ReviewError::Scheduler { .. } => ReviewErrorKind::Unavailable,
            ReviewError::NotStarted { .. } => ReviewErrorKind::Internal,
            ReviewError::Verdict { source, .. }
            | ReviewError::ApprovePage { source, .. }
            | ReviewError::Restore { source, .. }
            | ReviewError::RestorePage { source, .. }
            | ReviewError::ApproveGroup { source, .. }
            | ReviewError::Pending { source, .. } => match source {
                StoreError::NoSuchCrawl { .. }
                | StoreError::NoSuchPage { .. }
                | StoreError::NoCrawls { .. } => ReviewErrorKind::NotFound,
                StoreError::BadTransition { .. }
                | StoreError::OlderThanApproved { .. }
                | StoreError::OlderThanBaseline { .. } => ReviewErrorKind::Conflict,
                _ => ReviewErrorKind::Internal,
            },
        }
    }
}

/// Start a crawl of `site` now (through the daemon's scheduler); the new crawl's id.
pub async fn trigger(scheduler: &SchedulerHandle, site: &str, full: bool) -> Result<u64, ReviewError> {
    let outcome = scheduler
        .trigger_full(site, full)
        .await
        .map_err(|source| ReviewError::Scheduler { site: site.to_string(), source })?;
    triggered(site, outcome)
}

/// Start a crawl of a site given whole (a pair crawl through the API) now; the new crawl's id.
pub async fn trigger_site(
    scheduler: &SchedulerHandle,
    site: crate::config::SiteConfig,
) -> Result<u64, ReviewError> {
    let name = site.name.clone();
    let outcome = scheduler
        .trigger_site(site)
        .await
        .map_err(|source| ReviewError::Scheduler { site: name.clone(), source })?;
    triggered(&name, outcome)
}

fn triggered(site: &str, outcome: TriggerOutcome) -> Result<u64, ReviewError> {
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

/// How many moved keys a restore names in its log line.
const LOGGED_MOVES: usize = 20;

/// `key: crawl 3 -> 2` for the first [`LOGGED_MOVES`] moves (`none` for a key without baseline).
fn moves_summary(moved: &[BaselineMove]) -> String {
    let mut parts: Vec<String> = moved
        .iter()
        .take(LOGGED_MOVES)
        .map(|m| match m.from {
            Some(from) => format!("{}: crawl {from} -> {}", m.key, m.to),
            None => format!("{}: none -> {}", m.key, m.to),
        })
        .collect();
    if moved.len() > LOGGED_MOVES {
        parts.push(format!("and {} more", moved.len() - LOGGED_MOVES));
    }
    parts.join(", ")
}

/// What approving a change group did: the crawl afterwards and the pages approved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupApproval {
    pub crawl: CrawlRecord,
    pub group: String,
    pub approved: Vec<String>,
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
    /// Review actions without metrics (the CLI: the daemon recounts its gauge when scraped; its
    /// verdict counters count the daemon's own verdicts).
    pub fn new(store: Store) -> Review {
        Review { store, gauge: None }
    }

    /// Also keep the review-pending gauge of these sites right after every action, and count
    /// verdicts in `sitediff_crawls_total`.
    pub fn with_pending_gauge(self, metrics: Metrics, sites: impl IntoIterator<Item = String>) -> Review {
        Review { gauge: Some(PendingGauge { metrics, sites: sites.into_iter().collect() }), ..self }
    }

    /// Approve (its pages become baselines) or reject a whole crawl (blocking).
    pub fn verdict(&self, crawl: u64, verdict: Verdict) -> Result<CrawlRecord, ReviewError> {
        // Only for counting: a verdict that changes nothing (re-approving) is not counted.
        let before = self.store.crawl(crawl).ok().flatten().map(|c| c.status);
        let rec = match verdict {
            Verdict::Approve => self.store.approve_crawl(crawl),
            Verdict::Reject => self.store.reject_crawl(crawl),
        }
        .map_err(|source| ReviewError::Verdict { crawl, verdict, source })?;
        tracing::info!(crawl, site = %rec.site, %verdict, "review verdict");
        if before != Some(rec.status) {
            self.count_verdict(&rec);
        }
        self.refresh_pending()?;
        Ok(rec)
    }

    /// Restore an older crawl as the site's baseline, on purpose (blocking): a logged action whose
    /// result lists the baselines it moved.
    pub fn restore(&self, crawl: u64) -> Result<CrawlApproval, ReviewError> {
        let done =
            self.store.restore_crawl(crawl).map_err(|source| ReviewError::Restore { crawl, source })?;
        let back = done.moved.iter().filter(|m| m.is_back()).count();
        tracing::warn!(
            crawl, site = %done.crawl.site, moved = done.moved.len(), moved_back = back,
            baselines = %moves_summary(&done.moved), "crawl restored as the baseline"
        );
        self.refresh_pending()?;
        Ok(done)
    }

    /// Approve one page (blocking); when it was the last pending page of a crawl under review (see
    /// [`all_pages_settled`]), the crawl itself is approved in the same store transaction.
    pub fn approve_page(&self, crawl: u64, key: &str) -> Result<PageApproval, ReviewError> {
        let done = self.store.approve_page(crawl, key).map_err(|source| ReviewError::ApprovePage {
            crawl,
            key: key.to_string(),
            source,
        })?;
        if done.crawl_approved {
            self.count_verdict(&done.crawl);
            tracing::info!(crawl, site = %done.crawl.site, "last pending page approved: crawl approved");
        }
        self.refresh_pending()?;
        Ok(done)
    }

    /// Approve every pending page of change group `group` of a crawl (blocking): page by page, as
    /// [`Review::approve_page`] (the last pending page of the crawl approves the crawl).
    pub fn approve_group(&self, crawl: u64, group: &str) -> Result<GroupApproval, ReviewError> {
        let err = |source| ReviewError::ApproveGroup { crawl, group: group.to_string(), source };
        let pages = self.store.pages(crawl).map_err(err)?;
        if !crate::groups::change_groups(&pages).iter().any(|g| g.id == group) {
            return Err(ReviewError::NoSuchGroup { crawl, group: group.to_string() });
        }
        let keys = crate::groups::pending_keys(&pages, group);
        // Every page of the group, or none: one write transaction.
        let done = self.store.approve_pages(crawl, &keys).map_err(err)?;
        if done.crawl_approved {
            self.count_verdict(&done.crawl);
        }
        let rec = done.crawl;
        tracing::info!(crawl, site = %rec.site, group, pages = keys.len(), "change group approved");
        self.refresh_pending()?;
        Ok(GroupApproval { crawl: rec, group: group.to_string(), approved: keys })
    }

    /// Restore one page of an older crawl as its key's baseline, on purpose (blocking, logged).
    pub fn restore_page(&self, crawl: u64, key: &str) -> Result<PageApproval, ReviewError> {
        let done = self.store.restore_page(crawl, key).map_err(|source| ReviewError::RestorePage {
            crawl,
            key: key.to_string(),
            source,
        })?;
        tracing::warn!(
            crawl, site = %done.crawl.site, key, baselines = %moves_summary(&done.moved),
            "page restored as the baseline"
        );
        self.refresh_pending()?;
        Ok(done)
    }

    /// What restoring a crawl (or one of its pages) would move, without moving it (blocking).
    pub fn restore_preview(&self, crawl: u64, key: Option<&str>) -> Result<Vec<BaselineMove>, ReviewError> {
        self.store.restore_preview(crawl, key).map_err(|source| match key {
            Some(key) => ReviewError::RestorePage { crawl, key: key.to_string(), source },
            None => ReviewError::Restore { crawl, source },
        })
    }

    /// Count a crawl's new review status in `sitediff_crawls_total` (a no-op without metrics).
    fn count_verdict(&self, rec: &CrawlRecord) {
        if let Some(g) = &self.gauge {
            g.metrics.crawl_reviewed(&rec.site, rec.status);
        }
    }

    /// Recount `sitediff_review_pending_crawls` for every configured site from the store: the
    /// crawls of [`crate::settle::pending`], superseded ones not counted (blocking; a no-op
    /// without metrics).
    pub fn refresh_pending(&self) -> Result<(), ReviewError> {
        let Some(g) = &self.gauge else { return Ok(()) };
        for site in g.sites.iter() {
            let crawls = self
                .store
                .crawls(site)
                .map_err(|source| ReviewError::Pending { site: site.clone(), source })?;
            g.metrics.set_review_pending(site, crate::settle::pending(&crawls).len());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Blob, CrawlKind, CrawlStatus, Hash, PageChange, PageOutcome, PageRecord};

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

    #[test]
    fn restore_logs_name_a_bounded_number_of_moves() {
        let mv = |i: u64, from: Option<u64>| BaselineMove { key: format!("/p{i}"), from, to: 2 };
        assert_eq!(moves_summary(&[mv(1, Some(3)), mv(2, None)]), "/p1: crawl 3 -> 2, /p2: none -> 2");
        assert!(mv(1, Some(3)).is_back() && !mv(1, Some(1)).is_back() && !mv(1, None).is_back());
        let many: Vec<BaselineMove> = (0..25).map(|i| mv(i, Some(3))).collect();
        let line = moves_summary(&many);
        assert_eq!(line.matches(" -> ").count(), LOGGED_MOVES);
        assert!(line.ends_with(", and 5 more"), "{line}");
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
        let text = metrics.render().unwrap();
        assert!(text.contains("sitediff_review_pending_crawls{site=\"s\"} 0"), "{text}");
        assert!(text.contains("sitediff_crawls_total{site=\"s\",status=\"approved\"} 1"), "{text}");

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
        let metrics = Metrics::new().unwrap();
        let review = Review::new(store.clone()).with_pending_gauge(metrics.clone(), ["s".to_string()]);
        let count = |status: &str| {
            let text = metrics.render().unwrap();
            let series = format!("sitediff_crawls_total{{site=\"s\",status=\"{status}\"}} ");
            text.lines().find_map(|l| l.strip_prefix(&series)).map(|v| v.to_string()).unwrap_or_default()
        };
        let id = reviewing_crawl(&store);
        assert_eq!(review.verdict(id, Verdict::Reject).unwrap().status, CrawlStatus::Rejected);
        assert_eq!((count("rejected"), count("approved")), ("1".into(), "".into()));
        assert_eq!(review.verdict(id, Verdict::Approve).unwrap().status, CrawlStatus::Approved);
        assert!(store.baseline("s", "/a").unwrap().is_some(), "approval made baselines");
        assert_eq!((count("rejected"), count("approved")), ("1".into(), "1".into()));
        // Approving an approved crawl again changes nothing and counts nothing.
        review.verdict(id, Verdict::Approve).unwrap();
        assert_eq!(count("approved"), "1");
        // A refused verdict counts nothing either.
        assert!(review.verdict(id, Verdict::Reject).is_err());
        assert_eq!(count("rejected"), "1");
    }

    #[test]
    fn an_older_crawl_under_review_is_superseded_by_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let metrics = Metrics::new().unwrap();
        let review = Review::new(store.clone()).with_pending_gauge(metrics.clone(), ["s".to_string()]);
        let pending = |n: u32| format!("sitediff_review_pending_crawls{{site=\"s\"}} {n}");
        let older = reviewing_crawl(&store);
        let newer = reviewing_crawl(&store);
        review.refresh_pending().unwrap();
        assert!(metrics.render().unwrap().contains(&pending(1)), "two reviewing crawls, one pending");
        review.verdict(newer, Verdict::Reject).unwrap();
        assert!(metrics.render().unwrap().contains(&pending(0)), "the newest was judged");
        assert_eq!(store.crawl(older).unwrap().unwrap().status, CrawlStatus::Reviewing);
    }
}
