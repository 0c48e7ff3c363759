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
use super::rescoring::NewArea;
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

/// `POST /api/sites/{site}/crawl`: 202 once the crawl is started (recorded, running or waiting
/// for a slot), with its id.
pub async fn trigger(app: &App, site: &str) -> Result<Response, RequestError> {
    let crawl = app.trigger(site).await?;
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

/// `GET /api/sites/{site}/ignore`: the site's ignore areas, configured and stored.
pub async fn ignore_areas(app: &Arc<App>, site: String) -> Result<Response, RequestError> {
    let areas = app.ignore_areas(site.clone()).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "site": site, "areas": areas })))
}

/// `POST /api/sites/{site}/ignore` with `{key, x, y, w, h[, by]}`: 201 with the stored area and
/// the re-score of the site's current crawl.
pub async fn add_ignore(app: &Arc<App>, req: &Request, site: String) -> Result<Response, RequestError> {
    let body = req.body.as_ref().map_err(RequestError::from)?;
    let area: NewArea = serde_json::from_slice(body)
        .map_err(|e| RequestError::bad_request(format!("ignore area: {e} (send {{key, x, y, w, h}})")))?;
    let done = app.add_ignore_area(site, area, "api").await?;
    Ok(json(StatusCode::CREATED, &done))
}

/// `DELETE /api/sites/{site}/ignore/{id}`: the removed area and the re-score.
pub async fn remove_ignore(app: &Arc<App>, site: String, id: u64) -> Result<Response, RequestError> {
    let done = app.remove_ignore_area(site, id).await?;
    Ok(json(StatusCode::OK, &done))
}

/// `POST /api/crawls/{id}/rescore`: compare the crawl's pages again from the stored images.
pub async fn rescore(app: &Arc<App>, id: u64) -> Result<Response, RequestError> {
    let done = app.rescore(id).await?;
    Ok(json(StatusCode::OK, &done))
}

/// `GET /api/crawls/{id}/groups`: the crawl's change groups, biggest first.
pub async fn groups(app: &Arc<App>, id: u64) -> Result<Response, RequestError> {
    let groups = app.groups(id).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "crawl": id, "groups": groups })))
}

/// `POST /api/crawls/{id}/groups/{group}/approve`: the crawl afterwards and the pages approved.
pub async fn approve_group(app: &Arc<App>, id: u64, group: String) -> Result<Response, RequestError> {
    let done = app.approve_group(id, group).await?;
    let body = serde_json::json!({
        "crawl": ApiCrawl::from(done.crawl),
        "group": done.group,
        "approved": done.approved,
    });
    Ok(json(StatusCode::OK, &body))
}
