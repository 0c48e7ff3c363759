//! What sitediff reads from a Selenium Grid's `GET /status`: its capacity (the slots of the nodes
//! that are up and can run Chrome, free or held by sessions of ours: the pool's size with
//! `browser.sessions = "auto"`) and the node running a session, whose own DevTools WebSocket is
//! connected to rather than the router's relay of it.

use std::collections::HashSet;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use super::devtools::{DevTools, Endpoint as DevToolsEndpoint};
use super::lock;

/// Timeout of one `GET /status` request.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// The browser our sessions ask for (`browserName` of a node slot's stereotype).
const BROWSER_NAME: &str = "chrome";
/// A node's `availability` when it takes new sessions.
const NODE_UP: &str = "UP";
/// How long connecting straight to a Grid node's DevTools may take before the router is used.
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What can go wrong asking a WebDriver endpoint for its capacity.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    #[error("cannot ask {url} for its slots: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot ask {endpoint} for its slots: bad URL: {source}")]
    Url {
        endpoint: String,
        #[source]
        source: url::ParseError,
    },
    #[error("cannot ask {url} for its slots: not JSON: {source}")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// The endpoint answers `/status` without a Grid's node list (a plain chromedriver).
    #[error("{url} lists no Grid nodes: not a Selenium Grid")]
    NotGrid { url: String },
}

/// The HTTP client for `/status` (bounded; no proxy, as for the WebDriver commands themselves).
pub fn status_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(STATUS_TIMEOUT).no_proxy().build()
}

/// How many sessions the Grid at `endpoint` can hold for us now: see [`usable_slots`].
pub async fn slots(
    http: &reqwest::Client,
    endpoint: &Url,
    ours: &HashSet<String>,
) -> Result<usize, GridError> {
    let status = status(http, endpoint).await?;
    usable_slots(&status, ours).ok_or_else(|| GridError::NotGrid { url: format!("{endpoint}status") })
}

/// The Grid at `endpoint`'s status: its `GET /status` answer.
async fn status(http: &reqwest::Client, endpoint: &Url) -> Result<Value, GridError> {
    let url = endpoint
        .join("status")
        .map_err(|source| GridError::Url { endpoint: endpoint.to_string(), source })?;
    let http_err = |source| GridError::Http { url: url.to_string(), source };
    let body = http.get(url.clone()).send().await.map_err(http_err)?.bytes().await.map_err(http_err)?;
    serde_json::from_slice(&body).map_err(|source| GridError::Json { url: url.to_string(), source })
}

/// The DevTools WebSocket of session `id` on the node that runs it, as the Grid at `endpoint`
/// lists its nodes (`None`: no node lists the session). A Grid's `se:cdp` goes through its router,
/// which relays every message (screenshots included) once more: the node serves the same
/// WebSocket itself.
pub async fn node_cdp(http: &reqwest::Client, endpoint: &Url, id: &str) -> Result<Option<Url>, GridError> {
    Ok(node_cdp_url(&status(http, endpoint).await?, id))
}

/// Of a Grid's `/status` answer: `ws(s)://<node>/session/<id>/se/cdp` of the node whose slots hold
/// session `id`.
pub fn node_cdp_url(status: &Value, id: &str) -> Option<Url> {
    let nodes = status.pointer("/value/nodes")?.as_array()?;
    let node = nodes.iter().find(|n| {
        n.get("slots")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|slot| slot.pointer("/session/sessionId").and_then(Value::as_str) == Some(id))
    })?;
    let mut url = Url::parse(node.get("uri")?.as_str()?).ok()?;
    let scheme = match url.scheme() {
        "http" => "ws",
        "https" => "wss",
        _ => return None,
    };
    url.set_scheme(scheme).ok()?;
    url.path_segments_mut().ok()?.pop_if_empty().extend(["session", id, "se", "cdp"]);
    Some(url)
}

/// Of a Grid's `/status` answer: the Chrome slots of nodes that are up, either free or running one
/// of `ours` (session ids). Slots other clients hold are not ours to count. `None` when the answer
/// lists no nodes at all (not a Grid).
pub fn usable_slots(status: &Value, ours: &HashSet<String>) -> Option<usize> {
    let nodes = status.pointer("/value/nodes")?.as_array()?;
    let usable = nodes
        .iter()
        .filter(|n| n.get("availability").and_then(Value::as_str) == Some(NODE_UP))
        .flat_map(|n| n.get("slots").and_then(Value::as_array).into_iter().flatten())
        .filter(|slot| {
            let browser = slot.pointer("/stereotype/browserName").and_then(Value::as_str);
            browser.is_none_or(|b| b == BROWSER_NAME)
        })
        .filter(|slot| match slot.get("session") {
            None | Some(Value::Null) => true,
            Some(s) => s.get("sessionId").and_then(Value::as_str).is_some_and(|id| ours.contains(id)),
        })
        .count();
    Some(usable)
}

/// Connect to a Grid node's own DevTools WebSocket `url` for page `target`, unless its node is in
/// `unreachable`; a node that cannot be reached within [`NODE_CONNECT_TIMEOUT`] is added there.
pub async fn connect_node(
    url: &Url,
    target: &str,
    unreachable: &StdMutex<HashSet<String>>,
    tasks: &TaskTracker,
    cancel: CancellationToken,
) -> Option<DevTools> {
    let node = url.origin().ascii_serialization();
    if lock(unreachable).contains(&node) {
        return None;
    }
    let connect = DevTools::connect(DevToolsEndpoint::Browser { url }, target, tasks, cancel);
    let reason = match tokio::time::timeout(NODE_CONNECT_TIMEOUT, connect).await {
        Ok(Ok(dt)) => return Some(dt),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no connection within {NODE_CONNECT_TIMEOUT:?}"),
    };
    tracing::info!(%node, %reason, "a Grid node's DevTools cannot be reached from here: its sessions go through the router");
    lock(unreachable).insert(node);
    None
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_node_that_fails_the_devtools_handshake_is_not_tried_again() {
        // A real listener that accepts and hangs up: the WebSocket handshake fails.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        let url = Url::parse(&format!("ws://127.0.0.1:{port}/session/abc/se/cdp")).unwrap();
        let unreachable = StdMutex::new(HashSet::new());
        let tasks = TaskTracker::new();
        let first = connect_node(&url, "T", &unreachable, &tasks, CancellationToken::new()).await;
        assert!(first.is_none());
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one attempt");
        assert!(lock(&unreachable).contains(&format!("ws://127.0.0.1:{port}")));
        let again = connect_node(&url, "T", &unreachable, &tasks, CancellationToken::new()).await;
        assert!(again.is_none());
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "a node that failed is not tried again");
    }

    #[test]
    fn the_node_holding_a_session_gives_its_own_devtools_url() {
        let node = |uri: &str, ids: &[&str]| {
            let slots: Vec<Value> = ids.iter().map(|id| json!({ "session": { "sessionId": id } })).collect();
            json!({ "uri": uri, "availability": "UP", "slots": slots })
        };
        let status = json!({ "value": { "nodes": [
            node("http://10.0.0.5:5555", &["a1"]),
            node("https://node-b.grid.svc:5555/", &["b1", "b2"]),
            node("http://node-c:5555/prefix", &["c1"]),
            node("file:///x", &["d1"]),
        ]}});
        let url = |id| node_cdp_url(&status, id).map(|u| u.to_string());
        assert_eq!(url("a1").as_deref(), Some("ws://10.0.0.5:5555/session/a1/se/cdp"));
        assert_eq!(url("b2").as_deref(), Some("wss://node-b.grid.svc:5555/session/b2/se/cdp"));
        assert_eq!(url("c1").as_deref(), Some("ws://node-c:5555/prefix/session/c1/se/cdp"));
        assert_eq!(url("d1"), None, "not an HTTP node");
        assert_eq!(url("zz"), None, "no node holds it");
        assert_eq!(node_cdp_url(&json!({ "value": { "ready": true } }), "a1"), None, "not a Grid");
    }

    #[test]
    fn free_and_own_chrome_slots_of_nodes_that_are_up_count() {
        let slot = |browser: &str, session: Option<&str>| {
            json!({
                "stereotype": { "browserName": browser },
                "session": session.map(|id| json!({ "sessionId": id })),
            })
        };
        let status = json!({ "value": { "ready": true, "nodes": [
            { "availability": "UP", "slots": [slot("chrome", None), slot("chrome", Some("mine"))] },
            { "availability": "UP", "slots": [slot("chrome", Some("theirs")), slot("firefox", None)] },
            { "availability": "DOWN", "slots": [slot("chrome", None), slot("chrome", None)] },
            { "availability": "DRAINING", "slots": [slot("chrome", None)] },
        ]}});
        let ours = HashSet::from(["mine".to_string()]);
        assert_eq!(usable_slots(&status, &ours), Some(2));
        assert_eq!(usable_slots(&status, &HashSet::new()), Some(1));
        let empty = json!({ "value": { "ready": false, "nodes": [] } });
        assert_eq!(usable_slots(&empty, &ours), Some(0), "a Grid without nodes has no slots");
        let chromedriver = json!({ "value": { "ready": true, "message": "ChromeDriver ready" } });
        assert_eq!(usable_slots(&chromedriver, &ours), None);
    }
}
