//! Scheduler: runs each site's crawls on its cron schedule and on demand, never two crawls of one
//! site at once, at most `scheduler.max_concurrent_sites` sites at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::capture::Capturer;
use crate::config::{Config, SiteConfig};
use crate::metrics::Metrics;
use crate::store::CrawlRecord;
use crate::sweep::Sweeper;

/// Manual triggers waiting to be handled.
const TRIGGER_QUEUE: usize = 64;

/// Errors of the scheduler handle.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("the scheduler has stopped")]
    Stopped,
}

/// What a trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerOutcome {
    /// A crawl of the site was started (or queued for a free slot).
    Started,
    /// The site already has a crawl running or queued.
    AlreadyRunning,
    /// No such site in the config.
    UnknownSite,
    /// The daemon is shutting down.
    ShuttingDown,
}

/// Why a crawl was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Schedule,
    Manual,
}

#[derive(Default)]
struct Shared {
    /// Sites with a crawl running or waiting for a slot.
    busy: HashSet<String>,
    /// Next scheduled run per site.
    next_run: HashMap<String, DateTime<Utc>>,
    /// The crawl id currently running per site.
    running_crawl: HashMap<String, u64>,
}

struct Trigger {
    site: String,
    reply: oneshot::Sender<TriggerOutcome>,
}

/// A cheap handle to ask the scheduler things; shared with the web server.
#[derive(Clone)]
pub struct SchedulerHandle {
    tx: mpsc::Sender<Trigger>,
    shared: Arc<Mutex<Shared>>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SchedulerHandle {
    /// Start a crawl of `site` now (unless one is running).
    pub async fn trigger(&self, site: &str) -> Result<TriggerOutcome, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Trigger { site: site.to_string(), reply }).await.map_err(|_| SchedulerError::Stopped)?;
        rx.await.map_err(|_| SchedulerError::Stopped)
    }

    /// When the site's schedule fires next (None: no schedule).
    pub fn next_run(&self, site: &str) -> Option<DateTime<Utc>> {
        lock(&self.shared).next_run.get(site).copied()
    }

    /// Whether a crawl of the site is running or queued.
    pub fn is_busy(&self, site: &str) -> bool {
        lock(&self.shared).busy.contains(site)
    }

    /// The id of the crawl of `site` running now, if any.
    pub fn running_crawl(&self, site: &str) -> Option<u64> {
        lock(&self.shared).running_crawl.get(site).copied()
    }
}

/// The scheduler: owns the per-site timers and starts crawls on the task tracker.
pub struct Scheduler<C: Capturer + 'static> {
    config: Arc<Config>,
    sweeper: Arc<Sweeper<C>>,
    metrics: Metrics,
    shared: Arc<Mutex<Shared>>,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    rx: mpsc::Receiver<Trigger>,
}

impl<C: Capturer + 'static> Scheduler<C> {
    /// Build a scheduler and its handle. Nothing runs until [`Scheduler::run`].
    pub fn new(
        config: Arc<Config>,
        sweeper: Arc<Sweeper<C>>,
        metrics: Metrics,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> (Scheduler<C>, SchedulerHandle) {
        let (tx, rx) = mpsc::channel(TRIGGER_QUEUE);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let slots = Arc::new(Semaphore::new(config.scheduler.max_concurrent_sites));
        let handle = SchedulerHandle { tx, shared: shared.clone() };
        (Scheduler { config, sweeper, metrics, shared, slots, tracker, cancel, rx }, handle)
    }

    /// Run until cancelled: fire schedules, handle triggers. Crawls run on the tracker; they see
    /// the same cancellation token and end `interrupted` when it fires.
    pub async fn run(mut self) {
        for site in &self.config.sites {
            self.metrics.register_site(&site.name);
            self.plan_next(site);
        }
        loop {
            let now = Utc::now();
            let wake = {
                let shared = lock(&self.shared);
                shared.next_run.values().min().copied()
            };
            let sleep = wake
                .map(|w| (w - now).to_std().unwrap_or_default())
                .unwrap_or(std::time::Duration::from_secs(3600));
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                t = self.rx.recv() => match t {
                    Some(t) => {
                        let outcome = match self.config.site(&t.site) {
                            None => TriggerOutcome::UnknownSite,
                            Some(site) => self.start(site.clone(), Reason::Manual),
                        };
                        let _ = t.reply.send(outcome);
                    }
                    None => break,
                },
                _ = tokio::time::sleep(sleep) => {
                    let now = Utc::now();
                    let due: Vec<SiteConfig> = {
                        let shared = lock(&self.shared);
                        self.config.sites.iter()
                            .filter(|s| shared.next_run.get(&s.name).is_some_and(|t| *t <= now))
                            .cloned()
                            .collect()
                    };
                    for site in due {
                        if self.start(site.clone(), Reason::Schedule) == TriggerOutcome::AlreadyRunning {
                            tracing::warn!(site = %site.name, "scheduled crawl skipped: the previous one is still running");
                            self.metrics.schedule_skipped(&site.name);
                        }
                        self.plan_next(&site);
                    }
                }
            }
        }
        // Answer triggers that raced with shutdown.
        self.rx.close();
        while let Ok(t) = self.rx.try_recv() {
            let _ = t.reply.send(TriggerOutcome::ShuttingDown);
        }
    }

    fn plan_next(&self, site: &SiteConfig) {
        let mut shared = lock(&self.shared);
        match site.schedule.as_ref().and_then(|s| s.next_after(Utc::now())) {
            Some(t) => shared.next_run.insert(site.name.clone(), t),
            None => shared.next_run.remove(&site.name),
        };
    }

    fn start(&self, site: SiteConfig, reason: Reason) -> TriggerOutcome {
        if self.cancel.is_cancelled() {
            return TriggerOutcome::ShuttingDown;
        }
        if !lock(&self.shared).busy.insert(site.name.clone()) {
            return TriggerOutcome::AlreadyRunning;
        }
        let slots = self.slots.clone();
        let sweeper = self.sweeper.clone();
        let shared = self.shared.clone();
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            let permit = tokio::select! {
                p = slots.acquire_owned() => p.ok(),
                _ = cancel.cancelled() => None,
            };
            if permit.is_some() {
                tracing::info!(site = %site.name, ?reason, "starting crawl");
                let observer = Arc::new(RunningCrawl { shared: shared.clone(), site: site.name.clone() });
                if let Err(e) = sweeper.run(&site, cancel, observer).await {
                    tracing::error!(site = %site.name, error = %e, "crawl failed");
                }
            }
            let mut s = lock(&shared);
            s.busy.remove(&site.name);
            s.running_crawl.remove(&site.name);
        });
        TriggerOutcome::Started
    }
}

/// Records the running crawl's id for the handle.
struct RunningCrawl {
    shared: Arc<Mutex<Shared>>,
    site: String,
}

impl crate::sweep::SweepObserver for RunningCrawl {
    fn started(&self, crawl: &CrawlRecord) {
        lock(&self.shared).running_crawl.insert(self.site.clone(), crawl.id);
    }
}
