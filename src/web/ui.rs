//! The review UI's routes: dashboard, site history, crawl view, page view, login/logout, and the
//! form POSTs (crawl now, approve/reject crawl, approve page), each checked for same origin, CSRF
//! token and, when a token is configured, a logged-in session.

use std::collections::HashMap;
use std::sync::Arc;

use warp::http::{Method, StatusCode};

use super::api::{self, Verdict};
use super::auth::{self, Session};
use super::data::{blocking, PageFilter};
use super::error::RequestError;
use super::router::{self, decode_segment, parse_id, App, Request, Response};
use super::templates::{self, Ctx, CRAWL_PAGE_SIZE};

/// The UI's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Dashboard,
    Login,
    Logout,
    Site(String),
    TriggerCrawl(String),
    Crawl(u64),
    ApproveCrawl(u64),
    RejectCrawl(u64),
    Page(u64),
    ApprovePage(u64),
}

impl Route {
    fn parse(segs: &[&str]) -> Result<Route, RequestError> {
        Ok(match segs {
            [""] => Route::Dashboard,
            ["login"] => Route::Login,
            ["logout"] => Route::Logout,
            ["sites", site] => Route::Site(decode_segment(site)?),
            ["sites", site, "crawl"] => Route::TriggerCrawl(decode_segment(site)?),
            ["crawls", id] => Route::Crawl(parse_id(id)?),
            ["crawls", id, "approve"] => Route::ApproveCrawl(parse_id(id)?),
            ["crawls", id, "reject"] => Route::RejectCrawl(parse_id(id)?),
            ["crawls", id, "page"] => Route::Page(parse_id(id)?),
            ["crawls", id, "page", "approve"] => Route::ApprovePage(parse_id(id)?),
            _ => return Err(RequestError::not_found("page")),
        })
    }

    fn allows(&self, m: &Method) -> bool {
        let get = *m == Method::GET || *m == Method::HEAD;
        match self {
            Route::Dashboard | Route::Site(_) | Route::Crawl(_) | Route::Page(_) => get,
            Route::Login => get || *m == Method::POST,
            _ => *m == Method::POST,
        }
    }
}

/// What a handler produced.
enum Outcome {
    Done(Response),
    /// The response starts a new session (login/logout).
    NewSession(Response, Session),
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Handle a UI request.
pub async fn handle(app: &Arc<App>, req: &Request, segs: &[&str]) -> Response {
    let existing = app.auth.session_from_headers(&req.headers, now());
    let fresh = existing.is_none();
    let session = existing.unwrap_or_else(|| app.auth.new_session(false, now()));
    let ctx = Ctx {
        csrf: app.auth.csrf_token(&session),
        can_write: app.auth.may_write(&session),
        token_required: app.auth.token_required(),
        authed: session.authed,
    };
    let (resp, set) = match dispatch(app, req, segs, &session, &ctx).await {
        Ok(Outcome::Done(r)) => (r, fresh.then_some(session)),
        Ok(Outcome::NewSession(r, s)) => (r, Some(s)),
        Err(e) => {
            let msg = match e {
                RequestError::Unauthorized => "Log in with the token first.".to_string(),
                ref other => other.public_message(),
            };
            let r = router::html(e.status(), templates::error_page(&ctx, e.status().as_u16(), &msg));
            (r, fresh.then_some(session))
        }
    };
    match set {
        Some(s) => router::with_cookie(resp, &app.auth.set_cookie(&s)),
        None => resp,
    }
}

fn page(body: String) -> Result<Outcome, RequestError> {
    Ok(Outcome::Done(router::html(StatusCode::OK, body)))
}

/// The checks every UI POST passes before it acts; returns the form fields.
fn check_post(
    app: &App,
    req: &Request,
    session: &Session,
    needs_write: bool,
) -> Result<HashMap<String, String>, RequestError> {
    let form = req.form()?;
    auth::check_same_origin(&req.headers)?;
    let token = form.get("csrf").map(String::as_str).unwrap_or("");
    if !app.auth.csrf_ok(session, token) {
        return Err(RequestError::forbidden("missing or stale form token: reload the page and try again"));
    }
    if needs_write && !app.auth.may_write(session) {
        return Err(RequestError::Unauthorized);
    }
    Ok(form)
}

async fn dispatch(
    app: &Arc<App>,
    req: &Request,
    segs: &[&str],
    session: &Session,
    ctx: &Ctx,
) -> Result<Outcome, RequestError> {
    let route = Route::parse(segs)?;
    if !route.allows(&req.method) {
        return Err(RequestError::MethodNotAllowed {
            method: req.method.to_string(),
            path: req.path.clone(),
        });
    }
    let q = req.query_params();
    let filter = PageFilter::parse(q.get("filter").map(String::as_str).unwrap_or(""))?;
    match route {
        Route::Dashboard => {
            let a = app.clone();
            let sites = blocking("listing sites", move || a.catalog.sites(&a.state)).await?;
            page(templates::dashboard(ctx, &sites))
        }
        Route::Site(site) => {
            let a = app.clone();
            let s = site.clone();
            let crawls = blocking("listing crawls", move || a.catalog.site_crawls(&a.state, &s)).await?;
            page(templates::site_history(ctx, &site, &crawls))
        }
        Route::Crawl(id) => {
            let offset = match q.get("offset") {
                Some(o) => o.parse().map_err(|_| RequestError::bad_request("offset must be a number"))?,
                None => 0,
            };
            let a = app.clone();
            let l = blocking("listing pages", move || a.catalog.listing(id, filter, offset, CRAWL_PAGE_SIZE))
                .await?;
            page(templates::crawl_view(ctx, &l))
        }
        Route::Page(id) => {
            let key =
                q.get("key").cloned().ok_or_else(|| RequestError::bad_request("which page? (?key=)"))?;
            let a = app.clone();
            let d = blocking("reading a page", move || a.catalog.page_detail(id, &key, filter)).await?;
            page(templates::page_view(ctx, &d, filter))
        }
        Route::Login if req.method != Method::POST => page(templates::login(ctx, None)),
        Route::Login => {
            let form = check_post(app, req, session, false)?;
            let given = form.get("token").map(String::as_str).unwrap_or("");
            if !app.auth.token_required() {
                return Ok(Outcome::Done(router::redirect("/")));
            }
            if !app.auth.token_matches(given) {
                tracing::warn!("UI login with a wrong token");
                let body = templates::login(ctx, Some("That is not the token."));
                return Ok(Outcome::Done(router::html(StatusCode::UNAUTHORIZED, body)));
            }
            // A fresh session id on login (no session fixation).
            Ok(Outcome::NewSession(router::redirect("/"), app.auth.new_session(true, now())))
        }
        Route::Logout => {
            check_post(app, req, session, false)?;
            Ok(Outcome::NewSession(router::redirect("/"), app.auth.new_session(false, now())))
        }
        Route::TriggerCrawl(site) => {
            check_post(app, req, session, true)?;
            api::trigger(app, &site).await?;
            Ok(Outcome::Done(router::redirect("/")))
        }
        Route::ApproveCrawl(id) | Route::RejectCrawl(id) => {
            check_post(app, req, session, true)?;
            let v = if matches!(route, Route::ApproveCrawl(_)) { Verdict::Approve } else { Verdict::Reject };
            api::verdict(app, id, v).await?;
            Ok(Outcome::Done(router::redirect(&templates::crawl_url(id, PageFilter::All, 0))))
        }
        Route::ApprovePage(id) => {
            let form = check_post(app, req, session, true)?;
            let key =
                form.get("key").cloned().ok_or_else(|| RequestError::bad_request("which page? (key)"))?;
            let filter = PageFilter::parse(form.get("filter").map(String::as_str).unwrap_or(""))?;
            api::approve_page(app, id, key.clone()).await?;
            Ok(Outcome::Done(router::redirect(&templates::page_url(id, &key, filter))))
        }
    }
}
