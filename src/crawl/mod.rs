//! Discovery: breadth-first crawl of a site's prefix over HTTP (reqwest), yielding the pages to capture.
//!
//! Only `text/html` responses are pages; other content types are skipped and counted. Redirects are
//! followed only while they stay inside the prefix. HTTP errors are page outcomes, not crawl failures.
//! A site's extra headers, cookies and basic auth go only to its own origin (the prefix's scheme,
//! host and port): attached per request, never to a request for another origin.

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
}

/// Tallies of what discovery skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    pub pages: u32,
    pub skipped_non_html: u32,
    pub skipped_off_prefix_redirect: u32,
    pub skipped_max_pages: u32,
    pub skipped_query_variants: u32,
    pub ignored_links: u32,
}

/// Per-crawl settings of discovery.
#[derive(Debug, Clone)]
pub struct DiscoveryPlan {
    pub site: String,
    pub scope: Scope,
    /// Where to start: the start URL and/or explicit URLs.
    pub seeds: Vec<Url>,
    /// Follow links found in pages.
    pub follow_links: bool,
    pub max_pages: usize,
    pub max_query_variants: usize,
    pub request_timeout: Duration,
}

enum Fetched {
    Page { url: Url, status: u16, body: String },
    NotHtml,
    OffPrefixRedirect,
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
        return Fetched::OffPrefixRedirect;
    }
    if !status.is_success() {
        return Fetched::Error {
            url: final_url,
            status: Some(status.as_u16()),
            reason: format!("HTTP {}", status.as_u16()),
        };
    }
    let is_html = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            mime == "text/html" || mime == "application/xhtml+xml"
        })
        .unwrap_or(false);
    if !is_html {
        return Fetched::NotHtml;
    }
    let mut resp = resp;
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_HTML_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_HTML_BYTES {
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
        Fetched::NotHtml | Fetched::OffPrefixRedirect => None,
        Fetched::Error { url, status, reason } => {
            let url = if scope.contains(&url) { url } else { requested.clone() };
            Some(DiscoveredPage {
                key: scope.page_key(&url)?,
                redirected_from: redirect_key(scope, &requested, &url),
                url,
                result: FetchResult::HttpError { status, reason },
                fetch_ms,
            })
        }
        Fetched::Page { url, status, body } => Some(DiscoveredPage {
            key: scope.page_key(&url)?,
            redirected_from: redirect_key(scope, &requested, &url),
            result: FetchResult::Page { status, title: extract_links(&body, &url).title },
            url,
            fetch_ms,
        }),
    }
}

/// Breadth-first discovery. Sends every page (HTML or HTTP error) inside the prefix exactly once,
/// up to `max_pages`, and returns what it skipped. Stops early when `cancel` fires or the receiver
/// is gone.
pub async fn discover(
    plan: DiscoveryPlan,
    client: SiteClient,
    out: mpsc::Sender<DiscoveredPage>,
    cancel: CancellationToken,
) -> DiscoveryStats {
    let mut stats = DiscoveryStats::default();
    let mut seen: HashSet<Url> = HashSet::new();
    let mut emitted_keys: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<Url> = VecDeque::new();
    // Distinct query strings enqueued per path.
    let mut variants: HashMap<String, usize> = HashMap::new();
    for s in &plan.seeds {
        let s = normalize_url(s);
        if plan.scope.contains(&s) && seen.insert(s.clone()) {
            queue.push_back(s);
        }
    }
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < FETCH_CONCURRENCY && (emitted_keys.len() + in_flight.len()) < plan.max_pages {
            let Some(url) = queue.pop_front() else { break };
            let client = client.clone();
            in_flight.push(async move {
                let started = Instant::now();
                let r = fetch(&client, &url).await;
                (url, r, started.elapsed())
            });
        }
        if in_flight.is_empty() {
            break;
        }
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            n = in_flight.next() => n,
        };
        let Some((requested, fetched, elapsed)) = next else { break };
        let fetch_ms = elapsed.as_millis() as u64;
        let page = match fetched {
            Fetched::NotHtml => {
                stats.skipped_non_html += 1;
                continue;
            }
            Fetched::OffPrefixRedirect => {
                stats.skipped_off_prefix_redirect += 1;
                continue;
            }
            Fetched::Error { url, status, reason } => {
                let url = if plan.scope.contains(&url) { url } else { requested.clone() };
                let Some(key) = plan.scope.page_key(&url) else { continue };
                let redirected_from = redirect_key(&plan.scope, &requested, &url);
                DiscoveredPage {
                    key,
                    url,
                    result: FetchResult::HttpError { status, reason },
                    fetch_ms,
                    redirected_from,
                }
            }
            Fetched::Page { url, status, body } => {
                seen.insert(url.clone());
                let Some(key) = plan.scope.page_key(&url) else { continue };
                let extracted = extract_links(&body, &url);
                stats.ignored_links += extracted.ignored_schemes as u32;
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
                            queue.push_back(link);
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

#[cfg(test)]
mod tests {
    use super::*;

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
