//! The text change of a page: visible text extracted from captured HTML (scraper), compared line
//! by line (similar) and grouped into hunks with context for the page view.

use std::time::Duration;

use similar::{ChangeTag, TextDiff};

/// Elements whose text is not visible.
const INVISIBLE: [&str; 6] = ["script", "style", "noscript", "template", "head", "title"];
/// Lines of text considered per side (the rest is ignored and the result marked truncated).
pub const MAX_TEXT_LINES: usize = 20_000;
/// Diff lines shown at most.
pub const MAX_SHOWN_LINES: usize = 2_000;
/// Unchanged lines kept around each change.
const CONTEXT_LINES: usize = 3;
/// Upper bound for the diff algorithm on pathological inputs.
const DIFF_TIMEOUT: Duration = Duration::from_secs(2);

/// The visible text of an HTML document, one line per text node, whitespace collapsed.
pub fn visible_text(html: &str) -> Vec<String> {
    let doc = scraper::Html::parse_document(html);
    let mut lines = Vec::new();
    for node in doc.tree.root().descendants() {
        let Some(text) = node.value().as_text() else { continue };
        let hidden = node.ancestors().any(|a| {
            a.value()
                .as_element()
                .is_some_and(|e| INVISIBLE.contains(&e.name()) || e.attr("hidden").is_some())
        });
        if hidden {
            continue;
        }
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !line.is_empty() {
            lines.push(line);
            if lines.len() >= MAX_TEXT_LINES {
                break;
            }
        }
    }
    lines
}

/// How one diff line relates the two texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineTag {
    Same,
    Removed,
    Added,
}

/// One line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    pub tag: LineTag,
    pub text: String,
}

/// A line diff of two texts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextChange {
    /// Groups of changed lines with context; empty when the texts are equal.
    pub hunks: Vec<Vec<DiffLine>>,
    pub added: usize,
    pub removed: usize,
    /// Not every line is shown (input or output limits).
    pub truncated: bool,
}

/// Compare two texts (lines) and group the changes.
pub fn line_diff(old: &[String], new: &[String]) -> TextChange {
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    let new: Vec<&str> = new.iter().map(String::as_str).collect();
    let diff = TextDiff::configure().timeout(DIFF_TIMEOUT).diff_slices(&old, &new);
    let mut out = TextChange {
        truncated: old.len() >= MAX_TEXT_LINES || new.len() >= MAX_TEXT_LINES,
        ..TextChange::default()
    };
    let mut shown = 0usize;
    for group in diff.grouped_ops(CONTEXT_LINES) {
        let mut hunk = Vec::new();
        for op in &group {
            for change in diff.iter_changes(op) {
                let tag = match change.tag() {
                    ChangeTag::Equal => LineTag::Same,
                    ChangeTag::Delete => {
                        out.removed += 1;
                        LineTag::Removed
                    }
                    ChangeTag::Insert => {
                        out.added += 1;
                        LineTag::Added
                    }
                };
                if shown < MAX_SHOWN_LINES {
                    hunk.push(DiffLine { tag, text: change.value().to_string() });
                    shown += 1;
                } else {
                    out.truncated = true;
                }
            }
        }
        if !hunk.is_empty() {
            out.hunks.push(hunk);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_visible_text_only() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body>\
                    <h1>  Hello\n   world </h1><script>var x = '<p>no</p>';</script>\
                    <p>one <b>two</b></p><div hidden>secret</div><noscript>ns</noscript></body></html>";
        assert_eq!(visible_text(html), vec!["Hello world", "one", "two"]);
    }

    #[test]
    fn diff_groups_changes_with_context() {
        let old: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
        let mut new = old.clone();
        new[10] = "changed".into();
        new.push("tail".into());
        let d = line_diff(&old, &new);
        assert_eq!((d.added, d.removed), (2, 1));
        assert_eq!(d.hunks.len(), 2);
        let first = &d.hunks[0];
        assert_eq!(first.len(), 3 + 2 + 3);
        assert!(first.contains(&DiffLine { tag: LineTag::Removed, text: "line 10".into() }));
        assert!(first.contains(&DiffLine { tag: LineTag::Added, text: "changed".into() }));
        assert!(line_diff(&old, &old).hunks.is_empty());
    }
}
