//! The daemon client: every command that talks to a running `sitediff serve` over its JSON API
//! (`--server URL` / `SITEDIFF_SERVER`, the bearer token from `SITEDIFF_TOKEN` or `--token-env`)
//! goes through [`DaemonClient`]: base URL and token resolution, typed errors naming the daemon
//! and the request, JSON GET/POST, artifacts, and the long-poll wait for a crawl to finish.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

/// Default variable holding the daemon's write token.
pub const TOKEN_ENV: &str = "SITEDIFF_TOKEN";
/// How long connecting to the daemon may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take (a long poll holds at most the server's limit, far below).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The long-poll `wait` asked for per progress request, in seconds (the daemon caps it).
const PROGRESS_WAIT_SECS: u64 = 8;

/// `--server` and `--token-env`, on every command that can talk to the daemon.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Talk to a running `sitediff serve` at this URL (e.g. http://127.0.0.1:8080) instead of
    /// opening the store.
    #[arg(long, env = "SITEDIFF_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The environment variable holding the daemon's write token.
    #[arg(long, value_name = "NAME", default_value = TOKEN_ENV)]
    pub token_env: String,
}

impl ServerArgs {
    /// The client for `--server`, or `None` for local mode.
    pub fn client(&self) -> Result<Option<DaemonClient>, ClientError> {
        match self.server.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => DaemonClient::new(s, &self.token_env).map(Some),
        }
    }
}

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--server {text:?} is not an http(s) URL")]
    BadUrl { text: String },
    #[error("cannot set up the HTTP client")]
    Build(#[source] reqwest::Error),
    #[error("cannot reach the daemon at {url} ({what})")]
    Unreachable {
        url: String,
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the daemon at {url} needs a write token for {what}: set {var} (or name another variable with --token-env)")]
    NoToken { url: String, what: String, var: String },
    #[error("the daemon at {url} refused the token in {var} for {what}: {message}")]
    BadToken { url: String, what: String, var: String, message: String },
    #[error("the daemon at {url} answered {status} to {what}: {message}")]
    Refused { url: String, what: String, status: u16, message: String },
    #[error("the daemon at {url} sent an unreadable answer to {what}")]
    Decode {
        url: String,
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

/// One answer of `GET /api/crawls/{id}/progress`.
#[derive(Debug, Clone, Deserialize)]
pub struct Progress {
    pub status: String,
    pub running: bool,
    pub done: u32,
    pub discovered: u32,
    pub changed: u32,
    pub failed: u32,
    pub version: u64,
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct DaemonClient {
    base: Url,
    token: Option<String>,
    token_var: String,
    http: reqwest::Client,
    /// A longer limit for slow requests (a backup), instead of [`REQUEST_TIMEOUT`].
    timeout: Option<Duration>,
}

impl DaemonClient {
    /// A client of the daemon at `server`, with the token from the variable `token_var` (if set).
    pub fn new(server: &str, token_var: &str) -> Result<DaemonClient, ClientError> {
        let bad = || ClientError::BadUrl { text: server.to_string() };
        let mut base = Url::parse(server).map_err(|_| bad())?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(bad());
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let token = std::env::var(token_var).ok().filter(|t| !t.is_empty());
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(ClientError::Build)?;
        Ok(DaemonClient { base, token, token_var: token_var.to_string(), http, timeout: None })
    }

    /// The same client with `timeout` for each request (for requests that may take long, such as
    /// a backup of a big store).
    pub fn with_timeout(mut self, timeout: Duration) -> DaemonClient {
        self.timeout = Some(timeout);
        self
    }

    /// The daemon's base URL (for links into its UI), without the trailing slash.
    pub fn base(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }

    /// GET a JSON document.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let what = format!("GET {path}");
        let req = self.http.get(self.url(path));
        let bytes = self.send(req, &what).await?;
        self.decode(&bytes, &what)
    }

    /// POST (with a JSON body, or none) and read the JSON answer; the token goes along.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let what = format!("POST {path}");
        let mut req = self.http.post(self.url(path));
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.to_string());
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        let bytes = self.send(req, &what).await?;
        self.decode(&bytes, &what)
    }

    /// A stored artifact's bytes (`GET /artifacts/{hash}`).
    pub async fn artifact(&self, hex: &str) -> Result<Vec<u8>, ClientError> {
        let path = format!("/artifacts/{hex}");
        let req = self.http.get(self.url(&path));
        self.send(req, &format!("GET {path}")).await
    }

    /// Wait (long polls, never hammering) until crawl `id` is over; `on_progress` sees every
    /// answer. A daemon that stops answering is an error, not a hang.
    pub async fn wait_crawl(
        &self,
        id: u64,
        mut on_progress: impl FnMut(&Progress),
    ) -> Result<Progress, ClientError> {
        let mut since: Option<u64> = None;
        loop {
            let path = match since {
                None => format!("/api/crawls/{id}/progress"),
                Some(v) => format!("/api/crawls/{id}/progress?wait={PROGRESS_WAIT_SECS}&since={v}"),
            };
            let p: Progress = self.get(&path).await?;
            on_progress(&p);
            if !p.running {
                return Ok(p);
            }
            since = Some(p.version);
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Vec<u8>, ClientError> {
        let url = self.base();
        let unreachable =
            |source| ClientError::Unreachable { url: url.clone(), what: what.to_string(), source };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
        let what = what.to_string();
        let var = self.token_var.clone();
        Err(match (status.as_u16(), &self.token) {
            (401, None) => ClientError::NoToken { url, what, var },
            (401, Some(_)) => ClientError::BadToken { url, what, var, message },
            (code, _) => ClientError::Refused { url, what, status: code, message },
        })
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8], what: &str) -> Result<T, ClientError> {
        serde_json::from_slice(bytes).map_err(|source| ClientError::Decode {
            url: self.base(),
            what: what.to_string(),
            source,
        })
    }
}
