//! Discovery: breadth-first crawl of a site's prefix over HTTP (reqwest), yielding the pages to capture.
//!
//! Only `text/html` responses are pages; other content types are skipped and counted. Redirects are
//! followed only while they stay inside the prefix. HTTP errors are page outcomes, not crawl failures.
//! A site's extra headers, cookies and basic auth go only to its own origin (the prefix's scheme,
//! host and port): attached per request, never to a request for another origin.
//! Each page remembers the page whose links led to it first (its referrer); what became of the
//! start URL, and the start page's links that leave the prefix, are reported for the sweep to
//! explain a crawl that found (next to) nothing.

pub mod links;

use crate::errors::chain as error_chain;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use links::{extract_links, normalize_url, Scope};

/// Concurrent HTTP fetches per crawl.
pub const FETCH_CONCURRENCY: usize = 4;
/// Largest HTML body read for link discovery; the rest is ignored.
pub const MAX_HTML_BYTES: usize = 16 * 1024 * 1024;
/// Redirect hops followed before giving up (a loop ends here).
pub const MAX_REDIRECTS: usize = 10;

/// Errors building the crawler.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    #[error("site {site}: cannot build the HTTP client: header {name:?}: {source}")]
    HeaderName {
        site: String,
        name: String,
        #[source]
        source: http::header::InvalidHeaderName,
    },
    /// A configured header, the cookies or the basic auth credentials make no valid header value.
    #[error("site {site}: cannot build the HTTP client: {what}: {source}")]
    HeaderValue {
        site: String,
        /// `header "NAME"`, `cookies` or `basic_auth`.
        what: String,
        #[source]
        source: http::header::InvalidHeaderValue,
    },
    #[error("site {site}: cannot build the HTTP client: {source}")]
    Client {
        site: String,
        #[source]
        source: reqwest::Error,
    },
}

/// What fetching one URL gave.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchResult {
    /// An HTML page (2xx).
    Page { status: u16, title: Option<String> },
    /// The server answered with an error status (4xx/5xx) or the request failed.
    HttpError { status: Option<u16>, reason: String },
}

/// One page found by discovery, ready to be captured (or recorded as failed).
#[derive(Debug, Clone)]
pub struct DiscoveredPage {
    pub key: String,
    /// The page's URL after in-prefix redirects.
    pub url: Url,
    pub result: FetchResult,
    pub fetch_ms: u64,
    /// The page key of the requested URL when an in-prefix redirect led here.
    pub redirected_from: Option<String>,
    /// The page key of the page whose links led discovery here first (None for seeds).
    pub referrer: Option<String>,
    /// blake3 of the final URL, status and whole body of an HTML page (`None`: an error, or a
    /// body past the read limit): the document input of a capture fingerprint.
    pub document: Option<Box<[u8; 32]>>,
}

/// Tallies of what discovery skipped, and what became of the start URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    pub pages: u32,
    pub skipped_non_html: u32,
    pub skipped_off_prefix_redirect: u32,
    pub skipped_max_pages: u32,
    pub skipped_query_variants: u32,
    pub ignored_links: u32,
    /// The start URL's answer (None: not crawled, or cancelled before it answered).
    pub start: Option<StartOutcome>,
}

/// Links of the start page examples are kept of.
pub const OFF_PREFIX_EXAMPLES: usize = 3;

/// What the start URL gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// An HTML page. `off_prefix`: its distinct links to the same origin outside the prefix
    /// (some of them in `examples`).
    Page { off_prefix: u32, examples: Vec<Url> },
    /// An HTTP error status, or no answer at all (`status` None).
    Failed { status: Option<u16>, reason: String },
    /// Not an HTML page.
    NotHtml { content_type: String },
    /// A redirect out of the prefix (not followed).
    LeftPrefix { to: Option<Url> },
}

/// Per-crawl settings of discovery.
#[derive(Debug, Clone)]
pub struct DiscoveryPlan {
    pub site: String,
    pub scope: Scope,
    /// The start URL when it is crawled (its outcome is reported in [`DiscoveryStats::start`]).
    pub start: Option<Url>,
    /// Where to start: the start URL and/or explicit URLs.
    pub seeds: Vec<Url>,
    /// Follow links found in pages.
    pub follow_links: bool,
    pub max_pages: usize,
    pub max_query_variants: usize,
    pub request_timeout: Duration,
}

enum Fetched {
    Page { url: Url, status: u16, body: String, document: Option<Box<[u8; 32]>> },
    NotHtml { content_type: String },
    OffPrefixRedirect { to: Option<Url> },
    Error { url: Url, status: Option<u16>, reason: String },
}

/// What discovery sends with every request of a site: the site's extra headers, cookies, basic
/// auth and user agent (taken from its capture options by the caller).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RequestOptions {
    pub headers: Vec<(String, String)>,
    /// Cookie names and values, sent as one `Cookie` header.
    pub cookies: Vec<(String, String)>,
    /// User and password of HTTP basic auth.
    pub basic_auth: Option<(String, String)>,
    pub user_agent: Option<String>,
}

/// The HTTP client of one crawl (one side of a pair crawl): the site's extra headers, cookies and
/// basic auth are attached to each request for the scope's origin, and to no other.
#[derive(Clone)]
pub struct SiteClient {
    http: reqwest::Client,
    origin: url::Origin,
    headers: http::HeaderMap,
}

impl std::fmt::Debug for SiteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteClient")
            .field("origin", &self.origin.ascii_serialization())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SiteClient {
    /// A GET of `url`, with the site's headers when `url` is on the site's origin.
    fn get(&self, url: &Url) -> reqwest::RequestBuilder {
        let req = self.http.get(url.clone());
        if self.sends_site_headers_to(url) {
            req.headers(self.headers.clone())
        } else {
            req
        }
    }

    /// Whether a request for `url` carries the site's headers, cookies and basic auth.
    pub fn sends_site_headers_to(&self, url: &Url) -> bool {
        url.origin() == self.origin
    }
}

/// Build the HTTP client for one crawl: redirects followed only inside the scope (so never to
/// another origin, with or without the site's headers); the site's extra headers, cookies and
/// basic auth sent with the requests for the scope's origin; its user agent with every request.
pub fn http_client(
    site: &str,
    scope: &Scope,
    timeout: Duration,
    opts: &RequestOptions,
) -> Result<SiteClient, CrawlError> {
    let origin = scope.prefix().origin();
    let policy_scope = scope.clone();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error("redirect loop (too many redirects)")
        } else if policy_scope.contains(&normalize_url(attempt.url())) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    let headers = request_headers(site, opts)?;
    let user_agent = opts.user_agent.clone().unwrap_or_else(|| DEFAULT_USER_AGENT.to_string());
    let http = reqwest::Client::builder()
        .redirect(policy)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(user_agent)
        .build()
        .map_err(|source| CrawlError::Client { site: site.to_string(), source })?;
    Ok(SiteClient { http, origin, headers })
}

/// User agent of discovery requests when the site sets none.
const DEFAULT_USER_AGENT: &str = concat!("sitediff/", env!("CARGO_PKG_VERSION"));

/// The headers discovery sends with every request to the origin of `site`: its `headers`,
/// `cookies` and `basic_auth`.
pub fn request_headers(site: &str, opts: &RequestOptions) -> Result<http::HeaderMap, CrawlError> {
    use base64::Engine;
    use http::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
    let value_err =
        |what: String| move |source| CrawlError::HeaderValue { site: site.to_string(), what, source };
    let mut map = http::HeaderMap::new();
    for (k, v) in &opts.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|source| CrawlError::HeaderName {
            site: site.to_string(),
            name: k.clone(),
            source,
        })?;
        let value = HeaderValue::from_str(v).map_err(value_err(format!("header {k:?}")))?;
        map.insert(name, value);
    }
    if !opts.cookies.is_empty() {
        let text: Vec<String> = opts.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect();
        let value = HeaderValue::from_str(&text.join("; ")).map_err(value_err("cookies".into()))?;
        map.insert(COOKIE, value);
    }
    if let Some((user, password)) = &opts.basic_auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut value =
            HeaderValue::from_str(&format!("Basic {token}")).map_err(value_err("basic_auth".into()))?;
        value.set_sensitive(true);
        map.insert(AUTHORIZATION, value);
    }
    Ok(map)
}

async fn fetch(client: &SiteClient, url: &Url) -> Fetched {
    let resp = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) => {
            let reason = if e.is_timeout() {
                "request timed out".to_string()
            } else if e.is_redirect() {
                "redirect loop (too many redirects)".to_string()
            } else {
                error_chain(&e)
            };
            return Fetched::Error { url: url.clone(), status: None, reason };
        }
    };
    let final_url = normalize_url(resp.url());
    let status = resp.status();
    if status.is_redirection() {
        // The policy stopped: the redirect leaves the prefix.
        let to = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| resp.url().join(l).ok());
        return Fetched::OffPrefixRedirect { to };
    }
    if !status.is_success() {
        return Fetched::Error {
            url: final_url,
            status: Some(status.as_u16()),
            reason: format!("HTTP {}", status.as_u16()),
        };
    }
    let content_type =
        resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "text/html" && mime != "application/xhtml+xml" {
        return Fetched::NotHtml { content_type: content_type.to_string() };
    }
    let mut resp = resp;
    let mut body = Vec::new();
    let mut digest = blake3::Hasher::new();
    digest.update(final_url.as_str().as_bytes());
    digest.update(&status.as_u16().to_le_bytes());
    let mut whole = true;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_HTML_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                digest.update(&chunk);
                if body.len() >= MAX_HTML_BYTES {
                    whole = false;
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                return Fetched::Error {
                    url: final_url,
                    status: Some(status.as_u16()),
                    reason: format!("reading the body failed: {}", error_chain(&e)),
                }
            }
        }
    }
    Fetched::Page {
        url: final_url,
        status: status.as_u16(),
        body: String::from_utf8_lossy(&body).into_owned(),
        document: whole.then(|| Box::new(*digest.finalize().as_bytes())),
    }
}

/// The page key of `requested` when the fetch ended at another URL.
fn redirect_key(scope: &Scope, requested: &Url, fetched: &Url) -> Option<String> {
    if normalize_url(requested) == *fetched {
        return None;
    }
    scope.page_key(&normalize_url(requested))
}

/// Fetch one URL as discovery would and describe the answer as a page (no links followed).
/// `None` when it is not an HTML page, or redirects out of the prefix.
pub async fn probe(client: &SiteClient, scope: &Scope, url: &Url) -> Option<DiscoveredPage> {
    let requested = normalize_url(url);
    let started = Instant::now();
    let fetched = fetch(client, &requested).await;
    let fetch_ms = started.elapsed().as_millis() as u64;
    match fetched {
        Fetched::NotHtml { .. } | Fetched::OffPrefixRedirect { .. } => None,
        Fetched::Error { url, status, reason } => {
            let url = if scope.contains(&url) { url } else { requested.clone() };
            Some(DiscoveredPage {
                key: scope.page_key(&url)?,
                redirected_from: redirect_key(scope, &requested, &url),
                url,
                result: FetchResult::HttpError { status, reason },
                fetch_ms,
                referrer: None,
                document: None,
            })
        }
        Fetched::Page { url, status, body, document } => Some(DiscoveredPage {
            key: scope.page_key(&url)?,
            redirected_from: redirect_key(scope, &requested, &url),
            result: FetchResult::Page { status, title: extract_links(&body, &url).title },
            url,
            fetch_ms,
            referrer: None,
            document,
        }),
    }
}

/// Breadth-first discovery. Sends every page (HTML or HTTP error) inside the prefix exactly once,
/// up to `max_pages`, each with the page whose links led to it first, and returns what it skipped
/// and what the start URL gave. Stops early when `cancel` fires or the receiver is gone.
pub async fn discover(
    plan: DiscoveryPlan,
    client: SiteClient,
    out: mpsc::Sender<DiscoveredPage>,
    cancel: CancellationToken,
) -> DiscoveryStats {
    let mut stats = DiscoveryStats::default();
    let mut seen: HashSet<Url> = HashSet::new();
    let mut emitted_keys: HashSet<String> = HashSet::new();
    // URLs to fetch, each with the page key of the page that linked to it (None for seeds).
    let mut queue: VecDeque<(Url, Option<String>)> = VecDeque::new();
    // Distinct query strings enqueued per path.
    let mut variants: HashMap<String, usize> = HashMap::new();
    let start = plan.start.as_ref().map(normalize_url);
    for s in &plan.seeds {
        let s = normalize_url(s);
        if plan.scope.contains(&s) && seen.insert(s.clone()) {
            queue.push_back((s, None));
        }
    }
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < FETCH_CONCURRENCY && (emitted_keys.len() + in_flight.len()) < plan.max_pages {
            let Some((url, referrer)) = queue.pop_front() else { break };
            let client = client.clone();
            in_flight.push(async move {
                let started = Instant::now();
                let r = fetch(&client, &url).await;
                (url, referrer, r, started.elapsed())
            });
        }
        if in_flight.is_empty() {
            break;
        }
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            n = in_flight.next() => n,
        };
        let Some((requested, referrer, fetched, elapsed)) = next else { break };
        let fetch_ms = elapsed.as_millis() as u64;
        let is_start = start.as_ref() == Some(&requested);
        let page = match fetched {
            Fetched::NotHtml { content_type } => {
                stats.skipped_non_html += 1;
                if is_start {
                    stats.start = Some(StartOutcome::NotHtml { content_type });
                }
                continue;
            }
            Fetched::OffPrefixRedirect { to } => {
                stats.skipped_off_prefix_redirect += 1;
                if is_start {
                    stats.start = Some(StartOutcome::LeftPrefix { to });
                }
                continue;
            }
            Fetched::Error { url, status, reason } => {
                if is_start {
                    stats.start = Some(StartOutcome::Failed { status, reason: reason.clone() });
                }
                let url = if plan.scope.contains(&url) { url } else { requested.clone() };
                let Some(key) = plan.scope.page_key(&url) else { continue };
                let redirected_from = redirect_key(&plan.scope, &requested, &url);
                DiscoveredPage {
                    key,
                    url,
                    result: FetchResult::HttpError { status, reason },
                    fetch_ms,
                    redirected_from,
                    referrer,
                    document: None,
                }
            }
            Fetched::Page { url, status, body, document } => {
                seen.insert(url.clone());
                let Some(key) = plan.scope.page_key(&url) else { continue };
                let extracted = extract_links(&body, &url);
                stats.ignored_links += extracted.ignored_schemes as u32;
                if is_start {
                    stats.start = Some(off_prefix_links(&plan.scope, &extracted.links));
                }
                if plan.follow_links {
                    for link in extracted.links {
                        if plan.scope.contains(&link) && !seen.contains(&link) {
                            seen.insert(link.clone());
                            if link.query().is_some() {
                                let n = variants.entry(link.path().to_string()).or_default();
                                if *n >= plan.max_query_variants {
                                    stats.skipped_query_variants += 1;
                                    continue;
                                }
                                *n += 1;
                            }
                            queue.push_back((link, Some(key.clone())));
                        }
                    }
                }
                let redirected_from = redirect_key(&plan.scope, &requested, &url);
                DiscoveredPage {
                    key,
                    url,
                    result: FetchResult::Page { status, title: extracted.title },
                    fetch_ms,
                    redirected_from,
                    referrer,
                    document,
                }
            }
        };
        // Two URLs redirecting to one page give one page.
        if !emitted_keys.insert(page.key.clone()) {
            continue;
        }
        stats.pages += 1;
        if out.send(page).await.is_err() {
            break;
        }
    }
    stats.skipped_max_pages = queue.len() as u32;
    stats
}

/// The start page's links to its own origin that lie outside the prefix: how many (distinct) and
/// the first few.
fn off_prefix_links(scope: &Scope, links: &[Url]) -> StartOutcome {
    let prefix = scope.prefix();
    let same_origin = |u: &Url| {
        u.scheme() == prefix.scheme()
            && u.host_str() == prefix.host_str()
            && u.port_or_known_default() == prefix.port_or_known_default()
    };
    // Links are distinct already (extract_links drops duplicates).
    let outside: Vec<&Url> = links.iter().filter(|u| same_origin(u) && !scope.contains(u)).collect();
    StartOutcome::Page {
        off_prefix: outside.len() as u32,
        examples: outside.into_iter().take(OFF_PREFIX_EXAMPLES).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_page_s_links_outside_the_prefix_are_counted_on_its_origin_only() {
        let scope = links::Scope::new(&Url::parse("http://h:1/docs/index.html").unwrap());
        let links: Vec<Url> = [
            "http://h:1/docs/index.html?x=1",
            "http://h:1/docs/a.html",
            "http://h:1/docs/b.html",
            "http://h:1/",
            "http://h:1/docs/c.html",
            "http://other:1/docs/a.html",
            "https://h:1/docs/a.html",
        ]
        .iter()
        .map(|u| Url::parse(u).unwrap())
        .collect();
        let StartOutcome::Page { off_prefix, examples } = off_prefix_links(&scope, &links) else {
            panic!("a page")
        };
        assert_eq!(off_prefix, 4, "a.html, b.html, / and c.html; other hosts and schemes do not count");
        let examples: Vec<&str> = examples.iter().map(Url::as_str).collect();
        assert_eq!(examples, ["http://h:1/docs/a.html", "http://h:1/docs/b.html", "http://h:1/"]);
    }

    #[test]
    fn request_headers_carry_headers_cookies_and_basic_auth() {
        let opts = RequestOptions {
            headers: vec![("X-Env".into(), "staging".into())],
            cookies: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            basic_auth: Some(("u".into(), "pw".into())),
            ..RequestOptions::default()
        };
        let h = request_headers("s", &opts).unwrap();
        assert_eq!(h["x-env"], "staging");
        assert_eq!(h["cookie"], "a=1; b=2");
        assert_eq!(h["authorization"], "Basic dTpwdw==");
        assert!(h["authorization"].is_sensitive());
        assert!(request_headers("s", &RequestOptions::default()).unwrap().is_empty());
    }

    #[test]
    fn bad_headers_name_the_site_and_keep_the_cause() {
        use std::error::Error as _;
        let bad_name =
            RequestOptions { headers: vec![("X Bad".into(), "v".into())], ..RequestOptions::default() };
        let e = request_headers("docs", &bad_name).unwrap_err();
        assert!(matches!(&e, CrawlError::HeaderName { site, name, .. } if site == "docs" && name == "X Bad"));
        assert!(
            e.to_string().starts_with("site docs: cannot build the HTTP client: header \"X Bad\""),
            "{e}"
        );
        assert!(e.source().is_some_and(|s| s.is::<http::header::InvalidHeaderName>()), "{e:?}");

        let bad_value =
            RequestOptions { headers: vec![("X-Ok".into(), "a\nb".into())], ..RequestOptions::default() };
        let e = request_headers("docs", &bad_value).unwrap_err();
        assert!(matches!(&e, CrawlError::HeaderValue { what, .. } if what == "header \"X-Ok\""), "{e:?}");
        assert!(e.source().is_some_and(|s| s.is::<http::header::InvalidHeaderValue>()), "{e:?}");

        let bad_cookie =
            RequestOptions { cookies: vec![("a".into(), "\u{7f}".into())], ..RequestOptions::default() };
        let e = request_headers("docs", &bad_cookie).unwrap_err();
        assert!(matches!(&e, CrawlError::HeaderValue { what, .. } if what == "cookies"), "{e:?}");
        let scope = links::Scope::new(&Url::parse("http://127.0.0.1:1/docs/").unwrap());
        let e = http_client("docs", &scope, Duration::from_secs(1), &bad_cookie).unwrap_err();
        assert!(e.to_string().contains("site docs: cannot build the HTTP client: cookies:"), "{e}");
    }

    #[test]
    fn site_headers_go_to_the_scopes_origin_only() {
        let opts =
            RequestOptions { headers: vec![("X-Env".into(), "s".into())], ..RequestOptions::default() };
        let scope = links::Scope::new(&Url::parse("http://127.0.0.1:8000/docs/").unwrap());
        let c = http_client("docs", &scope, Duration::from_secs(1), &opts).unwrap();
        let to = |u: &str| c.sends_site_headers_to(&Url::parse(u).unwrap());
        assert!(to("http://127.0.0.1:8000/docs/a.html"));
        assert!(to("http://127.0.0.1:8000/elsewhere"), "the origin, not the prefix path");
        assert!(!to("http://127.0.0.1:8001/docs/"));
        assert!(!to("https://127.0.0.1:8000/docs/"));
        assert!(!to("http://localhost:8000/docs/"));
        let req = c.get(&Url::parse("http://127.0.0.1:8001/docs/").unwrap()).build().unwrap();
        assert!(req.headers().get("x-env").is_none());
        let req = c.get(&Url::parse("http://127.0.0.1:8000/docs/").unwrap()).build().unwrap();
        assert_eq!(req.headers()["x-env"], "s");
    }
}
