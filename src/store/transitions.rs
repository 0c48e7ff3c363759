//! Review state changes of crawls: approve (the crawl or one page becomes the baseline), restore
//! (the same, explicitly allowed to move baselines back to an older capture), reject, and
//! `running` -> `interrupted` for crawls a stopped process left behind.
//!
//! Each change reads what it depends on (the crawl, its pages, the site's baselines and approved
//! crawls) inside the one write transaction that makes it, so concurrent approvals and retention
//! serialise: a baseline never points at an artifact retention collected, and the last-pending-page
//! rule decides on the pages as they are committed.

use std::collections::HashMap;

use redb::{ReadableTable, Table, WriteTransaction};
use serde::Serialize;

use super::error::{baseline_key, crawl_key, db_err, decode, encode, page_key};
use super::model::{
    now_ms, BaselineRecord, CrawlKind, CrawlRecord, CrawlStatus, PageChange, PageOutcome, PageRecord,
};
use super::read;
use super::schema::{BASELINES, CRAWLS, PAGES, SITE_CRAWLS};
use super::{Store, StoreError};

/// Whether an approval may move baselines back to older captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalMode {
    /// Approvals only move forward: approving a crawl older than the site's newest approval, or a
    /// page older than its key's baseline, is refused ([`StoreError::OlderThanApproved`],
    /// [`StoreError::OlderThanBaseline`]).
    Approve,
    /// The explicit way back: the crawl's (or page's) captures become the baselines whatever
    /// their age; the moves are reported.
    Restore,
}

impl ApprovalMode {
    fn crawl_action(self) -> &'static str {
        match self {
            ApprovalMode::Approve => "approved",
            ApprovalMode::Restore => "restored",
        }
    }

    fn page_action(self) -> &'static str {
        match self {
            ApprovalMode::Approve => "page-approved",
            ApprovalMode::Restore => "page-restored",
        }
    }
}

/// One baseline an approval changed: its page key, the crawl it came from before (`None`: the
/// key had no baseline) and the crawl it comes from now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineMove {
    pub key: String,
    pub from: Option<u64>,
    pub to: u64,
}

impl BaselineMove {
    /// The baseline went back to an older capture.
    pub fn is_back(&self) -> bool {
        self.from.is_some_and(|from| from > self.to)
    }
}

/// A crawl approval or restore: the crawl afterwards and the baselines it changed, in key order.
#[derive(Debug, Clone)]
pub struct CrawlApproval {
    pub crawl: CrawlRecord,
    pub moved: Vec<BaselineMove>,
}

/// A page approval or restore: the page, and its crawl as it is afterwards.
#[derive(Debug, Clone)]
pub struct PageApproval {
    pub page: PageRecord,
    pub crawl: CrawlRecord,
    /// The page was the last pending one: the crawl was approved with it (same transaction).
    pub crawl_approved: bool,
    /// The baselines changed: the page's, and the crawl's when it was approved with it.
    pub moved: Vec<BaselineMove>,
}

/// What approving several pages of a crawl at once did (see [`Store::approve_pages`]).
#[derive(Debug, Clone)]
pub struct PagesApproval {
    pub pages: Vec<PageRecord>,
    pub crawl: CrawlRecord,
    /// The pages were the last pending ones: the crawl was approved with them (same transaction).
    pub crawl_approved: bool,
    /// Every baseline that changed.
    pub moved: Vec<BaselineMove>,
}

/// The last-pending-page rule: a crawl under review is settled once every changed, new, added and
/// removed page is approved and no page newly failed (a page still failing as in the approved crawl
/// is not a review item).
pub fn all_pages_settled(pages: &[PageRecord]) -> bool {
    pages.iter().all(|p| match p.change {
        PageChange::Changed | PageChange::New | PageChange::Added | PageChange::Removed => p.approved,
        PageChange::Failed => false,
        PageChange::Unchanged | PageChange::StillFailing => true,
    })
}

/// The tables a review change reads and writes, open in one write transaction.
struct Tables<'t> {
    crawls: Table<'t, u64, &'static [u8]>,
    idx: Table<'t, (&'static str, u64), ()>,
    pages: Table<'t, (u64, &'static str), &'static [u8]>,
    baselines: Table<'t, (&'static str, &'static str), &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(wtx: &'t WriteTransaction, op: &'static str) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            crawls: wtx.open_table(CRAWLS).map_err(db_err(op))?,
            idx: wtx.open_table(SITE_CRAWLS).map_err(db_err(op))?,
            pages: wtx.open_table(PAGES).map_err(db_err(op))?,
            baselines: wtx.open_table(BASELINES).map_err(db_err(op))?,
        })
    }

    fn put_crawl(&mut self, rec: &CrawlRecord, op: &'static str) -> Result<(), StoreError> {
        let bytes = encode("crawl", || crawl_key(rec.id), rec)?;
        self.crawls.insert(rec.id, bytes.as_slice()).map_err(db_err(op))?;
        Ok(())
    }

    fn put_page(&mut self, crawl: u64, page: &PageRecord, op: &'static str) -> Result<(), StoreError> {
        let bytes = encode("page", || page_key(crawl, &page.key), page)?;
        self.pages.insert((crawl, page.key.as_str()), bytes.as_slice()).map_err(db_err(op))?;
        Ok(())
    }

    fn put_baseline(
        &mut self,
        site: &str,
        key: &str,
        b: &BaselineRecord,
        op: &'static str,
    ) -> Result<(), StoreError> {
        let bytes = encode("baseline", || baseline_key(site, key), b)?;
        self.baselines.insert((site, key), bytes.as_slice()).map_err(db_err(op))?;
        Ok(())
    }

    /// Write a planned crawl approval.
    fn apply_crawl(&mut self, plan: &CrawlPlan, op: &'static str) -> Result<(), StoreError> {
        for (key, b) in &plan.writes {
            self.put_baseline(&plan.rec.site, key, b, op)?;
        }
        self.put_crawl(&plan.rec, op)
    }
}

/// A crawl approval worked out from the stored state, not yet written.
struct CrawlPlan {
    /// The crawl record as it will be (approved).
    rec: CrawlRecord,
    /// Baselines to write: every page captured successfully.
    writes: Vec<(String, BaselineRecord)>,
    moved: Vec<BaselineMove>,
}

/// Work out approving crawl `id` (read-only; any transaction).
#[allow(clippy::too_many_arguments)]
fn plan_crawl(
    crawls: &impl ReadableTable<u64, &'static [u8]>,
    idx: &impl ReadableTable<(&'static str, u64), ()>,
    pages: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    baselines: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    id: u64,
    mode: ApprovalMode,
    now: i64,
    op: &'static str,
) -> Result<CrawlPlan, StoreError> {
    let mut rec = read::crawl(crawls, id, op)?.ok_or(StoreError::NoSuchCrawl { id })?;
    if !matches!(
        rec.status,
        CrawlStatus::Reviewing | CrawlStatus::Passed | CrawlStatus::Rejected | CrawlStatus::Approved
    ) {
        return Err(StoreError::BadTransition { id, status: rec.status, action: mode.crawl_action() });
    }
    let (mut writes, mut moved) = (Vec::new(), Vec::new());
    let approved = read::approved_crawls(crawls, idx, &rec.site, u64::MAX, op)?;
    // A pair crawl has no baselines: approving it accepts the differences.
    if rec.kind != CrawlKind::Pair {
        let current: HashMap<String, BaselineRecord> =
            read::baselines(baselines, &rec.site, op)?.into_iter().collect();
        for p in read::pages(pages, id, op)? {
            let (Some(png), PageOutcome::Ok) = (p.png, p.outcome) else { continue };
            let from = current.get(&p.key).map(|b| b.crawl);
            if from != Some(id) {
                moved.push(BaselineMove { key: p.key.clone(), from, to: id });
            }
            let b = BaselineRecord {
                crawl: id,
                png,
                html: p.html,
                width: p.width,
                height: p.height,
                approved_at: now,
            };
            writes.push((p.key, b));
        }
        if mode == ApprovalMode::Approve {
            if let Some(newer) = read::newest_of(&approved, &current).filter(|n| *n > id) {
                let back = moved.iter().filter(|m| m.is_back()).count();
                return Err(StoreError::OlderThanApproved { id, site: rec.site, newer, back });
            }
        }
    }
    // The crawl approved last is the site's reference (`read::last_approved` orders by approval
    // time): an approval is stamped strictly after every earlier one of the site, so two
    // approvals within one millisecond (or a clock stepped back) keep their order.
    let latest = approved.iter().filter(|c| c.id != id).filter_map(|c| c.reviewed_at).max();
    rec.status = CrawlStatus::Approved;
    rec.reviewed_at = Some(latest.map_or(now, |l| now.max(l.saturating_add(1))));
    Ok(CrawlPlan { rec, writes, moved })
}

/// A page approval worked out from the stored state, not yet written.
struct PagePlan {
    rec: CrawlRecord,
    /// The page record as it will be (approved).
    page: PageRecord,
    /// The page's new baseline (none for pair crawls).
    write: Option<BaselineRecord>,
    moved: Option<BaselineMove>,
}

/// Work out approving page `key` of crawl `id` (read-only; any transaction).
#[allow(clippy::too_many_arguments)]
fn plan_page(
    crawls: &impl ReadableTable<u64, &'static [u8]>,
    pages: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    baselines: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    id: u64,
    key: &str,
    mode: ApprovalMode,
    now: i64,
    op: &'static str,
) -> Result<PagePlan, StoreError> {
    let rec = read::crawl(crawls, id, op)?.ok_or(StoreError::NoSuchCrawl { id })?;
    if rec.status == CrawlStatus::Running {
        return Err(StoreError::BadTransition { id, status: rec.status, action: mode.page_action() });
    }
    let mut page = read::page(pages, id, key, op)?
        .ok_or_else(|| StoreError::NoSuchPage { crawl: id, key: key.into() })?;
    page.approved = true;
    if rec.kind == CrawlKind::Pair {
        // A pair crawl has no baselines: approving a page accepts the difference (even a page
        // only on the base side, which has no capture of its own).
        return Ok(PagePlan { rec, page, write: None, moved: None });
    }
    let Some(png) = page.png else {
        return Err(StoreError::NoSuchPage { crawl: id, key: format!("{key} (no capture to approve)") });
    };
    let from = read::baseline(baselines, &rec.site, key, op)?.map(|b| b.crawl);
    if let (ApprovalMode::Approve, Some(baseline)) = (mode, from.filter(|f| *f > id)) {
        return Err(StoreError::OlderThanBaseline { crawl: id, key: key.to_string(), baseline });
    }
    let write = BaselineRecord {
        crawl: id,
        png,
        html: page.html,
        width: page.width,
        height: page.height,
        approved_at: now,
    };
    let moved = (from != Some(id)).then(|| BaselineMove { key: key.to_string(), from, to: id });
    Ok(PagePlan { rec, page, write: Some(write), moved })
}

impl Store {
    /// Make a crawl the site's baseline: every page captured in it becomes the baseline of its key;
    /// keys the crawl did not capture successfully keep their previous baseline. Refused when the
    /// crawl is older than the site's newest approval (see [`Store::newest_approval`]).
    pub fn approve_crawl(&self, id: u64) -> Result<CrawlRecord, StoreError> {
        Ok(self.approve_crawl_as(id, ApprovalMode::Approve)?.crawl)
    }

    /// Make an older crawl the site's baseline again, on purpose: the baselines it replaces are
    /// listed in the result (newer crawls keep their status; this crawl is approved last).
    pub fn restore_crawl(&self, id: u64) -> Result<CrawlApproval, StoreError> {
        self.approve_crawl_as(id, ApprovalMode::Restore)
    }

    /// Approve or restore a crawl in one write transaction.
    pub fn approve_crawl_as(&self, id: u64, mode: ApprovalMode) -> Result<CrawlApproval, StoreError> {
        let op = match mode {
            ApprovalMode::Approve => "approving a crawl",
            ApprovalMode::Restore => "restoring a crawl",
        };
        let wtx = self.write_txn(op)?;
        let plan = {
            let mut t = Tables::open(&wtx, op)?;
            let plan = plan_crawl(&t.crawls, &t.idx, &t.pages, &t.baselines, id, mode, now_ms(), op)?;
            t.apply_crawl(&plan, op)?;
            plan
        };
        wtx.commit().map_err(db_err(op))?;
        Ok(CrawlApproval { crawl: plan.rec, moved: plan.moved })
    }

    /// Make one page of a crawl the baseline of its key. Refused when the key's baseline comes
    /// from a newer crawl. When it was the last pending page of a crawl under review (see
    /// [`all_pages_settled`]) and the crawl may be approved, the crawl is approved with it.
    pub fn approve_page(&self, id: u64, key: &str) -> Result<PageApproval, StoreError> {
        self.approve_page_as(id, key, ApprovalMode::Approve)
    }

    /// Make an older page's capture the baseline of its key again, on purpose.
    pub fn restore_page(&self, id: u64, key: &str) -> Result<PageApproval, StoreError> {
        self.approve_page_as(id, key, ApprovalMode::Restore)
    }

    /// Approve or restore one page, and apply the last-pending-page rule, in one write transaction.
    pub fn approve_page_as(
        &self,
        id: u64,
        key: &str,
        mode: ApprovalMode,
    ) -> Result<PageApproval, StoreError> {
        let done = self.approve_pages_as(id, &[key.to_string()], mode)?;
        let page = done
            .pages
            .into_iter()
            .next()
            .ok_or(StoreError::NoSuchPage { crawl: id, key: key.to_string() })?;
        Ok(PageApproval { page, crawl: done.crawl, crawl_approved: done.crawl_approved, moved: done.moved })
    }

    /// Approve several pages of one crawl (a change group) all together or not at all: every
    /// page's baseline, then the last-pending-page rule, in one write transaction. A page refused
    /// (its key's baseline comes from a newer crawl) refuses them all.
    pub fn approve_pages(&self, id: u64, keys: &[String]) -> Result<PagesApproval, StoreError> {
        self.approve_pages_as(id, keys, ApprovalMode::Approve)
    }

    fn approve_pages_as(
        &self,
        id: u64,
        keys: &[String],
        mode: ApprovalMode,
    ) -> Result<PagesApproval, StoreError> {
        let op = match mode {
            ApprovalMode::Approve => "approving pages",
            ApprovalMode::Restore => "restoring a page",
        };
        let wtx = self.write_txn(op)?;
        let now = now_ms();
        let done = {
            let mut t = Tables::open(&wtx, op)?;
            let mut moved: Vec<BaselineMove> = Vec::new();
            let mut pages = Vec::with_capacity(keys.len());
            let mut rec = None;
            for key in keys {
                let plan = plan_page(&t.crawls, &t.pages, &t.baselines, id, key, mode, now, op)?;
                if let Some(b) = &plan.write {
                    t.put_baseline(&plan.rec.site, key, b, op)?;
                }
                t.put_page(id, &plan.page, op)?;
                moved.extend(plan.moved);
                pages.push(plan.page);
                rec = Some(plan.rec);
            }
            let crawl = match rec {
                Some(r) => r,
                None => read::crawl(&t.crawls, id, op)?.ok_or(StoreError::NoSuchCrawl { id })?,
            };
            let mut done = PagesApproval { pages, crawl, crawl_approved: false, moved };
            if done.crawl.status == CrawlStatus::Reviewing
                && all_pages_settled(&read::pages(&t.pages, id, op)?)
            {
                // Never a restore: the crawl is approved only if that moves no baseline back.
                match plan_crawl(
                    &t.crawls,
                    &t.idx,
                    &t.pages,
                    &t.baselines,
                    id,
                    ApprovalMode::Approve,
                    now,
                    op,
                ) {
                    Ok(crawl) => {
                        t.apply_crawl(&crawl, op)?;
                        done.crawl = crawl.rec;
                        done.crawl_approved = true;
                        for m in crawl.moved {
                            if !done.moved.iter().any(|d| d.key == m.key) {
                                done.moved.push(m);
                            }
                        }
                    }
                    Err(e @ StoreError::OlderThanApproved { .. }) => {
                        tracing::info!(crawl = id, reason = %e, "every page settled; the crawl stays in review");
                    }
                    Err(e) => return Err(e),
                }
            }
            done.moved.sort_by(|a, b| a.key.cmp(&b.key));
            done
        };
        wtx.commit().map_err(db_err(op))?;
        Ok(done)
    }

    /// What restoring crawl `id` (or only its page `key`) would change, without changing it.
    pub fn restore_preview(&self, id: u64, key: Option<&str>) -> Result<Vec<BaselineMove>, StoreError> {
        const OP: &str = "previewing a restore";
        let rtx = self.read_txn(OP)?;
        let crawls = rtx.open_table(CRAWLS).map_err(db_err(OP))?;
        let pages = rtx.open_table(PAGES).map_err(db_err(OP))?;
        let baselines = rtx.open_table(BASELINES).map_err(db_err(OP))?;
        let now = now_ms();
        Ok(match key {
            Some(key) => plan_page(&crawls, &pages, &baselines, id, key, ApprovalMode::Restore, now, OP)?
                .moved
                .into_iter()
                .collect(),
            None => {
                let idx = rtx.open_table(SITE_CRAWLS).map_err(db_err(OP))?;
                plan_crawl(&crawls, &idx, &pages, &baselines, id, ApprovalMode::Restore, now, OP)?.moved
            }
        })
    }

    /// Mark a crawl bad; baselines are unchanged.
    pub fn reject_crawl(&self, id: u64) -> Result<CrawlRecord, StoreError> {
        const OP: &str = "rejecting a crawl";
        let wtx = self.write_txn(OP)?;
        let rec = {
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            let mut rec = read::crawl(&crawls, id, OP)?.ok_or(StoreError::NoSuchCrawl { id })?;
            if !matches!(
                rec.status,
                CrawlStatus::Reviewing
                    | CrawlStatus::Passed
                    | CrawlStatus::Rejected
                    | CrawlStatus::Interrupted
            ) {
                return Err(StoreError::BadTransition { id, status: rec.status, action: "rejected" });
            }
            rec.status = CrawlStatus::Rejected;
            rec.reviewed_at = Some(now_ms());
            crawls.insert(id, encode("crawl", || crawl_key(id), &rec)?.as_slice()).map_err(db_err(OP))?;
            rec
        };
        wtx.commit().map_err(db_err(OP))?;
        Ok(rec)
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
