//! Scheduler: runs each site's crawls on its cron schedule and on demand, never two crawls of one
//! site at once, at most `scheduler.max_concurrent_sites` sites at once. A started crawl is
//! recorded (its id allocated) before it waits for a slot, so a trigger is answered with the id.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::capture::Capturer;
use crate::config::{Config, SiteConfig};
use crate::metrics::Metrics;
use crate::plugin::PluginHost;
use crate::store::CrawlRecord;
use crate::sweep::Sweeper;

/// Manual triggers waiting to be handled.
const TRIGGER_QUEUE: usize = 64;
/// Config reloads waiting to be applied.
const RELOAD_QUEUE: usize = 4;

/// Errors of the scheduler handle.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("the scheduler has stopped")]
    Stopped,
}

/// What a trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerOutcome {
    /// A crawl of the site was started (or queued for a free slot); its record exists.
    Started { crawl: u64 },
    /// The crawl could not be recorded (the store failed); nothing runs.
    NotStarted { error: String },
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
    /// Progress of the crawls started here and not finished yet.
    progress: HashMap<u64, CrawlProgress>,
}

/// How far a running crawl has got (pages processed of those discovered so far).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CrawlProgress {
    pub done: u32,
    pub discovered: u32,
    pub changed: u32,
    pub failed: u32,
}

struct Trigger {
    site: String,
    /// A site not in the config (a pair crawl through the API); `None`: look `site` up.
    config: Option<Box<SiteConfig>>,
    /// Render every page (no approved capture reused).
    full: bool,
    reply: oneshot::Sender<TriggerOutcome>,
}

/// A new config (and its plugins) for crawls started from now on.
struct Reload {
    config: Arc<Config>,
    plugins: Option<Arc<PluginHost>>,
    done: oneshot::Sender<()>,
}

/// The settings new crawls start with, and what the last reload attempt found wrong.
struct Live {
    config: Arc<Config>,
    plugins: Option<Arc<PluginHost>>,
    /// Problems of the last reload attempt; empty when it succeeded (or none was tried).
    reload_problems: Vec<String>,
}

/// A cheap handle to ask the scheduler things; shared with the web server.
#[derive(Clone)]
pub struct SchedulerHandle {
    tx: mpsc::Sender<Trigger>,
    reload_tx: mpsc::Sender<Reload>,
    shared: Arc<Mutex<Shared>>,
    /// Bumped whenever a crawl's progress moves or a crawl ends (waiters watch it).
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    live: Arc<Mutex<Live>>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SchedulerHandle {
    /// Start a crawl of `site` now (unless one is running).
    pub async fn trigger(&self, site: &str) -> Result<TriggerOutcome, SchedulerError> {
        self.trigger_full(site, false).await
    }

    /// [`SchedulerHandle::trigger`]; with `full`, every page is rendered (no approved capture
    /// reused, whatever the site's `incremental`).
    pub async fn trigger_full(&self, site: &str, full: bool) -> Result<TriggerOutcome, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        let t = Trigger { site: site.to_string(), config: None, full, reply };
        self.tx.send(t).await.map_err(|_| SchedulerError::Stopped)?;
        rx.await.map_err(|_| SchedulerError::Stopped)
    }

    /// Start a crawl of a site given whole (a pair crawl that is not in the config) now, unless
    /// one of that name is running.
    pub async fn trigger_site(&self, site: SiteConfig) -> Result<TriggerOutcome, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        let t = Trigger { site: site.name.clone(), config: Some(Box::new(site)), full: false, reply };
        self.tx.send(t).await.map_err(|_| SchedulerError::Stopped)?;
        rx.await.map_err(|_| SchedulerError::Stopped)
    }

    /// Progress of a crawl started by this scheduler and not finished (`None` otherwise, or
    /// while it waits for a slot).
    pub fn progress(&self, crawl: u64) -> Option<CrawlProgress> {
        lock(&self.shared).progress.get(&crawl).copied()
    }

    /// A receiver that sees a new value whenever any crawl's progress moves or a crawl ends.
    pub fn watch_progress(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
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

    /// The config crawls start with now (the start-up one, or the last one reloaded).
    pub fn config(&self) -> Arc<Config> {
        lock_live(&self.live).config.clone()
    }

    /// The plugins of [`SchedulerHandle::config`].
    pub fn plugins(&self) -> Option<Arc<PluginHost>> {
        lock_live(&self.live).plugins.clone()
    }

    /// Use `config` and `plugins` for every crawl started from now on: sites added and removed,
    /// schedules planned again. Running crawls finish with the settings they started with.
    /// Returns once the scheduler has switched.
    pub async fn reload(
        &self,
        config: Arc<Config>,
        plugins: Option<Arc<PluginHost>>,
    ) -> Result<(), SchedulerError> {
        let (done, rx) = oneshot::channel();
        self.reload_tx.send(Reload { config, plugins, done }).await.map_err(|_| SchedulerError::Stopped)?;
        rx.await.map_err(|_| SchedulerError::Stopped)
    }

    /// Record what the last reload attempt found wrong (empty: it succeeded).
    pub fn set_reload_problems(&self, problems: Vec<String>) {
        lock_live(&self.live).reload_problems = problems;
    }

    /// What the last reload attempt found wrong (empty: it succeeded, or none was tried).
    pub fn reload_problems(&self) -> Vec<String> {
        lock_live(&self.live).reload_problems.clone()
    }
}

fn lock_live(m: &Mutex<Live>) -> MutexGuard<'_, Live> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The scheduler: owns the per-site timers and starts crawls on the task tracker.
pub struct Scheduler<C: Capturer + 'static> {
    config: Arc<Config>,
    sweeper: Arc<Sweeper<C>>,
    metrics: Metrics,
    shared: Arc<Mutex<Shared>>,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    rx: mpsc::Receiver<Trigger>,
    /// Told when each crawl ends (`[[notify]]` webhooks).
    notifier: Option<Arc<crate::notify::Notifier>>,
    reload_rx: mpsc::Receiver<Reload>,
    live: Arc<Mutex<Live>>,
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
        let (reload_tx, reload_rx) = mpsc::channel(RELOAD_QUEUE);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let slots = Arc::new(Semaphore::new(config.scheduler.max_concurrent_sites));
        let changes = Arc::new(tokio::sync::watch::Sender::new(0));
        let live = Arc::new(Mutex::new(Live {
            config: config.clone(),
            plugins: sweeper.plugins(),
            reload_problems: Vec::new(),
        }));
        let handle = SchedulerHandle {
            tx,
            reload_tx,
            shared: shared.clone(),
            changes: changes.clone(),
            live: live.clone(),
        };
        (
            Scheduler {
                config,
                sweeper,
                metrics,
                shared,
                changes,
                slots,
                tracker,
                cancel,
                rx,
                reload_rx,
                live,
                notifier: None,
            },
            handle,
        )
    }

    /// Tell `notifier` whenever a crawl ends.
    pub fn with_notifier(mut self, notifier: Arc<crate::notify::Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Run until cancelled: fire schedules, handle triggers. Crawls run on the tracker; they see
    /// the same cancellation token and end `interrupted` when it fires.
    pub async fn run(mut self) {
        let now = Utc::now();
        for site in &self.config.sites {
            self.metrics.register_site(&site.name);
            self.plan_next(site, now);
        }
        loop {
            let sleep = sleep_before_next(&lock(&self.shared).next_run, Utc::now());
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                t = self.rx.recv() => match t {
                    Some(t) => self.handle_trigger(t),
                    None => break,
                },
                Some(r) = self.reload_rx.recv() => self.apply_reload(r),
                _ = tokio::time::sleep(sleep) => self.fire_due(Utc::now()),
            }
        }
        // Answer triggers that raced with shutdown.
        self.rx.close();
        while let Ok(t) = self.rx.try_recv() {
            answer(t, TriggerOutcome::ShuttingDown);
        }
    }

    /// Switch to a reloaded config: crawls started from now on use it (and its plugins); running
    /// ones keep the site settings and sweeper they were started with. Removed sites lose their
    /// schedule, added and changed ones are planned from now.
    fn apply_reload(&mut self, r: Reload) {
        if r.config.scheduler.max_concurrent_sites != self.config.scheduler.max_concurrent_sites {
            tracing::warn!("scheduler.max_concurrent_sites changed: it takes effect at the next restart");
        }
        self.sweeper =
            Arc::new(self.sweeper.reconfigured(r.plugins.clone(), r.config.store.keep_crawls as usize));
        let now = Utc::now();
        lock(&self.shared).next_run.retain(|name, _| r.config.site(name).is_some());
        for site in &r.config.sites {
            self.metrics.register_site(&site.name);
            self.plan_next(site, now);
        }
        {
            let mut live = lock_live(&self.live);
            live.config = r.config.clone();
            live.plugins = r.plugins;
        }
        self.config = r.config;
        if r.done.send(()).is_err() {
            tracing::debug!("config reload applied after its requester stopped waiting");
        }
    }

    /// Start a crawl a trigger asks for; it is answered with the crawl's id once the crawl is
    /// recorded, or at once with the reason nothing starts.
    fn handle_trigger(&self, mut t: Trigger) {
        let site = match t.config.take() {
            Some(site) => *site,
            None => match self.config.site(&t.site) {
                Some(site) => site.clone(),
                None => return answer(t, TriggerOutcome::UnknownSite),
            },
        };
        if let Err(refused) = self.start(site, Reason::Manual, Some(t.reply), t.full) {
            tracing::debug!(site = %t.site, outcome = ?refused, "crawl trigger refused");
        }
    }

    /// Start every site whose scheduled time has come (a site whose previous crawl still runs is
    /// skipped and counted) and plan their next runs.
    fn fire_due(&self, now: DateTime<Utc>) {
        let due = due_sites(&self.config.sites, &lock(&self.shared).next_run, now);
        for site in due {
            if self.start(site.clone(), Reason::Schedule, None, false) == Err(TriggerOutcome::AlreadyRunning)
            {
                tracing::warn!(site = %site.name, "scheduled crawl skipped: the previous one is still running");
                self.metrics.schedule_skipped(&site.name);
            }
            self.plan_next(&site, now);
        }
    }

    fn plan_next(&self, site: &SiteConfig, now: DateTime<Utc>) {
        let mut shared = lock(&self.shared);
        match next_fire(site, now) {
            Some(t) => shared.next_run.insert(site.name.clone(), t),
            None => shared.next_run.remove(&site.name),
        };
    }

    /// Claim the site and start its crawl on the tracker: the crawl is recorded first (its id goes
    /// to `reply`), then waits for a slot and runs. A refusal (shutting down, already running) is
    /// returned, and sent to `reply`, at once. The claim is taken here, on the scheduler's own
    /// task, so two triggers can never both start a crawl of one site.
    fn start(
        &self,
        site: SiteConfig,
        reason: Reason,
        reply: Option<oneshot::Sender<TriggerOutcome>>,
        full: bool,
    ) -> Result<(), TriggerOutcome> {
        let refused = if self.cancel.is_cancelled() {
            Some(TriggerOutcome::ShuttingDown)
        } else if !lock(&self.shared).busy.insert(site.name.clone()) {
            Some(TriggerOutcome::AlreadyRunning)
        } else {
            None
        };
        if let Some(outcome) = refused {
            if let Some(reply) = reply {
                send_answer(&site.name, reply, outcome.clone());
            }
            return Err(outcome);
        }
        let slots = self.slots.clone();
        let sweeper = self.sweeper.clone();
        let shared = self.shared.clone();
        let changes = self.changes.clone();
        let cancel = self.cancel.clone();
        let notifier = self.notifier.clone();
        self.tracker.spawn(async move {
            let crawl = match sweeper.begin_full(&site, full).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(site = %site.name, error = %e, "crawl not started: it cannot be recorded");
                    if let Some(reply) = reply {
                        send_answer(&site.name, reply, TriggerOutcome::NotStarted { error: crate::errors::chain(&e) });
                    }
                    release(&shared, &changes, &site.name, None);
                    return;
                }
            };
            lock(&shared).running_crawl.insert(site.name.clone(), crawl.id);
            if let Some(reply) = reply {
                send_answer(&site.name, reply, TriggerOutcome::Started { crawl: crawl.id });
            }
            let permit = tokio::select! {
                p = slots.acquire_owned() => match p {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::warn!(site = %site.name, error = %e, "crawl not started: no slot can be had");
                        None
                    }
                },
                _ = cancel.cancelled() => None,
            };
            if permit.is_some() {
                tracing::info!(site = %site.name, crawl = crawl.id, ?reason, "starting crawl");
                let observer = Arc::new(RunningCrawl {
                    shared: shared.clone(),
                    changes: changes.clone(),
                    site: site.name.clone(),
                    crawl: crawl.id,
                });
                lock(&shared).progress.insert(crawl.id, CrawlProgress::default());
                let id = crawl.id;
                if let Err(e) = sweeper.run_begun(&site, crawl, cancel, observer).await {
                    tracing::error!(site = %site.name, error = %e, "crawl failed");
                }
                release(&shared, &changes, &site.name, Some(id));
                if let Some(n) = &notifier {
                    n.crawl_ended(id);
                }
            } else {
                let id = crawl.id;
                sweeper.abandon(crawl).await;
                release(&shared, &changes, &site.name, Some(id));
            }
        });
        Ok(())
    }
}

/// The site's crawl is over (its record is final): it may be started again, and waiters see it.
fn release(
    shared: &Mutex<Shared>,
    changes: &tokio::sync::watch::Sender<u64>,
    site: &str,
    crawl: Option<u64>,
) {
    {
        let mut s = lock(shared);
        s.busy.remove(site);
        s.running_crawl.remove(site);
        if let Some(id) = crawl {
            s.progress.remove(&id);
        }
    }
    changes.send_modify(|v| *v += 1);
}

/// How long the scheduler sleeps when no site has a schedule (triggers still wake it).
const IDLE_SLEEP: std::time::Duration = std::time::Duration::from_secs(3600);

/// When the site's schedule fires next after `now` (`None`: the site has no schedule).
fn next_fire(site: &SiteConfig, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    site.schedule.as_ref().and_then(|s| s.next_after(now))
}

/// How long to sleep until the earliest planned run (zero when one is overdue).
fn sleep_before_next(next_run: &HashMap<String, DateTime<Utc>>, now: DateTime<Utc>) -> std::time::Duration {
    match next_run.values().min() {
        Some(wake) => (*wake - now).to_std().unwrap_or_default(),
        None => IDLE_SLEEP,
    }
}

/// The sites whose planned run is at or before `now`, in config order.
fn due_sites(
    sites: &[SiteConfig],
    next_run: &HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<SiteConfig> {
    sites.iter().filter(|s| next_run.get(&s.name).is_some_and(|t| *t <= now)).cloned().collect()
}

/// Send a trigger's outcome back; the requester may have stopped waiting.
fn answer(t: Trigger, outcome: TriggerOutcome) {
    send_answer(&t.site, t.reply, outcome);
}

fn send_answer(site: &str, reply: oneshot::Sender<TriggerOutcome>, outcome: TriggerOutcome) {
    if let Err(outcome) = reply.send(outcome) {
        tracing::warn!(site, ?outcome, "crawl trigger answered after its requester stopped waiting");
    }
}

/// Records the running crawl's id and progress for the handle.
struct RunningCrawl {
    shared: Arc<Mutex<Shared>>,
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    site: String,
    crawl: u64,
}

impl RunningCrawl {
    fn count(&self, f: impl FnOnce(&mut CrawlProgress)) {
        if let Some(p) = lock(&self.shared).progress.get_mut(&self.crawl) {
            f(p);
        }
        self.changes.send_modify(|v| *v += 1);
    }
}

impl crate::sweep::SweepObserver for RunningCrawl {
    fn started(&self, crawl: &CrawlRecord) {
        lock(&self.shared).running_crawl.insert(self.site.clone(), crawl.id);
    }
    fn discovered(&self, _page: &crate::crawl::DiscoveredPage) {
        self.count(|p| p.discovered += 1);
    }
    fn page_done(&self, page: &crate::store::PageRecord) {
        use crate::store::PageChange;
        self.count(|p| {
            p.done += 1;
            match page.change {
                PageChange::Changed | PageChange::Added | PageChange::Removed => p.changed += 1,
                PageChange::Failed => p.failed += 1,
                _ => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;

    use super::*;
    use crate::store::{CrawlStatus, Store};
    use crate::sweep::tests::{dead_site, NoBrowser};

    fn config(extra: &str, sites: &str) -> Config {
        Config::parse(&format!("{extra}\n{sites}"), Path::new("/tmp/x/sitediff.toml")).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    struct Rig {
        scheduler: Scheduler<NoBrowser>,
        handle: SchedulerHandle,
        store: Store,
        metrics: Metrics,
        tracker: TaskTracker,
        cancel: CancellationToken,
        _dir: tempfile::TempDir,
    }

    fn rig(config: Config) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let metrics = Metrics::new().unwrap();
        let sweeper =
            Arc::new(Sweeper::new(store.clone(), Arc::new(NoBrowser), None, Some(metrics.clone()), 1, 10));
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let (scheduler, handle) =
            Scheduler::new(Arc::new(config), sweeper, metrics.clone(), tracker.clone(), cancel.clone());
        Rig { scheduler, handle, store, metrics, tracker, cancel, _dir: dir }
    }

    #[test]
    fn cron_next_fire_in_utc_and_in_the_scheduler_s_zone() {
        let c = config("", &dead_site("docs", "schedule = \"0 */6 * * *\""));
        let site = &c.sites[0];
        assert_eq!(next_fire(site, utc(2026, 3, 1, 7, 30)), Some(utc(2026, 3, 1, 12, 0)));
        // Strictly after: at a firing time the next one is planned.
        assert_eq!(next_fire(site, utc(2026, 3, 1, 12, 0)), Some(utc(2026, 3, 1, 18, 0)));
        assert_eq!(next_fire(site, utc(2026, 3, 1, 23, 59)), Some(utc(2026, 3, 2, 0, 0)));

        let kolkata = config(
            "[scheduler]\ntimezone = \"Asia/Kolkata\"",
            &dead_site("docs", "schedule = \"0 9 * * *\""),
        );
        // 09:00 in Kolkata (UTC+05:30) is 03:30 UTC.
        assert_eq!(next_fire(&kolkata.sites[0], utc(2026, 3, 1, 0, 0)), Some(utc(2026, 3, 1, 3, 30)));
        assert_eq!(next_fire(&kolkata.sites[0], utc(2026, 3, 1, 4, 0)), Some(utc(2026, 3, 2, 3, 30)));

        let none = config("", &dead_site("docs", ""));
        assert_eq!(next_fire(&none.sites[0], utc(2026, 3, 1, 0, 0)), None);
    }

    #[test]
    fn sleeps_until_the_earliest_planned_run() {
        let now = utc(2026, 3, 1, 12, 0);
        assert_eq!(sleep_before_next(&HashMap::new(), now), IDLE_SLEEP);
        let mut next = HashMap::new();
        next.insert("a".to_string(), utc(2026, 3, 1, 12, 30));
        next.insert("b".to_string(), utc(2026, 3, 1, 12, 10));
        assert_eq!(sleep_before_next(&next, now), std::time::Duration::from_secs(600));
        next.insert("late".to_string(), utc(2026, 3, 1, 11, 0));
        assert_eq!(sleep_before_next(&next, now), std::time::Duration::ZERO, "an overdue run fires now");
    }

    #[test]
    fn only_sites_whose_time_has_come_are_due() {
        let c = config("", &format!("{}{}{}", dead_site("a", ""), dead_site("b", ""), dead_site("c", "")));
        let now = utc(2026, 3, 1, 12, 0);
        let mut next = HashMap::new();
        next.insert("a".to_string(), now);
        next.insert("b".to_string(), utc(2026, 3, 1, 12, 1));
        let due: Vec<String> = due_sites(&c.sites, &next, now).into_iter().map(|s| s.name).collect();
        assert_eq!(due, ["a"], "b is not due yet and c has no planned run");
    }

    /// Start a manual crawl as a trigger does and return its answer.
    async fn trigger(r: &Rig, site: &SiteConfig) -> TriggerOutcome {
        let (reply, rx) = oneshot::channel();
        let started = r.scheduler.start(site.clone(), Reason::Manual, Some(reply), false);
        let outcome = rx.await.unwrap();
        match started {
            Ok(()) => assert!(matches!(outcome, TriggerOutcome::Started { .. }), "{outcome:?}"),
            Err(refused) => assert_eq!(refused, outcome, "a refusal is returned and sent alike"),
        }
        outcome
    }

    #[tokio::test]
    async fn a_second_start_while_one_waits_or_runs_is_refused_then_allowed_again() {
        let r = rig(config("[scheduler]\nmax_concurrent_sites = 1", &dead_site("docs", "")));
        let site = r.scheduler.config.sites[0].clone();
        // Hold the only slot: the first crawl is started but waits, so the site stays busy.
        let slot = r.scheduler.slots.clone().acquire_owned().await.unwrap();
        let TriggerOutcome::Started { crawl } = trigger(&r, &site).await else { panic!("not started") };
        // The answer comes once the crawl is recorded, before it runs: its id is real.
        let waiting = r.store.crawl(crawl).unwrap().expect("the crawl is recorded before the answer");
        assert_eq!((waiting.site.as_str(), waiting.status), ("docs", CrawlStatus::Running));
        assert_eq!(r.handle.running_crawl("docs"), Some(crawl));
        assert!(r.handle.is_busy("docs"));
        assert_eq!(trigger(&r, &site).await, TriggerOutcome::AlreadyRunning);
        assert_eq!(
            r.scheduler.start(site.clone(), Reason::Schedule, None, false),
            Err(TriggerOutcome::AlreadyRunning)
        );
        drop(slot);
        r.tracker.close();
        r.tracker.wait().await;
        assert!(!r.handle.is_busy("docs"), "the site is free once its crawl ended");
        assert_eq!(r.handle.running_crawl("docs"), None);
        let crawls = r.store.crawls("docs").unwrap();
        assert_eq!(crawls.len(), 1, "one crawl ran: {crawls:?}");
        assert_eq!(crawls[0].id, crawl, "the crawl that ran is the one the trigger named");
        assert_eq!(crawls[0].status, CrawlStatus::Failed, "its start page does not answer");
        assert_eq!(crawls[0].counts.failed, 1, "the dead start page is recorded as failed");
        r.tracker.reopen();
        let TriggerOutcome::Started { crawl: next } = trigger(&r, &site).await else { panic!("not started") };
        assert!(next > crawl);
        r.tracker.close();
        r.tracker.wait().await;
        assert_eq!(r.store.crawls("docs").unwrap().len(), 2);
    }

    #[tokio::test]
    async fn concurrent_triggers_start_one_crawl_and_answer_with_its_id() {
        let r = rig(config("[scheduler]\nmax_concurrent_sites = 1", &dead_site("docs", "")));
        let slot = r.scheduler.slots.clone().acquire_owned().await.unwrap();
        let handle = r.handle.clone();
        let Rig { scheduler, store, tracker, cancel, .. } = r;
        let loop_task = tokio::spawn(scheduler.run());
        let answers = futures::future::join_all((0..8).map(|_| handle.trigger("docs"))).await;
        let started: Vec<u64> = answers
            .iter()
            .filter_map(|a| match a {
                Ok(TriggerOutcome::Started { crawl }) => Some(*crawl),
                Ok(TriggerOutcome::AlreadyRunning) => None,
                other => panic!("unexpected answer {other:?}"),
            })
            .collect();
        assert_eq!(started.len(), 1, "{answers:?}");
        assert_eq!(store.crawl_ids("docs").unwrap(), started, "exactly the crawl the answer named exists");
        drop(slot);
        cancel.cancel();
        loop_task.await.unwrap();
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test]
    async fn a_due_schedule_is_skipped_and_counted_while_the_site_is_busy() {
        let r = rig(config("", &dead_site("docs", "schedule = \"*/5 * * * *\"")));
        let now = Utc::now();
        {
            let mut shared = lock(&r.scheduler.shared);
            shared.busy.insert("docs".to_string());
            shared.next_run.insert("docs".to_string(), now - chrono::Duration::minutes(1));
        }
        r.scheduler.fire_due(now);
        let text = r.metrics.render().unwrap();
        assert!(text.contains("sitediff_schedule_skipped_total{site=\"docs\"} 1"), "{text}");
        assert!(r.handle.next_run("docs").is_some_and(|t| t > now), "the next run is planned");
        r.tracker.close();
        r.tracker.wait().await;
        assert!(r.store.crawls("docs").unwrap().is_empty(), "no second crawl was started");
        assert!(r.handle.is_busy("docs"), "the running crawl's claim is untouched");
    }

    #[tokio::test]
    async fn a_due_schedule_starts_a_crawl_when_the_site_is_free() {
        let r = rig(config("", &dead_site("docs", "schedule = \"*/5 * * * *\"")));
        let now = Utc::now();
        lock(&r.scheduler.shared).next_run.insert("docs".to_string(), now);
        r.scheduler.fire_due(now);
        r.tracker.close();
        r.tracker.wait().await;
        assert_eq!(r.store.crawls("docs").unwrap().len(), 1);
        let text = r.metrics.render().unwrap();
        assert!(!text.contains("sitediff_schedule_skipped_total{site=\"docs\"} 1"), "{text}");
    }

    #[tokio::test]
    async fn triggers_name_configured_sites() {
        let r = rig(config("", &dead_site("docs", "")));
        let (reply, rx) = oneshot::channel();
        r.scheduler.handle_trigger(Trigger { site: "nope".into(), config: None, full: false, reply });
        assert_eq!(rx.await.unwrap(), TriggerOutcome::UnknownSite);
        assert!(!r.handle.is_busy("nope"));
    }

    #[tokio::test]
    async fn cancellation_stops_starting_crawls_and_drops_waiting_ones() {
        let r = rig(config("[scheduler]\nmax_concurrent_sites = 1", &dead_site("docs", "")));
        let site = r.scheduler.config.sites[0].clone();
        let slot = r.scheduler.slots.clone().acquire_owned().await.unwrap();
        let TriggerOutcome::Started { crawl } = trigger(&r, &site).await else { panic!("not started") };
        r.cancel.cancel();
        // The crawl waiting for a slot gives up without running.
        r.tracker.close();
        r.tracker.wait().await;
        drop(slot);
        let rec = r.store.crawl(crawl).unwrap().unwrap();
        assert_eq!(rec.status, CrawlStatus::Interrupted, "a waiting crawl never starts after a stop");
        assert_eq!(rec.error.as_deref(), Some(crate::sweep::NOT_STARTED_REASON));
        assert!(r.store.pages(crawl).unwrap().is_empty());
        assert!(!r.handle.is_busy("docs"));
        assert_eq!(trigger(&r, &site).await, TriggerOutcome::ShuttingDown);
    }

    #[tokio::test]
    async fn run_ends_on_cancel_and_answers_queued_triggers() {
        let r = rig(config("", &dead_site("docs", "")));
        let (reply, queued) = oneshot::channel();
        r.handle.tx.send(Trigger { site: "docs".into(), config: None, full: false, reply }).await.unwrap();
        r.cancel.cancel();
        r.scheduler.run().await;
        assert_eq!(queued.await.unwrap(), TriggerOutcome::ShuttingDown);
        assert!(matches!(r.handle.trigger("docs").await, Err(SchedulerError::Stopped)));
        r.tracker.close();
        r.tracker.wait().await;
        assert!(r.store.crawls("docs").unwrap().is_empty());
    }
}
