//! Capture: pages rendered and photographed in a real browser, through a pool of WebDriver
//! sessions (fantoccini) against a chromedriver we spawn (pages then driven over each page's own
//! DevTools connection) or a remote endpoint such as a Selenium Grid (WebDriver all the way).

pub mod devtools;
pub mod driver;
pub mod page;
pub mod pool;

pub use driver::{find_chromedriver, ChromeDriver};
pub use pool::{BrowserPool, PoolStats};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

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
    /// The page never gave two identical consecutive shots: pixels that differed between the last
    /// two (`None` = stable).
    pub unstable_area: Option<u64>,
    /// Bounding box of every pixel that changed between consecutive shots (`None` = stable).
    pub unstable_rect: Option<Rect>,
    /// Top-level navigations away from the prefix that the page tried and that were refused.
    pub blocked_navigations: Vec<String>,
    pub timing: CaptureTiming,
}

/// Everything that can go wrong capturing.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "chromedriver not found (looked for {looked_in}); install the Debian packages `chromium` and \
         `chromium-driver`, or set browser.chromedriver / browser.webdriver"
    )]
    DriverNotFound { looked_in: String },
    #[error("cannot start chromedriver {path}: {reason}")]
    DriverStart { path: String, reason: String },
    #[error("cannot open a WebDriver session at {endpoint}: {reason}")]
    Session { endpoint: String, reason: String },
    #[error("{url}: navigation failed: {reason}")]
    Navigate { url: String, reason: String },
    #[error("{url}: timed out after {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: screenshot failed: {reason}")]
    Screenshot { url: String, reason: String },
    #[error("{url}: page script failed: {reason}")]
    Script { url: String, reason: String },
    #[error("{url}: the browser left the site prefix {prefix} and ended up at {landed}")]
    OffPrefix { url: String, prefix: String, landed: String },
    #[error("{url}: site option `{option}` needs DevTools passthrough, which this WebDriver endpoint lacks")]
    Unsupported { url: String, option: &'static str },
    #[error("browser pool is shut down")]
    Closed,
    #[error("capture cancelled")]
    Cancelled,
}

impl CaptureError {
    /// Whether the session that produced this error should be considered dead and replaced.
    pub fn session_is_suspect(&self) -> bool {
        !matches!(
            self,
            CaptureError::Closed
                | CaptureError::Cancelled
                | CaptureError::DriverNotFound { .. }
                | CaptureError::OffPrefix { .. }
                | CaptureError::Unsupported { .. }
        )
    }
}

/// Something that turns a URL into a [`Capture`]: the browser pool in production.
pub trait Capturer: Send + Sync {
    fn capture(&self, req: CaptureRequest) -> impl Future<Output = Result<Capture, CaptureError>> + Send;
}
