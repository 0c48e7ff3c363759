//! A service a team can trust, each point against a real `sitediff serve` on 127.0.0.1:0: writes
//! fail closed (a missing token variable stops the daemon), the host allow-list (421 for rebound
//! names), slowloris connections are cut off without starving `/healthz`, a streamed 250 MB upload
//! costs bounded memory, wrong tokens are throttled, logout revokes the session, artifacts are
//! `private`. Requests that must carry a forged `Host` go over raw TCP.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{sitediff_bin, solid_png, Daemon, RunOutput, TempProject};

const TOKEN: &str = "s3cret-for-the-security-tests";
const TOKEN_VAR: &str = "SITEDIFF_SECURITY_TEST_TOKEN";
/// A site for uploads (never crawled).
const UPLOAD_SITE: &str = "[[sites]]\nname = \"up\"\nstart = \"http://127.0.0.1:9/up/\"\n";

/// `sitediff serve` that must refuse to start: its output, or a panic if it is still running after
/// a minute (then it did start).
async fn serve_refused(config: &str, env: &[(&str, &str)]) -> RunOutput {
    let mut cmd = tokio::process::Command::new(sitediff_bin());
    cmd.args(["serve", "--config", config])
        .env_remove("SITEDIFF_CONFIG")
        .env_remove(TOKEN_VAR)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn sitediff serve");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("serve should have refused to start, but it is still running")
        .expect("wait for sitediff serve");
    RunOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A daemon with the test token, `server_extra` added to its `[server]` table.
fn daemon_with_token(project: &TempProject, server_extra: &str) -> Daemon {
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_VAR}\"\n{server_extra}\n[browser]\nsessions = 1\n\n{UPLOAD_SITE}"
    ));
    Daemon::start_with_env(&cfg, &[(TOKEN_VAR, TOKEN)])
}

/// `host:port` of a daemon.
fn addr(d: &Daemon) -> String {
    d.base.trim_start_matches("http://").to_string()
}

/// A response read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The `name=value` of the `Set-Cookie` for `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            let pair = v.trim().split(';').next()?.trim();
            (k.trim().eq_ignore_ascii_case("set-cookie") && pair.starts_with(&format!("{name}=")))
                .then(|| pair.to_string())
        })
    }
}

/// Send one HTTP/1.1 request (`Connection: close` is added) and read the whole answer.
async fn raw(addr: &str, method: &str, path: &str, host: &str, headers: &[(&str, &str)], body: &str) -> Raw {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("an answer within 30 s")
        .expect("read the answer");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Raw { status, head: head.to_string(), body: body.to_string() }
}

/// The CSRF token in a UI page's forms.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fails_closed_without_its_token_and_refuses_open_writes() {
    let project = TempProject::new();
    let with_token = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_VAR}\"\n\n{UPLOAD_SITE}"
    ));
    for env in [&[][..], &[(TOKEN_VAR, "")][..]] {
        let out = serve_refused(&with_token, env).await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!("environment variable {TOKEN_VAR}, but it is unset or empty")),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("serving on"), "{}", out.stderr);
    }
    // Commands that do not serve still work without the variable.
    let status = tokio::process::Command::new(sitediff_bin())
        .args(["status", "--json", "--config", &with_token])
        .env_remove(TOKEN_VAR)
        .output()
        .await
        .unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stderr));

    // No token configured and no explicit open writes: refused, both ways out named.
    let open = project.write_config(&format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{UPLOAD_SITE}"));
    let out = serve_refused(&open, &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("writes are not protected"), "{}", out.stderr);
    assert!(
        out.stderr.contains("server.token_env")
            && out.stderr.contains("server.allow_anonymous_writes = true")
    );

    // Open writes on a non-loopback address: refused before anything is bound.
    let exposed = project.write_config(&format!("[server]\nlisten = \"0.0.0.0:0\"\n\n{UPLOAD_SITE}"));
    let out = serve_refused(&exposed, &[]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("refusing to listen on 0.0.0.0:0, which is not a loopback address"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebound_hosts_get_421_allowed_hosts_and_loopback_are_served() {
    let project = TempProject::new();
    let d = daemon_with_token(&project, "allowed_hosts = [\"sitediff.test\"]");
    let a = addr(&d);
    let port = a.rsplit(':').next().unwrap().to_string();
    let bearer = format!("Bearer {TOKEN}");
    let evil = format!("rb.evil.example:{port}");

    // DNS rebinding: a hostile name resolved to 127.0.0.1. Reads, writes, metrics, health: 421.
    for (method, path) in [("GET", "/api/sites"), ("GET", "/metrics"), ("GET", "/healthz"), ("GET", "/")] {
        let r = raw(&a, method, path, &evil, &[], "").await;
        assert_eq!(r.status, 421, "{method} {path}: {r:?}");
        assert!(r.body.contains("server.allowed_hosts"), "{}", r.body);
    }
    let r = raw(&a, "POST", "/api/sites/up/crawl", &evil, &[("Authorization", &bearer)], "").await;
    assert_eq!(r.status, 421, "a write with the right token, through a foreign name: {r:?}");
    let r = raw(&a, "GET", "/api/sites", &format!("localhost:{}", port.parse::<u16>().unwrap() + 1), &[], "")
        .await;
    assert_eq!(r.status, 421, "localhost on another port: {r:?}");

    // Ours: loopback names on the listen port, and the allowed name (any port).
    for host in [
        a.clone(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "sitediff.test".into(),
        "sitediff.test:443".into(),
    ] {
        let r = raw(&a, "GET", "/api/sites", &host, &[], "").await;
        assert_eq!(r.status, 200, "{host}: {r:?}");
    }

    // Origin checks use the allow-list, not the request's Host.
    let origin_post = |origin: &'static str| {
        let (a, bearer) = (a.clone(), bearer.clone());
        async move {
            raw(
                &a,
                "POST",
                "/api/sites/nope/crawl",
                &a,
                &[("Authorization", &bearer), ("Origin", origin)],
                "",
            )
            .await
        }
    };
    assert_eq!(origin_post("https://sitediff.test").await.status, 404, "allowed origin, unknown site");
    assert_eq!(origin_post("http://evil.example").await.status, 403);
    let r = raw(
        &a,
        "POST",
        "/api/sites/nope/crawl",
        "sitediff.test",
        &[("Authorization", &bearer), ("Origin", "http://other.test")],
        "",
    )
    .await;
    assert_eq!(r.status, 403, "an allowed Host does not vouch for another Origin: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_session_and_artifacts_are_private() {
    let project = TempProject::new();
    let d = daemon_with_token(&project, "");
    let a = addr(&d);
    let origin = d.base.clone();

    // Log in through the form.
    let form = raw(&a, "GET", "/login", &a, &[], "").await;
    let anon = form.cookie("sitediff_session").expect("a session cookie");
    let csrf = csrf_of(&form.body);
    let form_headers = |cookie: &str| {
        vec![
            ("Cookie".to_string(), cookie.to_string()),
            ("Origin".to_string(), origin.clone()),
            ("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string()),
        ]
    };
    let post = |path: &'static str, cookie: String, body: String| {
        let (a, h) = (a.clone(), form_headers(&cookie));
        async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            raw(&a, "POST", path, &a, &h, &body).await
        }
    };
    let r = post("/login", anon, format!("csrf={csrf}&token={TOKEN}")).await;
    assert_eq!(r.status, 303, "{r:?}");
    let authed = r.cookie("sitediff_session").expect("a new session on login");
    let page = raw(&a, "GET", "/", &a, &[("Cookie", &authed)], "").await;
    let csrf = csrf_of(&page.body);
    // Logged in: a write goes through to the store (no such crawl: 404, not 401/403).
    let approve = format!("csrf={csrf}");
    assert_eq!(post("/crawls/999/approve", authed.clone(), approve.clone()).await.status, 404);

    // Log out; a copy of the old cookie no longer writes.
    let r = post("/logout", authed.clone(), format!("csrf={csrf}")).await;
    assert_eq!(r.status, 303, "{r:?}");
    let r = post("/crawls/999/approve", authed.clone(), approve).await;
    assert!(matches!(r.status, 401 | 403), "the logged-out cookie still writes: {r:?}");
    let page = raw(&a, "GET", "/", &a, &[("Cookie", &authed)], "").await;
    assert!(!page.body.contains("Log out"), "the old cookie is not logged in any more");

    // Artifacts: cached by the browser only.
    let png = solid_png(8, 8, [10, 20, 30, 255]);
    let boundary = "sEcUrItYbOuNdArY";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"/\"; filename=\"home.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = reqwest::Client::new()
        .post(d.url("/api/sites/up/uploads"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().await.unwrap());
    let hash = sitediff::store::Hash::of(&png).to_string();
    let r = reqwest::get(d.url(&format!("/artifacts/{hash}"))).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["cache-control"], "private, max-age=31536000, immutable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_wrong_logins_in_a_row_are_throttled() {
    let project = TempProject::new();
    let d = daemon_with_token(&project, "");
    let a = addr(&d);
    let form = raw(&a, "GET", "/login", &a, &[], "").await;
    let cookie = form.cookie("sitediff_session").expect("a session cookie");
    let csrf = csrf_of(&form.body);
    let login = |token: &'static str| {
        let (a, cookie, origin) = (a.clone(), cookie.clone(), d.base.clone());
        let body = format!("csrf={csrf}&token={token}");
        async move {
            let h = [
                ("Cookie", cookie.as_str()),
                ("Origin", origin.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ];
            raw(&a, "POST", "/login", &a, &h, &body).await
        }
    };
    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut last_429: Option<(Instant, u64)> = None;
    for _ in 0..20 {
        let r = login("wrong-token").await;
        if r.status == 429 {
            let retry: u64 = r.header("retry-after").expect("429 says when to retry").parse().unwrap();
            assert!(retry >= 1, "{r:?}");
            assert!(r.body.contains("too many wrong tokens"), "{}", r.body);
            last_429 = Some((Instant::now(), retry));
        }
        statuses.push(r.status);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    eprintln!("20 wrong logins in {elapsed:.2} s: {statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 401 | 429)), "{statuses:?}");
    assert_eq!(&statuses[..5], &[401; 5], "five free failures");
    // Locks double from 1 s after the fifth failure: within `elapsed` seconds at most
    // 6 + log2(elapsed + 1) wrong tokens can have been checked.
    let bound = 6 + (elapsed + 1.0).log2().ceil() as usize;
    assert!(evaluated <= bound, "{evaluated} wrong tokens checked in {elapsed:.2} s: {statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 20 - bound, "{statuses:?}");

    // While locked out the right token is refused too (API and UI share the client's record).
    let (at, retry) = last_429.expect("a 429");
    let api =
        raw(&a, "POST", "/api/sites/nope/crawl", &a, &[("Authorization", &format!("Bearer {TOKEN}"))], "")
            .await;
    if at.elapsed() < Duration::from_secs(retry) {
        assert_eq!(api.status, 429, "the right token while locked out: {api:?}");
    }
    // After the lock, the right token logs in.
    let wait = api.header("retry-after").and_then(|r| r.parse().ok()).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = login(TOKEN).await;
    assert_eq!(r.status, 303, "{r:?}");
}

/// Raise this process's soft limit on open files to its hard limit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    assert!(lim.rlim_cur >= 2_500, "this test needs 2,500 open files, the limit is {}", lim.rlim_cur);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_do_not_starve_healthz_and_are_closed() {
    const HALF_OPEN: usize = 2_000;
    raise_fd_limit();
    let project = TempProject::new();
    let d = daemon_with_token(&project, "header_timeout_ms = 2000\nbody_timeout_ms = 1000");
    let a = addr(&d);

    // 2,000 connections that send part of their headers and then nothing.
    let opened = Instant::now();
    let mut conns = Vec::with_capacity(HALF_OPEN);
    for i in 0..HALF_OPEN {
        let mut s = TcpStream::connect(&a).await.expect("connect");
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {a}\r\nX-Slow-{i}: ").as_bytes()).await.unwrap();
        conns.push(s);
    }
    let all_open = opened.elapsed();
    eprintln!("{HALF_OPEN} half-open connections opened in {all_open:?}");

    // /healthz still answers, within 2 s.
    let asked = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(2), reqwest::get(d.url("/healthz")))
        .await
        .expect("/healthz did not answer within 2 s")
        .expect("GET /healthz");
    let answered = asked.elapsed();
    assert_eq!(health.status().as_u16(), 200);
    eprintln!("/healthz answered in {answered:?} beside {HALF_OPEN} half-open connections");

    // Every half-open connection gets closed: evicted to make room, or at the 2 s header timeout.
    let closes = conns.into_iter().map(|mut s| async move {
        let mut buf = [0u8; 512];
        let closed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        closed.map(|_| opened.elapsed())
    });
    let results = futures::future::join_all(closes).await;
    let open_left = results.iter().filter(|r| r.is_err()).count();
    let last = results.iter().filter_map(|r| r.as_ref().ok()).max().copied().unwrap_or_default();
    eprintln!(
        "all half-open connections closed {last:?} after the first and {:?} after the last was opened ({open_left} left open)",
        last.saturating_sub(all_open)
    );
    assert_eq!(open_left, 0, "half-open connections left open 20 s after the 2 s header timeout");
    let (code, body) = crate::helpers::http_get(&d.url("/healthz")).await;
    assert_eq!(code, 200, "{body}");

    // A body that stops coming: 408 after the body timeout (1 s here).
    let mut s = TcpStream::connect(&a).await.unwrap();
    let head = format!(
        "POST /api/sites/up/crawl HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n0123456789"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf)).await.expect("an answer").unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
}

/// Read one response off a keep-alive connection (headers, then `Content-Length` bytes).
async fn read_one_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).await.unwrap(), 1, "connection closed mid-response");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_progress_finish() {
    let project = TempProject::new();
    let mut d = daemon_with_token(&project, "");
    let a = addr(&d);
    // A connection the server has accepted and served once (keep-alive)...
    let mut s = TcpStream::connect(&a).await.unwrap();
    s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes()).await.unwrap();
    assert!(read_one_response(&mut s).await.starts_with("HTTP/1.1 200 "));
    // ... then starts an upload and sends half of it.
    let png = solid_png(8, 8, [200, 100, 0, 255]);
    let boundary = "sHuTdOwNbOuNdArY";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"/\"; filename=\"home.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /api/sites/up/uploads HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let half = body.len() / 2;
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..half]).await.unwrap();

    // SIGTERM; once the web server stops taking connections, the upload still completes.
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(d.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let log = d.stderr.clone();
    crate::helpers::wait_for(Duration::from_secs(60), "the web server to stop taking connections", || {
        let stopping = log.lock().unwrap().contains("web server stopping");
        async move { stopping.then_some(()) }
    })
    .await;
    assert!(TcpStream::connect(&a).await.is_err(), "a new connection after shutdown began");
    s.write_all(&body[half..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}\n{}", d.log());
    let (code, _) = d.terminate(Duration::from_secs(40));
    assert_eq!(code, Some(0), "{}", d.log());
}

/// `VmRSS` or `VmHWM` of a process, in KiB.
fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim_start_matches(':').split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// POST a streamed multipart upload of one part: `head` then `filler` zero bytes, 1 MiB at a time.
/// Returns the answer and the largest `VmRSS` of `pid` seen while sending (KiB).
async fn stream_upload(a: &str, head: &[u8], filler: usize, pid: u32) -> (Raw, u64) {
    let boundary = "gArBaGeBoUnDaRy";
    let part_head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let len = part_head.len() + head.len() + filler + tail.len();
    let req = format!(
        "POST /api/sites/up/uploads HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len}\r\n\r\n{part_head}"
    );
    let s = TcpStream::connect(a).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = rd.read_to_end(&mut buf).await;
        buf
    });
    wr.write_all(req.as_bytes()).await.unwrap();
    wr.write_all(head).await.unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut sent = 0;
    let mut peak = 0;
    while sent < filler {
        let n = chunk.len().min(filler - sent);
        wr.write_all(&chunk[..n]).await.expect("the daemon reads the whole body");
        sent += n;
        if sent % (16 << 20) == 0 {
            peak = peak.max(vm_kib(pid, "VmRSS"));
        }
    }
    wr.write_all(tail.as_bytes()).await.unwrap();
    let buf = tokio::time::timeout(Duration::from_secs(60), reader).await.expect("an answer").unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (h, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = h.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (Raw { status, head: h.to_string(), body: body.to_string() }, peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_250_mb_upload_costs_bounded_memory() {
    const BODY: usize = 250 * 1000 * 1000;
    let project = TempProject::new();
    let d = daemon_with_token(&project, "");
    let a = addr(&d);
    let pid = d.child.id();
    // Let start-up settle, then take the baseline.
    let (code, _) = crate::helpers::http_get(&d.url("/healthz")).await;
    assert_eq!(code, 200);
    let rss_before = vm_kib(pid, "VmRSS");

    let growth_mb = |kib: u64| kib.saturating_sub(rss_before) as f64 / 1024.0;
    let peak_growth = || growth_mb(vm_kib(pid, "VmHWM"));

    // Garbage from the first byte: refused at once (the rest is read and dropped).
    let (r, peak_garbage) = stream_upload(&a, b"", BODY, pid).await;
    assert!(peak_growth() < 64.0, "peak RSS grew by {:.1} MiB over a 250 MB garbage upload", peak_growth());
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("big.png: not a PNG image"), "{}", r.body);

    // A PNG signature and header, then garbage: the per-image limit stops it while reading.
    let png = solid_png(4, 4, [0, 0, 0, 255]);
    let (r, peak_big) = stream_upload(&a, &png[..33], BODY, pid).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.body.contains("the part big.png is larger than 33554432 bytes"), "{}", r.body);

    let rss_after = vm_kib(pid, "VmRSS");
    eprintln!(
        "daemon RSS before {:.1} MiB; during the garbage upload +{:.1} MiB, during the oversized part +{:.1} MiB; \
         after +{:.1} MiB; peak (VmHWM) +{:.1} MiB over the baseline",
        rss_before as f64 / 1024.0,
        growth_mb(peak_garbage),
        growth_mb(peak_big),
        growth_mb(rss_after),
        peak_growth()
    );
    assert!(peak_growth() < 64.0, "peak RSS grew by {:.1} MiB over two 250 MB uploads", peak_growth());
}
