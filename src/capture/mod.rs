//! Capture: pages rendered and photographed in a real browser, through a pool of WebDriver
//! sessions (fantoccini) against a chromedriver we spawn (pages then driven over each page's own
//! DevTools connection) or a remote endpoint such as a Selenium Grid (pages driven over the
//! session's `se:cdp` DevTools connection where the Grid offers one, else WebDriver).
//!
//! Rooms, each using only rooms listed below it:
//! - `pool`: the session pool (opens, probes, replaces and recycles sessions; restarts chromedriver);
//! - `driver`: the chromedriver process (find, spawn, wait until ready, kill and reap);
//! - `page`: one capture's steps (set-up, navigate, settle and measure, shots, rendered DOM);
//! - `types`: what the rest of sitediff sees (a request, its capture, the [`Capturer`] trait);
//! - `error`: [`CaptureError`], with its context and cause;
//! - `grid`: a Selenium Grid's capacity from its `/status` (`browser.sessions = "auto"`);
//! - `session`: one session's command transport (the page's DevTools connection, else WebDriver);
//! - `scripts` (with `js/*.js`): what runs inside the page, its arguments and answers;
//! - `devtools`: the direct DevTools connection to a page;
//! - `fingerprint` (with `js/fingerprint.js`): what a capture was made from (requests, what could
//!   change the page by itself, browser build, fonts) and the rule deciding it;
//! - `intercept`: a site's headers and credentials for its own origin only (answers to the page's
//!   DevTools `Fetch` events);
//! - `geometry`: heights, rectangles, PNG size, shot differences.

pub mod devtools;
pub mod driver;
mod error;
pub mod fingerprint;
pub mod geometry;
pub mod grid;
pub mod intercept;
pub mod page;
pub mod pool;
pub mod scripts;
pub mod session;
mod types;

pub use driver::{find_chromedriver, ChromeDriver};
pub use error::CaptureError;
pub use fingerprint::{CaptureInputs, Environment, Observed};
pub use pool::{BrowserPool, PoolStats};
pub use types::{Capture, CaptureRequest, CaptureTiming, Capturer, SelectorRects};

/// Lock `m`, taking the data over from a thread that panicked while holding it (the capture
/// room's state is plain bookkeeping that stays consistent between statements).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
