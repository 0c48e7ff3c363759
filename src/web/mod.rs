//! HTTP server (warp): review UI, JSON API, artifacts by hash, `/metrics` and `/healthz`, on one
//! listener.
//!
//! Layout, each module depending only on those listed before it (no module imports one that
//! imports it back):
//! - `access` (who may write, decided at start-up: fail closed), `hosts` (the host allow-list),
//!   `throttle` (wrong tokens per client), `error` (why a request failed, and its status), `http`
//!   (the plain request/response types, response builders, security headers, path segments),
//!   `state` (what the daemon hands over), `textdiff` (visible text and its line diff);
//! - `server` (the accept loop: connection cap, header timeout, Host check, graceful shutdown);
//! - `auth` (bearer token, sessions, CSRF, same origin, throttling), `data` (what the views show,
//!   read from the store with a listing cache), `assets` (embedded CSS/JS), `templates` (HTML);
//! - `app` (the state every handler gets, and the review actions of `crate::review` run off the
//!   async threads);
//! - `rescoring` (ignore areas, re-scores and change groups, as the web runs them);
//! - handlers: `api` (JSON), `ui` (HTML, sessions), `upload` (multipart screenshots), `artifacts`;
//! - `routes`: the one place that knows the routes (the route table, warp filters for `/metrics`,
//!   `/healthz`, `/demo/`), how each route family renders errors, and the body limits.

mod access;
mod api;
mod app;
mod artifacts;
mod assets;
mod auth;
mod data;
mod error;
mod hosts;
mod http;
mod rescoring;
mod routes;
mod server;
mod state;
mod templates;
pub mod textdiff;
mod throttle;
mod ui;
mod upload;

pub use access::{AccessError, WriteAccess};
pub use error::RequestError;
pub use hosts::HostPolicy;
pub use server::SHUTDOWN_GRACE;
pub use state::{BrowserProbe, WebState};

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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

/// Bind the listener (so callers learn the real address, e.g. with port 0).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, WebError> {
    TcpListener::bind(addr).await.map_err(|source| WebError::Bind { addr, source })
}

/// Serve until `cancel` fires, then finish in-flight requests (within [`SHUTDOWN_GRACE`]) and
/// return. The limits, timeouts and allowed hosts come from `state.config.server`.
pub async fn serve(state: WebState, listener: TcpListener, cancel: CancellationToken) {
    let bound = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "the listener has no address: not serving");
            return;
        }
    };
    let server_cfg = &state.config.server;
    let limits = server::Limits {
        max_connections: server_cfg.max_connections,
        header_timeout: server_cfg.header_timeout,
    };
    let app = Arc::new(app::App::new(state.clone(), bound));
    let hosts = app.auth.hosts().clone();
    let service = warp::service(routes::routes(app));
    let handler: server::Handler = Arc::new(move |req| {
        let mut service = service.clone();
        Box::pin(async move {
            match tower_service::Service::call(&mut service, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        })
    });
    server::run(handler, listener, hosts, limits, cancel).await;
}
