//! `[[notify]]` webhooks (issue 18) against receivers on 127.0.0.1:0: the JSON body and its
//! HMAC signature, a 500-then-200 receiver gets the retry, a receiver that never answers does not
//! hold up crawls, and `sitediff_notifications_total{outcome}` counts what happened.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{
    http_get, metric_value, run_sitediff_in, wait_for, Daemon, FixtureServer, Response, TempProject,
};

const TOKEN: &str = "notify-test-token";
const SECRET: &str = "hook-secret";

/// One request a receiver got: its headers (lower-case names) and body.
#[derive(Clone, Debug)]
struct Hit {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver: answers its statuses in turn (the last one repeats), or never (hang).
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receiver(statuses: Vec<u16>, hang: bool) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let h = hits.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let (h, statuses) = (h.clone(), statuses.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_string();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let n = {
                    let mut hits = h.lock().unwrap();
                    hits.push(Hit { headers, body: buf[head_end..head_end + len].to_vec() });
                    hits.len()
                };
                if hang {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                let status = statuses[(n - 1).min(statuses.len() - 1)];
                let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    Receiver { url, hits, task }
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_never_hold_up_a_crawl() {
    let srv = FixtureServer::start().await;
    srv.set("/docs/", Response::html("<title>home</title><a href='a.html'>a</a> <a href='b.html'>b</a>"));
    srv.set("/docs/a.html", Response::html("<h1>A</h1>"));
    srv.set("/docs/b.html", Response::html("<h1>B</h1>"));
    let flaky = receiver(vec![500, 200], false).await;
    let hanging = receiver(vec![], true).await;
    let project = TempProject::new();
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"NOTIFY_DAEMON_TOKEN\"\n[browser]\nsessions = 1\n\
         [[sites]]\nname = \"docs\"\nstart = \"{}\"\nviewport = {{ width = 640, height = 480 }}\n\
         [[notify]]\nurl = \"{}\"\non = [\"changed\"]\nformat = \"json\"\nsecret_env = \"NOTIFY_SECRET\"\n\
         [[notify]]\nurl = \"{}\"\non = [\"finished\"]\nformat = \"slack\"\n",
        srv.url("/docs/"),
        flaky.url,
        hanging.url
    ));
    let daemon = Daemon::start_with_env(&cfg, &[("NOTIFY_DAEMON_TOKEN", TOKEN), ("NOTIFY_SECRET", SECRET)]);
    let dir = project.dir.path();
    let env = [("SITEDIFF_SERVER", daemon.base.as_str()), ("SITEDIFF_TOKEN", TOKEN)];

    // Crawl 1: all new (no "changed" event): only the hanging Slack receiver is called. The crawl
    // is over (and its site free again) while that delivery is still being tried: had it been
    // delivered on the crawl's path, all its attempts would have failed by now (4 x 10 s).
    let out = run_sitediff_in(Some(dir), &env, &["crawl", "docs"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (_, metrics) = http_get(&daemon.url("/metrics")).await;
    assert_eq!(metric_value(&metrics, "sitediff_notifications_total{outcome=\"failed\"}"), Some(0.0));
    let h = hanging.hits.clone();
    wait_for(Duration::from_secs(30), "the hanging receiver to be called", || {
        let n = h.lock().unwrap().len();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let slack: serde_json::Value = serde_json::from_slice(&hanging.hits.lock().unwrap()[0].body).unwrap();
    assert!(slack["text"].as_str().unwrap().contains("site *docs* crawl"), "{slack}");
    assert!(
        hanging.hits.lock().unwrap()[0].header("x-sitediff-signature").is_none(),
        "no secret, no signature"
    );

    let out = run_sitediff_in(Some(dir), &env, &["approve", "docs"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    srv.set("/docs/b.html", Response::html("<h1 style='background:#c00;height:200px'>B changed</h1>"));

    // Crawl 2 is not held up by the delivery of crawl 1 that still hangs.
    let out = run_sitediff_in(Some(dir), &env, &["crawl", "docs", "--json"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let crawl2 = out.json()["crawl"].as_u64().unwrap();

    // The flaky JSON receiver: 500, then the retry gets 200; both bodies signed and alike.
    let f = flaky.hits.clone();
    wait_for(Duration::from_secs(60), "the retried delivery", || {
        let n = f.lock().unwrap().len();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    let hits = flaky.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 2, "one failure, one retry, then delivered");
    assert_eq!(hits[0].body, hits[1].body);
    for hit in &hits {
        assert_eq!(
            hit.header("x-sitediff-signature"),
            Some(format!("sha256={}", hmac_hex(&hit.body)).as_str())
        );
        assert_eq!(hit.header("x-sitediff-event"), Some("changed"));
    }
    let body: serde_json::Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(body["site"], "docs");
    assert_eq!(body["crawl"].as_u64(), Some(crawl2));
    assert_eq!(body["kind"], "site");
    assert_eq!(body["counts"]["changed"], 1, "{body}");
    assert!(body["max_distortion"].as_f64().unwrap() > 0.0);
    assert_eq!(body["url"].as_str(), Some(daemon.url(&format!("/crawls/{crawl2}")).as_str()));
    assert_eq!(body["top_changed"][0]["key"], "/b.html", "{body}");

    let m = daemon.url("/metrics");
    wait_for(Duration::from_secs(30), "the delivery to be counted", || {
        let m = m.clone();
        async move {
            let (_, text) = http_get(&m).await;
            let delivered = metric_value(&text, "sitediff_notifications_total{outcome=\"delivered\"}")?;
            let retried = metric_value(&text, "sitediff_notifications_total{outcome=\"retried\"}")?;
            (delivered >= 1.0 && retried >= 1.0).then_some(())
        }
    })
    .await;
}
