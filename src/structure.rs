//! Structural site diff: which pages a crawl added, removed, reached through a redirect or found
//! answering an error, compared with the site's approved crawl (or, for pair crawls, with the base
//! side). Pure functions over page records; the sweep stores the result on the crawl record, which
//! is why its types live with the records in `store::model` (re-exported here).

use std::collections::HashSet;

use crate::store::{CrawlKind, CrawlRecord, PageChange, PageOutcome, PageRecord, Store, StoreError};
pub use crate::store::{Redirect, StructuralChange, StructuralDiff, MAX_LISTED_KEYS};

/// How one page of the current crawl counts, given the keys of the reference crawl (`None`: no
/// reference, every answering page is added).
fn classify(page: &PageRecord, before: Option<&HashSet<&str>>) -> StructuralChange {
    if page.outcome == PageOutcome::HttpError || page.http_status.is_some_and(|s| s >= 400) {
        StructuralChange::Error
    } else if page.redirected_from.is_some() {
        StructuralChange::Redirected
    } else if before.is_none_or(|keys| !keys.contains(page.key.as_str())) {
        StructuralChange::Added
    } else {
        StructuralChange::Unchanged
    }
}

/// Compare a crawl's pages with those of the approved crawl `against` (id and pages), if any.
/// Keys of the approved crawl that now redirect elsewhere count as redirected, not removed.
pub fn diff(against: Option<(u64, &[PageRecord])>, current: &[PageRecord]) -> StructuralDiff {
    let mut out = StructuralDiff { against: against.map(|(id, _)| id), ..StructuralDiff::default() };
    // Pages that answered in the approved crawl (one that was an error there and answers now is added).
    let answered = |p: &&PageRecord| p.outcome != PageOutcome::HttpError;
    let before: Option<HashSet<&str>> =
        against.map(|(_, pages)| pages.iter().filter(answered).map(|p| p.key.as_str()).collect());
    let mut sorted: Vec<&PageRecord> = current.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut seen: HashSet<&str> = HashSet::new();
    for p in &sorted {
        seen.insert(p.key.as_str());
        match classify(p, before.as_ref()) {
            StructuralChange::Redirected => {
                let from = p.redirected_from.as_deref().unwrap_or_default();
                seen.insert(from);
                out.record(StructuralChange::Redirected, from, Some(&p.key));
            }
            c => out.record(c, &p.key, None),
        }
    }
    if let Some((_, pages)) = against {
        let mut gone: Vec<&str> =
            pages.iter().filter(answered).map(|p| p.key.as_str()).filter(|k| !seen.contains(k)).collect();
        gone.sort_unstable();
        gone.dedup();
        for k in gone {
            out.record(StructuralChange::Removed, k, None);
        }
    }
    out
}

/// The structure of a pair crawl: added and removed come from the page-by-page comparison of the
/// two sides; redirects and errors are those of the head side.
pub fn pair_diff(pages: &[PageRecord]) -> StructuralDiff {
    let mut out = StructuralDiff::default();
    let mut sorted: Vec<&PageRecord> = pages.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for p in sorted {
        match p.change {
            PageChange::Added => out.record(StructuralChange::Added, &p.key, None),
            PageChange::Removed => out.record(StructuralChange::Removed, &p.key, None),
            _ => match classify(p, None) {
                StructuralChange::Redirected => {
                    let from = p.redirected_from.as_deref().unwrap_or_default();
                    out.record(StructuralChange::Redirected, from, Some(&p.key));
                }
                StructuralChange::Error => out.record(StructuralChange::Error, &p.key, None),
                _ => out.record(StructuralChange::Unchanged, &p.key, None),
            },
        }
    }
    out
}

/// The structural diff of a finished crawl with `pages`: pair crawls against their base side,
/// others against `against`, the approved crawl read with the crawl's baselines when it started
/// ([`Store::comparison_basis`]), so the structure and the pages' `baseline_crawl` come from one
/// snapshot (blocking: reads the store).
pub fn of_crawl(
    store: &Store,
    crawl: &CrawlRecord,
    against: Option<u64>,
    pages: &[PageRecord],
) -> Result<StructuralDiff, StoreError> {
    if crawl.kind == CrawlKind::Pair {
        return Ok(pair_diff(pages));
    }
    match against {
        Some(id) => {
            let before = store.pages(id)?;
            Ok(diff(Some((id, &before)), pages))
        }
        None => Ok(diff(None, pages)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(key: &str) -> PageRecord {
        let mut p = PageRecord::failed(key.into(), format!("http://h{key}"), PageOutcome::Ok, String::new());
        p.error = None;
        p.change = PageChange::Unchanged;
        p.http_status = Some(200);
        p
    }

    fn http_error(key: &str, status: u16) -> PageRecord {
        let mut p =
            PageRecord::failed(key.into(), format!("http://h{key}"), PageOutcome::HttpError, "x".into());
        p.http_status = Some(status);
        p
    }

    #[test]
    fn first_crawl_counts_everything_as_added() {
        let d = diff(None, &[ok("/a"), ok("/b"), http_error("/c", 404)]);
        assert_eq!((d.added, d.removed, d.error, d.unchanged, d.against), (2, 0, 1, 0, None));
        assert_eq!(d.added_keys, ["/a", "/b"]);
    }

    #[test]
    fn added_removed_redirected_error_unchanged() {
        let before = [ok("/a"), ok("/b"), ok("/old"), ok("/gone"), ok("/broken")];
        let mut moved = ok("/new");
        moved.redirected_from = Some("/old".into());
        let now = [ok("/a"), ok("/b"), moved, ok("/fresh"), http_error("/broken", 500)];
        let d = diff(Some((7, &before)), &now);
        assert_eq!(d.against, Some(7));
        assert_eq!(d.added_keys, ["/fresh"]);
        assert_eq!(d.removed_keys, ["/gone"]);
        assert_eq!(d.redirects, [Redirect { from: "/old".into(), to: "/new".into() }]);
        assert_eq!(d.error_keys, ["/broken"]);
        assert_eq!(d.unchanged, 2);
        for c in StructuralChange::ALL {
            let expected = if c == StructuralChange::Unchanged { 2 } else { 1 };
            assert_eq!(d.count(c), expected, "{}", c.as_str());
        }
        assert!(d.has_changes());
        let same = diff(Some((7, &before[..2])), &before[..2]);
        // An error page of the approved crawl that answers now is added; if it disappears, it is
        // not counted as removed.
        let was_broken = [ok("/a"), http_error("/b", 404), http_error("/c", 500)];
        let d = diff(Some((8, &was_broken)), &[ok("/a"), ok("/b")]);
        assert_eq!((d.added_keys.as_slice(), d.removed), (["/b".to_string()].as_slice(), 0));
        assert!(!same.has_changes() && same.unchanged == 2);
    }

    #[test]
    fn key_lists_are_bounded_counts_exact() {
        let now: Vec<PageRecord> = (0..MAX_LISTED_KEYS + 5).map(|i| ok(&format!("/p{i}"))).collect();
        let d = diff(Some((1, &[])), &now);
        assert_eq!(d.added as usize, MAX_LISTED_KEYS + 5);
        assert_eq!(d.added_keys.len(), MAX_LISTED_KEYS);
    }

    #[test]
    fn pair_structure_follows_page_changes() {
        let mut added = ok("/new");
        added.change = PageChange::Added;
        let mut removed = ok("/gone");
        removed.change = PageChange::Removed;
        let d = pair_diff(&[ok("/a"), added, removed, http_error("/x", 503)]);
        assert_eq!((d.added, d.removed, d.error, d.unchanged), (1, 1, 1, 1));
        assert_eq!(d.removed_keys, ["/gone"]);
    }
}
