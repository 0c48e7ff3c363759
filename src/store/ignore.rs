//! Stored ignore areas (drawn by reviewers, with who and when) and the write of a re-scored crawl:
//! its new page records, their artifacts and its recounted record in one transaction.

use redb::ReadableTable;

use super::error::{crawl_key, db_err, decode, encode, page_key};
use super::model::{now_ms, CrawlRecord, IgnoreArea, PageRecord};
use super::read;
use super::schema::{BLOBS, CRAWLS, IGNORE_AREAS, META, META_NEXT_IGNORE_ID, PAGES};
use super::{Blob, Store, StoreError};
use crate::diff::Rect;

fn area_key(site: &str, id: u64) -> String {
    format!("site {site:?}, ignore area {id}")
}

impl Store {
    /// The stored ignore areas of a site, oldest first.
    pub fn ignore_areas(&self, site: &str) -> Result<Vec<IgnoreArea>, StoreError> {
        const OP: &str = "listing ignore areas";
        let rtx = self.read_txn(OP)?;
        let t = match rtx.open_table(IGNORE_AREAS) {
            Ok(t) => t,
            // A read-only handle on a file that never had the table: no areas.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_err(OP)(e)),
        };
        let mut out = Vec::new();
        for entry in t.range((site, 0)..=(site, u64::MAX)).map_err(db_err(OP))? {
            let (k, v) = entry.map_err(db_err(OP))?;
            out.push(decode("ignore area", || area_key(site, k.value().1), v.value())?);
        }
        Ok(out)
    }

    /// Store a new ignore area of `site` for page `key` (or every page) and return it.
    pub fn add_ignore_area(
        &self,
        site: &str,
        key: &str,
        rect: Rect,
        by: &str,
    ) -> Result<IgnoreArea, StoreError> {
        const OP: &str = "storing an ignore area";
        let wtx = self.write_txn(OP)?;
        let area = {
            let mut meta = wtx.open_table(META).map_err(db_err(OP))?;
            let id = meta.get(META_NEXT_IGNORE_ID).map_err(db_err(OP))?.map(|v| v.value()).unwrap_or(1);
            meta.insert(META_NEXT_IGNORE_ID, id + 1).map_err(db_err(OP))?;
            let area = IgnoreArea {
                id,
                site: site.to_string(),
                key: key.to_string(),
                rect,
                created_by: by.to_string(),
                created_at: now_ms(),
            };
            let mut t = wtx.open_table(IGNORE_AREAS).map_err(db_err(OP))?;
            t.insert((site, id), encode("ignore area", || area_key(site, id), &area)?.as_slice())
                .map_err(db_err(OP))?;
            area
        };
        wtx.commit().map_err(db_err(OP))?;
        Ok(area)
    }

    /// Remove one stored ignore area; the area removed, `None` when there was none.
    pub fn remove_ignore_area(&self, site: &str, id: u64) -> Result<Option<IgnoreArea>, StoreError> {
        const OP: &str = "removing an ignore area";
        let wtx = self.write_txn(OP)?;
        let removed = {
            let mut t = wtx.open_table(IGNORE_AREAS).map_err(db_err(OP))?;
            let old = t.remove((site, id)).map_err(db_err(OP))?;
            old.map(|v| decode::<IgnoreArea>("ignore area", || area_key(site, id), v.value())).transpose()?
        };
        wtx.commit().map_err(db_err(OP))?;
        Ok(removed)
    }

    /// Write re-scored pages of crawl `id` with their artifacts, then recount the crawl from all
    /// its pages with `recount` (which gets the record with its page counts zeroed), in one
    /// transaction. A page approved meanwhile keeps its approval; a page whose capture changed
    /// meanwhile is left as it is. Returns the crawl record written.
    pub fn write_rescored(
        &self,
        id: u64,
        pages: &[PageRecord],
        blobs: &[Blob<'_>],
        recount: impl FnOnce(&mut CrawlRecord, &[PageRecord]),
    ) -> Result<CrawlRecord, StoreError> {
        const OP: &str = "storing a re-scored crawl";
        let wtx = self.write_txn(OP)?;
        let rec = {
            let mut bt = wtx.open_table(BLOBS).map_err(db_err(OP))?;
            for b in blobs {
                if bt.get(&b.hash.0).map_err(db_err(OP))?.is_none() {
                    bt.insert(&b.hash.0, b.bytes).map_err(db_err(OP))?;
                }
            }
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            let mut rec = read::crawl(&crawls, id, OP)?.ok_or(StoreError::NoSuchCrawl { id })?;
            let mut table = wtx.open_table(PAGES).map_err(db_err(OP))?;
            for page in pages {
                let Some(current) = read::page(&table, id, &page.key, OP)? else { continue };
                if current.png != page.png {
                    continue;
                }
                let page = PageRecord { approved: current.approved, ..page.clone() };
                let bytes = encode("page", || page_key(id, &page.key), &page)?;
                table.insert((id, page.key.as_str()), bytes.as_slice()).map_err(db_err(OP))?;
            }
            let all = read::pages(&table, id, OP)?;
            let c = &mut rec.counts;
            (c.pages, c.changed, c.unchanged, c.new, c.failed, c.added, c.removed, c.still_failing) =
                (0, 0, 0, 0, 0, 0, 0, 0);
            rec.max_distortion = 0.0;
            recount(&mut rec, &all);
            crawls.insert(id, encode("crawl", || crawl_key(id), &rec)?.as_slice()).map_err(db_err(OP))?;
            rec
        };
        wtx.commit().map_err(db_err(OP))?;
        Ok(rec)
    }
}
