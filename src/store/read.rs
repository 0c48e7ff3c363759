//! Typed reads over open tables, shared by read transactions (the plain reads in `mod.rs`) and write
//! transactions (approvals and retention read what they change in the transaction that changes it).

use std::collections::HashMap;

use redb::ReadableTable;

use super::error::{baseline_key, crawl_key, db_err, decode, page_key};
use super::model::{BaselineRecord, CrawlKind, CrawlRecord, CrawlStatus, PageRecord};
use super::StoreError;

/// The crawl record `id`, if there is one.
pub(super) fn crawl(
    t: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
    op: &'static str,
) -> Result<Option<CrawlRecord>, StoreError> {
    let v = t.get(id).map_err(db_err(op))?;
    v.map(|v| decode("crawl", || crawl_key(id), v.value())).transpose()
}

/// The ids of a site's crawls, oldest first.
pub(super) fn crawl_ids(
    idx: &impl ReadableTable<(&'static str, u64), ()>,
    site: &str,
    op: &'static str,
) -> Result<Vec<u64>, StoreError> {
    let mut ids = Vec::new();
    for entry in idx.range((site, 0)..=(site, u64::MAX)).map_err(db_err(op))? {
        let (k, _) = entry.map_err(db_err(op))?;
        ids.push(k.value().1);
    }
    Ok(ids)
}

/// The page results of a crawl, in page-key order.
pub(super) fn pages(
    t: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    crawl: u64,
    op: &'static str,
) -> Result<Vec<PageRecord>, StoreError> {
    let mut out = Vec::new();
    for entry in t.range((crawl, "")..(crawl + 1, "")).map_err(db_err(op))? {
        let (k, v) = entry.map_err(db_err(op))?;
        out.push(decode("page", || page_key(crawl, k.value().1), v.value())?);
    }
    Ok(out)
}

/// One page result.
pub(super) fn page(
    t: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    crawl: u64,
    key: &str,
    op: &'static str,
) -> Result<Option<PageRecord>, StoreError> {
    let rec = t.get((crawl, key)).map_err(db_err(op))?;
    rec.map(|v| decode("page", || page_key(crawl, key), v.value())).transpose()
}

/// The baseline of one page key.
pub(super) fn baseline(
    t: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    site: &str,
    key: &str,
    op: &'static str,
) -> Result<Option<BaselineRecord>, StoreError> {
    let rec = t.get((site, key)).map_err(db_err(op))?;
    rec.map(|v| decode("baseline", || baseline_key(site, key), v.value())).transpose()
}

/// All baselines of a site, in page-key order.
pub(super) fn baselines(
    t: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    site: &str,
    op: &'static str,
) -> Result<Vec<(String, BaselineRecord)>, StoreError> {
    let mut out = Vec::new();
    for entry in t.range((site, "")..).map_err(db_err(op))? {
        let (k, v) = entry.map_err(db_err(op))?;
        let (s, key) = k.value();
        if s != site {
            break;
        }
        out.push((key.to_string(), decode("baseline", || baseline_key(site, key), v.value())?));
    }
    Ok(out)
}

/// The newest approval of `site`: the largest id among its approved (non-pair) crawls and the
/// crawls its baselines come from (page approvals included). `baselines`: the site's, already read.
pub(super) fn newest_approval(
    crawls: &impl ReadableTable<u64, &'static [u8]>,
    idx: &impl ReadableTable<(&'static str, u64), ()>,
    baselines: &HashMap<String, BaselineRecord>,
    site: &str,
    op: &'static str,
) -> Result<Option<u64>, StoreError> {
    Ok(newest_of(&approved_crawls(crawls, idx, site, u64::MAX, op)?, baselines))
}

/// The newest approval among a site's `approved` crawls and the crawls its `baselines` come from.
pub(super) fn newest_of(
    approved: &[CrawlRecord],
    baselines: &HashMap<String, BaselineRecord>,
) -> Option<u64> {
    approved.iter().map(|c| c.id).chain(baselines.values().map(|b| b.crawl)).max()
}

/// The approved, non-pair crawls of `site` older than `before`, oldest first.
pub(super) fn approved_crawls(
    crawls: &impl ReadableTable<u64, &'static [u8]>,
    idx: &impl ReadableTable<(&'static str, u64), ()>,
    site: &str,
    before: u64,
    op: &'static str,
) -> Result<Vec<CrawlRecord>, StoreError> {
    let mut out = Vec::new();
    for id in crawl_ids(idx, site, op)?.into_iter().filter(|id| *id < before) {
        match crawl(crawls, id, op)? {
            Some(c) if c.status == CrawlStatus::Approved && c.kind != CrawlKind::Pair => out.push(c),
            _ => {}
        }
    }
    Ok(out)
}

/// The crawl approved last (by approval time, then id): a restored older crawl is approved after
/// the newer ones it replaced.
pub(super) fn last_approved(approved: &[CrawlRecord]) -> Option<&CrawlRecord> {
    approved.iter().max_by_key(|c| (c.reviewed_at.unwrap_or(i64::MIN), c.id))
}
