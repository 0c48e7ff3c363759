//! The page view: images with regions, masks and ignore areas, the ignore-area editor.

use maud::{html, Markup};

use super::super::data::{AreaSource, ListedArea, MaskedRect, PageDetail, PageFilter};
use super::super::http::encode;
use super::super::textdiff::LineTag;
use crate::store::{CrawlKind, CrawlStatus, PageChange, PageRecord};

use super::crawl::crawl_actions;
use super::*;

/// The ignore areas applied to a comparison, as an SVG over an image of `size`.
fn ignore_boxes(p: &PageRecord, size: Option<(u32, u32)>) -> Markup {
    let Some((w, h)) = size.filter(|(w, h)| *w > 0 && *h > 0) else { return html! {} };
    html! {
        svg class="ignored" viewBox={ "0 0 " (w) " " (h) } preserveAspectRatio="none" role="img" aria-label="ignored areas" {
            @for r in &p.ignored {
                rect x=(r.x) y=(r.y) width=(r.width) height=(r.height) {}
            }
            rect class="ignore-draft" x="0" y="0" width="0" height="0" {}
        }
    }
}

/// The page view's ignore areas: those applying to this page (stored ones removable), and the
/// editor: draw a rectangle over the baseline or the capture, or type it; this page or every page.
fn ignore_editor(ctx: &Ctx, d: &PageDetail, areas: &[ListedArea], filter: PageFilter) -> Markup {
    let (c, p) = (&d.crawl, &d.page);
    let crawl = c.id.to_string();
    html! {
        section class="ignore" id="ignore" {
            h2 { "Ignore areas" }
            @if areas.is_empty() {
                p class="muted small" id="ignore-none" { "No ignore areas apply to this page." }
            } @else {
                ul class="ignore-list" id="ignore-list" {
                    @for a in areas {
                        li {
                            code { (a.x) "," (a.y) " " (a.w) "×" (a.h) }
                            " · " @if a.key == crate::store::IGNORE_EVERY_PAGE { "every page" } @else { "this page" }
                            @match (&a.source, a.id) {
                                (AreaSource::Stored, Some(id)) => {
                                    " · by " (a.created_by.as_deref().unwrap_or("?"))
                                    @if let Some(t) = a.created_at { " " (fmt_ms(t)) }
                                    @if ctx.can_write {
                                        " " (post_form(ctx, &format!("/sites/{}/ignore/{}/remove", encode(&c.site), id), "Remove", "button secondary small", None, &[("crawl", &crawl), ("key", &p.key), ("filter", filter.as_str())]))
                                    }
                                }
                                _ => { " · config file" }
                            }
                        }
                    }
                }
            }
            @if ctx.can_write && p.png.is_some() && c.kind != CrawlKind::Pair {
                form method="post" action={ "/sites/" (encode(&c.site)) "/ignore" } id="ignore-form" class="ignore-form" {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    input type="hidden" name="crawl" value=(crawl);
                    input type="hidden" name="key" value=(p.key);
                    input type="hidden" name="filter" value=(filter.as_str());
                    p class="small muted" { "Drag over the baseline or the new capture to draw a rectangle, or type it (image pixels)." }
                    @for (name, label) in [("x", "x"), ("y", "y"), ("w", "width"), ("h", "height")] {
                        label { (label) " " input type="number" name=(name) id={ "ignore-" (name) } min="0" required inputmode="numeric"; }
                        " "
                    }
                    fieldset class="inline" {
                        legend class="small" { "Applies to" }
                        label { input type="radio" name="scope" value="page" id="ignore-scope-page" checked; " this page" }
                        " "
                        label { input type="radio" name="scope" value="site" id="ignore-scope-site"; " every page of the site" }
                    }
                    button type="submit" class="button" id="ignore-save" { "Save ignore area" }
                }
            }
        }
    }
}

/// Images taller than this are shown as strips ([`STRIP_ROWS`] rows each, loaded lazily).
pub const TALL_PAGE_ROWS: u32 = 4000;
pub const STRIP_ROWS: u32 = 2000;

/// A shot: one lazily loaded image, or for a very tall one, strips read server-side
/// (`/artifacts/{hash}/rows/{from}-{to}`) that load as they scroll into view.
fn shot_image(h: &crate::store::Hash, caption: &str, size: Option<(u32, u32)>) -> Markup {
    match size {
        Some((w, height)) if height > TALL_PAGE_ROWS && w > 0 => html! {
            div class="strips" {
                @for y in (0..height).step_by(STRIP_ROWS as usize) {
                    @let end = (y + STRIP_ROWS).min(height);
                    img class="strip" src={ "/artifacts/" (h) "/rows/" (y) "-" (end) } alt={ (caption) ", rows " (y) "–" (end) }
                        loading="lazy" width=(w) height=(end - y);
                }
            }
        },
        _ => html! { img src=(artifact(h)) alt=(caption) loading="lazy"; },
    }
}

fn image_figure(
    caption: &str,
    hash: Option<crate::store::Hash>,
    id: &str,
    overlay: Option<&PageRecord>,
    masks: Markup,
    size: Option<(u32, u32)>,
) -> Markup {
    let changes: Vec<String> =
        overlay.map(|p| p.regions.iter().map(|r| r.y.to_string()).collect()).unwrap_or_default();
    html! {
        figure class="shot" id=(id) {
            figcaption { (caption) }
            @match hash {
                Some(h) => {
                    div class="shot-frame" data-height=[size.map(|s| s.1)] data-changes=[(!changes.is_empty()).then(|| changes.join(","))] {
                        a href=(artifact(&h)) { (shot_image(&h, caption, size)) }
                        @if let Some(p) = overlay { (region_boxes(p)) }
                        (masks)
                    }
                }
                None => { p class="muted" { "none" } }
            }
        }
    }
}

/// The changed-region boxes, as an SVG scaled over the capture (no inline styles needed).
fn region_boxes(p: &PageRecord) -> Markup {
    html! {
        @if !p.regions.is_empty() && p.width > 0 && p.height > 0 {
            svg class="regions" viewBox={ "0 0 " (p.width) " " (p.height) } preserveAspectRatio="none" aria-hidden="true" {
                @for r in &p.regions {
                    rect x=(r.x) y=(r.y) width=(r.width.max(1)) height=(r.height.max(1)) {}
                }
            }
        }
    }
}

/// The masked rectangles, dashed and labelled with their selector, as an SVG scaled over an image
/// of `size` (nothing when the size is unknown). A rectangle measured at the same place on both
/// images is labelled once.
fn mask_boxes(masked: &[MaskedRect], size: Option<(u32, u32)>) -> Markup {
    let Some((w, h)) = size.filter(|&(w, h)| w > 0 && h > 0 && !masked.is_empty()) else { return html! {} };
    // Labels in image pixels, a fortieth of the width: about 10 px at the page view's scales.
    let font = (w / 40).max(14);
    let labelled = |i: usize, m: &MaskedRect| {
        !masked[..i].iter().any(|o| o.selector == m.selector && (o.x, o.y) == (m.x, m.y))
    };
    html! {
        svg class="masks" viewBox={ "0 0 " (w) " " (h) } preserveAspectRatio="none" role="img" aria-label="masked areas" {
            @for (i, m) in masked.iter().enumerate() {
                g class="mask" data-selector=(m.selector) {
                    title { "masked: " (m.selector) " (measured on the " (m.image) ")" }
                    rect x=(m.x) y=(m.y) width=(m.width) height=(m.height) {}
                    @if labelled(i, m) {
                        // Above the rectangle, or below it at the top of the page.
                        @let y = if m.y >= font { m.y - 3 } else { m.y.saturating_add(m.height).saturating_add(font) };
                        text x=(m.x) y=(y) font-size=(font) { (m.selector) }
                    }
                }
            }
        }
    }
}

/// Each masked selector once, in order, with its number of rectangles on the capture and on the
/// baseline.
fn masked_selectors(masked: &[MaskedRect]) -> Vec<(&str, usize, usize)> {
    let mut out: Vec<(&str, usize, usize)> = Vec::new();
    for m in masked {
        let i = match out.iter().position(|(s, ..)| *s == m.selector) {
            Some(i) => i,
            None => {
                out.push((&m.selector, 0, 0));
                out.len() - 1
            }
        };
        if m.image == "capture" {
            out[i].1 += 1;
        } else {
            out[i].2 += 1;
        }
    }
    out
}

pub fn page_view(ctx: &Ctx, d: &PageDetail, areas: &[ListedArea], filter: PageFilter) -> String {
    let (c, p) = (&d.crawl, &d.page);
    let up = crawl_url(c.id, filter, 0);
    let t = &p.timing;
    let content = html! {
        p class="crumbs" {
            a href="/" { "Dashboard" } " › " a href={ "/sites/" (encode(&c.site)) } { (c.site) }
            " › " a href=(up) { "crawl #" (c.id) } " › page"
        }
        div class="page-head" {
            div {
                h1 class="page-key" { (p.key) }
                @if let Some(title) = &p.title { div class="page-title" { (title) } }
                div class="small" {
                    @match safe_href(&p.url) {
                        Some(h) => { a href=(h) rel="noopener noreferrer" class="page-url" { (p.url) } }
                        None => { span class="page-url" { (p.url) } }
                    }
                }
            }
            nav class="page-nav" {
                @if let Some(k) = &d.prev { a id="prev-page" href=(page_url(c.id, k, filter)) { "← k" } }
                span class="muted" { (d.position) " / " (d.total) }
                @if let Some(k) = &d.next { a id="next-page" href=(page_url(c.id, k, filter)) { "j →" } }
            }
        }
        div class="facts" {
            (change_badge(p.change.as_str()))
            " " span class="badge" { (p.outcome.as_str()) }
            @if p.approved { " " span class="badge approved" id="page-approved" { "approved" } }
            " · crawl " span id="crawl-status" { (status_badge(c.status)) }
            " · distortion " strong { (fmt_distortion(p.distortion)) }
            @if p.score != p.distortion || p.score_reason.is_some() {
                " · " span id="page-score" { "score " strong { (fmt_distortion(p.score)) }
                    @if let Some(r) = &p.score_reason { " (" span id="page-score-reason" { (r) } ")" } }
            }
            " · " (p.diff_pixels) " px differ"
            @if p.size_changed { " · " span class="warn" { "size changed" } }
            @if p.truncated { " · " span class="warn truncated" { "truncated: page cut at max height, its bottom not compared" } }
            @if let Some(s) = p.http_status.filter(|_| p.error.is_some()) { " · " (http_status_text(s)) }
            @if let Some(r) = &p.referrer {
                " · " span class="referrer" id="page-referrer" { "linked from " a href=(page_url(c.id, r, PageFilter::All)) { (r) } }
            }
            @if let Some(e) = error_beyond_status(p.error.as_deref(), p.http_status) { div class="error" { (e) } }
            @if p.change == PageChange::StillFailing {
                div class="muted" id="still-failing-note" {
                    "Failing the same way as in the approved crawl"
                    @if let Some(id) = c.structure.as_ref().and_then(|st| st.against) {
                        " " a href=(crawl_url(id, PageFilter::All, 0)) { "#" (id) }
                    }
                    ": shown and counted, not for review."
                }
            }
        }
        div class="actions" {
            @let page_is_old = c.kind != CrawlKind::Pair && d.current_baseline.is_some_and(|b| b > c.id);
            @if ctx.can_write && (p.png.is_some() || c.kind == CrawlKind::Pair) && c.status != CrawlStatus::Running && !p.approved && !page_is_old {
                (post_form(ctx, &format!("/crawls/{}/page/approve", c.id), "Approve page (a)", "button approve", Some("approve-page"), &[("key", &p.key), ("filter", filter.as_str())]))
            }
            @if ctx.can_write && p.png.is_some() && c.status != CrawlStatus::Running && page_is_old {
                a href=(restore_url(c.id, Some(&p.key))) class="button secondary" id="restore-page" { "Restore page as baseline…" }
            }
            (crawl_actions(ctx, c, d.newest_approval))
            button type="button" class="button secondary" id="mode-toggle" hidden { "Overlay (o)" }
            @if !p.regions.is_empty() {
                button type="button" class="button secondary" id="prev-change" hidden { "← change (p)" }
                button type="button" class="button secondary" id="next-change" hidden { "change (n) →" }
            }
        }
        (login_note(ctx))
        div id="shots" class="shots side-by-side" {
            @let (base_label, new_label) = if c.kind == CrawlKind::Pair { ("Base", "Head") } else { ("Baseline", "New capture") };
            @let union = d.baseline_size.map_or((p.width, p.height), |(w, h)| (w.max(p.width), h.max(p.height)));
            (image_figure(base_label, p.baseline_png, "shot-baseline", None, html! { (mask_boxes(&d.masked, d.baseline_size)) (ignore_boxes(p, d.baseline_size)) }, d.baseline_size))
            (image_figure(new_label, p.png, "shot-new", Some(p), html! { (mask_boxes(&d.masked, Some((p.width, p.height)))) (ignore_boxes(p, Some((p.width, p.height)))) }, Some((p.width, p.height))))
            (image_figure("Diff", p.diff, "shot-diff", None, html! {}, p.diff.map(|_| union)))
        }
        @if let (Some(b), Some(n)) = (p.baseline_png, p.png) {
            div id="compare" class="compare" hidden {
                div class="compare-controls" {
                    label for="compare-slider" { "Baseline ◀ ▶ new capture" }
                    input type="range" id="compare-slider" min="0" max="100" value="50";
                }
                div class="compare-frame" {
                    img src=(artifact(&b)) alt="baseline" class="compare-base" loading="lazy";
                    img src=(artifact(&n)) alt="new capture" class="compare-top" id="compare-top" loading="lazy";
                    (region_boxes(p))
                    (mask_boxes(&d.masked, Some((p.width, p.height))))
                }
            }
        }
        (ignore_editor(ctx, d, areas, filter))
        section class="details" {
            h2 { "HTTP and timings" }
            table class="kv" {
                tr { th { "HTTP status" } td { @match p.http_status { Some(s) => (s), None => "–" } } }
                tr { th { "Size" } td { (p.width) " × " (p.height) " px" } }
                tr { th { "Fetch" } td { (t.fetch_ms) " ms" } }
                tr { th { "Navigate" } td { (t.navigate_ms) " ms" } }
                tr { th { "Settle" } td { (t.settle_ms) " ms" } }
                tr { th { "Screenshot" } td { (t.screenshot_ms) " ms" } }
                tr { th { "Diff" } td { (t.diff_ms) " ms" } }
                @if let Some(b) = p.baseline_crawl {
                    tr { th { "Baseline from" } td id="baseline-from" {
                        a href=(crawl_url(b, PageFilter::All, 0)) { "crawl #" (b) }
                        @if let Some(a) = c.structure.as_ref().and_then(|st| st.against).filter(|a| *a != b) {
                            span class="muted" { " (a page approval or an older capture: the crawl's structure is against approved crawl #" (a) ")" }
                        }
                    } }
                }
                @if p.truncated { tr { th { "Truncated" } td { "cut at max_height" } } }
                @if !d.masked.is_empty() {
                    tr { th { "Masked" } td id="masked" {
                        @for (i, (sel, on_capture, on_baseline)) in masked_selectors(&d.masked).into_iter().enumerate() {
                            @if i > 0 { "; " }
                            code { (sel) } " (" (on_capture) " on the capture, " (on_baseline) " on the baseline)"
                        }
                        " — ignored on both images (dashed outlines)"
                    } }
                }
                @if let Some(area) = p.unstable_area { tr { th { "Unstable" } td { (area) " px kept changing between shots" } } }
                @for nav in &p.blocked_navigations { tr { th { "Blocked navigation" } td { code { (nav) } } } }
            }
            h2 { "Text change" }
            @match &d.text {
                Err(why) => { p class="muted" { (why) } }
                Ok(tc) if tc.hunks.is_empty() => { p class="muted" id="text-same" { "The visible text did not change." } }
                Ok(tc) => {
                    p class="small" { span class="add" { "+" (tc.added) } " " span class="del" { "−" (tc.removed) } " lines"
                        @if tc.truncated { " (truncated)" } }
                    div class="textdiff" id="textdiff" {
                        @for hunk in &tc.hunks {
                            div class="hunk" {
                                @for line in hunk {
                                    @let (cls, sign) = match line.tag { LineTag::Same => ("same", " "), LineTag::Added => ("add", "+"), LineTag::Removed => ("del", "−") };
                                    div class=(cls) { span class="sign" { (sign) } (line.text) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(ctx, &p.key, Some(&up), content)
}
