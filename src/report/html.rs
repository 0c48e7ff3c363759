//! The HTML report of one crawl: a self-contained directory (`index.html`, small thumbnails, and
//! the baseline/capture/diff images of changed pages) that works from `file://` with no server and
//! no network, for CI artifacts. Every crawled string is escaped (maud); nothing is fetched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use maud::{html, Markup, DOCTYPE};

use super::{junit::page_link, CrawlReport};
use crate::store::{Hash, PageChange, PageRecord};

/// Thumbnail width in pixels; its height is cut at [`THUMB_MAX_HEIGHT`].
const THUMB_WIDTH: u32 = 200;
const THUMB_MAX_HEIGHT: u32 = 300;

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HtmlReportError {
    #[error("cannot write the HTML report file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct HtmlSummary {
    pub index: PathBuf,
    pub images: usize,
    pub thumbnails: usize,
}

/// Pages that get images: everything a reviewer looks at.
fn shown(p: &PageRecord) -> bool {
    matches!(
        p.change,
        PageChange::Changed | PageChange::Added | PageChange::Removed | PageChange::Failed | PageChange::New
    )
}

/// The artifacts the report needs (captures of shown pages; baselines and diffs of changed ones).
pub fn needed_blobs(pages: &[PageRecord]) -> BTreeSet<Hash> {
    let mut out = BTreeSet::new();
    for p in pages.iter().filter(|p| shown(p)) {
        out.extend(p.png);
        if p.change == PageChange::Changed {
            out.extend(p.baseline_png);
            out.extend(p.diff);
        }
    }
    out
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), HtmlReportError> {
    std::fs::write(path, bytes).map_err(|source| HtmlReportError::Write { path: path.to_path_buf(), source })
}

/// A PNG thumbnail `THUMB_WIDTH` wide (the top of tall pages), or `None` if the image is unreadable.
fn thumbnail(png: &[u8]) -> Option<Vec<u8>> {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png).ok()?;
    let (w, h) = (img.width().max(1), img.height().max(1));
    let th = ((u64::from(h) * u64::from(THUMB_WIDTH) / u64::from(w)) as u32).clamp(1, THUMB_MAX_HEIGHT);
    let src_h = ((u64::from(th) * u64::from(w) / u64::from(THUMB_WIDTH)) as u32).clamp(1, h);
    let top = img.crop_imm(0, 0, w, src_h);
    let small = top.resize_exact(THUMB_WIDTH.min(w), th, image::imageops::FilterType::Triangle);
    let mut out = std::io::Cursor::new(Vec::new());
    small.write_to(&mut out, image::ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

/// Write the report of `report` (with its page records `pages`) into `dir` (created); `blob`
/// gives an artifact's bytes (from the store or the daemon); `ui_base` is the review UI's address.
pub fn write_dir(
    dir: &Path,
    report: &CrawlReport,
    pages: &[PageRecord],
    blob: &dyn Fn(&Hash) -> Option<Vec<u8>>,
    ui_base: &str,
) -> Result<HtmlSummary, HtmlReportError> {
    let img_dir = dir.join("img");
    std::fs::create_dir_all(&img_dir)
        .map_err(|source| HtmlReportError::Write { path: img_dir.clone(), source })?;
    let mut summary = HtmlSummary::default();
    let mut full = std::collections::HashMap::new();
    let mut thumbs = std::collections::HashMap::new();
    for p in pages.iter().filter(|p| shown(p)) {
        if let Some(h) = p.png {
            if let std::collections::hash_map::Entry::Vacant(e) = thumbs.entry(h) {
                if let Some(t) = blob(&h).and_then(|b| thumbnail(&b)) {
                    let name = format!("img/thumb-{}.png", h.to_hex());
                    write(&dir.join(&name), &t)?;
                    summary.thumbnails += 1;
                    e.insert(name);
                }
            }
        }
        if p.change == PageChange::Changed {
            for h in [p.baseline_png, p.png, p.diff].into_iter().flatten() {
                if let std::collections::hash_map::Entry::Vacant(e) = full.entry(h) {
                    if let Some(b) = blob(&h) {
                        let name = format!("img/{}.png", h.to_hex());
                        write(&dir.join(&name), &b)?;
                        summary.images += 1;
                        e.insert(name);
                    }
                }
            }
        }
    }
    let by_key: std::collections::HashMap<&str, &PageRecord> =
        pages.iter().map(|p| (p.key.as_str(), p)).collect();
    let img =
        |h: Option<Hash>, map: &std::collections::HashMap<Hash, String>| h.and_then(|h| map.get(&h).cloned());
    let title = format!("sitediff: {} crawl {}", report.site, report.crawl);
    let doc: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p.summary {
                    "Status " b { (report.status) } ": " (report.pages) " pages, "
                    (report.changed) " changed, " (report.new) " new, " (report.failed) " failed, "
                    (report.unchanged) " unchanged"
                    @if report.added + report.removed > 0 { ", " (report.added) " added, " (report.removed) " removed" }
                    "; max distortion " (format!("{:.6}", report.max_distortion)) "."
                }
                @if let Some(base) = &report.compare_to { p { "Pair Diff against " code { (base) } } }
                p { "Review: " code { (format!("{}/crawls/{}", ui_base.trim_end_matches('/'), report.crawl)) } }
                @for w in &report.warnings { p.warning { "warning: " (w) } }
                table {
                    thead { tr { th { "change" } th { "page" } th { "distortion" } th { "images" } } }
                    tbody {
                        @for r in &report.page_results {
                            @let rec = by_key.get(r.key.as_str());
                            tr class=(r.change) {
                                td { (r.change) }
                                td {
                                    b { (r.key) } br;
                                    code { (r.url) } br;
                                    code.link { (page_link(ui_base, report.crawl, &r.key)) }
                                    @if let Some(e) = &r.error { br; span.error { (e) } }
                                }
                                td { @if let Some(d) = r.distortion { (format!("{d:.6}")) } }
                                td {
                                    @if let Some(rec) = rec {
                                        @if rec.change == PageChange::Changed {
                                            @for (label, h) in [("baseline", rec.baseline_png), ("capture", rec.png), ("diff", rec.diff)] {
                                                @if let Some(src) = img(h, &full) {
                                                    figure { a href=(src) { img src=(src) alt=(label) width="200"; } figcaption { (label) } }
                                                }
                                            }
                                        } @else if let Some(src) = img(rec.png, &thumbs) {
                                            img src=(src) alt="capture";
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let index = dir.join("index.html");
    write(&index, doc.into_string().as_bytes())?;
    summary.index = index;
    Ok(summary)
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}\
tr.changed td:first-child,tr.removed td:first-child,tr.added td:first-child{color:#b00;font-weight:bold}\
tr.failed td:first-child{color:#a50}figure{display:inline-block;margin:0 6px 0 0}\
figure img{max-width:200px;max-height:300px;object-fit:cover;object-position:top}\
.error{color:#a50}.warning{color:#a50}code{font-size:.85em}";
