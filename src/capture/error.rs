//! Everything that can go wrong capturing: one error for the capture room, each variant with the
//! context it happened in (chromedriver path, WebDriver endpoint, page URL) and its cause.

use std::time::Duration;

use super::session::CommandError;

/// Everything that can go wrong capturing. The message names the context and the cause; the cause
/// is also the error's [`source`](std::error::Error::source) where there is an error value.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "chromedriver not found (looked for {looked_in}); install the Debian packages `chromium` and \
         `chromium-driver`, or set browser.chromedriver / browser.webdriver"
    )]
    DriverNotFound { looked_in: String },
    /// chromedriver did not come up (exited, never ready): no error value, the reason says why.
    #[error("cannot start chromedriver {path}: {reason}")]
    DriverStart { path: String, reason: String },
    /// A system call starting chromedriver failed (`step`: picking a port, running the binary).
    #[error("cannot start chromedriver {path}: {step}: {source}")]
    DriverIo {
        path: String,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client that asks chromedriver's `/status` could not be built.
    #[error("cannot start chromedriver {path}: no HTTP client for its /status: {source}")]
    DriverHttp {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot start chromedriver {path}: bad URL: {source}")]
    DriverUrl {
        path: String,
        #[source]
        source: url::ParseError,
    },
    /// The WebDriver endpoint refused or failed the new session.
    #[error("cannot open a WebDriver session at {endpoint}: {source}")]
    Session {
        endpoint: String,
        #[source]
        source: Box<fantoccini::error::NewSessionError>,
    },
    /// The task waiting for the new session ended without an answer (it panicked).
    #[error("cannot open a WebDriver session at {endpoint}: {source}")]
    SessionTask {
        endpoint: String,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("cannot open a WebDriver session at {endpoint}: cannot set up TLS: {source}")]
    SessionTls {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    /// No session within `browser.session_timeout_ms` (a Grid keeps the request queued while every
    /// slot is busy or no node is up).
    #[error(
        "cannot open a WebDriver session at {endpoint}: no session after {timeout:?} (a Selenium Grid \
         keeps the request queued while no slot is free; browser.session_timeout_ms bounds the wait)"
    )]
    SessionTimeout { endpoint: String, timeout: Duration },
    /// The page cannot be shown: no error value (an error page, a URL outside the prefix).
    #[error("{url}: navigation failed: {reason}")]
    Navigate { url: String, reason: String },
    /// The browser failed the navigation (or a dialog that interrupted it could not be dismissed).
    #[error("{url}: navigation failed: {source}")]
    Load {
        url: String,
        #[source]
        source: CommandError,
    },
    #[error("{url}: timed out after {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: screenshot failed: {source}")]
    Screenshot {
        url: String,
        #[source]
        source: CommandError,
    },
    /// Comparing consecutive shots (off the async threads) did not finish.
    #[error("{url}: screenshot failed: comparing shots: {source}")]
    ShotCompare {
        url: String,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("{url}: screenshot failed: not a PNG")]
    NotPng { url: String },
    /// The tiles of a tall page could not be stitched into one image.
    #[error("{url}: screenshot failed: {source}")]
    Stitch {
        url: String,
        #[source]
        source: crate::diff::DiffError,
    },
    /// One of our page scripts failed (threw, or could not be run).
    #[error("{url}: page script failed: {source}")]
    Script {
        url: String,
        #[source]
        source: CommandError,
    },
    /// The site's `inject_js` failed.
    #[error("{url}: page script failed: inject_js: {source}")]
    InjectJs {
        url: String,
        #[source]
        source: CommandError,
    },
    /// The settle script reported a problem (its own message: no error value on this side).
    #[error("{url}: page script failed: {reason}")]
    Settle { url: String, reason: String },
    /// The settle script's measurement is not what it should be.
    #[error("{url}: page script failed: bad measurement: {source}")]
    Measurement {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// Setting the session up for the page (`step`) failed.
    #[error("{url}: {step} failed: {source}")]
    Setup {
        url: String,
        step: &'static str,
        #[source]
        source: CommandError,
    },
    /// Adding a configured cookie (W3C cookie jar) failed.
    #[error("{url}: cannot add cookie {name}: {source}")]
    Cookie {
        url: String,
        name: String,
        #[source]
        source: CommandError,
    },
    #[error("{url}: the browser left the site prefix {prefix} and ended up at {landed}")]
    OffPrefix { url: String, prefix: String, landed: String },
    #[error("{url}: site option `{option}` needs DevTools passthrough, which this WebDriver endpoint lacks")]
    Unsupported { url: String, option: &'static str },
    /// A site's `headers` or `basic_auth` over a session without its own DevTools connection (a
    /// remote WebDriver endpoint): they could not be kept to the site's origin, so the capture is
    /// refused rather than sending them to every origin the page loads from.
    #[error(
        "{url}: site option `{option}` is sent only to the site's own origin, which needs sitediff's \
         own DevTools connection to the page (browser.webdriver = \"spawn\"); this WebDriver endpoint \
         has none, so the page is not captured rather than the {option} going to every origin it loads from"
    )]
    SiteOnly { url: String, option: &'static str },
    /// The session's WebDriver endpoint says the session is gone (a Grid node that died) while
    /// the page was driven over DevTools.
    #[error("{url}: the browser session is gone: {source}")]
    SessionGone {
        url: String,
        #[source]
        source: CommandError,
    },
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
                | CaptureError::SiteOnly { .. }
        )
    }

    /// Whether the WebDriver endpoint answered a new-session request with a refusal (a Grid that
    /// could not start a session on a node), as opposed to not answering at all.
    pub fn is_refused_session(&self) -> bool {
        matches!(
            self,
            CaptureError::Session { source, .. }
                if matches!(**source, fantoccini::error::NewSessionError::SessionNotCreated(_))
        )
    }

    /// Whether opening a WebDriver session failed (the pool retries once chromedriver answers).
    pub fn is_session_open(&self) -> bool {
        matches!(
            self,
            CaptureError::Session { .. }
                | CaptureError::SessionTask { .. }
                | CaptureError::SessionTls { .. }
                | CaptureError::SessionTimeout { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::capture::devtools::DevToolsError;

    #[test]
    fn messages_name_the_page_and_sources_keep_the_cause() {
        let cause = DevToolsError::Navigation { reason: "net::ERR_CONNECTION_REFUSED".into() };
        let e = CaptureError::Load { url: "http://h/x".into(), source: cause.into() };
        assert_eq!(
            e.to_string(),
            "http://h/x: navigation failed: navigation failed: net::ERR_CONNECTION_REFUSED"
        );
        let source = e.source().expect("a source");
        assert!(source.to_string().contains("ERR_CONNECTION_REFUSED"), "{source}");

        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = CaptureError::DriverIo { path: "/x/chromedriver".into(), step: "cannot run it", source: io };
        assert_eq!(e.to_string(), "cannot start chromedriver /x/chromedriver: cannot run it: no such file");
        assert!(e.source().is_some_and(|s| s.is::<std::io::Error>()));

        let bad = serde_json::from_str::<u32>("x").unwrap_err();
        let e = CaptureError::Measurement { url: "http://h/".into(), source: bad };
        assert!(e.source().is_some_and(|s| s.is::<serde_json::Error>()));
    }

    #[test]
    fn session_errors_are_retried_and_page_errors_are_not_the_sessions_fault() {
        let timeout =
            CaptureError::SessionTimeout { endpoint: "http://e/".into(), timeout: Duration::from_secs(1) };
        assert!(timeout.is_session_open());
        let off = CaptureError::OffPrefix { url: "u".into(), prefix: "p".into(), landed: "l".into() };
        assert!(!off.is_session_open() && !off.session_is_suspect());
        assert!(CaptureError::NotPng { url: "u".into() }.session_is_suspect());
    }

    #[test]
    fn a_refused_session_is_told_apart_from_an_unreachable_endpoint() {
        use fantoccini::error::{ErrorStatus, NewSessionError, WebDriver};
        let session =
            |source| CaptureError::Session { endpoint: "http://grid/".into(), source: Box::new(source) };
        let refused = WebDriver::new(ErrorStatus::SessionNotCreated, "Could not start a new session");
        assert!(session(NewSessionError::SessionNotCreated(refused)).is_refused_session());
        let lost = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(!session(NewSessionError::Lost(lost)).is_refused_session());
    }
}
