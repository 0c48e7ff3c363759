//! JUnit XML of one crawl, for CI test tabs: one testsuite per crawl, one testcase per page
//! (classname = site, name = page key); `<failure>` for changed, added and removed pages (with
//! the distortion and a link to the page in the review UI), `<error>` for newly failed captures,
//! `<skipped>` for new pages and pages still failing as in the approved crawl.

use std::fmt::Write as _;

use super::{CrawlReport, PageResult};

/// Where a page's link in the review UI points: `{ui_base}/crawls/{id}/page?key=...`.
pub fn page_link(ui_base: &str, crawl: u64, key: &str) -> String {
    let key = percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC);
    format!("{}/crawls/{crawl}/page?key={key}", ui_base.trim_end_matches('/'))
}

/// Text escaped for XML 1.0 (attributes and character data); characters XML cannot carry at
/// all (most control characters) become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// What one page is in JUnit terms.
enum Verdict<'a> {
    Pass,
    Failure { kind: &'a str, message: String },
    Error { message: String },
    Skipped { message: String },
}

fn verdict(p: &PageResult) -> Verdict<'_> {
    match p.change {
        "changed" => Verdict::Failure {
            kind: "changed",
            message: format!("changed: distortion {:.6}", p.distortion.unwrap_or(0.0)),
        },
        "added" => Verdict::Failure { kind: "added", message: "only on the head side".into() },
        "removed" => Verdict::Failure { kind: "removed", message: "only on the base side".into() },
        "failed" => Verdict::Error {
            message: format!("capture failed: {}", p.error.as_deref().unwrap_or("unknown error")),
        },
        "new" => Verdict::Skipped { message: "new page: no baseline yet".into() },
        "still_failing" => Verdict::Skipped {
            message: format!(
                "still failing as in the approved crawl: {}",
                p.error.as_deref().unwrap_or("unknown error")
            ),
        },
        _ => Verdict::Pass,
    }
}

/// The JUnit XML document of a crawl report; `ui_base` is the review UI's address for links.
pub fn render(report: &CrawlReport, ui_base: &str) -> String {
    let (mut failures, mut errors, mut skipped) = (0usize, 0usize, 0usize);
    for p in &report.page_results {
        match verdict(p) {
            Verdict::Failure { .. } => failures += 1,
            Verdict::Error { .. } => errors += 1,
            Verdict::Skipped { .. } => skipped += 1,
            Verdict::Pass => {}
        }
    }
    let tests = report.page_results.len();
    let secs = report.finished_at.map(|f| (f - report.started_at).max(0) as f64 / 1000.0).unwrap_or(0.0);
    let timestamp = chrono::DateTime::from_timestamp_millis(report.started_at)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default();
    let suite = format!("sitediff {} crawl {}", report.site, report.crawl);
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"sitediff\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{secs:.3}\">"
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{secs:.3}\" timestamp=\"{timestamp}\">",
        escape(&suite)
    );
    x.push_str("    <properties>\n");
    let crawl_link = format!("{}/crawls/{}", ui_base.trim_end_matches('/'), report.crawl);
    let props = [
        ("site", report.site.clone()),
        ("crawl", report.crawl.to_string()),
        ("status", report.status.to_string()),
        ("max_distortion", format!("{:.6}", report.max_distortion)),
        ("review", crawl_link),
    ];
    for (name, value) in props.iter().chain(report.compare_to.as_ref().map(|b| ("base", b.clone())).iter()) {
        let _ = writeln!(x, "      <property name=\"{name}\" value=\"{}\"/>", escape(value));
    }
    x.push_str("    </properties>\n");
    for p in &report.page_results {
        let link = page_link(ui_base, report.crawl, &p.key);
        let _ = write!(
            x,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
            escape(&report.site),
            escape(&p.key)
        );
        let detail = escape(&format!("{}\nreview: {link}", p.url));
        match verdict(p) {
            Verdict::Pass => x.push_str("/>\n"),
            Verdict::Failure { kind, message } => {
                let _ = writeln!(
                    x,
                    ">\n      <failure type=\"{kind}\" message=\"{}\">{detail}</failure>\n    </testcase>",
                    escape(&message)
                );
            }
            Verdict::Error { message } => {
                let _ = writeln!(
                    x,
                    ">\n      <error type=\"failed\" message=\"{}\">{detail}</error>\n    </testcase>",
                    escape(&message)
                );
            }
            Verdict::Skipped { message } => {
                let _ = writeln!(x, ">\n      <skipped message=\"{}\"/>\n    </testcase>", escape(&message));
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;\u{FFFD}"
        );
        assert_eq!(page_link("http://h:1/", 3, "/a b?x"), "http://h:1/crawls/3/page?key=%2Fa%20b%3Fx");
    }
}
