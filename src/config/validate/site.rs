//! Validation of one `[[sites]]` entry: URLs and scope, schedule, viewports, thresholds, capture
//! options (selectors, cookies, headers, basic auth, ...), plugins used; and the default site of a
//! one-off pair crawl.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::checks::{is_css_selector, Validator};
use super::urls::validate_urls;
use crate::config::defaults::{
    DEFAULT_MAX_HEIGHT, DEFAULT_MAX_PAGES, DEFAULT_MAX_QUERY_VARIANTS, DEFAULT_PAGE_TIMEOUT_MS,
    DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_THRESHOLD, DEFAULT_VIEWPORT, MAX_VIEWPORTS, MIN_MAX_HEIGHT,
};
use crate::config::error::ConfigIssue;
use crate::config::model::{
    BasicAuth, CaptureOptions, ConfigIgnoreArea, Cookie, Schedule, SiteConfig, Viewport,
};
use crate::config::raw::{RawBasicAuth, RawCookie, RawIgnoreArea, RawSite};
use crate::crawl::links::Scope;

impl SiteConfig {
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

pub(super) fn validate_site(
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
        Some(n) if v.name(key("name"), n) => n.clone(),
        Some(_) => format!("#{i}"),
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
    let viewports: Vec<Viewport> = match (s.viewport, &s.viewports) {
        (Some(_), Some(_)) => {
            v.issue(key("viewports"), "give either `viewport` or `viewports`, not both");
            vec![DEFAULT_VIEWPORT]
        }
        (Some(vp), None) => vec![v.viewport(key("viewport"), "", vp)],
        (None, Some(list)) => {
            let list: Vec<Viewport> = list.iter().map(|vp| v.viewport(key("viewports"), "", *vp)).collect();
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
        // Each is injected as a CSS rule of its own: no braces, even inside strings.
        for sel in list.iter().filter(|sel| sel.contains(['{', '}']) || !is_css_selector(sel)) {
            v.issue(key(field), format!("{sel:?} is not a CSS selector"));
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
        _ => Default::default(),
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
    if max_height < MIN_MAX_HEIGHT {
        v.issue(key("max_height"), format!("{max_height} is below the minimum of {MIN_MAX_HEIGHT}"));
    }
    if s.full_every == Some(0) {
        v.issue(key("full_every"), "must be at least 1 (1 = every crawl renders every page)");
    }
    let ignore_areas = validate_ignore_areas(v, &key("ignore_areas"), &s.ignore_areas);
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
        incremental: s.incremental.unwrap_or(true),
        full_every: s.full_every,
        ignore_areas,
    })
}

/// `ignore_areas`: a page key (or `"*"`) and a rectangle of positive size.
fn validate_ignore_areas(v: &mut Validator, key: &str, raw: &[RawIgnoreArea]) -> Vec<ConfigIgnoreArea> {
    let mut out = Vec::new();
    for (i, a) in raw.iter().enumerate() {
        let k = format!("{key}[{i}]");
        if a.key.is_empty() || a.key.chars().any(char::is_control) {
            v.issue(&k, format!("key {:?} must be a page key or \"*\" (every page)", a.key));
        } else if a.w == 0 || a.h == 0 {
            v.issue(
                &k,
                format!("area {}x{} at {},{} is empty: w and h must be positive", a.w, a.h, a.x, a.y),
            );
        } else {
            let rect = crate::diff::Rect { x: a.x, y: a.y, width: a.w, height: a.h };
            out.push(ConfigIgnoreArea { key: a.key.clone(), rect });
        }
    }
    out
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
    if !v.env_var_name(format!("{key}.password_env"), var) {
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
