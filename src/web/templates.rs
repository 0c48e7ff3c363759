//! Server-rendered HTML of the review UI (maud escapes every interpolated value). No inline
//! scripts or styles: behaviour lives in `/static/app.js`, looks in `/static/app.css` (CSP).

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::data::{Listing, PageDetail, PageFilter, SiteOverview};
use super::http::encode;
use super::textdiff::LineTag;
use crate::store::{CrawlKind, CrawlRecord, CrawlStatus, PageRecord};
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
                                    td class="num" { a href=(crawl_url(c.id, PageFilter::Failed, 0)) { (c.counts.failed) } }
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
                        td class="num" { (c.counts.failed) }
                        td class="num" { (c.counts.new) }
                        td class="num" { (fmt_distortion(Some(c.max_distortion))) }
                    }
                }
            }
        }
    };
    layout(ctx, site, Some("/"), content)
}

fn crawl_actions(ctx: &Ctx, c: &CrawlRecord) -> Markup {
    let can_approve = matches!(c.status, CrawlStatus::Reviewing | CrawlStatus::Rejected);
    let can_reject = matches!(c.status, CrawlStatus::Reviewing | CrawlStatus::Interrupted);
    html! {
        @if ctx.can_write {
            div class="actions" {
                @if can_approve { (post_form(ctx, &format!("/crawls/{}/approve", c.id), "Approve crawl", "button approve", Some("approve-crawl"), &[])) }
                @if can_reject { (post_form(ctx, &format!("/crawls/{}/reject", c.id), "Reject crawl", "button reject", Some("reject-crawl"), &[])) }
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
            @if let Some(e) = &c.error { br; span class="error" { (e) } }
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
        (crawl_actions(ctx, c))
        (login_note(ctx))
        nav class="filters" {
            @for (i, f) in PageFilter::ALL.iter().enumerate().filter(|(i, f)| !f.pair_only() || l.counts[*i] > 0 || **f == l.filter) {
                a href=(crawl_url(c.id, *f, 0)) class={ "filter" @if *f == l.filter { " active" } } data-filter=(f.as_str()) {
                    (f.as_str()) " (" (l.counts[i]) ")"
                }
            }
        }
        @if l.pages.is_empty() {
            p class="muted" { "No pages here." }
        } @else {
            ol class="pages" start=(l.offset + 1) {
                @for p in &l.pages {
                    li class="page-row" data-href=(page_url(c.id, &p.key, l.filter)) {
                        a class="thumb" href=(page_url(c.id, &p.key, l.filter)) {
                            @match p.diff.or(p.png).or(p.baseline_png) {
                                Some(h) => { img src=(artifact(&h)) loading="lazy" alt="" width="160" height="120"; }
                                None => { span class="no-thumb" { "no capture" } }
                            }
                        }
                        div class="page-info" {
                            a class="page-key" href=(page_url(c.id, &p.key, l.filter)) { (p.key) }
                            @if let Some(t) = &p.title { div class="page-title" { (t) } }
                            div class="small" {
                                (change_badge(p.change))
                                @if p.approved { " " span class="badge approved" { "approved" } }
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

fn image_figure(
    caption: &str,
    hash: Option<crate::store::Hash>,
    id: &str,
    overlay: Option<&PageRecord>,
) -> Markup {
    html! {
        figure class="shot" id=(id) {
            figcaption { (caption) }
            @match hash {
                Some(h) => {
                    div class="shot-frame" {
                        a href=(artifact(&h)) { img src=(artifact(&h)) alt=(caption); }
                        @if let Some(p) = overlay { (region_boxes(p)) }
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

pub fn page_view(ctx: &Ctx, d: &PageDetail, filter: PageFilter) -> String {
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
            @if p.score != p.distortion { " · score " (fmt_distortion(p.score)) }
            @if let Some(r) = &p.score_reason { " (" (r) ")" }
            " · " (p.diff_pixels) " px differ"
            @if p.size_changed { " · " span class="warn" { "size changed" } }
            @if p.truncated { " · " span class="warn" { "page cut at max height" } }
            @if let Some(s) = p.http_status.filter(|_| p.error.is_some()) { " · " (http_status_text(s)) }
            @if let Some(r) = &p.referrer {
                " · " span class="referrer" id="page-referrer" { "linked from " a href=(page_url(c.id, r, PageFilter::All)) { (r) } }
            }
            @if let Some(e) = error_beyond_status(p.error.as_deref(), p.http_status) { div class="error" { (e) } }
        }
        div class="actions" {
            @if ctx.can_write && (p.png.is_some() || c.kind == CrawlKind::Pair) && c.status != CrawlStatus::Running && !p.approved {
                (post_form(ctx, &format!("/crawls/{}/page/approve", c.id), "Approve page (a)", "button approve", Some("approve-page"), &[("key", &p.key), ("filter", filter.as_str())]))
            }
            (crawl_actions(ctx, c))
            button type="button" class="button secondary" id="mode-toggle" hidden { "Overlay (o)" }
        }
        (login_note(ctx))
        div id="shots" class="shots side-by-side" {
            @let (base_label, new_label) = if c.kind == CrawlKind::Pair { ("Base", "Head") } else { ("Baseline", "New capture") };
            (image_figure(base_label, p.baseline_png, "shot-baseline", None))
            (image_figure(new_label, p.png, "shot-new", Some(p)))
            (image_figure("Diff", p.diff, "shot-diff", None))
        }
        @if let (Some(b), Some(n)) = (p.baseline_png, p.png) {
            div id="compare" class="compare" hidden {
                div class="compare-controls" {
                    label for="compare-slider" { "Baseline ◀ ▶ new capture" }
                    input type="range" id="compare-slider" min="0" max="100" value="50";
                }
                div class="compare-frame" {
                    img src=(artifact(&b)) alt="baseline" class="compare-base";
                    img src=(artifact(&n)) alt="new capture" class="compare-top" id="compare-top";
                    (region_boxes(p))
                }
            }
        }
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
                @if let Some(b) = p.baseline_crawl { tr { th { "Baseline from" } td { a href=(crawl_url(b, PageFilter::All, 0)) { "crawl #" (b) } } } }
                @if p.truncated { tr { th { "Truncated" } td { "cut at max_height" } } }
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
