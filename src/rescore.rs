//! Re-scoring a kept crawl from its stored images, no recapture: each compared page's capture is
//! compared again with the baseline it was compared with, under the site's current ignore areas,
//! masks and thresholds; the crawl's counts, status (reviewing <-> passed) and, for a site's last
//! completed crawl, its gauges follow. Blocking (store reads, diffs on the rayon pool).

use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::compare::Comparer;
use crate::config::SiteConfig;
use crate::metrics::Metrics;
use crate::settle;
use crate::store::{
    BaselineRecord, Blob, CrawlKind, CrawlRecord, CrawlStatus, PageChange, PageOutcome, PageRecord,
    StoreError,
};

/// Errors of a re-score.
#[derive(Debug, thiserror::Error)]
pub enum RescoreError {
    #[error("cannot re-score crawl {crawl}: {source}")]
    Store {
        crawl: u64,
        #[source]
        source: StoreError,
    },
    #[error("crawl {crawl} does not exist")]
    NoSuchCrawl { crawl: u64 },
    #[error("crawl {crawl} belongs to site {found:?}, not {site:?}")]
    OtherSite { crawl: u64, site: String, found: String },
    #[error("crawl {crawl} is {status}: only a finished crawl can be re-scored")]
    NotFinished { crawl: u64, status: CrawlStatus },
    #[error("crawl {crawl} is a pair crawl: its base captures are not baselines, re-score is for site and upload crawls")]
    Pair { crawl: u64 },
}

/// What a re-score did.
#[derive(Debug, Clone, Serialize)]
pub struct Rescored {
    /// The crawl afterwards.
    pub crawl: CrawlRecord,
    /// Pages compared again.
    pub pages: usize,
    /// Keys of the pages whose change moved (e.g. changed -> unchanged).
    pub moved: Vec<String>,
    /// Pages whose stored capture or baseline image is gone (left as they were).
    pub missing: usize,
    pub millis: u64,
}

/// Whether a page can be compared again from stored images: a capture compared with a baseline.
fn rescorable(p: &PageRecord) -> bool {
    p.outcome == PageOutcome::Ok
        && p.png.is_some()
        && p.baseline_png.is_some()
        && p.baseline_crawl.is_some()
        && matches!(p.change, PageChange::Changed | PageChange::Unchanged)
}

/// Re-score crawl `id` of `site` (only the pages `only` accepts, all when `None`), store the
/// result in one transaction and export the site's gauges when it is the last completed crawl.
pub fn rescore(
    comparer: &Comparer,
    site: &SiteConfig,
    id: u64,
    only: Option<&(dyn Fn(&str) -> bool + Sync)>,
    metrics: Option<&Metrics>,
) -> Result<Rescored, RescoreError> {
    let started = Instant::now();
    let store = &comparer.store;
    let err = |source| RescoreError::Store { crawl: id, source };
    let crawl = store.crawl(id).map_err(err)?.ok_or(RescoreError::NoSuchCrawl { crawl: id })?;
    if crawl.site != site.name {
        return Err(RescoreError::OtherSite { crawl: id, site: site.name.clone(), found: crawl.site });
    }
    if !settle::is_completed(crawl.status) {
        return Err(RescoreError::NotFinished { crawl: id, status: crawl.status });
    }
    if crawl.kind == CrawlKind::Pair {
        return Err(RescoreError::Pair { crawl: id });
    }
    let pages = store.pages(id).map_err(err)?;
    let todo: Vec<&PageRecord> =
        pages.iter().filter(|p| rescorable(p) && only.is_none_or(|f| f(&p.key))).collect();
    let results: Vec<Option<(PageRecord, Vec<Vec<u8>>)>> =
        todo.par_iter().map(|p| again(comparer, site, p)).collect::<Result<_, StoreError>>().map_err(err)?;
    let missing = results.iter().filter(|r| r.is_none()).count();
    let (records, blobs): (Vec<PageRecord>, Vec<Vec<Vec<u8>>>) = results.into_iter().flatten().unzip();
    let moved = records
        .iter()
        .zip(todo.iter())
        .filter(|(new, old)| new.change != old.change)
        .map(|(new, _)| new.key.clone())
        .collect();
    let new_blobs: Vec<Blob<'_>> = blobs.iter().flatten().map(|b| Blob::new(b)).collect();
    let crawl = store
        .write_rescored(id, &records, &new_blobs, |rec, all| {
            rec.tally(all);
            if matches!(rec.status, CrawlStatus::Reviewing | CrawlStatus::Passed) {
                rec.status = settle::settled_status(rec);
            }
        })
        .map_err(err)?;
    if let Some(m) = metrics {
        let last = settle::last_completed_crawl(store, &site.name).map_err(err)?;
        if last.as_ref().is_some_and(|c| c.id == id) {
            let pages = match site.page_metrics {
                true => Some(store.pages(id).map_err(err)?),
                false => None,
            };
            settle::export_last_crawl(m, &crawl, pages.as_deref());
        }
    }
    let millis = started.elapsed().as_millis() as u64;
    tracing::info!(crawl = id, site = %site.name, pages = todo.len(), millis, "crawl re-scored");
    Ok(Rescored { crawl, pages: todo.len(), moved, missing, millis })
}

/// A page compared again and its new artifacts (diff image, previews; not the capture, which is
/// stored already: only these are held until the write, so a large crawl's re-score does not
/// hold every capture in memory).
type Again = (PageRecord, Vec<Vec<u8>>);

/// Compare one stored page again; `None` when its capture image is gone.
fn again(comparer: &Comparer, site: &SiteConfig, p: &PageRecord) -> Result<Option<Again>, StoreError> {
    let (Some(png), Some(base_png), Some(base_crawl)) = (p.png, p.baseline_png, p.baseline_crawl) else {
        return Ok(None);
    };
    let Some(bytes) = comparer.store.blob(&png)? else { return Ok(None) };
    let fresh = PageRecord {
        change: PageChange::New,
        diff: None,
        diff_pixels: 0,
        distortion: None,
        score: None,
        score_reason: None,
        size_changed: false,
        regions: Vec::new(),
        error: None,
        change_preview: None,
        group: None,
        ignored: Vec::new(),
        ..p.clone()
    };
    let baseline = BaselineRecord {
        crawl: base_crawl,
        png: base_png,
        html: p.baseline_html,
        width: 0,
        height: 0,
        approved_at: 0,
    };
    let c = comparer.compare_with_baseline(site, fresh, vec![bytes], Some(baseline))?;
    if c.record.baseline_png.is_none() {
        // The baseline image is gone: keep the page as it was.
        return Ok(None);
    }
    // blobs[0] is the capture, stored already.
    Ok(Some((c.record, c.blobs.into_iter().skip(1).collect())))
}
