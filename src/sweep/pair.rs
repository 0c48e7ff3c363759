//! Pair sweeps (Pair Diff): the site's prefix (the head) is crawled and every page is captured
//! together with the page of the same key under `compare_to` (the base); the base capture plays the
//! baseline. Both sides are discovered: a head page whose base URL answers 4xx is `added`; a page
//! discovered on the base side whose head URL answers 4xx is `removed` (its base capture is kept
//! for review). A base page that the head merely does not link to is compared like any other.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{blocking, tokio_stream_from, SweepError, SweepObserver, SweepRun, Sweeper, DISCOVERY_BUFFER};
use crate::capture::{Capture, CaptureError, CaptureRequest, Capturer};
use crate::compare::capture_record;
use crate::config::SiteConfig;
use crate::crawl::links::Scope;
use crate::crawl::{self, DiscoveredPage, DiscoveryPlan, DiscoveryStats, FetchResult};
use crate::store::{Blob, Hash, PageChange, PageOutcome, PageRecord, StoreError};

/// What the other side has under a page key.
enum Counterpart {
    /// An HTML page to capture.
    Page(DiscoveredPage),
    /// Nothing there: 4xx, a non-HTML answer or a redirect out of the prefix.
    Absent,
    /// The other side failed to answer (5xx, timeout, connection refused): cannot compare.
    Broken(String),
}

/// Classify the other side's answer under a key.
fn counterpart(found: Option<DiscoveredPage>) -> Counterpart {
    match found {
        None => Counterpart::Absent,
        Some(p) => match &p.result {
            FetchResult::Page { .. } => Counterpart::Page(p),
            FetchResult::HttpError { status: Some(s), .. } if (400..500).contains(s) => Counterpart::Absent,
            FetchResult::HttpError { reason, .. } => Counterpart::Broken(format!("{}: {reason}", p.url)),
        },
    }
}

/// The discovery plan of one side of a pair: the site's seeds moved under `scope`.
fn side_plan(site: &SiteConfig, scope: &Scope) -> DiscoveryPlan {
    let rebase = |u: &Url| site.scope.page_key(u).and_then(|k| scope.url_for_key(&k));
    let mut seeds = Vec::new();
    let start = if site.crawl || site.urls.is_empty() { rebase(&site.start) } else { None };
    seeds.extend(start.clone());
    seeds.extend(site.urls.iter().filter_map(rebase));
    DiscoveryPlan {
        site: site.name.clone(),
        scope: scope.clone(),
        start,
        seeds,
        follow_links: site.crawl,
        max_pages: site.max_pages,
        max_query_variants: site.max_query_variants,
        request_timeout: site.request_timeout,
    }
}

impl<C: Capturer + 'static> Sweeper<C> {
    /// The pair pipeline: head pages stream into capture as discovery finds them; base-only pages
    /// are handled once both discoveries are done. Returns the head side's discovery stats.
    pub(super) async fn pair_pipeline(
        &self,
        site: &SiteConfig,
        base: &Url,
        run: SweepRun,
        cancel: CancellationToken,
        observer: Arc<dyn SweepObserver>,
    ) -> Result<(Vec<PageRecord>, DiscoveryStats), SweepError> {
        let base_scope = Scope::new(base);
        let request = super::request_options(&site.capture);
        let head_client = crawl::http_client(&site.name, &site.scope, site.request_timeout, &request)?;
        let base_client = crawl::http_client(&site.name, &base_scope, site.request_timeout, &request)?;
        let (htx, hrx) = mpsc::channel(DISCOVERY_BUFFER);
        let (btx, mut brx) = mpsc::channel::<DiscoveredPage>(DISCOVERY_BUFFER);
        let head_discovery = tokio::spawn(crawl::discover(
            side_plan(site, &site.scope),
            head_client.clone(),
            htx,
            cancel.clone(),
        ));
        let base_discovery = tokio::spawn(crawl::discover(
            side_plan(site, &base_scope),
            base_client.clone(),
            btx,
            cancel.clone(),
        ));
        let base_pages = tokio::spawn(async move {
            let mut pages = HashMap::new();
            while let Some(p) = brx.recv().await {
                pages.entry(p.key.clone()).or_insert(p);
            }
            pages
        });

        let site = Arc::new(site.clone());
        let task_err = |source: tokio::task::JoinError| SweepError::Task { site: site.name.clone(), source };
        let ctx = PairCtx { site: site.clone(), run, base_scope, base_client };
        let concurrency = self.concurrency.max(1);

        // 1. Head pages, each with its base counterpart probed.
        let head = tokio_stream_from(hrx).take_until(cancel.clone().cancelled_owned());
        let mut records: Vec<Result<PageRecord, SweepError>> = head
            .map(|page| {
                observer.discovered(&page);
                let (ctx, observer) = (&ctx, observer.clone());
                async move {
                    let rec = self.pair_head_page(ctx, page, None).await?;
                    self.page_done(&ctx.site, &rec, &*observer);
                    Ok(rec)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let stats = head_discovery.await.map_err(task_err)?;
        let mut base_pages = base_pages.await.map_err(task_err)?;
        base_discovery.await.map_err(task_err)?;

        // 2. Base pages the head side did not reach: compared if the head has them after all,
        // otherwise removed.
        let head_keys: HashSet<String> =
            records.iter().filter_map(|r| r.as_ref().ok()).map(|r| r.key.clone()).collect();
        let mut leftovers: Vec<DiscoveredPage> = base_pages
            .drain()
            .filter(|(k, p)| !head_keys.contains(k) && matches!(p.result, FetchResult::Page { .. }))
            .map(|(_, p)| p)
            .collect();
        leftovers.sort_by(|a, b| a.key.cmp(&b.key));
        let head_client = &head_client;
        let more: Vec<Result<PageRecord, SweepError>> = futures::stream::iter(leftovers)
            .take_until(cancel.clone().cancelled_owned())
            .map(|base_page| {
                observer.discovered(&base_page);
                let (ctx, observer) = (&ctx, observer.clone());
                async move {
                    let url = ctx.site.scope.url_for_key(&base_page.key);
                    let found = match &url {
                        Some(u) => crawl::probe(head_client, &ctx.site.scope, u).await,
                        None => None,
                    };
                    let rec = match found {
                        Some(head_page) if matches!(head_page.result, FetchResult::Page { .. }) => {
                            self.pair_head_page(ctx, head_page, Some(base_page)).await?
                        }
                        found => {
                            let status = found.as_ref().and_then(|p| match p.result {
                                FetchResult::HttpError { status, .. } => status,
                                FetchResult::Page { status, .. } => Some(status),
                            });
                            self.pair_removed_page(ctx, base_page, status).await?
                        }
                    };
                    self.page_done(&ctx.site, &rec, &*observer);
                    Ok(rec)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        records.extend(more);
        let records = records.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok((records, stats))
    }

    async fn probe_base(&self, ctx: &PairCtx, key: &str) -> Option<DiscoveredPage> {
        let url = ctx.base_scope.url_for_key(key)?;
        crawl::probe(&ctx.base_client, &ctx.base_scope, &url).await
    }

    /// Capture `url` (the page `key` of the side whose prefix is `scope`) with the site's options.
    /// The browser's navigation guard must use `scope`, the captured side's prefix, not the site's.
    async fn capture_at(
        &self,
        ctx: &PairCtx,
        scope: &Scope,
        key: &str,
        url: &Url,
    ) -> Result<Capture, CaptureError> {
        if !scope.contains(url) {
            return Err(CaptureError::Navigate {
                url: url.to_string(),
                reason: format!("outside the prefix {}", scope.prefix()),
            });
        }
        let site = &ctx.site;
        let options = Arc::new(site.capture.clone());
        let (viewport, options) = site.capture_for(key, site.viewport, &options);
        let req = CaptureRequest {
            site: site.name.clone(),
            url: url.clone(),
            scope: scope.clone(),
            viewport,
            options,
            expected_png: None,
            sweep_started: ctx.run.started,
        };
        self.capturer.capture(req).await
    }

    /// One head page: its base counterpart (given, or probed now), both captured and compared.
    async fn pair_head_page(
        &self,
        ctx: &PairCtx,
        page: DiscoveredPage,
        base: Option<DiscoveredPage>,
    ) -> Result<PageRecord, SweepError> {
        let site = &ctx.site;
        let (status, title) = match &page.result {
            FetchResult::HttpError { status: Some(s), .. } if (400..500).contains(s) => {
                // Gone from the head: removed when the base still has it.
                let base = match base {
                    Some(b) => Some(b),
                    None => self.probe_base(ctx, &page.key).await,
                };
                if let Counterpart::Page(b) = counterpart(base) {
                    return self.pair_removed_page(ctx, b, Some(*s)).await;
                }
                let r = super::http_error_record(&page, Some(*s), format!("HTTP {s}"));
                return self.pair_store(ctx, r, Vec::new()).await;
            }
            FetchResult::HttpError { status, reason } => {
                let r = super::http_error_record(&page, *status, reason.clone());
                return self.pair_store(ctx, r, Vec::new()).await;
            }
            FetchResult::Page { status, title } => (*status, title.clone()),
        };
        let base = match base {
            Some(b) => Some(b),
            None => self.probe_base(ctx, &page.key).await,
        };
        let base = counterpart(base);
        let base_capture = async {
            match &base {
                Counterpart::Page(b) => Some(self.capture_at(ctx, &ctx.base_scope, &page.key, &b.url).await),
                _ => None,
            }
        };
        let (head_capture, base_capture) =
            tokio::join!(self.capture_at(ctx, &site.scope, &page.key, &page.url), base_capture);
        let head_capture = match head_capture {
            Ok(c) => c,
            Err(e) => {
                let r = super::capture_error_record(&site.name, &page, status, title, &e);
                return self.pair_store(ctx, r, Vec::new()).await;
            }
        };
        let (mut rec, blobs) = capture_record(&page, status, title, head_capture);
        match (base, base_capture) {
            (Counterpart::Absent, _) => {
                rec.change = PageChange::Added;
                self.pair_store(ctx, rec, blobs).await
            }
            (Counterpart::Broken(reason), _) => {
                rec.change = PageChange::Failed;
                rec.error = Some(format!("the base side did not answer: {reason}"));
                self.pair_store(ctx, rec, blobs).await
            }
            (Counterpart::Page(b), Some(Err(e))) => {
                rec.change = PageChange::Failed;
                rec.outcome = PageOutcome::CaptureError;
                rec.error = Some(format!("base {}: {e}", b.url));
                self.pair_store(ctx, rec, blobs).await
            }
            (Counterpart::Page(_), Some(Ok(base_capture))) => {
                let comparer = self.comparer.clone();
                let site = site.clone();
                let crawl_id = ctx.run.crawl_id;
                blocking(&site.name.clone(), move || {
                    let c = comparer.compare_with_capture(&site, rec, blobs, base_capture);
                    let stored: Vec<Blob<'_>> = c.blobs.iter().map(|b| Blob::new(b)).collect();
                    comparer.store.put_page(crawl_id, &c.record, &stored)?;
                    Ok::<_, StoreError>(c.record)
                })
                .await?
                .map_err(|source| SweepError::Store { site: ctx.site.name.clone(), source })
            }
            (Counterpart::Page(_), None) => {
                // Unreachable by construction (a base page is always captured); record it as failed
                // rather than trusting that.
                rec.change = PageChange::Failed;
                rec.error = Some("the base page was not captured".into());
                self.pair_store(ctx, rec, blobs).await
            }
        }
    }

    /// A page only on the base side: its base capture is kept as the record's baseline image.
    async fn pair_removed_page(
        &self,
        ctx: &PairCtx,
        base: DiscoveredPage,
        head_status: Option<u16>,
    ) -> Result<PageRecord, SweepError> {
        let head_url = ctx.site.scope.url_for_key(&base.key).map(|u| u.to_string()).unwrap_or_default();
        let mut r = PageRecord::failed(base.key.clone(), head_url, PageOutcome::Ok, String::new());
        r.error = None;
        r.change = PageChange::Removed;
        r.http_status = head_status;
        let mut blobs = Vec::new();
        if let FetchResult::Page { title, .. } = &base.result {
            r.title = title.clone();
            match self.capture_at(ctx, &ctx.base_scope, &base.key, &base.url).await {
                Ok(c) => {
                    let html = c.html.into_bytes();
                    r.baseline_png = Some(Hash::of(&c.png));
                    r.baseline_html = Some(Hash::of(&html));
                    r.width = c.width;
                    r.height = c.height;
                    r.title = c.title.or(r.title);
                    blobs.push(c.png);
                    blobs.push(html);
                }
                Err(e) => r.error = Some(format!("base {}: {e}", base.url)),
            }
        }
        self.pair_store(ctx, r, blobs).await
    }

    async fn pair_store(
        &self,
        ctx: &PairCtx,
        rec: PageRecord,
        blobs: Vec<Vec<u8>>,
    ) -> Result<PageRecord, SweepError> {
        let store = self.store.clone();
        let crawl_id = ctx.run.crawl_id;
        blocking(&ctx.site.name, move || {
            let stored: Vec<Blob<'_>> = blobs.iter().map(|b| Blob::new(b)).collect();
            store.put_page(crawl_id, &rec, &stored)?;
            Ok::<_, StoreError>(rec)
        })
        .await?
        .map_err(|source| SweepError::Store { site: ctx.site.name.clone(), source })
    }
}

/// Inputs shared by every page of one pair sweep.
struct PairCtx {
    site: Arc<SiteConfig>,
    run: SweepRun,
    base_scope: Scope,
    base_client: crawl::SiteClient,
}
