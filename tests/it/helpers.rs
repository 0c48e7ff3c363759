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
}

impl Response {
    pub fn html(body: impl Into<String>) -> Response {
        Response::with_type(200, "text/html; charset=utf-8", body.into().into_bytes())
    }
    pub fn with_type(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response { status, headers: vec![("Content-Type".into(), content_type.into())], body, hang: false }
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
}

type Routes = Arc<Mutex<HashMap<String, Response>>>;

/// A programmable HTTP/1.1 server on 127.0.0.1:0. Routes are matched on the raw request target
/// (path + query). It records every request target it served.
pub struct FixtureServer {
    pub addr: SocketAddr,
    routes: Routes,
    hits: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FixtureServer {
    pub async fn start() -> FixtureServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fixture server");
        let addr = listener.local_addr().expect("fixture addr");
        let routes: Routes = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, h) = (routes.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { break };
                let (r, h) = (r.clone(), h.clone());
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
                    h.lock().unwrap().push(target.clone());
                    let resp = r.lock().unwrap().get(&target).cloned();
                    let resp = resp.unwrap_or_else(|| Response::status(404, "<h1>not found</h1>"));
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
        FixtureServer { addr, routes, hits, task }
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

    /// Every request target served so far, in order.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
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
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(sitediff_bin())
            .args(&args)
            .env_remove("SITEDIFF_CONFIG")
            .output()
            .expect("run sitediff");
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
