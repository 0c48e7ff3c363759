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

use crate::store::{CrawlStatus, PageOutcome};
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
    site_pages: IntGaugeVec,
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
        let crawls = counter("sitediff_crawls_total", "Crawls ended, by final status.", &["site", "status"])?;
        let review_pending = int_gauge(
            "sitediff_review_pending_crawls",
            "Crawls waiting for review (status reviewing with changed, new or failed pages).",
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
        let up = Gauge::with_opts(Opts::new("sitediff_up", "1 while the daemon runs."))?;
        registry.register(Box::new(up.clone()))?;
        up.set(1.0);
        Ok(Metrics {
            registry,
            pages_captured,
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
        self.schedule_skipped.with_label_values(&[site]);
    }

    pub fn page_captured(&self, site: &str, outcome: PageOutcome) {
        self.pages_captured.with_label_values(&[site, outcome.as_str()]).inc();
    }

    pub fn diff_observed(&self, seconds: f64) {
        self.diff_seconds.observe(seconds);
    }

    pub fn plugin_called(&self, plugin: &str, outcome: PluginCallOutcome) {
        self.plugin_calls.with_label_values(&[plugin, outcome.as_str()]).inc();
    }

    /// A crawl ended: its status, duration and its results against the baseline.
    pub fn crawl_finished(
        &self,
        site: &str,
        status: CrawlStatus,
        duration_secs: f64,
        finished_unix: f64,
        changed_pages: u32,
        max_distortion: f64,
    ) {
        self.crawls.with_label_values(&[site, status.as_str()]).inc();
        self.crawl_duration.with_label_values(&[site]).observe(duration_secs);
        self.last_crawl_timestamp.with_label_values(&[site]).set(finished_unix);
        if matches!(status, CrawlStatus::Reviewing) {
            self.site_changed_pages.with_label_values(&[site]).set(i64::from(changed_pages));
            self.site_max_distortion.with_label_values(&[site]).set(max_distortion);
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
        m.crawl_finished("docs", CrawlStatus::Reviewing, 3.0, 1.7e9, 2, 0.25);
        m.set_page_distortions("docs", [("/a.html", 0.25), ("/b.html", 0.0)]);
        m.plugin_called("mask-clock", PluginCallOutcome::Ok);
        m.diff_observed(0.01);
        m.set_review_pending("docs", 1);
        let text = m.render().unwrap();
        for name in [
            "sitediff_pages_captured_total{outcome=\"ok\",site=\"docs\"} 1",
            "sitediff_pages_captured_total{outcome=\"plugin_error\",site=\"docs\"} 0",
            "sitediff_site_changed_pages{site=\"docs\"} 2",
            "sitediff_site_max_distortion{site=\"docs\"} 0.25",
            "sitediff_page_distortion{page=\"/a.html\",site=\"docs\"} 0.25",
            "sitediff_crawl_duration_seconds_count{site=\"docs\"} 1",
            "sitediff_last_crawl_timestamp_seconds{site=\"docs\"} 1700000000",
            "sitediff_crawls_total{site=\"docs\",status=\"reviewing\"} 1",
            "sitediff_review_pending_crawls{site=\"docs\"} 1",
            "sitediff_plugin_calls_total{outcome=\"ok\",plugin=\"mask-clock\"} 1",
            "sitediff_diff_seconds_count 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        m.set_page_distortions("docs", [("/c.html", 0.5)]);
        let text = m.render().unwrap();
        assert!(!text.contains("/a.html") && text.contains("/c.html"), "{text}");
    }
}
