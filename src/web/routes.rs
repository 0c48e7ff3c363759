//! The one place that knows the routes. `/metrics`, `/healthz` and `/demo/` are warp filters; every
//! other request becomes a plain [`Request`] and goes through the route table ([`resolve`]: path
//! pattern -> route and the methods it answers) to its handler. Each route family renders its
//! errors its own way (UI: an HTML page within the browser's session; API: JSON; artifacts and
//! assets: plain text), and every response of the table carries the security headers. Bodies are
//! read here within `server.body_timeout_ms` and [`http::MAX_BODY_BYTES`], except uploads', which
//! their handler parses as a stream.

use std::sync::Arc;

use warp::http::{HeaderMap, Method, StatusCode};
use warp::{Filter, Reply};

use super::app::App;
use super::assets::{self, Asset};
use super::error::RequestError;
use super::http::{self, decode_segment, parse_id, BodyError, BodyStream, Peer, Request, Response};
use super::ui::{self, Visit};
use super::{api, artifacts, upload};
use crate::review::Verdict;

/// The methods a route answers (HEAD wherever GET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Methods {
    Read,
    Write,
    ReadWrite,
    /// DELETE only (API).
    Delete,
}

impl Methods {
    fn allow(self, m: &Method) -> bool {
        let read = *m == Method::GET || *m == Method::HEAD;
        match self {
            Methods::Read => read,
            Methods::Write => *m == Method::POST,
            Methods::ReadWrite => read || *m == Method::POST,
            Methods::Delete => *m == Method::DELETE,
        }
    }
}

/// Whether a request writes (needs the write checks): anything but GET and HEAD.
fn writes(m: &Method) -> bool {
    *m != Method::GET && *m != Method::HEAD
}

/// A route family: how its errors look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Ui,
    Api,
    Artifact,
    Asset,
}

/// The review UI's routes (HTML).
#[derive(Debug, Clone, PartialEq, Eq)]
enum UiRoute {
    Dashboard,
    Login,
    Logout,
    Site(String),
    TriggerCrawl(String),
    Crawl(u64),
    Verdict(u64, Verdict),
    Page(u64),
    ApprovePage(u64),
    /// GET: what restoring the crawl (or `?key=` one page) would move; POST: restore it.
    Restore(u64),
    /// POST: approve every pending page of a change group.
    ApproveGroup(u64, String),
    /// POST: save an ignore area (form) and re-score.
    SaveIgnore(String),
    /// POST: remove a stored ignore area and re-score.
    RemoveIgnore(String, u64),
}

/// The JSON API's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ApiRoute {
    Sites,
    SiteCrawls(String),
    TriggerCrawl(String),
    Upload(String),
    Crawl(u64),
    Verdict(u64, Verdict),
    ApprovePage(u64, String),
    Restore(u64),
    RestorePage(u64, String),
    Progress(u64),
    Records(u64),
    Pair,
    Backup,
    Reload,
    /// GET: list; POST: save one (and re-score).
    Ignore(String),
    /// DELETE: remove one stored area (and re-score).
    IgnoreArea(String, u64),
    Rescore(u64),
    Groups(u64),
    ApproveGroup(u64, String),
}

/// Every route of the app, its path parameters decoded.
enum Route {
    Ui(UiRoute),
    Api(ApiRoute),
    Artifact(String),
    /// Rows `FROM-TO` of a PNG artifact (strips of tall pages).
    ArtifactRows(String, String),
    Asset(&'static Asset),
}

/// A path's family, and its route with the methods it answers (or the family's 404, or 400 for a
/// path segment that is not UTF-8).
fn resolve(segs: &[&str]) -> (Family, Result<(Route, Methods), RequestError>) {
    let family = match segs.first() {
        Some(&"api") => Family::Api,
        Some(&"artifacts") => Family::Artifact,
        Some(&"static") => Family::Asset,
        _ => Family::Ui,
    };
    (family, table(segs))
}

/// The route table: path pattern -> route and the methods it answers.
fn table(segs: &[&str]) -> Result<(Route, Methods), RequestError> {
    use ApiRoute as A;
    use Methods::{Read, ReadWrite, Write};
    use Route::{Api, Ui};
    use UiRoute as U;
    let (approve, reject) = (Verdict::Approve, Verdict::Reject);
    Ok(match *segs {
        // The review UI.
        [""] => (Ui(U::Dashboard), Read),
        ["login"] => (Ui(U::Login), ReadWrite),
        ["logout"] => (Ui(U::Logout), Write),
        ["sites", site] => (Ui(U::Site(decode_segment(site)?)), Read),
        ["sites", site, "crawl"] => (Ui(U::TriggerCrawl(decode_segment(site)?)), Write),
        ["crawls", id] => (Ui(U::Crawl(parse_id(id)?)), Read),
        ["crawls", id, "approve"] => (Ui(U::Verdict(parse_id(id)?, approve)), Write),
        ["crawls", id, "reject"] => (Ui(U::Verdict(parse_id(id)?, reject)), Write),
        ["crawls", id, "page"] => (Ui(U::Page(parse_id(id)?)), Read),
        ["crawls", id, "page", "approve"] => (Ui(U::ApprovePage(parse_id(id)?)), Write),
        ["crawls", id, "restore"] => (Ui(U::Restore(parse_id(id)?)), ReadWrite),
        ["crawls", id, "groups", group, "approve"] => {
            (Ui(U::ApproveGroup(parse_id(id)?, decode_segment(group)?)), Write)
        }
        ["sites", site, "ignore"] => (Ui(U::SaveIgnore(decode_segment(site)?)), Write),
        ["sites", site, "ignore", id, "remove"] => {
            (Ui(U::RemoveIgnore(decode_segment(site)?, parse_id(id)?)), Write)
        }
        // The JSON API.
        ["api", "sites"] => (Api(A::Sites), Read),
        ["api", "sites", site, "crawls"] => (Api(A::SiteCrawls(decode_segment(site)?)), Read),
        ["api", "sites", site, "crawl"] => (Api(A::TriggerCrawl(decode_segment(site)?)), Write),
        ["api", "sites", site, "uploads"] => (Api(A::Upload(decode_segment(site)?)), Write),
        ["api", "sites", site, "ignore"] => (Api(A::Ignore(decode_segment(site)?)), ReadWrite),
        ["api", "sites", site, "ignore", id] => {
            (Api(A::IgnoreArea(decode_segment(site)?, parse_id(id)?)), Methods::Delete)
        }
        ["api", "crawls", id] => (Api(A::Crawl(parse_id(id)?)), Read),
        ["api", "crawls", id, "progress"] => (Api(A::Progress(parse_id(id)?)), Read),
        ["api", "crawls", id, "records"] => (Api(A::Records(parse_id(id)?)), Read),
        ["api", "pairs"] => (Api(A::Pair), Write),
        ["api", "crawls", id, "rescore"] => (Api(A::Rescore(parse_id(id)?)), Write),
        ["api", "crawls", id, "groups"] => (Api(A::Groups(parse_id(id)?)), Read),
        ["api", "crawls", id, "groups", group, "approve"] => {
            (Api(A::ApproveGroup(parse_id(id)?, decode_segment(group)?)), Write)
        }
        ["api", "crawls", id, "approve"] => (Api(A::Verdict(parse_id(id)?, approve)), Write),
        ["api", "crawls", id, "reject"] => (Api(A::Verdict(parse_id(id)?, reject)), Write),
        ["api", "crawls", id, "restore"] => (Api(A::Restore(parse_id(id)?)), Write),
        ["api", "crawls", id, "pages", key, "approve"] => {
            (Api(A::ApprovePage(parse_id(id)?, decode_segment(key)?)), Write)
        }
        ["api", "crawls", id, "pages", key, "restore"] => {
            (Api(A::RestorePage(parse_id(id)?, decode_segment(key)?)), Write)
        }
        ["api", "backup"] => (Api(A::Backup), Write),
        ["api", "reload"] => (Api(A::Reload), Write),
        ["api", ..] => return Err(RequestError::not_found("API route")),
        // Stored artifacts by hash (the handler checks the hash, after the method) and UI assets.
        ["artifacts", hex] => (Route::Artifact(hex.to_string()), Read),
        ["artifacts", hex, "rows", range] => (Route::ArtifactRows(hex.to_string(), range.to_string()), Read),
        ["artifacts", ..] => return Err(RequestError::not_found("artifact")),
        ["static", name] => {
            (Route::Asset(assets::find(name).ok_or_else(|| RequestError::not_found("asset"))?), Read)
        }
        ["static", ..] => return Err(RequestError::not_found("asset")),
        _ => return Err(RequestError::not_found("page")),
    })
}

/// Whether a request's body is an upload's (streamed to its handler, not read here).
fn is_upload(route: &Result<(Route, Methods), RequestError>) -> bool {
    matches!(route, Ok((Route::Api(ApiRoute::Upload(_)), _)))
}

/// Answer one request of the route table (`upload`: the body stream of an upload).
async fn handle(
    app: Arc<App>,
    req: Request,
    family: Family,
    route: Result<(Route, Methods), RequestError>,
    upload: Option<BodyStream>,
) -> Response {
    let route = route.and_then(|(route, methods)| {
        if methods.allow(&req.method) {
            Ok((route, methods))
        } else {
            Err(req.method_not_allowed())
        }
    });
    let mut resp = match route {
        Ok((Route::Ui(r), _)) => {
            let visit = Visit::start(&app, &req);
            let result = ui_route(&app, &req, &visit, r).await;
            visit.finish(&app, result)
        }
        Ok((Route::Api(r), _)) => {
            api_route(&app, req, r, upload).await.unwrap_or_else(|e| http::json_error(&e))
        }
        Ok((Route::Artifact(hex), _)) => {
            artifacts::serve(&app, &req, &hex).await.unwrap_or_else(|e| http::text_error(&e))
        }
        Ok((Route::ArtifactRows(hex, range), _)) => {
            artifacts::serve_rows(&app, &hex, &range).await.unwrap_or_else(|e| http::text_error(&e))
        }
        Ok((Route::Asset(asset), _)) => assets::serve(asset),
        Err(e) => match family {
            Family::Ui => Visit::start(&app, &req).finish(&app, Err(e)),
            Family::Api => http::json_error(&e),
            Family::Artifact | Family::Asset => http::text_error(&e),
        },
    };
    http::add_security_headers(&mut resp);
    resp
}

async fn ui_route(app: &Arc<App>, req: &Request, visit: &Visit, route: UiRoute) -> ui::UiResult {
    let filter = ui::filter_param(req)?;
    match route {
        UiRoute::Dashboard => ui::dashboard(app, visit).await,
        UiRoute::Login if req.method == Method::POST => ui::login(app, req, visit),
        UiRoute::Login => ui::login_form(visit),
        UiRoute::Logout => ui::logout(app, req, visit),
        UiRoute::Site(site) => ui::site(app, visit, site).await,
        UiRoute::TriggerCrawl(site) => ui::trigger(app, req, visit, site).await,
        UiRoute::Crawl(id) => ui::crawl(app, req, visit, id, filter).await,
        UiRoute::Verdict(id, v) => ui::verdict(app, req, visit, id, v).await,
        UiRoute::Page(id) => ui::page_view(app, req, visit, id, filter).await,
        UiRoute::ApprovePage(id) => ui::approve_page(app, req, visit, id).await,
        UiRoute::Restore(id) if req.method == Method::POST => ui::restore(app, req, visit, id).await,
        UiRoute::Restore(id) => ui::restore_confirm(app, req, visit, id).await,
        UiRoute::ApproveGroup(id, group) => ui::approve_group(app, req, visit, id, group).await,
        UiRoute::SaveIgnore(site) => ui::save_ignore(app, req, visit, site).await,
        UiRoute::RemoveIgnore(site, id) => ui::remove_ignore(app, req, visit, site, id).await,
    }
}

async fn api_route(
    app: &Arc<App>,
    req: Request,
    route: ApiRoute,
    upload: Option<BodyStream>,
) -> Result<Response, RequestError> {
    if writes(&req.method) {
        if matches!(route, ApiRoute::Upload(_)) {
            // A refused upload says 401, whatever its size (its body is not read before).
            app.auth.authorize_write(&req)?;
            app.auth.check_same_origin(&req)?;
        } else {
            app.auth.check_api_write(&req)?;
        }
    }
    match route {
        ApiRoute::Sites => api::sites(app).await,
        ApiRoute::SiteCrawls(site) => api::site_crawls(app, site).await,
        ApiRoute::Crawl(id) => api::crawl(app, &req, id).await,
        ApiRoute::TriggerCrawl(site) => api::trigger(app, &site, http::full_sweep_asked(&req)).await,
        ApiRoute::Upload(site) => {
            let body = upload.ok_or_else(|| RequestError::bad_request("an upload needs a body"))?;
            upload::handle(app, req, &site, body).await
        }
        ApiRoute::Verdict(id, v) => api::verdict(app, id, v).await,
        ApiRoute::ApprovePage(id, key) => api::approve_page(app, id, key).await,
        ApiRoute::Restore(id) => api::restore(app, id).await,
        ApiRoute::RestorePage(id, key) => api::restore_page(app, id, key).await,
        ApiRoute::Progress(id) => api::progress(app, &req, id).await,
        ApiRoute::Records(id) => api::records(app, id).await,
        ApiRoute::Pair => api::pair(app, &req).await,
        ApiRoute::Backup => api::backup(app, &req).await,
        ApiRoute::Reload => api::reload(app).await,
        ApiRoute::Ignore(site) if req.method == Method::POST => api::add_ignore(app, &req, site).await,
        ApiRoute::Ignore(site) => api::ignore_areas(app, site).await,
        ApiRoute::IgnoreArea(site, id) => api::remove_ignore(app, site, id).await,
        ApiRoute::Rescore(id) => api::rescore(app, id).await,
        ApiRoute::Groups(id) => api::groups(app, id).await,
        ApiRoute::ApproveGroup(id, group) => api::approve_group(app, id, group).await,
    }
}

fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// All routes: `/metrics`, `/healthz`, `/demo/` (when configured), then the route table.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let demo_dir = app.state.config.server.demo_dir.clone();
    let metrics = warp::path!("metrics").and(warp::get()).and(with_app(app.clone())).then(metrics);
    let healthz = warp::path!("healthz").and(warp::get()).and(with_app(app.clone())).then(healthz);
    metrics.or(healthz).or(demo_site(&demo_dir)).or(app_requests(app))
}

/// `GET /metrics`: the review-pending gauge is recounted from the store first, so it is right
/// whoever reviewed (the CLI included).
async fn metrics(app: Arc<App>) -> warp::reply::Response {
    let a = app.clone();
    match tokio::task::spawn_blocking(move || a.review.refresh_pending()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %super::error::chain(&e), "cannot refresh the review-pending gauge")
        }
        Err(e) => tracing::warn!(error = %e, "the review-pending gauge refresh did not finish"),
    }
    match app.state.metrics.render() {
        Ok(text) => {
            warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering metrics failed");
            warp::reply::with_status("metrics unavailable", StatusCode::INTERNAL_SERVER_ERROR).into_response()
        }
    }
}

/// `GET /healthz`: the store opens a read, the browser side answers.
async fn healthz(app: Arc<App>) -> warp::reply::Response {
    let store = app.state.store.clone();
    let store_ok = match tokio::task::spawn_blocking(move || store.site_names()).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: the store cannot be read");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "health check: the store read did not finish");
            false
        }
    };
    let browser_ok = (app.state.browser)().await;
    // A refused reload leaves the daemon running its previous config: reported, not unhealthy.
    let problems = app.state.scheduler.reload_problems();
    let body = serde_json::json!({
        "store": store_ok,
        "browser": browser_ok,
        "ok": store_ok && browser_ok,
        "config": { "reload_ok": problems.is_empty(), "problems": problems },
    });
    let code = if store_ok && browser_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    warp::reply::with_status(warp::reply::json(&body), code).into_response()
}

/// The bundled demo site at `/demo/`, when the config asks for it.
fn demo_site(dir: &Option<std::path::PathBuf>) -> warp::filters::BoxedFilter<(Box<dyn Reply>,)> {
    match dir {
        Some(d) => {
            warp::path("demo").and(warp::fs::dir(d.clone())).map(|f| Box::new(f) as Box<dyn Reply>).boxed()
        }
        None => {
            warp::any().and_then(|| async { Err::<Box<dyn Reply>, _>(warp::reject::not_found()) }).boxed()
        }
    }
}

/// Every other request: resolved in the route table, its body read (POST only, within
/// [`http::MAX_BODY_BYTES`] and the body timeout; an upload's is handed on as a stream), answered
/// by its handler.
fn app_requests(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Peer>())
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  peer: Option<Peer>,
                  body| {
                let app = app.clone();
                async move {
                    let path = path.as_str().to_string();
                    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                    let (family, route) = resolve(&segs);
                    let mut upload = None;
                    let body = if method != Method::POST {
                        Ok(Vec::new())
                    } else if is_upload(&route) {
                        upload = Some(http::body_stream(body));
                        Ok(Vec::new())
                    } else {
                        let timeout = app.state.config.server.body_timeout;
                        match tokio::time::timeout(timeout, read_body(body, http::MAX_BODY_BYTES)).await {
                            Ok(body) => body,
                            Err(_) => Err(BodyError::TimedOut { after: timeout }),
                        }
                    };
                    let req = Request { method, path: path.clone(), query, headers, body, peer };
                    handle(app, req, family, route, upload).await
                }
            },
        )
}

/// Read a request body, refusing more than `limit` bytes.
async fn read_body<S, B>(body: S, limit: usize) -> Result<Vec<u8>, BodyError>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| BodyError::Unreadable(Arc::new(e)))?;
        if out.len() + chunk.remaining() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(path: &str) -> (Family, Result<Methods, u16>) {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (family, route) = resolve(&segs);
        (family, route.map(|(_, m)| m).map_err(|e| e.status().as_u16()))
    }

    #[test]
    fn the_table() {
        assert_eq!(resolved("/"), (Family::Ui, Ok(Methods::Read)));
        assert_eq!(resolved("/login"), (Family::Ui, Ok(Methods::ReadWrite)));
        assert_eq!(resolved("/crawls/2/page/approve"), (Family::Ui, Ok(Methods::Write)));
        assert_eq!(resolved("/crawls/x"), (Family::Ui, Err(404)));
        assert_eq!(resolved("/sites/%ff"), (Family::Ui, Err(400)));
        assert_eq!(resolved("/api/crawls/2/pages/%2Fa/approve"), (Family::Api, Ok(Methods::Write)));
        assert_eq!(resolved("/api/crawls/2/restore"), (Family::Api, Ok(Methods::Write)));
        assert_eq!(resolved("/api/crawls/2/pages/%2Fa/restore"), (Family::Api, Ok(Methods::Write)));
        assert_eq!(resolved("/crawls/2/restore"), (Family::Ui, Ok(Methods::ReadWrite)));
        assert_eq!(resolved("/api/sites/docs/uploads"), (Family::Api, Ok(Methods::Write)));
        assert_eq!(resolved("/api/crawls/2/progress"), (Family::Api, Ok(Methods::Read)));
        assert_eq!(resolved("/api/crawls/2/records"), (Family::Api, Ok(Methods::Read)));
        assert_eq!(resolved("/api/pairs"), (Family::Api, Ok(Methods::Write)));
        assert_eq!(resolved("/api/sites/docs/ignore"), (Family::Api, Ok(Methods::ReadWrite)));
        assert_eq!(resolved("/api/sites/docs/ignore/3"), (Family::Api, Ok(Methods::Delete)));
        assert_eq!(resolved("/api/crawls/2/rescore"), (Family::Api, Ok(Methods::Write)));
        assert_eq!(resolved("/api/crawls/2/groups/ab/approve"), (Family::Api, Ok(Methods::Write)));
        assert!(Methods::Delete.allow(&Method::DELETE) && !Methods::Delete.allow(&Method::GET));
        assert!(writes(&Method::DELETE) && writes(&Method::POST) && !writes(&Method::HEAD));
        assert_eq!(resolved("/api"), (Family::Api, Err(404)));
        assert_eq!(resolved("/api/sites/docs"), (Family::Api, Err(404)));
        assert_eq!(resolved("/artifacts/zz"), (Family::Artifact, Ok(Methods::Read)));
        assert_eq!(resolved("/artifacts/a/b"), (Family::Artifact, Err(404)));
        assert_eq!(resolved("/static/app.css"), (Family::Asset, Ok(Methods::Read)));
        assert_eq!(resolved("/static/nope.css"), (Family::Asset, Err(404)));
        assert_eq!(resolved("/metricsx"), (Family::Ui, Err(404)));
        assert!(Methods::Read.allow(&Method::HEAD) && !Methods::Read.allow(&Method::POST));
        assert!(Methods::ReadWrite.allow(&Method::POST) && !Methods::Write.allow(&Method::GET));
    }
}
