//! Server-rendered HTML of the review UI (maud escapes every interpolated value). No inline
//! scripts or styles: behaviour lives in `/static/app.js`, looks in `/static/app.css` (CSP).

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::data::{AreaSource, ListedArea, Listing, MaskedRect, PageDetail, PageFilter, SiteOverview};
use super::http::encode;
use super::textdiff::LineTag;
use crate::store::{BaselineMove, CrawlKind, CrawlRecord, CrawlStatus, PageChange, PageRecord};
use crate::structure::{StructuralChange, StructuralDiff};

/// What every page needs to know about the viewer.
pub struct Ctx {
    /// CSRF token for this browser's forms.
    pub csrf: String,
    /// The viewer may approve, reject and start crawls.
    pub can_write: bool,
    pub token_required: bool,
    pub authed: bool,
}

fn fmt_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "?".into())
}

/// An HTTP status with its reason phrase: `HTTP 404 Not Found`.
fn http_status_text(status: u16) -> String {
    match http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()) {
        Some(reason) => format!("HTTP {status} {reason}"),
        None => format!("HTTP {status}"),
    }
}

/// A page's error, unless it only repeats its HTTP status (discovery's `HTTP 404` for a 404).
fn error_beyond_status(error: Option<&str>, status: Option<u16>) -> Option<&str> {
    error.filter(|e| status.is_none_or(|s| *e != format!("HTTP {s}") && *e != http_status_text(s)))
}

fn fmt_distortion(d: Option<f64>) -> String {
    match d {
        Some(d) => format!("{:.4}%", d * 100.0),
        None => "–".into(),
    }
}

pub fn crawl_url(id: u64, filter: PageFilter, offset: usize) -> String {
    let mut u = format!("/crawls/{id}");
    let mut sep = '?';
    if filter != PageFilter::All {
        u.push_str(&format!("{sep}filter={}", filter.as_str()));
        sep = '&';
    }
    if offset > 0 {
        u.push_str(&format!("{sep}offset={offset}"));
    }
    u
}

pub fn page_url(id: u64, key: &str, filter: PageFilter) -> String {
    let mut u = format!("/crawls/{id}/page?key={}", encode(key));
    if filter != PageFilter::All {
        u.push_str(&format!("&filter={}", filter.as_str()));
    }
    u
}

fn artifact(h: &crate::store::Hash) -> String {
    format!("/artifacts/{h}")
}

/// Only http(s) URLs become links (a crawled `javascript:` URL must never be clickable).
fn safe_href(url: &str) -> Option<&str> {
    (url.starts_with("http://") || url.starts_with("https://")).then_some(url)
}

fn status_badge(s: CrawlStatus) -> Markup {
    html! { span class={ "badge status-" (s.as_str()) } { (s.as_str()) } }
}

fn change_badge(change: &str) -> Markup {
    html! { span class={ "badge change-" (change) } { (change) } }
}

/// A POST form with the CSRF token and one submit button.
fn post_form(
    ctx: &Ctx,
    action: &str,
    label: &str,
    class: &str,
    id: Option<&str>,
    fields: &[(&str, &str)],
) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
            button type="submit" class=(class) id=[id] { (label) }
        }
    }
}

fn help_overlay() -> Markup {
    html! {
        div id="help" class="help" hidden {
            div class="help-box" {
                h2 { "Keyboard shortcuts" }
                dl {
                    dt { kbd { "j" } } dd { "next page" }
                    dt { kbd { "k" } } dd { "previous page" }
                    dt { kbd { "Enter" } } dd { "open the selected page (crawl view)" }
                    dt { kbd { "a" } } dd { "approve this page (page view)" }
                    dt { kbd { "o" } } dd { "toggle side-by-side / overlay (page view)" }
                    dt { kbd { "n" } " / " kbd { "p" } } dd { "next / previous change (page view)" }
                    dt { kbd { "u" } } dd { "up: back to the crawl / dashboard" }
                    dt { kbd { "?" } } dd { "show or hide this help" }
                }
                p class="muted" { "Press " kbd { "?" } " or " kbd { "Esc" } " to close." }
            }
        }
    }
}

/// The page frame.
pub fn layout(ctx: &Ctx, title: &str, up: Option<&str>, content: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · sitediff" }
                link rel="stylesheet" href=(assets::url("app.css"));
                script src=(assets::url("app.js")) defer {}
            }
            body data-up=[up] {
                header class="top" {
                    a class="brand" href="/" { "sitediff" }
                    nav {
                        a href="/" { "Dashboard" }
                        button type="button" class="linkish" id="help-button" title="Keyboard shortcuts (?)" { "?" }
                        @if ctx.token_required {
                            @if ctx.authed {
                                (post_form(ctx, "/logout", "Log out", "linkish", None, &[]))
                            } @else {
                                a href="/login" { "Log in" }
                            }
                        }
                    }
                }
                main { (content) }
                (help_overlay())
            }
        }
    }
    .into_string()
}

fn login_note(ctx: &Ctx) -> Markup {
    html! {
        @if !ctx.can_write {
            p class="note" { "Read-only: " a href="/login" { "log in" } " with the token to approve, reject or start crawls." }
        }
    }
}

pub fn dashboard(ctx: &Ctx, sites: &[SiteOverview]) -> String {
    let content = html! {
        h1 { "Sites" }
        (login_note(ctx))
        @if sites.is_empty() {
            p class="muted" { "No sites are configured." }
        } @else {
            table class="sites" {
                thead { tr {
                    th { "Site" } th { "Last crawl" } th class="num" { "Changed" } th class="num" { "Failed" }
                    th class="num" { "New" } th class="num" { "Pending reviews" } th { "Next run" } th {}
                } }
                tbody {
                    @for s in sites {
                        tr data-site=(s.name) {
                            td {
                                a href={ "/sites/" (encode(&s.name)) } class="site-name" { (s.name) }
                                @if let Some(start) = &s.start { div class="muted small" { (start) } }
                                @if !s.configured { div class="muted small" { "not in the config any more" } }
                            }
                            @match &s.last_crawl {
                                Some(c) => {
                                    td {
                                        a href=(crawl_url(c.id, PageFilter::All, 0)) class="crawl-link" { "#" (c.id) }
                                        " " (status_badge(c.status))
                                        div class="muted small" { (fmt_ms(c.started_at)) }
                                    }
                                    td class="num" { a href=(crawl_url(c.id, PageFilter::Changed, 0)) { (c.counts.changed) } }
                                    td class="num" { a href=(crawl_url(c.id, PageFilter::Failed, 0)) { (c.counts.failed) } (still_failing(c)) }
                                    td class="num" { a href=(crawl_url(c.id, PageFilter::New, 0)) { (c.counts.new) } }
                                }
                                None => { td class="muted" { "never crawled" } td {} td {} td {} }
                            }
                            td class="num" { (s.pending_reviews) }
                            td {
                                @match s.next_run {
                                    Some(t) => { (t.format("%Y-%m-%d %H:%M:%S UTC")) }
                                    None => { span class="muted" { "on demand" } }
                                }
                                @if let Some(expr) = &s.schedule { div class="muted small" { code { (expr) } } }
                            }
                            td {
                                @if s.busy {
                                    @match s.running_crawl {
                                        Some(id) => { a href=(crawl_url(id, PageFilter::All, 0)) { "crawling… #" (id) } }
                                        None => { span class="muted" { "queued…" } }
                                    }
                                } @else if s.configured && ctx.can_write {
                                    (post_form(ctx, &format!("/sites/{}/crawl", encode(&s.name)), "Crawl now", "button", None, &[]))
                                    (post_form(ctx, &format!("/sites/{}/crawl?full=1", encode(&s.name)), "Full crawl", "button", None, &[]))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(ctx, "Dashboard", None, content)
}

pub fn site_history(ctx: &Ctx, site: &str, crawls: &[CrawlRecord]) -> String {
    let content = html! {
        p class="crumbs" { a href="/" { "Dashboard" } " › " (site) }
        h1 { "Crawls of " (site) }
        @if crawls.is_empty() { p class="muted" { "No crawls yet." } }
        table class="crawls" {
            thead { tr { th { "Crawl" } th { "Status" } th { "Started" } th class="num" { "Pages" }
                th class="num" { "Changed" } th class="num" { "Failed" } th class="num" { "New" } th class="num" { "Max distortion" } } }
            tbody {
                @for c in crawls {
                    tr {
                        td { a href=(crawl_url(c.id, PageFilter::All, 0)) { "#" (c.id) } }
                        td { (status_badge(c.status)) }
                        td { (fmt_ms(c.started_at)) }
                        td class="num" { (c.counts.pages) }
                        td class="num" { (c.counts.changed) }
                        td class="num" { (c.counts.failed) (still_failing(c)) }
                        td class="num" { (c.counts.new) }
                        td class="num" { (fmt_distortion(Some(c.max_distortion))) }
                    }
                }
            }
        }
    };
    layout(ctx, site, Some("/"), content)
}

/// The pages of a crawl failing as in the approved crawl, beside its (newly) failed count.
fn still_failing(c: &CrawlRecord) -> Markup {
    html! {
        @if c.counts.still_failing > 0 {
            div class="muted small still-failing" title="failing the same way as in the approved crawl: not for review" {
                "+" (c.counts.still_failing) " still failing"
            }
        }
    }
}

/// The newer approval that makes crawl `c` old: approving it is refused, restoring it is offered.
fn newer_approval(c: &CrawlRecord, newest_approval: Option<u64>) -> Option<u64> {
    newest_approval.filter(|n| *n > c.id && c.kind != CrawlKind::Pair)
}

/// The URL of the restore confirmation of a crawl, or of one of its pages.
pub fn restore_url(id: u64, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("/crawls/{id}/restore?key={}", encode(k)),
        None => format!("/crawls/{id}/restore"),
    }
}

fn crawl_actions(ctx: &Ctx, c: &CrawlRecord, newest_approval: Option<u64>) -> Markup {
    let newer = newer_approval(c, newest_approval);
    let reviewable = matches!(c.status, CrawlStatus::Reviewing | CrawlStatus::Passed | CrawlStatus::Rejected);
    let can_approve = reviewable && newer.is_none();
    let can_restore = newer.is_some() && (reviewable || c.status == CrawlStatus::Approved);
    let can_reject =
        matches!(c.status, CrawlStatus::Reviewing | CrawlStatus::Passed | CrawlStatus::Interrupted);
    html! {
        @if ctx.can_write {
            div class="actions" {
                @if can_approve { (post_form(ctx, &format!("/crawls/{}/approve", c.id), "Approve crawl", "button approve", Some("approve-crawl"), &[])) }
                @if can_restore { a href=(restore_url(c.id, None)) class="button secondary" id="restore-crawl" { "Restore as baseline…" } }
                @if can_reject { (post_form(ctx, &format!("/crawls/{}/reject", c.id), "Reject crawl", "button reject", Some("reject-crawl"), &[])) }
            }
        }
        @if let (Some(n), true) = (newer, reviewable) {
            p class="note" id="older-than-approval" {
                "Crawl #" (n) " holds a newer approval: approving this older crawl would move baselines back. "
                "Restore it to do that on purpose."
            }
        }
    }
}

fn crawl_header(c: &CrawlRecord) -> Markup {
    html! {
        p class="crumbs" { a href="/" { "Dashboard" } " › " a href={ "/sites/" (encode(&c.site)) } { (c.site) } " › crawl #" (c.id) }
        h1 { "Crawl #" (c.id) " of " (c.site) " " span id="crawl-status" { (status_badge(c.status)) } }
        p class="meta" {
            "Started " (fmt_ms(c.started_at))
            @if let Some(f) = c.finished_at { " · finished " (fmt_ms(f)) }
            " · " (c.counts.pages) " pages · max distortion " (fmt_distortion(Some(c.max_distortion)))
            @if c.counts.still_failing > 0 {
                " · " span id="still-failing" { (c.counts.still_failing) " still failing (as in the approved crawl)" }
            }
            @if c.incremental {
                " · " span id="reused" { "incremental: " (c.counts.reused) " of " (c.counts.pages) " pages reused without rendering" }
            }
            @if let Some(e) = &c.error { br; span class="error" { (e) } }
        }
        @if c.status == CrawlStatus::Passed {
            p class="note" id="passed-note" {
                "Nothing to review: no page changed, is new, was added or removed, or fails unlike in the approved crawl. "
                "The crawl passed without a reviewer; baselines are unchanged."
            }
        }
        @for w in &c.warnings { p class="warn crawl-warning" { "Warning: " (w) } }
        @match c.kind {
            CrawlKind::Pair => {
                p class="meta" id="crawl-kind" {
                    "Pair diff: " code { (c.prefix) } " (head) against " code { (c.compare_to.as_deref().unwrap_or("?")) } " (base)"
                }
            }
            CrawlKind::Upload => { p class="meta" id="crawl-kind" { "Uploaded screenshots, compared with the site's baselines" } }
            CrawlKind::Site => {}
        }
        @if let Some(st) = &c.structure { (structure_summary(c, st)) }
    }
}

/// The structural diff of a crawl: counts, and the keys behind them.
fn structure_summary(c: &CrawlRecord, st: &StructuralDiff) -> Markup {
    html! {
        section class="structure" id="structure" {
            h2 {
                "Structure "
                span class="muted small" {
                    @match (c.kind, st.against) {
                        (CrawlKind::Pair, _) => { "head against base" }
                        (_, Some(id)) => { "against approved " a href=(crawl_url(id, PageFilter::All, 0)) { "crawl #" (id) } }
                        (_, None) => { "no approved crawl yet: every page counts as added" }
                    }
                }
            }
            p class="structure-counts" {
                @for ch in StructuralChange::ALL {
                    span class={ "badge structure-" (ch.as_str()) } data-change=(ch.as_str()) { (ch.as_str()) " " (st.count(ch)) }
                    " "
                }
            }
            @if st.has_changes() {
                details {
                    summary { "Pages" }
                    ul class="structure-keys" {
                        @for k in &st.added_keys { li { span class="badge structure-added" { "added" } " " (k) } }
                        @for k in &st.removed_keys { li { span class="badge structure-removed" { "removed" } " " (k) } }
                        @for r in &st.redirects { li { span class="badge structure-redirected" { "redirected" } " " (r.from) " → " (r.to) } }
                        @for k in &st.error_keys { li { span class="badge structure-error" { "error" } " " (k) } }
                    }
                }
            }
        }
    }
}

/// Page size of the crawl view.
pub const CRAWL_PAGE_SIZE: usize = 50;

pub fn crawl_view(ctx: &Ctx, l: &Listing) -> String {
    let c = &l.crawl;
    let shown_to = l.offset + l.pages.len();
    let content = html! {
        (crawl_header(c))
        (crawl_actions(ctx, c, l.newest_approval))
        (login_note(ctx))
        nav class="filters" {
            @for (i, f) in PageFilter::ALL.iter().enumerate().filter(|(i, f)| !f.pair_only() || l.counts[*i] > 0 || **f == l.filter) {
                a href=(crawl_url(c.id, *f, 0)) class={ "filter" @if *f == l.filter { " active" } } data-filter=(f.as_str()) {
                    (f.as_str()) " (" (l.counts[i]) ")"
                }
            }
        }
        (change_groups(ctx, l))
        @if l.pages.is_empty() {
            p class="muted" { "No pages here." }
        } @else {
            ol class="pages" start=(l.offset + 1) {
                @for p in &l.pages {
                    li class="page-row" data-href=(page_url(c.id, &p.key, l.filter)) {
                        a class="thumb" href=(page_url(c.id, &p.key, l.filter)) {
                            // Previews only; full-size images for records stored before schema 3.
                            @match p.change_preview.or(p.thumb).or(p.diff).or(p.png).or(p.baseline_png) {
                                Some(h) => { img src=(artifact(&h)) loading="lazy" alt="" width="160" height="120"; }
                                None => { span class="no-thumb" { "no capture" } }
                            }
                        }
                        div class="page-info" {
                            a class="page-key" href=(page_url(c.id, &p.key, l.filter)) { (p.key) }
                            @if let Some(t) = &p.title { div class="page-title" { (t) } }
                            div class="small" {
                                (change_badge(p.change))
                                @if p.truncated { " " span class="badge warn truncated" { "truncated" } }
                                @if p.approved { " " span class="badge approved" { "approved" } }
                                @if let Some(from) = p.reused_from {
                                    " " span class="badge reused" title="approved capture reused: nothing it was made from changed" {
                                        "reused from " a href=(crawl_url(from, PageFilter::All, 0)) { "#" (from) }
                                    }
                                }
                                " distortion " (fmt_distortion(p.distortion))
                                @if let Some(s) = p.http_status { " · " (http_status_text(s)) }
                                @if let Some(e) = error_beyond_status(p.error.as_deref(), p.http_status) { " · " span class="error" { (e) } }
                                @if let Some(r) = &p.referrer {
                                    " · " span class="referrer" { "linked from " a href=(page_url(c.id, r, PageFilter::All)) { (r) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav class="pager" {
            @if l.offset > 0 {
                a href=(crawl_url(c.id, l.filter, l.offset.saturating_sub(CRAWL_PAGE_SIZE))) rel="prev" { "← previous" }
            }
            span class="muted" {
                @if l.total > 0 { (l.offset + 1) "–" (shown_to) " of " (l.total) } @else { "0 pages" }
            }
            @if shown_to < l.total {
                a href=(crawl_url(c.id, l.filter, shown_to)) rel="next" { "next →" }
            }
        }
    };
    layout(ctx, &format!("Crawl #{} of {}", c.id, c.site), Some("/"), content)
}

/// The crawl's change groups, biggest first, each with its representative preview and an
/// *Approve group* button.
fn change_groups(ctx: &Ctx, l: &Listing) -> Markup {
    let c = &l.crawl;
    let reviewable = matches!(c.status, CrawlStatus::Reviewing | CrawlStatus::Passed | CrawlStatus::Rejected)
        && newer_approval(c, l.newest_approval).is_none();
    html! {
        @if !l.groups.is_empty() {
            section class="groups" id="groups" {
                h2 { "Change groups" }
                p class="small muted" {
                    "Changed pages whose diffs found the same regions with the same pixels before and after "
                    "show the same change: one decision covers the group."
                }
                ol class="pages group-list" {
                    @for g in &l.groups {
                        li class="page-row group-row" data-group=(g.id) data-href=(page_url(c.id, &g.representative, PageFilter::Changed)) {
                            a class="thumb" href=(page_url(c.id, &g.representative, PageFilter::Changed)) {
                                @match g.preview {
                                    Some(h) => { img src=(artifact(&h)) loading="lazy" alt="" width="160" height="120"; }
                                    None => { span class="no-thumb" { "no preview" } }
                                }
                            }
                            div class="page-info" {
                                strong class="group-count" { (g.pages) @if g.pages == 1 { " page" } @else { " pages" } }
                                " · " span class="group-pending" { (g.pending) " pending" }
                                div class="small group-keys" {
                                    @for (i, k) in g.keys.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        a href=(page_url(c.id, k, PageFilter::Changed)) { (k) }
                                    }
                                    @if g.pages > g.keys.len() { " and " (g.pages - g.keys.len()) " more" }
                                }
                                @if ctx.can_write && reviewable && g.pending > 0 {
                                    (post_form(ctx, &format!("/crawls/{}/groups/{}/approve", c.id, g.id), "Approve group", "button approve", None, &[]))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

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

pub fn login(ctx: &Ctx, error: Option<&str>) -> String {
    let content = html! {
        h1 { "Log in" }
        @if !ctx.token_required {
            p { "No token is configured: everyone on this address may review." }
        } @else if ctx.authed {
            p { "You are logged in." }
        } @else {
            @if let Some(e) = error { p class="error" id="login-error" { (e) } }
            form method="post" action="/login" class="login" {
                input type="hidden" name="csrf" value=(ctx.csrf);
                label for="token" { "Token" }
                input type="password" name="token" id="token" autocomplete="current-password" required autofocus;
                button type="submit" class="button" { "Log in" }
            }
        }
    };
    layout(ctx, "Log in", Some("/"), content)
}

pub fn error_page(ctx: &Ctx, status: u16, message: &str) -> String {
    let content = html! {
        h1 { "Error " (status) }
        p class="error" { (message) }
        p { a href="/" { "Back to the dashboard" } }
    };
    layout(ctx, "Error", Some("/"), content)
}

fn restore_title(c: &CrawlRecord, key: Option<&str>) -> String {
    match key {
        Some(k) => format!("Restore page {k} of crawl #{}", c.id),
        None => format!("Restore crawl #{} of {}", c.id, c.site),
    }
}

/// The baselines a restore moves: key, from which crawl, to which.
fn moves_table(moved: &[BaselineMove]) -> Markup {
    html! {
        table class="moves" id="moves" {
            thead { tr { th { "Page" } th { "Baseline from" } th { "Becomes" } } }
            tbody {
                @for m in moved {
                    tr data-key=(m.key) {
                        td { (m.key) }
                        td { @match m.from { Some(f) => { "crawl #" (f) } None => { span class="muted" { "none" } } } }
                        td { "crawl #" (m.to) @if m.is_back() { " " span class="badge warn" { "back" } } }
                    }
                }
            }
        }
    }
}

/// `GET /crawls/{id}/restore`: what restoring would move, and the button that does it.
pub fn restore_confirm(ctx: &Ctx, c: &CrawlRecord, key: Option<&str>, moved: &[BaselineMove]) -> String {
    let title = restore_title(c, key);
    let back = moved.iter().filter(|m| m.is_back()).count();
    let back_to = match key {
        Some(k) => page_url(c.id, k, PageFilter::All),
        None => crawl_url(c.id, PageFilter::All, 0),
    };
    let content = html! {
        p class="crumbs" { a href="/" { "Dashboard" } " › " a href={ "/sites/" (encode(&c.site)) } { (c.site) } " › " a href=(back_to) { "crawl #" (c.id) } " › restore" }
        h1 { (title) }
        p {
            "Restoring makes this crawl's captures the baselines again, replacing newer approvals. "
            @if moved.is_empty() { "No baseline would change." }
            @else { (moved.len()) " baseline(s) would change, " strong { (back) " back to an older capture" } ":" }
        }
        @if !moved.is_empty() { (moves_table(moved)) }
        @if ctx.can_write {
            div class="actions" {
                @let fields: Vec<(&str, &str)> = key.map(|k| vec![("key", k)]).unwrap_or_default();
                (post_form(ctx, &format!("/crawls/{}/restore", c.id), &format!("Restore {} baseline(s)", moved.len()), "button reject", Some("confirm-restore"), &fields))
                " " a href=(back_to) class="button secondary" { "Cancel" }
            }
        }
        (login_note(ctx))
    };
    layout(ctx, &title, Some(&crawl_url(c.id, PageFilter::All, 0)), content)
}

/// After a restore: what moved.
pub fn restore_done(ctx: &Ctx, c: &CrawlRecord, key: Option<&str>, moved: &[BaselineMove]) -> String {
    let content = html! {
        p class="crumbs" { a href="/" { "Dashboard" } " › " a href={ "/sites/" (encode(&c.site)) } { (c.site) } " › " a href=(crawl_url(c.id, PageFilter::All, 0)) { "crawl #" (c.id) } }
        h1 { "Restored" }
        p id="restore-result" {
            @match key { Some(k) => { "Page " code { (k) } " of crawl #" (c.id) } None => { "Crawl #" (c.id) } }
            " is the baseline again: " (moved.len()) " baseline(s) moved."
        }
        @if !moved.is_empty() { (moves_table(moved)) }
        p { a href=(crawl_url(c.id, PageFilter::All, 0)) { "Back to crawl #" (c.id) } }
    };
    layout(ctx, "Restored", Some(&crawl_url(c.id, PageFilter::All, 0)), content)
}
