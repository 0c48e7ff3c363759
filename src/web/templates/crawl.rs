//! The dashboard, a site's history, the crawl view (with change groups) and the restore pages.

use maud::{html, Markup};

use super::super::data::{Listing, PageFilter, SiteOverview};
use super::super::http::encode;
use crate::store::{BaselineMove, CrawlKind, CrawlRecord, CrawlStatus};
use crate::structure::{StructuralChange, StructuralDiff};

use super::*;

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

pub(super) fn crawl_actions(ctx: &Ctx, c: &CrawlRecord, newest_approval: Option<u64>) -> Markup {
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
