//! The JSON API's handlers (design contract): sites, crawls with their pages, and the writes (start
//! a crawl, approve/reject a crawl, approve a page, restore an older crawl or page). Routing, methods
//! and the write checks (bearer token, same origin, body size) are `routes`' job.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;

use super::app::App;
use super::data::{blocking, ApiCrawl, PageFilter, PageSummary};
use super::error::RequestError;
use super::http::{json, Request, Response};
use super::rescoring::NewArea;
use crate::review::Verdict;
use crate::store::{CrawlRecord, CrawlStatus};

/// Pages per `GET /api/crawls/{id}` unless `limit` says otherwise.
pub const DEFAULT_PAGE_LIMIT: usize = 1000;
/// The largest `limit` honoured.
pub const MAX_PAGE_LIMIT: usize = 10_000;
/// The longest `wait` of `GET /api/crawls/{id}/progress`, in seconds (shorter than the server's
/// shutdown grace, so a stopping daemon never waits on a long poll).
pub const MAX_PROGRESS_WAIT_SECS: usize = 8;

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

/// `GET /api/crawls/{id}/progress[?wait=SECS&since=VERSION]`: how far the crawl has got. With
/// `wait`, a long poll: answered as soon as the crawl is over or anything moved since `since` (the
/// `version` of the previous answer), else after `wait` seconds (at most
/// [`MAX_PROGRESS_WAIT_SECS`]).
pub async fn progress(app: &Arc<App>, req: &Request, id: u64) -> Result<Response, RequestError> {
    let q = req.query_params();
    let wait = parse_usize(&q, "wait", 0)?.min(MAX_PROGRESS_WAIT_SECS);
    let since = match q.get("since") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| RequestError::bad_request(format!("since must be a number, not {v:?}")))?,
        ),
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait as u64);
    let mut changes = app.state.scheduler.watch_progress();
    loop {
        let version = *changes.borrow_and_update();
        let a = app.clone();
        let crawl = blocking("reading a crawl", move || a.catalog.crawl(id)).await?;
        let running = is_running(app, &crawl);
        let moved = since.is_none_or(|s| s != version);
        if !running || moved || tokio::time::Instant::now() >= deadline {
            return Ok(json(StatusCode::OK, &progress_body(app, &crawl, version)));
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) | Err(_) => {}
            // The scheduler is gone (the daemon is stopping): answer now.
            Ok(Err(_)) => return Ok(json(StatusCode::OK, &progress_body(app, &crawl, version))),
        }
    }
}

/// Running until its record is final *and* the scheduler has let go of its site (so a crawl
/// triggered right after the answer is not refused as already running).
fn is_running(app: &App, crawl: &CrawlRecord) -> bool {
    crawl.status == CrawlStatus::Running || app.state.scheduler.progress(crawl.id).is_some()
}

fn progress_body(app: &App, crawl: &CrawlRecord, version: u64) -> serde_json::Value {
    let running = is_running(app, crawl);
    let c = &crawl.counts;
    let p = if crawl.status == CrawlStatus::Running {
        app.state.scheduler.progress(crawl.id).unwrap_or_default()
    } else {
        crate::scheduler::CrawlProgress {
            done: c.pages,
            discovered: c.pages,
            changed: c.changed + c.added + c.removed,
            failed: c.failed,
        }
    };
    serde_json::json!({
        "crawl": crawl.id,
        "site": crawl.site,
        "kind": crawl.kind,
        "status": crawl.status.as_str(),
        "running": running,
        "done": p.done,
        "discovered": p.discovered,
        "changed": p.changed,
        "failed": p.failed,
        "version": version,
    })
}

/// `GET /api/crawls/{id}/records`: the crawl's record and all its page records as stored, for
/// `sitediff --server` (its reports and exit code are computed from them, as locally).
pub async fn records(app: &Arc<App>, id: u64) -> Result<Response, RequestError> {
    let a = app.clone();
    let (crawl, pages) = blocking("reading a crawl's records", move || {
        let crawl = a.catalog.crawl(id)?;
        let pages = a.state.store.pages(id)?;
        Ok((crawl, pages))
    })
    .await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "crawl": crawl, "pages": pages })))
}

/// The body of `POST /api/pairs`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PairRequest {
    base: String,
    head: String,
    site: Option<String>,
}

/// `POST /api/pairs` with `{"base", "head", "site"?}`: start a Pair Diff of two prefixes, both
/// under `server.pair_prefixes` (else 403 with the reason); 202 with the crawl.
pub async fn pair(app: &Arc<App>, req: &Request) -> Result<Response, RequestError> {
    req.check_body()?;
    let body = req.body.as_deref().unwrap_or_default();
    let pr: PairRequest = serde_json::from_slice(body).map_err(|e| {
        RequestError::bad_request(format!("send JSON {{\"base\": URL, \"head\": URL, \"site\": NAME?}}: {e}"))
    })?;
    let cfg = app.state.scheduler.config();
    let site = crate::pair::pair_site(&cfg, pr.site.as_deref(), &pr.head, &pr.base)
        .map_err(|e| RequestError::bad_request(crate::errors::chain(&e)))?;
    crate::pair::check_allowed(&site, &cfg.server.pair_prefixes)
        .map_err(|e| RequestError::forbidden(e.to_string()))?;
    let name = site.name.clone();
    let base = site.compare_to.as_ref().map(|u| u.to_string());
    let head = site.scope.prefix().to_string();
    let crawl = app.trigger_site(site).await?;
    let body = serde_json::json!({
        "site": name,
        "crawl": crawl,
        "status": "started",
        "head": head,
        "base": base,
        "url": format!("/api/crawls/{crawl}"),
    });
    Ok(json(StatusCode::ACCEPTED, &body))
}

/// What `POST /api/backup` takes.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupRequest {
    /// Where the daemon writes the copy: an absolute path on its machine that does not exist yet.
    dest: std::path::PathBuf,
}

/// `POST /api/backup` with `{"dest": "/absolute/path"}`: a consistent copy of the store, written
/// by the daemon while crawls and approvals go on (see `Store::backup_to`), verified before it
/// gets its name.
pub async fn backup(app: &Arc<App>, req: &Request) -> Result<Response, RequestError> {
    let body = req.body.as_ref().map_err(RequestError::from)?;
    let b: BackupRequest = serde_json::from_slice(body).map_err(|e| {
        RequestError::bad_request(format!("the body must be {{\"dest\": \"/absolute/path\"}}: {e}"))
    })?;
    if !b.dest.is_absolute() {
        return Err(RequestError::bad_request("dest must be an absolute path"));
    }
    if b.dest.exists() {
        return Err(RequestError::bad_request(format!(
            "{} exists: a backup never overwrites",
            b.dest.display()
        )));
    }
    let store = app.state.store.clone();
    let allowed = match &app.state.config.server.backup_dirs {
        dirs if dirs.is_empty() => store.path().parent().map(Path::to_path_buf).into_iter().collect(),
        dirs => dirs.clone(),
    };
    let dest = b.dest.clone();
    blocking("checking the backup's destination", move || Ok(backup_destination_allowed(&dest, &allowed)))
        .await?
        .map_err(RequestError::forbidden)?;
    let dest = b.dest.clone();
    let started = std::time::Instant::now();
    let report = blocking("backing up the store", move || Ok(store.backup_to(&dest)?)).await?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(dest = %b.dest.display(), ?report, elapsed_ms, "store backed up");
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "dest": b.dest, "report": report, "elapsed_ms": elapsed_ms }),
    ))
}

/// Whether the daemon may write a backup at `dest`: its directory exists and, symbolic links and
/// `..` resolved, is one of `allowed` or inside one (`server.backup_dirs`, else the store's
/// directory). `Err` says why not.
fn backup_destination_allowed(dest: &Path, allowed: &[PathBuf]) -> Result<(), String> {
    let name_ok = dest.file_name().is_some_and(|n| n != ".." && n != ".");
    let dir =
        dest.parent().filter(|_| name_ok).ok_or_else(|| format!("{}: not a file path", dest.display()))?;
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    if allowed.iter().filter_map(|a| a.canonicalize().ok()).any(|a| dir.starts_with(&a)) {
        return Ok(());
    }
    let list: Vec<String> = allowed.iter().map(|a| a.display().to_string()).collect();
    Err(format!(
        "{} is outside the directories backups may be written to ({}): set server.backup_dirs",
        dest.display(),
        list.join(", ")
    ))
}

/// `POST /api/reload`: read the config file again (as SIGHUP does). 200 with what changed, or 422
/// with every problem while the previous config stays in use.
pub async fn reload(app: &Arc<App>) -> Result<Response, RequestError> {
    match crate::reload::reload(&app.state.scheduler, &app.state.metrics).await {
        Ok(summary) => Ok(json(StatusCode::OK, &serde_json::json!({ "reloaded": true, "summary": summary }))),
        Err(crate::reload::ReloadError::Invalid { problems }) => Ok(json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({ "reloaded": false, "problems": problems }),
        )),
        Err(e) => Err(RequestError::internal("reloading the config", e)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_go_only_into_the_allowed_directories() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("backups");
        let other = root.path().join("elsewhere");
        std::fs::create_dir_all(allowed.join("nightly")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let ok = |p: PathBuf| backup_destination_allowed(&p, std::slice::from_ref(&allowed));
        assert_eq!(ok(allowed.join("a.redb")), Ok(()));
        assert_eq!(ok(allowed.join("nightly/b.redb")), Ok(()), "a directory inside an allowed one");
        let err = ok(other.join("c.redb")).unwrap_err();
        assert!(err.contains("outside the directories") && err.contains("server.backup_dirs"), "{err}");
        assert!(ok(allowed.join("../elsewhere/d.redb")).is_err(), "'..' is resolved");
        assert!(ok(allowed.join("missing/e.redb")).unwrap_err().contains("missing"), "no such directory");
        assert!(ok(allowed.join("..")).is_err(), "not a file path");
        std::os::unix::fs::symlink(&other, allowed.join("link")).unwrap();
        assert!(ok(allowed.join("link/f.redb")).is_err(), "a symbolic link out of the directory");
        assert!(backup_destination_allowed(&allowed.join("g.redb"), &[]).is_err(), "nothing allowed");
    }
}
