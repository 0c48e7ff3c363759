//! One capture on one browser session, step by step: set the session up for the site (viewport,
//! timeouts, navigation guard, user agent, headers, blocked URLs, cookies), navigate, settle and
//! measure, shoot until two consecutive shots agree, read the rendered DOM. A page that navigates
//! on its own while this runs is settled again on its new document, a bounded number of times.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use url::Url;

use super::error::CaptureError;
use super::fingerprint::{self, CaptureInputs, Environment};
use super::geometry::{capped_height, clip_rect, png_size, shot_difference, tiles, union_rect, TILE_HEIGHT};
use super::scripts::{self, Script, Settled};
use super::session::{BrowserSession, CdpSupport, CommandError, SiteRequestsKey};
use super::types::{Capture, CaptureRequest, CaptureTiming, SelectorRects};
use crate::crawl::links::normalize_url;
use crate::diff::Rect;

/// Upper bound for the stabilisation script when the page timeout is longer.
const MAX_SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Lower bound for the stabilisation and measurement scripts, however short the page timeout.
const MIN_SCRIPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a page that keeps navigating by itself is settled again before we shoot anyway.
const MAX_SETTLE_ATTEMPTS: u32 = 3;
/// Most screenshots taken looking for two identical consecutive ones.
pub const MAX_SHOTS: u32 = 4;

/// Photograph one page on `session`.
pub async fn capture_page(
    session: &mut BrowserSession,
    req: &CaptureRequest,
) -> Result<Capture, CaptureError> {
    let opts = &req.options;
    let settle_timeout =
        opts.page_timeout.clamp(MIN_SCRIPT_TIMEOUT, MAX_SETTLE_TIMEOUT.max(MIN_SCRIPT_TIMEOUT));
    set_up(session, req, settle_timeout).await?;

    session.record_network();
    let t0 = Instant::now();
    load(session, req, settle_timeout).await?;
    let navigate_ms = elapsed_ms(t0);

    // Stabilise, measure, shoot. A page that navigates on its own (inside the prefix) after load is
    // settled again on its new document, a bounded number of times: the last attempt shoots anyway.
    let css = scripts::page_css(&opts.inject_css, &opts.hide_selectors, &opts.remove_selectors);
    let mut attempt = 1;
    loop {
        let last = attempt >= MAX_SETTLE_ATTEMPTS;
        if let Some(mut capture) = capture_document(session, req, &css, settle_timeout, last).await? {
            let timing = CaptureTiming { navigate_ms, ..capture.timing };
            if let Some(inputs) = capture.inputs.as_mut().filter(|_| attempt > 1) {
                inputs.dynamic.push("navigated-by-itself".into());
            }
            return Ok(Capture { timing, ..capture });
        }
        attempt += 1;
    }
}

/// Session state for this request: viewport and WebDriver timeouts (set only when they change),
/// then the site's DevTools set-up ([`prepare`]).
async fn set_up(
    session: &mut BrowserSession,
    req: &CaptureRequest,
    settle_timeout: Duration,
) -> Result<(), CaptureError> {
    let url = req.url.as_str();
    if session.viewport != Some(req.viewport) {
        session.set_viewport(req.viewport).await.map_err(setup_err(url, "setting the viewport"))?;
        session.viewport = Some(req.viewport);
    }
    let page_timeout = req.options.page_timeout;
    if !session.has_devtools() && session.page_timeout != Some(page_timeout) {
        session
            .set_timeouts(settle_timeout, page_timeout)
            .await
            .map_err(setup_err(url, "setting timeouts"))?;
        session.page_timeout = Some(page_timeout);
    }
    // Navigation guard, user agent, headers, blocked URLs, cookies: before the page loads.
    prepare(session, req).await
}

/// Session state for this request's site: navigation guard, user agent, extra headers and basic
/// auth (for the site's origin only), blocked URLs (DevTools), cookies. On a W3C-only endpoint the
/// DevTools-only options are refused; without the session's own DevTools connection, headers and
/// basic auth are.
async fn prepare(session: &mut BrowserSession, req: &CaptureRequest) -> Result<(), CaptureError> {
    let url = req.url.as_str();
    let opts = &req.options;
    let setup_err = |step| setup_err(url, step);
    let site_requests = site_requests(req);
    if site_requests.is_some() && !session.has_devtools() {
        let option = if opts.headers.is_empty() { "basic_auth" } else { "headers" };
        return Err(CaptureError::SiteOnly { url: url.to_string(), option });
    }
    session.intercept(site_requests).await.map_err(setup_err("intercepting the site's requests"))?;
    if session.cdp() != CdpSupport::Yes {
        let unsupported = |option| CaptureError::Unsupported { url: url.to_string(), option };
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
        let step = "installing the navigation guard";
        if let Some((_, id)) = session.setup.guard.take() {
            session
                .cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", json!({ "identifier": id }))
                .await
                .map_err(setup_err(step))?;
        }
        let source = scripts::doc_start_js(prefix);
        let v = session
            .cdp_cmd("Page.addScriptToEvaluateOnNewDocument", json!({ "source": source }))
            .await
            .map_err(setup_err(step))?;
        let id = v.get("identifier").and_then(Value::as_str).unwrap_or_default().to_string();
        session.setup.guard = Some((prefix.to_string(), id));
    }
    fingerprint_setup(session, url).await?;
    if session.setup.cache_cleared.is_none_or(|t| t < req.sweep_started) {
        session
            .cdp_cmd("Network.clearBrowserCache", json!({}))
            .await
            .map_err(setup_err("clearing the HTTP cache"))?;
        session.setup.cache_cleared = Some(Instant::now());
    }
    if session.setup.user_agent != opts.user_agent {
        // An empty user agent removes the override.
        let ua = opts.user_agent.clone().unwrap_or_default();
        session
            .cdp_cmd("Emulation.setUserAgentOverride", json!({ "userAgent": ua }))
            .await
            .map_err(setup_err("setting the user agent"))?;
        session.setup.user_agent = opts.user_agent.clone();
    }
    if session.setup.block_urls != opts.block_urls {
        // URL blocking only acts with the Network domain enabled.
        enable_network(session, url).await?;
        session
            .cdp_cmd("Network.setBlockedURLs", json!({ "urls": opts.block_urls }))
            .await
            .map_err(setup_err("setting blocked URLs"))?;
        session.setup.block_urls = opts.block_urls.clone();
    }
    if !opts.cookies.is_empty() {
        let cookies: Vec<Value> = opts
            .cookies
            .iter()
            .map(|c| json!({ "name": c.name, "value": c.value, "url": req.scope.prefix().as_str() }))
            .collect();
        session
            .cdp_cmd("Network.setCookies", json!({ "cookies": cookies }))
            .await
            .map_err(setup_err("setting cookies"))?;
    }
    Ok(())
}

/// The site's extra headers and basic auth, for its origin (the prefix's scheme, host and port)
/// only; `None` when it has neither.
fn site_requests(req: &CaptureRequest) -> Option<SiteRequestsKey> {
    let opts = &req.options;
    (!opts.headers.is_empty() || opts.basic_auth.is_some()).then(|| SiteRequestsKey {
        origin: req.scope.prefix().origin(),
        headers: opts.headers.clone(),
        basic_auth: opts.basic_auth.clone(),
    })
}

/// Turn the Network domain on, once per session (URL blocking and fingerprint recording need it).
async fn enable_network(session: &mut BrowserSession, url: &str) -> Result<(), CaptureError> {
    if !session.setup.network_enabled {
        session
            .cdp_cmd("Network.enable", json!({}))
            .await
            .map_err(setup_err(url, "enabling the Network domain"))?;
        session.setup.network_enabled = true;
    }
    Ok(())
}

/// A failed set-up step (`step`) of the capture of `url`.
fn setup_err<'u>(url: &'u str, step: &'static str) -> impl FnOnce(CommandError) -> CaptureError + 'u {
    move |source| CaptureError::Setup { url: url.to_string(), step, source }
}

/// Navigate to the request's page. On a W3C-only endpoint, cookies are added then (they need a
/// document of their origin; the page is loaded again to send them) and the navigation guard is
/// installed once the page has loaded. With the site's own script to run, where the browser is must
/// be inside the prefix first.
async fn load(
    session: &mut BrowserSession,
    req: &CaptureRequest,
    settle_timeout: Duration,
) -> Result<(), CaptureError> {
    navigate(session, req).await?;
    if session.cdp() != CdpSupport::Yes {
        if w3c_add_cookies(session, req).await? {
            navigate(session, req).await?;
        }
        install_guard_late(session, req).await?;
    }
    if !req.options.inject_js.is_empty() {
        // The site's script must never run on a page outside the prefix; otherwise the settle
        // script reports where the browser is.
        check_location(session, req, settle_timeout).await?;
    }
    Ok(())
}

/// Go to the request's page (never with credentials in the URL: the page's scripts, third-party
/// ones included, could read them from `document.URL`; basic auth answers the site's challenges).
async fn navigate(session: &BrowserSession, req: &CaptureRequest) -> Result<(), CaptureError> {
    let timeout = req.options.page_timeout;
    session.goto(req.url.as_str(), timeout).await.map_err(|source| {
        let url = req.url.to_string();
        if source.is_timeout() {
            CaptureError::Timeout { url, timeout }
        } else {
            CaptureError::Load { url, source }
        }
    })
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
        session.add_cookie(&c.name, &c.value).await.map_err(|source| CaptureError::Cookie {
            url: req.url.to_string(),
            name: c.name.clone(),
            source,
        })?;
    }
    session.setup.cookie_origins.insert(origin);
    Ok(true)
}

/// W3C fallback for the navigation guard: installed once the page has loaded (navigations the
/// page starts during its load are caught only by the location checks).
async fn install_guard_late(session: &BrowserSession, req: &CaptureRequest) -> Result<(), CaptureError> {
    let script = scripts::doc_start(req.scope.prefix());
    run_script(session, req, MIN_SCRIPT_TIMEOUT, &script).await.map(|_| ())
}

/// Where the browser is now must be inside the prefix (a redirect may have taken it out).
async fn check_location(
    session: &BrowserSession,
    req: &CaptureRequest,
    timeout: Duration,
) -> Result<(), CaptureError> {
    let here = run_script(session, req, timeout, &Script::sync(scripts::LOCATION)).await?;
    check_landed(req, here.as_str().unwrap_or_default())
}

/// Run one of our scripts in the page: a timeout is [`CaptureError::Timeout`], a dialog that could
/// not be dismissed a navigation failure, any other failure [`CaptureError::Script`].
async fn run_script(
    session: &BrowserSession,
    req: &CaptureRequest,
    timeout: Duration,
    script: &Script<'_>,
) -> Result<Value, CaptureError> {
    session
        .run_script(script, timeout)
        .await
        .map_err(|e| script_error(req, timeout, e, |url, source| CaptureError::Script { url, source }))
}

/// A failed script as a capture error: `other` for what is neither a timeout nor a dialog.
fn script_error(
    req: &CaptureRequest,
    timeout: Duration,
    e: CommandError,
    other: fn(String, CommandError) -> CaptureError,
) -> CaptureError {
    let url = req.url.to_string();
    match e {
        e if e.is_timeout() => CaptureError::Timeout { url, timeout },
        e @ CommandError::Dialog(_) => CaptureError::Load { url, source: e },
        e => other(url, e),
    }
}

/// One settle attempt on the current document: the site's script, the settle script and its
/// measurement, the shots, the DOM. `None` when the page navigated meanwhile and is to be settled
/// again (never on the `last` attempt). The timing has no `navigate_ms`.
async fn capture_document(
    session: &mut BrowserSession,
    req: &CaptureRequest,
    css: &str,
    settle_timeout: Duration,
    last: bool,
) -> Result<Option<Capture>, CaptureError> {
    let opts = &req.options;
    let t1 = Instant::now();
    let Some(measure) = settle(session, req, css, settle_timeout, last).await? else { return Ok(None) };
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

    let Some(fp_read) = fingerprint_read(session, req, settle_timeout, last).await? else { return Ok(None) };
    let one_shot = one_shot_is_proof(session, fp_read.as_ref());

    let t2 = Instant::now();
    let Some(shots) = shoot_until_stable(session, req, width, height, last, one_shot).await? else {
        return Ok(None);
    };
    let (png_width, png_height) =
        png_size(&shots.png).ok_or_else(|| CaptureError::NotPng { url: req.url.to_string() })?;
    let screenshot_ms = elapsed_ms(t2);

    let Some(read) = read_page(session, req, settle_timeout, last).await? else { return Ok(None) };
    let inputs = fp_read.map(|r| capture_inputs(session, req, &r, &read.final_url, shots.unstable.is_some()));
    let title = Some(measure.title).filter(|t| !t.is_empty());
    Ok(Some(Capture {
        png: shots.png,
        width: png_width,
        height: png_height,
        html: read.html,
        title,
        final_url: read.final_url,
        mask_rects,
        truncated,
        page_height: measure.height.ceil().clamp(0.0, f64::from(u32::MAX)) as u32,
        unstable_area: shots.unstable.map(|(pixels, _)| pixels),
        unstable_rect: shots.unstable.and(shots.changed_bounds),
        blocked_navigations: read.blocked,
        timing: CaptureTiming { navigate_ms: 0, settle_ms, screenshot_ms, shots: shots.count },
        inputs,
    }))
}

/// Own DevTools connection only: the `Network` domain on (its events feed the fingerprint), the
/// fingerprint document-start script installed after the navigation guard (so the guard's timer
/// wrappers, and the settle script using them, see the page's originals), and the session's
/// browser build and font set asked once.
async fn fingerprint_setup(session: &mut BrowserSession, url: &str) -> Result<(), CaptureError> {
    if !session.has_devtools() {
        return Ok(());
    }
    let setup_err = |step| setup_err(url, step);
    enable_network(session, url).await?;
    let guard = session.setup.guard.as_ref().map(|(_, id)| id.clone()).unwrap_or_default();
    if session.setup.fingerprint_script.as_ref().map(|(g, _)| g) != Some(&guard) {
        let step = "installing the fingerprint script";
        if let Some((_, id)) = session.setup.fingerprint_script.take() {
            session
                .cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", json!({ "identifier": id }))
                .await
                .map_err(setup_err(step))?;
        }
        let v = session
            .cdp_cmd("Page.addScriptToEvaluateOnNewDocument", json!({ "source": fingerprint::START }))
            .await
            .map_err(setup_err(step))?;
        let id = v.get("identifier").and_then(Value::as_str).unwrap_or_default().to_string();
        session.setup.fingerprint_script = Some((guard, id));
    }
    if session.setup.environment.is_none() {
        let v = session
            .cdp_cmd("Browser.getVersion", json!({}))
            .await
            .map_err(setup_err("reading the browser version"))?;
        let fonts = fingerprint::system_fonts().await;
        session.setup.environment = Some(Environment { browser: fingerprint::browser_build(&v), fonts });
    }
    Ok(())
}

/// The fingerprint read of the settled document (what could change or move it, the URLs it
/// used), with its images decoded. `Some(None)` when the session records no fingerprint; `None`
/// when the document went away under the read (never on the `last` attempt).
async fn fingerprint_read(
    session: &BrowserSession,
    req: &CaptureRequest,
    timeout: Duration,
    last: bool,
) -> Result<Option<Option<Value>>, CaptureError> {
    if !session.has_devtools() {
        return Ok(Some(None));
    }
    match run_script(session, req, timeout, &Script::sync(fingerprint::READ)).await {
        Err(CaptureError::Script { .. }) if !last => Ok(None),
        other => Ok(Some(Some(other?))),
    }
}

/// The stability decision: one shot is proof enough when the page's own state says nothing on it
/// can move once the settle script froze it (DevTools sessions only: the fingerprint read and the
/// requests so far show no animated image, media, frame, live connection, worker, request in
/// flight, image or font still loading); otherwise shots are taken until two agree.
fn one_shot_is_proof(session: &BrowserSession, read: Option<&Value>) -> bool {
    let (Some(read), Some(observed)) = (read, session.peek_network()) else { return false };
    !fingerprint::inputs(observed, read, &[], None).can_move
}

/// The capture's fingerprint inputs: the requests recorded since navigation, the read's marks and
/// URLs, the session's browser and fonts; `unstable` shots make the page dynamic.
fn capture_inputs(
    session: &BrowserSession,
    req: &CaptureRequest,
    read: &Value,
    final_url: &Url,
    unstable: bool,
) -> CaptureInputs {
    let observed = session.take_network().unwrap_or_default();
    let requested = req.url.as_str().split('#').next().unwrap_or_default().to_string();
    let landed = final_url.as_str().split('#').next().unwrap_or_default().to_string();
    let mut inputs =
        fingerprint::inputs(observed, read, &[&requested, &landed], session.setup.environment.clone());
    if unstable {
        inputs.dynamic.push("unstable-shots".into());
    }
    inputs
}

/// Run the site's `inject_js`, then the settle script, and return its measurement. `None` when the
/// document went away under the settle script (never on the `last` attempt).
async fn settle(
    session: &BrowserSession,
    req: &CaptureRequest,
    css: &str,
    settle_timeout: Duration,
    last: bool,
) -> Result<Option<Settled>, CaptureError> {
    let url = req.url.as_str();
    let opts = &req.options;
    let t1 = Instant::now();
    if !opts.inject_js.is_empty() {
        session.run_script(&Script::sync(&opts.inject_js), settle_timeout).await.map_err(|e| {
            script_error(req, settle_timeout, e, |url, source| CaptureError::InjectJs { url, source })
        })?;
    }
    let script = scripts::settle(css, opts.max_height, &opts.mask_selectors, !opts.inject_js.is_empty());
    let settled = match run_script(session, req, settle_timeout, &script).await {
        // The document went away under the async script: chromedriver reports a script error
        // or, at once, a script timeout. Settle the new document.
        Err(CaptureError::Script { .. }) if !last => return Ok(None),
        Err(CaptureError::Timeout { .. }) if !last && t1.elapsed() < settle_timeout => return Ok(None),
        other => other?,
    };
    if let Some(err) = settled.get("error").and_then(Value::as_str) {
        return Err(CaptureError::Settle { url: url.to_string(), reason: err.to_string() });
    }
    if let Some(sel) = settled.get("invalid_selector").and_then(Value::as_str) {
        return Err(CaptureError::Settle {
            url: url.to_string(),
            reason: format!("invalid mask selector {sel:?}"),
        });
    }
    serde_json::from_value(settled)
        .map(Some)
        .map_err(|source| CaptureError::Measurement { url: url.to_string(), source })
}

/// The shots of one settled document.
struct Shots {
    /// The last shot.
    png: Vec<u8>,
    count: u32,
    /// Pixels that differed between the last two shots and where (`None`: they agreed).
    unstable: Option<(u64, Rect)>,
    /// Bounding box of every change between consecutive shots.
    changed_bounds: Option<Rect>,
}

/// Shots until two consecutive ones are identical (at most [`MAX_SHOTS`]; one when the first
/// reproduces the approved screenshot byte for byte, or when `one_shot`: see [`one_shot_is_proof`]). `None` when the page navigated meanwhile
/// (never on the `last` attempt).
async fn shoot_until_stable(
    session: &mut BrowserSession,
    req: &CaptureRequest,
    width: u32,
    height: u32,
    last: bool,
    one_shot: bool,
) -> Result<Option<Shots>, CaptureError> {
    let url = req.url.as_str();
    let Some(mut png) = shoot(session, req, width, height, !last).await? else {
        return Ok(None);
    };
    let mut count = 1;
    let mut unstable: Option<(u64, Rect)> = None;
    let mut changed_bounds: Option<Rect> = None;
    let reproduced = req.expected_png.is_some_and(|h| *blake3::hash(&png).as_bytes() == h);
    while count < MAX_SHOTS && !reproduced && !one_shot {
        let Some(next) = shoot(session, req, width, height, !last).await? else {
            return Ok(None);
        };
        count += 1;
        let prev = std::mem::replace(&mut png, next);
        let cur = png.clone();
        let diff = tokio::task::spawn_blocking(move || shot_difference(&prev, &cur))
            .await
            .map_err(|source| CaptureError::ShotCompare { url: url.to_string(), source })?;
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
    Ok(Some(Shots { png, count, unstable, changed_bounds }))
}

/// One shot of the page's top `width` x `height` px: a single clipped shot up to [`TILE_HEIGHT`];
/// taller, vertical tiles of the whole-page layout ([`tiles`]: clipped `captureBeyondViewport`
/// shots, so fixed and sticky elements sit where a full-page shot has them, once) stitched row by
/// row into one PNG. `None` when the page navigated meanwhile and `may_navigate`. Endpoints without
/// DevTools take one window-sized shot whatever the height.
async fn shoot(
    session: &mut BrowserSession,
    req: &CaptureRequest,
    width: u32,
    height: u32,
    may_navigate: bool,
) -> Result<Option<Vec<u8>>, CaptureError> {
    let url = req.url.as_str();
    let shot_err = |source| CaptureError::Screenshot { url: url.to_string(), source };
    let viewport = req.viewport;
    if height <= TILE_HEIGHT || session.cdp() != CdpSupport::Yes {
        return session.screenshot(0, width, height, viewport, may_navigate).await.map_err(shot_err);
    }
    let mut parts = Vec::new();
    for (top, h) in tiles(height) {
        match session.screenshot(top, width, h, viewport, may_navigate).await.map_err(shot_err)? {
            Some(png) => parts.push(png),
            None => return Ok(None),
        }
    }
    let name = url.to_string();
    let stitched = tokio::task::spawn_blocking(move || {
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        crate::diff::stitch_png(&refs, &name)
    })
    .await
    .map_err(|source| CaptureError::ShotCompare { url: url.to_string(), source })?;
    stitched.map(Some).map_err(|source| CaptureError::Stitch { url: url.to_string(), source })
}

/// What the page read after the shots gives.
struct PageRead {
    html: String,
    /// Where the browser is (without credentials); inside the prefix.
    final_url: Url,
    blocked: Vec<String>,
}

/// The rendered DOM, where the browser is, and the navigations the guard refused. `None` when the
/// document is not the one settled and shot (it navigated meanwhile; never on the `last` attempt).
async fn read_page(
    session: &BrowserSession,
    req: &CaptureRequest,
    timeout: Duration,
    last: bool,
) -> Result<Option<PageRead>, CaptureError> {
    let after = match run_script(session, req, timeout, &Script::sync(scripts::READ_PAGE)).await {
        // The document went away under the read (DevTools connection): settle the new one.
        Err(CaptureError::Script { .. }) if !last => return Ok(None),
        other => other?,
    };
    if after.get("settled").and_then(Value::as_bool) != Some(true) && !last {
        // Navigated while we were shooting: the picture may mix two documents.
        return Ok(None);
    }
    let html = after.get("html").and_then(Value::as_str).unwrap_or_default().to_string();
    let final_url = match after.get("url").and_then(Value::as_str).and_then(|u| Url::parse(u).ok()) {
        Some(u) => u,
        None => {
            session.current_url().await.map_err(setup_err(req.url.as_str(), "reading the current URL"))?
        }
    };
    let final_url = without_credentials(&final_url);
    ensure_in_scope(req, &final_url)?;
    let blocked = after
        .get("blocked")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Some(PageRead { html, final_url, blocked }))
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
    if u.username().is_empty() && u.password().is_none() {
        return u;
    }
    if u.set_username("").and(u.set_password(None)).is_err() {
        tracing::warn!(url = %u, "cannot remove the credentials from a URL");
    }
    u
}

fn elapsed_ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{BasicAuth, CaptureOptions, Viewport};
    use crate::crawl::links::Scope;

    fn request(url: &str, prefix: &str) -> CaptureRequest {
        CaptureRequest {
            site: "s".into(),
            url: Url::parse(url).unwrap(),
            scope: Scope::new(&Url::parse(prefix).unwrap()),
            viewport: Viewport { width: 800, height: 600 },
            options: Arc::new(CaptureOptions::default()),
            expected_png: None,
            sweep_started: Instant::now(),
        }
    }

    #[test]
    fn landing_outside_the_prefix_or_on_an_error_page_is_refused() {
        let req = request("http://h/docs/a", "http://h/docs/");
        assert!(check_landed(&req, "http://h/docs/b").is_ok());
        assert!(
            check_landed(&req, "http://user:pw@h/docs/b").is_ok(),
            "credentials are not part of the place"
        );
        assert!(matches!(check_landed(&req, "http://h/blog/"), Err(CaptureError::OffPrefix { .. })));
        let err = check_landed(&req, "chrome-error://chromewebdata/").unwrap_err();
        assert!(matches!(err, CaptureError::Navigate { .. }), "{err:?}");
        assert!(err.to_string().contains("error page"), "{err}");
    }

    #[test]
    fn site_headers_and_credentials_are_for_the_prefixs_origin() {
        let mut req = request("http://h:8080/docs/a", "http://h:8080/docs/");
        assert_eq!(site_requests(&req), None, "nothing to send: no interception");
        req.options = Arc::new(CaptureOptions {
            basic_auth: Some(BasicAuth { user: "u".into(), password: "p w".into() }),
            ..CaptureOptions::default()
        });
        let key = site_requests(&req).unwrap();
        assert_eq!(key.origin.ascii_serialization(), "http://h:8080");
        assert!(key.headers.is_empty());
        assert_eq!(key.basic_auth.as_ref().map(|a| a.password.as_str()), Some("p w"));
    }
}
