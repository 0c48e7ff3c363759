//! Validation: the raw file ([`RawConfig`]) into the typed model ([`Config`]), with defaults
//! applied and *every* problem collected (key path and message; the loader adds lines). The
//! top-level sections are checked here, sites in `site` (their page lists in `urls`).

mod checks;
mod site;
mod urls;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::config::builtin::BUILTIN_PLUGIN_PREFIX;
use crate::config::defaults::{
    DEFAULT_BODY_TIMEOUT_MS, DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_KEEP_CRAWLS, DEFAULT_LISTEN,
    DEFAULT_MAX_CONCURRENT_SITES, DEFAULT_MAX_CONNECTIONS, DEFAULT_RECYCLE_AFTER, DEFAULT_SESSIONS,
    DEFAULT_SESSION_TIMEOUT_MS, DEFAULT_STORE_PATH, MAX_MAX_CONNECTIONS, MAX_PLUGIN_MEMORY_MB, MAX_SESSIONS,
    MIN_HTTP_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS,
};
use crate::config::error::ConfigIssue;
use crate::config::model::{
    AllowedHost, BrowserConfig, Capacity, Config, NotifyConfig, NotifyFormat, NotifyOn, PairPrefix,
    PluginConfig, PluginLimits, PluginSource, SchedulerConfig, ServerConfig, StoreConfig, Transport,
    WebDriverEndpoint,
};
use crate::config::raw::{RawBrowser, RawConfig, RawPlugin, RawScheduler, RawServer, RawSessions, RawStore};
use checks::{project_root, resolve, Validator};

impl Config {
    /// Validate a parsed file, collecting every problem. `path` is the file's: relative paths in it
    /// are resolved against its project (see `project_root`).
    pub fn from_raw(raw: RawConfig, path: &Path) -> Result<Config, Vec<ConfigIssue>> {
        let mut v = Validator::default();
        let root = project_root(path);
        let server = server(&mut v, &raw.server, &root);
        let store = store(&mut v, &raw.store, &root);
        let browser = browser(&mut v, &raw.browser, &root);
        let scheduler = scheduler(&mut v, &raw.scheduler);
        let (plugins, plugin_names) = plugins(&mut v, &raw.plugins, &root);
        let notify = notify(&mut v, &raw.notify);

        let mut sites = Vec::new();
        let mut site_names = HashSet::new();
        for (i, s) in raw.sites.iter().enumerate() {
            if let Some(site) = site::validate_site(&mut v, i, s, &plugin_names, scheduler.timezone, &root) {
                if !site_names.insert(site.name.clone()) {
                    v.issue(format!("sites[{i}].name"), format!("site {:?} is defined twice", site.name));
                }
                sites.push(site);
            }
        }

        if v.issues.is_empty() {
            Ok(Config {
                source: path.to_path_buf(),
                server,
                store,
                browser,
                scheduler,
                sites,
                plugins,
                notify,
            })
        } else {
            Err(v.issues)
        }
    }
}

fn server(v: &mut Validator, raw: &RawServer, root: &Path) -> ServerConfig {
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            v.issue("server.listen", format!("{listen_text:?} is not an address like 127.0.0.1:8080"));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    };
    if let Some(t) = &raw.token_env {
        v.env_var_name("server.token_env", t);
    }
    let allow_anonymous_writes = raw.allow_anonymous_writes.unwrap_or(false);
    if allow_anonymous_writes && raw.token_env.is_some() {
        v.issue(
            "server.allow_anonymous_writes",
            "cannot be true while server.token_env is set (writes then need the token): keep one of them",
        );
    }
    let mut allowed_hosts = Vec::new();
    for (i, h) in raw.allowed_hosts.iter().flatten().enumerate() {
        match AllowedHost::parse(h) {
            Ok(a) => allowed_hosts.push(a),
            Err(reason) => v.issue(format!("server.allowed_hosts[{i}]"), format!("{h:?}: {reason}")),
        }
    }
    let mut pair_prefixes = Vec::new();
    for (i, p) in raw.pair_prefixes.iter().flatten().enumerate() {
        match PairPrefix::parse(p) {
            Ok(a) => pair_prefixes.push(a),
            Err(reason) => v.issue(format!("server.pair_prefixes[{i}]"), format!("{p:?}: {reason}")),
        }
    }
    let backup_dirs = raw.backup_dirs.iter().flatten().map(|d| resolve(root, d)).collect();
    let max_connections = raw.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if !(1..=MAX_MAX_CONNECTIONS).contains(&max_connections) {
        v.issue(
            "server.max_connections",
            format!("{max_connections} is out of range 1..={MAX_MAX_CONNECTIONS}"),
        );
    }
    let mut timeout = |key: &str, value: Option<u64>, default: u64| {
        let ms = value.unwrap_or(default);
        if ms < MIN_HTTP_TIMEOUT_MS {
            v.issue(key, format!("{ms} ms is shorter than the {MIN_HTTP_TIMEOUT_MS} ms accepted"));
        }
        Duration::from_millis(ms.max(MIN_HTTP_TIMEOUT_MS))
    };
    let header_timeout =
        timeout("server.header_timeout_ms", raw.header_timeout_ms, DEFAULT_HEADER_TIMEOUT_MS);
    let body_timeout = timeout("server.body_timeout_ms", raw.body_timeout_ms, DEFAULT_BODY_TIMEOUT_MS);
    let demo_dir = raw.demo_site.unwrap_or(false).then(|| root.join("web").join("demo"));
    ServerConfig {
        listen,
        token_env: raw.token_env.clone(),
        allow_anonymous_writes,
        allowed_hosts,
        max_connections: max_connections.clamp(1, MAX_MAX_CONNECTIONS),
        header_timeout,
        body_timeout,
        demo_dir,
        pair_prefixes,
        backup_dirs,
    }
}

/// The `[[notify]]` webhooks.
fn notify(v: &mut Validator, raw: &[crate::config::RawNotify]) -> Vec<NotifyConfig> {
    let mut out = Vec::new();
    for (i, n) in raw.iter().enumerate() {
        let key = |k: &str| format!("notify[{i}].{k}");
        let before = v.issues.len();
        let url = match n.url.as_deref() {
            None => {
                v.issue(key("url"), "missing (every webhook needs a url)");
                None
            }
            Some(t) => match url::Url::parse(t) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
                _ => {
                    v.issue(key("url"), format!("{t:?} is not an http(s) URL"));
                    None
                }
            },
        };
        let mut on = Vec::new();
        for (j, e) in
            n.on.clone().unwrap_or_else(|| vec!["changed".into(), "failed".into()]).iter().enumerate()
        {
            match NotifyOn::parse(e) {
                Some(o) if !on.contains(&o) => on.push(o),
                Some(_) => {}
                None => v.issue(
                    format!("notify[{i}].on[{j}]"),
                    format!("{e:?}: expected changed, failed or finished"),
                ),
            }
        }
        if n.on.as_ref().is_some_and(Vec::is_empty) {
            v.issue(key("on"), "empty: name at least one of changed, failed, finished");
        }
        let format = match n.format.as_deref().unwrap_or("json") {
            "json" => NotifyFormat::Json,
            "slack" => NotifyFormat::Slack,
            other => {
                v.issue(key("format"), format!("{other:?}: expected \"json\" or \"slack\""));
                NotifyFormat::Json
            }
        };
        if let Some(s) = &n.secret_env {
            v.env_var_name(key("secret_env"), s);
        }
        if let (Some(url), true) = (url, v.issues.len() == before) {
            out.push(NotifyConfig { url, on, format, secret_env: n.secret_env.clone() });
        }
    }
    out
}

fn store(v: &mut Validator, raw: &RawStore, root: &Path) -> StoreConfig {
    let path = raw.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_PATH));
    if path.as_os_str().is_empty() {
        v.issue("store.path", "must not be empty");
    }
    let keep_crawls = raw.keep_crawls.unwrap_or(DEFAULT_KEEP_CRAWLS);
    if keep_crawls == 0 {
        v.issue("store.keep_crawls", "must be at least 1 (the latest crawl is always kept)");
    }
    StoreConfig { path: resolve(root, &path), keep_crawls }
}

fn browser(v: &mut Validator, raw: &RawBrowser, root: &Path) -> BrowserConfig {
    let webdriver = match raw.webdriver.as_deref() {
        None | Some("spawn") => WebDriverEndpoint::Spawn,
        Some(s) => match Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => WebDriverEndpoint::Remote(u),
            _ => {
                v.issue("browser.webdriver", format!("{s:?} is neither \"spawn\" nor an http(s) URL"));
                WebDriverEndpoint::Spawn
            }
        },
    };
    let (sessions, capacity) = match &raw.sessions {
        None => (DEFAULT_SESSIONS, Capacity::Fixed),
        Some(RawSessions::Word(w)) if w == "auto" => (MAX_SESSIONS, Capacity::Auto),
        Some(RawSessions::Word(w)) => {
            v.issue("browser.sessions", format!("{w:?} is neither a number nor \"auto\""));
            (DEFAULT_SESSIONS, Capacity::Fixed)
        }
        Some(RawSessions::Count(n)) => {
            if *n < 1 || *n > MAX_SESSIONS as i64 {
                v.issue("browser.sessions", format!("{n} is out of range 1..={MAX_SESSIONS}"));
            }
            (usize::try_from(*n).unwrap_or(1), Capacity::Fixed)
        }
    };
    let transport = match raw.transport.as_deref() {
        None | Some("auto") => Transport::Auto,
        Some("webdriver") => Transport::WebDriver,
        Some("w3c") => Transport::W3c,
        Some(t) => {
            v.issue("browser.transport", format!("{t:?} is not one of \"auto\", \"webdriver\", \"w3c\""));
            Transport::Auto
        }
    };
    let session_timeout_ms = raw.session_timeout_ms.unwrap_or(DEFAULT_SESSION_TIMEOUT_MS);
    if session_timeout_ms < MIN_SESSION_TIMEOUT_MS {
        v.issue("browser.session_timeout_ms", format!("must be at least {MIN_SESSION_TIMEOUT_MS}"));
    }
    let recycle_after = raw.recycle_after.unwrap_or(DEFAULT_RECYCLE_AFTER);
    if recycle_after == 0 {
        v.issue("browser.recycle_after", "must be at least 1");
    }
    BrowserConfig {
        webdriver,
        sessions: sessions.clamp(1, MAX_SESSIONS),
        capacity,
        transport,
        node_devtools: raw.node_devtools.unwrap_or(true),
        session_timeout: Duration::from_millis(session_timeout_ms.max(MIN_SESSION_TIMEOUT_MS)),
        chromedriver: raw.chromedriver.as_ref().map(|p| resolve(root, p)),
        chromium: raw.chromium.as_ref().map(|p| resolve(root, p)),
        recycle_after: recycle_after.max(1),
    }
}

fn scheduler(v: &mut Validator, raw: &RawScheduler) -> SchedulerConfig {
    let timezone = match raw.timezone.as_deref() {
        None => chrono_tz::UTC,
        Some(z) => v.timezone("scheduler.timezone", z).unwrap_or(chrono_tz::UTC),
    };
    let max_sites = raw.max_concurrent_sites.unwrap_or(DEFAULT_MAX_CONCURRENT_SITES);
    if max_sites == 0 {
        v.issue("scheduler.max_concurrent_sites", "must be at least 1");
    }
    SchedulerConfig { max_concurrent_sites: max_sites.max(1), timezone }
}

/// The plugins with a usable name and path, and every valid name given (sites may name a plugin
/// whose entry has another problem without a second message).
fn plugins(v: &mut Validator, raw: &[RawPlugin], root: &Path) -> (Vec<PluginConfig>, HashSet<String>) {
    let mut plugins = Vec::new();
    let mut names = HashSet::new();
    for (i, p) in raw.iter().enumerate() {
        let key = |k: &str| format!("plugins[{i}].{k}");
        let name = match &p.name {
            Some(n) if v.name(key("name"), n) => n.clone(),
            Some(_) => continue,
            None => {
                v.issue(key("name"), "missing");
                continue;
            }
        };
        if !names.insert(name.clone()) {
            v.issue(key("name"), format!("plugin {name:?} is defined twice"));
        }
        let Some(rel) = &p.path else {
            v.issue(key("path"), format!("plugin {name:?} has no path"));
            continue;
        };
        let source = match rel.to_str().and_then(|s| s.strip_prefix(BUILTIN_PLUGIN_PREFIX)) {
            Some(builtin) => match PluginSource::builtin(builtin) {
                Some(source) => source,
                None => {
                    let known: Vec<String> = PluginSource::builtin_names()
                        .map(|n| format!("{BUILTIN_PLUGIN_PREFIX}{n}"))
                        .collect();
                    v.issue(
                        key("path"),
                        format!(
                            "plugin {name:?}: no built-in plugin {builtin:?} (built in: {})",
                            known.join(", ")
                        ),
                    );
                    continue;
                }
            },
            None => {
                let path = resolve(root, rel);
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext != "wat" && ext != "wasm" {
                    v.issue(
                        key("path"),
                        format!("plugin {name:?}: {} must end in .wat or .wasm", path.display()),
                    );
                }
                PluginSource::File(path)
            }
        };
        let mut limits = PluginLimits::default();
        if let Some(f) = p.fuel {
            if f == 0 {
                v.issue(key("fuel"), "must be positive");
            }
            limits.fuel = f;
        }
        if let Some(m) = p.memory_mb {
            if m == 0 || m > MAX_PLUGIN_MEMORY_MB {
                v.issue(key("memory_mb"), format!("{m} is out of range 1..={MAX_PLUGIN_MEMORY_MB}"));
            }
            limits.memory_bytes = m as usize * 1024 * 1024;
        }
        if let Some(t) = p.timeout_ms {
            if t == 0 {
                v.issue(key("timeout_ms"), "must be positive");
            }
            limits.timeout = Duration::from_millis(t);
        }
        plugins.push(PluginConfig { name, source, limits });
    }
    (plugins, names)
}
