//! Retention: a site keeps its baselines, its last approved crawl and its newest crawls; older
//! crawls, their page records and the artifacts nothing references any more are removed in one
//! write transaction that also reads what it decides on (so an approval committed meanwhile is
//! either seen or serialised after it).

use std::collections::HashSet;

use redb::ReadableTable;

use super::error::{baseline_key, db_err, decode, page_key};
use super::model::{BaselineRecord, CrawlStatus, PageRecord};
use super::read;
use super::schema::{BASELINES, BLOBS, CRAWLS, PAGES, SITE_CRAWLS};
use super::{RetentionReport, Store, StoreError};

impl Store {
    /// Keep a site's baselines plus its newest `keep` crawls; remove older crawls and their page
    /// records, then garbage-collect artifacts nothing references any more. One transaction: a crash
    /// leaves either the old or the new state. Running crawls, crawls holding baselines and the
    /// site's last approved crawl (the reference of the structural diff) are kept.
    pub fn apply_retention(&self, site: &str, keep: usize) -> Result<RetentionReport, StoreError> {
        const OP: &str = "applying retention";
        let mut report = RetentionReport::default();
        let wtx = self.write_txn(OP)?;
        {
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            let mut idx = wtx.open_table(SITE_CRAWLS).map_err(db_err(OP))?;
            let mut pages = wtx.open_table(PAGES).map_err(db_err(OP))?;
            let baselines = wtx.open_table(BASELINES).map_err(db_err(OP))?;
            let ids = read::crawl_ids(&idx, site, OP)?;
            let mut kept: HashSet<u64> =
                read::baselines(&baselines, site, OP)?.into_iter().map(|(_, b)| b.crawl).collect();
            let approved = read::approved_crawls(&crawls, &idx, site, u64::MAX, OP)?;
            kept.extend(read::last_approved(&approved).map(|c| c.id));
            let mut doomed = Vec::new();
            for (n, id) in ids.iter().rev().enumerate() {
                if n < keep || kept.contains(id) {
                    continue;
                }
                match read::crawl(&crawls, *id, OP)? {
                    Some(c) if c.status == CrawlStatus::Running => {}
                    _ => doomed.push(*id),
                }
            }
            for id in &doomed {
                crawls.remove(*id).map_err(db_err(OP))?;
                idx.remove((site, *id)).map_err(db_err(OP))?;
                let keys: Vec<String> = pages
                    .range((*id, "")..(*id + 1, ""))
                    .map_err(db_err(OP))?
                    .map(|e| e.map(|(k, _)| k.value().1.to_string()))
                    .collect::<Result<_, _>>()
                    .map_err(db_err(OP))?;
                for k in keys {
                    pages.remove((*id, k.as_str())).map_err(db_err(OP))?;
                }
                report.crawls_removed += 1;
            }
            if !doomed.is_empty() {
                // Mark: every hash a page or baseline still references.
                let mut live: HashSet<[u8; 32]> = HashSet::new();
                for entry in pages.iter().map_err(db_err(OP))? {
                    let (k, v) = entry.map_err(db_err(OP))?;
                    let (crawl, key) = k.value();
                    let p: PageRecord = decode("page", || page_key(crawl, key), v.value())?;
                    live.extend(p.artifacts().map(|h| h.0));
                }
                for entry in baselines.iter().map_err(db_err(OP))? {
                    let (k, v) = entry.map_err(db_err(OP))?;
                    let (site, key) = k.value();
                    let b: BaselineRecord = decode("baseline", || baseline_key(site, key), v.value())?;
                    live.insert(b.png.0);
                    live.extend(b.html.map(|h| h.0));
                }
                // Sweep.
                let mut blobs = wtx.open_table(BLOBS).map_err(db_err(OP))?;
                let dead: Vec<[u8; 32]> = blobs
                    .iter()
                    .map_err(db_err(OP))?
                    .filter_map(|e| match e {
                        Ok((k, _)) if !live.contains(k.value()) => Some(Ok(*k.value())),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<Result<_, _>>()
                    .map_err(db_err(OP))?;
                for h in dead {
                    blobs.remove(&h).map_err(db_err(OP))?;
                    report.blobs_removed += 1;
                }
            }
        }
        wtx.commit().map_err(db_err(OP))?;
        Ok(report)
    }
}
