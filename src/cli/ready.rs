//! `--wait-for URL [--wait-timeout SECS]`: before a crawl starts, poll a just-deployed server until
//! it answers 2xx (dpxdt's `waitFor`); a timeout is an error naming the URL and the last answer.

use std::time::{Duration, Instant};

/// Pause between two polls.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long one poll may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the wait failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error("--wait-for {url}: no 2xx answer within {secs} s (last: {last})")]
    TimedOut { url: String, secs: u64, last: String },
    #[error("--wait-for {url:?} is not an http(s) URL")]
    BadUrl { url: String },
    #[error("cannot set up the HTTP client for --wait-for")]
    Build(#[source] reqwest::Error),
}

/// Poll `url` until it answers 2xx, for at most `timeout`.
pub async fn wait_until_ready(url: &str, timeout: Duration) -> Result<(), ReadyError> {
    let parsed = url::Url::parse(url).map_err(|_| ReadyError::BadUrl { url: url.to_string() })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ReadyError::BadUrl { url: url.to_string() });
    }
    let client = reqwest::Client::builder().timeout(POLL_TIMEOUT).build().map_err(ReadyError::Build)?;
    let started = Instant::now();
    let mut said = false;
    loop {
        let last = match client.get(parsed.clone()).send().await {
            Ok(r) if r.status().is_success() => {
                if said {
                    eprintln!("{url} is ready after {:.1} s", started.elapsed().as_secs_f64());
                }
                return Ok(());
            }
            Ok(r) => format!("HTTP {}", r.status().as_u16()),
            Err(e) => sitediff::errors::chain(&e),
        };
        if !said {
            eprintln!("waiting for {url} to answer 2xx ({last})");
            said = true;
        }
        if started.elapsed() + POLL_EVERY > timeout {
            return Err(ReadyError::TimedOut { url: url.to_string(), secs: timeout.as_secs(), last });
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
