//! HTTP server (warp): review UI, JSON API, artifacts by hash, `/metrics` and `/healthz`, on one listener.
//!
//! `/metrics`, `/healthz` and `/demo/` are warp filters here; everything else goes through one
//! catch-all filter into [`router::handle`] (plain request in, response out), which dispatches to
//! `api` (JSON), `ui` (HTML via `templates`), artifacts and `assets` (CSS/JS embedded in the binary).

mod api;
mod assets;
mod auth;
mod data;
mod error;
mod router;
mod templates;
pub mod textdiff;
mod ui;
mod upload;

pub use error::RequestError;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::Filter;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::scheduler::SchedulerHandle;
use crate::store::Store;

/// Errors of the web server.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Whether the browser side can take captures right now.
pub type BrowserProbe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Everything the handlers need.
#[derive(Clone)]
pub struct WebState {
    pub config: Arc<Config>,
    pub store: Store,
    pub metrics: Metrics,
    pub scheduler: SchedulerHandle,
    /// The write token (`Authorization: Bearer`), when one is configured.
    pub token: Option<String>,
    pub browser: BrowserProbe,
    /// The plugins of the configured sites (uploads run them like crawls do).
    pub plugins: Option<Arc<crate::plugin::PluginHost>>,
}

/// Bind the listener (so callers learn the real address, e.g. with port 0).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, WebError> {
    TcpListener::bind(addr).await.map_err(|source| WebError::Bind { addr, source })
}

/// Serve until `cancel` fires, then finish in-flight requests and return.
pub async fn serve(state: WebState, listener: TcpListener, cancel: CancellationToken) {
    let routes = routes(state);
    warp::serve(routes).incoming(listener).graceful(cancel.cancelled_owned()).run().await;
}

fn with_state(
    state: WebState,
) -> impl Filter<Extract = (WebState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// All routes.
pub fn routes(
    state: WebState,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let demo_dir = state.config.server.demo_dir.clone();
    let metrics = warp::path!("metrics").and(warp::get()).and(with_state(state.clone())).then(
        |s: WebState| async move {
            // The review-pending gauge is recomputed from the store, so it is right whoever reviewed.
            let st = s.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || data::refresh_review_pending(&st)).await {
                tracing::warn!(error = %e, "cannot refresh the review-pending gauge");
            }
            match s.metrics.render() {
                Ok(text) => warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4")
                    .into_response(),
                Err(e) => {
                    tracing::error!(error = %e, "rendering metrics failed");
                    warp::reply::with_status(
                        "metrics unavailable",
                        warp::http::StatusCode::INTERNAL_SERVER_ERROR,
                    )
                    .into_response()
                }
            }
        },
    );
    let healthz = warp::path!("healthz").and(warp::get()).and(with_state(state.clone())).then(
        |s: WebState| async move {
            let store = s.store.clone();
            let store_ok =
                tokio::task::spawn_blocking(move || store.site_names().is_ok()).await.unwrap_or(false);
            let browser_ok = (s.browser)().await;
            let body =
                serde_json::json!({ "store": store_ok, "browser": browser_ok, "ok": store_ok && browser_ok });
            let code = if store_ok && browser_ok {
                warp::http::StatusCode::OK
            } else {
                warp::http::StatusCode::SERVICE_UNAVAILABLE
            };
            warp::reply::with_status(warp::reply::json(&body), code)
        },
    );
    metrics.or(healthz).or(demo_site(&demo_dir)).or(app(state))
}

/// The catch-all filter: UI, API, artifacts and static assets.
fn app(state: WebState) -> impl Filter<Extract = (router::Response,), Error = warp::Rejection> + Clone {
    let app = Arc::new(router::App::new(state));
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(move |method: warp::http::Method, path: warp::path::FullPath, query: String, headers, body| {
            let app = app.clone();
            async move {
                let body = if method == warp::http::Method::POST {
                    // Uploads may be large, but only once the token checks out.
                    let limit =
                        if upload::is_upload_path(path.as_str()) && app.auth.check_bearer(&headers).is_ok() {
                            upload::MAX_UPLOAD_BODY_BYTES
                        } else {
                            router::MAX_BODY_BYTES
                        };
                    read_body(body, limit).await
                } else {
                    Ok(Vec::new())
                };
                let req = router::Request { method, path: path.as_str().to_string(), query, headers, body };
                router::handle(app, req).await
            }
        })
}

/// Read a request body, refusing more than `limit` bytes.
async fn read_body<S, B>(body: S, limit: usize) -> Result<Vec<u8>, RequestError>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| RequestError::bad_request(format!("cannot read the body: {e}")))?;
        if out.len() + chunk.remaining() > limit {
            return Err(RequestError::PayloadTooLarge { limit });
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

use warp::Reply;
