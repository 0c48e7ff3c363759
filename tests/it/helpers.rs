//! Shared test helpers: a programmable HTTP fixture server on 127.0.0.1:0 and temp dirs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One canned HTTP response.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Never answer (the connection is held open until the server stops).
    pub hang: bool,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Response {
    pub fn html(body: impl Into<String>) -> Response {
        Response::with_type(200, "text/html; charset=utf-8", body.into().into_bytes())
    }
    pub fn with_type(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            hang: false,
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16, body: &str) -> Response {
        Response::with_type(status, "text/html; charset=utf-8", body.as_bytes().to_vec())
    }
    pub fn redirect(location: &str) -> Response {
        let mut r = Response::with_type(302, "text/html", Vec::new());
        r.headers.push(("Location".into(), location.into()));
        r
    }
    pub fn hang() -> Response {
        Response { hang: true, ..Response::status(200, "") }
    }
    pub fn delayed(mut self, delay: Duration) -> Response {
        self.delay = delay;
        self
    }
}

type Routes = Arc<Mutex<HashMap<String, Response>>>;

/// A request the fixture server saw: its target and its headers (names lower-cased).
pub type SeenRequest = (String, Vec<(String, String)>);

/// A programmable HTTP/1.1 server on 127.0.0.1:0. Routes are matched on the raw request target
/// (path + query). It records every request it served, and can demand an `Authorization` header.
pub struct FixtureServer {
    pub addr: SocketAddr,
    routes: Routes,
    requests: Arc<Mutex<Vec<SeenRequest>>>,
    /// Woken whenever a request is recorded.
    seen: Arc<tokio::sync::Notify>,
    authorization: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FixtureServer {
    pub async fn start() -> FixtureServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fixture server");
        let addr = listener.local_addr().expect("fixture addr");
        let routes: Routes = Arc::default();
        let requests: Arc<Mutex<Vec<SeenRequest>>> = Arc::default();
        let authorization: Arc<Mutex<Option<String>>> = Arc::default();
        let seen: Arc<tokio::sync::Notify> = Arc::default();
        let (r, h, a, n) = (routes.clone(), requests.clone(), authorization.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { break };
                let (r, h, a, n) = (r.clone(), h.clone(), a.clone(), n.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if buf.len() > 64 * 1024 {
                            return;
                        }
                    }
                    let text = String::from_utf8_lossy(&buf);
                    let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let headers: Vec<(String, String)> = text
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let authorised = match a.lock().unwrap().as_deref() {
                        Some(want) => headers.iter().any(|(k, v)| k == "authorization" && v == want),
                        None => true,
                    };
                    h.lock().unwrap().push((target.clone(), headers));
                    n.notify_waiters();
                    let resp = if authorised { r.lock().unwrap().get(&target).cloned() } else { None };
                    let resp = match resp {
                        Some(resp) => resp,
                        None if !authorised => {
                            let mut resp = Response::status(401, "no");
                            resp.headers.push(("WWW-Authenticate".into(), "Basic realm=\"t\"".into()));
                            resp
                        }
                        None => Response::status(404, "<h1>not found</h1>"),
                    };
                    if !resp.delay.is_zero() {
                        tokio::time::sleep(resp.delay).await;
                    }
                    if resp.hang {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        resp.status,
                        resp.body.len()
                    );
                    for (k, v) in &resp.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(&resp.body).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        FixtureServer { addr, routes, requests, seen, authorization, task }
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn set(&self, target: &str, resp: Response) {
        self.routes.lock().unwrap().insert(target.to_string(), resp);
    }

    pub fn remove(&self, target: &str) {
        self.routes.lock().unwrap().remove(target);
    }

    /// Answer 401 (with a Basic challenge) to every request without this `Authorization` value.
    pub fn require_authorization(&self, value: &str) {
        *self.authorization.lock().unwrap() = Some(value.to_string());
    }

    /// Every request target served so far, in order.
    pub fn hits(&self) -> Vec<String> {
        self.requests.lock().unwrap().iter().map(|(t, _)| t.clone()).collect()
    }

    /// Wait until a request for `target` has been received (at once if one already was). Panics
    /// after a minute without one: a guard against a hung test, not a timing expectation.
    pub async fn wait_for_request(&self, target: &str) {
        let wait = async {
            loop {
                let notified = self.seen.notified();
                tokio::pin!(notified);
                // Registered before looking, so a request recorded in between still wakes us.
                notified.as_mut().enable();
                if self.hits().iter().any(|t| t == target) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), wait).await.is_err() {
            panic!("no request for {target} within a minute; requests seen: {:?}", self.hits());
        }
    }

    /// Every request served so far, in order, with its headers.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sitediff binary built for these tests.
pub fn sitediff_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_sitediff"))
}

/// Output of one sitediff run.
pub struct RunOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr)
        })
    }
}

/// Run sitediff with arguments (async-friendly: runs on the blocking pool).
pub async fn run_sitediff(args: &[&str]) -> RunOutput {
    run_sitediff_in(None, &[], args).await
}

/// Run the sitediff binary in `dir` (relative paths are relative to it) with extra variables.
pub async fn run_sitediff_in(
    dir: Option<&std::path::Path>,
    env: &[(&str, &str)],
    args: &[&str],
) -> RunOutput {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let dir = dir.map(|d| d.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(sitediff_bin());
        cmd.args(&args).env_remove("SITEDIFF_CONFIG").envs(env);
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let out = cmd.output().expect("run sitediff");
        RunOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("join")
}

/// A temp dir with a config file written into it; the store lives beside it.
pub struct TempProject {
    pub dir: tempfile::TempDir,
}

impl TempProject {
    pub fn new() -> TempProject {
        TempProject { dir: tempfile::tempdir().expect("tempdir") }
    }
    /// Write `sitediff.toml` with `[store] path` pointing into the temp dir, plus `body`.
    pub fn write_config(&self, body: &str) -> String {
        let path = self.dir.path().join("sitediff.toml");
        let db = self.db_path();
        let text = format!("[store]\npath = {:?}\n\n{body}", db.display().to_string());
        std::fs::write(&path, text).expect("write config");
        path.display().to_string()
    }
    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("sitediff.redb")
    }
}

/// A `sitediff serve` child process; killed (and reaped) on drop.
pub struct Daemon {
    pub child: std::process::Child,
    pub base: String,
    pub stderr: Arc<Mutex<String>>,
}

impl Daemon {
    /// Start `sitediff serve --config PATH` and wait until it prints its address.
    pub fn start(config: &str) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Daemon {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(sitediff_bin());
        cmd.args(["serve", "--config", config])
            .env_remove("SITEDIFF_CONFIG")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sitediff serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving on http://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("daemon did not start:\n{}", log.lock().unwrap());
            }
        };
        Daemon { child, base: format!("http://{addr}"), stderr: log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Send SIGTERM and wait for the exit; returns the exit code and how long it took.
    pub fn terminate(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let started = std::time::Instant::now();
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code(), started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("daemon did not stop within {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    /// Stop it the way an operator does (SIGTERM: ordered shutdown, browsers closed), SIGKILL only
    /// if it hangs. A SIGKILLed daemon leaves the browsers chromedriver started running.
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let started = std::time::Instant::now();
        while started.elapsed() < DAEMON_STOP_GRACE {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a dropped [`Daemon`] gets to shut down before it is killed.
const DAEMON_STOP_GRACE: Duration = Duration::from_secs(20);

/// GET a URL and return (status, body).
pub async fn http_get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// The value of one Prometheus sample line (exact series text before the value), if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

/// Poll `f` every 200 ms until it returns Some, or panic after `limit` with `what`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Kill `child` (a sitediff process) with SIGKILL, then the process groups its children lead
/// (chromedriver and its browsers), so a test that kills sitediff leaves no browser running.
pub fn kill_hard(child: &mut std::process::Child) {
    let pid = child.id();
    let groups: Vec<u32> = children_of(pid).into_iter().map(|(p, _)| p).collect();
    // SAFETY: kill(2) on processes this test started (directly or through sitediff).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
    for g in groups {
        unsafe {
            libc::kill(-(g as libc::pid_t), libc::SIGKILL);
            libc::kill(g as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// Pids of the processes whose parent is `ppid`, with their command names (from `/proc`).
pub fn children_of(ppid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = stat[open + 1..close].to_string();
        let ppid_field = stat[close + 1..].split_whitespace().nth(1).and_then(|v| v.parse::<u32>().ok());
        if ppid_field == Some(ppid) {
            out.push((pid, comm));
        }
    }
    out
}

/// A `width` x `height` PNG of one RGBA colour.
pub fn solid_png(width: u32, height: u32, rgba: [u8; 4]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = png::Encoder::new(&mut buf, width, height);
    enc.set_color(png::ColorType::Rgba);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&rgba.repeat((width * height) as usize)).unwrap();
    w.finish().unwrap();
    buf
}

/// The CSRF token of the first form on a UI page.
pub fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    body[at..].split('"').next().unwrap().to_string()
}

/// The `sitediff_session=...` pair a response sets, if any.
pub fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("sitediff_session="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// POST to the daemon, with the write token when given; (status, JSON body or null).
pub async fn post_json(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().post(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (code, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// The directory of test toolchains outside the clone (`scripts/install-test-tools` fills it).
pub fn tools_dir() -> std::path::PathBuf {
    match std::env::var_os("SITEDIFF_TOOLS") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/sitediff-tools")
        }
    }
}

/// A file inside the tools directory; panics (never skips) naming the installer when it is missing.
pub fn tool(relative: &str) -> std::path::PathBuf {
    let path = tools_dir().join(relative);
    assert!(
        path.exists(),
        "\n\n*** {} is missing: run scripts/install-test-tools (it installs the test toolchains into {}).\n\n",
        path.display(),
        tools_dir().display()
    );
    path
}

/// The directory of npm package `name` installed by `scripts/install-test-tools`; panics (never
/// skips) when it is missing.
pub fn npm_tool(name: &str) -> std::path::PathBuf {
    let manifest = tool(&format!("npm/node_modules/{name}/package.json"));
    manifest.parent().expect("a package directory").to_path_buf()
}

/// A browser config for a chromedriver the test spawns: `sessions` sessions, defaults otherwise.
pub fn spawned_browser(sessions: usize) -> sitediff::config::BrowserConfig {
    sitediff::config::BrowserConfig {
        webdriver: sitediff::config::WebDriverEndpoint::Spawn,
        sessions,
        capacity: sitediff::config::Capacity::Fixed,
        transport: sitediff::config::Transport::Auto,
        node_devtools: true,
        session_timeout: std::time::Duration::from_secs(60),
        chromedriver: None,
        chromium: None,
        recycle_after: 200,
    }
}

/// Wait (at most two minutes) until the crawl at `url` (`/api/crawls/{id}...` of a daemon) is no
/// longer running, and return that answer.
pub async fn crawl_finished(url: &str, what: &str) -> serde_json::Value {
    wait_for(Duration::from_secs(120), what, || async move {
        let (_, body) = http_get(url).await;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["crawl"]["status"] != "running").then_some(v)
    })
    .await
}
