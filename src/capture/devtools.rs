//! A direct DevTools (CDP) connection to the page a WebDriver session drives: the per-page hot
//! path (navigation, page scripts, screenshots) without chromedriver (or a Grid) relaying and
//! re-encoding every command. WebDriver still opens, probes and closes the session.
//!
//! Two ways in ([`Endpoint`]): the page's own WebSocket on a browser of this machine (a loopback
//! `goog:chromeOptions.debuggerAddress`, as sessions of a chromedriver we spawned report), or a
//! browser-wide DevTools WebSocket such as the `se:cdp` a Selenium Grid proxies to its node's
//! browser, over which the page is attached to as a flat session (every command and event then
//! carries its `sessionId`). What chromedriver did for us on the WebDriver path is done here: JavaScript dialogs
//! are dismissed as they open (`beforeunload` ones accepted, so a navigation is never held),
//! navigations are awaited until the main frame stops loading, scripts wait for a pending
//! navigation first, and a crashed or closed page fails every waiting command at once.
//! The connection also carries the page's request events: with a site's extra headers or
//! credentials set ([`DevTools::intercept`]), every request is paused and answered here, so only
//! the site's own origin gets them (see `intercept`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fingerprint::{Observed, Recorder};
use super::intercept::{self, SiteRequests};
use super::lock;

/// Largest DevTools message accepted: a full-page PNG of the tallest, widest page, in base64.
const MAX_MESSAGE_BYTES: usize = 1 << 30;
/// Bound on connecting, on the set-up commands and on stopping a load that timed out.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong on a page's DevTools connection. Messages from the browser (protocol errors,
/// failed navigations, script exceptions) arrive as text: no error value to keep.
#[derive(Debug, thiserror::Error)]
pub enum DevToolsError {
    #[error("cannot connect to DevTools at {address}: not a loopback address")]
    NotLoopback { address: String },
    /// The browser-wide connection could not attach to the session's page.
    #[error("cannot attach to page {target} over DevTools at {address}: {reason}")]
    Attach { address: String, target: String, reason: String },
    #[error("cannot connect to DevTools at {address}: no answer within {timeout:?}")]
    ConnectTimeout { address: String, timeout: Duration },
    #[error("cannot connect to DevTools at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: Box<tungstenite::Error>,
    },
    #[error("DevTools {method}: {message}")]
    Protocol { method: String, message: String },
    #[error("DevTools {method}: no answer within {timeout:?}")]
    Timeout { method: String, timeout: Duration },
    /// The page crashed or was detached, or the connection was closed.
    #[error("the page's DevTools connection is gone: {reason}")]
    Gone { reason: String },
    /// The connection's socket failed (`op`: sending or receiving).
    #[error("the page's DevTools connection is gone: {op} failed: {source}")]
    Broken {
        op: &'static str,
        #[source]
        source: Arc<tungstenite::Error>,
    },
    #[error("navigation failed: {reason}")]
    Navigation { reason: String },
    #[error("{message}")]
    Script { message: String },
    #[error("the page started another navigation")]
    Navigated,
}

impl DevToolsError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, DevToolsError::Timeout { .. })
    }

    /// The connection's task ended (its channels are closed).
    fn closed() -> DevToolsError {
        Ended::Closed.error()
    }
}

/// Why a page can no longer be driven (kept in the load state and handed to every waiter).
#[derive(Debug, Clone)]
enum Ended {
    Crashed,
    Detached(String),
    /// The connection was closed (by us or by the browser).
    Closed,
    /// The socket failed.
    Socket {
        op: &'static str,
        error: Arc<tungstenite::Error>,
    },
}

impl Ended {
    fn error(&self) -> DevToolsError {
        let gone = |reason: &str| DevToolsError::Gone { reason: reason.to_string() };
        match self {
            Ended::Crashed => gone("the page crashed"),
            Ended::Detached(why) => gone(&format!("detached ({why})")),
            Ended::Closed => gone("connection closed"),
            Ended::Socket { op, error } => DevToolsError::Broken { op, source: error.clone() },
        }
    }
}

/// How a page script hands back its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    /// The body `return`s its result (or a promise of it), like WebDriver "Execute Script".
    Sync,
    /// The body calls its last argument with the result, like WebDriver "Execute Async Script".
    Async,
}

/// The source URL our scripts run under (stack traces name it: the fingerprint script tells
/// sitediff's own clock reads from the page's by it).
pub const SCRIPT_URL: &str = "sitediff-script";

/// The expression that runs a WebDriver-style script body with `args` (`arguments` inside).
pub fn script_expression(body: &str, args: &[Value], kind: ScriptKind) -> String {
    let args = Value::Array(args.to_vec()).to_string();
    let source = format!("\n//# sourceURL={SCRIPT_URL}");
    match kind {
        ScriptKind::Sync => format!("(function () {{\n{body}\n}}).apply(window, {args}){source}"),
        ScriptKind::Async => format!(
            "new Promise((resolve) => {{ (function () {{\n{body}\n}}).apply(window, {args}.concat([resolve])); }}){source}"
        ),
    }
}

/// The main frame's loading state, as DevTools events report it.
#[derive(Debug, Clone, Default)]
struct LoadState {
    loading: bool,
    /// Times the main frame started loading.
    starts: u64,
    /// Times the main frame stopped loading.
    stops: u64,
    /// Why the page can no longer be driven (crashed, detached, connection closed or broken).
    gone: Option<Ended>,
}

impl LoadState {
    /// An error once the page can no longer be driven.
    fn drivable(&self) -> Result<(), DevToolsError> {
        match &self.gone {
            Some(ended) => Err(ended.error()),
            None => Ok(()),
        }
    }
}

type Reply = Result<Value, DevToolsError>;

#[derive(Debug)]
struct Shared {
    next_id: AtomicU64,
    pending: StdMutex<HashMap<u64, (String, oneshot::Sender<Reply>)>>,
    state: watch::Sender<LoadState>,
    /// The site whose headers and credentials paused requests get (on its origin only).
    site: StdMutex<Option<Arc<SiteRequests>>>,
    /// The page's `Network` events being recorded for a capture fingerprint, if any.
    network: StdMutex<Option<Recorder>>,
    /// Over a browser-wide connection: the flat session attached to the page (set once, right
    /// after attaching). Commands carry it; events of other sessions are not the page's.
    session: std::sync::OnceLock<String>,
}

impl Shared {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, oneshot::Sender<Reply>)>> {
        lock(&self.pending)
    }

    fn lock_site(&self) -> std::sync::MutexGuard<'_, Option<Arc<SiteRequests>>> {
        lock(&self.site)
    }

    fn lock_network(&self) -> std::sync::MutexGuard<'_, Option<Recorder>> {
        lock(&self.network)
    }

    /// A command of our own in answer to an event (its answer is not waited for).
    fn command(&self, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.message(id, method, params)
    }

    /// A command message, for the page's flat session when the connection is browser-wide.
    fn message(&self, id: u64, method: &str, params: Value) -> Value {
        match self.session.get() {
            Some(session) => json!({ "id": id, "method": method, "params": params, "sessionId": session }),
            None => json!({ "id": id, "method": method, "params": params }),
        }
    }

    /// The page can no longer be driven: fail every waiting command.
    fn gone(&self, ended: Ended) {
        self.state.send_modify(|s| {
            if s.gone.is_none() {
                s.gone = Some(ended.clone());
            }
        });
        let waiting: Vec<_> = self.lock_pending().drain().collect();
        for (_, (method, tx)) in waiting {
            if tx.send(Err(ended.error())).is_err() {
                tracing::warn!(method, "a DevTools command was given up while its page went away");
            }
        }
    }

    /// One message from the browser. Returns a command to send back (a dialog to dismiss, a paused
    /// request to continue, an auth challenge to answer).
    fn dispatch(&self, text: &str, main_frame: &str) -> Option<Value> {
        let mut msg = match serde_json::from_str::<Value>(text) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a DevTools message that is not JSON");
                return None;
            }
        };
        if let Some(id) = msg.get("id").and_then(Value::as_u64) {
            if let Some((method, tx)) = self.lock_pending().remove(&id) {
                // Moved out, not copied: a shot's answer is megabytes of base64.
                let reply = match msg.get("error") {
                    Some(e) => Err(DevToolsError::Protocol {
                        method,
                        message: e.get("message").and_then(Value::as_str).unwrap_or("error").to_string(),
                    }),
                    None => Ok(msg.get_mut("result").map(Value::take).unwrap_or(Value::Null)),
                };
                // The caller forgets its command when it stops waiting: a failed send is a race.
                if tx.send(reply).is_err() {
                    tracing::warn!(id, "a DevTools answer came as its command was given up");
                }
            }
            return None;
        }
        let params = msg.get_mut("params").map(Value::take).unwrap_or(Value::Null);
        let method = msg.get("method").and_then(Value::as_str).unwrap_or_default();
        if let Some(ours) = self.session.get() {
            match msg.get("sessionId").and_then(Value::as_str) {
                Some(s) if s == ours => {}
                // Browser-wide events: only the page's own end matters.
                None => {
                    let about_ours = params.get("sessionId").and_then(Value::as_str) == Some(ours)
                        || params.get("targetId").and_then(Value::as_str) == Some(main_frame);
                    match method {
                        "Target.detachedFromTarget" if about_ours => {
                            self.gone(Ended::Detached("detached from target".into()))
                        }
                        "Target.targetCrashed" if about_ours => self.gone(Ended::Crashed),
                        _ => {}
                    }
                    return None;
                }
                Some(_) => return None,
            }
        }
        let is_main = || params.get("frameId").and_then(Value::as_str) == Some(main_frame);
        match method {
            "Page.frameStartedLoading" if is_main() => self.state.send_modify(|s| {
                s.loading = true;
                s.starts += 1;
            }),
            "Page.frameStoppedLoading" if is_main() => self.state.send_modify(|s| {
                s.loading = false;
                s.stops += 1;
            }),
            "Page.javascriptDialogOpening" => {
                let leave = params.get("type").and_then(Value::as_str) == Some("beforeunload");
                return Some(self.command("Page.handleJavaScriptDialog", json!({ "accept": leave })));
            }
            // Every paused request is answered, whatever the site: it would hang otherwise.
            "Fetch.requestPaused" => {
                let answer = match self.lock_site().as_ref() {
                    Some(site) => site.continue_request(&params),
                    None => intercept::continue_unchanged(&params),
                };
                return Some(self.command("Fetch.continueRequest", answer));
            }
            "Fetch.authRequired" => {
                let answer = match self.lock_site().as_ref() {
                    Some(site) => site.continue_with_auth(&params),
                    None => intercept::default_auth(&params),
                };
                return Some(self.command("Fetch.continueWithAuth", answer));
            }
            m @ ("Network.requestWillBeSent" | "Network.responseReceived" | "Network.loadingFailed") => {
                if let Some(rec) = self.lock_network().as_mut() {
                    rec.event(m, &params);
                }
            }
            "Inspector.targetCrashed" => self.gone(Ended::Crashed),
            "Inspector.detached" => {
                let why = params.get("reason").and_then(Value::as_str).unwrap_or("detached");
                self.gone(Ended::Detached(why.to_string()));
            }
            _ => {}
        }
        None
    }
}

/// A DevTools connection to one page. Dropping it closes the connection.
#[derive(Debug)]
pub struct DevTools {
    tx: mpsc::UnboundedSender<Message>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl Drop for DevTools {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Where a page's DevTools are reached.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    /// The DevTools port (`host:port`, loopback only) of a browser on this machine: the page's
    /// own WebSocket.
    Local { address: &'a str },
    /// A browser-wide DevTools WebSocket (a Grid's `se:cdp`): the page is attached to over it.
    Browser { url: &'a url::Url },
}

/// Whether `address` (`host:port`) names this machine.
pub fn is_loopback(address: &str) -> bool {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl DevTools {
    /// Connect to page `target` of the browser whose DevTools listen on `address` (`host:port`,
    /// loopback only), and enable what the hot path needs. The connection's task runs on `tasks`
    /// until the connection is dropped, the page goes away or `cancel` fires.
    pub async fn connect(
        endpoint: Endpoint<'_>,
        target: &str,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<DevTools, DevToolsError> {
        let (url, address) = match endpoint {
            Endpoint::Local { address } => {
                if !is_loopback(address) {
                    return Err(DevToolsError::NotLoopback { address: address.to_string() });
                }
                (format!("ws://{address}/devtools/page/{target}"), address.to_string())
            }
            Endpoint::Browser { url } => (url.to_string(), url.to_string()),
        };
        let address = address.as_str();
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let connect = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true);
        let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| DevToolsError::ConnectTimeout {
                address: address.to_string(),
                timeout: CONNECT_TIMEOUT,
            })?
            .map_err(|e| DevToolsError::Connect { address: address.to_string(), source: Box::new(e) })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            next_id: AtomicU64::new(1),
            pending: StdMutex::new(HashMap::new()),
            state: watch::Sender::new(LoadState::default()),
            site: StdMutex::new(None),
            network: StdMutex::new(None),
            session: std::sync::OnceLock::new(),
        });
        let cancel = cancel.child_token();
        tasks.spawn(run_connection(ws, rx, shared.clone(), target.to_string(), cancel.clone()));
        let dt = DevTools { tx, shared, cancel };
        if let Endpoint::Browser { .. } = endpoint {
            dt.attach(address, target).await?;
        }
        for method in ["Page.enable", "Inspector.enable"] {
            dt.call(method, json!({}), CONNECT_TIMEOUT).await?;
        }
        Ok(dt)
    }

    /// Over a browser-wide connection: attach to page `target` as a flat session, which every
    /// later command then carries.
    async fn attach(&self, address: &str, target: &str) -> Result<(), DevToolsError> {
        let attach_err =
            |reason: String| DevToolsError::Attach { address: address.into(), target: target.into(), reason };
        let params = json!({ "targetId": target, "flatten": true });
        let v = self.call("Target.attachToTarget", params, CONNECT_TIMEOUT).await.map_err(|e| match e {
            DevToolsError::Protocol { message, .. } => attach_err(message),
            other => other,
        })?;
        let session = v.get("sessionId").and_then(Value::as_str).filter(|s| !s.is_empty());
        let session = session.ok_or_else(|| attach_err("no sessionId in the answer".into()))?;
        self.shared.session.set(session.to_string()).map_err(|_| attach_err("attached twice".into()))
    }

    /// One DevTools command, answered within `timeout`.
    pub async fn call(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, DevToolsError> {
        self.shared.state.borrow().drivable()?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        self.shared.lock_pending().insert(id, (method.to_string(), reply_tx));
        // Forget the command however this call ends (answered, timed out, or dropped mid-wait).
        let _forget = Forget { shared: &self.shared, id };
        let msg = self.shared.message(id, method, params).to_string();
        if self.tx.send(Message::text(msg)).is_err() {
            return Err(DevToolsError::closed());
        }
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(DevToolsError::closed()),
            Err(_) => Err(DevToolsError::Timeout { method: method.to_string(), timeout }),
        }
    }

    /// From now on give `site`'s extra headers and credentials to requests for its origin only
    /// (DevTools `Fetch` interception: every request paused and answered by this connection), or
    /// stop intercepting (`None`). The site is set before interception starts, so no request is
    /// ever answered without it.
    pub async fn intercept(&self, site: Option<SiteRequests>) -> Result<(), DevToolsError> {
        match site {
            Some(site) => {
                let params = site.enable_params();
                *self.shared.lock_site() = Some(Arc::new(site));
                self.call("Fetch.enable", params, CONNECT_TIMEOUT).await.map(|_| ())
            }
            None => {
                self.call("Fetch.disable", json!({}), CONNECT_TIMEOUT).await?;
                *self.shared.lock_site() = None;
                Ok(())
            }
        }
    }

    /// Start recording the page's `Network` events afresh (the domain must be enabled).
    pub fn record_network(&self) {
        *self.shared.lock_network() = Some(Recorder::default());
    }

    /// Stop recording and return what was recorded (`None`: nothing was being recorded).
    pub fn take_network(&self) -> Option<Vec<Observed>> {
        self.shared.lock_network().take().map(Recorder::finish)
    }

    /// What was recorded so far (recording goes on).
    pub fn peek_network(&self) -> Option<Vec<Observed>> {
        self.shared.lock_network().as_ref().map(|r| r.clone().finish())
    }

    /// One DevTools command on the current document: [`DevToolsError::Navigated`] instead if the
    /// page is loading or starts loading another document before the answer (a screenshot
    /// requested then would wait for a frame that never comes).
    pub async fn call_in_document(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, DevToolsError> {
        let mut state = self.shared.state.subscribe();
        let starts = {
            let s = state.borrow_and_update();
            if s.loading {
                return Err(DevToolsError::Navigated);
            }
            s.starts
        };
        tokio::select! {
            r = self.call(method, params, timeout) => r,
            s = state.wait_for(|s| s.starts > starts || s.gone.is_some()) => match s {
                Ok(s) => s.drivable().and(Err(DevToolsError::Navigated)),
                Err(_) => Err(DevToolsError::closed()),
            },
        }
    }

    /// Navigate the page to `url` and wait (within `timeout`) until its main frame stops loading,
    /// as WebDriver's normal page-load strategy does. A same-document navigation does not wait.
    pub async fn navigate(&self, url: &str, timeout: Duration) -> Result<(), DevToolsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut state = self.shared.state.subscribe();
        let stops_before = state.borrow_and_update().stops;
        let nav = self.call("Page.navigate", json!({ "url": url }), timeout).await?;
        if let Some(reason) = nav.get("errorText").and_then(Value::as_str).filter(|e| !e.is_empty()) {
            return Err(DevToolsError::Navigation { reason: reason.to_string() });
        }
        if nav.get("loaderId").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Ok(());
        }
        let loaded = self
            .wait_state(&mut state, deadline, "Page.navigate", timeout, |s| {
                s.stops > stops_before && !s.loading
            })
            .await;
        if loaded.as_ref().is_err_and(DevToolsError::is_timeout) {
            // As chromedriver does: the page is not left loading (and holding later commands).
            if let Err(e) = self.call("Page.stopLoading", json!({}), CONNECT_TIMEOUT).await {
                tracing::warn!(url, error = %e, "cannot stop a page load that timed out");
            }
        }
        loaded
    }

    /// Run a WebDriver-style script body in the page (main world) and return its JSON result.
    /// A navigation in progress is waited for first, as chromedriver does before every script.
    pub async fn run_script(
        &self,
        body: &str,
        args: &[Value],
        kind: ScriptKind,
        timeout: Duration,
    ) -> Result<Value, DevToolsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut state = self.shared.state.subscribe();
        self.wait_state(&mut state, deadline, "Runtime.evaluate", timeout, |s| !s.loading).await?;
        let params = json!({
            "expression": script_expression(body, args, kind),
            "awaitPromise": true,
            "returnByValue": true,
        });
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut v = self.call_in_document("Runtime.evaluate", params, left).await.map_err(|e| match e {
            DevToolsError::Timeout { method, .. } => DevToolsError::Timeout { method, timeout },
            other => other,
        })?;
        if let Some(ex) = v.get("exceptionDetails") {
            let message = ex
                .get("exception")
                .and_then(|e| e.get("description"))
                .and_then(Value::as_str)
                .or_else(|| ex.get("text").and_then(Value::as_str))
                .unwrap_or("script threw")
                .to_string();
            return Err(DevToolsError::Script { message });
        }
        Ok(v.get_mut("result").and_then(|r| r.get_mut("value")).map(Value::take).unwrap_or(Value::Null))
    }

    async fn wait_state(
        &self,
        state: &mut watch::Receiver<LoadState>,
        deadline: tokio::time::Instant,
        method: &str,
        timeout: Duration,
        done: impl Fn(&LoadState) -> bool,
    ) -> Result<(), DevToolsError> {
        let waited = tokio::time::timeout_at(deadline, state.wait_for(|s| s.gone.is_some() || done(s))).await;
        match waited {
            Err(_) => Err(DevToolsError::Timeout { method: method.to_string(), timeout }),
            Ok(Err(_)) => Err(DevToolsError::closed()),
            Ok(Ok(s)) => s.drivable(),
        }
    }
}

/// Removes a command's entry from the pending map when its call ends.
struct Forget<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.shared.lock_pending().remove(&self.id);
    }
}

/// The connection's task: sends queued commands, routes answers and events, and ends (failing
/// every waiting command) when the socket closes, the page goes away or `cancel` fires.
async fn run_connection<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    shared: Arc<Shared>,
    main_frame: String,
    cancel: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let broken = |op, e| Ended::Socket { op, error: Arc::new(e) };
    let ended = loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                if let Err(e) = sink.close().await {
                    tracing::debug!(error = %e, "closing a DevTools connection failed (the page may be gone)");
                }
                break Ended::Closed;
            }
            out = rx.recv() => match out {
                Some(m) => {
                    if let Err(e) = sink.send(m).await {
                        break broken("sending", e);
                    }
                }
                None => break Ended::Closed,
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Some(reply) = shared.dispatch(text.as_str(), &main_frame) {
                        if let Err(e) = sink.send(Message::text(reply.to_string())).await {
                            break broken("sending", e);
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None => break Ended::Closed,
                Some(Ok(_)) => {}
                Some(Err(e)) => break broken("receiving", e),
            },
        }
    };
    shared.gone(ended);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback("localhost:9222"));
        assert!(is_loopback("127.0.0.1:9222"));
        assert!(is_loopback("[::1]:9222"));
        assert!(!is_loopback("10.0.0.5:9222"));
        assert!(!is_loopback("grid-node:9222"));
    }

    #[test]
    fn script_expressions_pass_arguments_and_the_callback() {
        let sync = script_expression("return arguments[0] + 1;", &[json!(41)], ScriptKind::Sync);
        assert_eq!(
            sync,
            "(function () {\nreturn arguments[0] + 1;\n}).apply(window, [41])\n//# sourceURL=sitediff-script"
        );
        let asy = script_expression("arguments[1](arguments[0]);", &[json!("a\"b")], ScriptKind::Async);
        assert!(asy.starts_with("new Promise((resolve) => {"), "{asy}");
        assert!(asy.contains(".apply(window, [\"a\\\"b\"].concat([resolve]))"), "{asy}");
    }

    fn shared() -> Shared {
        Shared {
            next_id: AtomicU64::new(1),
            pending: StdMutex::new(HashMap::new()),
            state: watch::Sender::new(LoadState::default()),
            site: StdMutex::new(None),
            network: StdMutex::new(None),
            session: std::sync::OnceLock::new(),
        }
    }

    #[test]
    fn answers_events_and_dialogs_are_routed() {
        let s = shared();
        let (tx, mut rx) = oneshot::channel();
        s.lock_pending().insert(7, ("Page.navigate".into(), tx));
        assert!(s.dispatch(r#"{"id":7,"result":{"frameId":"F"}}"#, "F").is_none());
        assert_eq!(rx.try_recv().unwrap().unwrap(), json!({"frameId": "F"}));

        let (tx, mut rx) = oneshot::channel();
        s.lock_pending().insert(8, ("Runtime.evaluate".into(), tx));
        s.dispatch(r#"{"id":8,"error":{"code":-32000,"message":"Execution context was destroyed."}}"#, "F");
        let err = rx.try_recv().unwrap().unwrap_err();
        assert_eq!(err.to_string(), "DevTools Runtime.evaluate: Execution context was destroyed.");

        s.dispatch(r#"{"method":"Page.frameStartedLoading","params":{"frameId":"child"}}"#, "F");
        assert!(!s.state.borrow().loading, "a child frame is not the page");
        s.dispatch(r#"{"method":"Page.frameStartedLoading","params":{"frameId":"F"}}"#, "F");
        assert!(s.state.borrow().loading);
        s.dispatch(r#"{"method":"Page.frameStoppedLoading","params":{"frameId":"F"}}"#, "F");
        assert_eq!((s.state.borrow().loading, s.state.borrow().stops), (false, 1));

        let alert = s.dispatch(r#"{"method":"Page.javascriptDialogOpening","params":{"type":"alert"}}"#, "F");
        assert_eq!(alert.unwrap()["params"], json!({"accept": false}));
        let leave =
            s.dispatch(r#"{"method":"Page.javascriptDialogOpening","params":{"type":"beforeunload"}}"#, "F");
        assert_eq!(leave.unwrap()["params"], json!({"accept": true}));
    }

    #[test]
    fn paused_requests_and_auth_challenges_are_always_answered() {
        let s = shared();
        let paused = r#"{"method":"Fetch.requestPaused","params":{"requestId":"r","request":
            {"url":"http://127.0.0.1:8000/a","headers":{"Accept":"*/*"}}}}"#;
        let auth = r#"{"method":"Fetch.authRequired","params":{"requestId":"q","request":
            {"url":"http://127.0.0.1:8000/a","headers":{}},"authChallenge":
            {"source":"Server","origin":"http://127.0.0.1:8000","scheme":"basic","realm":"r"}}}"#;
        let cmd = s.dispatch(paused, "F").unwrap();
        assert_eq!(cmd["method"], "Fetch.continueRequest");
        assert_eq!(cmd["params"], json!({"requestId": "r"}), "no site: unchanged");
        let cmd = s.dispatch(auth, "F").unwrap();
        assert_eq!(cmd["method"], "Fetch.continueWithAuth");
        assert_eq!(cmd["params"]["authChallengeResponse"]["response"], "Default");

        let origin = url::Url::parse("http://127.0.0.1:8000/").unwrap().origin();
        let site =
            SiteRequests::new(origin, vec![("X-Env".into(), "s".into())], Some(("u".into(), "p".into())));
        *s.lock_site() = Some(Arc::new(site));
        let cmd = s.dispatch(paused, "F").unwrap();
        assert_eq!(cmd["params"]["headers"][1], json!({"name": "X-Env", "value": "s"}), "{cmd}");
        let cmd = s.dispatch(auth, "F").unwrap();
        assert_eq!(cmd["params"]["authChallengeResponse"]["response"], "ProvideCredentials");
    }

    #[test]
    fn a_browser_wide_connection_drives_only_its_flat_session() {
        let s = shared();
        s.session.set("S1".into()).unwrap();
        let cmd = s.command("Page.enable", json!({}));
        assert_eq!(cmd["sessionId"], "S1", "commands carry the page's session");
        s.dispatch(r#"{"method":"Page.frameStartedLoading","params":{"frameId":"F"},"sessionId":"S2"}"#, "F");
        s.dispatch(r#"{"method":"Page.frameStartedLoading","params":{"frameId":"F"}}"#, "F");
        assert!(!s.state.borrow().loading, "events of another session or of the browser are not the page's");
        s.dispatch(r#"{"method":"Page.frameStartedLoading","params":{"frameId":"F"},"sessionId":"S1"}"#, "F");
        assert!(s.state.borrow().loading);
        let alert = r#"{"method":"Page.javascriptDialogOpening","params":{"type":"alert"},"sessionId":"S1"}"#;
        assert_eq!(s.dispatch(alert, "F").unwrap()["sessionId"], "S1", "answers go to the page's session");
        let (tx, mut rx) = oneshot::channel();
        s.lock_pending().insert(4, ("Runtime.evaluate".into(), tx));
        s.dispatch(r#"{"method":"Target.detachedFromTarget","params":{"sessionId":"S2"}}"#, "F");
        assert!(s.state.borrow().drivable().is_ok(), "another session's end is not the page's");
        s.dispatch(r#"{"method":"Target.detachedFromTarget","params":{"sessionId":"S1"}}"#, "F");
        assert!(rx.try_recv().unwrap().is_err(), "the page's end fails waiting commands");
    }

    #[test]
    fn a_crash_fails_waiting_commands() {
        let s = shared();
        let (tx, mut rx) = oneshot::channel();
        s.lock_pending().insert(3, ("Runtime.evaluate".into(), tx));
        s.dispatch(r#"{"method":"Inspector.targetCrashed","params":{}}"#, "F");
        let err = rx.try_recv().unwrap().unwrap_err();
        assert_eq!(err.to_string(), "the page's DevTools connection is gone: the page crashed");
        assert_eq!(s.state.borrow().drivable().unwrap_err().to_string(), err.to_string());
    }
}
