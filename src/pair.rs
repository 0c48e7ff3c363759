//! Pair Diff sites: the site a pair crawl of `head` against `base` runs as (a configured site moved
//! onto the head prefix, or defaults), its default name, and which prefixes the daemon's
//! `POST /api/pairs` may crawl (`server.pair_prefixes`). Shared by `sitediff pair` and the API.

use url::Url;

use crate::config::{Config, PairPrefix, SiteConfig};
use crate::crawl::links::{normalize_url, Scope};

/// Longest site name (the config's rule).
const MAX_SITE_NAME: usize = 64;

/// Why a pair crawl cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("{which} {text:?} is not a URL")]
    BadUrl {
        which: &'static str,
        text: String,
        #[source]
        source: url::ParseError,
    },
    #[error("bad pair arguments:\n{}", issues.join("\n"))]
    Invalid { issues: Vec<String> },
    #[error("{which} {url} is not under server.pair_prefixes ({allowed})")]
    NotAllowed { which: &'static str, url: String, allowed: String },
}

/// The default site name of a pair crawl: `pair-HOST-PORT-PATH` with every other character `-`.
pub fn pair_site_name(head: &Url) -> String {
    let mut raw = String::from("pair-");
    raw.push_str(head.host_str().unwrap_or("host"));
    if let Some(p) = head.port() {
        raw.push_str(&format!("-{p}"));
    }
    raw.push_str(head.path());
    let mut name = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') { c } else { '-' };
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    let name = name.trim_end_matches('-');
    name.chars().take(MAX_SITE_NAME).collect::<String>().trim_end_matches('-').to_string()
}

/// The site a pair crawl of `head` against `base` runs as: `name` (default: [`pair_site_name`]),
/// a configured site of that name moved onto `head` (its settings apply), or defaults.
pub fn pair_site(cfg: &Config, name: Option<&str>, head: &str, base: &str) -> Result<SiteConfig, PairError> {
    let head_url =
        Url::parse(head).map_err(|source| PairError::BadUrl { which: "head", text: head.into(), source })?;
    let name = match name {
        Some(n) => n.to_string(),
        None => pair_site_name(&Scope::new(&normalize_url(&head_url)).prefix().clone()),
    };
    let fresh = SiteConfig::for_pair(&name, head, base).map_err(|issues| PairError::Invalid {
        issues: issues.iter().map(|i| format!("  - {}", i.message)).collect(),
    })?;
    let Some(configured) = cfg.site(&name) else { return Ok(fresh) };
    let mut site = configured.clone();
    let old_scope = site.scope.clone();
    let rebase = |u: &Url| old_scope.page_key(u).and_then(|k| fresh.scope.url_for_key(&k));
    site.urls = site.urls.iter().filter_map(rebase).collect();
    site.start = rebase(&site.start).unwrap_or_else(|| fresh.start.clone());
    site.scope = fresh.scope.clone();
    site.compare_to = fresh.compare_to.clone();
    site.schedule = None;
    Ok(site)
}

/// Check that both prefixes of a pair site lie under `server.pair_prefixes` (nothing does when
/// the list is empty).
pub fn check_allowed(site: &SiteConfig, allowed: &[PairPrefix]) -> Result<(), PairError> {
    let list = if allowed.is_empty() {
        "none configured".to_string()
    } else {
        allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    };
    let sides = [("head", Some(site.scope.prefix())), ("base", site.compare_to.as_ref())];
    for (which, url) in sides {
        let Some(url) = url else { continue };
        if !allowed.iter().any(|p| p.allows(url)) {
            return Err(PairError::NotAllowed { which, url: url.to_string(), allowed: list });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid_site_names() {
        let n = pair_site_name(&Url::parse("http://127.0.0.1:9000/docs/v2/").unwrap());
        assert_eq!(n, "pair-127.0.0.1-9000-docs-v2");
        let n = pair_site_name(&Url::parse("https://Staging.Example.com/").unwrap());
        assert_eq!(n, "pair-staging.example.com");
        let long = format!("http://h/{}/", "x".repeat(200));
        let n = pair_site_name(&Url::parse(&long).unwrap());
        assert!(n.len() <= MAX_SITE_NAME && !n.ends_with('-'), "{n}");
    }

    #[test]
    fn only_listed_prefixes_and_hosts_are_allowed() {
        let cfg = Config::parse("", std::path::Path::new("/tmp/x/sitediff.toml")).unwrap();
        let allowed: Vec<PairPrefix> = ["https://prod.example.com/docs/", "*.staging.example.com"]
            .iter()
            .map(|p| PairPrefix::parse(p).unwrap())
            .collect();
        let ok =
            pair_site(&cfg, None, "https://pr-7.staging.example.com/docs/", "https://prod.example.com/docs/")
                .unwrap();
        check_allowed(&ok, &allowed).unwrap();
        let other =
            pair_site(&cfg, None, "https://evil.example.org/", "https://prod.example.com/docs/").unwrap();
        let e = check_allowed(&other, &allowed).unwrap_err().to_string();
        assert!(e.contains("head https://evil.example.org/"), "{e}");
        let base = pair_site(&cfg, None, "https://a.staging.example.com/", "https://prod.example.com/blog/")
            .unwrap();
        assert!(check_allowed(&base, &allowed).unwrap_err().to_string().contains("base"));
        // The bare host of a wildcard is not one of its subdomains; nothing is allowed by default.
        let bare =
            pair_site(&cfg, None, "https://staging.example.com/", "https://prod.example.com/docs/").unwrap();
        assert!(check_allowed(&bare, &allowed).is_err());
        assert!(check_allowed(&ok, &[]).unwrap_err().to_string().contains("none configured"));
        assert!(PairPrefix::parse("ftp://x/").is_err() && PairPrefix::parse("a/b").is_err());
    }
}
