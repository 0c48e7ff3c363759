//! How a pool session gets its own DevTools connection (a Grid node's or router's `se:cdp`, or the
//! local browser's debugger address) and what the pool learns from it (the browser build and font
//! set that capture fingerprints are checked against).

use std::sync::atomic::Ordering;

use serde_json::{json, Value};
use url::Url;

use super::{BrowserPool, PROBE_TIMEOUT, SE_CDP};
use crate::capture::devtools::{DevTools, Endpoint as DevToolsEndpoint};
use crate::capture::fingerprint::{self, Environment};
use crate::capture::grid;
use crate::capture::lock;
use crate::capture::session::BrowserSession;

impl BrowserPool {
    /// Remember the browser build and font set of a session with its own DevTools connection (what
    /// capture fingerprints are checked against).
    pub(super) async fn note_environment(&self, session: &BrowserSession) {
        if !session.has_devtools() {
            return;
        }
        match session.cdp_cmd("Browser.getVersion", json!({})).await {
            Ok(v) => {
                let env = Environment {
                    browser: fingerprint::browser_build(&v),
                    fonts: fingerprint::system_fonts().await,
                };
                *lock(&self.inner.environment) = Some(env);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the browser version: no capture is reused"),
        }
    }

    /// Connect to the session's page over DevTools (see [`DevTools`]): a Grid's `se:cdp`
    /// WebSocket when the session offers one (the node's own when the Grid's `/status` names the
    /// node and it can be reached from here, else the router's), else its browser's loopback
    /// `debuggerAddress` when the browser runs on this machine (a chromedriver we spawned, or a
    /// WebDriver endpoint on loopback). Without it (nothing offered, a refused connection) pages
    /// go through WebDriver.
    pub(super) async fn with_devtools(
        &self,
        session: BrowserSession,
        endpoint: &Url,
        id: Option<&str>,
    ) -> BrowserSession {
        let caps = session.client.capabilities();
        let se_cdp = caps
            .and_then(|c| c.get(SE_CDP))
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "ws" | "wss"));
        let local = self.inner.driver_path.is_some()
            || endpoint.host_str().is_some_and(|h| crate::capture::devtools::is_loopback(&format!("{h}:0")));
        let address = caps
            .and_then(|c| c.get("goog:chromeOptions"))
            .and_then(|o| o.get("debuggerAddress"))
            .and_then(Value::as_str)
            .filter(|_| local)
            .map(str::to_string);
        if se_cdp.is_none() && address.is_none() {
            tracing::debug!("the session offers no DevTools connection; pages go through WebDriver");
            return session;
        }
        let target = match tokio::time::timeout(PROBE_TIMEOUT, session.client.window()).await {
            Ok(Ok(handle)) => String::from(handle),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "no window handle; pages go through chromedriver");
                return session;
            }
            Err(_) => {
                tracing::debug!("no window handle within {PROBE_TIMEOUT:?}; pages go through chromedriver");
                return session;
            }
        };
        let node = match (&se_cdp, id, self.inner.cfg.node_devtools) {
            (Some(_), Some(id), true) => self.node_devtools(endpoint, id, &target).await,
            _ => None,
        };
        let via_node = node.is_some();
        let connected = match node {
            Some(dt) => Ok(dt),
            None => {
                let devtools_endpoint = match (&se_cdp, &address) {
                    (Some(url), _) => DevToolsEndpoint::Browser { url },
                    (None, Some(address)) => DevToolsEndpoint::Local { address },
                    (None, None) => return session,
                };
                let (tasks, cancel) = (&self.inner.tasks, self.inner.cancel.clone());
                DevTools::connect(devtools_endpoint, &target, tasks, cancel).await
            }
        };
        match connected {
            Ok(dt) => {
                let c = &self.inner.counters;
                c.devtools_sessions.fetch_add(1, Ordering::Relaxed);
                if se_cdp.is_some() {
                    c.se_cdp_sessions.fetch_add(1, Ordering::Relaxed);
                }
                if via_node {
                    c.node_cdp_sessions.fetch_add(1, Ordering::Relaxed);
                }
                session.with_devtools(dt)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no direct DevTools connection; pages go through WebDriver");
                session
            }
        }
    }

    /// The DevTools connection of Grid session `id` (page `target`) straight to the node that runs
    /// it, skipping the router's relay of every message. `None` (the router's `se:cdp` is used)
    /// when the Grid does not name the node, or the node cannot be reached from here: such a node
    /// is not tried again.
    async fn node_devtools(&self, endpoint: &Url, id: &str, target: &str) -> Option<DevTools> {
        let http = grid::status_client().ok()?;
        let url = match tokio::time::timeout(PROBE_TIMEOUT, grid::node_cdp(&http, endpoint, id)).await {
            Ok(Ok(Some(url))) => url,
            Ok(Ok(None)) | Err(_) => return None,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "no node address from the Grid; DevTools through its router");
                return None;
            }
        };
        let inner = &self.inner;
        grid::connect_node(&url, target, &inner.unreachable_nodes, &inner.tasks, inner.cancel.clone()).await
    }
}
