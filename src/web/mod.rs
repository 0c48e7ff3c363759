//! HTTP server (warp): review UI, JSON API, artifacts by hash, `/metrics` and `/healthz`, on one listener.

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
    let metrics =
        warp::path!("metrics").and(warp::get()).and(with_state(state.clone())).map(|s: WebState| {
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
        });
    let healthz =
        warp::path!("healthz").and(warp::get()).and(with_state(state)).then(|s: WebState| async move {
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
        });
    metrics.or(healthz).or(demo_site(&demo_dir))
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
