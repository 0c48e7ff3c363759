//! Configuration: the TOML file parsed into strict serde structs, then validated into typed values.
//!
//! Stage one (`Raw*`) rejects unknown keys with the key's name and line. Stage two
//! ([`Config::from_raw`]) checks every value and reports *all* problems at once, each with the path
//! of the key it concerns (`sites[1].start`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::crawl::links::{normalize_url, Scope};

/// Default config path when neither `--config` nor `SITEDIFF_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/sitediff.toml";
/// Environment variable that overrides the config path.
pub const CONFIG_ENV: &str = "SITEDIFF_CONFIG";

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_STORE_PATH: &str = "data/sitediff.redb";
const DEFAULT_KEEP_CRAWLS: u32 = 20;
const DEFAULT_SESSIONS: usize = 2;
const MAX_SESSIONS: usize = 64;
const DEFAULT_RECYCLE_AFTER: u32 = 200;
const DEFAULT_MAX_PAGES: usize = 1000;
const DEFAULT_MAX_QUERY_VARIANTS: usize = 100;
const DEFAULT_VIEWPORT: Viewport = Viewport { width: 1280, height: 800 };
const DEFAULT_THRESHOLD: f64 = 0.1;
const DEFAULT_PAGE_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 15_000;
const DEFAULT_MAX_HEIGHT: u32 = 30_000;
const DEFAULT_MAX_CONCURRENT_SITES: usize = 2;
const DEFAULT_PLUGIN_FUEL: u64 = 5_000_000_000;
const DEFAULT_PLUGIN_MEMORY_MB: u32 = 64;
const DEFAULT_PLUGIN_TIMEOUT_MS: u64 = 2_000;
const MAX_VIEWPORT_DIM: u32 = 10_000;
/// Most viewports one site may be captured at.
const MAX_VIEWPORTS: usize = 8;

/// Everything that can go wrong loading a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path} has {} problem(s):\n{}", issues.len(), ConfigIssues(issues))]
    Invalid { path: PathBuf, issues: Vec<ConfigIssue> },
}

/// One validation problem: the key path it concerns and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigIssue {
    pub key: String,
    pub message: String,
    /// The 1-based line of the key (or of its table) in the file, when found.
    pub line: Option<usize>,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Find the line of a key path like `sites[1].start` or `server.listen` in TOML text: the line
/// assigning the key inside the right table, else the table's header line. A best-effort locator
/// for messages (it understands `[table]` and `[[array]]` headers and `key = ...` lines).
pub fn locate_key(text: &str, key: &str) -> Option<usize> {
    let (first, leaf) = match key.split_once('.') {
        Some((first, rest)) => (first, rest.rsplit('.').next()),
        None => (key, None),
    };
    let (table, index) = match first.split_once('[') {
        Some((t, rest)) => (t, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (first, None),
    };
    let mut seen_arrays = 0usize;
    let mut header_line = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            if header_line.is_some() {
                break; // the next table starts: the key is not in this one
            }
            let is_array = line.starts_with("[[");
            let name = line.trim_start_matches('[').split(']').next().unwrap_or("").trim();
            if name == table {
                let matches = match index {
                    Some(n) if is_array => {
                        seen_arrays += 1;
                        seen_arrays == n + 1
                    }
                    _ => true,
                };
                if matches {
                    header_line = Some(i + 1);
                    if leaf.is_none() {
                        return header_line;
                    }
                }
            }
            continue;
        }
        if let (Some(_), Some(leaf)) = (header_line, leaf) {
            if let Some(rest) = line.strip_prefix(leaf) {
                if rest.trim_start().starts_with('=') {
                    return Some(i + 1);
                }
            }
        }
    }
    header_line
}

struct ConfigIssues<'a>(&'a [ConfigIssue]);

impl fmt::Display for ConfigIssues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Stage one: the file as written.
// ---------------------------------------------------------------------------------------------

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub token_env: Option<String>,
    pub demo_site: Option<bool>,
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
    pub sessions: Option<usize>,
    pub chromedriver: Option<PathBuf>,
    pub chromium: Option<PathBuf>,
    pub recycle_after: Option<u32>,
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
}

/// One entry of a site's `urls`: a URL, or a table with the URL and its own capture options.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawUrl {
    Plain(String),
    WithOptions(RawUrlOptions),
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

// ---------------------------------------------------------------------------------------------
// Stage two: validated, typed values.
// ---------------------------------------------------------------------------------------------

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (relative paths inside are resolved against its directory).
    pub source: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub browser: BrowserConfig,
    pub scheduler: SchedulerConfig,
    pub sites: Vec<SiteConfig>,
    pub plugins: Vec<PluginConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Name of the environment variable holding the write token.
    pub token_env: Option<String>,
    /// Serve the bundled demo site (`web/demo/`) at `/demo/` (for the demo config).
    pub demo_dir: Option<PathBuf>,
}

impl ServerConfig {
    /// The write token, when `token_env` names a variable that is set and non-empty.
    pub fn token(&self) -> Option<String> {
        let var = self.token_env.as_deref()?;
        std::env::var(var).ok().filter(|t| !t.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub keep_crawls: u32,
}

/// Where WebDriver sessions come from.
#[derive(Debug, Clone, PartialEq)]
pub enum WebDriverEndpoint {
    /// Start chromedriver ourselves.
    Spawn,
    /// A remote W3C WebDriver endpoint (chromedriver, Selenium Grid, ...).
    Remote(Url),
}

#[derive(Debug, Clone)]
pub struct BrowserConfig {
    pub webdriver: WebDriverEndpoint,
    pub sessions: usize,
    /// Explicit chromedriver binary; default: PATH, then /usr/bin/chromedriver.
    pub chromedriver: Option<PathBuf>,
    /// Explicit Chromium binary; default: chromedriver's own discovery, then /usr/bin/chromium.
    pub chromium: Option<PathBuf>,
    /// A session is replaced after this many pages to bound browser memory.
    pub recycle_after: u32,
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub max_concurrent_sites: usize,
    pub timezone: chrono_tz::Tz,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
}

/// A validated cron schedule with its zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expr: String,
    pub cron: croner::Cron,
    pub timezone: chrono_tz::Tz,
}

impl Schedule {
    /// The next time after `after` (UTC) this schedule fires.
    pub fn next_after(&self, after: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// A cookie set in the browser (for the page's URL) and sent by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
}

/// HTTP basic auth credentials; the password comes from an environment variable at load time.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

/// What the browser does to a page before the shot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaptureOptions {
    /// `visibility: hidden` before the shot.
    pub hide_selectors: Vec<String>,
    pub mask_selectors: Vec<String>,
    /// `display: none` before the shot.
    pub remove_selectors: Vec<String>,
    pub inject_css: String,
    /// Script run in the page after load, before stabilisation (a returned promise is awaited).
    pub inject_js: String,
    pub cookies: Vec<Cookie>,
    /// Extra request headers (browser: DevTools only; discovery: always).
    pub headers: Vec<(String, String)>,
    pub basic_auth: Option<BasicAuth>,
    pub user_agent: Option<String>,
    /// URL patterns (`*` wildcards) the browser must not load (DevTools only).
    pub block_urls: Vec<String>,
    pub page_timeout: Duration,
    pub max_height: u32,
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub name: String,
    pub start: Url,
    pub scope: Scope,
    pub schedule: Option<Schedule>,
    pub max_pages: usize,
    /// Distinct query strings followed per path (bounds calendars, faceted search, `?page=N+1`).
    pub max_query_variants: usize,
    /// The first (primary) viewport: pages captured at it keep their plain page key.
    pub viewport: Viewport,
    /// Every viewport, `viewport` first; the others give page keys suffixed `@WIDTH`.
    pub viewports: Vec<Viewport>,
    pub threshold: f64,
    pub max_distortion: f64,
    pub count_aa: bool,
    pub capture: CaptureOptions,
    pub plugins: Vec<String>,
    /// Pair sweeps: the other live prefix each page is compared with.
    pub compare_to: Option<Url>,
    /// Explicit page URLs (absolute, inside the prefix): `urls`, then the lines of `urls_file`.
    pub urls: Vec<Url>,
    /// Capture options of single pages of `urls`, by page key.
    pub url_options: HashMap<String, UrlOptions>,
    /// Follow links from the start page (default true; false with `urls` = list only).
    pub crawl: bool,
    pub request_timeout: Duration,
    /// Export `sitediff_page_distortion` for this site's pages.
    pub page_metrics: bool,
}

/// Capture options of one listed URL, over the site's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UrlOptions {
    pub viewport: Option<Viewport>,
    /// Hidden in addition to the site's `hide_selectors`.
    pub hide_selectors: Vec<String>,
}

impl SiteConfig {
    /// The viewport and capture options for the page with this key: the site's (`viewport`,
    /// `options`), overridden by the page's own entry in `urls`.
    pub fn capture_for(
        &self,
        key: &str,
        viewport: Viewport,
        options: &Arc<CaptureOptions>,
    ) -> (Viewport, Arc<CaptureOptions>) {
        match self.url_options.get(key) {
            None => (viewport, options.clone()),
            Some(o) => {
                let options = if o.hide_selectors.is_empty() {
                    options.clone()
                } else {
                    let mut merged = CaptureOptions::clone(options);
                    merged.hide_selectors.extend(o.hide_selectors.iter().cloned());
                    Arc::new(merged)
                };
                (o.viewport.unwrap_or(viewport), options)
            }
        }
    }

    /// A site for a one-off pair crawl of `head` against `base` with default settings (`sitediff
    /// pair` without a configured site).
    pub fn for_pair(name: &str, head: &str, base: &str) -> Result<SiteConfig, Vec<ConfigIssue>> {
        let raw = RawSite {
            name: Some(name.to_string()),
            start: Some(head.to_string()),
            prefix: Some(head.to_string()),
            compare_to: Some(base.to_string()),
            ..RawSite::default()
        };
        let mut v = Validator::default();
        let site = validate_site(&mut v, 0, &raw, &HashSet::new(), chrono_tz::UTC, Path::new(""));
        match site {
            Some(s) if v.issues.is_empty() => Ok(s),
            _ => Err(v.issues),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub name: String,
    pub path: PathBuf,
    pub limits: PluginLimits,
}

/// Per-call sandbox limits for a plugin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PluginLimits {
    pub fuel: u64,
    pub memory_bytes: usize,
    pub timeout: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            fuel: DEFAULT_PLUGIN_FUEL,
            memory_bytes: DEFAULT_PLUGIN_MEMORY_MB as usize * 1024 * 1024,
            timeout: Duration::from_millis(DEFAULT_PLUGIN_TIMEOUT_MS),
        }
    }
}

impl Config {
    /// Resolve the config path: explicit, then `SITEDIFF_CONFIG`, then the default.
    pub fn resolve_path(explicit: Option<&Path>) -> PathBuf {
        if let Some(p) = explicit {
            return p.to_path_buf();
        }
        match std::env::var_os(CONFIG_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_CONFIG_PATH),
        }
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parse and validate config text; `path` names the file in messages and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Self::from_raw(raw, path).map_err(|mut issues| {
            for issue in &mut issues {
                issue.line = locate_key(text, &issue.key);
            }
            ConfigError::Invalid { path: path.to_path_buf(), issues }
        })
    }

    /// Validate a parsed file, collecting every problem.
    pub fn from_raw(raw: RawConfig, path: &Path) -> Result<Config, Vec<ConfigIssue>> {
        let mut v = Validator::default();
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // Relative paths in the config are relative to the directory *above* `config/` when the
        // file lives in a `config` directory (the repo layout), else to the file's directory.
        let root = project_root(&base_dir);

        let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = match listen_text.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                v.issue("server.listen", format!("{listen_text:?} is not an address like 127.0.0.1:8080"));
                SocketAddr::from(([127, 0, 0, 1], 8080))
            }
        };
        if let Some(t) = &raw.server.token_env {
            if t.is_empty() || t.contains('=') || t.contains('\0') {
                v.issue("server.token_env", format!("{t:?} is not an environment variable name"));
            }
        }
        let demo_dir = raw.server.demo_site.unwrap_or(false).then(|| root.join("web").join("demo"));
        let server = ServerConfig { listen, token_env: raw.server.token_env.clone(), demo_dir };

        let store_path = raw.store.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_PATH));
        if store_path.as_os_str().is_empty() {
            v.issue("store.path", "must not be empty");
        }
        let keep_crawls = raw.store.keep_crawls.unwrap_or(DEFAULT_KEEP_CRAWLS);
        if keep_crawls == 0 {
            v.issue("store.keep_crawls", "must be at least 1 (the latest crawl is always kept)");
        }
        let store = StoreConfig { path: resolve(&root, &store_path), keep_crawls };

        let webdriver = match raw.browser.webdriver.as_deref() {
            None | Some("spawn") => WebDriverEndpoint::Spawn,
            Some(s) => match Url::parse(s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => WebDriverEndpoint::Remote(u),
                _ => {
                    v.issue("browser.webdriver", format!("{s:?} is neither \"spawn\" nor an http(s) URL"));
                    WebDriverEndpoint::Spawn
                }
            },
        };
        let sessions = raw.browser.sessions.unwrap_or(DEFAULT_SESSIONS);
        if sessions == 0 || sessions > MAX_SESSIONS {
            v.issue("browser.sessions", format!("{sessions} is out of range 1..={MAX_SESSIONS}"));
        }
        let recycle_after = raw.browser.recycle_after.unwrap_or(DEFAULT_RECYCLE_AFTER);
        if recycle_after == 0 {
            v.issue("browser.recycle_after", "must be at least 1");
        }
        let browser = BrowserConfig {
            webdriver,
            sessions: sessions.clamp(1, MAX_SESSIONS),
            chromedriver: raw.browser.chromedriver.as_ref().map(|p| resolve(&root, p)),
            chromium: raw.browser.chromium.as_ref().map(|p| resolve(&root, p)),
            recycle_after: recycle_after.max(1),
        };

        let default_tz = match raw.scheduler.timezone.as_deref() {
            None => chrono_tz::UTC,
            Some(z) => v.timezone("scheduler.timezone", z).unwrap_or(chrono_tz::UTC),
        };
        let max_sites = raw.scheduler.max_concurrent_sites.unwrap_or(DEFAULT_MAX_CONCURRENT_SITES);
        if max_sites == 0 {
            v.issue("scheduler.max_concurrent_sites", "must be at least 1");
        }
        let scheduler = SchedulerConfig { max_concurrent_sites: max_sites.max(1), timezone: default_tz };

        let mut plugins = Vec::new();
        let mut plugin_names = HashSet::new();
        for (i, p) in raw.plugins.iter().enumerate() {
            let key = |k: &str| format!("plugins[{i}].{k}");
            let name = match &p.name {
                Some(n) if valid_name(n) => n.clone(),
                Some(n) => {
                    v.issue(
                        key("name"),
                        format!("{n:?} must be 1-64 characters of a-z, A-Z, 0-9, '-', '_', '.'"),
                    );
                    continue;
                }
                None => {
                    v.issue(key("name"), "missing");
                    continue;
                }
            };
            if !plugin_names.insert(name.clone()) {
                v.issue(key("name"), format!("plugin {name:?} is defined twice"));
            }
            let Some(rel) = &p.path else {
                v.issue(key("path"), format!("plugin {name:?} has no path"));
                continue;
            };
            let path = resolve(&root, rel);
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext != "wat" && ext != "wasm" {
                v.issue(
                    key("path"),
                    format!("plugin {name:?}: {} must end in .wat or .wasm", path.display()),
                );
            }
            let mut limits = PluginLimits::default();
            if let Some(f) = p.fuel {
                if f == 0 {
                    v.issue(key("fuel"), "must be positive");
                }
                limits.fuel = f;
            }
            if let Some(m) = p.memory_mb {
                if m == 0 || m > 4096 {
                    v.issue(key("memory_mb"), format!("{m} is out of range 1..=4096"));
                }
                limits.memory_bytes = m as usize * 1024 * 1024;
            }
            if let Some(t) = p.timeout_ms {
                if t == 0 {
                    v.issue(key("timeout_ms"), "must be positive");
                }
                limits.timeout = Duration::from_millis(t);
            }
            plugins.push(PluginConfig { name, path, limits });
        }

        let mut sites = Vec::new();
        let mut site_names = HashSet::new();
        for (i, s) in raw.sites.iter().enumerate() {
            if let Some(site) = validate_site(&mut v, i, s, &plugin_names, default_tz, &root) {
                if !site_names.insert(site.name.clone()) {
                    v.issue(format!("sites[{i}].name"), format!("site {:?} is defined twice", site.name));
                }
                sites.push(site);
            }
        }

        if v.issues.is_empty() {
            Ok(Config { source: path.to_path_buf(), server, store, browser, scheduler, sites, plugins })
        } else {
            Err(v.issues)
        }
    }

    /// Look a site up by name.
    pub fn site(&self, name: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.name == name)
    }
}

fn validate_site(
    v: &mut Validator,
    i: usize,
    s: &RawSite,
    plugin_names: &HashSet<String>,
    default_tz: chrono_tz::Tz,
    root: &Path,
) -> Option<SiteConfig> {
    let key = |k: &str| format!("sites[{i}].{k}");
    let before = v.issues.len();
    let name = match &s.name {
        Some(n) if valid_name(n) => n.clone(),
        Some(n) => {
            v.issue(key("name"), format!("{n:?} must be 1-64 characters of a-z, A-Z, 0-9, '-', '_', '.'"));
            format!("#{i}")
        }
        None => {
            v.issue(key("name"), "missing (every site needs a name)");
            format!("#{i}")
        }
    };
    let start = match s.start.as_deref() {
        None => {
            v.issue(key("start"), format!("site {name:?} has no start URL"));
            None
        }
        Some(t) => v.http_url(&key("start"), &name, t),
    };
    let prefix = match s.prefix.as_deref() {
        Some(t) => v.http_url(&key("prefix"), &name, t),
        None => start.as_ref().map(Scope::default_prefix_of),
    };
    let scope = prefix.map(|p| Scope::new(&p));
    if let (Some(start), Some(scope)) = (&start, &scope) {
        if !scope.contains(start) {
            v.issue(
                key("start"),
                format!("site {name:?}: start {start} is outside the prefix {}", scope.prefix()),
            );
        }
    }
    let tz = match s.timezone.as_deref() {
        Some(z) => v.timezone(&key("timezone"), z).unwrap_or(default_tz),
        None => default_tz,
    };
    let schedule = s.schedule.as_deref().and_then(|expr| match expr.parse::<croner::Cron>() {
        Ok(cron) => Some(Schedule { expr: expr.to_string(), cron, timezone: tz }),
        Err(e) => {
            v.issue(key("schedule"), format!("site {name:?}: {expr:?} is not a cron expression: {e}"));
            None
        }
    });
    let max_pages = s.max_pages.unwrap_or(DEFAULT_MAX_PAGES);
    if max_pages == 0 {
        v.issue(key("max_pages"), "must be at least 1");
    }
    let max_query_variants = s.max_query_variants.unwrap_or(DEFAULT_MAX_QUERY_VARIANTS);
    if max_query_variants == 0 {
        v.issue(key("max_query_variants"), "must be at least 1");
    }
    let check_viewport = |v: &mut Validator, field: &str, vp: RawViewport| {
        if vp.width == 0 || vp.height == 0 || vp.width > MAX_VIEWPORT_DIM || vp.height > MAX_VIEWPORT_DIM {
            v.issue(key(field), format!("{}x{} is out of range 1..={MAX_VIEWPORT_DIM}", vp.width, vp.height));
        }
        Viewport { width: vp.width, height: vp.height }
    };
    let viewports: Vec<Viewport> = match (s.viewport, &s.viewports) {
        (Some(_), Some(_)) => {
            v.issue(key("viewports"), "give either `viewport` or `viewports`, not both");
            vec![DEFAULT_VIEWPORT]
        }
        (Some(vp), None) => vec![check_viewport(v, "viewport", vp)],
        (None, Some(list)) => {
            let list: Vec<Viewport> = list.iter().map(|vp| check_viewport(v, "viewports", *vp)).collect();
            let widths: HashSet<u32> = list.iter().map(|vp| vp.width).collect();
            if list.is_empty() || list.len() > MAX_VIEWPORTS {
                v.issue(key("viewports"), format!("needs 1..={MAX_VIEWPORTS} viewports, not {}", list.len()));
            } else if widths.len() != list.len() {
                v.issue(key("viewports"), "two viewports have the same width (pages are named by width)");
            }
            list
        }
        (None, None) => vec![DEFAULT_VIEWPORT],
    };
    let viewport = viewports.first().copied().unwrap_or(DEFAULT_VIEWPORT);
    let threshold = s.threshold.unwrap_or(DEFAULT_THRESHOLD);
    if !(0.0..=1.0).contains(&threshold) {
        v.issue(key("threshold"), format!("{threshold} is out of range 0..=1"));
    }
    let max_distortion = s.max_distortion.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&max_distortion) {
        v.issue(key("max_distortion"), format!("{max_distortion} is out of range 0..=1"));
    }
    for (field, list) in [
        ("hide_selectors", &s.hide_selectors),
        ("mask_selectors", &s.mask_selectors),
        ("remove_selectors", &s.remove_selectors),
    ] {
        for sel in list {
            if sel.trim().is_empty() || sel.contains(['{', '}']) || scraper::Selector::parse(sel).is_err() {
                v.issue(key(field), format!("{sel:?} is not a CSS selector"));
            }
        }
    }
    let cookies = validate_cookies(v, &key("cookies"), &s.cookies);
    let headers = validate_headers(v, &key("headers"), &s.headers);
    let basic_auth = s.basic_auth.as_ref().and_then(|a| validate_basic_auth(v, &key("basic_auth"), a));
    let user_agent = s.user_agent.clone();
    if let Some(ua) = &user_agent {
        if ua.trim().is_empty() || ua.chars().any(char::is_control) {
            v.issue(key("user_agent"), format!("{ua:?} must be non-empty text without control characters"));
        }
    }
    for p in &s.block_urls {
        if p.trim().is_empty() || p.chars().any(|c| c.is_control() || c.is_whitespace()) {
            v.issue(key("block_urls"), format!("{p:?} is not a URL pattern (text with `*` wildcards)"));
        }
    }
    for p in &s.plugins {
        if !plugin_names.contains(p) {
            v.issue(
                key("plugins"),
                format!("site {name:?} uses plugin {p:?}, which no [[plugins]] entry defines"),
            );
        }
    }
    let compare_to = s.compare_to.as_deref().and_then(|t| v.http_url(&key("compare_to"), &name, t));
    if let (Some(c), Some(sc)) = (&compare_to, &scope) {
        if Scope::new(c) == *sc {
            v.issue(key("compare_to"), format!("site {name:?}: compare_to is the site's own prefix"));
        }
    }
    let (urls, url_options) = match (&start, &scope) {
        (Some(_), Some(scope)) => validate_urls(v, &key, &name, s, scope, root),
        _ => (Vec::new(), HashMap::new()),
    };
    let crawl = s.crawl.unwrap_or(true);
    let page_timeout = Duration::from_millis(s.page_timeout_ms.unwrap_or(DEFAULT_PAGE_TIMEOUT_MS));
    if page_timeout.is_zero() {
        v.issue(key("page_timeout_ms"), "must be positive");
    }
    let request_timeout = Duration::from_millis(s.request_timeout_ms.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS));
    if request_timeout.is_zero() {
        v.issue(key("request_timeout_ms"), "must be positive");
    }
    let max_height = s.max_height.unwrap_or(DEFAULT_MAX_HEIGHT);
    if max_height < 100 {
        v.issue(key("max_height"), format!("{max_height} is below the minimum of 100"));
    }
    if v.issues.len() > before {
        return None;
    }
    Some(SiteConfig {
        name,
        start: start?,
        scope: scope?,
        schedule,
        max_pages,
        max_query_variants,
        viewport,
        viewports,
        threshold,
        max_distortion,
        count_aa: s.count_aa.unwrap_or(false),
        capture: CaptureOptions {
            hide_selectors: s.hide_selectors.clone(),
            mask_selectors: s.mask_selectors.clone(),
            remove_selectors: s.remove_selectors.clone(),
            inject_css: s.inject_css.clone().unwrap_or_default(),
            inject_js: s.inject_js.clone().unwrap_or_default(),
            cookies,
            headers,
            basic_auth,
            user_agent,
            block_urls: s.block_urls.clone(),
            page_timeout,
            max_height,
        },
        plugins: s.plugins.clone(),
        compare_to,
        urls,
        url_options,
        crawl,
        request_timeout,
        page_metrics: s.page_metrics.unwrap_or(true),
    })
}

fn validate_cookies(v: &mut Validator, key: &str, raw: &[RawCookie]) -> Vec<Cookie> {
    let mut names = HashSet::new();
    for c in raw {
        let bad_name = c.name.is_empty()
            || c.name.chars().any(|ch| ch.is_control() || ch.is_whitespace() || "=;,\"".contains(ch));
        if bad_name {
            v.issue(key, format!("cookie name {:?} is empty or has spaces, '=', ';', ',' or quotes", c.name));
        } else if !names.insert(c.name.as_str()) {
            v.issue(key, format!("cookie {:?} is given twice", c.name));
        }
        if c.value.chars().any(|ch| ch.is_control() || ch.is_whitespace() || ";,\"\\".contains(ch)) {
            v.issue(
                key,
                format!("cookie {:?}: the value has spaces, ';', ',', quotes or backslashes", c.name),
            );
        }
    }
    raw.iter().map(|c| Cookie { name: c.name.clone(), value: c.value.clone() }).collect()
}

fn validate_headers(v: &mut Validator, key: &str, raw: &BTreeMap<String, String>) -> Vec<(String, String)> {
    for (name, value) in raw {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            v.issue(key, format!("{name:?} is not an HTTP header name"));
        } else if ["host", "content-length", "cookie", "authorization"]
            .contains(&name.to_ascii_lowercase().as_str())
        {
            v.issue(key, format!("header {name:?} cannot be set here (use `cookies` / `basic_auth`)"));
        }
        if http::HeaderValue::from_str(value).is_err() {
            v.issue(key, format!("header {name:?}: the value is not valid header text"));
        }
    }
    raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn validate_basic_auth(v: &mut Validator, key: &str, raw: &RawBasicAuth) -> Option<BasicAuth> {
    if raw.user.is_empty() || raw.user.contains(':') || raw.user.chars().any(char::is_control) {
        v.issue(format!("{key}.user"), format!("{:?} must be non-empty, without ':'", raw.user));
        return None;
    }
    let var = &raw.password_env;
    if var.is_empty() || var.contains('=') || var.contains('\0') {
        v.issue(format!("{key}.password_env"), format!("{var:?} is not an environment variable name"));
        return None;
    }
    match std::env::var(var) {
        Ok(password) if !password.is_empty() => Some(BasicAuth { user: raw.user.clone(), password }),
        _ => {
            v.issue(
                format!("{key}.password_env"),
                format!("environment variable {var} (the basic auth password) is not set"),
            );
            None
        }
    }
}

/// Largest `urls_file` read.
const MAX_URLS_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A site's `urls` and `urls_file`: absolute URLs inside the prefix, and per-URL options by key.
fn validate_urls(
    v: &mut Validator,
    key: &dyn Fn(&str) -> String,
    name: &str,
    s: &RawSite,
    scope: &Scope,
    root: &Path,
) -> (Vec<Url>, HashMap<String, UrlOptions>) {
    let mut entries: Vec<(String, RawUrl)> =
        s.urls.iter().flatten().map(|u| (key("urls"), u.clone())).collect();
    if let Some(rel) = &s.urls_file {
        let path = resolve(root, rel);
        let text = std::fs::metadata(&path)
            .and_then(|m| {
                if m.len() > MAX_URLS_FILE_BYTES {
                    Err(std::io::Error::other(format!("larger than {MAX_URLS_FILE_BYTES} bytes")))
                } else {
                    std::fs::read_to_string(&path)
                }
            })
            .map_err(|e| {
                v.issue(key("urls_file"), format!("site {name:?}: cannot read {}: {e}", path.display()))
            });
        for line in text.iter().flat_map(|t| t.lines()) {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                entries.push((key("urls_file"), RawUrl::Plain(line.to_string())));
            }
        }
    }
    let mut urls = Vec::new();
    let mut options = HashMap::new();
    for (field, entry) in entries {
        let (text, opts) = match entry {
            RawUrl::Plain(t) => (t, None),
            RawUrl::WithOptions(o) => (o.url.clone(), Some(o)),
        };
        let abs = match scope.prefix().join(&text) {
            Ok(abs) if matches!(abs.scheme(), "http" | "https") => normalize_url(&abs),
            _ => {
                v.issue(field, format!("site {name:?}: {text:?} is not a URL"));
                continue;
            }
        };
        let Some(page_key) = scope.page_key(&abs) else {
            v.issue(field, format!("site {name:?}: {text:?} is outside the prefix"));
            continue;
        };
        if let Some(o) = opts {
            let viewport = o.viewport.map(|vp| {
                if vp.width == 0
                    || vp.height == 0
                    || vp.width > MAX_VIEWPORT_DIM
                    || vp.height > MAX_VIEWPORT_DIM
                {
                    v.issue(
                        field.clone(),
                        format!(
                            "{text:?}: viewport {}x{} is out of range 1..={MAX_VIEWPORT_DIM}",
                            vp.width, vp.height
                        ),
                    );
                }
                Viewport { width: vp.width, height: vp.height }
            });
            for sel in &o.hide_selectors {
                if sel.trim().is_empty() || scraper::Selector::parse(sel).is_err() {
                    v.issue(field.clone(), format!("{text:?}: {sel:?} is not a CSS selector"));
                }
            }
            options.insert(page_key, UrlOptions { viewport, hide_selectors: o.hide_selectors.clone() });
        }
        if !urls.contains(&abs) {
            urls.push(abs);
        }
    }
    (urls, options)
}

#[derive(Default)]
struct Validator {
    issues: Vec<ConfigIssue>,
}

impl Validator {
    fn issue(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue { key: key.into(), message: message.into(), line: None });
    }

    fn http_url(&mut self, key: &str, site: &str, text: &str) -> Option<Url> {
        match Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(normalize_url(&u)),
            Ok(u) => {
                self.issue(
                    key,
                    format!("site {site:?}: {text:?} is not an http(s) URL (scheme {:?})", u.scheme()),
                );
                None
            }
            Err(e) => {
                self.issue(key, format!("site {site:?}: {text:?} is not a URL: {e}"));
                None
            }
        }
    }

    fn timezone(&mut self, key: &str, zone: &str) -> Option<chrono_tz::Tz> {
        match zone.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.issue(key, format!("{zone:?} is not an IANA time zone (e.g. \"Europe/Paris\")"));
                None
            }
        }
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The directory relative config paths are resolved against.
fn project_root(config_dir: &Path) -> PathBuf {
    if config_dir.file_name().is_some_and(|n| n == "config") {
        config_dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        config_dir.to_path_buf()
    }
}

fn resolve(root: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || root.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/tmp/x/sitediff.toml"))
    }

    const MINIMAL: &str = r#"
[[sites]]
name = "docs"
start = "http://127.0.0.1:8000/docs/index.html"
"#;

    #[test]
    fn every_shipped_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert!(!cfg.sites.is_empty(), "{} has no site", path.display());
                n += 1;
            }
        }
        assert!(n >= 2, "expected the example and the demo config");
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.store.keep_crawls, 20);
        assert_eq!(c.browser.webdriver, WebDriverEndpoint::Spawn);
        let s = &c.sites[0];
        assert_eq!(s.scope.prefix().as_str(), "http://127.0.0.1:8000/docs/");
        assert_eq!(s.viewport, Viewport { width: 1280, height: 800 });
        assert_eq!(s.threshold, 0.1);
        assert!(s.schedule.is_none());
        assert_eq!(c.store.path, PathBuf::from("/tmp/x/data/sitediff.redb"));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err =
            parse("[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\nthreshhold = 0.2\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("threshhold"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
        assert!(msg.contains("sitediff.toml"), "{msg}");
    }

    #[test]
    fn unknown_section_is_named() {
        let msg = parse("[serverr]\nlisten = \"127.0.0.1:1\"\n").unwrap_err().to_string();
        assert!(msg.contains("serverr"), "{msg}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
[server]
listen = "nowhere"
[browser]
sessions = 0
[[sites]]
name = "bad name!"
start = "ftp://example/"
threshold = 2.0
schedule = "every tuesday"
plugins = ["ghost"]
[[sites]]
start = "not a url"
"#;
        let err = parse(text).unwrap_err();
        let ConfigError::Invalid { issues, .. } = &err else { panic!("{err}") };
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        for k in [
            "server.listen",
            "browser.sessions",
            "sites[0].name",
            "sites[0].start",
            "sites[0].threshold",
            "sites[0].schedule",
            "sites[0].plugins",
            "sites[1].name",
            "sites[1].start",
        ] {
            assert!(keys.contains(&k), "missing {k} in {keys:?}");
        }
        let msg = err.to_string();
        assert!(msg.contains("ghost"), "{msg}");
        assert!(msg.contains("not a URL"), "{msg}");
    }

    #[test]
    fn validation_errors_carry_their_line() {
        let text = "[server]\nlisten = \"x\"\n\n[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\n\n[[sites]]\nname = \"b\"\n# comment\nthreshold = 3\n";
        let msg = parse(text).unwrap_err().to_string();
        assert!(msg.contains("line 2: server.listen"), "{msg}");
        assert!(msg.contains("line 11: sites[1].threshold"), "{msg}");
        // A missing key points at its table.
        assert!(msg.contains("line 8: sites[1].start"), "{msg}");
        assert_eq!(locate_key("[[sites]]\nname=1\n[[plugins]]\nname=2\n", "plugins[0].name"), Some(4));
        assert_eq!(locate_key("", "server.listen"), None);
    }

    #[test]
    fn missing_start_names_the_site() {
        let msg = parse("[[sites]]\nname = \"shop\"\n").unwrap_err().to_string();
        assert!(msg.contains("sites[0].start") && msg.contains("shop"), "{msg}");
    }

    #[test]
    fn start_outside_prefix_is_rejected() {
        let msg = parse(
            "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/x/\"\nprefix = \"http://127.0.0.1/y/\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("outside the prefix"), "{msg}");
    }

    #[test]
    fn duplicate_site_names_rejected() {
        let msg = parse(&format!("{MINIMAL}{MINIMAL}")).unwrap_err().to_string();
        assert!(msg.contains("defined twice"), "{msg}");
    }

    #[test]
    fn schedule_and_zone() {
        let c = parse(
            "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\nschedule = \"*/5 * * * * *\"\ntimezone = \"Europe/Paris\"\n",
        )
        .unwrap();
        let s = c.sites[0].schedule.as_ref().unwrap();
        let now = chrono::Utc::now();
        let next = s.next_after(now).unwrap();
        assert!(next > now && next - now <= chrono::Duration::seconds(5));
        let msg = parse("[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/\"\ntimezone = \"Mars/Base\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("Mars/Base"), "{msg}");
    }

    #[test]
    fn remote_webdriver_url() {
        let c =
            parse(&format!("[browser]\nwebdriver = \"http://127.0.0.1:4444/wd/hub\"\n{MINIMAL}")).unwrap();
        assert!(matches!(c.browser.webdriver, WebDriverEndpoint::Remote(_)));
        let msg = parse("[browser]\nwebdriver = \"grid\"\n").unwrap_err().to_string();
        assert!(msg.contains("browser.webdriver"), "{msg}");
    }

    #[test]
    fn urls_resolve_against_prefix() {
        let c = parse(
            "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/d/\"\nurls = [\"a.html\", \"sub/b.html?x=1\"]\n",
        )
        .unwrap();
        let urls: Vec<&str> = c.sites[0].urls.iter().map(Url::as_str).collect();
        assert_eq!(urls, ["http://127.0.0.1/d/a.html", "http://127.0.0.1/d/sub/b.html?x=1"]);
        let msg =
            parse("[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/d/\"\nurls = [\"/elsewhere\"]\n")
                .unwrap_err()
                .to_string();
        assert!(msg.contains("outside the prefix"), "{msg}");
    }

    #[test]
    fn capture_options_are_parsed() {
        std::env::set_var("SITEDIFF_TEST_PW_OK", "s3cret");
        let c = parse(
            r#"
[[sites]]
name = "a"
start = "http://127.0.0.1/d/"
viewports = [{ width = 1280, height = 800 }, { width = 375, height = 667 }]
inject_js = "document.body.dataset.x = 1"
remove_selectors = [".banner"]
cookies = [{ name = "consent", value = "yes" }]
headers = { X-Env = "staging" }
basic_auth = { user = "me", password_env = "SITEDIFF_TEST_PW_OK" }
user_agent = "sitediff-test"
block_urls = ["*.ads.*", "*/tracker.js"]
"#,
        )
        .unwrap();
        let s = &c.sites[0];
        assert_eq!(s.viewport, Viewport { width: 1280, height: 800 });
        assert_eq!(s.viewports, vec![s.viewport, Viewport { width: 375, height: 667 }]);
        let o = &s.capture;
        assert_eq!(o.inject_js, "document.body.dataset.x = 1");
        assert_eq!(o.remove_selectors, vec![".banner".to_string()]);
        assert_eq!(o.cookies, vec![Cookie { name: "consent".into(), value: "yes".into() }]);
        assert_eq!(o.headers, vec![("X-Env".to_string(), "staging".to_string())]);
        assert_eq!(o.basic_auth, Some(BasicAuth { user: "me".into(), password: "s3cret".into() }));
        assert!(!format!("{o:?}").contains("s3cret"), "the password is redacted in Debug");
        assert_eq!(o.user_agent.as_deref(), Some("sitediff-test"));
        assert_eq!(o.block_urls.len(), 2);
        // Defaults: one viewport, nothing else.
        let d = parse(MINIMAL).unwrap();
        assert_eq!(d.sites[0].viewports, vec![DEFAULT_VIEWPORT]);
        assert!(d.sites[0].capture.cookies.is_empty() && d.sites[0].capture.basic_auth.is_none());
    }

    #[test]
    fn bad_capture_options_are_each_reported() {
        let text = r#"
[[sites]]
name = "a"
start = "http://127.0.0.1/d/"
viewport = { width = 800, height = 600 }
viewports = [{ width = 800, height = 600 }]
remove_selectors = ["}{"]
cookies = [{ name = "a b", value = "1" }, { name = "c", value = "x;y" }]
headers = { "Bad Header" = "v", Cookie = "x=1" }
basic_auth = { user = "me", password_env = "SITEDIFF_TEST_PW_SURELY_UNSET" }
user_agent = ""
block_urls = [""]
[[sites]]
name = "b"
start = "http://127.0.0.1/e/"
viewports = [{ width = 800, height = 600 }, { width = 800, height = 900 }]
"#;
        let err = parse(text).unwrap_err();
        let ConfigError::Invalid { issues, .. } = &err else { panic!("{err}") };
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        for k in [
            "sites[0].viewports",
            "sites[0].remove_selectors",
            "sites[0].cookies",
            "sites[0].headers",
            "sites[0].basic_auth.password_env",
            "sites[0].user_agent",
            "sites[0].block_urls",
            "sites[1].viewports",
        ] {
            assert!(keys.contains(&k), "missing {k} in {keys:?}");
        }
        assert_eq!(keys.iter().filter(|k| **k == "sites[0].cookies").count(), 2, "{keys:?}");
        assert_eq!(keys.iter().filter(|k| **k == "sites[0].headers").count(), 2, "{keys:?}");
        let msg = err.to_string();
        assert!(msg.contains("SITEDIFF_TEST_PW_SURELY_UNSET"), "{msg}");
        assert!(msg.contains("same width"), "{msg}");
    }

    #[test]
    fn url_entries_with_options_and_urls_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("urls.txt"), "# pages\nc.html\n\n  d.html?x=1  \nb.html\n").unwrap();
        let text = r#"
[[sites]]
name = "a"
start = "http://127.0.0.1/d/"
crawl = false
urls = [{ url = "a.html", viewport = { width = 375, height = 700 }, hide_selectors = [".ad"] }, "b.html"]
urls_file = "urls.txt"
"#;
        let c = Config::parse(text, &dir.path().join("sitediff.toml")).unwrap();
        let s = &c.sites[0];
        let urls: Vec<&str> = s.urls.iter().map(Url::as_str).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1/d/a.html",
                "http://127.0.0.1/d/b.html",
                "http://127.0.0.1/d/c.html",
                "http://127.0.0.1/d/d.html?x=1"
            ]
        );
        let base = Arc::new(s.capture.clone());
        let (vp, opts) = s.capture_for("/a.html", s.viewport, &base);
        assert_eq!(vp, Viewport { width: 375, height: 700 });
        assert_eq!(opts.hide_selectors, [".ad"]);
        let (vp, opts) = s.capture_for("/b.html", s.viewport, &base);
        assert_eq!(vp, s.viewport);
        assert!(Arc::ptr_eq(&opts, &base));

        let bad = r#"
[[sites]]
name = "a"
start = "http://127.0.0.1/d/"
urls = [{ url = "a.html", viewport = { width = 0, height = 700 } }, { url = "/x/y.html" }, { url = "b.html", hide_selectors = ["}{"] }]
urls_file = "missing.txt"
"#;
        let msg = Config::parse(bad, &dir.path().join("sitediff.toml")).unwrap_err().to_string();
        for part in
            ["out of range", "outside the prefix", "not a CSS selector", "missing.txt", "sites[0].urls_file"]
        {
            assert!(msg.contains(part), "missing {part:?} in {msg}");
        }
        let unknown = parse(
            "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1/d/\"\nurls = [{ url = \"a\", zoom = 2 }]\n",
        );
        assert!(unknown.is_err());
    }

    #[test]
    fn compare_to_is_accepted_and_checked() {
        let c = parse(
            "[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1:1/d/\"\ncompare_to = \"http://127.0.0.1:2/d/\"\n",
        )
        .unwrap();
        assert_eq!(c.sites[0].compare_to.as_ref().unwrap().as_str(), "http://127.0.0.1:2/d/");
        let msg = parse("[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1:1/d/\"\ncompare_to = \"http://127.0.0.1:1/d/\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("own prefix"), "{msg}");
        let s = SiteConfig::for_pair("pair-x", "http://127.0.0.1:1/d/", "http://127.0.0.1:2/d/").unwrap();
        assert_eq!(s.scope.prefix().as_str(), "http://127.0.0.1:1/d/");
        assert_eq!(s.viewport, DEFAULT_VIEWPORT);
        assert!(SiteConfig::for_pair("pair-x", "ftp://x/", "http://127.0.0.1:2/d/").is_err());
    }
}
