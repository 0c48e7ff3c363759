//! Prometheus metrics: one private registry, updated through named functions, rendered at `/metrics`.
//!
//! Metric names and labels are a contract (users write alert rules on them). Label values are
//! bounded: site names and page keys from the config/crawl, fixed outcome/status enums, plugin
//! names from the config — never an error message.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What happened to one `[[notify]]` webhook attempt or delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationOutcome {
    Delivered,
    Retried,
    Failed,
    Abandoned,
}

impl NotificationOutcome {
    pub const ALL: [NotificationOutcome; 4] = [
        NotificationOutcome::Delivered,
        NotificationOutcome::Retried,
        NotificationOutcome::Failed,
        NotificationOutcome::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationOutcome::Delivered => "delivered",
            NotificationOutcome::Retried => "retried",
            NotificationOutcome::Failed => "failed",
            NotificationOutcome::Abandoned => "abandoned",
        }
    }
}

use crate::store::{CrawlRecord, CrawlStatus, PageOutcome};
use crate::structure::{StructuralChange, StructuralDiff};

/// Errors of the metrics module (only at registration/encoding, i.e. programming errors).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metric registration failed: {0}")]
    Register(#[from] prometheus::Error),
    #[error("cannot encode the metrics: {0}")]
    Encode(#[source] prometheus::Error),
    #[error("metrics are not valid UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

/// Outcome label of `sitediff_plugin_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginCallOutcome {
    Ok,
    Error,
}

impl PluginCallOutcome {
    fn as_str(self) -> &'static str {
        match self {
            PluginCallOutcome::Ok => "ok",
            PluginCallOutcome::Error => "error",
        }
    }
}

/// The daemon's metrics. Cheap to clone (all handles are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pages_captured: IntCounterVec,
    pages_truncated: IntCounterVec,
    site_changed_pages: IntGaugeVec,
    site_max_distortion: GaugeVec,
    page_distortion: GaugeVec,
    crawl_duration: HistogramVec,
    last_crawl_timestamp: GaugeVec,
    crawls: IntCounterVec,
    review_pending: IntGaugeVec,
    plugin_calls: IntCounterVec,
    diff_seconds: Histogram,
    schedule_skipped: IntCounterVec,
    config_reload_success: Gauge,
    site_pages: IntGaugeVec,
    site_failed_pages: IntGaugeVec,
    notifications: IntCounterVec,
    pages_reused: IntCounterVec,
    /// The page keys each site currently exports in `sitediff_page_distortion`.
    page_keys: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, MetricsError> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let int_gauge = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, MetricsError> {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<GaugeVec, MetricsError> {
            let g = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let pages_captured = counter(
            "sitediff_pages_captured_total",
            "Pages processed, by capture outcome.",
            &["site", "outcome"],
        )?;
        let pages_truncated = counter(
            "sitediff_pages_truncated_total",
            "Pages taller than the site's max_height: only their top was captured, and they failed.",
            &["site"],
        )?;
        let site_changed_pages = int_gauge(
            "sitediff_site_changed_pages",
            "Pages over the site's max_distortion in the last crawl, compared with the baseline.",
            &["site"],
        )?;
        let site_max_distortion = gauge(
            "sitediff_site_max_distortion",
            "Largest page distortion (0..1) of the site's last crawl, compared with the baseline.",
            &["site"],
        )?;
        let page_distortion = gauge(
            "sitediff_page_distortion",
            "Distortion (0..1) of each page of the site's last crawl (page = page key).",
            &["site", "page"],
        )?;
        let crawl_duration = HistogramVec::new(
            HistogramOpts::new("sitediff_crawl_duration_seconds", "Duration of whole crawls.")
                .buckets(vec![1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0]),
            &["site"],
        )?;
        registry.register(Box::new(crawl_duration.clone()))?;
        let last_crawl_timestamp = gauge(
            "sitediff_last_crawl_timestamp_seconds",
            "Unix time the site's last crawl finished.",
            &["site"],
        )?;
        let crawls = counter(
            "sitediff_crawls_total",
            "Crawls by the status they reached: at their end (reviewing, passed, interrupted, failed) \
             and by a review verdict (approved, rejected).",
            &["site", "status"],
        )?;
        let review_pending = int_gauge(
            "sitediff_review_pending_crawls",
            "Crawls waiting for review: of each kind, the site's newest finished crawl when it is \
             reviewing with changed, new, newly failing, added or removed pages.",
            &["site"],
        )?;
        let plugin_calls = counter(
            "sitediff_plugin_calls_total",
            "Plugin calls, by plugin and outcome.",
            &["plugin", "outcome"],
        )?;
        let diff_seconds = Histogram::with_opts(
            HistogramOpts::new("sitediff_diff_seconds", "Time to diff one page against its baseline.")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )?;
        registry.register(Box::new(diff_seconds.clone()))?;
        let schedule_skipped = counter(
            "sitediff_schedule_skipped_total",
            "Scheduled crawls skipped because the previous crawl of the site was still running.",
            &["site"],
        )?;
        let site_pages = int_gauge(
            "sitediff_site_pages",
            "Pages of the site's last crawl by structural change against the approved crawl.",
            &["site", "change"],
        )?;
        let site_failed_pages = int_gauge(
            "sitediff_site_failed_pages",
            "Failed pages of the site's last crawl: state=new failing unlike in the approved crawl (to \
             review), state=still failing the same way as in it.",
            &["site", "state"],
        )?;
        let notifications = counter(
            "sitediff_notifications_total",
            "[[notify]] webhook deliveries by outcome: delivered, retried (an attempt failed and is \
             tried again), failed (gave up after the last attempt), abandoned (the daemon stopped first).",
            &["outcome"],
        )?;
        for o in NotificationOutcome::ALL {
            notifications.with_label_values(&[o.as_str()]);
        }
        let pages_reused = counter(
            "sitediff_pages_reused_total",
            "Pages of incremental crawls whose approved capture was reused without rendering (every \
             input of its capture fingerprint unchanged).",
            &["site"],
        )?;
        let up = Gauge::with_opts(Opts::new("sitediff_up", "1 while the daemon runs."))?;
        registry.register(Box::new(up.clone()))?;
        up.set(1.0);
        let config_reload_success = Gauge::with_opts(Opts::new(
            "sitediff_config_reload_success",
            "1 when the last config reload (SIGHUP, POST /api/reload) succeeded or none was tried; 0 when \
             it failed and the previous config is still in use.",
        ))?;
        registry.register(Box::new(config_reload_success.clone()))?;
        config_reload_success.set(1.0);
        Ok(Metrics {
            config_reload_success,
            registry,
            pages_captured,
            pages_truncated,
            site_changed_pages,
            site_max_distortion,
            page_distortion,
            crawl_duration,
            last_crawl_timestamp,
            crawls,
            review_pending,
            plugin_calls,
            diff_seconds,
            schedule_skipped,
            site_pages,
            site_failed_pages,
            notifications,
            pages_reused,
            page_keys: Arc::default(),
        })
    }

    /// Make a site's series exist (at zero) before its first crawl, so alerts can see it.
    pub fn register_site(&self, site: &str) {
        for o in PageOutcome::ALL {
            self.pages_captured.with_label_values(&[site, o.as_str()]);
        }
        for s in CrawlStatus::ALL {
            if s != CrawlStatus::Running {
                self.crawls.with_label_values(&[site, s.as_str()]);
            }
        }
        self.review_pending.with_label_values(&[site]);
        self.pages_truncated.with_label_values(&[site]);
        self.schedule_skipped.with_label_values(&[site]);
        self.pages_reused.with_label_values(&[site]);
    }

    /// A page's approved capture was reused without rendering (incremental crawls).
    pub fn page_reused(&self, site: &str) {
        self.pages_reused.with_label_values(&[site]).inc();
    }

    /// Count one webhook delivery outcome.
    pub fn notification(&self, outcome: NotificationOutcome) {
        self.notifications.with_label_values(&[outcome.as_str()]).inc();
    }

    pub fn page_captured(&self, site: &str, outcome: PageOutcome) {
        self.pages_captured.with_label_values(&[site, outcome.as_str()]).inc();
    }

    /// A page taller than the site's `max_height` was cut (and failed).
    pub fn page_truncated(&self, site: &str) {
        self.pages_truncated.with_label_values(&[site]).inc();
    }

    pub fn diff_observed(&self, seconds: f64) {
        self.diff_seconds.observe(seconds);
    }

    pub fn plugin_called(&self, plugin: &str, outcome: PluginCallOutcome) {
        self.plugin_calls.with_label_values(&[plugin, outcome.as_str()]).inc();
    }

    /// A crawl ended (its status at the end: reviewing, passed, interrupted, failed) after
    /// `duration_secs`. Its results are exported by [`Metrics::set_last_crawl`].
    pub fn crawl_ended(&self, site: &str, status: CrawlStatus, duration_secs: f64) {
        self.crawls.with_label_values(&[site, status.as_str()]).inc();
        self.crawl_duration.with_label_values(&[site]).observe(duration_secs);
    }

    /// A review verdict moved a crawl to `status` (approved, rejected).
    pub fn crawl_reviewed(&self, site: &str, status: CrawlStatus) {
        self.crawls.with_label_values(&[site, status.as_str()]).inc();
    }

    /// Export a finished crawl as its site's last crawl: when it finished, its changed pages and
    /// largest distortion against the baseline, its failed pages, and its structure (if any).
    pub fn set_last_crawl(&self, rec: &CrawlRecord) {
        let site = rec.site.as_str();
        let finished = rec.finished_at.unwrap_or(rec.started_at);
        self.last_crawl_timestamp.with_label_values(&[site]).set(finished as f64 / 1000.0);
        let changed = rec.counts.changed + rec.counts.added + rec.counts.removed;
        self.site_changed_pages.with_label_values(&[site]).set(i64::from(changed));
        self.site_max_distortion.with_label_values(&[site]).set(rec.max_distortion);
        self.site_failed_pages.with_label_values(&[site, "new"]).set(i64::from(rec.counts.failed));
        self.site_failed_pages.with_label_values(&[site, "still"]).set(i64::from(rec.counts.still_failing));
        if let Some(structure) = &rec.structure {
            self.set_site_structure(site, structure);
        }
    }

    /// Replace a site's per-page distortion series with those of its last crawl.
    pub fn set_page_distortions<'a>(&self, site: &str, pages: impl IntoIterator<Item = (&'a str, f64)>) {
        self.clear_page_distortions(site);
        let mut keys = Vec::new();
        for (key, d) in pages {
            self.page_distortion.with_label_values(&[site, key]).set(d);
            keys.push(key.to_string());
        }
        match self.page_keys.lock() {
            Ok(mut map) => map.insert(site.to_string(), keys),
            Err(poisoned) => poisoned.into_inner().insert(site.to_string(), keys),
        };
    }

    /// Drop a site's per-page series (e.g. when page metrics are switched off).
    pub fn clear_page_distortions(&self, site: &str) {
        let old = match self.page_keys.lock() {
            Ok(mut keys) => keys.remove(site).unwrap_or_default(),
            Err(poisoned) => poisoned.into_inner().remove(site).unwrap_or_default(),
        };
        for key in old {
            if let Err(e) = self.page_distortion.remove_label_values(&[site, &key]) {
                tracing::warn!(site, page = %key, error = %e, "cannot remove a page distortion series");
            }
        }
    }

    pub fn set_review_pending(&self, site: &str, n: usize) {
        self.review_pending.with_label_values(&[site]).set(n as i64);
    }

    /// Whether the last config reload succeeded.
    pub fn config_reloaded(&self, ok: bool) {
        self.config_reload_success.set(if ok { 1.0 } else { 0.0 });
    }

    pub fn schedule_skipped(&self, site: &str) {
        self.schedule_skipped.with_label_values(&[site]).inc();
    }

    pub fn set_site_pages(&self, site: &str, change: StructuralChange, n: u32) {
        self.site_pages.with_label_values(&[site, change.as_str()]).set(i64::from(n));
    }

    /// Export a crawl's structural diff as `sitediff_site_pages{site,change}` (every change value).
    pub fn set_site_structure(&self, site: &str, diff: &StructuralDiff) {
        for c in StructuralChange::ALL {
            self.set_site_pages(site, c, diff.count(c));
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).map_err(MetricsError::Encode)?;
        Ok(String::from_utf8(buf)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_contract() {
        let m = Metrics::new().unwrap();
        m.register_site("docs");
        m.page_captured("docs", PageOutcome::Ok);
        m.page_captured("docs", PageOutcome::Truncated);
        m.page_truncated("docs");
        m.crawl_ended("docs", CrawlStatus::Reviewing, 3.0);
        let mut rec = crate::store::CrawlRecord {
            id: 4,
            site: "docs".into(),
            kind: crate::store::CrawlKind::Site,
            status: CrawlStatus::Reviewing,
            started_at: 1_699_999_990_000,
            finished_at: Some(1_700_000_000_000),
            reviewed_at: None,
            prefix: "http://h/".into(),
            compare_to: None,
            counts: crate::store::CrawlCounts {
                changed: 2,
                failed: 1,
                still_failing: 3,
                ..Default::default()
            },
            max_distortion: 0.25,
            error: None,
            structure: Some(StructuralDiff { error: 4, unchanged: 7, ..Default::default() }),
            warnings: Vec::new(),
            incremental: false,
        };
        m.set_last_crawl(&rec);
        m.crawl_reviewed("docs", CrawlStatus::Approved);
        m.set_page_distortions("docs", [("/a.html", 0.25), ("/b.html", 0.0)]);
        m.plugin_called("mask-clock", PluginCallOutcome::Ok);
        m.diff_observed(0.01);
        m.set_review_pending("docs", 1);
        let text = m.render().unwrap();
        for name in [
            "sitediff_pages_captured_total{outcome=\"ok\",site=\"docs\"} 1",
            "sitediff_pages_captured_total{outcome=\"plugin_error\",site=\"docs\"} 0",
            "sitediff_pages_captured_total{outcome=\"truncated\",site=\"docs\"} 1",
            "sitediff_pages_truncated_total{site=\"docs\"} 1",
            "sitediff_site_changed_pages{site=\"docs\"} 2",
            "sitediff_site_max_distortion{site=\"docs\"} 0.25",
            "sitediff_page_distortion{page=\"/a.html\",site=\"docs\"} 0.25",
            "sitediff_crawl_duration_seconds_count{site=\"docs\"} 1",
            "sitediff_last_crawl_timestamp_seconds{site=\"docs\"} 1700000000",
            "sitediff_crawls_total{site=\"docs\",status=\"reviewing\"} 1",
            "sitediff_crawls_total{site=\"docs\",status=\"approved\"} 1",
            "sitediff_crawls_total{site=\"docs\",status=\"passed\"} 0",
            "sitediff_site_failed_pages{site=\"docs\",state=\"new\"} 1",
            "sitediff_site_failed_pages{site=\"docs\",state=\"still\"} 3",
            "sitediff_site_pages{change=\"error\",site=\"docs\"} 4",
            "sitediff_site_pages{change=\"unchanged\",site=\"docs\"} 7",
            "sitediff_review_pending_crawls{site=\"docs\"} 1",
            "sitediff_plugin_calls_total{outcome=\"ok\",plugin=\"mask-clock\"} 1",
            "sitediff_diff_seconds_count 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        m.set_page_distortions("docs", [("/c.html", 0.5)]);
        let text = m.render().unwrap();
        assert!(!text.contains("/a.html") && text.contains("/c.html"), "{text}");

        // A passed crawl replaces the gauges: nothing changed, the failures are known ones.
        rec.status = CrawlStatus::Passed;
        rec.counts = crate::store::CrawlCounts { unchanged: 5, still_failing: 1, ..Default::default() };
        rec.max_distortion = 0.001;
        m.set_last_crawl(&rec);
        let text = m.render().unwrap();
        for name in [
            "sitediff_site_changed_pages{site=\"docs\"} 0",
            "sitediff_site_max_distortion{site=\"docs\"} 0.001",
            "sitediff_site_failed_pages{site=\"docs\",state=\"new\"} 0",
            "sitediff_site_failed_pages{site=\"docs\",state=\"still\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }

    #[test]
    fn reused_pages_are_counted_per_site_from_zero() {
        let m = Metrics::new().unwrap();
        m.register_site("docs");
        assert!(m.render().unwrap().contains("sitediff_pages_reused_total{site=\"docs\"} 0"));
        m.page_reused("docs");
        m.page_reused("docs");
        assert!(m.render().unwrap().contains("sitediff_pages_reused_total{site=\"docs\"} 2"));
    }
}
