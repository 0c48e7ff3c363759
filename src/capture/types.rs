//! What the rest of sitediff sees of capturing: a page to photograph, its capture, and the
//! [`Capturer`] that turns one into the other (the browser pool in production).

use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;

use super::error::CaptureError;
use super::fingerprint::{CaptureInputs, Environment};
use crate::config::{CaptureOptions, Viewport};
use crate::crawl::links::Scope;
use crate::diff::Rect;

/// One page to photograph.
#[derive(Debug, Clone)]
pub struct CaptureRequest {
    pub site: String,
    pub url: Url,
    /// The site's prefix: the browser is never let navigate the page outside it.
    pub scope: Scope,
    pub viewport: Viewport,
    pub options: Arc<CaptureOptions>,
    /// The blake3 hash of the page's approved screenshot, if any. A first shot byte-identical to
    /// it has reproduced the approved rendering exactly, so no second shot is taken to prove the
    /// page stable (the common case of a sweep: most pages are unchanged).
    pub expected_png: Option<[u8; 32]>,
    /// When this request's sweep started. The browser's HTTP cache holds nothing fetched before
    /// it: the pages of one sweep share stylesheets, scripts and images like a visitor's browser,
    /// and a later sweep never sees what an earlier one cached.
    pub sweep_started: std::time::Instant,
}

/// The rectangles (page coordinates, CSS px = image px) of the elements matching one selector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectorRects {
    pub selector: String,
    pub rects: Vec<Rect>,
}

/// How long each step of a capture took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureTiming {
    pub navigate_ms: u64,
    pub settle_ms: u64,
    pub screenshot_ms: u64,
    /// Screenshots taken until two consecutive ones were identical (or the bound was hit).
    pub shots: u32,
}

/// One page's capture.
#[derive(Debug, Clone)]
pub struct Capture {
    /// Full-page screenshot, PNG.
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// The rendered DOM (`document.documentElement.outerHTML`).
    pub html: String,
    pub title: Option<String>,
    /// Where the browser ended up (after redirects / script navigation).
    pub final_url: Url,
    /// Rectangles of the site's `mask_selectors`, measured before the shot.
    pub mask_rects: Vec<SelectorRects>,
    /// The page was taller than `max_height` and was cut.
    pub truncated: bool,
    /// The page's height as measured before the shot (CSS px; above `height` when `truncated`).
    pub page_height: u32,
    /// The page never gave two identical consecutive shots: pixels that differed between the last
    /// two (`None` = stable).
    pub unstable_area: Option<u64>,
    /// Bounding box of every pixel that changed between consecutive shots (`None` = stable).
    pub unstable_rect: Option<Rect>,
    /// Top-level navigations away from the prefix that the page tried and that were refused.
    pub blocked_navigations: Vec<String>,
    pub timing: CaptureTiming,
    /// What the capture was made from, as the browser saw it (`None`: no DevTools connection of
    /// the session's own, so no fingerprint: the page is never reused).
    pub inputs: Option<CaptureInputs>,
}

/// Something that turns a URL into a [`Capture`]: the browser pool in production.
pub trait Capturer: Send + Sync {
    fn capture(&self, req: CaptureRequest) -> impl Future<Output = Result<Capture, CaptureError>> + Send;

    /// The browser build and font set captures are made with now (`None`: unknown, so no capture
    /// fingerprint can be trusted and nothing is reused).
    fn environment(&self) -> impl Future<Output = Option<Environment>> + Send {
        async { None }
    }
}
