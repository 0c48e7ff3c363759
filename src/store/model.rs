//! Records kept in the store: crawls (with their structural diff), page results, baselines,
//! artifact hashes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::diff::Rect;

/// A content hash (blake3) naming an artifact.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Parse 64 lower- or upper-case hex digits; anything else is `None`.
    pub fn from_hex(s: &str) -> Option<Hash> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(hex, 16).ok()?;
        }
        Some(Hash(out))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad artifact hash"))
    }
}

/// Where a crawl is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrawlStatus {
    Running,
    Reviewing,
    Approved,
    Rejected,
    Interrupted,
    Failed,
    /// Finished with nothing for a human to review (schema 2).
    Passed,
}

impl CrawlStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CrawlStatus::Running => "running",
            CrawlStatus::Reviewing => "reviewing",
            CrawlStatus::Approved => "approved",
            CrawlStatus::Rejected => "rejected",
            CrawlStatus::Interrupted => "interrupted",
            CrawlStatus::Failed => "failed",
            CrawlStatus::Passed => "passed",
        }
    }

    /// Every status, for metrics that pre-register their label values.
    pub const ALL: [CrawlStatus; 7] = [
        CrawlStatus::Running,
        CrawlStatus::Reviewing,
        CrawlStatus::Approved,
        CrawlStatus::Rejected,
        CrawlStatus::Interrupted,
        CrawlStatus::Failed,
        CrawlStatus::Passed,
    ];
}

impl fmt::Display for CrawlStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a crawl's pages were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CrawlKind {
    /// Crawled and captured, compared with the site's baselines.
    #[default]
    Site,
    /// Two live prefixes compared page by page.
    Pair,
    /// Screenshots supplied by the user.
    Upload,
}

/// The per-page capture outcome (also the `outcome` label of `sitediff_pages_captured_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageOutcome {
    Ok,
    HttpError,
    CaptureError,
    PluginError,
    /// The page was taller than its site's `max_height`: only its top was captured, so it fails
    /// (its bottom was never compared).
    Truncated,
}

impl PageOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PageOutcome::Ok => "ok",
            PageOutcome::HttpError => "http_error",
            PageOutcome::CaptureError => "capture_error",
            PageOutcome::PluginError => "plugin_error",
            PageOutcome::Truncated => "truncated",
        }
    }

    pub const ALL: [PageOutcome; 5] = [
        PageOutcome::Ok,
        PageOutcome::HttpError,
        PageOutcome::CaptureError,
        PageOutcome::PluginError,
        PageOutcome::Truncated,
    ];
}

/// How a page compares with its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageChange {
    /// No baseline for this key yet.
    New,
    Unchanged,
    /// Distortion (or score) above the site's `max_distortion`.
    Changed,
    /// Not compared: the capture or a plugin failed.
    Failed,
    /// Pair crawls: the page exists only on the compared (head) side.
    Added,
    /// Pair crawls: the page exists only on the base side.
    Removed,
    /// Not compared, failing the same way as in the approved crawl (schema 2).
    StillFailing,
}

impl PageChange {
    pub fn as_str(self) -> &'static str {
        match self {
            PageChange::New => "new",
            PageChange::Unchanged => "unchanged",
            PageChange::Changed => "changed",
            PageChange::Failed => "failed",
            PageChange::Added => "added",
            PageChange::Removed => "removed",
            PageChange::StillFailing => "still_failing",
        }
    }

    /// Whether a reviewer has to look at a page with this change.
    pub fn needs_review(self) -> bool {
        !matches!(self, PageChange::Unchanged | PageChange::StillFailing)
    }
}

/// Page counts of a crawl.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrawlCounts {
    pub pages: u32,
    pub changed: u32,
    pub unchanged: u32,
    pub new: u32,
    pub failed: u32,
    /// Pair crawls: pages only on the head side.
    #[serde(default)]
    pub added: u32,
    /// Pair crawls: pages only on the base side.
    #[serde(default)]
    pub removed: u32,
    /// Pages failing the same way as in the approved crawl (schema 2).
    #[serde(default)]
    pub still_failing: u32,
    /// Links skipped because their content type was not HTML.
    pub skipped_non_html: u32,
    /// Links not followed because the `max_pages` bound was reached.
    pub skipped_max_pages: u32,
    /// Links not followed because their path had `max_query_variants` query strings already.
    #[serde(default)]
    pub skipped_query_variants: u32,
    /// Redirects that left the prefix (not followed).
    #[serde(default)]
    pub skipped_off_prefix_redirect: u32,
    /// Pages whose approved capture was reused without rendering (counted in `unchanged` too;
    /// schema 3).
    #[serde(default)]
    pub reused: u32,
}

/// Page keys listed per kind of change (the counts are always exact).
pub const MAX_LISTED_KEYS: usize = 200;

/// The structural change of one page key (the `change` label of `sitediff_site_pages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuralChange {
    /// The page is new since the approved crawl (pair: only on the head side).
    Added,
    /// The page was in the approved crawl and is gone (pair: only on the base side).
    Removed,
    /// The page was reached through a redirect (its final URL differs from the requested one).
    Redirected,
    /// The page answers 4xx/5xx (or not at all).
    Error,
    /// Present before and now, answering normally.
    Unchanged,
}

impl StructuralChange {
    pub const ALL: [StructuralChange; 5] = [
        StructuralChange::Added,
        StructuralChange::Removed,
        StructuralChange::Redirected,
        StructuralChange::Error,
        StructuralChange::Unchanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StructuralChange::Added => "added",
            StructuralChange::Removed => "removed",
            StructuralChange::Redirected => "redirected",
            StructuralChange::Error => "error",
            StructuralChange::Unchanged => "unchanged",
        }
    }
}

/// A redirect seen during the crawl: the requested page key and where it ended up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    pub from: String,
    pub to: String,
}

/// The structural diff of one crawl.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StructuralDiff {
    /// The approved crawl compared with; `None` when there was none (every page counts as added)
    /// or for a pair crawl (compared with the base side).
    pub against: Option<u64>,
    pub added: u32,
    pub removed: u32,
    pub redirected: u32,
    pub error: u32,
    pub unchanged: u32,
    /// Page keys per change, each list cut at [`MAX_LISTED_KEYS`].
    pub added_keys: Vec<String>,
    pub removed_keys: Vec<String>,
    pub redirects: Vec<Redirect>,
    pub error_keys: Vec<String>,
}

impl StructuralDiff {
    /// The count of one kind of change.
    pub fn count(&self, change: StructuralChange) -> u32 {
        match change {
            StructuralChange::Added => self.added,
            StructuralChange::Removed => self.removed,
            StructuralChange::Redirected => self.redirected,
            StructuralChange::Error => self.error,
            StructuralChange::Unchanged => self.unchanged,
        }
    }

    /// Count one page under `change` and list its key (`to`: where a redirect led).
    pub(crate) fn record(&mut self, change: StructuralChange, key: &str, to: Option<&str>) {
        let listed = |list_len: usize| list_len < MAX_LISTED_KEYS;
        match change {
            StructuralChange::Added => {
                self.added += 1;
                if listed(self.added_keys.len()) {
                    self.added_keys.push(key.to_string());
                }
            }
            StructuralChange::Removed => {
                self.removed += 1;
                if listed(self.removed_keys.len()) {
                    self.removed_keys.push(key.to_string());
                }
            }
            StructuralChange::Redirected => {
                self.redirected += 1;
                if listed(self.redirects.len()) {
                    self.redirects
                        .push(Redirect { from: key.to_string(), to: to.unwrap_or_default().to_string() });
                }
            }
            StructuralChange::Error => {
                self.error += 1;
                if listed(self.error_keys.len()) {
                    self.error_keys.push(key.to_string());
                }
            }
            StructuralChange::Unchanged => self.unchanged += 1,
        }
    }

    /// Whether anything but unchanged pages was found.
    pub fn has_changes(&self) -> bool {
        self.added + self.removed + self.redirected + self.error > 0
    }
}

/// One crawl (sweep) of a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrawlRecord {
    pub id: u64,
    pub site: String,
    #[serde(default)]
    pub kind: CrawlKind,
    pub status: CrawlStatus,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub reviewed_at: Option<i64>,
    /// The prefix that was crawled.
    pub prefix: String,
    /// Pair sweeps: the prefix compared against.
    #[serde(default)]
    pub compare_to: Option<String>,
    pub counts: CrawlCounts,
    pub max_distortion: f64,
    /// Why the crawl failed or was interrupted.
    pub error: Option<String>,
    /// Pages added, removed, redirected or failing compared with the approved crawl.
    #[serde(default)]
    pub structure: Option<StructuralDiff>,
    /// What the crawl noticed about its own setup, for people (e.g. "only the start page was
    /// crawled: its links lie outside the prefix ...").
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Approved captures could be reused in this crawl (`incremental` on and no full sweep forced;
    /// schema 3).
    #[serde(default)]
    pub incremental: bool,
}

impl CrawlRecord {
    /// Count pages by change and take the largest distortion (page counts of a finished crawl).
    pub fn tally(&mut self, pages: &[PageRecord]) {
        self.counts.pages = pages.len() as u32;
        for p in pages {
            match p.change {
                PageChange::Changed => self.counts.changed += 1,
                PageChange::Unchanged => self.counts.unchanged += 1,
                PageChange::New => self.counts.new += 1,
                PageChange::Failed => self.counts.failed += 1,
                PageChange::Added => self.counts.added += 1,
                PageChange::Removed => self.counts.removed += 1,
                PageChange::StillFailing => self.counts.still_failing += 1,
            }
            if p.reused_from.is_some() {
                self.counts.reused += 1;
            }
            if let Some(d) = p.distortion {
                self.max_distortion = self.max_distortion.max(d);
            }
        }
    }
}

/// Per-step timings of one page, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PageTiming {
    pub fetch_ms: u64,
    pub navigate_ms: u64,
    pub settle_ms: u64,
    pub screenshot_ms: u64,
    pub diff_ms: u64,
}

/// One page's result in a crawl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageRecord {
    pub key: String,
    pub url: String,
    pub title: Option<String>,
    pub outcome: PageOutcome,
    pub change: PageChange,
    pub http_status: Option<u16>,
    pub png: Option<Hash>,
    pub html: Option<Hash>,
    pub diff: Option<Hash>,
    pub width: u32,
    pub height: u32,
    pub truncated: bool,
    /// The crawl whose capture served as the baseline.
    pub baseline_crawl: Option<u64>,
    pub baseline_png: Option<Hash>,
    pub diff_pixels: u64,
    pub distortion: Option<f64>,
    /// The score that decided `change` (distortion unless a score plugin gave another).
    pub score: Option<f64>,
    pub score_reason: Option<String>,
    pub size_changed: bool,
    pub regions: Vec<Rect>,
    pub error: Option<String>,
    pub timing: PageTiming,
    /// This page alone was approved as the new baseline.
    #[serde(default)]
    pub approved: bool,
    /// Rectangles of the site's `mask_selectors` measured at capture (plugins get them).
    #[serde(default)]
    pub mask_rects: Vec<crate::capture::SelectorRects>,
    /// Rectangles of the site's `mask_selectors` on the capture this page was compared with (the
    /// baseline's page, a pair crawl's base page): with `mask_rects`, what the diff ignored on both
    /// images.
    #[serde(default)]
    pub baseline_mask_rects: Vec<crate::capture::SelectorRects>,
    /// The page never gave two identical shots in a row: the pixel count and bounding box of
    /// the area that kept changing.
    #[serde(default)]
    pub unstable_area: Option<u64>,
    #[serde(default)]
    pub unstable_rect: Option<Rect>,
    /// Off-prefix navigations the page attempted during capture (blocked).
    #[serde(default)]
    pub blocked_navigations: Vec<String>,
    /// The page key of the URL that was requested when the fetch was redirected (inside the prefix).
    #[serde(default)]
    pub redirected_from: Option<String>,
    /// The HTML this page was compared with (pair crawls: the base page's), for the text change.
    #[serde(default)]
    pub baseline_html: Option<Hash>,
    /// The page key of the page whose links led discovery here first (schema 2).
    #[serde(default)]
    pub referrer: Option<String>,
    /// What the capture was made from (schema 3; `None`: not fingerprinted, never reused).
    #[serde(default)]
    pub fingerprint: Option<Fingerprint>,
    /// The capture is the approved one of this crawl, reused without rendering (schema 3).
    #[serde(default)]
    pub reused_from: Option<u64>,
    /// JPEG thumbnail of the top of the capture (schema 3).
    #[serde(default)]
    pub thumb: Option<Hash>,
    /// JPEG crop of the diff image around the first changed region (schema 3).
    #[serde(default)]
    pub change_preview: Option<Hash>,
    /// The change group of a page with differences: pages with the same group show the same
    /// change (see `crate::group`) (schema 3).
    #[serde(default)]
    pub group: Option<String>,
    /// Ignore areas (config and stored) applied to this comparison, image pixels (schema 3).
    #[serde(default)]
    pub ignored: Vec<Rect>,
}

impl PageRecord {
    /// Every artifact the record names (for retention's mark phase).
    pub fn artifacts(&self) -> impl Iterator<Item = Hash> {
        [
            self.png,
            self.html,
            self.diff,
            self.baseline_png,
            self.baseline_html,
            self.thumb,
            self.change_preview,
        ]
        .into_iter()
        .flatten()
    }
}

/// What one capture was made from (issue 19): a later crawl reuses the capture only when every
/// input is unchanged and `dynamic` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// blake3 of the page's final URL, HTTP status and document bytes as discovery fetched them.
    pub document: Hash,
    /// Every response the page used (subresources, redirect hops, frames, script-fetched data).
    pub resources: Vec<ResourceFingerprint>,
    /// Why the page could change by itself (see `capture::fingerprint`); empty: it cannot.
    pub dynamic: Vec<String>,
    /// The browser build (DevTools `Browser.getVersion`).
    pub browser: String,
    /// blake3 of the system font list; `None`: unknown (never reused).
    pub fonts: Option<String>,
    /// blake3 of every capture option that affects pixels (viewport, CSS/JS, selectors, cookies,
    /// headers, user agent, blocked URLs, timeouts, height cap, plugins and their modules, the
    /// sitediff version).
    pub options: Hash,
}

/// One response a capture used, as sitediff itself fetched it (no redirects followed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceFingerprint {
    pub url: String,
    /// `None`: no answer.
    pub status: Option<u16>,
    /// The redirect's `Location`.
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
    /// blake3 of the body (`None` when validators decided, or no answer).
    #[serde(default)]
    pub body: Option<Hash>,
}

impl PageRecord {
    /// A record for a page with nothing measured yet: outcome ok, change new, no artifacts.
    pub fn new(key: String, url: String) -> PageRecord {
        PageRecord {
            key,
            url,
            title: None,
            outcome: PageOutcome::Ok,
            change: PageChange::New,
            http_status: None,
            png: None,
            html: None,
            diff: None,
            width: 0,
            height: 0,
            truncated: false,
            baseline_crawl: None,
            baseline_png: None,
            diff_pixels: 0,
            distortion: None,
            score: None,
            score_reason: None,
            size_changed: false,
            regions: Vec::new(),
            error: None,
            timing: PageTiming::default(),
            approved: false,
            mask_rects: Vec::new(),
            baseline_mask_rects: Vec::new(),
            redirected_from: None,
            baseline_html: None,
            unstable_area: None,
            unstable_rect: None,
            blocked_navigations: Vec::new(),
            referrer: None,
            fingerprint: None,
            reused_from: None,
            thumb: None,
            change_preview: None,
            group: None,
            ignored: Vec::new(),
        }
    }

    /// A record for a page that produced no capture.
    pub fn failed(key: String, url: String, outcome: PageOutcome, error: String) -> PageRecord {
        PageRecord { outcome, change: PageChange::Failed, error: Some(error), ..PageRecord::new(key, url) }
    }
}

/// The approved capture of one page key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRecord {
    pub crawl: u64,
    pub png: Hash,
    pub html: Option<Hash>,
    pub width: u32,
    pub height: u32,
    pub approved_at: i64,
}

/// Which pages an ignore area applies to: every page of its site (`"*"`), or one page key.
pub const IGNORE_EVERY_PAGE: &str = "*";

/// A rectangle excluded from the comparison of a site's pages (on baseline and capture alike),
/// drawn by a reviewer and stored (schema 3); the config's `ignore_areas` have the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IgnoreArea {
    pub id: u64,
    pub site: String,
    /// A page key, or [`IGNORE_EVERY_PAGE`].
    pub key: String,
    pub rect: Rect,
    /// Who saved it (the API's `by`, or the UI's "reviewer").
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl IgnoreArea {
    /// Whether the area applies to page `key`.
    pub fn applies_to(&self, key: &str) -> bool {
        self.key == IGNORE_EVERY_PAGE || self.key == key
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_hex_round_trip() {
        let h = Hash::of(b"hello");
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex("../../etc/passwd"), None);
        assert_eq!(Hash::from_hex(&"g".repeat(64)), None);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
    }
}
