//! The listener: sitediff's own accept loop over hyper's HTTP/1 connections, so that every
//! connection is bounded.
//!
//! - **Header timeout** (`server.header_timeout_ms`): a request's headers, and an idle keep-alive
//!   connection's next request, must arrive within it, or the connection is closed. Headers must
//!   fit in [`MAX_READ_BUFFER`] (else `431`).
//! - **Connection cap** (`server.max_connections`): past it, the oldest connection that has no
//!   request in progress (idle, or still sending its headers: what slowloris clients hold) is
//!   closed to make room; when every connection is busy with a request, the new one is closed.
//! - **Host allow-list** (see `hosts`): a request whose `Host` (or absolute target) is not one of
//!   ours gets `421 Misdirected Request` before any route sees it, `/metrics` and `/healthz` too.
//! - **Graceful shutdown**: on cancel, stop accepting, let in-flight requests finish (keep-alive
//!   connections close after their current response), and close what is left after
//!   [`SHUTDOWN_GRACE`].
//!
//! Each request carries its connection's [`Peer`] as a request extension. The request-body timeout
//! is applied where bodies are read (`routes`, `upload`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::http::{header, HeaderValue, StatusCode};
use warp::Reply;

use super::hosts::HostPolicy;
use super::http::Peer;

/// How long in-flight requests may take to finish once shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Accept failures are logged at most this often.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);
/// A connection's read buffer: request headers must fit (else 431), bodies are read in pieces of
/// at most this, so a connection holds at most this much of what its client sent.
const MAX_READ_BUFFER: usize = 64 * 1024;
/// Longest `Host` value quoted back in a 421 answer.
const MAX_QUOTED_HOST: usize = 100;

/// The response every request gets.
pub type Answer = warp::reply::Response;
/// What answers a request (the routes, as a function).
pub type Handler =
    Arc<dyn Fn(http::Request<Incoming>) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

/// The bounds every connection lives within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// One admitted connection's place in the table.
struct Slot {
    /// Requests of the connection in progress.
    busy: Arc<AtomicUsize>,
    /// Fired to close the connection to make room.
    evict: CancellationToken,
}

/// The connections being served, oldest first (ids grow).
struct Slots {
    max: usize,
    table: Mutex<(u64, BTreeMap<u64, Slot>)>,
}

/// A connection's claim on a slot, released on drop.
struct Admission {
    slots: Arc<Slots>,
    id: u64,
    busy: Arc<AtomicUsize>,
    evict: CancellationToken,
}

impl Slots {
    fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots { max: max.max(1), table: Mutex::new((0, BTreeMap::new())) })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Slot>)> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection: a free one, else the oldest idle connection's (which is told
    /// to close), else none. Also returns whether a connection was evicted.
    fn admit(self: &Arc<Self>) -> (Option<Admission>, bool) {
        let mut guard = self.table();
        let (next, table) = &mut *guard;
        let mut evicted = false;
        if table.len() >= self.max {
            let victim = table.iter().find(|(_, s)| s.busy.load(Ordering::Acquire) == 0).map(|(id, _)| *id);
            match victim.and_then(|id| table.remove(&id)) {
                Some(slot) => {
                    slot.evict.cancel();
                    evicted = true;
                }
                None => return (None, false),
            }
        }
        *next += 1;
        let (busy, evict) = (Arc::new(AtomicUsize::new(0)), CancellationToken::new());
        table.insert(*next, Slot { busy: busy.clone(), evict: evict.clone() });
        (Some(Admission { slots: self.clone(), id: *next, busy, evict }), evicted)
    }

    fn len(&self) -> usize {
        self.table().1.len()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.slots.table().1.remove(&self.id);
    }
}

/// Counts one request in progress while alive.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn start(counter: &Arc<AtomicUsize>) -> Busy {
        counter.fetch_add(1, Ordering::AcqRel);
        Busy(counter.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `Err(quoted host)` when the request's target authority or `Host` header is not one of ours (a
/// request naming neither is refused too: every browser sends `Host`).
fn check_host<B>(hosts: &HostPolicy, req: &http::Request<B>, local: IpAddr) -> Result<(), String> {
    let quote = |h: &str| format!("{:?}", h.chars().take(MAX_QUOTED_HOST).collect::<String>());
    let target = req.uri().authority().map(|a| a.as_str());
    if let Some(a) = target {
        if !hosts.allows_authority(a, Some(local)) {
            return Err(quote(a));
        }
    }
    match req.headers().get(header::HOST) {
        Some(v) => match v.to_str() {
            Ok(h) if hosts.allows_authority(h, Some(local)) => Ok(()),
            Ok(h) => Err(quote(h)),
            Err(_) => Err("(not text)".into()),
        },
        None if target.is_some() => Ok(()),
        None => Err("(none)".into()),
    }
}

/// `421 Misdirected Request` for a host that is not ours.
fn misdirected(quoted_host: &str) -> Answer {
    let body = format!(
        "421 misdirected request: this sitediff does not answer to the host {quoted_host}. \
         If that name is yours, add it to server.allowed_hosts.\n"
    );
    let mut r = warp::reply::with_status(body, StatusCode::MISDIRECTED_REQUEST).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Serve connections from `listener` until `cancel` fires, then shut down gracefully.
pub async fn run(
    handler: Handler,
    listener: TcpListener,
    hosts: HostPolicy,
    limits: Limits,
    cancel: CancellationToken,
) {
    let hosts = Arc::new(hosts);
    let slots = Slots::new(limits.max_connections);
    let tracker = TaskTracker::new();
    let force = CancellationToken::new();
    let mut last_accept_log: Option<Instant> = None;
    let mut evictions: u64 = 0;
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                if last_accept_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                    tracing::warn!(error = %e, "cannot accept a connection (retrying)");
                    last_accept_log = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(local) = stream.local_addr() else { continue };
        let (admission, evicted) = slots.admit();
        if evicted {
            evictions += 1;
            if evictions.is_power_of_two() {
                tracing::warn!(
                    evictions,
                    max_connections = limits.max_connections,
                    "connection limit reached: closing idle or half-sent connections to make room"
                );
            }
        }
        let Some(admission) = admission else {
            tracing::debug!(%remote, "connection refused: every connection is busy with a request");
            continue;
        };
        let conn =
            Connection { peer: Peer { remote, local }, handler: handler.clone(), hosts: hosts.clone() };
        tracker.spawn(conn.serve(stream, admission, limits, cancel.clone(), force.clone()));
    }
    drop(listener);
    tracker.close();
    let open = slots.len();
    tracing::info!(open, "web server stopping: no new connections; requests in progress finish");
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await.is_err() {
        tracing::warn!(open, "requests still open {SHUTDOWN_GRACE:?} after shutdown began: closing them");
        force.cancel();
        tracker.wait().await;
    }
}

/// One connection's request handling.
struct Connection {
    peer: Peer,
    handler: Handler,
    hosts: Arc<HostPolicy>,
}

impl Connection {
    async fn serve(
        self,
        stream: TcpStream,
        admission: Admission,
        limits: Limits,
        shutdown: CancellationToken,
        force: CancellationToken,
    ) {
        let Connection { peer, handler, hosts } = self;
        let busy = admission.busy.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let request = Busy::start(&busy);
            let (handler, hosts) = (handler.clone(), hosts.clone());
            async move {
                let _request = request;
                if let Err(host) = check_host(&hosts, &req, peer.local.ip()) {
                    tracing::debug!(host = %host, remote = %peer.remote, "421 for a host that is not ours");
                    return Ok::<_, Infallible>(misdirected(&host));
                }
                req.extensions_mut().insert(peer);
                Ok(handler(req).await)
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(MAX_READ_BUFFER);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => return log_end(r, &peer),
            _ = admission.evict.cancelled() => return,
            _ = shutdown.cancelled() => {}
        }
        conn.as_mut().graceful_shutdown();
        tokio::select! {
            r = conn.as_mut() => log_end(r, &peer),
            _ = force.cancelled() => {}
        }
    }
}

fn log_end(r: Result<(), hyper::Error>, peer: &Peer) {
    if let Err(e) = r {
        tracing::debug!(remote = %peer.remote, error = %e, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_the_oldest_idle_connection_makes_room() {
        let slots = Slots::new(2);
        let (a, _) = slots.admit();
        let (b, _) = slots.admit();
        let (a, b) = (a.unwrap(), b.unwrap());
        let busy_a = Busy::start(&a.busy);
        // a is busy, b idle: b goes.
        let (c, evicted) = slots.admit();
        assert!(evicted && b.evict.is_cancelled() && !a.evict.is_cancelled());
        drop(b);
        assert_eq!(slots.len(), 2, "the evicted slot was freed at once, its drop changes nothing");
        // a busy, c busy: nobody can go, the newcomer is refused.
        let c = c.unwrap();
        let busy_c = Busy::start(&c.busy);
        let (d, evicted) = slots.admit();
        assert!(d.is_none() && !evicted);
        drop((busy_a, busy_c));
        let (d, evicted) = slots.admit();
        assert!(d.is_some() && evicted && a.evict.is_cancelled(), "the oldest idle one (a) went");
        drop(c);
        assert_eq!(slots.len(), 1);
    }

    #[test]
    fn hosts_are_checked_on_target_and_header() {
        let hosts = HostPolicy::new("127.0.0.1:8080".parse().unwrap(), &[]);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let req = |uri: &str, host: Option<&str>| {
            let mut b = http::Request::builder().uri(uri);
            if let Some(h) = host {
                b = b.header("host", h);
            }
            b.body(()).unwrap()
        };
        assert!(check_host(&hosts, &req("/api/sites", Some("127.0.0.1:8080")), local).is_ok());
        assert!(check_host(&hosts, &req("/api/sites", Some("localhost:8080")), local).is_ok());
        assert_eq!(
            check_host(&hosts, &req("/api/sites", Some("rb.evil.example:8080")), local),
            Err("\"rb.evil.example:8080\"".into())
        );
        assert!(check_host(&hosts, &req("/", None), local).is_err(), "no Host at all");
        assert!(check_host(&hosts, &req("http://127.0.0.1:8080/", None), local).is_ok());
        assert!(check_host(&hosts, &req("http://evil.example:8080/", Some("127.0.0.1:8080")), local).is_err());
        assert!(check_host(&hosts, &req("http://127.0.0.1:8080/", Some("evil.example:8080")), local).is_err());
    }
}
