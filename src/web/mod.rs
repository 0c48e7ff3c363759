//! HTTP server (warp): review UI, JSON API, artifacts by hash, `/metrics` and `/healthz`, on one
//! listener.
//!
//! Layout, each module depending only on those listed before it (no module imports one that
//! imports it back):
//! - `error` (why a request failed, and its status), `http` (the plain request/response types,
//!   response builders, security headers, path segments), `state` (what the daemon hands over),
//!   `textdiff` (visible text and its line diff);
//! - `auth` (bearer token, sessions, CSRF, same origin), `data` (what the views show, read from
//!   the store with a listing cache), `assets` (embedded CSS/JS), `templates` (HTML);
//! - `app` (the state every handler gets, and the review actions of `crate::review` run off the
//!   async threads);
//! - handlers: `api` (JSON), `ui` (HTML, sessions), `upload` (multipart screenshots), `artifacts`;
//! - `routes`: the one place that knows the routes (the route table, warp filters for `/metrics`,
//!   `/healthz`, `/demo/`), how each route family renders errors, and the body limits.

mod api;
mod app;
mod artifacts;
mod assets;
mod auth;
mod data;
mod error;
mod http;
mod routes;
mod state;
mod templates;
pub mod textdiff;
mod ui;
mod upload;

pub use error::RequestError;
pub use routes::routes;
pub use state::{BrowserProbe, WebState};

use std::net::SocketAddr;

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

/// Serve until `cancel` fires, then finish in-flight requests and return.
pub async fn serve(state: WebState, listener: TcpListener, cancel: CancellationToken) {
    warp::serve(routes(state)).incoming(listener).graceful(cancel.cancelled_owned()).run().await;
}
