//! Pure link handling: extract links from HTML, normalise URLs, decide what is inside a site's
//! prefix, and turn URLs into page keys.

use scraper::{Html, Selector};
use url::Url;

/// URL schemes that can be crawled; every other link (javascript:, mailto:, data:, tel:, ...) is ignored.
fn is_crawlable_scheme(u: &Url) -> bool {
    matches!(u.scheme(), "http" | "https")
}

/// Normalise a URL so that each page has one spelling: fragment dropped, host lower-cased and
/// default port dropped (both done by `url`), `.`/`..` segments resolved (done by `url`),
/// percent-escapes of unreserved characters decoded and the rest upper-cased, empty path = `/`.
pub fn normalize_url(u: &Url) -> Url {
    let mut u = u.clone();
    u.set_fragment(None);
    let path = normalize_percent(u.path());
    if path != u.path() {
        u.set_path(&path);
    }
    if let Some(q) = u.query() {
        if q.is_empty() {
            u.set_query(None);
        } else {
            let nq = normalize_percent(q);
            if nq != q {
                u.set_query(Some(&nq));
            }
        }
    }
    u
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode `%XX` escapes of unreserved characters and upper-case the hex digits of the others.
fn normalize_percent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                let v = h * 16 + l;
                if is_unreserved(v) {
                    out.push(v as char);
                } else {
                    out.push('%');
                    out.push(bytes[i + 1].to_ascii_uppercase() as char);
                    out.push(bytes[i + 2].to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
        }
        // Safe: we only split at ASCII bytes, so pushing the char starting here keeps UTF-8 whole.
        let ch_len = utf8_len(bytes[i]);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// The crawl boundary of a site: scheme, host and port equal, path starting with the prefix path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    prefix: Url,
}

impl Scope {
    /// A scope with this prefix (normalised; query and fragment dropped).
    pub fn new(prefix: &Url) -> Scope {
        let mut p = normalize_url(prefix);
        p.set_query(None);
        Scope { prefix: p }
    }

    /// The default prefix for a start URL: its directory (`/docs/index.html` -> `/docs/`).
    pub fn default_prefix_of(start: &Url) -> Url {
        let mut p = normalize_url(start);
        p.set_query(None);
        let path = p.path().to_string();
        let dir = match path.rfind('/') {
            Some(i) => &path[..=i],
            None => "/",
        };
        p.set_path(dir);
        p
    }

    pub fn prefix(&self) -> &Url {
        &self.prefix
    }

    /// Whether a (normalised) URL is inside the prefix.
    pub fn contains(&self, u: &Url) -> bool {
        u.scheme() == self.prefix.scheme()
            && u.host_str() == self.prefix.host_str()
            && u.port_or_known_default() == self.prefix.port_or_known_default()
            && u.path().starts_with(self.prefix.path())
    }

    /// The page key of a URL inside the prefix: the path after the prefix path (always starting with
    /// `/`) plus `?query`. `None` when the URL is outside.
    pub fn page_key(&self, u: &Url) -> Option<String> {
        if !self.contains(u) {
            return None;
        }
        Some(key_from_parts(&u.path()[self.prefix.path().len()..], u.query()))
    }

    /// The URL a page key stands for under this prefix (inverse of [`Scope::page_key`]).
    pub fn url_for_key(&self, key: &str) -> Option<Url> {
        let (path, query) = match key.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (key, None),
        };
        let base = self.prefix.path().trim_end_matches('/');
        let rel = path.strip_prefix('/').unwrap_or(path);
        let mut full = format!("{base}/{rel}");
        if !self.prefix.path().ends_with('/') && !path.starts_with('/') {
            full = format!("{}{}", self.prefix.path(), path);
        }
        let mut u = self.prefix.clone();
        u.set_path(&full);
        u.set_query(query);
        let u = normalize_url(&u);
        self.contains(&u).then_some(u)
    }
}

fn key_from_parts(rest: &str, query: Option<&str>) -> String {
    let mut key = String::with_capacity(rest.len() + 1);
    if !rest.starts_with('/') {
        key.push('/');
    }
    key.push_str(rest);
    if let Some(q) = query {
        key.push('?');
        key.push_str(q);
    }
    key
}

/// What link extraction found in one HTML document.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExtractedLinks {
    /// Normalised http(s) links, in document order, without duplicates.
    pub links: Vec<Url>,
    /// Links skipped for their scheme (javascript:, mailto:, data:, tel:, ...).
    pub ignored_schemes: usize,
    /// The document's `<title>`, trimmed.
    pub title: Option<String>,
}

/// Extract `<a href>` and `<area href>` links, honouring the first `<base href>`.
pub fn extract_links(html: &str, page_url: &Url) -> ExtractedLinks {
    let doc = Html::parse_document(html);
    let mut out = ExtractedLinks::default();
    // The selectors are literals; parse failure would be a programming error caught by tests.
    let (Ok(base_sel), Ok(link_sel), Ok(title_sel)) =
        (Selector::parse("base[href]"), Selector::parse("a[href], area[href]"), Selector::parse("title"))
    else {
        return out;
    };
    let base = doc
        .select(&base_sel)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|h| page_url.join(h.trim()).ok())
        .filter(is_crawlable_scheme)
        .unwrap_or_else(|| page_url.clone());
    out.title = doc
        .select(&title_sel)
        .next()
        .map(|t| t.text().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty());
    let mut seen = std::collections::HashSet::new();
    for el in doc.select(&link_sel) {
        let Some(href) = el.value().attr("href") else { continue };
        let href = href.trim();
        if href.is_empty() {
            continue;
        }
        match base.join(href) {
            Ok(u) if is_crawlable_scheme(&u) => {
                let u = normalize_url(&u);
                if seen.insert(u.clone()) {
                    out.links.push(u);
                }
            }
            Ok(_) => out.ignored_schemes += 1,
            // An href that makes no URL is no link: crawled pages are full of them.
            Err(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn normalisation_makes_one_spelling() {
        let a = normalize_url(&u("HTTP://Example.COM:80/a/./b/../c%7e%2f%41?q=%3a#frag"));
        assert_eq!(a.as_str(), "http://example.com/a/c~%2FA?q=%3A");
        assert_eq!(normalize_url(&u("https://h:443")).as_str(), "https://h/");
        assert_eq!(normalize_url(&u("http://h/x?")).as_str(), "http://h/x");
        // Non-ASCII survives.
        assert_eq!(normalize_url(&u("http://h/caf%C3%A9")).as_str(), "http://h/caf%C3%A9");
    }

    #[test]
    fn scope_rule() {
        let s = Scope::new(&u("http://127.0.0.1:8000/docs/"));
        assert!(s.contains(&u("http://127.0.0.1:8000/docs/")));
        assert!(s.contains(&u("http://127.0.0.1:8000/docs/a/b.html?x=1")));
        assert!(!s.contains(&u("http://127.0.0.1:8000/doc")));
        assert!(!s.contains(&u("http://127.0.0.1:8000/other/")));
        assert!(!s.contains(&u("http://127.0.0.1:8001/docs/")));
        assert!(!s.contains(&u("https://127.0.0.1:8000/docs/")));
        assert!(!s.contains(&u("http://localhost:8000/docs/")));
        assert!(!s.contains(&normalize_url(&u("http://127.0.0.1:8000/docs/../secret"))));
    }

    #[test]
    fn default_prefix_is_directory() {
        assert_eq!(Scope::default_prefix_of(&u("http://h/docs/index.html?x")).as_str(), "http://h/docs/");
        assert_eq!(Scope::default_prefix_of(&u("http://h/docs/")).as_str(), "http://h/docs/");
        assert_eq!(Scope::default_prefix_of(&u("http://h")).as_str(), "http://h/");
    }

    #[test]
    fn page_keys_round_trip() {
        let s = Scope::new(&u("http://h/docs/"));
        for (url, key) in [
            ("http://h/docs/", "/"),
            ("http://h/docs/a.html", "/a.html"),
            ("http://h/docs/x/y?p=1&q=2", "/x/y?p=1&q=2"),
        ] {
            assert_eq!(s.page_key(&u(url)).as_deref(), Some(key));
            assert_eq!(s.url_for_key(key).unwrap().as_str(), url);
        }
        assert_eq!(s.page_key(&u("http://h/other")), None);
        // Same key under another host: that is how staging and production are paired.
        let prod = Scope::new(&u("http://p:9/site/docs/"));
        assert_eq!(prod.url_for_key("/a.html").unwrap().as_str(), "http://p:9/site/docs/a.html");
        assert_eq!(s.url_for_key("/../escape"), None);
    }

    #[test]
    fn extraction_follows_base_and_skips_schemes() {
        let html = r#"<html><head><title> Hello
            world </title><base href="/docs/sub/"></head><body>
            <a href="a.html">a</a> <a href="../b.html#frag">b</a> <a href=" a.html#x ">dup</a>
            <a href="javascript:alert(1)">js</a> <a href="mailto:x@y">m</a> <a href="data:text/html,hi">d</a>
            <a href="tel:123">t</a> <a>no href</a> <a href="">empty</a>
            <map><area href="/docs/c.html?x=1"></map>
            <a href="http://other.example/">off</a></body></html>"#;
        let got = extract_links(html, &u("http://h/docs/index.html"));
        let links: Vec<&str> = got.links.iter().map(Url::as_str).collect();
        assert_eq!(
            links,
            [
                "http://h/docs/sub/a.html",
                "http://h/docs/b.html",
                "http://h/docs/c.html?x=1",
                "http://other.example/"
            ]
        );
        assert_eq!(got.ignored_schemes, 4);
        assert_eq!(got.title.as_deref(), Some("Hello world"));
    }

    #[test]
    fn extraction_without_base_uses_page_url() {
        let got = extract_links(
            "<a href='?page=2'>n</a><a href='../up.html'>u</a>",
            &u("http://h/d/p.html?page=1"),
        );
        let links: Vec<&str> = got.links.iter().map(Url::as_str).collect();
        assert_eq!(links, ["http://h/d/p.html?page=2", "http://h/up.html"]);
    }

    #[test]
    fn percent_normalisation_edge_cases() {
        assert_eq!(normalize_percent("%"), "%");
        assert_eq!(normalize_percent("%4"), "%4");
        assert_eq!(normalize_percent("%zz"), "%zz");
        assert_eq!(normalize_percent("a%2fb%41"), "a%2FbA");
        assert_eq!(normalize_percent("é%41"), "éA");
    }
}
