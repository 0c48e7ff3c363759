//! The browser pool: a bounded set of WebDriver sessions (against a chromedriver we spawn or a
//! remote endpoint such as a Selenium Grid) that captures pages, replaces dead sessions, restarts
//! a dead chromedriver, recycles sessions after a number of pages and (`browser.sessions =
//! "auto"`) follows a Grid's capacity as its nodes come and go.

mod connect;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use fantoccini::error::NewSessionError;
use serde_json::{json, Value};
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use super::driver::{find_chromedriver, ChromeDriver};
use super::error::CaptureError;
use super::fingerprint::Environment;
use super::grid;
use super::lock;
use super::page::capture_page;
use super::session::{session_gone, BrowserSession, CommandError};
use super::types::{Capture, CaptureRequest, Capturer};
use crate::config::{BrowserConfig, Capacity, Transport, WebDriverEndpoint};

/// How many times a page is retried on a fresh session after its session died under it.
pub const MAX_PAGE_RETRIES: u32 = 2;
/// Where Debian installs Chromium's headless shell (package `chromium-headless-shell`): the same
/// Blink without the desktop browser around it, ~20% less CPU per capture. It renders pages like
/// `/usr/bin/chromium` (tested; only text in the generic `monospace` family and some symbol glyphs
/// are anti-aliased a little differently), so it is preferred when installed.
/// The binary itself: `/usr/bin/chromium-headless-shell` is a shell wrapper that does not `exec`,
/// so chromedriver would watch and signal the wrapper rather than the browser.
pub const HEADLESS_SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";
/// Where Debian installs Chromium (package `chromium`).
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// The Chromium binaries tried, in order, when `browser.chromium` is not set and sitediff spawns
/// chromedriver itself.
pub const CHROMIUM_CANDIDATES: &[&str] = &[HEADLESS_SHELL, DEFAULT_CHROMIUM];
/// Chromium flags: headless in a container, nothing phoning home, stable rendering.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--force-color-profile=srgb",
    "--mute-audio",
    "--disable-extensions",
    "--disable-default-apps",
    // Less background work (playwright's set): no back/forward cache for pages we never go back
    // to, no field trials, crash reporter, phishing detection or hang monitor.
    "--disable-back-forward-cache",
    "--disable-field-trial-config",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--disable-component-extensions-with-background-pages",
    "--disable-hang-monitor",
    "--metrics-recording-only",
    "--password-store=basic",
    // Frames only once everything is rastered, images decoded with the raster rather than
    // checkerboarded and filled in later, compositor animations on the main thread (they are
    // frozen anyway): fewer intermediate frames to draw (5-9% less CPU per capture in paired runs
    // here) and never a half-rastered frame.
    "--run-all-compositor-stages-before-draw",
    "--disable-checker-imaging",
    "--disable-threaded-animation",
];
/// How often a Grid's `/status` is asked for its slots (`browser.sessions = "auto"`).
const CAPACITY_POLL: Duration = Duration::from_secs(2);
/// How long a new remote session may take before an idle session of the pool is taken instead
/// (a normal start through a Grid takes a few seconds; longer means the request is queued).
const QUEUED_AFTER: Duration = Duration::from_secs(8);
/// How often the idle sessions are looked at meanwhile.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How often a remote session driven over DevTools is asked (through WebDriver) whether it exists.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// Bound on that question: no answer in time is no proof the session is gone (its node may be busy).
const WATCH_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause before trying a refused session request again (remote endpoints), doubled each time.
const SESSION_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Longest pause between two session requests.
const MAX_SESSION_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// The capability under which a Selenium Grid offers a session's browser-wide DevTools WebSocket.
const SE_CDP: &str = "se:cdp";
/// Bound on the liveness probe of a session that failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on closing one session.
const SESSION_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on waiting for background session closes at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Page used by the liveness probe (also stops whatever the old page was still loading).
const PROBE_URL: &str = "about:blank";

/// Counters about the pool's life, for logs, metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// WebDriver sessions opened.
    pub sessions_started: u64,
    /// Sessions closed because they died or failed their liveness probe.
    pub sessions_replaced: u64,
    /// Sessions closed after `recycle_after` pages.
    pub sessions_recycled: u64,
    /// chromedriver restarts after it died.
    pub driver_restarts: u64,
    /// Page attempts repeated on a fresh session.
    pub page_retries: u64,
    /// Sessions whose pages went over their own DevTools connection rather than through chromedriver.
    pub devtools_sessions: u64,
    /// Of those, sessions driven over a browser-wide DevTools WebSocket a Grid offered (`se:cdp`).
    pub se_cdp_sessions: u64,
    /// Of those, sessions whose `se:cdp` WebSocket was the node's own rather than the router's.
    pub node_cdp_sessions: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sessions_started: AtomicU64,
    sessions_replaced: AtomicU64,
    sessions_recycled: AtomicU64,
    driver_restarts: AtomicU64,
    page_retries: AtomicU64,
    devtools_sessions: AtomicU64,
    se_cdp_sessions: AtomicU64,
    node_cdp_sessions: AtomicU64,
}

/// The WebDriver endpoint in use; `generation` changes whenever chromedriver is restarted.
#[derive(Debug)]
struct Endpoint {
    url: Url,
    driver: Option<Arc<ChromeDriver>>,
    generation: u64,
}

#[derive(Debug)]
struct PooledSession {
    session: BrowserSession,
    pages: u32,
    generation: u64,
    /// The WebDriver session id (how a Grid's `/status` names the slot it holds).
    id: Option<String>,
}

#[derive(Debug)]
struct Inner {
    cfg: BrowserConfig,
    /// Resolved chromedriver binary (spawn mode).
    driver_path: Option<PathBuf>,
    cancel: CancellationToken,
    endpoint: Mutex<Endpoint>,
    /// Sessions not in use. Only touched briefly, never across an await.
    idle: StdMutex<Vec<PooledSession>>,
    /// One permit per session slot: the bounded queue captures wait in.
    slots: Semaphore,
    /// Permits `slots` was given in all (changes with a Grid's capacity).
    capacity: AtomicUsize,
    /// Ids of the sessions open now (a Grid's slots they hold are the pool's to count).
    ours: StdMutex<HashSet<String>>,
    closed: AtomicBool,
    /// The browser build and font set of the newest session with its own DevTools connection.
    environment: StdMutex<Option<Environment>>,
    /// Grid nodes (origins) whose own DevTools WebSocket could not be reached from here: their
    /// sessions use the router's `se:cdp`.
    unreachable_nodes: StdMutex<HashSet<String>>,
    /// Background session closes (awaited at shutdown).
    tasks: TaskTracker,
    counters: Counters,
}

/// A pool of WebDriver sessions implementing [`Capturer`]. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct BrowserPool {
    inner: Arc<Inner>,
}

impl BrowserPool {
    /// Start the pool: find and spawn chromedriver (spawn mode) and open a first session, so a
    /// broken browser setup fails here rather than on the first page. Further sessions (up to
    /// `cfg.sessions`) are opened on demand.
    pub async fn start(cfg: &BrowserConfig, cancel: CancellationToken) -> Result<BrowserPool, CaptureError> {
        let (driver_path, endpoint) = match &cfg.webdriver {
            WebDriverEndpoint::Spawn => {
                let path = find_chromedriver(cfg.chromedriver.as_deref())?;
                let driver = ChromeDriver::spawn(&path, &cancel).await?;
                let url = driver.url().clone();
                (Some(path), Endpoint { url, driver: Some(Arc::new(driver)), generation: 0 })
            }
            WebDriverEndpoint::Remote(url) => {
                (None, Endpoint { url: with_trailing_slash(url), driver: None, generation: 0 })
            }
        };
        let sessions = initial_capacity(cfg, &endpoint.url).await;
        let pool = BrowserPool {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                driver_path,
                cancel: cancel.child_token(),
                endpoint: Mutex::new(endpoint),
                idle: StdMutex::new(Vec::with_capacity(sessions)),
                slots: Semaphore::new(sessions),
                capacity: AtomicUsize::new(sessions),
                ours: StdMutex::new(HashSet::new()),
                closed: AtomicBool::new(false),
                environment: StdMutex::new(None),
                unreachable_nodes: StdMutex::new(HashSet::new()),
                tasks: TaskTracker::new(),
                counters: Counters::default(),
            }),
        };
        if cfg.capacity == Capacity::Auto && pool.inner.driver_path.is_none() {
            let follower = pool.clone();
            pool.inner.tasks.spawn(async move { follower.follow_capacity().await });
        }
        let first = match pool.inner.driver_path {
            Some(_) => pool.open_session().await,
            None => pool.open_remote_session().await,
        };
        match first {
            Ok(s) => {
                let binary = browser_binary(cfg, pool.inner.driver_path.is_some());
                let browser = binary
                    .map_or_else(|| "chosen by the WebDriver endpoint".into(), |b| b.display().to_string());
                tracing::info!(%browser, sessions, "browser ready");
                pool.inner.lock_idle().push(s)
            }
            Err(e) => {
                pool.shutdown().await;
                return Err(e);
            }
        }
        Ok(pool)
    }

    /// Close every session, stop chromedriver (if spawned) and refuse further captures.
    /// In-flight captures end with [`CaptureError::Cancelled`].
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::SeqCst);
        inner.cancel.cancel();
        inner.slots.close();
        let idle: Vec<PooledSession> = std::mem::take(&mut *inner.lock_idle());
        inner.lock_ours().clear();
        futures::future::join_all(idle.into_iter().map(|s| close_session(s.session))).await;
        inner.tasks.close();
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, inner.tasks.wait()).await.is_err() {
            tracing::warn!(
                "browser sessions still closing after {SHUTDOWN_TIMEOUT:?}; stopping chromedriver anyway"
            );
        }
        let driver = inner.endpoint.lock().await.driver.take();
        if let Some(d) = driver {
            d.shutdown().await;
        }
    }

    /// The pid of the chromedriver we spawned (spawn mode), if running.
    pub async fn driver_pid(&self) -> Option<u32> {
        self.inner.endpoint.lock().await.driver.as_ref().map(|d| d.pid())
    }

    /// The WebDriver endpoint in use.
    pub async fn endpoint_url(&self) -> Url {
        self.inner.endpoint.lock().await.url.clone()
    }

    /// Sessions the pool uses at once now (with `browser.sessions = "auto"`, follows the Grid).
    pub fn capacity(&self) -> usize {
        self.inner.capacity.load(Ordering::SeqCst)
    }

    /// `browser.sessions = "auto"` on a remote endpoint: ask its `/status` for its slots every
    /// [`CAPACITY_POLL`] and resize the pool to them (at least one, at most `browser.sessions`),
    /// until the pool shuts down.
    async fn follow_capacity(&self) {
        let inner = &self.inner;
        let http = match grid::status_client() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "no HTTP client for the Grid's /status; the pool keeps its size");
                return;
            }
        };
        let endpoint = inner.endpoint.lock().await.url.clone();
        loop {
            tokio::select! {
                _ = inner.cancel.cancelled() => return,
                _ = tokio::time::sleep(CAPACITY_POLL) => {}
            }
            let ours = inner.lock_ours().clone();
            match grid::slots(&http, &endpoint, &ours).await {
                Ok(slots) => self.resize(slots.clamp(1, inner.cfg.sessions.max(1))),
                Err(e) => tracing::debug!(error = %e, "no capacity from the Grid this time"),
            }
        }
    }

    /// Give the pool `target` session slots: more at once, fewer as slots are free to take back
    /// (captures in flight keep theirs; the rest is taken at the next poll).
    fn resize(&self, target: usize) {
        let inner = &self.inner;
        let current = inner.capacity.load(Ordering::SeqCst);
        if target > current {
            inner.slots.add_permits(target - current);
            inner.capacity.store(target, Ordering::SeqCst);
        } else if target < current {
            let taken = inner.slots.forget_permits(current - target);
            inner.capacity.store(current - taken, Ordering::SeqCst);
        } else {
            return;
        }
        tracing::info!(
            from = current,
            to = inner.capacity.load(Ordering::SeqCst),
            "browser pool resized to the Grid's slots"
        );
    }

    /// Counters since start.
    pub fn stats(&self) -> PoolStats {
        let c = &self.inner.counters;
        PoolStats {
            sessions_started: c.sessions_started.load(Ordering::Relaxed),
            sessions_replaced: c.sessions_replaced.load(Ordering::Relaxed),
            sessions_recycled: c.sessions_recycled.load(Ordering::Relaxed),
            driver_restarts: c.driver_restarts.load(Ordering::Relaxed),
            page_retries: c.page_retries.load(Ordering::Relaxed),
            devtools_sessions: c.devtools_sessions.load(Ordering::Relaxed),
            se_cdp_sessions: c.se_cdp_sessions.load(Ordering::Relaxed),
            node_cdp_sessions: c.node_cdp_sessions.load(Ordering::Relaxed),
        }
    }

    async fn capture_inner(&self, req: CaptureRequest) -> Result<Capture, CaptureError> {
        let inner = &self.inner;
        let mut last_err = None;
        for attempt in 0..=MAX_PAGE_RETRIES {
            if inner.closed.load(Ordering::SeqCst) {
                return Err(CaptureError::Closed);
            }
            if attempt > 0 {
                inner.counters.page_retries.fetch_add(1, Ordering::Relaxed);
            }
            let _permit = tokio::select! {
                _ = inner.cancel.cancelled() => return Err(self.stopped_error()),
                p = inner.slots.acquire() => p.map_err(|_| CaptureError::Closed)?,
            };
            let mut ps = match self.checkout().await {
                Ok(ps) => ps,
                Err(e) if attempt < MAX_PAGE_RETRIES && e.is_session_open() => {
                    tracing::warn!(site = %req.site, error = %e, "cannot open a session; retrying");
                    self.ensure_driver_answers().await?;
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let remote = inner.driver_path.is_none() && ps.session.has_devtools();
            let watched = remote.then(|| ps.session.client.clone());
            let result = tokio::select! {
                _ = inner.cancel.cancelled() => {
                    // The session is mid-command: drop it (fantoccini ends it in the background).
                    return Err(self.stopped_error());
                }
                r = capture_page(&mut ps.session, &req) => r,
                source = watch_remote(watched) => {
                    Err(CaptureError::SessionGone { url: req.url.to_string(), source })
                }
            };
            ps.pages = ps.pages.saturating_add(1);
            match result {
                Ok(c) => {
                    self.checkin(ps);
                    return Ok(c);
                }
                Err(e) if !e.session_is_suspect() => {
                    self.checkin(ps);
                    return Err(e);
                }
                Err(e) => {
                    if self.is_alive(&ps).await {
                        // The page's fault, not the session's.
                        self.checkin(ps);
                        return Err(e);
                    }
                    tracing::warn!(site = %req.site, url = %req.url, error = %e,
                        "browser session died; replacing it");
                    inner.counters.sessions_replaced.fetch_add(1, Ordering::Relaxed);
                    self.discard(ps);
                    self.ensure_driver_answers().await?;
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or(CaptureError::Closed))
    }

    fn stopped_error(&self) -> CaptureError {
        if self.inner.closed.load(Ordering::SeqCst) {
            CaptureError::Closed
        } else {
            CaptureError::Cancelled
        }
    }

    /// An idle session of the current driver generation, or a new one. A chromedriver that died
    /// is restarted first (killing its browsers): pages over DevTools would not notice its death,
    /// but its sessions could no longer be probed or closed.
    async fn checkout(&self) -> Result<PooledSession, CaptureError> {
        self.ensure_driver().await?;
        let generation = self.inner.endpoint.lock().await.generation;
        loop {
            let next = self.inner.lock_idle().pop();
            match next {
                Some(ps) if ps.generation == generation => return Ok(ps),
                Some(stale) => self.discard(stale),
                None => break,
            }
        }
        if self.inner.driver_path.is_some() {
            return self.open_session().await;
        }
        // A request the Grid queues (every slot busy: a node died, or other clients) is raced, after
        // a while, by the pool's own sessions coming back idle.
        tokio::select! {
            r = self.open_remote_session() => r,
            ps = self.idle_after(QUEUED_AFTER, generation) => Ok(ps),
        }
    }

    /// The first idle session of `generation` once `delay` has passed (polled).
    async fn idle_after(&self, delay: Duration, generation: u64) -> PooledSession {
        tokio::time::sleep(delay).await;
        loop {
            let next = self.inner.lock_idle().pop();
            match next {
                Some(ps) if ps.generation == generation => return ps,
                Some(stale) => self.discard(stale),
                None => tokio::time::sleep(IDLE_POLL).await,
            }
        }
    }

    /// A new session on a remote endpoint, trying again (with a growing pause) while the endpoint
    /// refuses quickly, within `browser.session_timeout_ms` in all: a Grid whose node just died
    /// keeps sending new sessions to it until its health check notices, and fails them at once.
    /// An endpoint that cannot be reached at all is not tried again here.
    async fn open_remote_session(&self) -> Result<PooledSession, CaptureError> {
        let started = tokio::time::Instant::now();
        let deadline = started + self.inner.cfg.session_timeout;
        let mut pause = SESSION_RETRY_PAUSE;
        loop {
            match self.open_session().await {
                // The endpoint answered and refused (not: could not be reached at all).
                Err(e @ CaptureError::Session { .. })
                    if e.is_refused_session() && tokio::time::Instant::now() + pause < deadline =>
                {
                    tracing::warn!(error = %e, ?pause, "cannot open a session; trying again");
                    tokio::select! {
                        _ = self.inner.cancel.cancelled() => return Err(self.stopped_error()),
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(MAX_SESSION_RETRY_PAUSE);
                }
                other => return other,
            }
        }
    }

    /// Put a session back, or close it when it has served `recycle_after` pages.
    fn checkin(&self, ps: PooledSession) {
        let inner = &self.inner;
        if inner.closed.load(Ordering::SeqCst) {
            self.discard(ps);
        } else if inner.cfg.recycle_after > 0 && ps.pages >= inner.cfg.recycle_after {
            inner.counters.sessions_recycled.fetch_add(1, Ordering::Relaxed);
            self.discard(ps);
        } else {
            inner.lock_idle().push(ps);
        }
    }

    /// Close a session in the background.
    fn discard(&self, ps: PooledSession) {
        if let Some(id) = &ps.id {
            self.inner.lock_ours().remove(id);
        }
        self.inner.tasks.spawn(close_session(ps.session));
    }

    /// Cheap liveness probe of a session that just failed: is chromedriver alive, and does the
    /// session still navigate (to `about:blank`, which also stops a hanging load; over the
    /// session's DevTools connection when it has one)?
    async fn is_alive(&self, ps: &PooledSession) -> bool {
        {
            let ep = self.inner.endpoint.lock().await;
            if ep.generation != ps.generation {
                return false;
            }
            if let Some(d) = &ep.driver {
                if !d.is_running() {
                    return false;
                }
            }
        }
        ps.session.navigates_to(PROBE_URL, PROBE_TIMEOUT).await
    }

    /// Spawn mode: restart chromedriver if it is no longer running.
    async fn ensure_driver(&self) -> Result<(), CaptureError> {
        self.restart_driver_unless(DriverCheck::Running).await
    }

    /// Spawn mode, after a failure: restart chromedriver unless it is running *and* answers. A
    /// killed chromedriver can look running for a moment (not yet reaped) while its port already
    /// refuses connections; without this, a page's retries could all be spent in that moment.
    async fn ensure_driver_answers(&self) -> Result<(), CaptureError> {
        self.restart_driver_unless(DriverCheck::Answers).await
    }

    async fn restart_driver_unless(&self, check: DriverCheck) -> Result<(), CaptureError> {
        let Some(path) = self.inner.driver_path.as_deref() else { return Ok(()) };
        let mut ep = self.inner.endpoint.lock().await;
        if let Some(d) = ep.driver.as_ref().filter(|d| d.is_running()) {
            if check == DriverCheck::Running || d.answers().await {
                return Ok(());
            }
        }
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(CaptureError::Closed);
        }
        if let Some(old) = ep.driver.take() {
            tracing::warn!(pid = old.pid(), "chromedriver died; restarting it");
            old.shutdown().await;
        }
        let driver = ChromeDriver::spawn(path, &self.inner.cancel).await?;
        ep.url = driver.url().clone();
        ep.driver = Some(Arc::new(driver));
        ep.generation += 1;
        self.inner.counters.driver_restarts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Open a new WebDriver session on the current endpoint (restarting chromedriver first unless
    /// it runs and answers: a session start would otherwise wait out `browser.session_timeout_ms`;
    /// a Grid keeps the request queued while no slot is free, up to that bound too).
    async fn open_session(&self) -> Result<PooledSession, CaptureError> {
        self.ensure_driver_answers().await?;
        let (url, generation) = {
            let ep = self.inner.endpoint.lock().await;
            (ep.url.clone(), ep.generation)
        };
        let endpoint = || url.to_string();
        let caps = capabilities(&self.inner.cfg, self.inner.driver_path.is_some());
        let mut builder = fantoccini::ClientBuilder::rustls()
            .map_err(|source| CaptureError::SessionTls { endpoint: endpoint(), source })?;
        builder.capabilities(caps);
        let timeout = self.inner.cfg.session_timeout;
        let target = url.to_string();
        let mut connect = PendingSession {
            pool: self,
            connect: Some(tokio::spawn(async move { builder.connect(&target).await })),
        };
        let Some(handle) = connect.connect.as_mut() else { return Err(CaptureError::Closed) };
        let answer = tokio::select! {
            _ = self.inner.cancel.cancelled() => {
                if let Some(c) = connect.connect.take() {
                    c.abort();
                }
                return Err(self.stopped_error());
            }
            r = tokio::time::timeout(timeout, handle) => match r {
                // Still pending: dropping `connect` hands it over to be closed once opened.
                Err(_) => return Err(CaptureError::SessionTimeout { endpoint: endpoint(), timeout }),
                Ok(answer) => answer,
            },
        };
        // Answered: nothing left to close later.
        connect.connect = None;
        let client = match answer {
            Err(source) => return Err(CaptureError::SessionTask { endpoint: endpoint(), source }),
            Ok(Err(e)) => return Err(CaptureError::Session { endpoint: endpoint(), source: Box::new(e) }),
            Ok(Ok(c)) => c,
        };
        self.inner.counters.sessions_started.fetch_add(1, Ordering::Relaxed);
        let id = match tokio::time::timeout(PROBE_TIMEOUT, client.session_id()).await {
            Ok(Ok(id)) => id,
            _ => None,
        };
        if let Some(id) = &id {
            self.inner.lock_ours().insert(id.clone());
        }
        let mut session = BrowserSession::new(client);
        match self.inner.cfg.transport {
            Transport::Auto => session = self.with_devtools(session, &url, id.as_deref()).await,
            Transport::WebDriver => {}
            Transport::W3c => session = session.w3c_only(),
        }
        // Capture fingerprints are checked against the browser build and font set of a browser on
        // this machine; a remote one (a Grid node) stays unknown, so its captures are never reused.
        if self.inner.driver_path.is_some() {
            self.note_environment(&session).await;
        }
        Ok(PooledSession { session, pages: 0, generation, id })
    }

    /// A session request that timed out stays in a Grid's queue and gets a slot later: let it
    /// finish in the background and close what it opens, so no slot is held by a session nobody
    /// uses (until the pool shuts down; the Grid's own request timeout bounds the wait).
    fn close_when_opened(
        &self,
        connect: tokio::task::JoinHandle<Result<fantoccini::Client, NewSessionError>>,
    ) {
        let cancel = self.inner.cancel.clone();
        self.inner.tasks.spawn(async move {
            let abort = connect.abort_handle();
            tokio::select! {
                _ = cancel.cancelled() => abort.abort(),
                r = connect => if let Ok(Ok(client)) = r {
                    tracing::info!("closing a session opened after its request timed out");
                    close_session(BrowserSession::new(client)).await;
                },
            }
        });
    }
}

/// A session request in flight. Dropped before its answer (timed out, or given up for an idle
/// session), it is handed to [`BrowserPool::close_when_opened`]: a Grid would otherwise open it
/// later for nobody and hold the slot.
struct PendingSession<'p> {
    pool: &'p BrowserPool,
    connect: Option<tokio::task::JoinHandle<Result<fantoccini::Client, NewSessionError>>>,
}

impl Drop for PendingSession<'_> {
    fn drop(&mut self) {
        if let Some(connect) = self.connect.take() {
            self.pool.close_when_opened(connect);
        }
    }
}

impl Capturer for BrowserPool {
    async fn capture(&self, req: CaptureRequest) -> Result<Capture, CaptureError> {
        self.capture_inner(req).await
    }

    async fn environment(&self) -> Option<Environment> {
        lock(&self.inner.environment).clone()
    }
}

impl Inner {
    fn lock_ours(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        lock(&self.ours)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<PooledSession>> {
        lock(&self.idle)
    }
}

/// A remote session driven over DevTools (a Grid's `se:cdp`): ask WebDriver every
/// [`WATCH_INTERVAL`] whether the session still exists, and return once it does not. A Grid
/// node that dies may leave the router's DevTools proxy silent rather than closed, so without this
/// a capture would wait out its command timeouts. Never returns for `None` (nothing to watch).
async fn watch_remote(client: Option<fantoccini::Client>) -> CommandError {
    let Some(client) = client else { return std::future::pending().await };
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        if let Some(gone) = session_gone(&client, WATCH_TIMEOUT).await {
            return gone;
        }
    }
}

async fn close_session(session: BrowserSession) {
    if tokio::time::timeout(SESSION_CLOSE_TIMEOUT, session.close()).await.is_err() {
        tracing::warn!("closing a browser session took over {SESSION_CLOSE_TIMEOUT:?}; left behind");
    }
}

/// The pool's size at start: `browser.sessions`, or with `"auto"` the Grid's slots (at least
/// one, at most `browser.sessions`; one when the endpoint is no Grid) or, spawning chromedriver,
/// the machine's cores.
async fn initial_capacity(cfg: &BrowserConfig, endpoint: &Url) -> usize {
    let most = cfg.sessions.max(1);
    if cfg.capacity == Capacity::Fixed {
        return most;
    }
    if cfg.webdriver == WebDriverEndpoint::Spawn {
        return std::thread::available_parallelism().map_or(1, usize::from).clamp(1, most);
    }
    let slots = match grid::status_client() {
        Ok(http) => grid::slots(&http, endpoint, &HashSet::new()).await,
        Err(source) => Err(grid::GridError::Http { url: endpoint.to_string(), source }),
    };
    match slots {
        Ok(n) => n.clamp(1, most),
        Err(e) => {
            tracing::warn!(error = %e, "browser.sessions = \"auto\": starting with one session");
            1
        }
    }
}

/// The Chromium binary sessions run: the configured one, else (spawn mode) the first of
/// [`CHROMIUM_CANDIDATES`] installed; `None` leaves the choice to chromedriver or the remote node.
pub fn browser_binary(cfg: &BrowserConfig, spawned: bool) -> Option<PathBuf> {
    match (&cfg.chromium, spawned) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => CHROMIUM_CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file()),
        (None, false) => None,
    }
}

/// How sure [`BrowserPool::restart_driver_unless`] must be that chromedriver is fine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DriverCheck {
    /// Its process has not exited.
    Running,
    /// Its process has not exited and it answers `/status`.
    Answers,
}

/// The new-session capabilities: Chrome with our flags; the Chromium binary when we spawned
/// chromedriver ourselves (a remote node knows its own browser).
pub fn capabilities(cfg: &BrowserConfig, spawned: bool) -> serde_json::Map<String, Value> {
    let mut chrome = serde_json::Map::new();
    chrome.insert("args".into(), json!(CHROMIUM_ARGS));
    // chromedriver turns the popup blocker off by default; keep it on so pages cannot open windows.
    chrome.insert("excludeSwitches".into(), json!(["disable-popup-blocking"]));
    if let Some(b) = browser_binary(cfg, spawned) {
        chrome.insert("binary".into(), json!(b.display().to_string()));
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), Value::Object(chrome));
    caps.insert("unhandledPromptBehavior".into(), json!("dismiss"));
    caps.insert("pageLoadStrategy".into(), json!("normal"));
    caps
}

/// `url` with a trailing slash on its path, so that joining `session/...` keeps a base path like
/// `/wd/hub`.
fn with_trailing_slash(url: &Url) -> Url {
    let mut u = url.clone();
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(chromium: Option<&str>) -> BrowserConfig {
        BrowserConfig {
            webdriver: WebDriverEndpoint::Spawn,
            sessions: 2,
            capacity: Capacity::Fixed,
            transport: Transport::Auto,
            node_devtools: true,
            session_timeout: Duration::from_secs(60),
            chromedriver: None,
            chromium: chromium.map(PathBuf::from),
            recycle_after: 10,
        }
    }

    #[test]
    fn capabilities_carry_flags_and_binary() {
        let caps = capabilities(&cfg(Some("/opt/chrome")), true);
        assert_eq!(caps["browserName"], "chrome");
        assert_eq!(caps["unhandledPromptBehavior"], "dismiss");
        let args = caps["goog:chromeOptions"]["args"].as_array().unwrap();
        assert!(args.iter().any(|a| a == "--headless=new"));
        assert!(args.iter().any(|a| a == "--no-sandbox"));
        assert_eq!(caps["goog:chromeOptions"]["binary"], "/opt/chrome");
        assert_eq!(caps["goog:chromeOptions"]["excludeSwitches"][0], "disable-popup-blocking");
        let remote = capabilities(&cfg(None), false);
        assert!(remote["goog:chromeOptions"].get("binary").is_none());
    }

    #[test]
    fn trailing_slash_is_added_once() {
        let u = Url::parse("http://grid:4444/wd/hub").unwrap();
        assert_eq!(with_trailing_slash(&u).as_str(), "http://grid:4444/wd/hub/");
        let u = Url::parse("http://grid:4444/").unwrap();
        assert_eq!(with_trailing_slash(&u).as_str(), "http://grid:4444/");
    }
}
