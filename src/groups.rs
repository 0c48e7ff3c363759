//! Change groups of a crawl: its changed pages gathered by the change signature their comparison
//! recorded (`PageRecord::group`, see [`crate::diff::change_signature`] for what "the same change"
//! means). Biggest group first; each with a representative page (the first by key) whose diff and
//! change preview stand for all.

use serde::Serialize;

use crate::diff::Rect;
use crate::store::{Hash, PageChange, PageRecord};

/// Page keys listed per group (the counts are always exact).
pub const MAX_GROUP_KEYS: usize = 200;

/// One group of identical changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeGroup {
    pub id: String,
    /// Changed pages in the group.
    pub pages: usize,
    /// Of those, not approved yet.
    pub pending: usize,
    /// Page keys, in key order, cut at [`MAX_GROUP_KEYS`].
    pub keys: Vec<String>,
    /// The representative page and its artifacts.
    pub representative: String,
    pub diff: Option<Hash>,
    pub change_preview: Option<Hash>,
    pub png: Option<Hash>,
    pub regions: Vec<Rect>,
}

/// What grouping needs to know of one page (a stored record, or the web layer's summary of one).
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub key: &'a str,
    pub group: Option<&'a str>,
    pub change: PageChange,
    pub approved: bool,
    pub diff: Option<Hash>,
    pub change_preview: Option<Hash>,
    pub png: Option<Hash>,
    pub regions: &'a [Rect],
}

impl<'a> From<&'a PageRecord> for Member<'a> {
    fn from(p: &'a PageRecord) -> Member<'a> {
        Member {
            key: &p.key,
            group: p.group.as_deref(),
            change: p.change,
            approved: p.approved,
            diff: p.diff,
            change_preview: p.change_preview,
            png: p.png,
            regions: &p.regions,
        }
    }
}

/// The change groups of a crawl's pages (changed pages with a group), biggest first, then by id.
pub fn change_groups(pages: &[PageRecord]) -> Vec<ChangeGroup> {
    group_members(pages.iter().map(Member::from), MAX_GROUP_KEYS)
}

/// The change groups among `members` (given in key order), each listing at most `max_keys` keys.
pub fn group_members<'a>(members: impl Iterator<Item = Member<'a>>, max_keys: usize) -> Vec<ChangeGroup> {
    let mut groups: Vec<ChangeGroup> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for p in members.filter(|p| p.change == PageChange::Changed) {
        let Some(id) = p.group else { continue };
        let i = *index.entry(id).or_insert_with(|| {
            groups.push(ChangeGroup {
                id: id.to_string(),
                pages: 0,
                pending: 0,
                keys: Vec::new(),
                representative: p.key.to_string(),
                diff: p.diff,
                change_preview: p.change_preview,
                png: p.png,
                regions: p.regions.to_vec(),
            });
            groups.len() - 1
        });
        let g = &mut groups[i];
        g.pages += 1;
        g.pending += usize::from(!p.approved);
        if g.keys.len() < max_keys {
            g.keys.push(p.key.to_string());
        }
    }
    groups.sort_by(|a, b| b.pages.cmp(&a.pages).then_with(|| a.id.cmp(&b.id)));
    groups
}

/// The keys of the pending (not approved) changed pages of group `id`.
pub fn pending_keys(pages: &[PageRecord], id: &str) -> Vec<String> {
    pages
        .iter()
        .filter(|p| p.change == PageChange::Changed && !p.approved && p.group.as_deref() == Some(id))
        .map(|p| p.key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(key: &str, change: PageChange, group: Option<&str>, approved: bool) -> PageRecord {
        PageRecord {
            change,
            group: group.map(str::to_string),
            approved,
            ..PageRecord::new(key.into(), key.into())
        }
    }

    #[test]
    fn groups_are_changed_pages_by_signature_biggest_first() {
        let pages = [
            page("/a", PageChange::Changed, Some("b1"), false),
            page("/b", PageChange::Changed, Some("a1"), false),
            page("/c", PageChange::Changed, Some("a1"), true),
            page("/d", PageChange::Unchanged, Some("a1"), false),
            page("/e", PageChange::Changed, None, false),
        ];
        let g = change_groups(&pages);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].id.as_str(), g[0].pages, g[0].pending), ("a1", 2, 1));
        assert_eq!(
            (g[0].representative.as_str(), g[0].keys.clone()),
            ("/b", vec!["/b".to_string(), "/c".into()])
        );
        assert_eq!((g[1].id.as_str(), g[1].pages), ("b1", 1));
        assert_eq!(pending_keys(&pages, "a1"), ["/b"]);
    }
}
