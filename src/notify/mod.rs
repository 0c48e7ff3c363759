//! `[[notify]]` webhooks: after a crawl of the daemon ends, each webhook whose `on` events the
//! crawl raised gets one POST (JSON or Slack body, signed when `secret_env` is set), off the
//! crawl's path on the daemon's task tracker, retried with backoff a bounded number of times, never
//! blocking or failing the crawl; every outcome is counted in `sitediff_notifications_total`.

pub mod body;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{NotifyConfig, NotifyFormat};
use crate::metrics::{Metrics, NotificationOutcome};
use crate::store::Store;

/// Attempts per delivery (the first and its retries).
pub const MAX_ATTEMPTS: u32 = 4;
/// The pause before the first retry; doubled before each next one.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// How long one attempt may take (connect, send, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a notifier cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot set up the webhook HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Sends the configured webhooks when crawls end.
pub struct Notifier {
    hooks: Vec<NotifyConfig>,
    store: Store,
    metrics: Metrics,
    http: reqwest::Client,
    /// The review UI's address for links (set once the listener is bound).
    ui_base: OnceLock<String>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Notifier {
    /// A notifier for `hooks`; deliveries run on `tracker` and stop (abandoned) when `cancel` fires.
    pub fn new(
        hooks: Vec<NotifyConfig>,
        store: Store,
        metrics: Metrics,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Notifier, NotifyError> {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sitediff/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(NotifyError::Client)?;
        Ok(Notifier { hooks, store, metrics, http, ui_base: OnceLock::new(), tracker, cancel })
    }

    /// Set the review UI's address used in links (the first call wins).
    pub fn set_ui_base(&self, base: String) {
        if self.ui_base.set(base).is_err() {
            tracing::debug!("the notifications' UI address was set already");
        }
    }

    /// Crawl `crawl` has ended (its record is final): notify the webhooks it concerns, in the
    /// background. Returns at once.
    pub fn crawl_ended(self: &Arc<Self>, crawl: u64) {
        if self.hooks.is_empty() {
            return;
        }
        let me = self.clone();
        self.tracker.spawn(async move { me.notify(crawl).await });
    }

    async fn notify(self: Arc<Self>, id: u64) {
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            let crawl = store.crawl(id)?;
            let pages = store.pages(id)?;
            Ok::<_, crate::store::StoreError>(crawl.map(|c| (c, pages)))
        })
        .await;
        let (crawl, pages) = match read {
            Ok(Ok(Some(found))) => found,
            Ok(Ok(None)) => return tracing::warn!(crawl = id, "notification skipped: the crawl is gone"),
            Ok(Err(e)) => {
                return tracing::error!(crawl = id, error = %crate::errors::chain(&e), "notification skipped: the crawl cannot be read")
            }
            Err(e) => {
                return tracing::error!(crawl = id, error = %e, "notification skipped: reading the crawl did not finish")
            }
        };
        let events = body::events(&crawl);
        let ui = self.ui_base.get().cloned().unwrap_or_default();
        let mut sends = Vec::new();
        for hook in &self.hooks {
            let matched: Vec<_> = hook.on.iter().copied().filter(|e| events.contains(e)).collect();
            if matched.is_empty() {
                continue;
            }
            let value = match hook.format {
                NotifyFormat::Json => body::json_body(&crawl, &pages, &matched, &ui),
                NotifyFormat::Slack => body::slack_body(&crawl, &pages, &ui),
            };
            let event_names: Vec<&str> = matched.iter().map(|e| event_name(*e)).collect();
            sends.push(self.deliver(hook, value.to_string(), event_names.join(","), id));
        }
        futures::future::join_all(sends).await;
    }

    /// POST one body, retrying failures (connection errors, timeouts, non-2xx) with backoff.
    async fn deliver(&self, hook: &NotifyConfig, body: String, events: String, crawl: u64) {
        let signature = hook.secret().map(|s| body::signature(&s, body.as_bytes()));
        let target = redacted(&hook.url);
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let mut req = self
                .http
                .post(hook.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("X-Sitediff-Event", &events)
                .header("X-Sitediff-Delivery", format!("{crawl}-{attempt}"))
                .body(body.clone());
            if let Some(sig) = &signature {
                req = req.header("X-Sitediff-Signature", sig);
            }
            let result = tokio::select! {
                _ = self.cancel.cancelled() => None,
                r = req.send() => Some(r),
            };
            let problem = match result {
                None => {
                    self.metrics.notification(NotificationOutcome::Abandoned);
                    return tracing::warn!(url = %target, crawl, "notification abandoned: the daemon is stopping");
                }
                Some(Ok(r)) if r.status().is_success() => {
                    self.metrics.notification(NotificationOutcome::Delivered);
                    return tracing::info!(url = %target, crawl, attempt, "notification delivered");
                }
                Some(Ok(r)) => format!("HTTP {}", r.status().as_u16()),
                Some(Err(e)) => crate::errors::chain(&e),
            };
            if attempt == MAX_ATTEMPTS {
                self.metrics.notification(NotificationOutcome::Failed);
                return tracing::error!(url = %target, crawl, attempts = attempt, problem, "notification failed: giving up");
            }
            self.metrics.notification(NotificationOutcome::Retried);
            tracing::warn!(url = %target, crawl, attempt, problem, retry_in = ?backoff, "notification attempt failed");
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    self.metrics.notification(NotificationOutcome::Abandoned);
                    return tracing::warn!(url = %target, crawl, "notification abandoned: the daemon is stopping");
                }
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff *= 2;
        }
    }
}

fn event_name(e: crate::config::NotifyOn) -> &'static str {
    match e {
        crate::config::NotifyOn::Changed => "changed",
        crate::config::NotifyOn::Failed => "failed",
        crate::config::NotifyOn::Finished => "finished",
    }
}

/// A webhook URL for logs: scheme, host and port only (webhook URLs often carry secrets in their
/// path or query).
fn redacted(url: &url::Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    )
}
