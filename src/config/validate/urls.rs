//! Validation of a site's page list: `urls` entries (plain or with their own viewport and hidden
//! selectors) and the lines of `urls_file`, as absolute URLs inside the site's prefix.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use url::Url;

use super::checks::{is_css_selector, resolve, Validator};
use crate::config::defaults::MAX_URLS_FILE_BYTES;
use crate::config::model::UrlOptions;
use crate::config::raw::{RawSite, RawUrl};
use crate::crawl::links::{normalize_url, Scope};

/// A site's `urls` and `urls_file`: absolute URLs inside the prefix, and per-URL options by key.
pub(super) fn validate_urls(
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
    let mut seen = HashSet::new();
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
            let viewport =
                o.viewport.map(|vp| v.viewport(field.clone(), &format!("{text:?}: viewport "), vp));
            for sel in o.hide_selectors.iter().filter(|sel| !is_css_selector(sel)) {
                v.issue(field.clone(), format!("{text:?}: {sel:?} is not a CSS selector"));
            }
            options.insert(page_key, UrlOptions { viewport, hide_selectors: o.hide_selectors.clone() });
        }
        if seen.insert(abs.clone()) {
            urls.push(abs);
        }
    }
    (urls, options)
}
