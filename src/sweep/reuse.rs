//! Incremental sweeps (issue 19): a page whose capture fingerprint inputs are all unchanged since
//! its approved capture is not opened in the browser; its approved capture is reused. The checks
//! are cheap: the document was fetched by discovery anyway (its hash is compared), every response
//! the capture used is fetched again by sitediff itself (no redirects followed; once per URL per
//! crawl, shared by every page), and the browser build, font set and capture options are compared.
//! Any doubt means render: a page that could change by itself, a response that could not be
//! fetched whole, an unknown browser or font set.
//!
//! The same probes give the fingerprint of every new capture ([`Reuse::fingerprint`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use url::Url;

use crate::capture::{CaptureInputs, Environment};
use crate::config::{CaptureOptions, SiteConfig, Viewport};
use crate::crawl::{self, DiscoveredPage};
use crate::plugin::PluginHost;
use crate::store::{Fingerprint, Hash, ResourceFingerprint};

/// Largest response body sitediff hashes itself; a larger one is never trusted unchanged.
const MAX_PROBE_BYTES: usize = 64 << 20;
/// Probes in flight for one page.
const PROBES_PER_PAGE: usize = 8;

/// Why a crawl cannot set up its reuse checks.
#[derive(Debug, thiserror::Error)]
pub enum ReuseError {
    #[error("site {site}: cannot build the HTTP client of the reuse checks: {source}")]
    Client {
        site: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(transparent)]
    Headers(#[from] crawl::CrawlError),
}

/// One response as sitediff fetched it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Probe {
    status: Option<u16>,
    location: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    body: Option<Hash>,
}

impl Probe {
    /// Whether it answered and its body was hashed whole.
    fn trusted(&self) -> bool {
        self.status.is_some() && self.body.is_some()
    }

    fn matches(&self, r: &ResourceFingerprint) -> bool {
        self.trusted() && self.status == r.status && self.location == r.location && self.body == r.body
    }
}

/// The reuse checks and fingerprints of one crawl.
pub struct Reuse {
    /// Approved captures may be reused in this crawl (`incremental` on, no full sweep forced, no
    /// score plugin on the site).
    allowed: bool,
    environment: Option<Environment>,
    /// blake3 of the site's plugins (names, limits, module bytes).
    plugins: String,
    http: reqwest::Client,
    origin: url::Origin,
    site_headers: http::HeaderMap,
    probes: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Probe>>>>,
}

impl std::fmt::Debug for Reuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reuse").field("allowed", &self.allowed).finish_non_exhaustive()
    }
}

impl Reuse {
    /// The checks of one crawl of `site`; `allowed`: reuse is on for it. `environment` is what the
    /// browser reports now; `plugins` the plugin host.
    pub fn new(
        site: &SiteConfig,
        allowed: bool,
        environment: Option<Environment>,
        plugins: Option<&PluginHost>,
    ) -> Result<Reuse, ReuseError> {
        let opts = super::request_options(&site.capture);
        let site_headers = crawl::request_headers(&site.name, &opts)?;
        let agent =
            opts.user_agent.clone().unwrap_or_else(|| concat!("sitediff/", env!("CARGO_PKG_VERSION")).into());
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(site.request_timeout)
            .connect_timeout(site.request_timeout.min(Duration::from_secs(30)))
            .user_agent(agent)
            .build()
            .map_err(|source| ReuseError::Client { site: site.name.clone(), source })?;
        let scores = plugins.is_some_and(|h| {
            site.plugins.iter().any(|p| h.kind(p) == Some(crate::plugin::PluginKind::Score))
        });
        Ok(Reuse {
            allowed: allowed && !scores,
            environment,
            plugins: plugins_hash(site, plugins),
            http,
            origin: site.scope.prefix().origin(),
            site_headers,
            probes: Mutex::new(HashMap::new()),
        })
    }

    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The fingerprint of a capture of `page` made with `viewport` and `options` from what the
    /// browser reported (`inputs`). `None` when the document has no hash (too long, not fetched).
    pub async fn fingerprint(
        &self,
        page: &DiscoveredPage,
        viewport: Viewport,
        options: &CaptureOptions,
        inputs: &CaptureInputs,
    ) -> Option<Fingerprint> {
        let document = Hash(*page.document.as_deref()?);
        let mut dynamic = inputs.dynamic.clone();
        // (Futures collected first: a closure inside the stream would make the crawl's future
        // not `Send` for every lifetime.)
        let fetches: Vec<_> = inputs.resources.iter().map(|o| self.probe(&o.url)).collect();
        let probes: Vec<Probe> = futures::stream::iter(fetches).buffered(PROBES_PER_PAGE).collect().await;
        let mut resources = Vec::with_capacity(probes.len());
        for (o, p) in inputs.resources.iter().zip(probes) {
            if !p.trusted() {
                dynamic.push("unchecked-resource".into());
            }
            // What the browser got must be what sitediff got (else it changed meanwhile).
            let differs = |a: &Option<String>, b: &Option<String>| a.is_some() && b.is_some() && a != b;
            // (A 304 is the browser revalidating its copy from earlier in this crawl.)
            let status_differs = o.status.is_some_and(|s| s != 304) && o.status != p.status;
            if status_differs || differs(&o.etag, &p.etag) {
                dynamic.push("resource-changed-during-capture".into());
            }
            resources.push(ResourceFingerprint {
                url: o.url.clone(),
                status: p.status,
                location: p.location,
                etag: p.etag,
                last_modified: p.last_modified,
                body: p.body,
            });
        }
        resources.sort_by(|a, b| a.url.cmp(&b.url));
        resources.dedup_by(|a, b| a.url == b.url);
        let (browser, fonts) = match &inputs.environment {
            Some(env) => (env.browser.clone(), env.fonts.clone()),
            None => {
                dynamic.push("unknown-browser".into());
                (String::new(), None)
            }
        };
        dynamic.sort();
        dynamic.dedup();
        Some(Fingerprint {
            document,
            resources,
            dynamic,
            browser,
            fonts,
            options: self.options_hash(viewport, options),
        })
    }

    /// Whether a capture with fingerprint `fp` would be made again, unchanged, of `page` with
    /// `viewport` and `options` now. `Err` says why not (for the log).
    pub async fn check(
        &self,
        page: &DiscoveredPage,
        viewport: Viewport,
        options: &CaptureOptions,
        fp: &Fingerprint,
    ) -> Result<(), &'static str> {
        if !self.allowed {
            return Err("reuse is off for this crawl");
        }
        if !fp.dynamic.is_empty() {
            return Err("the page could change by itself");
        }
        let env = self.environment.as_ref().ok_or("the browser build is unknown")?;
        if fp.browser != env.browser {
            return Err("the browser build changed");
        }
        if fp.fonts.is_none() || fp.fonts != env.fonts {
            return Err("the font set changed or is unknown");
        }
        if fp.options != self.options_hash(viewport, options) {
            return Err("a capture option changed");
        }
        if page.document.as_deref() != Some(&fp.document.0) {
            return Err("the document changed");
        }
        let fetches: Vec<_> = fp.resources.iter().map(|r| self.probe(&r.url)).collect();
        let mut probes = futures::stream::iter(fetches).buffered(PROBES_PER_PAGE);
        let mut resources = fp.resources.iter();
        while let (Some(p), Some(r)) = (probes.next().await, resources.next()) {
            if !p.matches(r) {
                return Err("a response changed");
            }
        }
        Ok(())
    }

    /// blake3 of every capture option that affects pixels, the plugins and the sitediff version.
    fn options_hash(&self, viewport: Viewport, options: &CaptureOptions) -> Hash {
        let text = format!("{}\n{viewport:?}\n{options:?}\n{}", env!("CARGO_PKG_VERSION"), self.plugins);
        Hash::of(text.as_bytes())
    }

    /// `url` as sitediff fetches it, once per crawl.
    async fn probe(&self, url: &str) -> Probe {
        let cell = {
            let mut probes = match self.probes.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            probes.entry(url.to_string()).or_default().clone()
        };
        cell.get_or_init(|| self.fetch(url)).await.clone()
    }

    /// One GET of `url` (no redirect followed; the site's headers on its own origin only), its
    /// body hashed.
    async fn fetch(&self, url: &str) -> Probe {
        let Ok(u) = Url::parse(url) else { return Probe::default() };
        if !matches!(u.scheme(), "http" | "https") {
            return Probe::default();
        }
        let mut req = self.http.get(u.clone());
        if u.origin() == self.origin {
            req = req.headers(self.site_headers.clone());
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(url, error = %e, "reuse probe failed");
                return Probe::default();
            }
        };
        let header = |name: reqwest::header::HeaderName| {
            resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        let mut probe = Probe {
            status: Some(resp.status().as_u16()),
            location: header(reqwest::header::LOCATION),
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
            body: None,
        };
        let mut hasher = blake3::Hasher::new();
        let mut read = 0usize;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    if read > MAX_PROBE_BYTES {
                        return probe;
                    }
                    hasher.update(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(url, error = %e, "reuse probe: reading the body failed");
                    return probe;
                }
            }
        }
        probe.body = Some(Hash(*hasher.finalize().as_bytes()));
        probe
    }
}

/// blake3 of the site's plugins: names, their loaded description (kind, ABI, limits) and module
/// file bytes.
fn plugins_hash(site: &SiteConfig, host: Option<&PluginHost>) -> String {
    let mut h = blake3::Hasher::new();
    for name in &site.plugins {
        h.update(name.as_bytes());
        if let Some(info) = host.and_then(|host| host.info(name)) {
            h.update(format!("{info:?}").as_bytes());
            match std::fs::read(&info.path) {
                Ok(bytes) => h.update(&bytes),
                Err(_) => h.update(b"(no file)"),
            };
        }
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_identical_answer_matches() {
        let body = Some(Hash::of(b"x"));
        let r = ResourceFingerprint {
            url: "http://h/a.css".into(),
            status: Some(200),
            location: None,
            etag: None,
            last_modified: None,
            body,
        };
        let same = Probe { status: Some(200), body, ..Probe::default() };
        assert!(same.matches(&r));
        assert!(!Probe { body: Some(Hash::of(b"y")), ..same.clone() }.matches(&r), "new bytes");
        assert!(!Probe { status: Some(404), ..same.clone() }.matches(&r), "new status");
        assert!(!Probe { location: Some("/b".into()), ..same.clone() }.matches(&r), "new redirect target");
        let unhashed = ResourceFingerprint { body: None, ..r };
        assert!(!Probe { body: None, ..same }.matches(&unhashed), "no body hash: doubt");
    }
}
