//! One browser session and how commands reach its page: over the page's own DevTools connection
//! (sessions of a chromedriver we spawned), else through WebDriver (chromedriver's DevTools
//! passthrough where the endpoint has it, W3C commands and window-resize fallbacks where not).
//! Dialogs that interrupt a WebDriver command are dismissed here; every command is bounded.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::wd::{TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::Client;
use serde_json::{json, Value};
use url::Url;

use super::devtools::{DevTools, DevToolsError, ScriptKind};
use super::intercept::SiteRequests;
use super::scripts::{Script, INNER_SIZE};
use crate::config::{BasicAuth, Viewport};

/// Bound on each WebDriver command that is not a navigation (scripts, screenshot, resize).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Extra time on top of the page timeout before we stop waiting for chromedriver's own answer.
const NAVIGATION_GRACE: Duration = Duration::from_secs(5);
/// How many stacked `alert()`s we dismiss before giving up.
const MAX_DIALOGS: usize = 5;
/// Device scale factor forced for byte-stable screenshots.
const DEVICE_SCALE_FACTOR: u32 = 1;
/// The DevTools method that takes a screenshot.
const CAPTURE_SCREENSHOT: &str = "Page.captureScreenshot";

/// A command that failed on the way it was sent: through WebDriver (chromedriver, a Grid) or over
/// the session's own DevTools connection, or whose answer was unusable.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// (Boxed: fantoccini's error is large, and every capture result carries this type.)
    #[error(transparent)]
    WebDriver(Box<CmdError>),
    #[error(transparent)]
    DevTools(#[from] DevToolsError),
    /// A dialog interrupted the command and could not be dismissed.
    #[error("cannot dismiss a dialog: {0}")]
    Dialog(#[source] Box<CmdError>),
    /// Dialogs kept interrupting a script (more than `MAX_DIALOGS` times).
    #[error("page keeps opening dialogs")]
    Dialogs,
    #[error("{method} returned no data")]
    NoData { method: &'static str },
    /// Requests can be intercepted only over the session's own DevTools connection.
    #[error("this session has no DevTools connection of its own to intercept requests on")]
    NoInterception,
    #[error("bad base64 from {method}: {source}")]
    Base64 {
        method: &'static str,
        #[source]
        source: base64::DecodeError,
    },
}

impl From<CmdError> for CommandError {
    fn from(e: CmdError) -> CommandError {
        CommandError::WebDriver(Box::new(e))
    }
}

impl CommandError {
    /// The command (or the page load or script it waited for) ran out of time.
    pub fn is_timeout(&self) -> bool {
        match self {
            CommandError::WebDriver(e) => is_timeout(e),
            CommandError::DevTools(e) => e.is_timeout(),
            _ => false,
        }
    }
}

/// A chromedriver DevTools command sent through `POST /session/{id}/goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, url::ParseError> {
        base_url.join(&format!("session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _request_url: &Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()))
    }
}

/// W3C "Add Cookie" for the current document's host. fantoccini sends an unset domain as `null`,
/// which chromedriver refuses, and a set domain fails for IP hosts: this omits the key.
#[derive(Debug)]
struct W3cAddCookie {
    name: String,
    value: String,
}

impl WebDriverCompatibleCommand for W3cAddCookie {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, url::ParseError> {
        base_url.join(&format!("session/{}/cookie", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _request_url: &Url) -> (http::Method, Option<String>) {
        let body = json!({ "cookie": { "name": self.name, "value": self.value, "path": "/" } });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// W3C "Get Timeouts": answered from the session's own state, never waiting on the page.
#[derive(Debug)]
struct GetTimeouts;

impl WebDriverCompatibleCommand for GetTimeouts {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, url::ParseError> {
        base_url.join(&format!("session/{}/timeouts", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _request_url: &Url) -> (http::Method, Option<String>) {
        (http::Method::GET, None)
    }
}

/// `Some(why)` when the endpoint says the session no longer exists or cannot be reached (a Grid
/// whose node died), `None` when it answers or says nothing within `timeout`.
pub async fn session_gone(client: &Client, timeout: Duration) -> Option<CommandError> {
    match tokio::time::timeout(timeout, client.issue_cmd(GetTimeouts)).await {
        Err(_) | Ok(Ok(_)) => None,
        Ok(Err(e)) if is_timeout(&e) => None,
        Ok(Err(e)) => Some(e.into()),
    }
}

/// Whether the endpoint can pass DevTools commands through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdpSupport {
    /// Not tried yet.
    Unknown,
    Yes,
    /// A W3C-only endpoint: window-resize fallbacks are used.
    No,
}

/// DevTools state set on a session for the site it served last (it persists across pages).
#[derive(Debug, Default)]
pub(super) struct SessionSetup {
    /// The prefix the installed document-start script guards, and the script's id.
    pub guard: Option<(String, String)>,
    pub user_agent: Option<String>,
    pub network_enabled: bool,
    /// When the browser's HTTP cache was last emptied: a request whose sweep started later gets
    /// it emptied again, so a session reused across sweeps never shows an older sweep's copy.
    pub cache_cleared: Option<Instant>,
    /// The site whose headers and credentials requests get (its origin only), as last set.
    pub site_requests: Option<SiteRequestsKey>,
    pub block_urls: Vec<String>,
    /// W3C fallback: origins whose cookies were added to the jar.
    pub cookie_origins: HashSet<String>,
    /// The installed fingerprint document-start script: the navigation guard's id it was
    /// installed after, and its own id (issue 19).
    pub fingerprint_script: Option<(String, String)>,
    /// The browser and fonts of this session, once asked.
    pub environment: Option<super::fingerprint::Environment>,
}

/// What [`SiteRequests`] were made of: the site's origin, extra headers and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SiteRequestsKey {
    pub origin: url::Origin,
    pub headers: Vec<(String, String)>,
    pub basic_auth: Option<BasicAuth>,
}

impl SiteRequestsKey {
    fn requests(&self) -> SiteRequests {
        let credentials = self.basic_auth.as_ref().map(|a| (a.user.clone(), a.password.clone()));
        SiteRequests::new(self.origin.clone(), self.headers.clone(), credentials)
    }
}

/// One WebDriver session plus what we already set up on it.
#[derive(Debug)]
pub struct BrowserSession {
    pub client: Client,
    /// The page's own DevTools connection (sessions of a chromedriver we spawned): navigation,
    /// scripts and DevTools commands go over it instead of through chromedriver.
    devtools: Option<DevTools>,
    cdp: CdpSupport,
    /// The viewport set last (`None`: unknown, set it again).
    pub(super) viewport: Option<Viewport>,
    /// The page timeout the WebDriver session's timeouts were set for.
    pub(super) page_timeout: Option<Duration>,
    pub(super) setup: SessionSetup,
}

impl BrowserSession {
    pub fn new(client: Client) -> BrowserSession {
        BrowserSession {
            client,
            devtools: None,
            cdp: CdpSupport::Unknown,
            viewport: None,
            page_timeout: None,
            setup: SessionSetup::default(),
        }
    }

    /// Use `devtools` (connected to this session's page) for the hot path from now on.
    pub fn with_devtools(mut self, devtools: DevTools) -> BrowserSession {
        self.devtools = Some(devtools);
        self.cdp = CdpSupport::Yes;
        self
    }

    /// W3C commands only from now on: no DevTools passthrough tried (`browser.transport = "w3c"`).
    pub fn w3c_only(mut self) -> BrowserSession {
        self.cdp = CdpSupport::No;
        self
    }

    /// Whether the page is driven over its own DevTools connection.
    pub fn has_devtools(&self) -> bool {
        self.devtools.is_some()
    }

    /// Liveness probe: does the session still navigate (to `url`, within `timeout`)? Over the
    /// session's DevTools connection when it has one (chromedriver has not followed navigations
    /// it did not start, and would wait on one that timed out), else through WebDriver.
    pub async fn navigates_to(&self, url: &str, timeout: Duration) -> bool {
        match &self.devtools {
            Some(dt) => match dt.navigate(url, timeout).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "DevTools liveness probe failed");
                    false
                }
            },
            None => matches!(tokio::time::timeout(timeout, self.client.goto(url)).await, Ok(Ok(()))),
        }
    }

    /// Start recording the page's `Network` events for a capture fingerprint (own DevTools
    /// connection only; returns whether it records).
    pub(super) fn record_network(&self) -> bool {
        match &self.devtools {
            Some(dt) => {
                dt.record_network();
                true
            }
            None => false,
        }
    }

    /// Stop recording the page's `Network` events and return them.
    pub(super) fn take_network(&self) -> Option<Vec<super::fingerprint::Observed>> {
        self.devtools.as_ref().and_then(DevTools::take_network)
    }

    /// What was recorded so far, recording going on.
    pub(super) fn peek_network(&self) -> Option<Vec<super::fingerprint::Observed>> {
        self.devtools.as_ref().and_then(DevTools::peek_network)
    }

    /// Whether DevTools passthrough works on this session (known after the first capture).
    pub fn cdp(&self) -> CdpSupport {
        self.cdp
    }

    /// A DevTools command: over the session's own connection, else through chromedriver's
    /// passthrough.
    pub(super) async fn cdp_cmd(&self, cmd: &'static str, params: Value) -> Result<Value, CommandError> {
        match &self.devtools {
            Some(dt) => Ok(dt.call(cmd, params, COMMAND_TIMEOUT).await?),
            None => Ok(bounded(self.client.issue_cmd(Cdp { cmd, params })).await?),
        }
    }

    /// Give the site's extra headers and credentials to requests for its origin only, or stop
    /// (`None`). Only over the session's own DevTools connection: the only way that sees each
    /// request (chromedriver's passthrough carries commands, not events).
    pub(super) async fn intercept(&mut self, site: Option<SiteRequestsKey>) -> Result<(), CommandError> {
        if self.setup.site_requests == site {
            return Ok(());
        }
        match &self.devtools {
            Some(dt) => dt.intercept(site.as_ref().map(SiteRequestsKey::requests)).await?,
            None if site.is_none() => {}
            None => return Err(CommandError::NoInterception),
        }
        self.setup.site_requests = site;
        Ok(())
    }

    /// The WebDriver session's script and page-load timeouts (unused over DevTools, which bounds
    /// each command itself).
    pub(super) async fn set_timeouts(
        &self,
        script: Duration,
        page_load: Duration,
    ) -> Result<(), CommandError> {
        let t = TimeoutConfiguration::new(Some(script), Some(page_load), Some(Duration::ZERO));
        Ok(bounded(self.client.update_timeouts(t)).await?)
    }

    /// Make the viewport exactly `vp` (device metrics over DevTools; finds out whether the endpoint
    /// has DevTools passthrough at all), else by resizing the window.
    pub(super) async fn set_viewport(&mut self, vp: Viewport) -> Result<(), CommandError> {
        if self.cdp != CdpSupport::No {
            let params = json!({
                "width": vp.width, "height": vp.height,
                "deviceScaleFactor": DEVICE_SCALE_FACTOR, "mobile": false,
            });
            match self.cdp_cmd("Emulation.setDeviceMetricsOverride", params).await {
                Ok(_) => {
                    self.cdp = CdpSupport::Yes;
                    // Best effort: overlay scrollbars off the layout too (CSS hides them as well).
                    let hidden =
                        self.cdp_cmd("Emulation.setScrollbarsHidden", json!({ "hidden": true })).await;
                    if let Err(e) = hidden {
                        tracing::warn!(error = %e, "cannot hide scrollbars (CSS still hides them)");
                    }
                    return Ok(());
                }
                Err(CommandError::WebDriver(e)) if is_no_cdp(&e) => {
                    tracing::debug!(error = %e, "no DevTools passthrough; using window-resize fallbacks");
                    self.cdp = CdpSupport::No;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(resize_viewport(&self.client, vp.width, vp.height).await?)
    }

    /// Navigate to `url` and wait for the page to load, within `timeout` (a timeout is an error
    /// for which [`CommandError::is_timeout`] holds). Dialogs opened during the load are dismissed.
    pub(super) async fn goto(&self, url: &str, timeout: Duration) -> Result<(), CommandError> {
        if let Some(dt) = &self.devtools {
            return Ok(dt.navigate(url, timeout).await?);
        }
        let nav = tokio::time::timeout(timeout + NAVIGATION_GRACE, self.client.goto(url)).await;
        match nav.unwrap_or(Err(CmdError::WaitTimeout)) {
            Ok(()) => Ok(()),
            Err(e) if e.is_unexpected_alert_open() => self.dismiss_dialogs().await,
            Err(e) => Err(e.into()),
        }
    }

    /// Run `script` in the page: over the session's DevTools connection (which dismisses dialogs as
    /// they open; bounded by `timeout`), else through WebDriver (bounded by the session's script
    /// timeout), dismissing dialogs that interrupt it.
    pub(super) async fn run_script(
        &self,
        script: &Script<'_>,
        timeout: Duration,
    ) -> Result<Value, CommandError> {
        if let Some(dt) = &self.devtools {
            return Ok(dt.run_script(script.body, &script.args, script.kind, timeout).await?);
        }
        let client = &self.client;
        for _ in 0..MAX_DIALOGS {
            let run = match script.kind {
                ScriptKind::Sync => bounded(client.execute(script.body, script.args.clone())).await,
                ScriptKind::Async => bounded(client.execute_async(script.body, script.args.clone())).await,
            };
            match run {
                Ok(v) => return Ok(v),
                Err(e) if e.is_unexpected_alert_open() => self.dismiss_dialogs().await?,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CommandError::Dialogs)
    }

    /// Dismiss open `alert()`/`confirm()`/`prompt()` dialogs (up to [`MAX_DIALOGS`]).
    async fn dismiss_dialogs(&self) -> Result<(), CommandError> {
        for _ in 0..MAX_DIALOGS {
            match bounded(self.client.dismiss_alert()).await {
                Ok(()) => continue,
                Err(e) if e.is_no_such_alert() => return Ok(()),
                Err(e) => return Err(CommandError::Dialog(Box::new(e))),
            }
        }
        Ok(())
    }

    /// A PNG of the page's `width` x `height` CSS px from `top` down (a clipped shot of the
    /// whole-page layout). `None` when the page started loading another document first and
    /// `may_navigate` (over the session's DevTools connection; else that is an error). On a W3C-only
    /// endpoint (`top` must be 0) the window grows to the full height for the shot and is then given
    /// `viewport` back.
    pub(super) async fn screenshot(
        &mut self,
        top: u32,
        width: u32,
        height: u32,
        viewport: Viewport,
        may_navigate: bool,
    ) -> Result<Option<Vec<u8>>, CommandError> {
        if self.cdp == CdpSupport::Yes {
            let params = json!({
                "format": "png",
                // zlib level 1: encoding is most of the browser's CPU for a shot; the PNG is ~25% larger.
                "optimizeForSpeed": true,
                "captureBeyondViewport": true,
                "fromSurface": true,
                "clip": { "x": 0, "y": top, "width": width, "height": height, "scale": 1 },
            });
            let v = match &self.devtools {
                Some(dt) => match dt.call_in_document(CAPTURE_SCREENSHOT, params, COMMAND_TIMEOUT).await {
                    Err(DevToolsError::Navigated) if may_navigate => return Ok(None),
                    other => other?,
                },
                None => self.cdp_cmd(CAPTURE_SCREENSHOT, params).await?,
            };
            let data = v
                .get("data")
                .and_then(Value::as_str)
                .ok_or(CommandError::NoData { method: CAPTURE_SCREENSHOT })?;
            return base64::engine::general_purpose::STANDARD
                .decode(data)
                .map(Some)
                .map_err(|source| CommandError::Base64 { method: CAPTURE_SCREENSHOT, source });
        }
        // W3C fallback: grow the viewport to the full height, shoot, then restore the viewport.
        resize_viewport(&self.client, width, height).await?;
        let shot = bounded(self.client.screenshot()).await;
        if let Err(e) = resize_viewport(&self.client, viewport.width, viewport.height).await {
            tracing::warn!(error = %e, "cannot restore the viewport after a shot; set again for the next page");
            self.viewport = None;
        }
        Ok(Some(shot?))
    }

    /// W3C "Add Cookie" on the current document's host.
    pub(super) async fn add_cookie(&self, name: &str, value: &str) -> Result<(), CommandError> {
        let cmd = W3cAddCookie { name: name.to_string(), value: value.to_string() };
        Ok(bounded(self.client.issue_cmd(cmd)).await.map(|_| ())?)
    }

    /// The current document's URL as WebDriver reports it.
    pub(super) async fn current_url(&self) -> Result<Url, CommandError> {
        Ok(bounded(self.client.current_url()).await?)
    }

    /// Close the WebDriver session (quits its browser).
    pub async fn close(mut self) {
        self.devtools = None;
        match tokio::time::timeout(COMMAND_TIMEOUT, self.client.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "closing a WebDriver session failed"),
            Err(_) => tracing::warn!("closing a WebDriver session: no answer within {COMMAND_TIMEOUT:?}"),
        }
    }
}

/// Size the window so that the *viewport* is `width` x `height` (W3C only: resize, measure the
/// browser chrome, correct).
async fn resize_viewport(client: &Client, width: u32, height: u32) -> Result<(), CmdError> {
    bounded(client.set_window_size(width, height)).await?;
    let inner = bounded(client.execute(INNER_SIZE, vec![])).await?;
    let iw = inner.get(0).and_then(Value::as_f64).unwrap_or(f64::from(width));
    let ih = inner.get(1).and_then(Value::as_f64).unwrap_or(f64::from(height));
    let dw = (f64::from(width) - iw).max(0.0).round() as u32;
    let dh = (f64::from(height) - ih).max(0.0).round() as u32;
    if dw > 0 || dh > 0 {
        bounded(client.set_window_size(width + dw, height + dh)).await?;
    }
    Ok(())
}

/// `fut` bounded by [`COMMAND_TIMEOUT`] (a hung chromedriver becomes a timeout error).
async fn bounded<T>(fut: impl std::future::Future<Output = Result<T, CmdError>>) -> Result<T, CmdError> {
    tokio::time::timeout(COMMAND_TIMEOUT, fut).await.unwrap_or(Err(CmdError::WaitTimeout))
}

fn is_no_cdp(e: &CmdError) -> bool {
    match e {
        CmdError::Standard(w) => matches!(
            w.error,
            ErrorStatus::UnknownCommand
                | ErrorStatus::UnknownMethod
                | ErrorStatus::UnknownPath
                | ErrorStatus::UnsupportedOperation
        ),
        CmdError::NotJson(_) | CmdError::NotW3C(_) => true,
        _ => false,
    }
}

fn is_timeout(e: &CmdError) -> bool {
    e.is_timeout() || e.is_script_timeout() || matches!(e, CmdError::WaitTimeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_told_apart_from_other_failures() {
        assert!(CommandError::from(CmdError::WaitTimeout).is_timeout());
        let dt =
            DevToolsError::Timeout { method: "Runtime.evaluate".into(), timeout: Duration::from_secs(1) };
        assert!(CommandError::from(dt).is_timeout());
        let dialog = CommandError::Dialog(Box::new(CmdError::WaitTimeout));
        assert!(!dialog.is_timeout(), "a dialog that cannot be dismissed is a navigation failure");
        assert!(!CommandError::Dialogs.is_timeout());
        assert!(!CommandError::from(CmdError::NotJson("x".into())).is_timeout());
    }

    #[test]
    fn refused_passthrough_means_no_devtools() {
        assert!(is_no_cdp(&CmdError::NotJson("<html>".into())));
        assert!(!is_no_cdp(&CmdError::WaitTimeout));
    }
}
