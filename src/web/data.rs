//! What the UI and the API show, read from the store off the async threads: site overviews, crawl
//! page listings (sorted, filtered, paged, cached per finished crawl), page details with their
//! text change, and the API's view of a crawl.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::RequestError;
use super::state::WebState;
use super::textdiff::{self, TextChange};
use crate::capture::geometry::png_size;
use crate::settle::needs_review;
use crate::store::{CrawlRecord, CrawlStatus, Hash, PageChange, PageRecord, Store};

/// Finished crawls whose sorted page list is kept in memory.
const MAX_CACHED_CRAWLS: usize = 16;
/// Captured HTML larger than this is not parsed for the text change.
pub const MAX_HTML_BYTES: usize = 8 * 1024 * 1024;

/// Run blocking store work on the blocking pool.
pub async fn blocking<T, F>(op: &'static str, f: F) -> Result<T, RequestError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, RequestError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|e| RequestError::internal(op, e))?
}

/// Which pages of a crawl to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageFilter {
    #[default]
    All,
    Changed,
    Failed,
    New,
    /// Pair crawls: only on the head side.
    Added,
    /// Pair crawls: only on the base side.
    Removed,
}

/// Number of page filters (the filter tabs).
pub const FILTER_COUNT: usize = 6;

impl PageFilter {
    pub const ALL: [PageFilter; FILTER_COUNT] = [
        PageFilter::All,
        PageFilter::Changed,
        PageFilter::Failed,
        PageFilter::New,
        PageFilter::Added,
        PageFilter::Removed,
    ];

    pub fn parse(s: &str) -> Result<PageFilter, RequestError> {
        match s {
            "" | "all" => Ok(PageFilter::All),
            "changed" => Ok(PageFilter::Changed),
            "failed" => Ok(PageFilter::Failed),
            "new" => Ok(PageFilter::New),
            "added" => Ok(PageFilter::Added),
            "removed" => Ok(PageFilter::Removed),
            other => Err(RequestError::bad_request(format!(
                "unknown filter {other:?} (expected changed, failed, new, added, removed or all)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PageFilter::All => "all",
            PageFilter::Changed => "changed",
            PageFilter::Failed => "failed",
            PageFilter::New => "new",
            PageFilter::Added => "added",
            PageFilter::Removed => "removed",
        }
    }

    pub fn matches(self, change: PageChange) -> bool {
        match self {
            PageFilter::All => true,
            PageFilter::Changed => change == PageChange::Changed,
            PageFilter::Failed => matches!(change, PageChange::Failed | PageChange::StillFailing),
            PageFilter::New => change == PageChange::New,
            PageFilter::Added => change == PageChange::Added,
            PageFilter::Removed => change == PageChange::Removed,
        }
    }

    /// Filters that only pair crawls use are shown only when they have pages.
    pub fn pair_only(self) -> bool {
        matches!(self, PageFilter::Added | PageFilter::Removed)
    }
}

/// The listing fields of one page.
#[derive(Debug, Clone, Serialize)]
pub struct PageSummary {
    pub key: String,
    pub url: String,
    pub title: Option<String>,
    pub outcome: &'static str,
    pub change: &'static str,
    #[serde(skip)]
    pub change_kind: PageChange,
    pub http_status: Option<u16>,
    pub distortion: Option<f64>,
    pub score: Option<f64>,
    /// A score plugin's reason for `score`, as `PLUGIN: reason`.
    pub score_reason: Option<String>,
    pub approved: bool,
    pub width: u32,
    pub height: u32,
    /// Taller than the site's `max_height`: only the top `height` px were captured (the page fails).
    pub truncated: bool,
    /// Artifact hashes (`/artifacts/{hash}`).
    pub png: Option<Hash>,
    /// The crawl whose capture this page was compared with, and that capture.
    pub baseline_crawl: Option<u64>,
    pub baseline_png: Option<Hash>,
    pub diff: Option<Hash>,
    pub error: Option<String>,
    /// What the comparison ignored (built-in masking of the site's `mask_selectors`).
    pub masked: Vec<MaskedRect>,
    /// The page whose links led discovery here first.
    pub referrer: Option<String>,
    /// The approved crawl whose capture was reused without rendering (incremental crawls).
    pub reused_from: Option<u64>,
    /// Small previews (JPEG): the top of the capture, and the crop around the first change.
    pub thumb: Option<Hash>,
    pub change_preview: Option<Hash>,
    /// The change group of a changed page (`GET /api/crawls/{id}/groups`).
    pub group: Option<String>,
}

/// Where an ignore area comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AreaSource {
    /// The site's `ignore_areas` in the config file (read-only here).
    Config,
    /// Saved by a reviewer (UI or API).
    Stored,
}

/// One ignore area as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ListedArea {
    /// Stored areas only.
    pub id: Option<u64>,
    pub source: AreaSource,
    pub key: String,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub created_by: Option<String>,
    pub created_at: Option<i64>,
}

/// Page keys shown per change group in the crawl view.
pub const GROUP_KEYS_SHOWN: usize = 5;

/// A change group as the crawl view shows it.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: String,
    pub pages: usize,
    pub pending: usize,
    pub representative: String,
    pub preview: Option<Hash>,
    /// The first [`GROUP_KEYS_SHOWN`] keys.
    pub keys: Vec<String>,
}

/// The change groups among a crawl's pages, biggest first (as [`crate::groups::change_groups`]).
pub fn group_rows(pages: &[PageSummary]) -> Vec<GroupRow> {
    let mut by_key: Vec<&PageSummary> = pages.iter().collect();
    by_key.sort_by(|a, b| a.key.cmp(&b.key));
    let members = by_key.into_iter().map(|p| crate::groups::Member {
        key: &p.key,
        group: p.group.as_deref(),
        change: p.change_kind,
        approved: p.approved,
        diff: p.diff,
        change_preview: p.change_preview,
        png: p.png,
        regions: &[],
    });
    crate::groups::group_members(members, GROUP_KEYS_SHOWN)
        .into_iter()
        .map(|g| GroupRow {
            id: g.id,
            pages: g.pages,
            pending: g.pending,
            representative: g.representative,
            preview: g.change_preview.or(g.diff),
            keys: g.keys,
        })
        .collect()
}

/// One rectangle the comparison ignored on both images: the `mask_selectors` entry it belongs to
/// and the image it was measured on (`capture`, or `baseline`: the baseline's or a pair crawl's
/// base page). Coordinates are image pixels from the top left, shared by both images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaskedRect {
    pub selector: String,
    pub image: &'static str,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The rectangles a compared page had masked (none for a page without a baseline): the capture's,
/// then the baseline's (often the same places: each image's are listed).
pub fn masked_rects(p: &PageRecord) -> Vec<MaskedRect> {
    if p.baseline_png.is_none() {
        return Vec::new();
    }
    let sides = [("capture", &p.mask_rects), ("baseline", &p.baseline_mask_rects)];
    sides
        .into_iter()
        .flat_map(|(image, sets)| sets.iter().map(move |s| (image, s)))
        .flat_map(|(image, s)| {
            s.rects.iter().filter(|r| r.width > 0 && r.height > 0).map(move |r| MaskedRect {
                selector: s.selector.clone(),
                image,
                x: r.x,
                y: r.y,
                width: r.width,
                height: r.height,
            })
        })
        .collect()
}

impl From<&PageRecord> for PageSummary {
    fn from(p: &PageRecord) -> Self {
        PageSummary {
            key: p.key.clone(),
            url: p.url.clone(),
            title: p.title.clone(),
            outcome: p.outcome.as_str(),
            change: p.change.as_str(),
            change_kind: p.change,
            http_status: p.http_status,
            distortion: p.distortion,
            score: p.score,
            score_reason: p.score_reason.clone(),
            approved: p.approved,
            width: p.width,
            height: p.height,
            truncated: p.truncated,
            png: p.png,
            baseline_crawl: p.baseline_crawl,
            baseline_png: p.baseline_png,
            diff: p.diff,
            error: p.error.clone(),
            masked: masked_rects(p),
            referrer: p.referrer.clone(),
            reused_from: p.reused_from,
            thumb: p.thumb,
            change_preview: p.change_preview,
            group: p.group.clone(),
        }
    }
}

fn rank(c: PageChange) -> u8 {
    match c {
        PageChange::Changed => 0,
        PageChange::Removed => 1,
        PageChange::Added => 2,
        PageChange::Failed => 3,
        PageChange::New => 4,
        PageChange::StillFailing => 5,
        PageChange::Unchanged => 6,
    }
}

/// Review order: changed (largest distortion first), failed, new, unchanged; then by key.
pub fn sort_pages(pages: &mut [PageSummary]) {
    pages.sort_by(|a, b| {
        rank(a.change_kind)
            .cmp(&rank(b.change_kind))
            .then_with(|| b.distortion.unwrap_or(-1.0).total_cmp(&a.distortion.unwrap_or(-1.0)))
            .then_with(|| a.key.cmp(&b.key))
    });
}

/// A crawl as the API shows it.
#[derive(Debug, Serialize)]
pub struct ApiCrawl {
    #[serde(flatten)]
    pub record: CrawlRecord,
    /// Reviewing, with something to review (changed, new, newly failing, added or removed pages).
    /// A site's `pending_reviews` counts only its newest finished crawl of each kind.
    pub needs_review: bool,
}

impl From<CrawlRecord> for ApiCrawl {
    fn from(record: CrawlRecord) -> Self {
        ApiCrawl { needs_review: needs_review(&record), record }
    }
}

/// One site on the dashboard / in `GET /api/sites`.
#[derive(Debug, Clone, Serialize)]
pub struct SiteOverview {
    pub name: String,
    /// False for sites found only in the store (removed from the config).
    pub configured: bool,
    pub start: Option<String>,
    pub schedule: Option<String>,
    /// RFC 3339, UTC.
    #[serde(serialize_with = "rfc3339")]
    pub next_run: Option<DateTime<Utc>>,
    pub busy: bool,
    pub running_crawl: Option<u64>,
    pub last_crawl: Option<CrawlRecord>,
    pub pending_reviews: usize,
    pub crawls: usize,
}

fn rfc3339<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        None => s.serialize_none(),
    }
}

/// A page of a crawl's page list.
#[derive(Debug, Clone)]
pub struct Listing {
    pub crawl: CrawlRecord,
    pub filter: PageFilter,
    /// Pages matching the filter.
    pub total: usize,
    pub offset: usize,
    pub pages: Vec<PageSummary>,
    /// Page counts per filter, for the filter tabs.
    pub counts: [usize; FILTER_COUNT],
    /// The site's newest approval ([`Store::newest_approval`]): an older crawl can only be restored.
    pub newest_approval: Option<u64>,
    /// The crawl's change groups, biggest first.
    pub groups: Vec<GroupRow>,
}

/// Everything the page view shows.
#[derive(Debug, Clone)]
pub struct PageDetail {
    pub crawl: CrawlRecord,
    pub page: PageRecord,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// 1-based position within the filtered list (0 when the page is not in it).
    pub position: usize,
    pub total: usize,
    pub text: Result<TextChange, String>,
    /// The site's newest approval ([`Store::newest_approval`]).
    pub newest_approval: Option<u64>,
    /// The crawl the page key's baseline comes from now (a page older than it can only be restored).
    pub current_baseline: Option<u64>,
    /// What the comparison ignored, and the size of the image compared with (for outlining it).
    pub masked: Vec<MaskedRect>,
    pub baseline_size: Option<(u32, u32)>,
}

/// Read access to the store with a cache of sorted page lists of finished crawls.
pub struct Catalog {
    store: Store,
    cache: Mutex<HashMap<u64, Arc<Vec<PageSummary>>>>,
}

impl Catalog {
    pub fn new(store: Store) -> Catalog {
        Catalog { store, cache: Mutex::new(HashMap::new()) }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Vec<PageSummary>>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget a crawl's cached list (after a page approval changed it).
    pub fn invalidate(&self, crawl: u64) {
        self.cache().remove(&crawl);
    }

    /// The crawl record, or 404.
    pub fn crawl(&self, id: u64) -> Result<CrawlRecord, RequestError> {
        self.store.crawl(id)?.ok_or_else(|| RequestError::not_found(format!("crawl {id}")))
    }

    /// All pages of a crawl in review order (blocking).
    pub fn sorted_pages(&self, crawl: &CrawlRecord) -> Result<Arc<Vec<PageSummary>>, RequestError> {
        if let Some(hit) = self.cache().get(&crawl.id) {
            return Ok(hit.clone());
        }
        let mut pages: Vec<PageSummary> = self.store.pages(crawl.id)?.iter().map(PageSummary::from).collect();
        sort_pages(&mut pages);
        let pages = Arc::new(pages);
        if crawl.status != CrawlStatus::Running {
            let mut cache = self.cache();
            if cache.len() >= MAX_CACHED_CRAWLS {
                if let Some(oldest) = cache.keys().min().copied() {
                    cache.remove(&oldest);
                }
            }
            cache.insert(crawl.id, pages.clone());
        }
        Ok(pages)
    }

    /// One window of a crawl's filtered page list (blocking).
    pub fn listing(
        &self,
        id: u64,
        filter: PageFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Listing, RequestError> {
        let crawl = self.crawl(id)?;
        let all = self.sorted_pages(&crawl)?;
        let mut counts = [0usize; FILTER_COUNT];
        for p in all.iter() {
            for (i, f) in PageFilter::ALL.iter().enumerate() {
                if f.matches(p.change_kind) {
                    counts[i] += 1;
                }
            }
        }
        let matching = all.iter().filter(|p| filter.matches(p.change_kind));
        let total = counts[PageFilter::ALL.iter().position(|f| *f == filter).unwrap_or(0)];
        let pages = matching.skip(offset).take(limit).cloned().collect();
        let newest_approval = self.store.newest_approval(&crawl.site)?;
        let groups = group_rows(&all);
        Ok(Listing { crawl, filter, total, offset, pages, counts, newest_approval, groups })
    }

    /// Overviews of every configured site and every site with crawls (blocking).
    pub fn sites(&self, state: &WebState) -> Result<Vec<SiteOverview>, RequestError> {
        // The live config: sites added or removed by a reload show as such.
        let config = state.scheduler.config();
        let mut names: Vec<(String, bool)> = config.sites.iter().map(|s| (s.name.clone(), true)).collect();
        for n in self.store.site_names()? {
            if !names.iter().any(|(m, _)| *m == n) {
                names.push((n, false));
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for (name, configured) in names {
            let crawls = self.store.crawls(&name)?;
            let site = config.site(&name);
            out.push(SiteOverview {
                start: site.map(|s| s.start.to_string()),
                schedule: site.and_then(|s| s.schedule.as_ref().map(|c| c.expr.clone())),
                next_run: state.scheduler.next_run(&name),
                busy: state.scheduler.is_busy(&name),
                running_crawl: state.scheduler.running_crawl(&name),
                pending_reviews: crate::settle::pending(&crawls).len(),
                crawls: crawls.len(),
                last_crawl: crawls.into_iter().next(),
                configured,
                name,
            });
        }
        Ok(out)
    }

    /// Whether a site exists (configured or with crawls) (blocking).
    pub fn site_exists(&self, state: &WebState, name: &str) -> Result<bool, RequestError> {
        Ok(state.scheduler.config().site(name).is_some() || !self.store.crawl_ids(name)?.is_empty())
    }

    /// A known site's crawls, newest first; 404 for a site neither configured nor crawled (blocking).
    pub fn site_crawls(&self, state: &WebState, site: &str) -> Result<Vec<CrawlRecord>, RequestError> {
        if !self.site_exists(state, site)? {
            return Err(RequestError::not_found(format!("site {site:?}")));
        }
        Ok(self.store.crawls(site)?)
    }

    /// The page view's data (blocking).
    pub fn page_detail(&self, id: u64, key: &str, filter: PageFilter) -> Result<PageDetail, RequestError> {
        let crawl = self.crawl(id)?;
        let page = self
            .store
            .page(id, key)?
            .ok_or_else(|| RequestError::not_found(format!("page {key:?} in crawl {id}")))?;
        let all = self.sorted_pages(&crawl)?;
        let list: Vec<&PageSummary> = all.iter().filter(|p| filter.matches(p.change_kind)).collect();
        let idx = list.iter().position(|p| p.key == key);
        let prev = idx.and_then(|i| i.checked_sub(1)).and_then(|i| list.get(i)).map(|p| p.key.clone());
        let next = idx.and_then(|i| list.get(i + 1)).map(|p| p.key.clone());
        let text = self.text_change(&crawl, &page);
        let newest_approval = self.store.newest_approval(&crawl.site)?;
        let current_baseline = self.store.baseline(&crawl.site, key)?.map(|b| b.crawl);
        let masked = masked_rects(&page);
        let baseline_size = if masked.is_empty() { None } else { self.baseline_size(&page)? };
        Ok(PageDetail {
            newest_approval,
            current_baseline,
            position: idx.map_or(0, |i| i + 1),
            total: list.len(),
            crawl,
            page,
            prev,
            next,
            text,
            masked,
            baseline_size,
        })
    }

    /// The size of the image a page was compared with: its baseline page's, else (pair crawls) read
    /// from the PNG's header.
    fn baseline_size(&self, page: &PageRecord) -> Result<Option<(u32, u32)>, RequestError> {
        if let Some(b) = page.baseline_crawl {
            if let Some(p) = self.store.page(b, &page.key)?.filter(|p| p.png == page.baseline_png) {
                return Ok(Some((p.width, p.height)).filter(|&(w, h)| w > 0 && h > 0));
            }
        }
        let Some(h) = page.baseline_png else { return Ok(None) };
        Ok(self.store.blob(&h)?.as_deref().and_then(png_size))
    }

    fn html_text(&self, hash: Option<Hash>) -> Result<Option<Vec<String>>, RequestError> {
        let Some(h) = hash else { return Ok(None) };
        let Some(bytes) = self.store.blob(&h)? else { return Ok(None) };
        if bytes.len() > MAX_HTML_BYTES {
            return Err(RequestError::bad_request(format!("captured HTML over {MAX_HTML_BYTES} bytes")));
        }
        Ok(Some(textdiff::visible_text(&String::from_utf8_lossy(&bytes))))
    }

    /// The text change against the HTML of the capture this page was compared with.
    fn text_change(&self, crawl: &CrawlRecord, page: &PageRecord) -> Result<TextChange, String> {
        let inner = || -> Result<Result<TextChange, String>, RequestError> {
            let baseline_html = match (page.baseline_html, page.baseline_crawl) {
                (Some(h), _) => Some(h),
                (None, Some(b)) => self.store.page(b, &page.key)?.and_then(|p| p.html),
                (None, None) => self
                    .store
                    .baseline(&crawl.site, &page.key)?
                    .filter(|b| b.crawl != crawl.id)
                    .and_then(|b| b.html),
            };
            let new = self.html_text(page.html)?;
            let old = self.html_text(baseline_html)?;
            Ok(match (old, new) {
                (Some(old), Some(new)) => Ok(textdiff::line_diff(&old, &new)),
                (None, Some(new)) => Ok(textdiff::line_diff(&[], &new)),
                (_, None) => Err("no HTML was captured for this page".to_string()),
            })
        };
        inner().unwrap_or_else(|e| Err(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PageOutcome;

    fn summary(key: &str, change: PageChange, d: Option<f64>) -> PageSummary {
        let mut p = PageRecord::failed(key.into(), format!("http://h{key}"), PageOutcome::Ok, String::new());
        p.change = change;
        p.distortion = d;
        PageSummary::from(&p)
    }

    #[test]
    fn review_order() {
        let mut v = vec![
            summary("/u", PageChange::Unchanged, Some(0.0)),
            summary("/n", PageChange::New, None),
            summary("/c1", PageChange::Changed, Some(0.1)),
            summary("/f", PageChange::Failed, None),
            summary("/c2", PageChange::Changed, Some(0.5)),
        ];
        sort_pages(&mut v);
        let keys: Vec<&str> = v.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["/c2", "/c1", "/f", "/n", "/u"]);
        assert!(PageFilter::parse("bogus").is_err());
        assert_eq!(PageFilter::parse("failed").unwrap(), PageFilter::Failed);
    }

    #[test]
    fn masked_rects_of_compared_pages_only() {
        use crate::capture::SelectorRects;
        use crate::diff::Rect;
        let sel = |x| SelectorRects {
            selector: "#clock".into(),
            rects: vec![Rect { x, y: 2, width: 3, height: 4 }, Rect { x: 0, y: 0, width: 0, height: 9 }],
        };
        let mut p = PageRecord::new("/a".into(), "http://h/a".into());
        p.mask_rects = vec![sel(1)];
        assert!(masked_rects(&p).is_empty(), "a new page was not compared, so nothing was masked");
        p.baseline_png = Some(Hash::of(b"base"));
        p.baseline_mask_rects = vec![sel(5)];
        let m = masked_rects(&p);
        let got: Vec<(&str, &str, u32)> = m.iter().map(|r| (r.selector.as_str(), r.image, r.x)).collect();
        assert_eq!(got, [("#clock", "capture", 1), ("#clock", "baseline", 5)], "empty rectangles left out");
        let json = serde_json::to_value(PageSummary::from(&p)).unwrap();
        assert_eq!(
            json["masked"][1],
            serde_json::json!({"selector": "#clock", "image": "baseline", "x": 5, "y": 2, "width": 3, "height": 4})
        );
    }
}
