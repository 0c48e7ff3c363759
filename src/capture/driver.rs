//! chromedriver process management: find the binary, spawn it on a free loopback port with a
//! minimal environment (the browsers it starts inherit it: never sitediff's token or site
//! passwords), wait until it is ready, and kill + reap it (and the browsers it started) on shutdown
//! and on drop.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use url::Url;

use super::error::CaptureError;

/// Where Debian installs chromedriver (package `chromium-driver`).
pub const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Binary name looked up on PATH.
const CHROMEDRIVER_NAME: &str = "chromedriver";
/// How long chromedriver may take to answer `GET /status` with `ready: true`.
const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between two readiness polls.
const DRIVER_READY_POLL: Duration = Duration::from_millis(50);
/// Timeout of one `GET /status` request.
const STATUS_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts at spawning on a fresh port (the port picked can be taken between pick and bind).
const DRIVER_SPAWN_ATTEMPTS: u32 = 3;
/// How long to wait for the process to exit after SIGKILL before giving up on reaping it.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two reap attempts.
const REAP_POLL: Duration = Duration::from_millis(10);

/// Environment variables chromedriver and the browsers it starts are given (when set): where to
/// find programs, home and temporary directories, locale and time zone, fonts, display, and the
/// proxy settings the browser needs to reach sites. Nothing else: sitediff's write token, site
/// passwords (`password_env`) and every other variable stay out of processes that run untrusted
/// pages.
pub const BROWSER_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "LANGUAGE",
    "TZ",
    "FONTCONFIG_FILE",
    "FONTCONFIG_PATH",
    "FONTCONFIG_SYSROOT",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_CONFIG_DIRS",
    "XDG_DATA_DIRS",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];
/// Name prefix of the locale categories (`LC_ALL`, `LC_CTYPE`, ...), also passed on.
const LOCALE_PREFIX: &str = "LC_";

/// The environment chromedriver is started with: of `vars` (sitediff's own), only the names in
/// [`BROWSER_ENV`] and the `LC_*` locale categories.
pub fn browser_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(name, _)| {
            name.to_str().is_some_and(|n| BROWSER_ENV.contains(&n) || n.starts_with(LOCALE_PREFIX))
        })
        .collect()
}

/// Find the chromedriver binary: the configured path, else PATH, else [`DEFAULT_CHROMEDRIVER`].
pub fn find_chromedriver(configured: Option<&Path>) -> Result<PathBuf, CaptureError> {
    if let Some(p) = configured {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(CaptureError::DriverNotFound { looked_in: format!("browser.chromedriver = {}", p.display()) })
        };
    }
    let mut looked = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(CHROMEDRIVER_NAME);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        looked.push("PATH".to_string());
    }
    let default = PathBuf::from(DEFAULT_CHROMEDRIVER);
    if default.is_file() {
        return Ok(default);
    }
    looked.push(DEFAULT_CHROMEDRIVER.to_string());
    Err(CaptureError::DriverNotFound { looked_in: looked.join(", ") })
}

/// A chromedriver process we started. Killed (with its process group, i.e. the browsers it
/// launched) and reaped on [`ChromeDriver::kill`] and on drop.
#[derive(Debug)]
pub struct ChromeDriver {
    path: PathBuf,
    url: Url,
    pid: u32,
    child: Mutex<Option<Child>>,
}

impl ChromeDriver {
    /// Spawn chromedriver on a free 127.0.0.1 port and wait until `/status` says ready.
    pub async fn spawn(path: &Path, cancel: &CancellationToken) -> Result<ChromeDriver, CaptureError> {
        let mut last_err = None;
        for _ in 0..DRIVER_SPAWN_ATTEMPTS {
            match Self::spawn_once(path, cancel).await {
                Ok(d) => return Ok(d),
                Err(e @ CaptureError::Cancelled) => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| CaptureError::DriverStart {
            path: path.display().to_string(),
            reason: "no attempt made".into(),
        }))
    }

    async fn spawn_once(path: &Path, cancel: &CancellationToken) -> Result<ChromeDriver, CaptureError> {
        let io_err =
            |step| move |source| CaptureError::DriverIo { path: path.display().to_string(), step, source };
        let port = free_port().map_err(io_err("cannot pick a free port"))?;
        let mut cmd = Command::new(path);
        cmd.arg(format!("--port={port}")).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // The browsers chromedriver starts inherit its environment: a minimal one, without secrets.
        cmd.env_clear().envs(browser_env(std::env::vars_os()));
        // Own process group: the browsers chromedriver launches inherit it, so one killpg cleans up
        // everything even when chromedriver itself died first.
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            // If sitediff dies without cleaning up (SIGKILL, crash), the kernel kills chromedriver
            // too, instead of leaving it (and its browsers) running for ever.
            #[cfg(target_os = "linux")]
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().map_err(io_err("cannot run it"))?;
        let url = Url::parse(&format!("http://127.0.0.1:{port}/"))
            .map_err(|source| CaptureError::DriverUrl { path: path.display().to_string(), source })?;
        let driver =
            ChromeDriver { path: path.to_path_buf(), url, pid: child.id(), child: Mutex::new(Some(child)) };
        driver.wait_ready(cancel).await?;
        tracing::debug!(pid = driver.pid, url = %driver.url, "chromedriver ready");
        Ok(driver)
    }

    async fn wait_ready(&self, cancel: &CancellationToken) -> Result<(), CaptureError> {
        let start_err =
            |reason: String| CaptureError::DriverStart { path: self.path.display().to_string(), reason };
        let http = status_client()
            .map_err(|source| CaptureError::DriverHttp { path: self.path.display().to_string(), source })?;
        let deadline = Instant::now() + DRIVER_READY_TIMEOUT;
        loop {
            if let Some(code) = self.exit_status() {
                return Err(start_err(format!("exited during startup ({code})")));
            }
            if self.reports_ready(&http).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(start_err(format!("not ready after {DRIVER_READY_TIMEOUT:?}")));
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(CaptureError::Cancelled),
                _ = tokio::time::sleep(DRIVER_READY_POLL) => {}
            }
        }
    }

    /// One `GET /status`: whether chromedriver answers that it is ready for sessions.
    async fn reports_ready(&self, http: &reqwest::Client) -> bool {
        // Any failure means "not ready (yet)": logged at debug, the caller polls or restarts.
        let status_url = match self.url.join("status") {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(url = %self.url, error = %e, "no /status URL");
                return false;
            }
        };
        let body = match http.get(status_url).send().await {
            Ok(resp) => resp.bytes().await,
            Err(e) => Err(e),
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(pid = self.pid, error = %e, "chromedriver /status did not answer");
                return false;
            }
        };
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => v.pointer("/value/ready").and_then(serde_json::Value::as_bool) == Some(true),
            Err(e) => {
                tracing::debug!(pid = self.pid, error = %e, "chromedriver /status is not JSON");
                false
            }
        }
    }

    /// Whether chromedriver answers `/status` now. A process killed a moment ago can still look
    /// running (not yet reaped) while its port already refuses connections.
    pub async fn answers(&self) -> bool {
        match status_client() {
            Ok(http) => self.reports_ready(&http).await,
            Err(e) => {
                tracing::warn!(error = %e, "no HTTP client to ask chromedriver's /status");
                false
            }
        }
    }

    /// The WebDriver base URL (`http://127.0.0.1:PORT/`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The chromedriver process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// `Some(description)` once the process has exited (it is reaped then), `None` while running.
    fn exit_status(&self) -> Option<String> {
        let mut guard = super::lock(&self.child);
        let child = guard.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("cannot query process: {e}")),
        }
    }

    /// Kill chromedriver and its process group (the browsers), then reap chromedriver. Idempotent.
    pub fn kill(&self) {
        let mut guard = super::lock(&self.child);
        let Some(mut child) = guard.take() else { return };
        kill_process_group(self.pid);
        if let Err(e) = child.kill() {
            tracing::warn!(pid = self.pid, error = %e, "cannot kill chromedriver");
        }
        let deadline = Instant::now() + REAP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Err(e) => {
                    tracing::warn!(pid = self.pid, error = %e, "cannot reap chromedriver");
                    break;
                }
                Ok(None) if Instant::now() >= deadline => {
                    tracing::warn!(pid = self.pid, "chromedriver did not exit after SIGKILL");
                    break;
                }
                Ok(None) => std::thread::sleep(REAP_POLL),
            }
        }
    }

    /// [`ChromeDriver::kill`] off the async threads.
    pub async fn shutdown(self: std::sync::Arc<Self>) {
        if let Err(e) = tokio::task::spawn_blocking(move || self.kill()).await {
            tracing::warn!(error = %e, "stopping chromedriver did not finish");
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The HTTP client for chromedriver's `/status` (bounded by [`STATUS_REQUEST_TIMEOUT`]).
fn status_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(STATUS_REQUEST_TIMEOUT).no_proxy().build()
}

/// SIGKILL every process in the group led by `pgid` (chromedriver was spawned as a group leader).
fn kill_process_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else { return };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid only sends a signal to that process group; no memory is
    // touched. The group is one we created (process_group(0) at spawn).
    let sent = unsafe { libc::kill(-pgid, libc::SIGKILL) };
    if sent == -1 {
        // ESRCH: the group is already gone (chromedriver and its browsers exited).
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, error = %e, "cannot kill chromedriver's process group");
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_missing_path_is_driver_not_found() {
        let err = find_chromedriver(Some(Path::new("/nonexistent/chromedriver"))).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CaptureError::DriverNotFound { .. }));
        assert!(msg.contains("/nonexistent/chromedriver"), "{msg}");
        assert!(msg.contains("`chromium`") && msg.contains("`chromium-driver`"), "{msg}");
    }

    #[test]
    fn browser_env_keeps_only_what_the_browser_needs() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C.UTF-8"),
            ("LANG", "C.UTF-8"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("FONTCONFIG_PATH", "/etc/fonts"),
            ("https_proxy", "http://proxy:3128"),
            ("SITEDIFF_TOKEN", "t0ken"),
            ("DOCS_PASSWORD", "s3cret"),
            ("AWS_SECRET_ACCESS_KEY", "k"),
            ("XDG_SECRET", "x"),
            ("PATHOLOGICAL", "p"),
        ];
        let env = browser_env(vars.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))));
        let names: Vec<&str> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(
            names,
            ["PATH", "HOME", "LC_ALL", "LANG", "XDG_RUNTIME_DIR", "FONTCONFIG_PATH", "https_proxy"]
        );
        assert_eq!(env[0].1, OsString::from("/usr/bin"), "values are passed unchanged");
    }

    #[test]
    fn free_port_is_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
