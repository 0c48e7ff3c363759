//! The store: one redb file holding crawls, page results, baselines and content-addressed artifacts.
//!
//! Every method is blocking (redb transactions); async callers use `spawn_blocking`. State changes
//! commit with immediate durability, so an approval that returned is on disk.

pub mod model;
pub mod schema;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, ReadableTable};

pub use model::*;
use schema::*;

/// redb's page cache. Artifacts are large and read once per comparison (decoded baselines are
/// cached by the comparer), so a small cache bounds the daemon's memory without slowing crawls.
pub const STORE_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error(
        "database {path} is in use by another sitediff process (is `sitediff serve` running? use its \
         HTTP API, or stop it first)"
    )]
    InUse { path: PathBuf },
    #[error(
        "database {path} was written by a newer sitediff (schema version {found}, this build supports \
         up to {supported}); it was left untouched: upgrade sitediff"
    )]
    NewerSchema { path: PathBuf, found: u64, supported: u64 },
    #[error("database error while {op}: {source}")]
    Db {
        op: &'static str,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("corrupt {what} record in the database: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("no crawl with id {id}")]
    NoSuchCrawl { id: u64 },
    #[error("site {site:?} has no crawls")]
    NoCrawls { site: String },
    #[error("crawl {crawl} has no page {key:?}")]
    NoSuchPage { crawl: u64, key: String },
    #[error("crawl {id} is {status} and cannot be {action}")]
    BadTransition { id: u64, status: CrawlStatus, action: &'static str },
}

fn db_err<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Db { op, source: Box::new(e.into()) }
}

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt { what, reason: e.to_string() })
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { what, reason: e.to_string() })
}

/// The schema version recorded in a database, if any.
fn schema_version(db: &impl ReadableDatabase) -> Result<Option<u64>, StoreError> {
    const OP: &str = "reading the schema version";
    let rtx = db.begin_read().map_err(db_err(OP))?;
    match rtx.open_table(META) {
        Ok(t) => Ok(t.get(META_SCHEMA_VERSION).map_err(db_err(OP))?.map(|v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(db_err(OP)(e)),
    }
}

fn check_newer_schema(db: &impl ReadableDatabase, path: &Path) -> Result<(), StoreError> {
    match schema_version(db)? {
        Some(found) if found > SCHEMA_VERSION => {
            Err(StoreError::NewerSchema { path: path.to_path_buf(), found, supported: SCHEMA_VERSION })
        }
        _ => Ok(()),
    }
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub crawls_removed: u32,
    pub blobs_removed: u32,
}

/// Handle to the database; cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// An artifact to store alongside a page: its bytes, stored under their hash.
pub struct Blob<'a> {
    pub hash: Hash,
    pub bytes: &'a [u8],
}

impl<'a> Blob<'a> {
    pub fn new(bytes: &'a [u8]) -> Blob<'a> {
        Blob { hash: Hash::of(bytes), bytes }
    }
}

impl Store {
    /// Open the database at `path`, creating it (and its directory) when the file does not exist.
    /// An existing file is never recreated: a corrupt or foreign file is an error and left alone.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |reason: String| StoreError::Open { path: path.to_path_buf(), reason };
        let db = if path.exists() {
            // Check the schema through a read-only handle first, so that a file written by a newer
            // sitediff is refused without a single byte written to it.
            match redb::ReadOnlyDatabase::open(path) {
                Ok(ro) => {
                    check_newer_schema(&ro, path)?;
                    drop(ro);
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(StoreError::InUse { path: path.to_path_buf() })
                }
                // Needs repair (e.g. after a crash) or unreadable: the read-write open below repairs
                // our own files and reports anything else.
                Err(_) => {}
            }
            Database::builder().set_cache_size(STORE_CACHE_BYTES).open(path)
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| open_err(format!("cannot create {}: {e}", dir.display())))?;
            }
            Database::builder().set_cache_size(STORE_CACHE_BYTES).create(path)
        };
        let db = db.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: path.to_path_buf() },
            other => open_err(other.to_string()),
        })?;
        let store = Store { db: Arc::new(db), path: path.to_path_buf() };
        store.check_schema()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        check_newer_schema(self.db.as_ref(), &self.path)?;
        match schema_version(self.db.as_ref())? {
            Some(_) => Ok(()),
            None => {
                let wtx = self.write_txn("initialising the schema")?;
                {
                    let mut meta = wtx.open_table(META).map_err(db_err("initialising the schema"))?;
                    meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION)
                        .map_err(db_err("initialising the schema"))?;
                    if meta.get(META_NEXT_CRAWL_ID).map_err(db_err("initialising the schema"))?.is_none() {
                        meta.insert(META_NEXT_CRAWL_ID, 1).map_err(db_err("initialising the schema"))?;
                    }
                    wtx.open_table(CRAWLS).map_err(db_err("initialising the schema"))?;
                    wtx.open_table(SITE_CRAWLS).map_err(db_err("initialising the schema"))?;
                    wtx.open_table(PAGES).map_err(db_err("initialising the schema"))?;
                    wtx.open_table(BASELINES).map_err(db_err("initialising the schema"))?;
                    wtx.open_table(BLOBS).map_err(db_err("initialising the schema"))?;
                }
                wtx.commit().map_err(db_err("initialising the schema"))
            }
        }
    }

    fn write_txn(&self, op: &'static str) -> Result<redb::WriteTransaction, StoreError> {
        let mut wtx = self.db.begin_write().map_err(db_err(op))?;
        wtx.set_durability(Durability::Immediate).map_err(db_err(op))?;
        Ok(wtx)
    }

    fn read_txn(&self, op: &'static str) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(db_err(op))
    }

    /// Record the start of a crawl and return it (status `running`).
    pub fn begin_crawl(
        &self,
        site: &str,
        kind: CrawlKind,
        prefix: &str,
        compare_to: Option<&str>,
    ) -> Result<CrawlRecord, StoreError> {
        const OP: &str = "starting a crawl";
        let wtx = self.write_txn(OP)?;
        let rec = {
            let mut meta = wtx.open_table(META).map_err(db_err(OP))?;
            let id = meta.get(META_NEXT_CRAWL_ID).map_err(db_err(OP))?.map(|v| v.value()).unwrap_or(1);
            meta.insert(META_NEXT_CRAWL_ID, id + 1).map_err(db_err(OP))?;
            let rec = CrawlRecord {
                id,
                site: site.to_string(),
                kind,
                status: CrawlStatus::Running,
                started_at: now_ms(),
                finished_at: None,
                reviewed_at: None,
                prefix: prefix.to_string(),
                compare_to: compare_to.map(str::to_string),
                counts: CrawlCounts::default(),
                max_distortion: 0.0,
                error: None,
                structure: None,
            };
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            crawls.insert(id, encode("crawl", &rec)?.as_slice()).map_err(db_err(OP))?;
            let mut idx = wtx.open_table(SITE_CRAWLS).map_err(db_err(OP))?;
            idx.insert((site, id), ()).map_err(db_err(OP))?;
            rec
        };
        wtx.commit().map_err(db_err(OP))?;
        Ok(rec)
    }

    /// Store one page result and its artifacts in one transaction (artifacts already present are
    /// not written again).
    pub fn put_page(&self, crawl: u64, page: &PageRecord, blobs: &[Blob<'_>]) -> Result<(), StoreError> {
        const OP: &str = "storing a page";
        let wtx = self.write_txn(OP)?;
        {
            let mut bt = wtx.open_table(BLOBS).map_err(db_err(OP))?;
            for b in blobs {
                if bt.get(&b.hash.0).map_err(db_err(OP))?.is_none() {
                    bt.insert(&b.hash.0, b.bytes).map_err(db_err(OP))?;
                }
            }
            let mut pages = wtx.open_table(PAGES).map_err(db_err(OP))?;
            pages.insert((crawl, page.key.as_str()), encode("page", page)?.as_slice()).map_err(db_err(OP))?;
        }
        wtx.commit().map_err(db_err(OP))
    }

    /// Overwrite a crawl record (counts, status, times).
    pub fn update_crawl(&self, rec: &CrawlRecord) -> Result<(), StoreError> {
        const OP: &str = "updating a crawl";
        let wtx = self.write_txn(OP)?;
        {
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            if crawls.get(rec.id).map_err(db_err(OP))?.is_none() {
                return Err(StoreError::NoSuchCrawl { id: rec.id });
            }
            crawls.insert(rec.id, encode("crawl", rec)?.as_slice()).map_err(db_err(OP))?;
        }
        wtx.commit().map_err(db_err(OP))
    }

    pub fn crawl(&self, id: u64) -> Result<Option<CrawlRecord>, StoreError> {
        const OP: &str = "reading a crawl";
        let rtx = self.read_txn(OP)?;
        let t = rtx.open_table(CRAWLS).map_err(db_err(OP))?;
        let rec = t.get(id).map_err(db_err(OP))?;
        rec.map(|v| decode("crawl", v.value())).transpose()
    }

    fn crawl_required(&self, id: u64) -> Result<CrawlRecord, StoreError> {
        self.crawl(id)?.ok_or(StoreError::NoSuchCrawl { id })
    }

    /// The ids of a site's crawls, oldest first.
    pub fn crawl_ids(&self, site: &str) -> Result<Vec<u64>, StoreError> {
        const OP: &str = "listing crawls";
        let rtx = self.read_txn(OP)?;
        let idx = rtx.open_table(SITE_CRAWLS).map_err(db_err(OP))?;
        let mut ids = Vec::new();
        for entry in idx.range((site, 0)..=(site, u64::MAX)).map_err(db_err(OP))? {
            let (k, _) = entry.map_err(db_err(OP))?;
            ids.push(k.value().1);
        }
        Ok(ids)
    }

    /// A site's crawls, newest first.
    pub fn crawls(&self, site: &str) -> Result<Vec<CrawlRecord>, StoreError> {
        let ids = self.crawl_ids(site)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids.into_iter().rev() {
            if let Some(c) = self.crawl(id)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The newest crawl of a site.
    pub fn latest_crawl(&self, site: &str) -> Result<Option<CrawlRecord>, StoreError> {
        match self.crawl_ids(site)?.last() {
            Some(&id) => self.crawl(id),
            None => Ok(None),
        }
    }

    /// The newest approved crawl of a site older than `before` that is not a pair crawl (the
    /// reference of the structural diff).
    pub fn last_approved_crawl(&self, site: &str, before: u64) -> Result<Option<CrawlRecord>, StoreError> {
        for id in self.crawl_ids(site)?.into_iter().rev().filter(|id| *id < before) {
            if let Some(c) = self.crawl(id)? {
                if c.status == CrawlStatus::Approved && c.kind != CrawlKind::Pair {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }

    /// Every site name that has at least one crawl.
    pub fn site_names(&self) -> Result<Vec<String>, StoreError> {
        const OP: &str = "listing sites";
        let rtx = self.read_txn(OP)?;
        let idx = rtx.open_table(SITE_CRAWLS).map_err(db_err(OP))?;
        let mut names: Vec<String> = Vec::new();
        for entry in idx.iter().map_err(db_err(OP))? {
            let (k, _) = entry.map_err(db_err(OP))?;
            let site = k.value().0;
            if names.last().map(String::as_str) != Some(site) {
                names.push(site.to_string());
            }
        }
        Ok(names)
    }

    /// The page results of a crawl, in page-key order.
    pub fn pages(&self, crawl: u64) -> Result<Vec<PageRecord>, StoreError> {
        const OP: &str = "listing pages";
        let rtx = self.read_txn(OP)?;
        let t = rtx.open_table(PAGES).map_err(db_err(OP))?;
        let mut out = Vec::new();
        for entry in t.range((crawl, "")..(crawl + 1, "")).map_err(db_err(OP))? {
            let (_, v) = entry.map_err(db_err(OP))?;
            out.push(decode("page", v.value())?);
        }
        Ok(out)
    }

    pub fn page(&self, crawl: u64, key: &str) -> Result<Option<PageRecord>, StoreError> {
        const OP: &str = "reading a page";
        let rtx = self.read_txn(OP)?;
        let t = rtx.open_table(PAGES).map_err(db_err(OP))?;
        let rec = t.get((crawl, key)).map_err(db_err(OP))?;
        rec.map(|v| decode("page", v.value())).transpose()
    }

    pub fn baseline(&self, site: &str, key: &str) -> Result<Option<BaselineRecord>, StoreError> {
        const OP: &str = "reading a baseline";
        let rtx = self.read_txn(OP)?;
        let t = rtx.open_table(BASELINES).map_err(db_err(OP))?;
        let rec = t.get((site, key)).map_err(db_err(OP))?;
        rec.map(|v| decode("baseline", v.value())).transpose()
    }

    /// All baselines of a site, in page-key order.
    pub fn baselines(&self, site: &str) -> Result<Vec<(String, BaselineRecord)>, StoreError> {
        const OP: &str = "listing baselines";
        let rtx = self.read_txn(OP)?;
        let t = rtx.open_table(BASELINES).map_err(db_err(OP))?;
        let mut out = Vec::new();
        for entry in t.range((site, "")..).map_err(db_err(OP))? {
            let (k, v) = entry.map_err(db_err(OP))?;
            let (s, key) = k.value();
            if s != site {
                break;
            }
            out.push((key.to_string(), decode("baseline", v.value())?));
        }
        Ok(out)
    }

    /// An artifact's bytes.
    pub fn blob(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        const OP: &str = "reading an artifact";
        let rtx = self.read_txn(OP)?;
        let t = rtx.open_table(BLOBS).map_err(db_err(OP))?;
        let v = t.get(&hash.0).map_err(db_err(OP))?;
        Ok(v.map(|g| g.value().to_vec()))
    }

    /// Number of stored artifacts.
    pub fn blob_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        const OP: &str = "counting artifacts";
        let rtx = self.read_txn(OP)?;
        let t = rtx.open_table(BLOBS).map_err(db_err(OP))?;
        t.len().map_err(db_err(OP))
    }

    /// Make a crawl the site's baseline: every page captured in it becomes the baseline of its key;
    /// keys the crawl did not capture successfully keep their previous baseline.
    pub fn approve_crawl(&self, id: u64) -> Result<CrawlRecord, StoreError> {
        const OP: &str = "approving a crawl";
        let mut rec = self.crawl_required(id)?;
        if !matches!(rec.status, CrawlStatus::Reviewing | CrawlStatus::Rejected | CrawlStatus::Approved) {
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
                        bt.insert((rec.site.as_str(), p.key.as_str()), encode("baseline", &b)?.as_slice())
                            .map_err(db_err(OP))?;
                    }
                }
            }
            rec.status = CrawlStatus::Approved;
            rec.reviewed_at = Some(now);
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            crawls.insert(id, encode("crawl", &rec)?.as_slice()).map_err(db_err(OP))?;
        }
        wtx.commit().map_err(db_err(OP))?;
        Ok(rec)
    }

    /// Mark a crawl bad; baselines are unchanged.
    pub fn reject_crawl(&self, id: u64) -> Result<CrawlRecord, StoreError> {
        let mut rec = self.crawl_required(id)?;
        if !matches!(rec.status, CrawlStatus::Reviewing | CrawlStatus::Rejected | CrawlStatus::Interrupted) {
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
                pages.insert((id, key), encode("page", &page)?.as_slice()).map_err(db_err(OP))?;
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
            bt.insert((rec.site.as_str(), key), encode("baseline", &b)?.as_slice()).map_err(db_err(OP))?;
            let mut pages = wtx.open_table(PAGES).map_err(db_err(OP))?;
            pages.insert((id, key), encode("page", &page)?.as_slice()).map_err(db_err(OP))?;
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
                let rec: CrawlRecord = decode("crawl", v.value())?;
                if rec.status == CrawlStatus::Running {
                    updates.push((k.value(), rec));
                }
            }
            for (id, mut rec) in updates {
                rec.status = CrawlStatus::Interrupted;
                rec.error = Some(reason.to_string());
                rec.finished_at.get_or_insert(now_ms());
                crawls.insert(id, encode("crawl", &rec)?.as_slice()).map_err(db_err(OP))?;
                ids.push(id);
            }
        }
        wtx.commit().map_err(db_err(OP))?;
        Ok(ids)
    }

    /// Keep a site's baselines plus its newest `keep` crawls; remove older crawls and their page
    /// records, then garbage-collect artifacts nothing references any more. One transaction: a crash
    /// leaves either the old or the new state. Running crawls and crawls holding baselines are kept.
    pub fn apply_retention(&self, site: &str, keep: usize) -> Result<RetentionReport, StoreError> {
        const OP: &str = "applying retention";
        let ids = self.crawl_ids(site)?;
        let baseline_crawls: HashSet<u64> = self.baselines(site)?.into_iter().map(|(_, b)| b.crawl).collect();
        let mut report = RetentionReport::default();
        let mut doomed = Vec::new();
        for (n, id) in ids.iter().rev().enumerate() {
            if n < keep || baseline_crawls.contains(id) {
                continue;
            }
            match self.crawl(*id)? {
                Some(c) if c.status == CrawlStatus::Running => {}
                _ => doomed.push(*id),
            }
        }
        let wtx = self.write_txn(OP)?;
        {
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            let mut idx = wtx.open_table(SITE_CRAWLS).map_err(db_err(OP))?;
            let mut pages = wtx.open_table(PAGES).map_err(db_err(OP))?;
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
                    let (_, v) = entry.map_err(db_err(OP))?;
                    let p: PageRecord = decode("page", v.value())?;
                    live.extend(
                        [p.png, p.html, p.diff, p.baseline_png, p.baseline_html]
                            .into_iter()
                            .flatten()
                            .map(|h| h.0),
                    );
                }
                let baselines = wtx.open_table(BASELINES).map_err(db_err(OP))?;
                for entry in baselines.iter().map_err(db_err(OP))? {
                    let (_, v) = entry.map_err(db_err(OP))?;
                    let b: BaselineRecord = decode("baseline", v.value())?;
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

    /// The crawl a command means: an explicit id (checked to belong to `site`), else the site's latest.
    pub fn resolve_crawl(&self, site: &str, id: Option<u64>) -> Result<CrawlRecord, StoreError> {
        match id {
            Some(id) => {
                let rec = self.crawl_required(id)?;
                if rec.site != site {
                    return Err(StoreError::NoSuchCrawl { id });
                }
                Ok(rec)
            }
            None => self.latest_crawl(site)?.ok_or_else(|| StoreError::NoCrawls { site: site.to_string() }),
        }
    }
}
