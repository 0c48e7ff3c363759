//! What a `[[notify]]` webhook is sent: which events a finished crawl raises, the JSON and
//! Slack-compatible bodies (site, crawl id, kind, counts, max distortion, the UI link, the top
//! changed pages) and the HMAC-SHA256 signature of a body. Pure functions.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::NotifyOn;
use crate::store::{CrawlRecord, CrawlStatus, PageChange, PageRecord};

/// Changed pages named in a notification.
pub const TOP_CHANGED: usize = 10;

/// The events a finished crawl raises.
pub fn events(crawl: &CrawlRecord) -> Vec<NotifyOn> {
    let c = &crawl.counts;
    let mut out = vec![NotifyOn::Finished];
    if c.changed + c.added + c.removed > 0 {
        out.push(NotifyOn::Changed);
    }
    if matches!(crawl.status, CrawlStatus::Failed | CrawlStatus::Interrupted) || c.failed > 0 {
        out.push(NotifyOn::Failed);
    }
    out
}

fn review_url(ui_base: &str, crawl: u64) -> String {
    format!("{}/crawls/{crawl}", ui_base.trim_end_matches('/'))
}

/// The changed pages, largest distortion first, at most [`TOP_CHANGED`].
fn top_changed(pages: &[PageRecord]) -> Vec<&PageRecord> {
    let mut changed: Vec<&PageRecord> = pages.iter().filter(|p| p.change == PageChange::Changed).collect();
    changed.sort_by(|a, b| {
        b.distortion.unwrap_or(0.0).total_cmp(&a.distortion.unwrap_or(0.0)).then_with(|| a.key.cmp(&b.key))
    });
    changed.truncate(TOP_CHANGED);
    changed
}

/// sitediff's JSON notification.
pub fn json_body(
    crawl: &CrawlRecord,
    pages: &[PageRecord],
    events: &[NotifyOn],
    ui_base: &str,
) -> serde_json::Value {
    let c = &crawl.counts;
    let top: Vec<serde_json::Value> = top_changed(pages)
        .iter()
        .map(|p| {
            serde_json::json!({
                "key": p.key,
                "url": p.url,
                "distortion": p.distortion,
                "review_url": crate::report::junit::page_link(ui_base, crawl.id, &p.key),
            })
        })
        .collect();
    serde_json::json!({
        "site": crawl.site,
        "crawl": crawl.id,
        "kind": crawl.kind,
        "status": crawl.status.as_str(),
        "events": events,
        "counts": {
            "pages": c.pages,
            "changed": c.changed,
            "new": c.new,
            "unchanged": c.unchanged,
            "failed": c.failed,
            "still_failing": c.still_failing,
            "added": c.added,
            "removed": c.removed,
        },
        "max_distortion": crawl.max_distortion,
        "compare_to": crawl.compare_to,
        "error": crawl.error,
        "url": review_url(ui_base, crawl.id),
        "top_changed": top,
    })
}

/// Text escaped for Slack's mrkdwn (`&`, `<`, `>`).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A Slack-compatible incoming-webhook body (`{"text": ...}`).
pub fn slack_body(crawl: &CrawlRecord, pages: &[PageRecord], ui_base: &str) -> serde_json::Value {
    let c = &crawl.counts;
    let mut text = format!(
        "sitediff: site *{}* crawl {} {}: {} changed, {} new, {} failed of {} pages (max distortion {:.6})",
        slack_escape(&crawl.site),
        crawl.id,
        crawl.status.as_str(),
        c.changed + c.added + c.removed,
        c.new,
        c.failed,
        c.pages,
        crawl.max_distortion
    );
    if let Some(e) = &crawl.error {
        text.push_str(&format!("\nerror: {}", slack_escape(e)));
    }
    text.push_str(&format!("\n<{}|Review crawl {}>", review_url(ui_base, crawl.id), crawl.id));
    for p in top_changed(pages) {
        text.push_str(&format!("\n• {} {:.6}", slack_escape(&p.key), p.distortion.unwrap_or(0.0)));
    }
    serde_json::json!({ "text": text })
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret` (as GitHub signs webhooks).
pub fn signature(secret: &str, body: &[u8]) -> String {
    // An HMAC takes keys of any length: this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn slack_text_is_escaped() {
        assert_eq!(slack_escape("<a>&"), "&lt;a&gt;&amp;");
    }
}
