//! The JSON API (design contract): sites, crawls with their pages, and the writes (start a crawl,
//! approve/reject a crawl, approve a page), which need the bearer token when one is configured.

use std::sync::Arc;

use serde::Serialize;
use warp::http::{Method, StatusCode};

use super::auth;
use super::data::{self, blocking, PageFilter, PageSummary};
use super::error::RequestError;
use super::router::{decode_segment, json, parse_id, App, Request, Response};
use crate::scheduler::TriggerOutcome;
use crate::store::{CrawlRecord, CrawlStatus, PageChange};

/// Pages per `GET /api/crawls/{id}` unless `limit` says otherwise.
pub const DEFAULT_PAGE_LIMIT: usize = 1000;
/// The largest `limit` honoured.
pub const MAX_PAGE_LIMIT: usize = 10_000;

/// The API's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Sites,
    SiteCrawls(String),
    TriggerCrawl(String),
    Upload(String),
    Crawl(u64),
    ApproveCrawl(u64),
    RejectCrawl(u64),
    ApprovePage(u64, String),
}

impl Route {
    fn parse(segs: &[&str]) -> Result<Route, RequestError> {
        Ok(match segs {
            ["sites"] => Route::Sites,
            ["sites", site, "crawls"] => Route::SiteCrawls(decode_segment(site)?),
            ["sites", site, "crawl"] => Route::TriggerCrawl(decode_segment(site)?),
            ["sites", site, "uploads"] => Route::Upload(decode_segment(site)?),
            ["crawls", id] => Route::Crawl(parse_id(id)?),
            ["crawls", id, "approve"] => Route::ApproveCrawl(parse_id(id)?),
            ["crawls", id, "reject"] => Route::RejectCrawl(parse_id(id)?),
            ["crawls", id, "pages", key, "approve"] => {
                Route::ApprovePage(parse_id(id)?, decode_segment(key)?)
            }
            _ => return Err(RequestError::not_found("API route")),
        })
    }

    fn method(&self) -> Method {
        match self {
            Route::Sites | Route::SiteCrawls(_) | Route::Crawl(_) => Method::GET,
            _ => Method::POST,
        }
    }
}

/// A crawl as the API shows it.
#[derive(Debug, Serialize)]
pub struct ApiCrawl {
    #[serde(flatten)]
    pub record: CrawlRecord,
    /// Waiting for a verdict (reviewing, with changed, new or failed pages).
    pub needs_review: bool,
}

impl From<CrawlRecord> for ApiCrawl {
    fn from(record: CrawlRecord) -> Self {
        ApiCrawl { needs_review: data::needs_review(&record), record }
    }
}

#[derive(Debug, Serialize)]
struct CrawlWithPages {
    crawl: ApiCrawl,
    filter: &'static str,
    total: usize,
    offset: usize,
    limit: usize,
    next_offset: Option<usize>,
    pages: Vec<PageSummary>,
}

/// Handle `/api/...` (segments after `api`).
pub async fn handle(app: &Arc<App>, req: &Request, segs: &[&str]) -> Result<Response, RequestError> {
    let route = Route::parse(segs)?;
    let allowed = route.method();
    let is_head = req.method == Method::HEAD && allowed == Method::GET;
    if req.method != allowed && !is_head {
        return Err(RequestError::MethodNotAllowed {
            method: req.method.to_string(),
            path: req.path.clone(),
        });
    }
    if allowed == Method::POST {
        if matches!(route, Route::Upload(_)) {
            // A refused upload says 401, whatever its size (its body was not read).
            app.auth.check_bearer(&req.headers)?;
        }
        req.check_body()?;
        auth::check_same_origin(&req.headers)?;
        app.auth.check_bearer(&req.headers)?;
    }
    let app = app.clone();
    match route {
        Route::Sites => {
            let a = app.clone();
            let sites = blocking("listing sites", move || a.catalog.sites(&a.state)).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "sites": sites })))
        }
        Route::SiteCrawls(site) => {
            let a = app.clone();
            let s = site.clone();
            let crawls = blocking("listing crawls", move || a.catalog.site_crawls(&a.state, &s)).await?;
            let crawls: Vec<ApiCrawl> = crawls.into_iter().map(ApiCrawl::from).collect();
            Ok(json(StatusCode::OK, &serde_json::json!({ "site": site, "crawls": crawls })))
        }
        Route::Crawl(id) => {
            let q = req.query_params();
            let filter = PageFilter::parse(q.get("filter").map(String::as_str).unwrap_or(""))?;
            let offset = parse_usize(&q, "offset", 0)?;
            let limit = parse_usize(&q, "limit", DEFAULT_PAGE_LIMIT)?.min(MAX_PAGE_LIMIT);
            let a = app.clone();
            let l = blocking("listing pages", move || a.catalog.listing(id, filter, offset, limit)).await?;
            let next = offset + l.pages.len();
            let body = CrawlWithPages {
                crawl: ApiCrawl::from(l.crawl),
                filter: filter.as_str(),
                total: l.total,
                offset,
                limit,
                next_offset: (next < l.total).then_some(next),
                pages: l.pages,
            };
            Ok(json(StatusCode::OK, &body))
        }
        Route::TriggerCrawl(site) => trigger(&app, &site).await,
        Route::Upload(site) => super::upload::handle(&app, req, &site).await,
        Route::ApproveCrawl(id) => {
            let rec = verdict(&app, id, Verdict::Approve).await?;
            Ok(json(StatusCode::OK, &ApiCrawl::from(rec)))
        }
        Route::RejectCrawl(id) => {
            let rec = verdict(&app, id, Verdict::Reject).await?;
            Ok(json(StatusCode::OK, &ApiCrawl::from(rec)))
        }
        Route::ApprovePage(id, key) => {
            let (page, crawl) = approve_page(&app, id, key).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "crawl": ApiCrawl::from(crawl), "page": page })))
        }
    }
}

fn parse_usize(
    q: &std::collections::HashMap<String, String>,
    name: &str,
    default: usize,
) -> Result<usize, RequestError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => {
            v.parse().map_err(|_| RequestError::bad_request(format!("{name} must be a number, not {v:?}")))
        }
    }
}

/// `POST /api/sites/{site}/crawl` (also used by the UI).
pub async fn trigger(app: &App, site: &str) -> Result<Response, RequestError> {
    let outcome = app
        .state
        .scheduler
        .trigger(site)
        .await
        .map_err(|e| RequestError::Unavailable { reason: e.to_string() })?;
    match outcome {
        TriggerOutcome::Started => {
            Ok(json(StatusCode::ACCEPTED, &serde_json::json!({ "site": site, "status": "started" })))
        }
        TriggerOutcome::AlreadyRunning => {
            Err(RequestError::Conflict { reason: format!("site {site:?} already has a crawl running") })
        }
        TriggerOutcome::UnknownSite => Err(RequestError::not_found(format!("site {site:?}"))),
        TriggerOutcome::ShuttingDown => {
            Err(RequestError::Unavailable { reason: "the daemon is shutting down".into() })
        }
    }
}

/// A crawl-level review decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
}

/// Approve or reject a whole crawl (API and UI).
pub async fn verdict(app: &Arc<App>, id: u64, v: Verdict) -> Result<CrawlRecord, RequestError> {
    let a = app.clone();
    blocking("recording a verdict", move || {
        let rec = match v {
            Verdict::Approve => a.state.store.approve_crawl(id)?,
            Verdict::Reject => a.state.store.reject_crawl(id)?,
        };
        a.catalog.invalidate(id);
        data::refresh_review_pending(&a.state)?;
        tracing::info!(crawl = id, site = %rec.site, verdict = ?v, "review verdict from the web");
        Ok(rec)
    })
    .await
}

/// Approve one page; when it was the last page of a reviewing crawl that needed a verdict (every
/// changed and new page approved, no failed page), the crawl itself becomes approved.
pub async fn approve_page(
    app: &Arc<App>,
    id: u64,
    key: String,
) -> Result<(PageSummary, CrawlRecord), RequestError> {
    let a = app.clone();
    blocking("approving a page", move || {
        let page = a.state.store.approve_page(id, &key)?;
        a.catalog.invalidate(id);
        let mut crawl = a.catalog.crawl(id)?;
        if crawl.status == CrawlStatus::Reviewing {
            let pages = a.state.store.pages(id)?;
            let settled = pages.iter().all(|p| match p.change {
                PageChange::Changed | PageChange::New | PageChange::Added | PageChange::Removed => p.approved,
                PageChange::Failed => false,
                PageChange::Unchanged => true,
            });
            if settled {
                crawl = a.state.store.approve_crawl(id)?;
                tracing::info!(crawl = id, site = %crawl.site, "last pending page approved: crawl approved");
            }
        }
        data::refresh_review_pending(&a.state)?;
        Ok((PageSummary::from(&page), crawl))
    })
    .await
}
