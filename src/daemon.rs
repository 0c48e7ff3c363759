//! The daemon (`sitediff serve`): store, browser pool, scheduler and web server started in order and
//! shut down in reverse order when the cancellation token fires.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::capture::pool::BrowserPool;
use crate::capture::CaptureError;
use crate::config::Config;
use crate::metrics::{Metrics, MetricsError};
use crate::notify::{Notifier, NotifyError};
use crate::plugin::PluginHost;
use crate::scheduler::Scheduler;
use crate::store::{Store, StoreError};
use crate::sweep::Sweeper;
use crate::web::{self, AccessError, WebError, WebState, WriteAccess};

/// How long in-flight pages may take to finish after a stop request.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Browser(#[from] CaptureError),
    #[error(transparent)]
    Web(#[from] WebError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error("the store could not be opened: its background task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// How long the health probe waits for the WebDriver endpoint.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the WebDriver endpoint answers `GET /status` with success.
async fn webdriver_ready(endpoint: &url::Url) -> bool {
    let Ok(url) = endpoint.join("status") else { return false };
    let Ok(client) = reqwest::Client::builder().timeout(HEALTH_PROBE_TIMEOUT).build() else { return false };
    matches!(client.get(url).send().await, Ok(r) if r.status().is_success())
}

/// Export every configured site's last finished crawl from the store, so the per-site gauges (and
/// the alerts on them) are right from the first scrape, not only after the daemon's own next
/// crawl. A store that cannot be read here is logged: the daemon still serves.
async fn export_stored_crawls(store: &Store, metrics: &Metrics, config: &Arc<Config>) {
    let (store, metrics, config) = (store.clone(), metrics.clone(), config.clone());
    let result = tokio::task::spawn_blocking(move || {
        crate::settle::export_stored_crawls(&store, &metrics, &config.sites)
    })
    .await;
    match result {
        Ok(Ok(exported)) => {
            tracing::info!(?exported, "per-site metrics of the last finished crawls exported")
        }
        Ok(Err(e)) => tracing::error!(
            error = %crate::errors::chain(&e),
            "cannot export the last finished crawls' metrics: per-site gauges stay absent until the next crawl"
        ),
        Err(e) => tracing::error!(error = %e, "exporting the last finished crawls' metrics did not finish"),
    }
}

/// Reload the config on every SIGHUP until `cancel` fires (see [`crate::reload`]).
async fn reload_on_sighup(
    scheduler: crate::scheduler::SchedulerHandle,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: reload with POST /api/reload");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading the config");
                    if let Err(e) = crate::reload::reload(&scheduler, &metrics).await {
                        tracing::error!(error = %e, "SIGHUP reload");
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (scheduler, metrics);
        cancel.cancelled().await;
    }
}

/// Run the daemon until `shutdown` fires. `ready` receives the bound address once serving.
///
/// Refuses to start (before anything else) when writes would be unprotected by accident: see
/// [`WriteAccess`].
pub async fn run(
    config: Config,
    plugins: Option<Arc<PluginHost>>,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> Result<(), DaemonError> {
    let access = WriteAccess::from_config(&config.server)?;
    let config = Arc::new(config);
    let path = config.store.path.clone();
    let store = tokio::task::spawn_blocking(move || {
        let store = Store::open(&path)?;
        let stale = store.interrupt_running("sitediff stopped before the crawl finished")?;
        if !stale.is_empty() {
            tracing::warn!(crawls = ?stale, "crawls left running by a stopped process are now interrupted");
        }
        Ok::<_, StoreError>(store)
    })
    .await
    .map_err(DaemonError::Task)??;
    let metrics = Metrics::new()?;
    export_stored_crawls(&store, &metrics, &config).await;

    // Crawls get their own token so the web server can keep answering while they wind down.
    let crawl_cancel = CancellationToken::new();
    let pool = Arc::new(BrowserPool::start(&config.browser, crawl_cancel.clone()).await?);
    let sweeper = Arc::new(Sweeper::new(
        store.clone(),
        pool.clone(),
        plugins.clone(),
        Some(metrics.clone()),
        config.browser.sessions,
        config.store.keep_crawls as usize,
    ));
    let tracker = TaskTracker::new();
    let (scheduler, handle) =
        Scheduler::new(config.clone(), sweeper, metrics.clone(), tracker.clone(), crawl_cancel.clone());
    let notifier = Arc::new(Notifier::new(
        config.notify.clone(),
        store.clone(),
        metrics.clone(),
        tracker.clone(),
        crawl_cancel.clone(),
    )?);
    let scheduler = scheduler.with_notifier(notifier.clone());
    let scheduler_task = tokio::spawn(scheduler.run());

    let listener = web::bind(config.server.listen).await?;
    let addr =
        listener.local_addr().map_err(|source| WebError::Bind { addr: config.server.listen, source })?;
    let probe_pool = pool.clone();
    let state = WebState {
        config: config.clone(),
        store: store.clone(),
        metrics,
        scheduler: handle,
        token: access.token(),
        browser: Arc::new(move || {
            let p = probe_pool.clone();
            Box::pin(async move { webdriver_ready(&p.endpoint_url().await).await })
        }),
    };
    let web_cancel = CancellationToken::new();
    let reload_task =
        tokio::spawn(reload_on_sighup(state.scheduler.clone(), state.metrics.clone(), web_cancel.clone()));
    let web_task = tokio::spawn(web::serve(state, listener, web_cancel.clone()));
    notifier.set_ui_base(format!("http://{addr}"));
    access.log(addr);
    tracing::info!(%addr, sites = config.sites.len(), "sitediff serving");
    eprintln!("sitediff: serving on http://{addr}/ ({} sites)", config.sites.len());
    if let Some(tx) = ready {
        if tx.send(addr).is_err() {
            tracing::warn!(%addr, "the caller no longer waits for the daemon to be ready");
        }
    }

    shutdown.cancelled().await;
    tracing::info!("shutting down: no new crawls; in-flight pages finish");
    // 1. Stop scheduling and tell crawls to stop taking pages.
    crawl_cancel.cancel();
    if let Err(e) = scheduler_task.await {
        tracing::warn!(error = %e, "shutdown: the scheduler task failed");
    }
    tracker.close();
    // 2. Let in-flight pages finish, within the deadline.
    if tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait()).await.is_err() {
        tracing::warn!("crawls did not finish within {SHUTDOWN_DEADLINE:?}; marking them interrupted");
    }
    // 3. Whatever is still marked running is interrupted.
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.interrupt_running(crate::sweep::INTERRUPTED_REASON)).await {
        Ok(Ok(ids)) if !ids.is_empty() => {
            tracing::warn!(crawls = ?ids, "shutdown: crawls still running are now interrupted")
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(
            error = %e, "shutdown: cannot mark running crawls interrupted (the next start will)"
        ),
        Err(e) => tracing::warn!(
            error = %e, "shutdown: cannot mark running crawls interrupted (the next start will)"
        ),
    }
    // 4. Browser, then web server.
    pool.shutdown().await;
    web_cancel.cancel();
    if let Err(e) = reload_task.await {
        tracing::warn!(error = %e, "shutdown: the reload task failed");
    }
    if let Err(e) = web_task.await {
        tracing::warn!(error = %e, "shutdown: the web server task failed");
    }
    tracing::info!("stopped");
    Ok(())
}
