//! Review state changes of crawls: approve (the crawl or one page becomes the baseline), reject,
//! and `running` -> `interrupted` for crawls a stopped process left behind.

use redb::ReadableTable;

use super::error::{baseline_key, crawl_key, db_err, decode, encode, page_key};
use super::model::{now_ms, BaselineRecord, CrawlKind, CrawlRecord, CrawlStatus, PageOutcome, PageRecord};
use super::schema::{BASELINES, CRAWLS, PAGES};
use super::{Store, StoreError};

impl Store {
    /// Make a crawl the site's baseline: every page captured in it becomes the baseline of its key;
    /// keys the crawl did not capture successfully keep their previous baseline.
    pub fn approve_crawl(&self, id: u64) -> Result<CrawlRecord, StoreError> {
        const OP: &str = "approving a crawl";
        let mut rec = self.crawl_required(id)?;
        if !matches!(
            rec.status,
            CrawlStatus::Reviewing | CrawlStatus::Passed | CrawlStatus::Rejected | CrawlStatus::Approved
        ) {
            return Err(StoreError::BadTransition { id, status: rec.status, action: "approved" });
        }
        let pages = self.pages(id)?;
        let now = now_ms();
        let wtx = self.write_txn(OP)?;
        {
            if rec.kind != CrawlKind::Pair {
                let mut bt = wtx.open_table(BASELINES).map_err(db_err(OP))?;
                for p in &pages {
                    if let (Some(png), PageOutcome::Ok) = (p.png, p.outcome) {
                        let b = BaselineRecord {
                            crawl: id,
                            png,
                            html: p.html,
                            width: p.width,
                            height: p.height,
                            approved_at: now,
                        };
                        let bytes = encode("baseline", || baseline_key(&rec.site, &p.key), &b)?;
                        bt.insert((rec.site.as_str(), p.key.as_str()), bytes.as_slice())
                            .map_err(db_err(OP))?;
                    }
                }
            }
            rec.status = CrawlStatus::Approved;
            rec.reviewed_at = Some(now);
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            crawls.insert(id, encode("crawl", || crawl_key(id), &rec)?.as_slice()).map_err(db_err(OP))?;
        }
        wtx.commit().map_err(db_err(OP))?;
        Ok(rec)
    }

    /// Mark a crawl bad; baselines are unchanged.
    pub fn reject_crawl(&self, id: u64) -> Result<CrawlRecord, StoreError> {
        let mut rec = self.crawl_required(id)?;
        if !matches!(
            rec.status,
            CrawlStatus::Reviewing | CrawlStatus::Passed | CrawlStatus::Rejected | CrawlStatus::Interrupted
        ) {
            return Err(StoreError::BadTransition { id, status: rec.status, action: "rejected" });
        }
        rec.status = CrawlStatus::Rejected;
        rec.reviewed_at = Some(now_ms());
        self.update_crawl(&rec)?;
        Ok(rec)
    }

    /// Make one page of a crawl the baseline of its key.
    pub fn approve_page(&self, id: u64, key: &str) -> Result<PageRecord, StoreError> {
        const OP: &str = "approving a page";
        let rec = self.crawl_required(id)?;
        if rec.status == CrawlStatus::Running {
            return Err(StoreError::BadTransition { id, status: rec.status, action: "page-approved" });
        }
        let mut page =
            self.page(id, key)?.ok_or_else(|| StoreError::NoSuchPage { crawl: id, key: key.into() })?;
        page.approved = true;
        if rec.kind == CrawlKind::Pair {
            // A pair crawl has no baselines: approving a page accepts the difference (even a page
            // only on the base side, which has no capture of its own).
            let wtx = self.write_txn(OP)?;
            {
                let mut pages = wtx.open_table(PAGES).map_err(db_err(OP))?;
                pages
                    .insert((id, key), encode("page", || page_key(id, key), &page)?.as_slice())
                    .map_err(db_err(OP))?;
            }
            wtx.commit().map_err(db_err(OP))?;
            return Ok(page);
        }
        let Some(png) = page.png else {
            return Err(StoreError::NoSuchPage { crawl: id, key: format!("{key} (no capture to approve)") });
        };
        let wtx = self.write_txn(OP)?;
        {
            let b = BaselineRecord {
                crawl: id,
                png,
                html: page.html,
                width: page.width,
                height: page.height,
                approved_at: now_ms(),
            };
            let mut bt = wtx.open_table(BASELINES).map_err(db_err(OP))?;
            bt.insert(
                (rec.site.as_str(), key),
                encode("baseline", || baseline_key(&rec.site, key), &b)?.as_slice(),
            )
            .map_err(db_err(OP))?;
            let mut pages = wtx.open_table(PAGES).map_err(db_err(OP))?;
            pages
                .insert((id, key), encode("page", || page_key(id, key), &page)?.as_slice())
                .map_err(db_err(OP))?;
        }
        wtx.commit().map_err(db_err(OP))?;
        Ok(page)
    }

    /// Crawls left `running` by a process that died become `interrupted`. Returns their ids.
    pub fn interrupt_running(&self, reason: &str) -> Result<Vec<u64>, StoreError> {
        const OP: &str = "marking interrupted crawls";
        let wtx = self.write_txn(OP)?;
        let mut ids = Vec::new();
        {
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            let mut updates = Vec::new();
            for entry in crawls.iter().map_err(db_err(OP))? {
                let (k, v) = entry.map_err(db_err(OP))?;
                let rec: CrawlRecord = decode("crawl", || crawl_key(k.value()), v.value())?;
                if rec.status == CrawlStatus::Running {
                    updates.push((k.value(), rec));
                }
            }
            for (id, mut rec) in updates {
                rec.status = CrawlStatus::Interrupted;
                rec.error = Some(reason.to_string());
                rec.finished_at.get_or_insert(now_ms());
                crawls.insert(id, encode("crawl", || crawl_key(id), &rec)?.as_slice()).map_err(db_err(OP))?;
                ids.push(id);
            }
        }
        wtx.commit().map_err(db_err(OP))?;
        Ok(ids)
    }
}
