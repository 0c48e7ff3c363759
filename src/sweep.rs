//! One crawl of a site, end to end: discovery -> capture -> diff against baselines -> store,
//! pipelined so the browser never waits for our CPU work (diff and storage run on the blocking pool).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::capture::{Capture, CaptureRequest, Capturer};
use crate::config::SiteConfig;
use crate::crawl::{self, DiscoveredPage, DiscoveryPlan, DiscoveryStats, FetchResult};
use crate::diff::{self, DiffOptions};
use crate::metrics::Metrics;
use crate::store::{
    now_ms, BaselineRecord, Blob, CrawlKind, CrawlRecord, CrawlStatus, PageChange, PageOutcome, PageRecord,
    PageTiming, Store, StoreError,
};

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
    #[error("site {site}: a worker task failed: {reason}")]
    Task { site: String, reason: String },
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

/// Runs crawls of sites against one store and one capturer.
pub struct Sweeper<C: Capturer + 'static> {
    pub store: Store,
    pub capturer: Arc<C>,
    pub metrics: Option<Metrics>,
    /// Pages in flight at once (capture + diff); sized from the browser session count.
    pub concurrency: usize,
    /// Crawls kept per site besides those holding baselines (`store.keep_crawls`).
    pub keep_crawls: usize,
}

impl<C: Capturer + 'static> Sweeper<C> {
    /// Crawl `site` now. Returns the finished crawl record (status `reviewing`, or `interrupted`
    /// when `cancel` fired first).
    pub async fn run(
        &self,
        site: &SiteConfig,
        cancel: CancellationToken,
        observer: Arc<dyn SweepObserver>,
    ) -> Result<CrawlRecord, SweepError> {
        let started = Instant::now();
        let store_err = |source| SweepError::Store { site: site.name.clone(), source };
        let store = self.store.clone();
        let (name, prefix) = (site.name.clone(), site.scope.prefix().to_string());
        let (crawl, baselines) = blocking(&site.name, move || {
            let c = store.begin_crawl(&name, CrawlKind::Site, &prefix, None)?;
            let b: HashMap<String, BaselineRecord> = store.baselines(&name)?.into_iter().collect();
            Ok::<_, StoreError>((c, b))
        })
        .await?
        .map_err(store_err)?;
        observer.started(&crawl);
        if let Some(m) = &self.metrics {
            m.register_site(&site.name);
        }
        tracing::info!(site = %site.name, crawl = crawl.id, "crawl started");

        let result = self.pipeline(site, &crawl, Arc::new(baselines), cancel.clone(), observer).await;
        let (records, stats) = match result {
            Ok(v) => v,
            Err(e) => {
                let mut failed = crawl.clone();
                failed.status = CrawlStatus::Failed;
                failed.finished_at = Some(now_ms());
                failed.error = Some(e.to_string());
                let store = self.store.clone();
                let rec = failed.clone();
                let _ = blocking(&site.name, move || store.update_crawl(&rec)).await;
                return Err(e);
            }
        };

        let mut rec = crawl;
        rec.finished_at = Some(now_ms());
        rec.counts.pages = records.len() as u32;
        rec.counts.skipped_non_html = stats.skipped_non_html;
        rec.counts.skipped_max_pages = stats.skipped_max_pages;
        rec.counts.skipped_query_variants = stats.skipped_query_variants;
        rec.counts.skipped_off_prefix_redirect = stats.skipped_off_prefix_redirect;
        for p in &records {
            match p.change {
                PageChange::Changed => rec.counts.changed += 1,
                PageChange::Unchanged => rec.counts.unchanged += 1,
                PageChange::New => rec.counts.new += 1,
                PageChange::Failed => rec.counts.failed += 1,
            }
            if let Some(d) = p.distortion {
                rec.max_distortion = rec.max_distortion.max(d);
            }
        }
        if cancel.is_cancelled() {
            rec.status = CrawlStatus::Interrupted;
            rec.error = Some("sitediff was stopped during the crawl".into());
        } else {
            rec.status = CrawlStatus::Reviewing;
        }
        let store = self.store.clone();
        let to_store = rec.clone();
        let keep = self.keep_crawls;
        let name = site.name.clone();
        let retention = blocking(&site.name, move || {
            store.update_crawl(&to_store)?;
            store.apply_retention(&name, keep)
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
            m.crawl_finished(
                &site.name,
                rec.status,
                started.elapsed().as_secs_f64(),
                rec.finished_at.unwrap_or_else(now_ms) as f64 / 1000.0,
                rec.counts.changed,
                rec.max_distortion,
            );
            if rec.status == CrawlStatus::Reviewing {
                if site.page_metrics {
                    m.set_page_distortions(
                        &site.name,
                        records.iter().filter_map(|p| p.distortion.map(|d| (p.key.as_str(), d))),
                    );
                } else {
                    m.clear_page_distortions(&site.name);
                }
            }
        }
        tracing::info!(
            site = %site.name, crawl = rec.id, status = %rec.status, pages = rec.counts.pages,
            changed = rec.counts.changed, failed = rec.counts.failed, "crawl finished"
        );
        Ok(rec)
    }

    async fn pipeline(
        &self,
        site: &SiteConfig,
        crawl: &CrawlRecord,
        baselines: Arc<HashMap<String, BaselineRecord>>,
        cancel: CancellationToken,
        observer: Arc<dyn SweepObserver>,
    ) -> Result<(Vec<PageRecord>, DiscoveryStats), SweepError> {
        let client = crawl::http_client(&site.name, &site.scope, site.request_timeout, &site.capture)?;
        let mut seeds = Vec::new();
        if site.crawl || site.urls.is_empty() {
            seeds.push(site.start.clone());
        }
        seeds.extend(site.urls.iter().cloned());
        let plan = DiscoveryPlan {
            site: site.name.clone(),
            scope: site.scope.clone(),
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
        let crawl_id = crawl.id;
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
                async move {
                    let rec = self.process_page(&site, crawl_id, page, viewport, options, &baselines).await?;
                    if let Some(m) = &self.metrics {
                        m.page_captured(&site.name, rec.outcome);
                    }
                    observer.page_done(&rec);
                    Ok(rec)
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let stats = discovery
            .await
            .map_err(|e| SweepError::Task { site: site.name.clone(), reason: e.to_string() })?;
        let records = records.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok((records, stats))
    }

    async fn process_page(
        &self,
        site: &Arc<SiteConfig>,
        crawl_id: u64,
        page: DiscoveredPage,
        viewport: crate::config::Viewport,
        options: Arc<crate::config::CaptureOptions>,
        baselines: &HashMap<String, BaselineRecord>,
    ) -> Result<PageRecord, SweepError> {
        let store_err = |source| SweepError::Store { site: site.name.clone(), source };
        let record = match &page.result {
            FetchResult::HttpError { status, reason } => {
                let mut r = PageRecord::failed(
                    page.key.clone(),
                    page.url.to_string(),
                    PageOutcome::HttpError,
                    reason.clone(),
                );
                r.http_status = *status;
                r.timing.fetch_ms = page.fetch_ms;
                r.baseline_crawl = baselines.get(&page.key).map(|b| b.crawl);
                r
            }
            FetchResult::Page { status, title } => {
                let req = CaptureRequest {
                    site: site.name.clone(),
                    url: page.url.clone(),
                    scope: site.scope.clone(),
                    viewport,
                    options,
                };
                match self.capturer.capture(req).await {
                    Err(e) => {
                        tracing::warn!(site = %site.name, url = %page.url, error = %e, "capture failed");
                        let mut r = PageRecord::failed(
                            page.key.clone(),
                            page.url.to_string(),
                            PageOutcome::CaptureError,
                            e.to_string(),
                        );
                        r.http_status = Some(*status);
                        r.title = title.clone();
                        r.timing.fetch_ms = page.fetch_ms;
                        r
                    }
                    Ok(capture) => {
                        let store = self.store.clone();
                        let site = site.clone();
                        let baseline = baselines.get(&page.key).cloned();
                        let metrics = self.metrics.clone();
                        let status = *status;
                        let title = title.clone();
                        let name = site.name.clone();
                        return blocking(&name, move || {
                            let rec = compare_capture(
                                &store, &site, &page, status, title, capture, baseline, metrics,
                            )?;
                            store.put_page(
                                crawl_id,
                                &rec.0,
                                &rec.1.iter().map(|b| Blob::new(b)).collect::<Vec<_>>(),
                            )?;
                            Ok::<_, StoreError>(rec.0)
                        })
                        .await?
                        .map_err(|source| SweepError::Store { site: name.clone(), source });
                    }
                }
            }
        };
        let store = self.store.clone();
        let rec = record.clone();
        blocking(&site.name, move || store.put_page(crawl_id, &rec, &[])).await?.map_err(store_err)?;
        Ok(record)
    }
}

/// Compare a capture with its baseline. Returns the page record and the artifacts to store.
#[allow(clippy::too_many_arguments)]
fn compare_capture(
    store: &Store,
    site: &SiteConfig,
    page: &DiscoveredPage,
    http_status: u16,
    fetched_title: Option<String>,
    capture: Capture,
    baseline: Option<BaselineRecord>,
    metrics: Option<Metrics>,
) -> Result<(PageRecord, Vec<Vec<u8>>), StoreError> {
    let png_hash = crate::store::Hash::of(&capture.png);
    let html_bytes = capture.html.into_bytes();
    let html_hash = crate::store::Hash::of(&html_bytes);
    let mut rec = PageRecord {
        key: page.key.clone(),
        url: page.url.to_string(),
        title: capture.title.or(fetched_title),
        outcome: PageOutcome::Ok,
        change: PageChange::New,
        http_status: Some(http_status),
        png: Some(png_hash),
        html: Some(html_hash),
        diff: None,
        width: capture.width,
        height: capture.height,
        truncated: capture.truncated,
        baseline_crawl: baseline.as_ref().map(|b| b.crawl),
        baseline_png: baseline.as_ref().map(|b| b.png),
        diff_pixels: 0,
        distortion: None,
        score: None,
        score_reason: None,
        size_changed: false,
        regions: Vec::new(),
        error: None,
        timing: PageTiming {
            fetch_ms: page.fetch_ms,
            navigate_ms: capture.timing.navigate_ms,
            settle_ms: capture.timing.settle_ms,
            screenshot_ms: capture.timing.screenshot_ms,
            diff_ms: 0,
        },
        approved: false,
    };
    let mut blobs = vec![capture.png, html_bytes];
    if let Some(b) = baseline {
        let started = Instant::now();
        if b.png == png_hash {
            rec.distortion = Some(0.0);
        } else {
            let base_png = store.blob(&b.png)?;
            match base_png {
                None => {
                    rec.error = Some(format!("baseline artifact {} is missing; page treated as new", b.png));
                    rec.baseline_crawl = None;
                    rec.baseline_png = None;
                }
                Some(base_png) => {
                    let opts = DiffOptions {
                        threshold: site.threshold,
                        include_aa: site.count_aa,
                        diff_image: true,
                        ..DiffOptions::default()
                    };
                    match diff::compare_png(&base_png, &blobs[0], &opts) {
                        Ok(outcome) => {
                            rec.diff_pixels = outcome.diff_pixels;
                            rec.distortion = Some(outcome.distortion);
                            rec.size_changed = outcome.size_changed;
                            rec.regions = outcome.regions.clone();
                            if outcome.diff_pixels > 0 {
                                if let Some(img) = &outcome.diff_image {
                                    match diff::encode_png(img) {
                                        Ok(png) => {
                                            rec.diff = Some(crate::store::Hash::of(&png));
                                            blobs.push(png);
                                        }
                                        Err(e) => rec.error = Some(e.to_string()),
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            rec.outcome = PageOutcome::CaptureError;
                            rec.change = PageChange::Failed;
                            rec.error = Some(e.to_string());
                        }
                    }
                }
            }
        }
        rec.timing.diff_ms = started.elapsed().as_millis() as u64;
        if let Some(m) = &metrics {
            m.diff_observed(started.elapsed().as_secs_f64());
        }
        if let Some(d) = rec.distortion {
            rec.score = Some(d);
            rec.change = if d > site.max_distortion { PageChange::Changed } else { PageChange::Unchanged };
        }
    }
    Ok((rec, blobs))
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

/// Run blocking work on the blocking pool, mapping a panic/cancel of the task to a sweep error.
async fn blocking<T: Send + 'static>(
    site: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SweepError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SweepError::Task { site: site.to_string(), reason: e.to_string() })
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
