//! Capture fingerprints (issue 19): what one capture was made from, so a later crawl can tell,
//! without opening the page, that rendering it again would give the same picture. The browser side
//! of it: the page's DevTools `Network` events recorded into [`Recorder`] (every request, its
//! method, status and validators), the page scripts that mark what could make the page change by
//! itself (`js/fingerprint.js`), the browser build and the system's font set. The sweep adds the
//! document's bytes, its own hashes of every response, and the capture options (see
//! `sweep/reuse.rs`), and decides reuse.
//!
//! The rule for "could change by itself" (a page that matches is never reused):
//! - it read the clock or a random source (`Date`, `performance.now`, `Math.random`, `crypto`);
//! - it set a repeating or delayed timer, ran a script animation (over 4 animation frames),
//!   created a canvas context, opened a WebSocket / EventSource / peer connection or a worker;
//! - it has media (video, audio), a frame (the settle script freezes the top document only), a
//!   plugin object;
//! - a request other than GET, a request that failed (other than by `block_urls`), a `blob:` or
//!   other non-HTTP resource, requests still in flight at the read, or images / web fonts still
//!   loading; an animated image (GIF, WebP, APNG, SVG) as DevTools reports its type;
//! - the shots never agreed (an unstable area), or the capture ran without DevTools (no events).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The document-start script (every frame): counts what could make the page change by itself.
pub const START: &str = concat!(include_str!("js/fingerprint.js"), "\nsitediffFingerprintStart();\n");
/// The read after the shots: the marks, every URL the page used, whether images/fonts still load.
pub const READ: &str = concat!(
    include_str!("js/fingerprint.js"),
    "\nreturn sitediffFingerprintRead.apply(window, arguments);\n"
);

/// Most responses recorded per page (a page with more is not fingerprinted: never reused).
pub const MAX_RESOURCES: usize = 2000;

/// The browser and system a capture was made on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// The browser build (DevTools `Browser.getVersion`: product, revision, user agent).
    pub browser: String,
    /// blake3 of the system's font list (`fc-list`), `None` when it cannot be listed.
    pub fonts: Option<String>,
}

/// One request of the page as DevTools reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub url: String,
    pub method: String,
    /// `None`: no response (failed, or still loading at the read).
    pub status: Option<u16>,
    pub mime: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub length: Option<u64>,
    /// Why it failed (DevTools `errorText`).
    pub failed: Option<String>,
}

/// What the browser side of a capture gives the fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureInputs {
    /// Every request DevTools saw, then every other URL the page reports using (no response
    /// details: the sweep fetches them itself).
    pub resources: Vec<Observed>,
    /// Why the page could change by itself (empty: it cannot, by the rule above).
    pub dynamic: Vec<String>,
    /// Whether anything on the page could still move after the settle script froze it (animated
    /// images, media, frames, images or fonts loading, live connections): the stable-shot proof
    /// needs a second shot.
    pub can_move: bool,
    pub environment: Option<Environment>,
}

/// Records one page's `Network` events (fed by its DevTools connection).
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    /// Request id -> what is known of it (a redirect chain reuses the id: its hops are kept).
    requests: BTreeMap<String, Observed>,
    hops: Vec<Observed>,
}

fn header(headers: &Value, name: &str) -> Option<String> {
    headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str().map(str::to_string))
}

fn response_into(o: &mut Observed, resp: &Value) {
    let headers = resp.get("headers").cloned().unwrap_or(Value::Null);
    o.status = resp.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok());
    o.mime = resp.get("mimeType").and_then(Value::as_str).map(str::to_string);
    o.etag = header(&headers, "etag");
    o.last_modified = header(&headers, "last-modified");
    o.length = header(&headers, "content-length").and_then(|l| l.trim().parse().ok());
}

impl Recorder {
    /// One DevTools event; events of other domains are ignored.
    pub fn event(&mut self, method: &str, params: &Value) {
        let id = params.get("requestId").and_then(Value::as_str).unwrap_or_default().to_string();
        match method {
            "Network.requestWillBeSent" => {
                if let Some(redirect) = params.get("redirectResponse") {
                    if let Some(mut hop) = self.requests.remove(&id) {
                        response_into(&mut hop, redirect);
                        self.hops.push(hop);
                    }
                }
                if self.requests.len() + self.hops.len() >= MAX_RESOURCES {
                    return;
                }
                let req = params.get("request").cloned().unwrap_or(Value::Null);
                let url = req.get("url").and_then(Value::as_str).unwrap_or_default();
                let method = req.get("method").and_then(Value::as_str).unwrap_or("GET");
                self.requests.insert(
                    id,
                    Observed {
                        url: without_fragment(url),
                        method: method.to_string(),
                        ..Observed::default()
                    },
                );
            }
            "Network.responseReceived" => {
                if let (Some(o), Some(resp)) = (self.requests.get_mut(&id), params.get("response")) {
                    response_into(o, resp);
                }
            }
            "Network.loadingFailed" => {
                if let Some(o) = self.requests.get_mut(&id) {
                    let text = params.get("errorText").and_then(Value::as_str).unwrap_or("failed");
                    let blocked = params.get("blockedReason").and_then(Value::as_str);
                    o.failed = Some(match blocked {
                        Some(b) => format!("blocked: {b}"),
                        None => text.to_string(),
                    });
                }
            }
            _ => {}
        }
    }

    /// Everything recorded, redirect hops first.
    pub fn finish(self) -> Vec<Observed> {
        let mut all = self.hops;
        all.extend(self.requests.into_values());
        all
    }
}

/// `url` without its fragment.
fn without_fragment(url: &str) -> String {
    url.split('#').next().unwrap_or(url).to_string()
}

/// Image types that can animate by themselves (the settle script cannot freeze them).
fn animated_mime(mime: &str) -> bool {
    matches!(mime, "image/gif" | "image/webp" | "image/apng" | "image/svg+xml" | "image/avif")
}

/// The capture's inputs from the recorded requests and the read script's answer (`read`), by the
/// rule in this module's documentation. `document` (the page's own URL, without fragment) is left
/// out of the resources: the sweep checks it from discovery.
pub fn inputs(
    observed: Vec<Observed>,
    read: &Value,
    document: &[&str],
    environment: Option<Environment>,
) -> CaptureInputs {
    let mut dynamic: Vec<String> = Vec::new();
    let mut can_move = false;
    if let Some(marks) = read.get("marks").and_then(Value::as_object) {
        for (mark, _) in marks {
            dynamic.push(mark.clone());
            if matches!(
                mark.as_str(),
                "media"
                    | "frame"
                    | "cross-origin-frame"
                    | "unwatched-frame"
                    | "deep-frames"
                    | "plugin"
                    | "connection"
                    | "worker"
                    | "requests-in-flight"
            ) {
                can_move = true;
            }
        }
    }
    for (flag, reason) in [("fontsLoading", "fonts-loading"), ("imagesLoading", "images-loading")] {
        if read.get(flag).and_then(Value::as_bool) == Some(true) {
            dynamic.push(reason.to_string());
            can_move = true;
        }
    }
    let mut resources: Vec<Observed> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for o in observed {
        let scheme = o.url.split(':').next().unwrap_or_default().to_ascii_lowercase();
        if scheme == "data" {
            // Inline content: part of its document or style sheet.
            continue;
        }
        if scheme != "http" && scheme != "https" {
            dynamic.push(format!("{scheme}-url"));
            continue;
        }
        if !o.method.eq_ignore_ascii_case("GET") {
            dynamic.push("non-get-request".into());
        }
        if let Some(f) = &o.failed {
            if !f.contains("blocked: inspector") && !f.contains("ERR_BLOCKED_BY_CLIENT") {
                dynamic.push("failed-request".into());
            }
        } else if o.status.is_none() {
            dynamic.push("no-response".into());
        }
        if o.mime.as_deref().is_some_and(animated_mime) {
            dynamic.push("animated-image".into());
            can_move = true;
        }
        if o.failed.is_none() && document.contains(&o.url.as_str()) {
            continue;
        }
        if seen.insert((o.url.clone(), o.status)) {
            resources.push(o);
        }
    }
    let known: std::collections::HashSet<String> = resources.iter().map(|o| o.url.clone()).collect();
    for u in read.get("urls").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        let u = without_fragment(u);
        let scheme = u.split(':').next().unwrap_or_default().to_ascii_lowercase();
        if scheme == "data" || document.contains(&u.as_str()) || known.contains(&u) {
            continue;
        }
        if scheme != "http" && scheme != "https" {
            dynamic.push(format!("{scheme}-url"));
            continue;
        }
        if seen.insert((u.clone(), None)) {
            resources.push(Observed { url: u, method: "GET".into(), ..Observed::default() });
        }
    }
    if resources.len() > MAX_RESOURCES {
        dynamic.push("too-many-resources".into());
    }
    dynamic.sort();
    dynamic.dedup();
    CaptureInputs { resources, dynamic, can_move, environment }
}

/// The browser build as `Browser.getVersion` answers it.
pub fn browser_build(version: &Value) -> String {
    let field = |k: &str| version.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    format!("{} (revision {}; {})", field("product"), field("revision"), field("userAgent"))
}

/// blake3 of the system font list (`fc-list`, sorted), computed once per process. `None` when
/// `fc-list` is missing or fails: captures then are never reused.
pub async fn system_fonts() -> Option<String> {
    static FONTS: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();
    FONTS
        .get_or_init(|| async {
            let out = tokio::task::spawn_blocking(|| {
                std::process::Command::new("fc-list")
                    .args([":", "family", "style", "file", "fontversion"])
                    .output()
            })
            .await;
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    tracing::warn!(error = %e, "listing the fonts failed: captures will not be reused");
                    return None;
                }
            };
            match out {
                Ok(o) if o.status.success() => {
                    let text = String::from_utf8_lossy(&o.stdout);
                    let mut lines: Vec<&str> = text.lines().collect();
                    lines.sort_unstable();
                    Some(blake3::hash(lines.join("\n").as_bytes()).to_hex().to_string())
                }
                Ok(o) => {
                    tracing::warn!(status = %o.status, "fc-list failed: captures will not be reused");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot run fc-list: captures will not be reused");
                    None
                }
            }
        })
        .await
        .clone()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn redirects_statuses_and_validators_are_recorded() {
        let mut r = Recorder::default();
        r.event(
            "Network.requestWillBeSent",
            &json!({"requestId": "1", "request": {"url": "http://h/a.png#x", "method": "GET"}}),
        );
        r.event(
            "Network.requestWillBeSent",
            &json!({"requestId": "1", "request": {"url": "http://h/b.png", "method": "GET"},
                    "redirectResponse": {"status": 302, "headers": {"Location": "/b.png"}}}),
        );
        r.event(
            "Network.responseReceived",
            &json!({"requestId": "1", "response": {"status": 200, "mimeType": "image/png",
                    "headers": {"ETag": "\"v1\"", "Content-Length": "12"}}}),
        );
        r.event(
            "Network.requestWillBeSent",
            &json!({"requestId": "2", "request": {"url": "http://h/api", "method": "POST"}}),
        );
        r.event("Network.loadingFailed", &json!({"requestId": "2", "errorText": "net::ERR_FAILED"}));
        let all = r.finish();
        assert_eq!(all[0].url, "http://h/a.png");
        assert_eq!(all[0].status, Some(302));
        assert_eq!(all[1].url, "http://h/b.png");
        assert_eq!((all[1].etag.as_deref(), all[1].length), (Some("\"v1\""), Some(12)));
        let inputs = inputs(all, &json!({"marks": {}, "urls": []}), &[], None);
        assert_eq!(inputs.dynamic, ["failed-request", "non-get-request"]);
        assert!(!inputs.can_move);
    }

    #[test]
    fn the_rule_marks_what_can_change_and_what_can_move() {
        let read = json!({"marks": {"clock": 2}, "urls": ["http://h/s.css", "data:x", "http://h/p.html#top"],
                          "fontsLoading": false, "imagesLoading": false});
        let gif = Observed {
            url: "http://h/a.gif".into(),
            method: "GET".into(),
            status: Some(200),
            mime: Some("image/gif".into()),
            ..Observed::default()
        };
        let i = inputs(vec![gif], &read, &["http://h/p.html"], None);
        assert_eq!(i.dynamic, ["animated-image", "clock"]);
        assert!(i.can_move, "a GIF keeps moving after the freeze");
        let urls: Vec<&str> = i.resources.iter().map(|o| o.url.as_str()).collect();
        assert_eq!(urls, ["http://h/a.gif", "http://h/s.css"], "the document and inline data are left out");

        let still = inputs(Vec::new(), &json!({"marks": {}, "urls": []}), &[], None);
        assert!(still.dynamic.is_empty() && !still.can_move);
        let media = inputs(Vec::new(), &json!({"marks": {"media": 1}, "imagesLoading": true}), &[], None);
        assert_eq!(media.dynamic, ["images-loading", "media"]);
        assert!(media.can_move);
    }
}
