//! The review UI's handlers: dashboard, site history, crawl view, page view, login/logout, and the
//! form POSTs (crawl now, approve/reject crawl, approve page, restore an older crawl or page after a
//! confirmation page), each checked for same origin, CSRF token and, when a token is configured, a
//! logged-in session. A [`Visit`] wraps every UI request:
//! the browser's session (a new one when it brought none) and errors rendered as pages.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::StatusCode;

use super::app::App;
use super::auth::Session;
use super::data::{blocking, PageFilter};
use super::error::RequestError;
use super::http::{self, Request, Response};
use super::templates::{self, Ctx, CRAWL_PAGE_SIZE};
use crate::review::Verdict;

/// What a handler produced.
pub enum Outcome {
    Done(Response),
    /// The response starts a new session (login/logout).
    NewSession(Response, Session),
}

/// What a UI handler returns.
pub type UiResult = Result<Outcome, RequestError>;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One UI request's viewer: the session and what the templates need to know of it.
pub struct Visit {
    session: Session,
    /// The browser brought no valid session: the response sets this new one.
    fresh: bool,
    pub ctx: Ctx,
}

impl Visit {
    pub fn start(app: &App, req: &Request) -> Visit {
        let existing = app.auth.session_from_headers(&req.headers, now());
        let fresh = existing.is_none();
        let session = existing.unwrap_or_else(|| app.auth.new_session(false, now()));
        let ctx = Ctx {
            csrf: app.auth.csrf_token(&session),
            can_write: app.auth.may_write(&session),
            token_required: app.auth.token_required(),
            authed: session.authed,
        };
        Visit { session, fresh, ctx }
    }

    /// The response: the handler's, or its error as a page; with the cookie of a new session.
    pub fn finish(self, app: &App, result: UiResult) -> Response {
        let Visit { session, fresh, ctx } = self;
        let (resp, set) = match result {
            Ok(Outcome::Done(r)) => (r, fresh.then_some(session)),
            Ok(Outcome::NewSession(r, s)) => (r, Some(s)),
            Err(e) => {
                let msg = match e {
                    RequestError::Unauthorized => "Log in with the token first.".to_string(),
                    ref other => other.public_message(),
                };
                let mut r = http::html(e.status(), templates::error_page(&ctx, e.status().as_u16(), &msg));
                http::add_error_headers(&mut r, &e);
                (r, fresh.then_some(session))
            }
        };
        match set {
            Some(s) => http::with_cookie(resp, &app.auth.set_cookie(&s)),
            None => resp,
        }
    }

    /// The checks every UI POST passes before it acts; returns the form fields.
    fn check_post(
        &self,
        app: &App,
        req: &Request,
        needs_write: bool,
    ) -> Result<HashMap<String, String>, RequestError> {
        let form = req.form()?;
        app.auth.check_same_origin(req)?;
        let token = form.get("csrf").map(String::as_str).unwrap_or("");
        if !app.auth.csrf_ok(&self.session, token) {
            return Err(RequestError::forbidden(
                "missing or stale form token: reload the page and try again",
            ));
        }
        if needs_write && !app.auth.may_write(&self.session) {
            return Err(RequestError::Unauthorized);
        }
        Ok(form)
    }
}

/// The `filter` query parameter every UI request may carry (an unknown one is a 400).
pub fn filter_param(req: &Request) -> Result<PageFilter, RequestError> {
    PageFilter::parse(req.query_params().get("filter").map(String::as_str).unwrap_or(""))
}

fn page(body: String) -> UiResult {
    Ok(Outcome::Done(http::html(StatusCode::OK, body)))
}

/// `GET /`.
pub async fn dashboard(app: &Arc<App>, visit: &Visit) -> UiResult {
    let a = app.clone();
    let sites = blocking("listing sites", move || a.catalog.sites(&a.state)).await?;
    page(templates::dashboard(&visit.ctx, &sites))
}

/// `GET /sites/{site}`.
pub async fn site(app: &Arc<App>, visit: &Visit, site: String) -> UiResult {
    let a = app.clone();
    let s = site.clone();
    let crawls = blocking("listing crawls", move || a.catalog.site_crawls(&a.state, &s)).await?;
    page(templates::site_history(&visit.ctx, &site, &crawls))
}

/// `GET /crawls/{id}[?filter=&offset=]`.
pub async fn crawl(app: &Arc<App>, req: &Request, visit: &Visit, id: u64, filter: PageFilter) -> UiResult {
    let offset = match req.query_params().get("offset") {
        Some(o) => o.parse().map_err(|_| RequestError::bad_request("offset must be a number"))?,
        None => 0,
    };
    let a = app.clone();
    let l = blocking("listing pages", move || a.catalog.listing(id, filter, offset, CRAWL_PAGE_SIZE)).await?;
    page(templates::crawl_view(&visit.ctx, &l))
}

/// `GET /crawls/{id}/page?key=[&filter=]`.
pub async fn page_view(
    app: &Arc<App>,
    req: &Request,
    visit: &Visit,
    id: u64,
    filter: PageFilter,
) -> UiResult {
    let key =
        req.query_params().remove("key").ok_or_else(|| RequestError::bad_request("which page? (?key=)"))?;
    let a = app.clone();
    let d = blocking("reading a page", move || a.catalog.page_detail(id, &key, filter)).await?;
    let areas = match app.ignore_areas(d.crawl.site.clone()).await {
        Ok(all) => all
            .into_iter()
            .filter(|a| a.key == crate::store::IGNORE_EVERY_PAGE || a.key == d.page.key)
            .collect(),
        // A site no longer configured has no editable areas.
        Err(_) => Vec::new(),
    };
    page(templates::page_view(&visit.ctx, &d, &areas, filter))
}

/// `GET /login`.
pub fn login_form(visit: &Visit) -> UiResult {
    page(templates::login(&visit.ctx, None))
}

/// `POST /login`: a fresh session id on login (no session fixation). Wrong tokens are throttled
/// per client (`429` with `Retry-After` while locked out, the right token included).
pub fn login(app: &App, req: &Request, visit: &Visit) -> UiResult {
    let form = visit.check_post(app, req, false)?;
    let given = form.get("token").map(String::as_str).unwrap_or("");
    if !app.auth.token_required() {
        return Ok(Outcome::Done(http::redirect("/")));
    }
    match app.auth.login_attempt(req.client_ip(), given) {
        Ok(true) => Ok(Outcome::NewSession(http::redirect("/"), app.auth.new_session(true, now()))),
        Ok(false) => {
            let body = templates::login(&visit.ctx, Some("That is not the token."));
            Ok(Outcome::Done(http::html(StatusCode::UNAUTHORIZED, body)))
        }
        Err(e) => {
            let body = templates::login(&visit.ctx, Some(&e.public_message()));
            let mut r = http::html(e.status(), body);
            http::add_error_headers(&mut r, &e);
            Ok(Outcome::Done(r))
        }
    }
}

/// `POST /logout`: the session is revoked server-side (a copy of its cookie stops working), and
/// the browser gets a new, logged-out one.
pub fn logout(app: &App, req: &Request, visit: &Visit) -> UiResult {
    visit.check_post(app, req, false)?;
    app.auth.revoke(&visit.session);
    Ok(Outcome::NewSession(http::redirect("/"), app.auth.new_session(false, now())))
}

/// `POST /sites/{site}/crawl`: start a crawl, on to its crawl view.
pub async fn trigger(app: &Arc<App>, req: &Request, visit: &Visit, site: String) -> UiResult {
    visit.check_post(app, req, true)?;
    let crawl = app.trigger(&site, crate::web::http::full_sweep_asked(req)).await?;
    Ok(Outcome::Done(http::redirect(&templates::crawl_url(crawl, PageFilter::All, 0))))
}

/// `POST /crawls/{id}/approve` and `.../reject`: back to the crawl.
pub async fn verdict(app: &Arc<App>, req: &Request, visit: &Visit, id: u64, v: Verdict) -> UiResult {
    visit.check_post(app, req, true)?;
    app.verdict(id, v).await?;
    Ok(Outcome::Done(http::redirect(&templates::crawl_url(id, PageFilter::All, 0))))
}

/// `POST /crawls/{id}/page/approve` (form: `key`, `filter`): back to the page.
pub async fn approve_page(app: &Arc<App>, req: &Request, visit: &Visit, id: u64) -> UiResult {
    let form = visit.check_post(app, req, true)?;
    let key = form.get("key").cloned().ok_or_else(|| RequestError::bad_request("which page? (key)"))?;
    let filter = PageFilter::parse(form.get("filter").map(String::as_str).unwrap_or(""))?;
    app.approve_page(id, key.clone()).await?;
    Ok(Outcome::Done(http::redirect(&templates::page_url(id, &key, filter))))
}

/// The page key a restore is about (`key`, from the query or the form), if any.
fn restore_key(fields: &HashMap<String, String>) -> Option<String> {
    fields.get("key").filter(|k| !k.is_empty()).cloned()
}

/// `GET /crawls/{id}/restore[?key=]`: what restoring would move, and the button that does it.
pub async fn restore_confirm(app: &Arc<App>, req: &Request, visit: &Visit, id: u64) -> UiResult {
    let key = restore_key(&req.query_params());
    let (crawl, moved) = app.restore_preview(id, key.clone()).await?;
    page(templates::restore_confirm(&visit.ctx, &crawl, key.as_deref(), &moved))
}

/// `POST /crawls/{id}/restore` (form: `key` for one page): restore, and show what moved.
pub async fn restore(app: &Arc<App>, req: &Request, visit: &Visit, id: u64) -> UiResult {
    let form = visit.check_post(app, req, true)?;
    let (crawl, key, moved) = match restore_key(&form) {
        Some(key) => {
            let done = app.restore_page(id, key.clone()).await?;
            (done.crawl, Some(key), done.moved)
        }
        None => {
            let done = app.restore(id).await?;
            (done.crawl, None, done.moved)
        }
    };
    page(templates::restore_done(&visit.ctx, &crawl, key.as_deref(), &moved))
}

/// `POST /crawls/{id}/groups/{group}/approve`: approve a change group, back to the crawl.
pub async fn approve_group(app: &Arc<App>, req: &Request, visit: &Visit, id: u64, group: String) -> UiResult {
    visit.check_post(app, req, true)?;
    app.approve_group(id, group).await?;
    Ok(Outcome::Done(http::redirect(&templates::crawl_url(id, PageFilter::All, 0))))
}

/// A number field of a form.
fn form_u32(form: &HashMap<String, String>, name: &str) -> Result<u32, RequestError> {
    let v = form.get(name).ok_or_else(|| RequestError::bad_request(format!("missing {name}")))?;
    v.trim()
        .parse()
        .map_err(|_| RequestError::bad_request(format!("{name} must be a whole number, not {v:?}")))
}

/// Where a form on the page view goes back to: `crawl` and `key` (and `filter`) fields.
fn back_to_page(form: &HashMap<String, String>) -> Result<String, RequestError> {
    let crawl: u64 = form
        .get("crawl")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| RequestError::bad_request("which crawl? (crawl)"))?;
    let key = form.get("key").ok_or_else(|| RequestError::bad_request("which page? (key)"))?;
    let filter = PageFilter::parse(form.get("filter").map(String::as_str).unwrap_or(""))?;
    Ok(templates::page_url(crawl, key, filter))
}

/// `POST /sites/{site}/ignore` (form: `key`, `scope` = page | site, `x`, `y`, `w`, `h`, `crawl`):
/// save an ignore area for this page or every page, re-score, back to the page.
pub async fn save_ignore(app: &Arc<App>, req: &Request, visit: &Visit, site: String) -> UiResult {
    let form = visit.check_post(app, req, true)?;
    let back = back_to_page(&form)?;
    let key = match form.get("scope").map(String::as_str) {
        Some("site") => crate::store::IGNORE_EVERY_PAGE.to_string(),
        Some("page") | None => form.get("key").cloned().unwrap_or_default(),
        Some(other) => return Err(RequestError::bad_request(format!("scope {other:?}: page or site"))),
    };
    let area = super::rescoring::NewArea {
        key,
        x: form_u32(&form, "x")?,
        y: form_u32(&form, "y")?,
        w: form_u32(&form, "w")?,
        h: form_u32(&form, "h")?,
        by: None,
    };
    app.add_ignore_area(site, area, "reviewer").await?;
    Ok(Outcome::Done(http::redirect(&back)))
}

/// `POST /sites/{site}/ignore/{id}/remove` (form: `crawl`, `key`): remove a stored area, re-score,
/// back to the page.
pub async fn remove_ignore(app: &Arc<App>, req: &Request, visit: &Visit, site: String, id: u64) -> UiResult {
    let form = visit.check_post(app, req, true)?;
    let back = back_to_page(&form)?;
    app.remove_ignore_area(site, id).await?;
    Ok(Outcome::Done(http::redirect(&back)))
}
