//! One capture on one WebDriver session: exact viewport, navigation with a timeout, stabilisation
//! (load, fonts, frozen animations, injected/hiding CSS), measurements, full-page PNG, rendered HTML.

use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::wd::{TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::Client;
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::{Capture, CaptureError, CaptureRequest, CaptureTiming, SelectorRects};
use crate::config::Viewport;
use crate::diff::Rect;

/// Extra time on top of the page timeout before we stop waiting for chromedriver's own answer.
const NAVIGATION_GRACE: Duration = Duration::from_secs(5);
/// Upper bound for the stabilisation script (load event, fonts, two frames) when the page
/// timeout is longer.
const MAX_SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Lower bound for the stabilisation and measurement scripts, however short the page timeout.
const MIN_SCRIPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on each WebDriver command that is not a navigation (scripts, screenshot, resize).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times a page that keeps navigating by itself is settled again before we shoot anyway.
const MAX_SETTLE_ATTEMPTS: u32 = 3;
/// How long stabilisation waits for images still loading (lazy ones included).
const IMAGE_WAIT: Duration = Duration::from_secs(5);
/// How long stabilisation waits for two animation frames before going on anyway.
const FRAME_WAIT: Duration = Duration::from_millis(500);
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

/// Waits for `load`, `document.fonts.ready` and images (lazy ones made eager; at most argument 1
/// ms), applies the style sheet given as argument 0, cancels script-driven animations, blurs the
/// focused element, scrolls to the top and waits two frames (at most argument 2 ms). Calls back `{ok: true}` or `{error: "..."}`.
const SETTLE_JS: &str = r#"
const [css, imageWaitMs, frameWaitMs] = arguments;
const done = arguments[arguments.length - 1];
const sleep = ms => new Promise(r => setTimeout(r, ms));
(async () => {
  if (document.readyState !== 'complete') {
    await new Promise(r => window.addEventListener('load', r, { once: true }));
  }
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  // Lazy images below the fold would be missing (or half there) in a full-page shot.
  const pending = [];
  for (const img of document.images) {
    if (img.loading === 'lazy') { img.loading = 'eager'; }
    if (!img.complete) {
      pending.push(new Promise(r => {
        img.addEventListener('load', r, { once: true });
        img.addEventListener('error', r, { once: true });
      }));
    }
  }
  if (pending.length) { await Promise.race([Promise.all(pending), sleep(imageWaitMs)]); }
  const style = document.createElement('style');
  style.setAttribute('data-sitediff', '');
  style.textContent = css;
  (document.head || document.documentElement).appendChild(style);
  if (document.getAnimations) {
    for (const a of document.getAnimations()) { try { a.cancel(); } catch (e) {} }
  }
  for (const v of document.querySelectorAll('video, audio')) { try { v.pause(); v.currentTime = 0; } catch (e) {} }
  if (document.activeElement && document.activeElement !== document.body && document.activeElement.blur) {
    document.activeElement.blur();
  }
  window.scrollTo(0, 0);
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  await Promise.race([frame().then(frame), sleep(frameWaitMs)]);
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  window.__sitediffSettled = true;
  done({ ok: true });
})().catch(e => done({ error: String((e && e.message) || e) }));
"#;

/// Measures the page (argument 0: the mask selectors). Returns [`Measure`] as JSON.
const MEASURE_JS: &str = r#"
const sels = arguments[0];
const de = document.documentElement, b = document.body;
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
return { height, settled: window.__sitediffSettled === true, masks, title: document.title };
"#;

/// The rendered DOM, the document's URL, and whether the settle script ran on this document.
const HTML_JS: &str = "return { settled: window.__sitediffSettled === true, url: location.href, \
    html: document.documentElement ? document.documentElement.outerHTML : '' };";
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

/// Whether the endpoint can pass DevTools commands through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CdpSupport {
    /// Not tried yet.
    Unknown,
    Yes,
    /// A W3C-only endpoint: window-resize fallbacks are used.
    No,
}

/// One WebDriver session plus what we already set up on it.
#[derive(Debug)]
pub struct BrowserSession {
    pub client: Client,
    cdp: CdpSupport,
    viewport: Option<Viewport>,
    page_timeout: Option<Duration>,
}

impl BrowserSession {
    pub fn new(client: Client) -> BrowserSession {
        BrowserSession { client, cdp: CdpSupport::Unknown, viewport: None, page_timeout: None }
    }

    /// Whether DevTools passthrough works on this session (known after the first capture).
    pub fn cdp(&self) -> CdpSupport {
        self.cdp
    }

    async fn cdp_cmd(&self, cmd: &'static str, params: Value) -> Result<Value, CmdError> {
        bounded(self.client.issue_cmd(Cdp { cmd, params })).await
    }

    /// Close the WebDriver session (quits its browser).
    pub async fn close(self) {
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
    let script_err = |e: CmdError| CaptureError::Script { url: url.to_string(), reason: e.to_string() };

    // Viewport and timeouts are session state: set them only when they change.
    if session.viewport != Some(req.viewport) {
        set_viewport(session, req.viewport).await.map_err(script_err)?;
        session.viewport = Some(req.viewport);
    }
    let settle_timeout =
        opts.page_timeout.clamp(MIN_SCRIPT_TIMEOUT, MAX_SETTLE_TIMEOUT.max(MIN_SCRIPT_TIMEOUT));
    if session.page_timeout != Some(opts.page_timeout) {
        let t =
            TimeoutConfiguration::new(Some(settle_timeout), Some(opts.page_timeout), Some(Duration::ZERO));
        bounded(session.client.update_timeouts(t)).await.map_err(script_err)?;
        session.page_timeout = Some(opts.page_timeout);
    }

    // Navigate.
    let t0 = Instant::now();
    navigate(session, req).await?;
    let navigate_ms = elapsed_ms(t0);

    // Stabilise, measure, shoot. A page that navigates on its own (script or meta refresh) after
    // load is settled again on its new document, a bounded number of times.
    let css = page_css(&opts.inject_css, &opts.hide_selectors);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= MAX_SETTLE_ATTEMPTS;
        let t1 = Instant::now();
        let settled = run_script(session, url, settle_timeout, |c| {
            let args =
                vec![json!(css), json!(IMAGE_WAIT.as_millis() as u64), json!(FRAME_WAIT.as_millis() as u64)];
            c.execute_async(SETTLE_JS, args)
        })
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
        let measured = run_script(session, url, settle_timeout, |c| {
            c.execute(MEASURE_JS, vec![json!(opts.mask_selectors)])
        })
        .await?;
        if let Some(sel) = measured.get("invalid_selector").and_then(Value::as_str) {
            return Err(CaptureError::Script {
                url: url.to_string(),
                reason: format!("invalid mask selector {sel:?}"),
            });
        }
        let measure: Measure = serde_json::from_value(measured).map_err(|e| CaptureError::Script {
            url: url.to_string(),
            reason: format!("bad measurement: {e}"),
        })?;
        if !measure.settled && !last {
            continue;
        }
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

        let t2 = Instant::now();
        let png = screenshot(session, req, width, height).await?;
        let (png_width, png_height) = png_size(&png)
            .ok_or_else(|| CaptureError::Screenshot { url: url.to_string(), reason: "not a PNG".into() })?;
        let screenshot_ms = elapsed_ms(t2);

        let after = run_script(session, url, settle_timeout, |c| c.execute(HTML_JS, vec![])).await?;
        if after.get("settled").and_then(Value::as_bool) != Some(true) && !last {
            // Navigated while we were shooting: the picture may mix two documents.
            continue;
        }
        let html = after.get("html").and_then(Value::as_str).unwrap_or_default().to_string();
        let final_url = match after.get("url").and_then(Value::as_str).and_then(|u| Url::parse(u).ok()) {
            Some(u) => u,
            None => bounded(session.client.current_url()).await.map_err(script_err)?,
        };
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
            timing: CaptureTiming { navigate_ms, settle_ms, screenshot_ms },
        });
    }
}

/// What [`MEASURE_JS`] returns.
#[derive(Debug, Deserialize)]
struct Measure {
    height: f64,
    /// The settle script ran on this document (false: the page navigated since).
    settled: bool,
    /// Per selector: `[x, y, width, height]` in page CSS px.
    masks: Vec<Vec<[f64; 4]>>,
    #[serde(default)]
    title: String,
}

async fn set_viewport(session: &mut BrowserSession, vp: Viewport) -> Result<(), CmdError> {
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
            Err(e) if is_no_cdp(&e) => {
                tracing::debug!(error = %e, "no DevTools passthrough; using window-resize fallbacks");
                session.cdp = CdpSupport::No;
            }
            Err(e) => return Err(e),
        }
    }
    resize_viewport(&session.client, vp.width, vp.height).await
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
    let nav = tokio::time::timeout(timeout + NAVIGATION_GRACE, session.client.goto(url)).await;
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

/// Run a script, dismissing dialogs that block it (a page may `alert()` at any time).
async fn run_script<'a, F, Fut>(
    session: &'a BrowserSession,
    url: &str,
    timeout: Duration,
    f: F,
) -> Result<Value, CaptureError>
where
    F: Fn(&'a Client) -> Fut,
    Fut: std::future::Future<Output = Result<Value, CmdError>>,
{
    for _ in 0..MAX_DIALOGS {
        match bounded(f(&session.client)).await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_unexpected_alert_open() => dismiss_dialogs(session, url).await?,
            Err(e) if is_timeout(&e) => return Err(CaptureError::Timeout { url: url.to_string(), timeout }),
            Err(e) => return Err(CaptureError::Script { url: url.to_string(), reason: e.to_string() }),
        }
    }
    Err(CaptureError::Script { url: url.to_string(), reason: "page keeps opening dialogs".into() })
}

async fn screenshot(
    session: &mut BrowserSession,
    req: &CaptureRequest,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, CaptureError> {
    let url = req.url.as_str();
    let shot_err = |e: CmdError| CaptureError::Screenshot { url: url.to_string(), reason: e.to_string() };
    if session.cdp == CdpSupport::Yes {
        let params = json!({
            "format": "png",
            "captureBeyondViewport": true,
            "fromSurface": true,
            "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
        });
        let v = session.cdp_cmd("Page.captureScreenshot", params).await.map_err(shot_err)?;
        let data = v.get("data").and_then(Value::as_str).ok_or_else(|| CaptureError::Screenshot {
            url: url.to_string(),
            reason: "Page.captureScreenshot returned no data".into(),
        })?;
        return base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| {
            CaptureError::Screenshot {
                url: url.to_string(),
                reason: format!("bad base64 from Page.captureScreenshot: {e}"),
            }
        });
    }
    // W3C fallback: grow the viewport to the full height, shoot, then restore the viewport.
    resize_viewport(&session.client, width, height).await.map_err(shot_err)?;
    let shot = bounded(session.client.screenshot()).await.map_err(shot_err);
    let restore = resize_viewport(&session.client, req.viewport.width, req.viewport.height).await;
    if restore.is_err() {
        session.viewport = None;
    }
    shot
}

/// The CSS injected before the shot: freezing rules, the site's CSS, then hiding rules.
pub fn page_css(inject_css: &str, hide_selectors: &[String]) -> String {
    let mut css = String::from(FREEZE_CSS);
    css.push_str(inject_css);
    css.push('\n');
    for sel in hide_selectors {
        // One rule per selector: an invalid selector only drops its own rule.
        css.push_str(sel);
        css.push_str(" { visibility: hidden !important; }\n");
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
        let css = page_css("body{color:red}", &[".a".into(), "#b > c".into()]);
        assert!(css.starts_with(FREEZE_CSS));
        assert!(css.contains("body{color:red}"));
        assert!(css.contains(".a { visibility: hidden !important; }\n"));
        assert!(css.contains("#b > c { visibility: hidden !important; }\n"));
    }
}
