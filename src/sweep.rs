//! One crawl of a site, end to end: discovery -> capture -> diff against baselines -> store,
//! pipelined so the browser never waits for our CPU work (diff and storage run on the blocking pool).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::capture::{CaptureRequest, Capturer};
use crate::compare::{Comparer, BASELINE_CACHE_BYTES};
use crate::config::SiteConfig;
use crate::crawl::{self, DiscoveredPage, DiscoveryPlan, DiscoveryStats, FetchResult};
use crate::diff::DecodedCache;
use crate::metrics::Metrics;
use crate::plugin::PluginHost;
use crate::settle;
use crate::store::{
    now_ms, BaselineRecord, Blob, ComparisonBasis, CrawlKind, CrawlRecord, CrawlStatus, PageOutcome,
    PageRecord, RetentionReport, Store, StoreError,
};

mod advice;
mod pair;
mod reuse;

use reuse::Reuse;
pub use reuse::ReuseError;

/// One running crawl: its id and when it started (the browser cache holds nothing older).
#[derive(Debug, Clone, Copy)]
struct SweepRun {
    crawl_id: u64,
    started: Instant,
}

/// Pages discovered but not yet captured, buffered between discovery and capture.
const DISCOVERY_BUFFER: usize = 64;

/// Errors that stop a whole crawl (page-level problems are page outcomes instead).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("site {site}: {source}")]
    Store {
        site: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Crawl(#[from] crawl::CrawlError),
    /// The start page gave nothing to crawl (an HTTP error, no answer, not HTML, a redirect out of
    /// the prefix): the crawl is recorded as failed with this message.
    #[error("site {site}: {message}")]
    StartPage { site: String, message: String },
    #[error(transparent)]
    Reuse(#[from] ReuseError),
    #[error("site {site}: a worker task failed: {source}")]
    Task {
        site: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Receives progress of a running crawl (the CLI's progress bar, logs).
pub trait SweepObserver: Send + Sync {
    /// A crawl started with this id.
    fn started(&self, _crawl: &CrawlRecord) {}
    /// Discovery found another page to process.
    fn discovered(&self, _page: &DiscoveredPage) {}
    /// A page was processed and stored.
    fn page_done(&self, _page: &PageRecord) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl SweepObserver for NoObserver {}

/// Pages in flight per browser session (one capturing, one being diffed and stored).
pub const PAGES_PER_SESSION: usize = 2;

/// Runs crawls of sites against one store and one capturer.
pub struct Sweeper<C: Capturer + 'static> {
    store: Store,
    capturer: Arc<C>,
    metrics: Option<Metrics>,
    comparer: Comparer,
    /// Pages in flight at once (capture + diff); sized from the browser session count.
    concurrency: usize,
    /// Crawls kept per site besides those holding baselines (`store.keep_crawls`).
    keep_crawls: usize,
}

impl<C: Capturer + 'static> Sweeper<C> {
    /// A sweeper over `store` and `capturer`; `sessions` is the browser session count.
    pub fn new(
        store: Store,
        capturer: Arc<C>,
        plugins: Option<Arc<PluginHost>>,
        metrics: Option<Metrics>,
        sessions: usize,
        keep_crawls: usize,
    ) -> Sweeper<C> {
        let comparer = Comparer {
            store: store.clone(),
            plugins,
            cache: Arc::new(DecodedCache::new(BASELINE_CACHE_BYTES)),
            metrics: metrics.clone(),
        };
        Sweeper {
            store,
            capturer,
            metrics,
            comparer,
            concurrency: sessions.max(1) * PAGES_PER_SESSION,
            keep_crawls,
        }
    }

    /// A sweeper like this one (same store, browser, metrics and baseline cache) with other
    /// plugins and retention: what crawls started after a config reload use.
    pub fn reconfigured(&self, plugins: Option<Arc<PluginHost>>, keep_crawls: usize) -> Sweeper<C> {
        Sweeper {
            store: self.store.clone(),
            capturer: self.capturer.clone(),
            metrics: self.metrics.clone(),
            comparer: Comparer { plugins, ..self.comparer.clone() },
            concurrency: self.concurrency,
            keep_crawls,
        }
    }

    /// The plugins crawls of this sweeper run.
    pub fn plugins(&self) -> Option<Arc<PluginHost>> {
        self.comparer.plugins.clone()
    }

    /// Crawl `site` now. Returns the finished crawl record (status `reviewing`, `passed` when
    /// there is nothing to review, or `interrupted` when `cancel` fired first).
    pub async fn run(
        &self,
        site: &SiteConfig,
        cancel: CancellationToken,
        observer: Arc<dyn SweepObserver>,
    ) -> Result<CrawlRecord, SweepError> {
        self.run_full(site, false, cancel, observer).await
    }

    /// [`Sweeper::run`], every page rendered when `full` (no approved capture reused).
    pub async fn run_full(
        &self,
        site: &SiteConfig,
        full: bool,
        cancel: CancellationToken,
        observer: Arc<dyn SweepObserver>,
    ) -> Result<CrawlRecord, SweepError> {
        let crawl = self.begin_full(site, full).await?;
        self.run_begun(site, crawl, cancel, observer).await
    }

    /// Record the start of a crawl of `site` (status `running`, its id allocated) without running
    /// it yet: [`Sweeper::run_begun`] runs it, [`Sweeper::abandon`] gives it up.
    pub async fn begin(&self, site: &SiteConfig) -> Result<CrawlRecord, SweepError> {
        self.begin_full(site, false).await
    }

    /// [`Sweeper::begin`]; the crawl is incremental (approved captures may be reused) when the site
    /// has `incremental` on, `full` is not asked and its `full_every` is not due (see
    /// [`full_sweep_due`]).
    pub async fn begin_full(&self, site: &SiteConfig, full: bool) -> Result<CrawlRecord, SweepError> {
        let store = self.store.clone();
        let (name, prefix) = (site.name.clone(), site.scope.prefix().to_string());
        let compare_to = site.compare_to.as_ref().map(|u| u.to_string());
        let (incremental, full_every) = (site.incremental && !full, site.full_every);
        blocking(&site.name, move || {
            let kind = if compare_to.is_some() { CrawlKind::Pair } else { CrawlKind::Site };
            let earlier = if incremental { store.crawls(&name)? } else { Vec::new() };
            let mut rec = store.begin_crawl(&name, kind, &prefix, compare_to.as_deref())?;
            rec.incremental = incremental && kind == CrawlKind::Site && !full_sweep_due(full_every, &earlier);
            if rec.incremental {
                store.update_crawl(&rec)?;
            }
            Ok(rec)
        })
        .await?
        .map_err(|source| SweepError::Store { site: site.name.clone(), source })
    }

    /// Give up a begun crawl that never ran (the daemon stopped first): `interrupted`, no pages.
    pub async fn abandon(&self, crawl: CrawlRecord) {
        let rec = CrawlRecord {
            status: CrawlStatus::Interrupted,
            finished_at: Some(now_ms()),
            error: Some(NOT_STARTED_REASON.into()),
            ..crawl
        };
        record_failure(&self.store, rec).await;
    }

    /// Run a crawl recorded by [`Sweeper::begin`] and return its finished record.
    pub async fn run_begun(
        &self,
        site: &SiteConfig,
        crawl: CrawlRecord,
        cancel: CancellationToken,
        observer: Arc<dyn SweepObserver>,
    ) -> Result<CrawlRecord, SweepError> {
        let started = Instant::now();
        let store_err = |source| SweepError::Store { site: site.name.clone(), source };
        let store = self.store.clone();
        let name = site.name.clone();
        let kind = crawl.kind;
        // The baselines and the approved crawl the structure is taken against, in one snapshot.
        let basis = blocking(&site.name, move || match kind {
            CrawlKind::Pair => Ok(ComparisonBasis::default()),
            _ => store.comparison_basis(&name),
        })
        .await
        .and_then(|r| r.map_err(store_err));
        let basis = match basis {
            Ok(b) => b,
            Err(e) => {
                record_failure(&self.store, failed_record(&crawl, &e)).await;
                return Err(e);
            }
        };
        observer.started(&crawl);
        if let Some(m) = &self.metrics {
            m.register_site(&site.name);
        }
        tracing::info!(site = %site.name, crawl = crawl.id, "crawl started");

        let run = SweepRun { crawl_id: crawl.id, started };
        let result = match &site.compare_to {
            Some(base) => self.pair_pipeline(site, base, run, cancel.clone(), observer).await,
            None => match self.reuse_checks(site, crawl.incremental).await {
                Ok(reuse) => {
                    self.pipeline(site, run, Arc::new(basis.baselines), reuse, cancel.clone(), observer).await
                }
                Err(e) => Err(e),
            },
        };
        let (records, stats) = match result {
            Ok(v) => v,
            Err(e) => {
                record_failure(&self.store, failed_record(&crawl, &e)).await;
                if let Some(m) = &self.metrics {
                    m.crawl_ended(&site.name, CrawlStatus::Failed, started.elapsed().as_secs_f64());
                }
                return Err(e);
            }
        };
        if let Some(message) = advice::start_failure(site, &stats).filter(|_| !cancel.is_cancelled()) {
            let e = SweepError::StartPage { site: site.name.clone(), message };
            // The pages it has (e.g. from `urls`) are kept with the failed crawl.
            let rec = finished_record(crawl, &stats, &records, false);
            record_failure(&self.store, failed_record(&rec, &e)).await;
            return Err(e);
        }

        let mut rec = finished_record(crawl, &stats, &records, cancel.is_cancelled());
        rec.warnings = advice::warnings(site, &stats);
        for w in &rec.warnings {
            tracing::warn!(site = %site.name, crawl = rec.id, "{w}");
        }
        let store = self.store.clone();
        let mut to_store = rec.clone();
        let keep = self.keep_crawls;
        let name = site.name.clone();
        let mut pages = records;
        let against = basis.against;
        let (rec, pages, retention) = blocking(&site.name, move || {
            let r = store_finished_crawl(&store, &mut to_store, against, &mut pages, &name, keep)?;
            Ok::<_, StoreError>((to_store, pages, r))
        })
        .await?
        .map_err(store_err)?;
        if retention.crawls_removed > 0 {
            tracing::info!(
                site = %site.name, crawls = retention.crawls_removed, artifacts = retention.blobs_removed,
                "old crawls removed"
            );
        }
        if let Some(m) = &self.metrics {
            m.crawl_ended(&site.name, rec.status, started.elapsed().as_secs_f64());
            if settle::is_completed(rec.status) {
                settle::export_last_crawl(m, &rec, site.page_metrics.then_some(pages.as_slice()));
            }
        }
        tracing::info!(
            site = %site.name, crawl = rec.id, status = %rec.status, pages = rec.counts.pages,
            changed = rec.counts.changed, failed = rec.counts.failed,
            still_failing = rec.counts.still_failing, "crawl finished"
        );
        Ok(rec)
    }

    /// The reuse checks and fingerprints of a crawl of `site` (`allowed`: it is incremental).
    async fn reuse_checks(&self, site: &SiteConfig, allowed: bool) -> Result<Arc<Reuse>, SweepError> {
        let environment = self.capturer.environment().await;
        let plugins = self.comparer.plugins.clone();
        let site_cfg = site.clone();
        let reuse =
            blocking(&site.name, move || Reuse::new(&site_cfg, allowed, environment, plugins.as_deref()))
                .await??;
        if allowed && !reuse.allowed() {
            tracing::info!(site = %site.name, "a score plugin is configured: every page is rendered");
        }
        Ok(Arc::new(reuse))
    }

    async fn pipeline(
        &self,
        site: &SiteConfig,
        run: SweepRun,
        baselines: Arc<HashMap<String, BaselineRecord>>,
        reuse: Arc<Reuse>,
        cancel: CancellationToken,
        observer: Arc<dyn SweepObserver>,
    ) -> Result<(Vec<PageRecord>, DiscoveryStats), SweepError> {
        let client = crawl::http_client(
            &site.name,
            &site.scope,
            site.request_timeout,
            &request_options(&site.capture),
        )?;
        let mut seeds = Vec::new();
        let start = (site.crawl || site.urls.is_empty()).then(|| site.start.clone());
        seeds.extend(start.clone());
        seeds.extend(site.urls.iter().cloned());
        let plan = DiscoveryPlan {
            site: site.name.clone(),
            scope: site.scope.clone(),
            start,
            seeds,
            follow_links: site.crawl,
            max_pages: site.max_pages,
            max_query_variants: site.max_query_variants,
            request_timeout: site.request_timeout,
        };
        let (tx, rx) = mpsc::channel(DISCOVERY_BUFFER);
        let discovery = tokio::spawn(crawl::discover(plan, client, tx, cancel.clone()));

        let site = Arc::new(site.clone());
        let options = Arc::new(site.capture.clone());
        let stream = tokio_stream_from(rx).take_until(cancel.clone().cancelled_owned());
        let viewports = site.viewports.clone();
        let records: Vec<Result<PageRecord, SweepError>> = stream
            .flat_map(|page| futures::stream::iter(viewport_pages(page, &viewports)))
            .map(|(page, viewport)| {
                observer.discovered(&page);
                let site = site.clone();
                let options = options.clone();
                let baselines = baselines.clone();
                let observer = observer.clone();
                let reuse = reuse.clone();
                async move {
                    let rec =
                        self.process_page(&site, run, page, viewport, options, &baselines, &reuse).await?;
                    self.page_done(&site, &rec, &*observer);
                    Ok(rec)
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let stats = discovery.await.map_err(|source| SweepError::Task { site: site.name.clone(), source })?;
        let records = records.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok((records, stats))
    }

    /// A page is processed and stored: metrics, a debug line with its step timings, the observer.
    fn page_done(&self, site: &SiteConfig, rec: &PageRecord, observer: &dyn SweepObserver) {
        if let Some(m) = &self.metrics {
            m.page_captured(&site.name, rec.outcome);
            if rec.truncated {
                m.page_truncated(&site.name);
            }
        }
        let t = &rec.timing;
        tracing::debug!(
            site = %site.name, page = %rec.key, outcome = ?rec.outcome, fetch_ms = t.fetch_ms,
            navigate_ms = t.navigate_ms, settle_ms = t.settle_ms, screenshot_ms = t.screenshot_ms,
            diff_ms = t.diff_ms, "page done"
        );
        observer.page_done(rec);
    }

    #[allow(clippy::too_many_arguments)]
    async fn process_page(
        &self,
        site: &Arc<SiteConfig>,
        run: SweepRun,
        page: DiscoveredPage,
        viewport: crate::config::Viewport,
        options: Arc<crate::config::CaptureOptions>,
        baselines: &HashMap<String, BaselineRecord>,
        reuse: &Reuse,
    ) -> Result<PageRecord, SweepError> {
        let store_err = |source| SweepError::Store { site: site.name.clone(), source };
        if let Some(rec) = self.try_reuse(site, run, &page, viewport, &options, baselines, reuse).await? {
            return Ok(rec);
        }
        let record = match &page.result {
            FetchResult::HttpError { status, reason } => {
                let mut r = http_error_record(&page, *status, reason.clone());
                r.baseline_crawl = baselines.get(&page.key).map(|b| b.crawl);
                r
            }
            FetchResult::Page { status, title } => {
                let (viewport, options) = site.capture_for(&page.key, viewport, &options);
                let req = CaptureRequest {
                    site: site.name.clone(),
                    url: page.url.clone(),
                    scope: site.scope.clone(),
                    viewport,
                    options,
                    expected_png: baselines.get(&page.key).map(|b| b.png.0),
                    sweep_started: run.started,
                };
                let (req_viewport, req_options) = (req.viewport, req.options.clone());
                match self.capturer.capture(req).await {
                    Err(e) => capture_error_record(&site.name, &page, *status, title.clone(), &e),
                    Ok(capture) => {
                        let fingerprint = match &capture.inputs {
                            Some(inputs) => {
                                reuse.fingerprint(&page, req_viewport, &req_options, inputs).await
                            }
                            None => None,
                        };
                        let comparer = self.comparer.clone();
                        let site = site.clone();
                        let baseline = baselines.get(&page.key).cloned();
                        let status = *status;
                        let title = title.clone();
                        let name = site.name.clone();
                        return blocking(&name, move || {
                            let mut c = comparer.compare(&site, &page, status, title, capture, baseline)?;
                            c.record.fingerprint = fingerprint;
                            let blobs: Vec<Blob<'_>> = c.blobs.iter().map(|b| Blob::new(b)).collect();
                            comparer.store.put_page(run.crawl_id, &c.record, &blobs)?;
                            Ok::<_, StoreError>(c.record)
                        })
                        .await?
                        .map_err(|source| SweepError::Store { site: name.clone(), source });
                    }
                }
            }
        };
        let store = self.store.clone();
        let rec = record.clone();
        blocking(&site.name, move || store.put_page(run.crawl_id, &rec, &[])).await?.map_err(store_err)?;
        Ok(record)
    }
}

impl<C: Capturer + 'static> Sweeper<C> {
    /// Reuse the approved capture of `page` when its fingerprint inputs are all unchanged (see
    /// `reuse`): the page is recorded unchanged, with `reused_from` the approved crawl, and stored.
    /// `None`: it is to be rendered.
    #[allow(clippy::too_many_arguments)]
    async fn try_reuse(
        &self,
        site: &SiteConfig,
        run: SweepRun,
        page: &DiscoveredPage,
        viewport: crate::config::Viewport,
        options: &Arc<crate::config::CaptureOptions>,
        baselines: &HashMap<String, BaselineRecord>,
        reuse: &Reuse,
    ) -> Result<Option<PageRecord>, SweepError> {
        let store_err = |source| SweepError::Store { site: site.name.clone(), source };
        let FetchResult::Page { status, title } = &page.result else { return Ok(None) };
        let Some(baseline) = baselines.get(&page.key).filter(|_| reuse.allowed()).cloned() else {
            return Ok(None);
        };
        let store = self.store.clone();
        let key = page.key.clone();
        let approved =
            blocking(&site.name, move || store.page(baseline.crawl, &key)).await?.map_err(store_err)?;
        let Some(approved) = approved.filter(|p| p.png == Some(baseline.png) && p.outcome == PageOutcome::Ok)
        else {
            return Ok(None);
        };
        let Some(fp) = approved.fingerprint.as_ref() else { return Ok(None) };
        let (viewport, options) = site.capture_for(&page.key, viewport, options);
        if let Err(why) = reuse.check(page, viewport, &options, fp).await {
            tracing::debug!(site = %site.name, page = %page.key, why, dynamic = ?fp.dynamic, "rendered, not reused");
            return Ok(None);
        }
        let rec = reused_record(page, *status, title.clone(), approved, &baseline);
        let store = self.store.clone();
        let stored = rec.clone();
        blocking(&site.name, move || store.put_page(run.crawl_id, &stored, &[])).await?.map_err(store_err)?;
        if let Some(m) = &self.metrics {
            m.page_reused(&site.name);
        }
        Ok(Some(rec))
    }
}

/// The record of a page whose approved capture (`approved`, the page of the baseline's crawl) is
/// reused: unchanged against its baseline, nothing rendered or diffed.
fn reused_record(
    page: &DiscoveredPage,
    status: u16,
    title: Option<String>,
    approved: PageRecord,
    baseline: &BaselineRecord,
) -> PageRecord {
    PageRecord {
        key: page.key.clone(),
        url: page.url.to_string(),
        title: title.or(approved.title),
        outcome: PageOutcome::Ok,
        change: crate::store::PageChange::Unchanged,
        http_status: Some(status),
        png: Some(baseline.png),
        html: approved.html,
        diff: None,
        width: approved.width,
        height: approved.height,
        truncated: approved.truncated,
        baseline_crawl: Some(baseline.crawl),
        baseline_png: Some(baseline.png),
        diff_pixels: 0,
        distortion: Some(0.0),
        score: None,
        score_reason: None,
        size_changed: false,
        regions: Vec::new(),
        error: None,
        timing: crate::store::PageTiming { fetch_ms: page.fetch_ms, ..Default::default() },
        approved: false,
        baseline_mask_rects: approved.mask_rects.clone(),
        mask_rects: approved.mask_rects,
        unstable_area: None,
        unstable_rect: None,
        blocked_navigations: approved.blocked_navigations,
        redirected_from: page.redirected_from.clone(),
        baseline_html: baseline.html,
        referrer: page.referrer.clone(),
        // The same capture: its thumbnail is the approved one; nothing differs, so no preview,
        // no group, and nothing was compared under ignore areas.
        thumb: approved.thumb,
        change_preview: None,
        group: None,
        ignored: Vec::new(),
        fingerprint: approved.fingerprint,
        reused_from: Some(baseline.crawl),
    }
}

/// Whether a crawl must render every page by the site's `full_every` (`N`): when the site's last
/// `N - 1` crawls (`earlier`, newest first, as [`Store::crawls`] lists them) were all incremental
/// (`N = 1`: always). Crawls that did not finish (running, failed, interrupted) do not count.
pub fn full_sweep_due(full_every: Option<u32>, earlier: &[CrawlRecord]) -> bool {
    let Some(n) = full_every else { return false };
    let finished = earlier.iter().filter(|c| {
        !matches!(c.status, CrawlStatus::Failed | CrawlStatus::Interrupted | CrawlStatus::Running)
    });
    let recent: Vec<&CrawlRecord> = finished.take(n.saturating_sub(1) as usize).collect();
    recent.len() + 1 >= n as usize && recent.iter().all(|c| c.incremental)
}

/// What discovery sends with every request: the site's headers, cookies, basic auth and user agent.
fn request_options(o: &crate::config::CaptureOptions) -> crawl::RequestOptions {
    crawl::RequestOptions {
        headers: o.headers.clone(),
        cookies: o.cookies.iter().map(|c| (c.name.clone(), c.value.clone())).collect(),
        basic_auth: o.basic_auth.as_ref().map(|a| (a.user.clone(), a.password.clone())),
        user_agent: o.user_agent.clone(),
    }
}

/// One job per viewport for a discovered page: the first viewport keeps the page key, the others
/// get `@WIDTH` appended. Pages that failed to fetch are recorded once.
fn viewport_pages(
    page: DiscoveredPage,
    viewports: &[crate::config::Viewport],
) -> Vec<(DiscoveredPage, crate::config::Viewport)> {
    let Some((&first, rest)) = viewports.split_first() else { return Vec::new() };
    let mut jobs = Vec::with_capacity(viewports.len());
    if matches!(page.result, FetchResult::Page { .. }) {
        for &vp in rest {
            let mut p = page.clone();
            p.key = format!("{}@{}", page.key, vp.width);
            jobs.push((p, vp));
        }
    }
    jobs.insert(0, (page, first));
    jobs
}

/// Why a crawl stopped when the sweep was cancelled.
pub const INTERRUPTED_REASON: &str = "sitediff was stopped during the crawl";
/// Why a begun crawl never ran.
pub const NOT_STARTED_REASON: &str = "sitediff was stopped before the crawl started";

/// The record of a crawl whose pages are all processed: finished now, discovery's skip counts,
/// page tallies, and `reviewing` (or `interrupted` when the sweep was cancelled).
fn finished_record(
    mut rec: CrawlRecord,
    stats: &DiscoveryStats,
    pages: &[PageRecord],
    cancelled: bool,
) -> CrawlRecord {
    rec.finished_at = Some(now_ms());
    rec.counts.skipped_non_html = stats.skipped_non_html;
    rec.counts.skipped_max_pages = stats.skipped_max_pages;
    rec.counts.skipped_query_variants = stats.skipped_query_variants;
    rec.counts.skipped_off_prefix_redirect = stats.skipped_off_prefix_redirect;
    rec.tally(pages);
    if cancelled {
        rec.status = CrawlStatus::Interrupted;
        rec.error = Some(INTERRUPTED_REASON.into());
    } else {
        rec.status = CrawlStatus::Reviewing;
    }
    rec
}

/// The record of a crawl stopped by `error`: `failed`, finished now, with the error's message.
fn failed_record(crawl: &CrawlRecord, error: &SweepError) -> CrawlRecord {
    CrawlRecord {
        status: CrawlStatus::Failed,
        finished_at: Some(now_ms()),
        error: Some(error.to_string()),
        ..crawl.clone()
    }
}

/// Write the record of a failed crawl. The crawl's own error is what the caller reports, so a
/// failure to store this is logged, not returned (the crawl then stays `running` until the next
/// start marks it `interrupted`).
async fn record_failure(store: &Store, rec: CrawlRecord) {
    let (site, id) = (rec.site.clone(), rec.id);
    let store = store.clone();
    match blocking(&site, move || store.update_crawl(&rec)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(site = %site, crawl = id, error = %e, "cannot record the crawl as failed")
        }
        Err(e) => tracing::warn!(site = %site, crawl = id, error = %e, "cannot record the crawl as failed"),
    }
}

/// Store a finished crawl: its structural diff against the approved crawl `against` (read with
/// its baselines when it started), its settling (pages failing as in the approved crawl are still
/// failing, in `pages` too; nothing to review: passed), the record with the restated pages, then
/// retention of the site's old crawls. Blocking.
pub(crate) fn store_finished_crawl(
    store: &Store,
    rec: &mut CrawlRecord,
    against: Option<u64>,
    pages: &mut [PageRecord],
    site: &str,
    keep_crawls: usize,
) -> Result<RetentionReport, StoreError> {
    rec.structure = Some(crate::structure::of_crawl(store, rec, against, pages)?);
    let restated = settle::settle_finished(store, rec, pages)?;
    store.finish_crawl(rec, &restated)?;
    store.apply_retention(site, keep_crawls)
}

/// The record of a page that answered an HTTP error (or no answer) during discovery.
fn http_error_record(page: &DiscoveredPage, status: Option<u16>, reason: String) -> PageRecord {
    let mut r = PageRecord::failed(page.key.clone(), page.url.to_string(), PageOutcome::HttpError, reason);
    r.http_status = status;
    r.timing.fetch_ms = page.fetch_ms;
    r.redirected_from = page.redirected_from.clone();
    r.referrer = page.referrer.clone();
    r
}

/// The record of a page the browser could not capture (logged once here).
fn capture_error_record(
    site: &str,
    page: &DiscoveredPage,
    status: u16,
    title: Option<String>,
    e: &crate::capture::CaptureError,
) -> PageRecord {
    tracing::warn!(site = %site, url = %page.url, error = %e, "capture failed");
    let mut r =
        PageRecord::failed(page.key.clone(), page.url.to_string(), PageOutcome::CaptureError, e.to_string());
    r.http_status = Some(status);
    r.title = title;
    r.timing.fetch_ms = page.fetch_ms;
    r.referrer = page.referrer.clone();
    r
}

/// Run blocking work on the blocking pool, mapping a panic/cancel of the task to a sweep error.
async fn blocking<T: Send + 'static>(
    site: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SweepError> {
    tokio::task::spawn_blocking(f).await.map_err(|source| SweepError::Task { site: site.to_string(), source })
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
pub(crate) mod tests;
