//! What a crawl's discovery says about the site's setup: a start page that gives nothing to crawl
//! (the crawl fails, naming the URL and its answer), and a crawl that found only its start page
//! while that page links outside the prefix (a warning that names the prefix to use instead).

use url::Url;

use crate::config::SiteConfig;
use crate::crawl::links::Scope;
use crate::crawl::{DiscoveryStats, StartOutcome};

/// Why the start page gave nothing to crawl, if it did not.
pub(super) fn start_failure(site: &SiteConfig, stats: &DiscoveryStats) -> Option<String> {
    let url = &site.start;
    let prefix = site.scope.prefix();
    Some(match stats.start.as_ref()? {
        StartOutcome::Page { .. } => return None,
        StartOutcome::Failed { status: Some(code), .. } => {
            let reason = http::StatusCode::from_u16(*code).ok().and_then(|s| s.canonical_reason());
            let status = match reason {
                Some(r) => format!("HTTP {code} {r}"),
                None => format!("HTTP {code}"),
            };
            format!("the start page {url} answered {status}: check the site's `start` URL")
        }
        StartOutcome::Failed { status: None, reason } => {
            format!("the start page {url} did not answer ({reason}): is the site up?")
        }
        StartOutcome::NotHtml { content_type } => {
            let ct = if content_type.is_empty() { "none" } else { content_type };
            format!("the start page {url} is not an HTML page (Content-Type: {ct})")
        }
        StartOutcome::LeftPrefix { to } => {
            let to = to.as_ref().map(|u| format!(" to {u}")).unwrap_or_default();
            format!(
                "the start page {url} redirects outside the prefix {prefix}{to}, which is not followed: \
                 start at the page it redirects to, or widen `prefix`"
            )
        }
    })
}

/// Warnings about the crawl's setup (empty when all looks right).
pub(super) fn warnings(site: &SiteConfig, stats: &DiscoveryStats) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(StartOutcome::Page { off_prefix, examples }) = &stats.start {
        if site.crawl && stats.pages == 1 && *off_prefix > 0 {
            out.push(only_start_page(&site.scope, *off_prefix, examples));
        }
    }
    out
}

/// "Only the start page was crawled", the links it has outside the prefix and the prefix that
/// would take them in.
fn only_start_page(scope: &Scope, off_prefix: u32, examples: &[Url]) -> String {
    let prefix = scope.prefix();
    let shown: Vec<&str> = examples.iter().map(Url::as_str).collect();
    let more = if (off_prefix as usize) > shown.len() { ", ..." } else { "" };
    let links = if off_prefix == 1 { "link" } else { "links" };
    let advice = if !prefix.path().ends_with('/') {
        format!(
            "the prefix names a file, not a directory: did you mean prefix = \"{}\"?",
            Scope::default_prefix_of(prefix)
        )
    } else {
        format!("to crawl them, widen the prefix, e.g. prefix = \"{}\"", common_directory(prefix, examples))
    };
    format!(
        "only the start page was crawled: it has {off_prefix} {links} outside the prefix {prefix} \
         (e.g. {}{more}); {advice}",
        shown.join(", ")
    )
}

/// The deepest directory holding the prefix and every example (same origin as the prefix).
fn common_directory(prefix: &Url, examples: &[Url]) -> Url {
    let dir_of = |u: &Url| Scope::default_prefix_of(u).path().to_string();
    let mut common = dir_of(prefix);
    for e in examples {
        let other = dir_of(e);
        while !other.starts_with(&common) {
            // Drop the last directory: "/a/b/" -> "/a/".
            let trimmed = common.trim_end_matches('/');
            common = match trimmed.rfind('/') {
                Some(i) => trimmed[..=i].to_string(),
                None => "/".to_string(),
            };
        }
    }
    let mut out = prefix.clone();
    out.set_path(&common);
    out.set_query(None);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_prefix_naming_a_file_suggests_its_directory() {
        let scope = Scope::new(&url("http://h:1/docs/index.html"));
        let w = only_start_page(&scope, 5, &[url("http://h:1/docs/a.html"), url("http://h:1/docs/b.html")]);
        assert_eq!(
            w,
            "only the start page was crawled: it has 5 links outside the prefix http://h:1/docs/index.html \
             (e.g. http://h:1/docs/a.html, http://h:1/docs/b.html, ...); the prefix names a file, not a \
             directory: did you mean prefix = \"http://h:1/docs/\"?"
        );
    }

    #[test]
    fn a_directory_prefix_suggests_the_directory_its_links_share() {
        let scope = Scope::new(&url("http://h:1/docs/v2/"));
        let w = only_start_page(&scope, 1, &[url("http://h:1/docs/v1/a.html")]);
        assert!(w.contains("it has 1 link outside"), "{w}");
        assert!(w.ends_with("widen the prefix, e.g. prefix = \"http://h:1/docs/\""), "{w}");
        let root = common_directory(scope.prefix(), &[url("http://h:1/api/x"), url("http://h:1/docs/v2/y")]);
        assert_eq!(root.as_str(), "http://h:1/");
    }
}
