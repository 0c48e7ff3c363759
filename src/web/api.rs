//! The JSON API's handlers (design contract): sites, crawls with their pages, and the writes (start
//! a crawl, approve/reject a crawl, approve a page, restore an older crawl or page). Routing, methods
//! and the write checks (bearer token, same origin, body size) are `routes`' job.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;

use super::app::App;
use super::data::{blocking, ApiCrawl, PageFilter, PageSummary};
use super::error::RequestError;
use super::http::{json, Request, Response};
use crate::review::Verdict;

/// Pages per `GET /api/crawls/{id}` unless `limit` says otherwise.
pub const DEFAULT_PAGE_LIMIT: usize = 1000;
/// The largest `limit` honoured.
pub const MAX_PAGE_LIMIT: usize = 10_000;

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

/// `GET /api/sites`.
pub async fn sites(app: &Arc<App>) -> Result<Response, RequestError> {
    let a = app.clone();
    let sites = blocking("listing sites", move || a.catalog.sites(&a.state)).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "sites": sites })))
}

/// `GET /api/sites/{site}/crawls`.
pub async fn site_crawls(app: &Arc<App>, site: String) -> Result<Response, RequestError> {
    let a = app.clone();
    let s = site.clone();
    let crawls = blocking("listing crawls", move || a.catalog.site_crawls(&a.state, &s)).await?;
    let crawls: Vec<ApiCrawl> = crawls.into_iter().map(ApiCrawl::from).collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "site": site, "crawls": crawls })))
}

/// `GET /api/crawls/{id}[?filter=&offset=&limit=]`.
pub async fn crawl(app: &Arc<App>, req: &Request, id: u64) -> Result<Response, RequestError> {
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

fn parse_usize(q: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, RequestError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => {
            v.parse().map_err(|_| RequestError::bad_request(format!("{name} must be a number, not {v:?}")))
        }
    }
}

/// `POST /api/sites/{site}/crawl[?full=1]`: 202 once the crawl is started (recorded, running or
/// waiting for a slot), with its id. `full` renders every page (no approved capture reused).
pub async fn trigger(app: &App, site: &str, full: bool) -> Result<Response, RequestError> {
    let crawl = app.trigger(site, full).await?;
    let body = serde_json::json!({
        "site": site,
        "crawl": crawl,
        "status": "started",
        "url": format!("/api/crawls/{crawl}"),
    });
    Ok(json(StatusCode::ACCEPTED, &body))
}

/// `POST /api/crawls/{id}/approve` and `.../reject`: the crawl afterwards.
pub async fn verdict(app: &Arc<App>, id: u64, v: Verdict) -> Result<Response, RequestError> {
    let rec = app.verdict(id, v).await?;
    Ok(json(StatusCode::OK, &ApiCrawl::from(rec)))
}

/// `POST /api/crawls/{id}/pages/{key}/approve`: the page and its crawl afterwards.
pub async fn approve_page(app: &Arc<App>, id: u64, key: String) -> Result<Response, RequestError> {
    let done = app.approve_page(id, key).await?;
    let body =
        serde_json::json!({ "crawl": ApiCrawl::from(done.crawl), "page": PageSummary::from(&done.page) });
    Ok(json(StatusCode::OK, &body))
}

/// `POST /api/crawls/{id}/restore`: the crawl afterwards and the baselines that moved.
pub async fn restore(app: &Arc<App>, id: u64) -> Result<Response, RequestError> {
    let done = app.restore(id).await?;
    let body = serde_json::json!({ "crawl": ApiCrawl::from(done.crawl), "moved": done.moved });
    Ok(json(StatusCode::OK, &body))
}

/// `POST /api/crawls/{id}/pages/{key}/restore`: the page, its crawl and the baselines that moved.
pub async fn restore_page(app: &Arc<App>, id: u64, key: String) -> Result<Response, RequestError> {
    let done = app.restore_page(id, key).await?;
    let body = serde_json::json!({
        "crawl": ApiCrawl::from(done.crawl),
        "page": PageSummary::from(&done.page),
        "moved": done.moved,
    });
    Ok(json(StatusCode::OK, &body))
}
