//! The config file as written: strict serde structs (`deny_unknown_fields`, so a misspelt key is
//! refused by the parser; `unknown` collects every such key with its line). Every key is optional here; defaults and
//! checks are applied by validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub browser: RawBrowser,
    #[serde(default)]
    pub scheduler: RawScheduler,
    #[serde(default)]
    pub sites: Vec<RawSite>,
    #[serde(default)]
    pub plugins: Vec<RawPlugin>,
    /// Issue 18: webhooks told when crawls end.
    #[serde(default)]
    pub notify: Vec<RawNotify>,
}

/// One `[[notify]]` webhook.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub url: Option<String>,
    pub on: Option<Vec<String>>,
    pub format: Option<String>,
    pub secret_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub token_env: Option<String>,
    pub allow_anonymous_writes: Option<bool>,
    pub allowed_hosts: Option<Vec<String>>,
    pub max_connections: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
    pub demo_site: Option<bool>,
    /// Issue 18: prefixes `POST /api/pairs` may crawl.
    pub pair_prefixes: Option<Vec<String>>,
    pub backup_dirs: Option<Vec<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: Option<PathBuf>,
    pub keep_crawls: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBrowser {
    pub webdriver: Option<String>,
    pub sessions: Option<RawSessions>,
    pub transport: Option<String>,
    pub node_devtools: Option<bool>,
    pub session_timeout_ms: Option<u64>,
    pub chromedriver: Option<PathBuf>,
    pub chromium: Option<PathBuf>,
    pub recycle_after: Option<u32>,
}

/// `browser.sessions`: a count, or a word (`"auto"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSessions {
    Count(i64),
    Word(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduler {
    pub max_concurrent_sites: Option<usize>,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawViewport {
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCookie {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    pub user: String,
    pub password_env: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub name: Option<String>,
    pub start: Option<String>,
    pub prefix: Option<String>,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub max_pages: Option<usize>,
    pub max_query_variants: Option<usize>,
    pub viewport: Option<RawViewport>,
    pub viewports: Option<Vec<RawViewport>>,
    pub threshold: Option<f64>,
    pub max_distortion: Option<f64>,
    pub count_aa: Option<bool>,
    #[serde(default)]
    pub hide_selectors: Vec<String>,
    #[serde(default)]
    pub mask_selectors: Vec<String>,
    pub inject_css: Option<String>,
    pub inject_js: Option<String>,
    #[serde(default)]
    pub remove_selectors: Vec<String>,
    #[serde(default)]
    pub cookies: Vec<RawCookie>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub basic_auth: Option<RawBasicAuth>,
    pub user_agent: Option<String>,
    #[serde(default)]
    pub block_urls: Vec<String>,
    #[serde(default)]
    pub plugins: Vec<String>,
    pub compare_to: Option<String>,
    pub urls: Option<Vec<RawUrl>>,
    pub urls_file: Option<PathBuf>,
    pub crawl: Option<bool>,
    pub page_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub max_height: Option<u32>,
    pub page_metrics: Option<bool>,
    /// Reuse approved captures whose fingerprint inputs are unchanged (issue 19).
    pub incremental: Option<bool>,
    /// With `incremental`: every Nth crawl renders every page.
    pub full_every: Option<u32>,
    #[serde(default)]
    pub ignore_areas: Vec<RawIgnoreArea>,
}

/// One entry of a site's `ignore_areas`: a rectangle (image pixels) ignored on one page key, or on
/// every page with key `"*"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIgnoreArea {
    pub key: String,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// One entry of a site's `urls`: a URL, or a table with the URL and its own capture options.
#[derive(Debug, Clone)]
pub enum RawUrl {
    Plain(String),
    WithOptions(RawUrlOptions),
}

/// A string or a table, told apart by the value's type (not `untagged`, which would hide the
/// table's own errors, such as an unknown key, behind "did not match any variant").
impl<'de> Deserialize<'de> for RawUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawUrl, D::Error> {
        struct UrlVisitor;
        impl<'de> serde::de::Visitor<'de> for UrlVisitor {
            type Value = RawUrl;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a URL, or a table with `url` and its capture options")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RawUrl, E> {
                Ok(RawUrl::Plain(s.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawUrl, A::Error> {
                RawUrlOptions::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawUrl::WithOptions)
            }
        }
        d.deserialize_any(UrlVisitor)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrlOptions {
    pub url: String,
    pub viewport: Option<RawViewport>,
    #[serde(default)]
    pub hide_selectors: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugin {
    pub name: Option<String>,
    pub path: Option<PathBuf>,
    pub fuel: Option<u64>,
    pub memory_mb: Option<u32>,
    pub timeout_ms: Option<u64>,
}
