//! One capture on one browser session (over its own DevTools connection, else WebDriver): exact
//! viewport, navigation with a timeout, stabilisation (load, fonts, frozen animations, injected/hiding
//! CSS), measurements, full-page PNG, rendered HTML.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::wd::{TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::Client;
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::devtools::{DevTools, DevToolsError, ScriptKind};
use super::{Capture, CaptureError, CaptureRequest, CaptureTiming, SelectorRects};
use crate::config::Viewport;
use crate::crawl::links::normalize_url;
use crate::diff::{decode_png, Rect};

/// Extra time on top of the page timeout before we stop waiting for chromedriver's own answer.
const NAVIGATION_GRACE: Duration = Duration::from_secs(5);
/// Upper bound for the stabilisation script when the page timeout is longer.
const MAX_SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Lower bound for the stabilisation and measurement scripts, however short the page timeout.
const MIN_SCRIPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on each WebDriver command that is not a navigation (scripts, screenshot, resize).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times a page that keeps navigating by itself is settled again before we shoot anyway.
const MAX_SETTLE_ATTEMPTS: u32 = 3;
/// How long stabilisation waits for images still loading (lazy ones included).
const IMAGE_WAIT: Duration = Duration::from_secs(5);
/// How long stabilisation waits for an animation frame (two while scrolling) before going on anyway.
const FRAME_WAIT: Duration = Duration::from_millis(500);
/// Network quiet: no request in flight and no resource finished for this long...
const NETWORK_QUIET: Duration = Duration::from_millis(200);
/// ...waited for at most this long.
const NETWORK_QUIET_CAP: Duration = Duration::from_secs(3);
/// Poll interval of the network-quiet wait.
const NETWORK_POLL: Duration = Duration::from_millis(25);
/// Most viewport-high scroll steps taken to trigger lazy content.
const MAX_SCROLL_STEPS: u32 = 60;
/// Page timers (`setTimeout`/`setInterval`) at least this long never fire: carousels, delayed
/// banners and the like are photographed as they are at load (DevTools endpoints only).
const LONG_TIMER: Duration = Duration::from_millis(1000);
/// Most screenshots taken looking for two identical consecutive ones.
pub const MAX_SHOTS: u32 = 4;
/// How many stacked `alert()`s we dismiss before giving up.
const MAX_DIALOGS: usize = 5;
/// Device scale factor forced for byte-stable screenshots.
const DEVICE_SCALE_FACTOR: u32 = 1;
/// Smallest screenshot height we ask for (an empty page still yields an image).
const MIN_CAPTURE_HEIGHT: u32 = 1;

/// Styles that make a page render the same way on every run.
const FREEZE_CSS: &str = "\
*, *::before, *::after {\n  animation: none !important;\n  transition: none !important;\n  \
caret-color: transparent !important;\n  scroll-behavior: auto !important;\n}\n\
html { scrollbar-width: none !important; }\n\
::-webkit-scrollbar { display: none !important; width: 0 !important; height: 0 !important; }\n";

/// Installed in every new document before the page's own scripts (DevTools
/// `Page.addScriptToEvaluateOnNewDocument`; on W3C-only endpoints run right after navigation).
/// Placeholders: `__PREFIX__` (JSON string: the site prefix), `__LONG_TIMER_MS__`.
/// - Top-level navigations (script, meta refresh, form submit) outside the prefix are cancelled
///   through the Navigation API and remembered in `__sitediff.blocked`; `window.open` returns null.
/// - fetch/XHR in flight are counted (`__sitediff.inflight`) for the network-quiet wait.
/// - Timers of `__LONG_TIMER_MS__` or more never fire; once `__sitediff.frozen` is set, the page's
///   timer and animation-frame callbacks are held (not run), so script animation stops at the shot.
/// - What could load content only when scrolled into view is counted (`__sitediff.lazyHooks`:
///   IntersectionObserver targets, scroll/wheel listeners): a page without any is not scrolled through.
const DOC_START_JS: &str = r#"(() => {
  if (window.__sitediff) { return; }
  const prefix = new URL(__PREFIX__), longMs = __LONG_TIMER_MS__;
  const sd = window.__sitediff = { inflight: 0, frozen: false, blocked: [], held: 0, dropped: 0, lazyHooks: 0 };
  // Installed before the page's scripts (not late, after load): the hook count is complete.
  sd.early = document.readyState === 'loading';
  const W = window, oST = W.setTimeout, oSI = W.setInterval, oRAF = W.requestAnimationFrame;
  sd.setTimeout = oST.bind(W);
  sd.raf = oRAF ? oRAF.bind(W) : (cb => oST.call(W, () => cb(performance.now()), 16));
  const norm = s => s.replace(/%[0-9a-fA-F]{2}/g, m => {
    const c = String.fromCharCode(parseInt(m.slice(1), 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : m.toUpperCase();
  });
  const allowed = u => {
    let x;
    try { x = new URL(u, location.href); } catch (e) { return false; }
    if (x.protocol === 'about:' || x.protocol === 'javascript:') { return true; }
    return x.protocol === prefix.protocol && x.host === prefix.host
      && norm(x.pathname).startsWith(norm(prefix.pathname));
  };
  if (W === W.top) {
    if (W.navigation && W.navigation.addEventListener) {
      W.navigation.addEventListener('navigate', e => {
        if (!allowed(e.destination.url) && e.cancelable) {
          e.preventDefault();
          if (sd.blocked.length < 20) { sd.blocked.push(String(e.destination.url)); }
        }
      });
    }
    W.open = () => null;
  }
  const hold = fn => function (...a) {
    if (sd.frozen) { sd.held++; return; }
    return fn.apply(this, a);
  };
  W.setTimeout = function (fn, ms, ...a) {
    if (typeof fn !== 'function') { return oST.call(W, fn, ms, ...a); }
    if (Number(ms) >= longMs) { sd.dropped++; return oST.call(W, () => {}, 0); }
    return oST.call(W, hold(fn), ms, ...a);
  };
  W.setInterval = function (fn, ms, ...a) {
    if (typeof fn !== 'function') { return oSI.call(W, fn, ms, ...a); }
    if (Number(ms) >= longMs) { sd.dropped++; return oST.call(W, () => {}, 0); }
    return oSI.call(W, hold(fn), ms, ...a);
  };
  if (oRAF) {
    W.requestAnimationFrame = function (cb) {
      return oRAF.call(W, t => { if (sd.frozen) { sd.held++; return; } cb(t); });
    };
  }
  if (W.IntersectionObserver) {
    const oObserve = W.IntersectionObserver.prototype.observe;
    W.IntersectionObserver.prototype.observe = function (...a) { sd.lazyHooks++; return oObserve.apply(this, a); };
  }
  if (W.EventTarget) {
    const oAdd = W.EventTarget.prototype.addEventListener;
    W.EventTarget.prototype.addEventListener = function (type, ...a) {
      if (type === 'scroll' || type === 'wheel' || type === 'scrollend') { sd.lazyHooks++; }
      return oAdd.call(this, type, ...a);
    };
  }
  if (W.fetch) {
    const oFetch = W.fetch;
    W.fetch = function (...a) {
      sd.inflight++;
      let p;
      try { p = oFetch.apply(this, a); } catch (e) { sd.inflight--; throw e; }
      const end = () => { sd.inflight--; };
      p.then(end, end);
      return p;
    };
  }
  if (W.XMLHttpRequest) {
    const oSend = W.XMLHttpRequest.prototype.send;
    W.XMLHttpRequest.prototype.send = function (...a) {
      sd.inflight++;
      this.addEventListener('loadend', () => { sd.inflight--; }, { once: true });
      try { return oSend.apply(this, a); } catch (e) { sd.inflight--; throw e; }
    };
  }
})();"#;

/// Settles the page for its shot and measures it. Arguments: 0 the style sheet to inject, 1 image
/// wait (ms), 2 frame wait (ms), 3 network-quiet window (ms), 4 its cap (ms), 5 max height (px),
/// 6 max scroll steps, 7 poll interval (ms), 8 the mask selectors, 9 whether the site injects a
/// script.
///
/// Waits for `load` and `document.fonts.ready`; makes lazy images and iframes eager; scrolls through
/// the page viewport by viewport and back when something on it could load content only when seen
/// (IntersectionObserver targets, scroll listeners, `onscroll` handlers; always when the
/// document-start script did not run); waits for images and for network quiet (no fetch/XHR in
/// flight, no image loading, and, on a page where a script could start more requests, nothing
/// finished for the window); then freezes: held page timers, the
/// style sheet, cancelled animations, paused media, blurred focus (no caret), top of the page, one
/// frame. Calls back the [`Settled`] measurement as JSON, `{invalid_selector}` for a mask selector
/// that does not parse, or `{error}`.
const SETTLE_JS: &str = r#"
const [css, imageWaitMs, frameWaitMs, quietMs, quietCapMs, maxScroll, maxSteps, pollMs, sels, injected] = arguments;
const done = arguments[arguments.length - 1];
const url = location.href;
const sd = window.__sitediff;
const st = (sd && sd.setTimeout) || window.setTimeout.bind(window);
const raf = (sd && sd.raf) || window.requestAnimationFrame.bind(window);
const sleep = ms => new Promise(r => st(r, ms));
const frame = () => new Promise(r => raf(() => r()));
const frames = () => Promise.race([frame().then(frame), sleep(frameWaitMs)]);
const de = document.documentElement;
const pageHeight = () => Math.max(de.scrollHeight, document.body ? document.body.scrollHeight : 0);
const eager = () => {
  for (const el of document.querySelectorAll('img[loading=lazy], iframe[loading=lazy]')) { el.loading = 'eager'; }
};
const needsScroll = () => !sd || !sd.early || sd.lazyHooks > 0 || !!(window.onscroll || document.onscroll
  || (document.body && document.body.onscroll) || document.querySelector('[onscroll]'));
const waitImages = async () => {
  const pending = [];
  for (const img of document.images) {
    if (!img.complete) {
      pending.push(new Promise(r => {
        img.addEventListener('load', r, { once: true });
        img.addEventListener('error', r, { once: true });
      }));
    }
  }
  if (pending.length) { await Promise.race([Promise.all(pending), sleep(imageWaitMs)]); }
};
// Only a script can start requests once the page has loaded: the page's own (elements, handlers
// that fire without user input), one in a frame or plugin, or the site's inject_js.
const scripted = () => injected || !!document.querySelector('script, iframe, frame, object, embed, '
  + '[onload], [onpageshow], [onerror], [onfocus], [onresize], [onanimationstart], [onanimationend], '
  + '[onanimationiteration], [ontransitionend], [ontoggle]');
const networkQuiet = async () => {
  let last = 0;
  for (const e of performance.getEntriesByType('resource')) { last = Math.max(last, e.responseEnd || 0); }
  let po = null;
  try {
    po = new PerformanceObserver(l => { for (const e of l.getEntries()) { last = Math.max(last, e.responseEnd || 0); } });
    po.observe({ type: 'resource' });
  } catch (e) {}
  const t0 = performance.now(), quiet = !scripted();
  while (performance.now() - t0 < quietCapMs) {
    const busy = ((sd && sd.inflight) || 0) > 0 || [...document.images].some(i => !i.complete);
    if (!busy && (quiet || performance.now() - last >= quietMs)) { break; }
    await sleep(pollMs);
  }
  if (po) { po.disconnect(); }
};
const blur = () => {
  const el = document.activeElement;
  if (el && el !== document.body && el.blur) { el.blur(); }
};
const measure = () => {
  const b = document.body;
  const height = Math.max(de.scrollHeight, de.offsetHeight, b ? b.scrollHeight : 0, b ? b.offsetHeight : 0);
  const sx = window.scrollX, sy = window.scrollY;
  const masks = [];
  for (const s of sels) {
    let els;
    try { els = document.querySelectorAll(s); } catch (e) { return { invalid_selector: s }; }
    const rects = [];
    for (const el of els) {
      const r = el.getBoundingClientRect();
      rects.push([r.left + sx, r.top + sy, r.width, r.height]);
    }
    masks.push(rects);
  }
  return { url, height, masks, title: document.title };
};
(async () => {
  if (document.readyState !== 'complete') {
    await new Promise(r => window.addEventListener('load', r, { once: true }));
  }
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  eager();
  if (needsScroll()) {
    const vh = Math.max(1, window.innerHeight);
    let steps = 0;
    while (steps < maxSteps && (steps + 1) * vh < Math.min(pageHeight(), maxScroll)) {
      steps++;
      window.scrollTo(0, steps * vh);
      await frames();
    }
    if (steps > 0) { window.scrollTo(0, 0); await frames(); }
    eager();
  }
  await waitImages();
  await networkQuiet();
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  if (sd) { sd.frozen = true; }
  const style = document.createElement('style');
  style.setAttribute('data-sitediff', '');
  style.textContent = css;
  (document.head || document.documentElement).appendChild(style);
  if (document.getAnimations) {
    for (const a of document.getAnimations()) { try { a.cancel(); } catch (e) {} }
  }
  for (const v of document.querySelectorAll('video, audio')) { try { v.pause(); v.currentTime = 0; } catch (e) {} }
  blur();
  window.scrollTo(0, 0);
  // One frame with the frozen styles; the shot itself forces the next one. The frame also
  // flushes pending `autofocus`, which would focus an element after the blur above: blur again.
  await Promise.race([frame(), sleep(frameWaitMs)]);
  blur();
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  window.__sitediffSettled = true;
  done(measure());
})().catch(e => done({ error: String((e && e.message) || e) }));
"#;

/// The rendered DOM, the document's URL, whether the settle script ran on this document, and the
/// navigations the guard refused.
const HTML_JS: &str = "return { settled: window.__sitediffSettled === true, url: location.href, \
    html: document.documentElement ? document.documentElement.outerHTML : '', \
    blocked: (window.__sitediff && window.__sitediff.blocked) || [] };";
/// The document's URL (where the browser ended up after navigating).
const LOCATION_JS: &str = "return location.href;";
const INNER_SIZE_JS: &str = "return [window.innerWidth, window.innerHeight];";

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
struct SessionSetup {
    /// The prefix the installed document-start script guards, and the script's id.
    guard: Option<(String, String)>,
    user_agent: Option<String>,
    network_enabled: bool,
    /// When the browser's HTTP cache was last emptied: a request whose sweep started later gets
    /// it emptied again, so a session reused across sweeps never shows an older sweep's copy.
    cache_cleared: Option<Instant>,
    headers: Vec<(String, String)>,
    block_urls: Vec<String>,
    /// W3C fallback: origins whose cookies were added to the jar.
    cookie_origins: HashSet<String>,
}

/// A command that failed on the way it was sent: through WebDriver (chromedriver, a Grid) or over
/// the session's own DevTools connection.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error(transparent)]
    WebDriver(#[from] CmdError),
    #[error(transparent)]
    DevTools(#[from] DevToolsError),
}

/// One WebDriver session plus what we already set up on it.
#[derive(Debug)]
pub struct BrowserSession {
    pub client: Client,
    /// The page's own DevTools connection (sessions of a chromedriver we spawned): navigation,
    /// scripts and DevTools commands go over it instead of through chromedriver.
    devtools: Option<DevTools>,
    cdp: CdpSupport,
    viewport: Option<Viewport>,
    page_timeout: Option<Duration>,
    setup: SessionSetup,
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

    /// Whether DevTools passthrough works on this session (known after the first capture).
    pub fn cdp(&self) -> CdpSupport {
        self.cdp
    }

    /// A DevTools command: over the session's own connection, else through chromedriver's
    /// passthrough.
    async fn cdp_cmd(&self, cmd: &'static str, params: Value) -> Result<Value, CommandError> {
        match &self.devtools {
            Some(dt) => Ok(dt.call(cmd, params, COMMAND_TIMEOUT).await?),
            None => Ok(bounded(self.client.issue_cmd(Cdp { cmd, params })).await?),
        }
    }

    /// Close the WebDriver session (quits its browser).
    pub async fn close(mut self) {
        self.devtools = None;
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, self.client.close()).await;
    }
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

/// Photograph one page on `session`.
pub async fn capture_page(
    session: &mut BrowserSession,
    req: &CaptureRequest,
) -> Result<Capture, CaptureError> {
    let url = req.url.as_str();
    let opts = &req.options;
    let script_err = |e: CommandError| CaptureError::Script { url: url.to_string(), reason: e.to_string() };

    // Viewport and timeouts are session state: set them only when they change.
    if session.viewport != Some(req.viewport) {
        set_viewport(session, req.viewport).await.map_err(script_err)?;
        session.viewport = Some(req.viewport);
    }
    let settle_timeout =
        opts.page_timeout.clamp(MIN_SCRIPT_TIMEOUT, MAX_SETTLE_TIMEOUT.max(MIN_SCRIPT_TIMEOUT));
    if session.devtools.is_none() && session.page_timeout != Some(opts.page_timeout) {
        let t =
            TimeoutConfiguration::new(Some(settle_timeout), Some(opts.page_timeout), Some(Duration::ZERO));
        bounded(session.client.update_timeouts(t)).await.map_err(|e| script_err(e.into()))?;
        session.page_timeout = Some(opts.page_timeout);
    }
    // Navigation guard, user agent, headers, blocked URLs, cookies: before the page loads.
    prepare(session, req).await?;

    // Navigate.
    let t0 = Instant::now();
    navigate(session, req).await?;
    if session.cdp != CdpSupport::Yes {
        // W3C-only: cookies need a document of their origin; the guard cannot run before the page.
        if w3c_add_cookies(session, req).await? {
            navigate(session, req).await?;
        }
        install_guard_late(session, req).await?;
    }
    if !opts.inject_js.is_empty() {
        // The site's script must never run on a page outside the prefix; otherwise the settle
        // script reports where the browser is.
        check_location(session, req, settle_timeout).await?;
    }
    let navigate_ms = elapsed_ms(t0);

    // Stabilise, measure, shoot. A page that navigates on its own (inside the prefix) after load is
    // settled again on its new document, a bounded number of times.
    let css = page_css(&opts.inject_css, &opts.hide_selectors, &opts.remove_selectors);
    let mut attempt = 0;
    'settle: loop {
        attempt += 1;
        let last = attempt >= MAX_SETTLE_ATTEMPTS;
        let t1 = Instant::now();
        if !opts.inject_js.is_empty() {
            match run_script(session, url, settle_timeout, Script::sync(&opts.inject_js)).await {
                Err(CaptureError::Script { reason, .. }) => {
                    return Err(CaptureError::Script {
                        url: url.to_string(),
                        reason: format!("inject_js: {reason}"),
                    })
                }
                other => other?,
            };
        }
        let settled = run_script(
            session,
            url,
            settle_timeout,
            Script {
                body: SETTLE_JS,
                args: vec![
                    json!(css),
                    json!(ms(IMAGE_WAIT)),
                    json!(ms(FRAME_WAIT)),
                    json!(ms(NETWORK_QUIET)),
                    json!(ms(NETWORK_QUIET_CAP)),
                    json!(opts.max_height),
                    json!(MAX_SCROLL_STEPS),
                    json!(ms(NETWORK_POLL)),
                    json!(opts.mask_selectors),
                    json!(!opts.inject_js.is_empty()),
                ],
                kind: ScriptKind::Async,
            },
        )
        .await;
        let settled = match settled {
            // The document went away under the async script: chromedriver reports a script error
            // or, at once, a script timeout. Settle the new document.
            Err(CaptureError::Script { .. }) if !last => continue,
            Err(CaptureError::Timeout { .. }) if !last && t1.elapsed() < settle_timeout => continue,
            other => other?,
        };
        if let Some(err) = settled.get("error").and_then(Value::as_str) {
            return Err(CaptureError::Script { url: url.to_string(), reason: err.to_string() });
        }
        if let Some(sel) = settled.get("invalid_selector").and_then(Value::as_str) {
            return Err(CaptureError::Script {
                url: url.to_string(),
                reason: format!("invalid mask selector {sel:?}"),
            });
        }
        let measure: Settled = serde_json::from_value(settled).map_err(|e| CaptureError::Script {
            url: url.to_string(),
            reason: format!("bad measurement: {e}"),
        })?;
        check_landed(req, &measure.url)?;
        let (height, truncated) = capped_height(measure.height, opts.max_height);
        let width = req.viewport.width;
        let mask_rects = opts
            .mask_selectors
            .iter()
            .zip(measure.masks.iter())
            .map(|(sel, rects)| SelectorRects {
                selector: sel.clone(),
                rects: rects.iter().filter_map(|r| clip_rect(*r, width, height)).collect(),
            })
            .collect();
        let settle_ms = elapsed_ms(t1);

        // Shots until two consecutive ones are identical (bounded).
        let t2 = Instant::now();
        let Some(mut png) = screenshot(session, req, width, height, last).await? else { continue };
        let mut shots = 1;
        let mut unstable: Option<(u64, Rect)> = None;
        let mut changed_bounds: Option<Rect> = None;
        let reproduced = req.expected_png.is_some_and(|h| *blake3::hash(&png).as_bytes() == h);
        while shots < MAX_SHOTS && !reproduced {
            let Some(next) = screenshot(session, req, width, height, last).await? else { continue 'settle };
            shots += 1;
            let prev = std::mem::replace(&mut png, next);
            let cur = png.clone();
            let diff = tokio::task::spawn_blocking(move || shot_difference(&prev, &cur))
                .await
                .map_err(|e| CaptureError::Screenshot { url: url.to_string(), reason: e.to_string() })?;
            match diff {
                None => {
                    unstable = None;
                    break;
                }
                Some((pixels, rect)) => {
                    changed_bounds = Some(match changed_bounds {
                        Some(b) => union_rect(b, rect),
                        None => rect,
                    });
                    unstable = Some((pixels, rect));
                }
            }
        }
        let (png_width, png_height) = png_size(&png)
            .ok_or_else(|| CaptureError::Screenshot { url: url.to_string(), reason: "not a PNG".into() })?;
        let screenshot_ms = elapsed_ms(t2);

        let after = match run_script(session, url, settle_timeout, Script::sync(HTML_JS)).await {
            // The document went away under the read (DevTools connection): settle the new one.
            Err(CaptureError::Script { .. }) if !last => continue,
            other => other?,
        };
        if after.get("settled").and_then(Value::as_bool) != Some(true) && !last {
            // Navigated while we were shooting: the picture may mix two documents.
            continue;
        }
        let html = after.get("html").and_then(Value::as_str).unwrap_or_default().to_string();
        let final_url = match after.get("url").and_then(Value::as_str).and_then(|u| Url::parse(u).ok()) {
            Some(u) => u,
            None => bounded(session.client.current_url()).await.map_err(|e| script_err(e.into()))?,
        };
        let final_url = without_credentials(&final_url);
        ensure_in_scope(req, &final_url)?;
        let blocked_navigations = after
            .get("blocked")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let title = Some(measure.title).filter(|t| !t.is_empty());

        return Ok(Capture {
            png,
            width: png_width,
            height: png_height,
            html,
            title,
            final_url,
            mask_rects,
            truncated,
            unstable_area: unstable.map(|(pixels, _)| pixels),
            unstable_rect: unstable.and(changed_bounds),
            blocked_navigations,
            timing: CaptureTiming { navigate_ms, settle_ms, screenshot_ms, shots },
        });
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The document-start script for a site prefix.
pub fn doc_start_js(prefix: &Url) -> String {
    DOC_START_JS
        .replace("__PREFIX__", &json!(prefix.as_str()).to_string())
        .replace("__LONG_TIMER_MS__", &ms(LONG_TIMER).to_string())
}

/// Session state for this request's site: navigation guard, user agent, extra headers, blocked
/// URLs (DevTools), cookies. On a W3C-only endpoint the DevTools-only options are refused.
async fn prepare(session: &mut BrowserSession, req: &CaptureRequest) -> Result<(), CaptureError> {
    let url = req.url.as_str();
    let opts = &req.options;
    let script_err = |e: CommandError| CaptureError::Script { url: url.to_string(), reason: e.to_string() };
    if session.cdp != CdpSupport::Yes {
        let unsupported = |option| CaptureError::Unsupported { url: url.to_string(), option };
        if !opts.headers.is_empty() {
            return Err(unsupported("headers"));
        }
        if !opts.block_urls.is_empty() {
            return Err(unsupported("block_urls"));
        }
        if opts.user_agent.is_some() {
            return Err(unsupported("user_agent"));
        }
        return Ok(());
    }
    let prefix = req.scope.prefix();
    if session.setup.guard.as_ref().map(|(p, _)| p.as_str()) != Some(prefix.as_str()) {
        if let Some((_, id)) = session.setup.guard.take() {
            session
                .cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", json!({ "identifier": id }))
                .await
                .map_err(script_err)?;
        }
        let v = session
            .cdp_cmd("Page.addScriptToEvaluateOnNewDocument", json!({ "source": doc_start_js(prefix) }))
            .await
            .map_err(script_err)?;
        let id = v.get("identifier").and_then(Value::as_str).unwrap_or_default().to_string();
        session.setup.guard = Some((prefix.to_string(), id));
    }
    if session.setup.cache_cleared.is_none_or(|t| t < req.sweep_started) {
        session.cdp_cmd("Network.clearBrowserCache", json!({})).await.map_err(script_err)?;
        session.setup.cache_cleared = Some(Instant::now());
    }
    if session.setup.user_agent != opts.user_agent {
        // An empty user agent removes the override.
        let ua = opts.user_agent.clone().unwrap_or_default();
        session
            .cdp_cmd("Emulation.setUserAgentOverride", json!({ "userAgent": ua }))
            .await
            .map_err(script_err)?;
        session.setup.user_agent = opts.user_agent.clone();
    }
    if session.setup.headers != opts.headers || session.setup.block_urls != opts.block_urls {
        if !session.setup.network_enabled {
            // Extra headers and URL blocking only act with the Network domain enabled.
            session.cdp_cmd("Network.enable", json!({})).await.map_err(script_err)?;
            session.setup.network_enabled = true;
        }
        let headers: serde_json::Map<String, Value> =
            opts.headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        session
            .cdp_cmd("Network.setExtraHTTPHeaders", json!({ "headers": headers }))
            .await
            .map_err(script_err)?;
        session
            .cdp_cmd("Network.setBlockedURLs", json!({ "urls": opts.block_urls }))
            .await
            .map_err(script_err)?;
        session.setup.headers = opts.headers.clone();
        session.setup.block_urls = opts.block_urls.clone();
    }
    if !opts.cookies.is_empty() {
        let cookies: Vec<Value> = opts
            .cookies
            .iter()
            .map(|c| json!({ "name": c.name, "value": c.value, "url": req.scope.prefix().as_str() }))
            .collect();
        session.cdp_cmd("Network.setCookies", json!({ "cookies": cookies })).await.map_err(script_err)?;
    }
    Ok(())
}

/// W3C fallback for cookies: add them once per origin, on a document of that origin. Returns
/// whether they were just added (the page must then be loaded again to send them).
async fn w3c_add_cookies(session: &mut BrowserSession, req: &CaptureRequest) -> Result<bool, CaptureError> {
    let opts = &req.options;
    let origin = req.url.origin().ascii_serialization();
    if opts.cookies.is_empty() || session.setup.cookie_origins.contains(&origin) {
        return Ok(false);
    }
    for c in &opts.cookies {
        let cmd = W3cAddCookie { name: c.name.clone(), value: c.value.clone() };
        bounded(session.client.issue_cmd(cmd)).await.map_err(|e| CaptureError::Script {
            url: req.url.to_string(),
            reason: format!("cookie {}: {e}", c.name),
        })?;
    }
    session.setup.cookie_origins.insert(origin);
    Ok(true)
}

/// W3C fallback for the navigation guard: installed once the page has loaded (navigations the
/// page starts during its load are caught only by the location checks).
async fn install_guard_late(session: &BrowserSession, req: &CaptureRequest) -> Result<(), CaptureError> {
    let js = doc_start_js(req.scope.prefix());
    run_script(session, req.url.as_str(), MIN_SCRIPT_TIMEOUT, Script::sync(&js)).await.map(|_| ())
}

/// Where the browser is now must be inside the prefix (a redirect may have taken it out).
async fn check_location(
    session: &BrowserSession,
    req: &CaptureRequest,
    timeout: Duration,
) -> Result<(), CaptureError> {
    let here = run_script(session, req.url.as_str(), timeout, Script::sync(LOCATION_JS)).await?;
    check_landed(req, here.as_str().unwrap_or_default())
}

/// `here` (the document's URL as the page reports it) must be a web page inside the prefix.
fn check_landed(req: &CaptureRequest, here: &str) -> Result<(), CaptureError> {
    match Url::parse(here).ok() {
        // Chromium shows `chrome-error://chromewebdata/` when a load fails (e.g. auth refused).
        Some(u) if !matches!(u.scheme(), "http" | "https") => Err(CaptureError::Navigate {
            url: req.url.to_string(),
            reason: format!("the browser shows an error page ({u})"),
        }),
        Some(u) => ensure_in_scope(req, &without_credentials(&u)),
        None => Ok(()),
    }
}

fn ensure_in_scope(req: &CaptureRequest, landed: &Url) -> Result<(), CaptureError> {
    if req.scope.contains(&normalize_url(landed)) {
        Ok(())
    } else {
        Err(CaptureError::OffPrefix {
            url: req.url.to_string(),
            prefix: req.scope.prefix().to_string(),
            landed: landed.to_string(),
        })
    }
}

/// `u` without user name and password.
fn without_credentials(u: &Url) -> Url {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u
}

/// The URL the browser is sent to: with basic auth credentials when configured (the browser then
/// answers the origin's auth challenges, for that origin only).
fn navigation_url(req: &CaptureRequest) -> Url {
    let mut u = req.url.clone();
    if let Some(auth) = &req.options.basic_auth {
        let _ = u.set_username(&auth.user);
        let _ = u.set_password(Some(&auth.password));
    }
    u
}

/// Pixels that differ between two PNG shots and their bounding box; `None` when identical.
/// Shots that cannot be decoded or differ in size count as changed everywhere.
pub fn shot_difference(a: &[u8], b: &[u8]) -> Option<(u64, Rect)> {
    if a == b {
        return None;
    }
    let (Ok(ia), Ok(ib)) = (decode_png(a, "shot"), decode_png(b, "shot")) else {
        let (w, h) = png_size(b).unwrap_or((0, 0));
        return Some((u64::from(w) * u64::from(h), Rect { x: 0, y: 0, width: w, height: h }));
    };
    if (ia.width, ia.height) != (ib.width, ib.height) {
        let (w, h) = (ia.width.max(ib.width), ia.height.max(ib.height));
        return Some((u64::from(w) * u64::from(h), Rect { x: 0, y: 0, width: w, height: h }));
    }
    let w = ia.width as usize;
    let (mut n, mut x0, mut y0, mut x1, mut y1) = (0u64, usize::MAX, usize::MAX, 0usize, 0usize);
    for (i, (pa, pb)) in ia.data.chunks_exact(4).zip(ib.data.chunks_exact(4)).enumerate() {
        if pa != pb {
            let (x, y) = (i % w, i / w);
            n += 1;
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (n > 0).then(|| {
        (n, Rect { x: x0 as u32, y: y0 as u32, width: (x1 - x0 + 1) as u32, height: (y1 - y0 + 1) as u32 })
    })
}

fn union_rect(a: Rect, b: Rect) -> Rect {
    let x = a.x.min(b.x);
    let y = a.y.min(b.y);
    let right = (a.x + a.width).max(b.x + b.width);
    let bottom = (a.y + a.height).max(b.y + b.height);
    Rect { x, y, width: right - x, height: bottom - y }
}

/// What [`SETTLE_JS`] calls back with.
#[derive(Debug, Deserialize)]
struct Settled {
    /// The document's URL.
    url: String,
    height: f64,
    /// Per selector: `[x, y, width, height]` in page CSS px.
    masks: Vec<Vec<[f64; 4]>>,
    #[serde(default)]
    title: String,
}

async fn set_viewport(session: &mut BrowserSession, vp: Viewport) -> Result<(), CommandError> {
    if session.cdp != CdpSupport::No {
        let params = json!({
            "width": vp.width, "height": vp.height,
            "deviceScaleFactor": DEVICE_SCALE_FACTOR, "mobile": false,
        });
        match session.cdp_cmd("Emulation.setDeviceMetricsOverride", params).await {
            Ok(_) => {
                session.cdp = CdpSupport::Yes;
                // Best effort: overlay scrollbars off the layout too (CSS hides them as well).
                let _ = session.cdp_cmd("Emulation.setScrollbarsHidden", json!({ "hidden": true })).await;
                return Ok(());
            }
            Err(CommandError::WebDriver(e)) if is_no_cdp(&e) => {
                tracing::debug!(error = %e, "no DevTools passthrough; using window-resize fallbacks");
                session.cdp = CdpSupport::No;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(resize_viewport(&session.client, vp.width, vp.height).await?)
}

/// Size the window so that the *viewport* is `width` x `height` (W3C only: resize, measure the
/// browser chrome, correct).
async fn resize_viewport(client: &Client, width: u32, height: u32) -> Result<(), CmdError> {
    bounded(client.set_window_size(width, height)).await?;
    let inner = bounded(client.execute(INNER_SIZE_JS, vec![])).await?;
    let iw = inner.get(0).and_then(Value::as_f64).unwrap_or(f64::from(width));
    let ih = inner.get(1).and_then(Value::as_f64).unwrap_or(f64::from(height));
    let dw = (f64::from(width) - iw).max(0.0).round() as u32;
    let dh = (f64::from(height) - ih).max(0.0).round() as u32;
    if dw > 0 || dh > 0 {
        bounded(client.set_window_size(width + dw, height + dh)).await?;
    }
    Ok(())
}

async fn navigate(session: &mut BrowserSession, req: &CaptureRequest) -> Result<(), CaptureError> {
    let url = req.url.as_str();
    let timeout = req.options.page_timeout;
    let timed_out = || CaptureError::Timeout { url: url.to_string(), timeout };
    let target = navigation_url(req);
    if let Some(dt) = &session.devtools {
        return match dt.navigate(target.as_str(), timeout).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_timeout() => Err(timed_out()),
            Err(e) => Err(CaptureError::Navigate { url: url.to_string(), reason: e.to_string() }),
        };
    }
    let nav = tokio::time::timeout(timeout + NAVIGATION_GRACE, session.client.goto(target.as_str())).await;
    match nav {
        Err(_) => Err(timed_out()),
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if is_timeout(&e) => Err(timed_out()),
        Ok(Err(e)) if e.is_unexpected_alert_open() => dismiss_dialogs(session, url).await,
        Ok(Err(e)) => Err(CaptureError::Navigate { url: url.to_string(), reason: e.to_string() }),
    }
}

/// Dismiss open `alert()`/`confirm()`/`prompt()` dialogs (up to [`MAX_DIALOGS`]).
async fn dismiss_dialogs(session: &BrowserSession, url: &str) -> Result<(), CaptureError> {
    for _ in 0..MAX_DIALOGS {
        match bounded(session.client.dismiss_alert()).await {
            Ok(()) => continue,
            Err(e) if e.is_no_such_alert() => return Ok(()),
            Err(e) => return Err(CaptureError::Navigate { url: url.to_string(), reason: e.to_string() }),
        }
    }
    Ok(())
}

/// A WebDriver-style page script: its body, its arguments, how it hands back its result.
struct Script<'s> {
    body: &'s str,
    args: Vec<Value>,
    kind: ScriptKind,
}

impl<'s> Script<'s> {
    fn sync(body: &'s str) -> Script<'s> {
        Script { body, args: Vec::new(), kind: ScriptKind::Sync }
    }
}

/// Run `script` in the page: over the session's DevTools connection (which dismisses dialogs as
/// they open), else through WebDriver, dismissing dialogs that interrupt it.
async fn run_script(
    session: &BrowserSession,
    url: &str,
    timeout: Duration,
    script: Script<'_>,
) -> Result<Value, CaptureError> {
    if let Some(dt) = &session.devtools {
        return dt.run_script(script.body, &script.args, script.kind, timeout).await.map_err(|e| {
            if e.is_timeout() {
                CaptureError::Timeout { url: url.to_string(), timeout }
            } else {
                CaptureError::Script { url: url.to_string(), reason: e.to_string() }
            }
        });
    }
    let client = &session.client;
    for _ in 0..MAX_DIALOGS {
        let run = match script.kind {
            ScriptKind::Sync => bounded(client.execute(script.body, script.args.clone())).await,
            ScriptKind::Async => bounded(client.execute_async(script.body, script.args.clone())).await,
        };
        match run {
            Ok(v) => return Ok(v),
            Err(e) if e.is_unexpected_alert_open() => dismiss_dialogs(session, url).await?,
            Err(e) if is_timeout(&e) => return Err(CaptureError::Timeout { url: url.to_string(), timeout }),
            Err(e) => return Err(CaptureError::Script { url: url.to_string(), reason: e.to_string() }),
        }
    }
    Err(CaptureError::Script { url: url.to_string(), reason: "page keeps opening dialogs".into() })
}

/// A full-page shot, or `None` when the page started loading another document first (over the
/// session's DevTools connection; on the `last` settle attempt that is an error).
async fn screenshot(
    session: &mut BrowserSession,
    req: &CaptureRequest,
    width: u32,
    height: u32,
    last: bool,
) -> Result<Option<Vec<u8>>, CaptureError> {
    let url = req.url.as_str();
    let shot_err = |e: CommandError| CaptureError::Screenshot { url: url.to_string(), reason: e.to_string() };
    if session.cdp == CdpSupport::Yes {
        let params = json!({
            "format": "png",
            // zlib level 1: encoding is most of the browser's CPU for a shot; the PNG is ~25% larger.
            "optimizeForSpeed": true,
            "captureBeyondViewport": true,
            "fromSurface": true,
            "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
        });
        let v = match &session.devtools {
            Some(dt) => match dt.call_in_document("Page.captureScreenshot", params, COMMAND_TIMEOUT).await {
                Err(DevToolsError::Navigated) if !last => return Ok(None),
                other => other.map_err(|e| shot_err(e.into()))?,
            },
            None => session.cdp_cmd("Page.captureScreenshot", params).await.map_err(shot_err)?,
        };
        let data = v.get("data").and_then(Value::as_str).ok_or_else(|| CaptureError::Screenshot {
            url: url.to_string(),
            reason: "Page.captureScreenshot returned no data".into(),
        })?;
        return base64::engine::general_purpose::STANDARD.decode(data).map(Some).map_err(|e| {
            CaptureError::Screenshot {
                url: url.to_string(),
                reason: format!("bad base64 from Page.captureScreenshot: {e}"),
            }
        });
    }
    // W3C fallback: grow the viewport to the full height, shoot, then restore the viewport.
    resize_viewport(&session.client, width, height).await.map_err(|e| shot_err(e.into()))?;
    let shot = bounded(session.client.screenshot()).await.map_err(|e| shot_err(e.into()));
    let restore = resize_viewport(&session.client, req.viewport.width, req.viewport.height).await;
    if restore.is_err() {
        session.viewport = None;
    }
    shot.map(Some)
}

/// The CSS injected before the shot: freezing rules, the site's CSS, then hiding and removing rules.
pub fn page_css(inject_css: &str, hide_selectors: &[String], remove_selectors: &[String]) -> String {
    let mut css = String::from(FREEZE_CSS);
    css.push_str(inject_css);
    css.push('\n');
    // One rule per selector: an invalid selector only drops its own rule.
    for sel in hide_selectors {
        css.push_str(sel);
        css.push_str(" { visibility: hidden !important; }\n");
    }
    for sel in remove_selectors {
        css.push_str(sel);
        css.push_str(" { display: none !important; }\n");
    }
    css
}

/// The height to capture and whether the page was cut to `max_height`.
pub fn capped_height(page_height: f64, max_height: u32) -> (u32, bool) {
    let h = if page_height.is_finite() && page_height > 0.0 { page_height.ceil() } else { 0.0 };
    let max = f64::from(max_height.max(MIN_CAPTURE_HEIGHT));
    if h > max {
        (max_height.max(MIN_CAPTURE_HEIGHT), true)
    } else {
        ((h as u32).max(MIN_CAPTURE_HEIGHT), false)
    }
}

/// A measured rectangle (`[x, y, w, h]`, page CSS px) as whole pixels clipped to the captured area;
/// `None` when nothing of it is inside (or it has no size).
pub fn clip_rect(r: [f64; 4], page_width: u32, page_height: u32) -> Option<Rect> {
    let [x, y, w, h] = r;
    if ![x, y, w, h].iter().all(|v| v.is_finite()) || w <= 0.0 || h <= 0.0 {
        return None;
    }
    let left = x.floor().max(0.0);
    let top = y.floor().max(0.0);
    let right = (x + w).ceil().min(f64::from(page_width));
    let bottom = (y + h).ceil().min(f64::from(page_height));
    if right <= left || bottom <= top {
        return None;
    }
    Some(Rect { x: left as u32, y: top as u32, width: (right - left) as u32, height: (bottom - top) as u32 })
}

/// Width and height from a PNG's IHDR chunk.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 24 || &png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let h = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    Some((w, h))
}

fn elapsed_ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_height_truncates_and_floors() {
        assert_eq!(capped_height(6000.0, 30_000), (6000, false));
        assert_eq!(capped_height(6000.4, 30_000), (6001, false));
        assert_eq!(capped_height(40_000.0, 30_000), (30_000, true));
        assert_eq!(capped_height(0.0, 30_000), (1, false));
        assert_eq!(capped_height(f64::NAN, 100), (1, false));
    }

    #[test]
    fn clip_rect_clips_rounds_and_drops() {
        assert_eq!(
            clip_rect([10.0, 20.0, 30.0, 40.0], 800, 600),
            Some(Rect { x: 10, y: 20, width: 30, height: 40 })
        );
        assert_eq!(
            clip_rect([10.5, 20.5, 30.0, 40.0], 800, 600),
            Some(Rect { x: 10, y: 20, width: 31, height: 41 })
        );
        assert_eq!(
            clip_rect([-10.0, 590.0, 30.0, 40.0], 800, 600),
            Some(Rect { x: 0, y: 590, width: 20, height: 10 })
        );
        assert_eq!(clip_rect([10.0, 20.0, 0.0, 40.0], 800, 600), None);
        assert_eq!(clip_rect([900.0, 20.0, 10.0, 10.0], 800, 600), None);
        assert_eq!(clip_rect([10.0, 700.0, 10.0, 10.0], 800, 600), None);
    }

    #[test]
    fn png_size_reads_ihdr() {
        let mut buf = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut buf, 3, 7);
            enc.set_color(png::ColorType::Rgba);
            let mut w = enc.write_header().unwrap();
            w.write_image_data(&[0u8; 3 * 7 * 4]).unwrap();
        }
        assert_eq!(png_size(&buf), Some((3, 7)));
        assert_eq!(png_size(b"not a png at all, really not"), None);
    }

    #[test]
    fn page_css_has_one_rule_per_hidden_selector() {
        let css = page_css("body{color:red}", &[".a".into(), "#b > c".into()], &[".gone".into()]);
        assert!(css.starts_with(FREEZE_CSS));
        assert!(css.contains("body{color:red}"));
        assert!(css.contains(".a { visibility: hidden !important; }\n"));
        assert!(css.contains("#b > c { visibility: hidden !important; }\n"));
        assert!(css.contains(".gone { display: none !important; }\n"));
    }
}
