//! Comparing one capture with its baseline: built-in masking of the site's `mask_selectors` and
//! mask plugins on both images, the diff, score plugins. Pure CPU work plus store reads: runs on the
//! blocking pool.

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
/// Largest baseline decoded whole (RGBA bytes; 1280 x 6,553 px): a taller one is compared as it is
/// streamed from its PNG with the capture, row strip by row strip, so a 100,000-px page never has
/// more than a few hundred rows of either image decoded at once.
pub const MAX_WHOLE_DECODE_BYTES: u64 = 32 * 1024 * 1024;

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
        let Some(b) = baseline else {
            self.previews(&mut rec, &mut blobs);
            return Ok(Compared { record: rec, blobs });
        };
        rec.ignored = self.ignore_rects(site, &rec.key)?;

        let started = Instant::now();
        let has_score = self.has_kind(site, PluginKind::Score);
        let same_bytes = rec.png == Some(b.png) && !has_score;
        let masked = !site.capture.mask_selectors.is_empty() || self.has_kind(site, PluginKind::Mask);
        let approved = match same_bytes || masked {
            true => self.store.page(b.crawl, &rec.key)?,
            false => None,
        };
        // The baseline page's own rectangles: masked too (built in), and handed to mask plugins.
        let base_rects = match (masked, &approved) {
            (true, Some(p)) => p.mask_rects.clone(),
            _ => Vec::new(),
        };
        rec.baseline_mask_rects = configured_rects(&site.capture.mask_selectors, &base_rects);
        if same_bytes {
            // Same bytes: masks are deterministic, so nothing can differ; and the approved page's
            // thumbnail is this capture's (not decoded and scaled again). A record that has one
            // already (a re-score) keeps it.
            rec.distortion = Some(0.0);
            if rec.thumb.is_none() {
                rec.thumb = approved.filter(|p| p.png == rec.png).and_then(|p| p.thumb);
            }
        } else {
            match self.store.blob(&b.png)? {
                None => {
                    rec.error = Some(format!("baseline artifact {} is missing; page treated as new", b.png));
                    rec.baseline_crawl = None;
                    rec.baseline_png = None;
                    rec.baseline_html = None;
                    rec.baseline_mask_rects = Vec::new();
                }
                Some(base_png) => self.diff_step(site, &mut rec, &mut blobs, &base_png, &base_rects),
            }
        }
        self.settle(site, &mut rec, started);
        self.previews(&mut rec, &mut blobs);
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
        rec.baseline_mask_rects = configured_rects(&site.capture.mask_selectors, &base.mask_rects);
        if base.truncated && !rec.truncated {
            rec.truncated = true;
            rec.outcome = PageOutcome::Truncated;
            rec.change = PageChange::Failed;
            rec.error = Some(format!("base side {}", truncated_reason(base.page_height, base.height)));
        }
        rec.ignored = self.ignore_rects(site, &rec.key).unwrap_or_else(|e| {
            tracing::warn!(site = %site.name, page = %rec.key, error = %crate::errors::chain(&e),
                "stored ignore areas unreadable: only the configured ones apply");
            configured_ignore(site, &rec.key)
        });
        if rec.png == Some(base_hash) && !self.has_kind(site, PluginKind::Score) {
            rec.distortion = Some(0.0);
        } else {
            self.diff_step(site, &mut rec, &mut blobs, &base.png, &base.mask_rects);
        }
        self.settle(site, &mut rec, started);
        self.previews(&mut rec, &mut blobs);
        blobs.push(base.png);
        blobs.push(base_html);
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
                    rec.group = self.group_of(&rec.regions, base_png, new_png, &rec.key);
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

    /// The ignore areas of page `key`: the site's configured ones, then the stored ones.
    pub fn ignore_rects(&self, site: &SiteConfig, key: &str) -> Result<Vec<Rect>, StoreError> {
        let mut rects = configured_ignore(site, key);
        for a in self.store.ignore_areas(&site.name)?.into_iter().filter(|a| a.applies_to(key)) {
            if !rects.contains(&a.rect) {
                rects.push(a.rect);
            }
        }
        Ok(rects)
    }

    /// The change group of a compared page with `regions` (see [`diff::change_signature`]): the
    /// first 16 hex digits of the signature, reading both images row by row only down to the
    /// lowest region. `None` (logged) when an image cannot be read.
    fn group_of(&self, regions: &[Rect], base_png: &[u8], new_png: &[u8], key: &str) -> Option<String> {
        let sig = diff::PngRows::open(base_png, "baseline").and_then(|mut base| {
            let mut new = diff::PngRows::open(new_png, "capture")?;
            diff::change_signature(regions, &mut base, &mut new)
        });
        match sig {
            Ok(sig) => Some(Hash(sig).to_hex()[..GROUP_ID_LEN].to_string()),
            Err(e) => {
                tracing::warn!(page = %key, error = %crate::errors::chain(&e), "no change group");
                None
            }
        }
    }

    /// Make the page's previews ([`crate::preview`]): the thumbnail of its capture (`blobs[0]`;
    /// kept when the record has one)
    /// and, with a diff image, the crop around the first changed region; appended to `blobs`. A
    /// preview that cannot be made is logged and left out (the page keeps its full images).
    fn previews(&self, rec: &mut PageRecord, blobs: &mut Vec<Vec<u8>>) {
        let log = |what: &str, e: &crate::preview::PreviewError| {
            tracing::warn!(page = %rec.key, error = %crate::errors::chain(e), "no {what}");
        };
        if let Some(png) = blobs.first().filter(|_| rec.png.is_some() && rec.thumb.is_none()) {
            match crate::preview::thumbnail(png) {
                Ok(jpeg) => {
                    rec.thumb = Some(Hash::of(&jpeg));
                    blobs.push(jpeg);
                }
                Err(e) => log("thumbnail", &e),
            }
        }
        let diff_png = rec.diff.and_then(|h| blobs.iter().rev().find(|b| Hash::of(b) == h));
        if let (Some(png), Some(region)) = (diff_png, rec.regions.first()) {
            match crate::preview::change_crop(png, *region) {
                Ok(jpeg) => {
                    rec.change_preview = Some(Hash::of(&jpeg));
                    blobs.push(jpeg);
                }
                Err(e) => log("change preview", &e),
            }
        }
    }

    /// Record the diff time and decide `changed` / `unchanged` from the score.
    fn settle(&self, site: &SiteConfig, rec: &mut PageRecord, started: Instant) {
        rec.timing.diff_ms = started.elapsed().as_millis() as u64;
        if let Some(m) = &self.metrics {
            m.diff_observed(started.elapsed().as_secs_f64());
        }
        decide(rec, site.max_distortion);
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
            ignore: mask_area(&site.capture.mask_selectors, &rec.mask_rects, &rec.baseline_mask_rects)
                .into_iter()
                .chain(rec.ignored.iter().copied())
                .collect(),
            ..DiffOptions::default()
        };
        let host = match &self.plugins {
            Some(h) if !site.plugins.is_empty() => h,
            _ if decoded_bytes(base_png).map_err(Step::Diff)? > MAX_WHOLE_DECODE_BYTES => {
                let outcome = diff::compare_sources(
                    ImageSource::Png { bytes: base_png, name: "baseline" },
                    ImageSource::Png { bytes: new_png, name: "capture" },
                    &opts,
                    None,
                )
                .map_err(Step::Diff)?;
                return Ok((outcome, None));
            }
            _ => {
                let base = self.cache.get_or_decode(base_png, "baseline").map_err(Step::Diff)?;
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
        // Plugins get whole images (their ABI passes one RGBA buffer).
        let base = self.cache.get_or_decode(base_png, "baseline").map_err(Step::Diff)?;
        let new = Arc::new(diff::decode_png(new_png, "capture").map_err(Step::Diff)?);
        let ctx_new = PageContext {
            site: site.name.clone(),
            page_key: rec.key.clone(),
            url: rec.url.clone(),
            viewport: site.viewport.into(),
            selectors: rec.mask_rects.clone(),
            ignored: Vec::new(),
        };
        let ctx_base = PageContext { selectors: base_rects.to_vec(), ..ctx_new.clone() };
        let base = self.mask(host, site, base, &ctx_base, &mut opts.ignore).map_err(Step::Plugin)?;
        let new = self.mask(host, site, new, &ctx_new, &mut opts.ignore).map_err(Step::Plugin)?;
        let outcome =
            diff::compare_sources(ImageSource::Decoded(&base), ImageSource::Decoded(&new), &opts, None)
                .map_err(Step::Diff)?;
        // Score plugins get what the diff ignored (built-in and mask plugins' rectangles).
        let ctx_new = PageContext { ignored: opts.ignore.clone(), ..ctx_new };
        let mut verdict: Option<Verdict> = None;
        for name in site.plugins.iter().filter(|p| host.kind(p) == Some(PluginKind::Score)) {
            let out = host.score(name, &base, &new, &outcome, &ctx_new);
            self.count_call(name, out.is_ok());
            let out = out.map_err(Step::Plugin)?;
            for line in &out.logs {
                tracing::info!(plugin = %name, page = %ctx_new.page_key, "{line}");
            }
            if verdict.as_ref().is_none_or(|v| out.score > v.score) {
                verdict =
                    Some(Verdict { score: out.score, reason: out.reason.map(|r| format!("{name}: {r}")) });
            }
        }
        Ok((outcome, verdict))
    }
}

/// RGBA bytes of a PNG once decoded (from its header).
fn decoded_bytes(png: &[u8]) -> Result<u64, diff::DiffError> {
    let rows = diff::PngRows::open(png, "baseline")?;
    Ok(rows.width() as u64 * rows.height() as u64 * 4)
}

/// Hex digits of a change group id (64 bits of the change signature).
pub const GROUP_ID_LEN: usize = 16;

/// The configured `ignore_areas` of page `key` (its own and the site-wide `"*"` ones).
pub fn configured_ignore(site: &SiteConfig, key: &str) -> Vec<Rect> {
    site.ignore_areas
        .iter()
        .filter(|a| a.key == crate::store::IGNORE_EVERY_PAGE || a.key == key)
        .map(|a| a.rect)
        .collect()
}

/// The rectangles of `selectors` among measured ones (a capture's `mask_rects`), in the order of
/// `selectors`; rectangles of selectors no longer configured are left out.
fn configured_rects(selectors: &[String], measured: &[SelectorRects]) -> Vec<SelectorRects> {
    selectors
        .iter()
        .flat_map(|sel| measured.iter().filter(move |m| m.selector == *sel && !m.rects.is_empty()))
        .cloned()
        .collect()
}

/// Built-in masking: the ignore areas of a comparison from the site's `mask_selectors` as measured
/// on the capture and on the baseline. The union of both is ignored on both images (the diff's
/// coordinates are shared, top-left aligned), like any ignore area: not compared, not counted,
/// grey in the diff image. Empty and duplicate rectangles are dropped.
pub fn mask_area(selectors: &[String], capture: &[SelectorRects], baseline: &[SelectorRects]) -> Vec<Rect> {
    let mut area: Vec<Rect> = Vec::new();
    for set in [capture, baseline] {
        for s in set.iter().filter(|s| selectors.contains(&s.selector)) {
            for r in s.rects.iter().filter(|r| r.width > 0 && r.height > 0) {
                if !area.contains(r) {
                    area.push(*r);
                }
            }
        }
    }
    area
}

/// Decide `changed` / `unchanged` for a compared page: its score (the score plugins' verdict, else
/// the distortion, which then becomes the score) against the site's `max_distortion`. Failed pages
/// and pages with nothing measured (no baseline: `new`) keep their change.
fn decide(rec: &mut PageRecord, max_distortion: f64) {
    if rec.change == PageChange::Failed {
        return;
    }
    if let Some(d) = rec.distortion {
        let score = *rec.score.get_or_insert(d);
        rec.change = if score > max_distortion { PageChange::Changed } else { PageChange::Unchanged };
    }
}

/// Why a page cut at `max_height` fails: its bottom was never compared.
pub fn truncated_reason(page_height: u32, captured: u32) -> String {
    format!(
        "truncated: the page is {page_height} px tall, over the site's max_height: only its top {captured} px \
         were captured and compared"
    )
}

/// The record of a fresh capture, not compared yet (change `new`; `failed` when truncated) (change `new`), and its artifacts: the PNG first,
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
        outcome: if capture.truncated { PageOutcome::Truncated } else { PageOutcome::Ok },
        change: if capture.truncated { PageChange::Failed } else { PageChange::New },
        error: capture.truncated.then(|| truncated_reason(capture.page_height, capture.height)),
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
        referrer: page.referrer.clone(),
        ..PageRecord::new(page.key.clone(), page.url.to_string())
    };
    (rec, vec![capture.png, html_bytes])
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, PluginLimits};
    use crate::store::{Blob, CrawlKind};

    const SIDE: u32 = 10;

    fn site(max_distortion: f64, threshold: f64) -> SiteConfig {
        let text = "[[sites]]\nname = \"docs\"\nstart = \"http://127.0.0.1:1/\"\n";
        let mut site = Config::parse(text, Path::new("/tmp/x/sitediff.toml")).unwrap().sites.remove(0);
        site.max_distortion = max_distortion;
        site.threshold = threshold;
        site
    }

    /// A white square with the pixels in `dots` set to grey level `level`.
    fn png(dots: &[(u32, u32)], level: u8) -> Vec<u8> {
        let mut data = vec![255u8; (SIDE * SIDE * 4) as usize];
        for &(x, y) in dots {
            let i = ((y * SIDE + x) * 4) as usize;
            data[i..i + 3].fill(level);
        }
        diff::encode_png(&RgbaImage { width: SIDE, height: SIDE, data }).unwrap()
    }

    struct Rig {
        comparer: Comparer,
        _dir: tempfile::TempDir,
    }

    fn rig(plugins: Option<Arc<PluginHost>>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        Rig { comparer: Comparer::new(store, plugins, None), _dir: dir }
    }

    impl Rig {
        /// Store `png` as the approved capture of `/a` and return its baseline record.
        fn baseline(&self, png: &[u8]) -> BaselineRecord {
            self.baseline_masked(png, Vec::new())
        }

        /// [`Rig::baseline`] whose page record has these measured `mask_selectors` rectangles.
        fn baseline_masked(&self, png: &[u8], mask_rects: Vec<SelectorRects>) -> BaselineRecord {
            let store = &self.comparer.store;
            let c = store.begin_crawl("docs", CrawlKind::Site, "http://127.0.0.1:1/", None).unwrap();
            let rec = PageRecord {
                png: Some(Hash::of(png)),
                mask_rects,
                ..PageRecord::new("/a".into(), "/a".into())
            };
            store.put_page(c.id, &rec, &[Blob::new(png)]).unwrap();
            BaselineRecord {
                crawl: c.id,
                png: Hash::of(png),
                html: None,
                width: SIDE,
                height: SIDE,
                approved_at: 0,
            }
        }

        fn compare(&self, site: &SiteConfig, new: Vec<u8>, baseline: Option<BaselineRecord>) -> Compared {
            self.compare_masked(site, new, Vec::new(), baseline)
        }

        /// [`Rig::compare`] of a capture with these measured `mask_selectors` rectangles.
        fn compare_masked(
            &self,
            site: &SiteConfig,
            new: Vec<u8>,
            mask_rects: Vec<SelectorRects>,
            baseline: Option<BaselineRecord>,
        ) -> Compared {
            let rec = PageRecord {
                png: Some(Hash::of(&new)),
                width: SIDE,
                height: SIDE,
                mask_rects,
                ..PageRecord::new("/a".into(), "http://127.0.0.1:1/a".into())
            };
            self.comparer.compare_with_baseline(site, rec, vec![new], baseline).unwrap()
        }
    }

    fn sel(selector: &str, rects: &[(u32, u32, u32, u32)]) -> SelectorRects {
        SelectorRects {
            selector: selector.into(),
            rects: rects.iter().map(|&(x, y, width, height)| Rect { x, y, width, height }).collect(),
        }
    }

    fn masking(selectors: &[&str]) -> SiteConfig {
        let mut s = site(0.0, 0.1);
        s.capture.mask_selectors = selectors.iter().map(|s| s.to_string()).collect();
        s
    }

    #[test]
    fn mask_area_is_the_union_of_configured_rectangles() {
        let selectors = ["#clock".to_string(), ".ad".to_string()];
        let capture = [sel("#clock", &[(0, 0, 3, 3), (5, 5, 0, 2)]), sel(".gone", &[(9, 9, 1, 1)])];
        let baseline = [sel("#clock", &[(0, 0, 3, 3)]), sel(".ad", &[(4, 0, 2, 8)])];
        let area = mask_area(&selectors, &capture, &baseline);
        let want = [Rect { x: 0, y: 0, width: 3, height: 3 }, Rect { x: 4, y: 0, width: 2, height: 8 }];
        assert_eq!(area, want, "empty, duplicate and unconfigured rectangles are dropped");
        assert!(mask_area(&[], &capture, &baseline).is_empty(), "no mask_selectors, no masking");
        let kept = configured_rects(&selectors, &capture);
        assert_eq!(kept, [sel("#clock", &[(0, 0, 3, 3), (5, 5, 0, 2)])]);
    }

    #[test]
    fn mask_selectors_are_masked_on_both_images_without_a_plugin() {
        let r = rig(None);
        // The clock sat at the top left in the baseline, and moved to the bottom right.
        let b = r.baseline_masked(&png(&[(1, 1)], 0), vec![sel("#clock", &[(0, 0, 3, 3)])]);
        let moved = || vec![sel("#clock", &[(6, 6, 3, 3)])];
        let s = masking(&["#clock"]);
        let c = r.compare_masked(&s, png(&[(7, 7)], 0), moved(), Some(b.clone()));
        assert_eq!((c.record.change, c.record.diff_pixels), (PageChange::Unchanged, 0));
        assert_eq!(c.record.baseline_mask_rects, [sel("#clock", &[(0, 0, 3, 3)])]);

        // A change outside both rectangles counts, over the pixels left unmasked (100 - 2 x 9).
        let c = r.compare_masked(&s, png(&[(7, 7), (5, 0)], 0), moved(), Some(b.clone()));
        assert_eq!((c.record.change, c.record.diff_pixels), (PageChange::Changed, 1));
        assert_eq!(c.record.distortion, Some(1.0 / 82.0));
        assert_eq!(c.record.regions, [Rect { x: 5, y: 0, width: 1, height: 1 }]);

        // Rectangles of selectors the site does not mask (any more) are compared.
        let c = r.compare_masked(&masking(&[".ad"]), png(&[(7, 7)], 0), moved(), Some(b));
        assert_eq!((c.record.change, c.record.diff_pixels), (PageChange::Changed, 2));
        assert!(c.record.baseline_mask_rects.is_empty());
    }

    #[test]
    fn pair_comparisons_mask_both_captures_rectangles() {
        let r = rig(None);
        let capture = |dots: &[(u32, u32)], rects: Vec<SelectorRects>| Capture {
            png: png(dots, 0),
            width: SIDE,
            height: SIDE,
            html: String::new(),
            title: None,
            final_url: url::Url::parse("http://127.0.0.1:1/a").unwrap(),
            mask_rects: rects,
            truncated: false,
            page_height: 10,
            unstable_area: None,
            unstable_rect: None,
            blocked_navigations: Vec::new(),
            timing: Default::default(),
            inputs: None,
        };
        let head = capture(&[(8, 8)], vec![sel("#clock", &[(7, 7, 3, 3)])]);
        let base = capture(&[(0, 9)], vec![sel("#clock", &[(0, 8, 2, 2)])]);
        let rec = PageRecord {
            png: Some(Hash::of(&head.png)),
            mask_rects: head.mask_rects.clone(),
            width: SIDE,
            height: SIDE,
            ..PageRecord::new("/a".into(), "/a".into())
        };
        let c = r.comparer.compare_with_capture(&masking(&["#clock"]), rec, vec![head.png.clone()], base);
        assert_eq!((c.record.change, c.record.diff_pixels), (PageChange::Unchanged, 0));
        assert_eq!(c.record.baseline_mask_rects, [sel("#clock", &[(0, 8, 2, 2)])]);
    }

    /// A score plugin that always answers `score` with the reason "flat".
    fn score_plugin(dir: &Path, score: f64) -> Arc<PluginHost> {
        score_plugin_returning(dir, score, (16i64 << 32) | 16)
    }

    /// A score plugin named `flat` whose entry point returns `result` (an output pointer and length,
    /// or a negative failure code); its output buffer holds `score` and the reason "flat".
    fn score_plugin_returning(dir: &Path, score: f64, result: i64) -> Arc<PluginHost> {
        let bytes: String = score.to_le_bytes().iter().map(|b| format!("\\{b:02x}")).collect();
        let wat = format!(
            r#"(module
              (memory (export "memory") 1)
              (global $next (mut i32) (i32.const 1024))
              (data (i32.const 16) "{bytes}\04\00\00\00flat")
              (func (export "sitediff_abi_version") (result i32) i32.const 1)
              (func (export "sitediff_alloc") (param $n i32) (result i32)
                global.get $next
                global.get $next
                local.get $n
                i32.add
                global.set $next)
              (func (export "sitediff_score") (param i32 i32 i32 i32 i32 i32 i32 i32) (result i64)
                i64.const {result}))"#
        );
        let path = dir.join("flat.wat");
        std::fs::write(&path, wat).unwrap();
        Arc::new(PluginHost::load_file("flat", path, PluginLimits::default()).unwrap())
    }

    #[test]
    fn decide_compares_the_score_with_max_distortion() {
        let measured = |distortion: Option<f64>, score: Option<f64>, change: PageChange| PageRecord {
            distortion,
            score,
            change,
            ..PageRecord::new("/a".into(), "/a".into())
        };
        let mut r = measured(Some(0.2), None, PageChange::New);
        decide(&mut r, 0.1);
        assert_eq!((r.change, r.score), (PageChange::Changed, Some(0.2)), "the distortion becomes the score");
        let mut r = measured(Some(0.1), None, PageChange::New);
        decide(&mut r, 0.1);
        assert_eq!(r.change, PageChange::Unchanged, "at the limit is not over it");
        let mut r = measured(Some(0.0), None, PageChange::New);
        decide(&mut r, 0.0);
        assert_eq!(r.change, PageChange::Unchanged);
        // A score plugin's verdict overrides the distortion, both ways.
        let mut r = measured(Some(0.5), Some(0.01), PageChange::New);
        decide(&mut r, 0.1);
        assert_eq!((r.change, r.score), (PageChange::Unchanged, Some(0.01)));
        let mut r = measured(Some(0.0), Some(0.9), PageChange::New);
        decide(&mut r, 0.1);
        assert_eq!(r.change, PageChange::Changed);
        // Nothing measured (no baseline) stays new; a failed page stays failed.
        let mut r = measured(None, None, PageChange::New);
        decide(&mut r, 0.1);
        assert_eq!((r.change, r.score), (PageChange::New, None));
        let mut r = measured(Some(0.9), None, PageChange::Failed);
        decide(&mut r, 0.1);
        assert_eq!((r.change, r.score), (PageChange::Failed, None));
    }

    #[test]
    fn ignore_areas_from_config_and_store_are_ignored_on_both_images() {
        let r = rig(None);
        let b = r.baseline(&png(&[], 0));
        let mut s = site(0.0, 0.1);
        let new = || png(&[(1, 1), (8, 8)], 0);
        let c = r.compare(&s, new(), Some(b.clone()));
        assert_eq!((c.record.diff_pixels, c.record.change), (2, PageChange::Changed));
        let top_left = Rect { x: 0, y: 0, width: 3, height: 3 };
        s.ignore_areas = vec![crate::config::ConfigIgnoreArea { key: "*".into(), rect: top_left }];
        let c = r.compare(&s, new(), Some(b.clone()));
        assert_eq!((c.record.diff_pixels, c.record.ignored.clone()), (1, vec![top_left]));
        let corner = Rect { x: 7, y: 7, width: 2, height: 2 };
        r.comparer.store.add_ignore_area("docs", "/other", corner, "t").unwrap();
        let c = r.compare(&s, new(), Some(b.clone()));
        assert_eq!(c.record.diff_pixels, 1, "another page's area does not apply");
        r.comparer.store.add_ignore_area("docs", "/a", corner, "t").unwrap();
        let c = r.compare(&s, new(), Some(b));
        assert_eq!((c.record.diff_pixels, c.record.change), (0, PageChange::Unchanged));
        assert_eq!(c.record.ignored, [top_left, corner]);
        assert_eq!(c.record.distortion, Some(0.0));
    }

    #[test]
    fn the_same_change_is_one_group_another_change_another() {
        let r = rig(None);
        let b = r.baseline(&png(&[], 0));
        let s = site(0.0, 0.1);
        let group =
            |dots: &[(u32, u32)], level: u8| r.compare(&s, png(dots, level), Some(b.clone())).record.group;
        let header = group(&[(1, 1), (2, 1)], 0);
        assert!(header.is_some());
        assert_eq!(header, group(&[(1, 1), (2, 1)], 0));
        assert_ne!(header, group(&[(1, 1), (2, 1)], 90), "other pixels in the same place");
        assert_ne!(header, group(&[(1, 6), (2, 6)], 0), "the same pixels elsewhere");
        assert_eq!(group(&[], 0), None, "no change, no group");
    }

    #[test]
    fn a_page_without_baseline_is_new() {
        let r = rig(None);
        let c = r.compare(&site(0.0, 0.1), png(&[], 0), None);
        assert_eq!(c.record.change, PageChange::New);
        assert_eq!((c.record.distortion, c.record.baseline_png, c.record.baseline_crawl), (None, None, None));
        assert_eq!(c.blobs.len(), 2, "the capture and its thumbnail, no diff image");
        assert_eq!(c.record.thumb, Some(Hash::of(&c.blobs[1])));
        assert_eq!(c.record.change_preview, None);
    }

    #[test]
    fn identical_bytes_are_unchanged_without_a_diff() {
        let r = rig(None);
        let base = png(&[(1, 1)], 0);
        let b = r.baseline(&base);
        let c = r.compare(&site(0.0, 0.1), base.clone(), Some(b.clone()));
        assert_eq!(c.record.change, PageChange::Unchanged);
        assert_eq!((c.record.distortion, c.record.score), (Some(0.0), Some(0.0)));
        assert_eq!(c.record.baseline_crawl, Some(b.crawl));
        assert_eq!((c.record.diff, c.blobs.len(), c.record.group), (None, 2, None), "capture and thumbnail");
    }

    #[test]
    fn identical_bytes_keep_the_approved_thumbnail_without_making_one() {
        let r = rig(None);
        let base = png(&[(1, 1)], 0);
        let b = r.baseline(&base);
        let store = &r.comparer.store;
        let thumb = crate::preview::thumbnail(&base).unwrap();
        let mut approved = store.page(b.crawl, "/a").unwrap().unwrap();
        approved.thumb = Some(Hash::of(&thumb));
        store.put_page(b.crawl, &approved, &[Blob::new(&thumb)]).unwrap();
        let c = r.compare(&site(0.0, 0.1), base.clone(), Some(b.clone()));
        assert_eq!(c.record.change, PageChange::Unchanged);
        assert_eq!(c.record.thumb, Some(Hash::of(&thumb)), "the approved page's thumbnail");
        assert_eq!(c.blobs.len(), 1, "only the capture: no thumbnail was made");
        let other = r.compare(&site(0.0, 0.1), png(&[(2, 2)], 0), Some(b));
        assert_ne!(other.record.thumb, Some(Hash::of(&thumb)), "other bytes get their own thumbnail");
        let made = other.record.thumb.expect("a thumbnail of the new capture");
        assert!(other.blobs.iter().any(|b| Hash::of(b) == made), "stored with the page");
    }

    #[test]
    fn a_changed_pixel_is_changed_over_max_distortion_and_unchanged_under_it() {
        let r = rig(None);
        let b = r.baseline(&png(&[], 0));
        let new = png(&[(3, 4)], 0);
        let c = r.compare(&site(0.0, 0.1), new.clone(), Some(b.clone()));
        assert_eq!(c.record.change, PageChange::Changed);
        assert_eq!(c.record.diff_pixels, 1);
        assert_eq!(c.record.distortion, Some(1.0 / f64::from(SIDE * SIDE)));
        assert_eq!(c.record.regions.len(), 1);
        let diff_png = c.blobs.get(1).expect("the diff image is stored with the page");
        assert_eq!(c.record.diff, Some(Hash::of(diff_png)));
        let previews: Vec<Hash> = c.blobs[2..].iter().map(|b| Hash::of(b)).collect();
        assert_eq!(previews, [c.record.thumb.unwrap(), c.record.change_preview.unwrap()]);
        assert!(c.record.group.as_ref().is_some_and(|g| g.len() == GROUP_ID_LEN));

        let c = r.compare(&site(0.05, 0.1), new, Some(b));
        assert_eq!(c.record.change, PageChange::Unchanged, "1% is under a 5% max_distortion");
        assert_eq!(c.record.diff_pixels, 1, "the difference is still measured");
    }

    #[test]
    fn the_threshold_decides_which_pixel_differences_count() {
        let r = rig(None);
        let b = r.baseline(&png(&[], 0));
        // A near-white pixel: under pixelmatch's 0.1 colour distance, over a zero threshold.
        let faint = png(&[(5, 5)], 250);
        let c = r.compare(&site(0.0, 0.1), faint.clone(), Some(b.clone()));
        assert_eq!((c.record.change, c.record.diff_pixels), (PageChange::Unchanged, 0));
        let c = r.compare(&site(0.0, 0.0), faint, Some(b));
        assert_eq!((c.record.change, c.record.diff_pixels), (PageChange::Changed, 1));
    }

    #[test]
    fn a_missing_baseline_artifact_makes_the_page_new() {
        let r = rig(None);
        let mut b = r.baseline(&png(&[], 0));
        b.png = Hash::of(b"never stored");
        let c = r.compare(&site(0.0, 0.1), png(&[(1, 1)], 0), Some(b));
        assert_eq!(c.record.change, PageChange::New);
        assert_eq!((c.record.baseline_crawl, c.record.baseline_png), (None, None));
        assert!(c.record.error.as_deref().is_some_and(|e| e.contains("is missing")), "{:?}", c.record.error);
    }

    #[test]
    fn a_score_plugin_overrides_the_distortion() {
        let dir = tempfile::tempdir().unwrap();
        // Identical captures, but the plugin scores 0.9: changed.
        let r = rig(Some(score_plugin(dir.path(), 0.9)));
        let mut s = site(0.1, 0.1);
        s.plugins = vec!["flat".into()];
        let same = png(&[(2, 2)], 0);
        let b = r.baseline(&same);
        let c = r.compare(&s, same, Some(b));
        assert_eq!(c.record.distortion, Some(0.0));
        assert_eq!((c.record.change, c.record.score), (PageChange::Changed, Some(0.9)));
        assert_eq!(c.record.score_reason.as_deref(), Some("flat: flat"));

        // A real difference, but the plugin scores 0: unchanged.
        let r = rig(Some(score_plugin(dir.path(), 0.0)));
        let b = r.baseline(&png(&[], 0));
        let c = r.compare(&s, png(&[(1, 1), (2, 2), (3, 3)], 0), Some(b));
        assert_eq!(c.record.diff_pixels, 3);
        assert_eq!((c.record.change, c.record.score), (PageChange::Unchanged, Some(0.0)));
    }

    #[test]
    fn a_failing_plugin_or_an_undecodable_capture_fails_the_page_not_the_comparison() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = site(0.1, 0.1);
        s.plugins = vec!["flat".into()];
        let r = rig(Some(score_plugin_returning(dir.path(), 0.5, -3)));
        let b = r.baseline(&png(&[], 0));
        let c = r.compare(&s, png(&[(1, 1)], 0), Some(b.clone()));
        assert_eq!((c.record.outcome, c.record.change), (PageOutcome::PluginError, PageChange::Failed));
        let error = c.record.error.unwrap_or_default();
        assert!(error.contains("plugin flat: reported failure (returned -3)"), "{error}");
        assert_eq!(c.record.score, None, "a failed page has no score");

        let c = r.compare(&s, b"not a png".to_vec(), Some(b));
        assert_eq!((c.record.outcome, c.record.change), (PageOutcome::CaptureError, PageChange::Failed));
        assert!(c.record.error.is_some());
    }
}
