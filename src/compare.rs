//! Comparing one capture with its baseline: mask plugins on both images, the diff, score plugins.
//! Pure CPU work plus store reads: runs on the blocking pool.

use std::sync::Arc;
use std::time::Instant;

use crate::capture::{Capture, SelectorRects};
use crate::config::SiteConfig;
use crate::crawl::DiscoveredPage;
use crate::diff::{self, DecodedCache, DiffOptions, DiffOutcome, ImageSource, Rect, RgbaImage};
use crate::metrics::{Metrics, PluginCallOutcome};
use crate::plugin::{PageContext, PluginError, PluginHost, PluginKind};
use crate::store::{
    BaselineRecord, Hash, PageChange, PageOutcome, PageRecord, PageTiming, Store, StoreError,
};

/// Decoded baselines kept in memory between crawls (bounds the daemon's RSS).
pub const BASELINE_CACHE_BYTES: usize = 96 * 1024 * 1024;

/// Shared, read-only inputs of every comparison in a crawl.
#[derive(Clone)]
pub struct Comparer {
    pub store: Store,
    pub plugins: Option<Arc<PluginHost>>,
    pub cache: Arc<DecodedCache>,
    pub metrics: Option<Metrics>,
}

/// A page record plus the artifacts to store with it.
pub struct Compared {
    pub record: PageRecord,
    pub blobs: Vec<Vec<u8>>,
}

/// The score plugins' verdict on a page: the highest score and its plugin's reason.
struct Verdict {
    score: f64,
    reason: Option<String>,
}

/// Why the plugin step failed (kept apart from store errors, which fail the crawl).
enum Step {
    Plugin(PluginError),
    Diff(diff::DiffError),
}

impl Comparer {
    /// A comparer over `store` with its own baseline decode cache.
    pub fn new(store: Store, plugins: Option<Arc<PluginHost>>, metrics: Option<Metrics>) -> Comparer {
        Comparer { store, plugins, cache: Arc::new(DecodedCache::new(BASELINE_CACHE_BYTES)), metrics }
    }

    /// Build the page record of a capture, comparing it with the page's baseline if it has one.
    pub fn compare(
        &self,
        site: &SiteConfig,
        page: &DiscoveredPage,
        http_status: u16,
        fetched_title: Option<String>,
        capture: Capture,
        baseline: Option<BaselineRecord>,
    ) -> Result<Compared, StoreError> {
        let (rec, blobs) = capture_record(page, http_status, fetched_title, capture);
        self.compare_with_baseline(site, rec, blobs, baseline)
    }

    /// Compare a record whose new PNG is `blobs[0]` with a stored baseline (none: the page is new).
    pub fn compare_with_baseline(
        &self,
        site: &SiteConfig,
        mut rec: PageRecord,
        mut blobs: Vec<Vec<u8>>,
        baseline: Option<BaselineRecord>,
    ) -> Result<Compared, StoreError> {
        rec.baseline_crawl = baseline.as_ref().map(|b| b.crawl);
        rec.baseline_png = baseline.as_ref().map(|b| b.png);
        rec.baseline_html = baseline.as_ref().and_then(|b| b.html);
        let Some(b) = baseline else { return Ok(Compared { record: rec, blobs }) };

        let started = Instant::now();
        let has_score = self.has_kind(site, PluginKind::Score);
        if rec.png == Some(b.png) && !has_score {
            // Same bytes: masks are deterministic, so nothing can differ.
            rec.distortion = Some(0.0);
        } else {
            match self.store.blob(&b.png)? {
                None => {
                    rec.error = Some(format!("baseline artifact {} is missing; page treated as new", b.png));
                    rec.baseline_crawl = None;
                    rec.baseline_png = None;
                    rec.baseline_html = None;
                }
                Some(base_png) => {
                    let base_rects = match self.has_kind(site, PluginKind::Mask) {
                        true => self.store.page(b.crawl, &rec.key)?.map(|p| p.mask_rects).unwrap_or_default(),
                        false => Vec::new(),
                    };
                    self.diff_step(site, &mut rec, &mut blobs, &base_png, &base_rects);
                }
            }
        }
        self.settle(site, &mut rec, started);
        Ok(Compared { record: rec, blobs })
    }

    /// Compare a record whose new PNG is `blobs[0]` with a live base capture (pair crawls). The
    /// base PNG and HTML are stored with the page (`baseline_png`, `baseline_html`).
    pub fn compare_with_capture(
        &self,
        site: &SiteConfig,
        mut rec: PageRecord,
        mut blobs: Vec<Vec<u8>>,
        base: Capture,
    ) -> Compared {
        let started = Instant::now();
        let base_hash = Hash::of(&base.png);
        let base_html = base.html.into_bytes();
        rec.baseline_png = Some(base_hash);
        rec.baseline_html = Some(Hash::of(&base_html));
        if rec.png == Some(base_hash) && !self.has_kind(site, PluginKind::Score) {
            rec.distortion = Some(0.0);
        } else {
            self.diff_step(site, &mut rec, &mut blobs, &base.png, &base.mask_rects);
        }
        blobs.push(base.png);
        blobs.push(base_html);
        self.settle(site, &mut rec, started);
        Compared { record: rec, blobs }
    }

    /// Diff `blobs[0]` (the new PNG) against `base_png`, filling the record's diff fields (or its
    /// error when a plugin or the decoder failed); the diff PNG is appended to `blobs`.
    fn diff_step(
        &self,
        site: &SiteConfig,
        rec: &mut PageRecord,
        blobs: &mut Vec<Vec<u8>>,
        base_png: &[u8],
        base_rects: &[SelectorRects],
    ) {
        let Some(new_png) = blobs.first() else { return };
        match self.diff_with_plugins(site, rec, base_png, new_png, base_rects) {
            Ok((outcome, score)) => {
                rec.diff_pixels = outcome.diff_pixels;
                rec.distortion = Some(outcome.distortion);
                rec.size_changed = outcome.size_changed;
                rec.regions = outcome.regions;
                if let Some(v) = score {
                    rec.score = Some(v.score);
                    rec.score_reason = v.reason;
                }
                if outcome.diff_pixels > 0 {
                    if let Some(png) = outcome.diff_png {
                        rec.diff = Some(Hash::of(&png));
                        blobs.push(png);
                    }
                }
            }
            Err(Step::Plugin(e)) => {
                rec.outcome = PageOutcome::PluginError;
                rec.change = PageChange::Failed;
                rec.error = Some(e.to_string());
            }
            Err(Step::Diff(e)) => {
                rec.outcome = PageOutcome::CaptureError;
                rec.change = PageChange::Failed;
                rec.error = Some(e.to_string());
            }
        }
    }

    /// Record the diff time and decide `changed` / `unchanged` from the score.
    fn settle(&self, site: &SiteConfig, rec: &mut PageRecord, started: Instant) {
        rec.timing.diff_ms = started.elapsed().as_millis() as u64;
        if let Some(m) = &self.metrics {
            m.diff_observed(started.elapsed().as_secs_f64());
        }
        if rec.change != PageChange::Failed {
            if let Some(d) = rec.distortion {
                let score = *rec.score.get_or_insert(d);
                rec.change =
                    if score > site.max_distortion { PageChange::Changed } else { PageChange::Unchanged };
            }
        }
    }

    fn has_kind(&self, site: &SiteConfig, kind: PluginKind) -> bool {
        match &self.plugins {
            Some(host) => site.plugins.iter().any(|p| host.kind(p) == Some(kind)),
            None => false,
        }
    }

    fn count_call(&self, plugin: &str, ok: bool) {
        if let Some(m) = &self.metrics {
            m.plugin_called(plugin, if ok { PluginCallOutcome::Ok } else { PluginCallOutcome::Error });
        }
    }

    /// Run the site's mask plugins on one image, in order; returns the (possibly edited) image and
    /// the rectangles to ignore.
    fn mask(
        &self,
        host: &PluginHost,
        site: &SiteConfig,
        img: Arc<RgbaImage>,
        ctx: &PageContext,
        ignore: &mut Vec<Rect>,
    ) -> Result<Arc<RgbaImage>, PluginError> {
        let mut current = img;
        for name in site.plugins.iter().filter(|p| host.kind(p) == Some(PluginKind::Mask)) {
            let out = host.mask(name, &current, ctx);
            self.count_call(name, out.is_ok());
            let out = out?;
            for line in &out.logs {
                tracing::info!(plugin = %name, page = %ctx.page_key, "{line}");
            }
            ignore.extend(out.ignore);
            if let Some(edited) = out.image {
                current = Arc::new(edited);
            }
        }
        Ok(current)
    }

    /// Diff the baseline with the new capture, with mask plugins before and score plugins after.
    /// Returns the diff (with its PNG) and the score plugins' verdict (the highest score).
    fn diff_with_plugins(
        &self,
        site: &SiteConfig,
        rec: &PageRecord,
        base_png: &[u8],
        new_png: &[u8],
        base_rects: &[SelectorRects],
    ) -> Result<(DiffOutcome, Option<Verdict>), Step> {
        let mut opts = DiffOptions {
            threshold: site.threshold,
            include_aa: site.count_aa,
            diff_png: true,
            ..DiffOptions::default()
        };
        let base = self.cache.get_or_decode(base_png, "baseline").map_err(Step::Diff)?;
        let host = match &self.plugins {
            Some(h) if !site.plugins.is_empty() => h,
            _ => {
                let outcome = diff::compare_sources(
                    ImageSource::Decoded(&base),
                    ImageSource::Png { bytes: new_png, name: "capture" },
                    &opts,
                    None,
                )
                .map_err(Step::Diff)?;
                return Ok((outcome, None));
            }
        };
        let new = Arc::new(diff::decode_png(new_png, "capture").map_err(Step::Diff)?);
        let ctx_new = PageContext {
            site: site.name.clone(),
            page_key: rec.key.clone(),
            url: rec.url.clone(),
            viewport: site.viewport.into(),
            selectors: rec.mask_rects.clone(),
        };
        let ctx_base = PageContext { selectors: base_rects.to_vec(), ..ctx_new.clone() };
        let base = self.mask(host, site, base, &ctx_base, &mut opts.ignore).map_err(Step::Plugin)?;
        let new = self.mask(host, site, new, &ctx_new, &mut opts.ignore).map_err(Step::Plugin)?;
        let outcome =
            diff::compare_sources(ImageSource::Decoded(&base), ImageSource::Decoded(&new), &opts, None)
                .map_err(Step::Diff)?;
        let mut verdict: Option<Verdict> = None;
        for name in site.plugins.iter().filter(|p| host.kind(p) == Some(PluginKind::Score)) {
            let out = host.score(name, &base, &new, &outcome, &ctx_new);
            self.count_call(name, out.is_ok());
            let out = out.map_err(Step::Plugin)?;
            if verdict.as_ref().is_none_or(|v| out.score > v.score) {
                verdict =
                    Some(Verdict { score: out.score, reason: out.reason.map(|r| format!("{name}: {r}")) });
            }
        }
        Ok((outcome, verdict))
    }
}

/// The record of a fresh capture, not compared yet (change `new`), and its artifacts: the PNG first,
/// then the HTML.
pub fn capture_record(
    page: &DiscoveredPage,
    http_status: u16,
    fetched_title: Option<String>,
    capture: Capture,
) -> (PageRecord, Vec<Vec<u8>>) {
    let html_bytes = capture.html.into_bytes();
    let rec = PageRecord {
        title: capture.title.or(fetched_title),
        http_status: Some(http_status),
        png: Some(Hash::of(&capture.png)),
        html: Some(Hash::of(&html_bytes)),
        width: capture.width,
        height: capture.height,
        truncated: capture.truncated,
        timing: PageTiming {
            fetch_ms: page.fetch_ms,
            navigate_ms: capture.timing.navigate_ms,
            settle_ms: capture.timing.settle_ms,
            screenshot_ms: capture.timing.screenshot_ms,
            diff_ms: 0,
        },
        mask_rects: capture.mask_rects,
        unstable_area: capture.unstable_area,
        unstable_rect: capture.unstable_rect,
        blocked_navigations: capture.blocked_navigations,
        redirected_from: page.redirected_from.clone(),
        ..PageRecord::new(page.key.clone(), page.url.to_string())
    };
    (rec, vec![capture.png, html_bytes])
}
