//! The validated configuration: typed values (addresses, URLs, scopes, schedules, durations) that
//! the rest of sitediff reads. Validation (`Config::from_raw`) builds it from the raw file; tests
//! and one-off commands may build parts of it directly.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::builtin::{BUILTIN_PLUGINS, BUILTIN_PLUGIN_PREFIX};
use crate::crawl::links::Scope;

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
    /// `[[notify]]` webhooks (issue 18).
    pub notify: Vec<NotifyConfig>,
}

/// When a `[[notify]]` webhook is called (after a crawl ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    /// Changed, added or removed pages.
    Changed,
    /// The crawl failed or was interrupted, or pages newly failed.
    Failed,
    /// Every crawl that ends.
    Finished,
}

impl NotifyOn {
    pub fn parse(s: &str) -> Option<NotifyOn> {
        match s {
            "changed" => Some(NotifyOn::Changed),
            "failed" => Some(NotifyOn::Failed),
            "finished" => Some(NotifyOn::Finished),
            _ => None,
        }
    }
}

/// The body a `[[notify]]` webhook gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// sitediff's JSON object.
    Json,
    /// A Slack-compatible incoming-webhook body (`{"text": ...}`).
    Slack,
}

/// One validated `[[notify]]` entry.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub url: Url,
    pub on: Vec<NotifyOn>,
    pub format: NotifyFormat,
    /// The variable whose value signs the body (`X-Sitediff-Signature: sha256=HMAC`).
    pub secret_env: Option<String>,
}

impl NotifyConfig {
    /// The signing secret, when `secret_env` names a variable that is set and non-empty.
    pub fn secret(&self) -> Option<String> {
        let var = self.secret_env.as_deref()?;
        std::env::var(var).ok().filter(|t| !t.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Name of the environment variable holding the write token.
    pub token_env: Option<String>,
    /// Writes without a token, explicitly allowed (never together with `token_env`).
    pub allow_anonymous_writes: bool,
    /// `Host` names (and `Origin`s) accepted besides loopback and the listen address.
    pub allowed_hosts: Vec<AllowedHost>,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a request's headers (or an idle connection's next request) may take to arrive.
    pub header_timeout: Duration,
    /// How long a request body may take (uploads: the longest pause between two of its pieces).
    pub body_timeout: Duration,
    /// Serve the bundled demo site (`web/demo/`) at `/demo/` (for the demo config).
    pub demo_dir: Option<PathBuf>,
    /// What `POST /api/pairs` may crawl (both prefixes must match one entry); empty: nothing.
    pub pair_prefixes: Vec<PairPrefix>,
    /// Directories `POST /api/backup` may write into (relative ones resolved against the config's
    /// directory; a destination's own directory must be one of them or inside one); empty: the
    /// store file's directory only.
    pub backup_dirs: Vec<PathBuf>,
}

/// One entry of `server.pair_prefixes`: a URL prefix (`https://staging.example.com/docs/`) or a
/// host pattern (`staging.example.com`, `*.staging.example.com`, any http(s) URL on that host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairPrefix {
    Url(Url),
    /// Lower-case host; `wildcard`: any subdomain of it (not the host itself).
    Host {
        host: String,
        wildcard: bool,
    },
}

impl PairPrefix {
    /// Parse one entry; the reason when it is not one.
    pub fn parse(text: &str) -> Result<PairPrefix, String> {
        let t = text.trim();
        if t.contains("://") {
            let url = Url::parse(t).map_err(|e| format!("not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err("a URL prefix must be an http(s) URL with a host".into());
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err("a URL prefix has no query or fragment".into());
            }
            return Ok(PairPrefix::Url(url));
        }
        let (wildcard, host) = match t.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let valid = !host.is_empty()
            && host
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            || host.parse::<std::net::IpAddr>().is_ok() && !wildcard;
        if !valid {
            return Err("give a URL prefix (https://host/path/) or a host pattern (host, *.host)".into());
        }
        Ok(PairPrefix::Host { host: host.to_ascii_lowercase(), wildcard })
    }

    /// Whether `url` lies under this entry.
    pub fn allows(&self, url: &Url) -> bool {
        if !matches!(url.scheme(), "http" | "https") {
            return false;
        }
        match self {
            PairPrefix::Url(prefix) => {
                url.scheme() == prefix.scheme()
                    && url.host_str() == prefix.host_str()
                    && url.port_or_known_default() == prefix.port_or_known_default()
                    && url.path().starts_with(prefix.path())
            }
            PairPrefix::Host { host, wildcard } => {
                let Some(h) = url.host_str() else { return false };
                let h = h.to_ascii_lowercase();
                if *wildcard {
                    h.strip_suffix(host.as_str()).is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
                } else {
                    h == *host
                }
            }
        }
    }
}

impl std::fmt::Display for PairPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PairPrefix::Url(u) => write!(f, "{u}"),
            PairPrefix::Host { host, wildcard: true } => write!(f, "*.{host}"),
            PairPrefix::Host { host, wildcard: false } => write!(f, "{host}"),
        }
    }
}

/// One entry of `server.allowed_hosts`: a host name or IP literal (lower case, IPv6 in brackets),
/// on any port or on one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    pub host: String,
    pub port: Option<u16>,
}

impl AllowedHost {
    /// Parse `host` or `host:port` (IPv6 as `[::1]` or `[::1]:8080`); the reason when it is not one.
    pub fn parse(text: &str) -> Result<AllowedHost, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty".into());
        }
        if t.contains("://") || t.contains(['/', '@', '?', '#', '*']) || t.contains(char::is_whitespace) {
            return Err("give a host name or host:port (no scheme, path, user or wildcard)".into());
        }
        let url = Url::parse(&format!("http://{t}/")).map_err(|e| format!("not a host name: {e}"))?;
        let host = url.host_str().ok_or("not a host name")?.to_ascii_lowercase();
        // An explicit `:80` is dropped by the URL parser as the default port: keep it.
        let port = match url.port() {
            Some(p) => Some(p),
            None if t.ends_with(":80") => Some(80),
            None => None,
        };
        Ok(AllowedHost { host, port })
    }
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

/// How many sessions the pool keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// Exactly `browser.sessions`.
    Fixed,
    /// `browser.sessions = "auto"`: a remote endpoint's slots as its `/status` reports them (a
    /// Selenium Grid's free slots plus the pool's own), followed as nodes come and go, at most
    /// `sessions`; with a spawned chromedriver, the machine's cores.
    Auto,
}

/// How a session's page is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A DevTools connection of our own to the page where there is one (a spawned chromedriver's
    /// browser, a Grid session's `se:cdp`, a loopback `debuggerAddress` behind a loopback
    /// endpoint), else WebDriver with DevTools passthrough, else W3C commands only.
    Auto,
    /// WebDriver only: DevTools commands through the endpoint's passthrough where it has one.
    WebDriver,
    /// W3C commands only (window-resize fallbacks; DevTools-only site options are refused).
    W3c,
}

#[derive(Debug, Clone)]
pub struct BrowserConfig {
    pub webdriver: WebDriverEndpoint,
    /// Sessions used in parallel (with [`Capacity::Auto`], the most ever used).
    pub sessions: usize,
    pub capacity: Capacity,
    pub transport: Transport,
    /// Over a Grid: drive a session's page over the DevTools WebSocket of the node that runs it
    /// (the Grid's `/status` names the node) rather than the router's `se:cdp`, which relays every
    /// message once more; a node that cannot be reached from here falls back to the router.
    pub node_devtools: bool,
    /// Bound on opening one session (a Grid queues the request while no slot is free).
    pub session_timeout: std::time::Duration,
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
    /// Reuse a page's approved capture, without opening it in the browser, when every input of
    /// its capture fingerprint is unchanged (default on).
    pub incremental: bool,
    /// With `incremental`: every Nth crawl of the site renders every page (`None`: never forced).
    pub full_every: Option<u32>,
    /// Rectangles ignored by the comparison on one page key or every page (`"*"`), besides the
    /// ones reviewers store.
    pub ignore_areas: Vec<ConfigIgnoreArea>,
}

/// One configured ignore area (`ignore_areas = [{ key, x, y, w, h }]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIgnoreArea {
    /// A page key, or `"*"` for every page of the site.
    pub key: String,
    pub rect: crate::diff::Rect,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub name: String,
    pub source: PluginSource,
    pub limits: PluginLimits,
}

/// Where a plugin's module comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A `.wat` or `.wasm` file (from a config: resolved to an absolute path).
    File(PathBuf),
    /// A module bundled in the binary, named `builtin:NAME` in the config: its WAT text.
    Builtin { name: &'static str, wat: &'static str },
}

impl PluginSource {
    /// The bundled plugin called `name` (`mask_selectors`), if there is one.
    pub fn builtin(name: &str) -> Option<PluginSource> {
        BUILTIN_PLUGINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(name, wat)| PluginSource::Builtin { name, wat })
    }

    /// The names of the bundled plugins.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN_PLUGINS.iter().map(|(n, _)| *n)
    }

    /// The file, or `builtin:NAME`, as a path (what messages and `plugin check` show).
    pub fn path(&self) -> PathBuf {
        match self {
            PluginSource::File(p) => p.clone(),
            PluginSource::Builtin { name, .. } => PathBuf::from(format!("{BUILTIN_PLUGIN_PREFIX}{name}")),
        }
    }
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::File(p) => write!(f, "{}", p.display()),
            PluginSource::Builtin { name, .. } => write!(f, "{BUILTIN_PLUGIN_PREFIX}{name}"),
        }
    }
}

/// Per-call sandbox limits for a plugin (`Default`: the limits of a plugin entry that sets none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PluginLimits {
    pub fuel: u64,
    pub memory_bytes: usize,
    pub timeout: Duration,
}

impl Config {
    /// Look a site up by name.
    pub fn site(&self, name: &str) -> Option<&SiteConfig> {
        self.sites.iter().find(|s| s.name == name)
    }
}
