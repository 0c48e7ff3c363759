//! Server-rendered HTML of the review UI (maud escapes every interpolated value). No inline
//! scripts or styles: behaviour lives in `/static/app.js`, looks in `/static/app.css` (CSP).
//! This file: the layout, shared pieces and the small pages; `crawl.rs` the dashboard, history,
//! crawl view and restores; `page.rs` the page view.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

mod crawl;
mod page;

pub use crawl::{
    crawl_view, dashboard, restore_confirm, restore_done, restore_url, site_history, CRAWL_PAGE_SIZE,
};
pub use page::page_view;

use super::assets;
use super::data::PageFilter;
use super::http::encode;
use crate::store::CrawlStatus;

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
