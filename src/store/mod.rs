//! The store: one redb file holding crawls, page results, baselines and content-addressed artifacts.
//!
//! Every method is blocking (redb transactions); async callers use `spawn_blocking`. State changes
//! commit with immediate durability, so an approval that returned is on disk. A state change that
//! depends on what is stored reads it in the write transaction that makes the change. One process
//! writes (the file lock refuses a second writer); any number may read alongside it through
//! [`Store::open_read_only`] and see its commits (redb's single-writer mode). This file opens the
//! database and holds the plain reads and writes; `transitions.rs` the review state changes
//! (approve, restore, reject, interrupt), `retention.rs` the removal of old crawls and
//! unreferenced artifacts, `read.rs` the typed reads both kinds of transaction share.

mod backup;
mod error;
mod ignore;
pub mod migrate;
pub mod model;
mod read;
mod retention;
pub mod schema;
mod transitions;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ConcurrencyMode, Database, Durability, ReadOnlyDatabase, ReadableDatabase, ReadableTable};

pub use backup::{partial_path, restore_file, verify_file, VerifyReport};
pub use error::StoreError;
use error::{crawl_key, db_err, encode, page_key};
pub use model::*;
use schema::*;
pub use transitions::{
    all_pages_settled, ApprovalMode, BaselineMove, CrawlApproval, PageApproval, PagesApproval,
};

/// redb's page cache. Artifacts are large and read once per comparison (decoded baselines are
/// cached by the comparer), so a small cache bounds the daemon's memory without slowing crawls.
pub const STORE_CACHE_BYTES: usize = 32 * 1024 * 1024;

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

/// What a crawl is compared with, read in one transaction when it starts: the baselines of its
/// pages and the approved crawl its structural diff is taken against.
#[derive(Debug, Clone, Default)]
pub struct ComparisonBasis {
    /// The site's approved crawl approved last (see [`Store::last_approved_crawl`]).
    pub against: Option<u64>,
    pub baselines: HashMap<String, BaselineRecord>,
}

/// How every handle shares the file: one writer, any number of readers beside it.
const CONCURRENCY: ConcurrencyMode = ConcurrencyMode::SingleWriter;

/// The open database: read-write, or read-only beside another process that writes.
enum Handle {
    Write(Database),
    Read(ReadOnlyDatabase),
}

impl Handle {
    fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Handle::Write(db) => db.begin_read(),
            Handle::Read(db) => db.begin_read(),
        }
    }
}

#[cfg(test)]
impl Handle {
    /// A raw write transaction, for tests that plant records the API would never write.
    fn begin_write(&self) -> Result<redb::WriteTransaction, redb::TransactionError> {
        match self {
            Handle::Write(db) => db.begin_write(),
            Handle::Read(_) => panic!("a read-only handle has no write transaction"),
        }
    }
}

/// Handle to the database; cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Store {
    db: Arc<Handle>,
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
        let db = if path.exists() {
            // Check the schema through a read-only handle first, so that a file written by a newer
            // sitediff is refused without a single byte written to it.
            match redb::ReadOnlyDatabase::open(path) {
                Ok(ro) => {
                    check_newer_schema(&ro, path)?;
                    // An older schema is upgraded below: copy the file first, while this
                    // read-only handle keeps writers out.
                    if let Some(found) = schema_version(&ro)?.filter(|v| *v < SCHEMA_VERSION) {
                        migrate::backup_before_upgrade(path, found)?;
                    }
                    drop(ro);
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(StoreError::InUse { path: path.to_path_buf() })
                }
                // Needs repair (e.g. after a crash) or unreadable: the read-write open below repairs
                // our own files and reports anything else.
                Err(e) => tracing::warn!(
                    path = %path.display(), error = %e,
                    "cannot open the database read-only to check its schema; opening it read-write"
                ),
            }
            Database::builder().set_cache_size(STORE_CACHE_BYTES).set_concurrency_mode(CONCURRENCY).open(path)
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: path.to_path_buf(),
                    dir: dir.to_path_buf(),
                    source,
                })?;
            }
            Database::builder()
                .set_cache_size(STORE_CACHE_BYTES)
                .set_concurrency_mode(CONCURRENCY)
                .create(path)
        };
        let db = db.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: path.to_path_buf() },
            source => StoreError::Open { path: path.to_path_buf(), source },
        })?;
        let store = Store { db: Arc::new(Handle::Write(db)), path: path.to_path_buf() };
        store.check_schema()?;
        Ok(store)
    }

    /// Open an existing database for reading only, also while another process (the daemon) has it
    /// open for writing: reads see that process's commits. Writes fail with
    /// [`StoreError::ReadOnly`]. A file of an older schema is refused (the writer upgrades it).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let db = Database::builder()
            .set_cache_size(STORE_CACHE_BYTES)
            .set_concurrency_mode(CONCURRENCY)
            .open_read_only(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: path.to_path_buf() },
                source => StoreError::Open { path: path.to_path_buf(), source },
            })?;
        check_newer_schema(&db, path)?;
        match schema_version(&db)? {
            Some(SCHEMA_VERSION) => {}
            found => {
                return Err(StoreError::NeedsUpgrade {
                    path: path.to_path_buf(),
                    found: found.unwrap_or(0),
                    supported: SCHEMA_VERSION,
                })
            }
        }
        Ok(Store { db: Arc::new(Handle::Read(db)), path: path.to_path_buf() })
    }

    /// Whether this handle only reads (see [`Store::open_read_only`]).
    pub fn is_read_only(&self) -> bool {
        matches!(*self.db, Handle::Read(_))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        const OP: &str = "initialising the schema";
        let Handle::Write(db) = self.db.as_ref() else { return Ok(()) };
        check_newer_schema(db, &self.path)?;
        match schema_version(db)? {
            Some(SCHEMA_VERSION) => return Ok(()),
            Some(found) => {
                const UP: &str = "upgrading the schema";
                let wtx = self.write_txn(UP)?;
                let steps = migrate::upgrade(&wtx, found)?;
                wtx.commit().map_err(db_err(UP))?;
                tracing::info!(
                    path = %self.path.display(), from = found, to = SCHEMA_VERSION, ?steps,
                    "store upgraded to the current schema"
                );
                return Ok(());
            }
            None => {}
        }
        let wtx = self.write_txn(OP)?;
        {
            let mut meta = wtx.open_table(META).map_err(db_err(OP))?;
            meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION).map_err(db_err(OP))?;
            if meta.get(META_NEXT_CRAWL_ID).map_err(db_err(OP))?.is_none() {
                meta.insert(META_NEXT_CRAWL_ID, 1).map_err(db_err(OP))?;
            }
            wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            wtx.open_table(SITE_CRAWLS).map_err(db_err(OP))?;
            wtx.open_table(PAGES).map_err(db_err(OP))?;
            wtx.open_table(BASELINES).map_err(db_err(OP))?;
            wtx.open_table(BLOBS).map_err(db_err(OP))?;
            wtx.open_table(IGNORE_AREAS).map_err(db_err(OP))?;
        }
        wtx.commit().map_err(db_err(OP))
    }

    fn write_txn(&self, op: &'static str) -> Result<redb::WriteTransaction, StoreError> {
        let Handle::Write(db) = self.db.as_ref() else {
            return Err(StoreError::ReadOnly { path: self.path.clone(), op });
        };
        let mut wtx = db.begin_write().map_err(db_err(op))?;
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
                warnings: Vec::new(),
                incremental: false,
            };
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(OP))?;
            crawls.insert(id, encode("crawl", || crawl_key(id), &rec)?.as_slice()).map_err(db_err(OP))?;
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
            let bytes = encode("page", || page_key(crawl, &page.key), page)?;
            pages.insert((crawl, page.key.as_str()), bytes.as_slice()).map_err(db_err(OP))?;
        }
        wtx.commit().map_err(db_err(OP))
    }

    /// Overwrite a crawl record (counts, status, times).
    pub fn update_crawl(&self, rec: &CrawlRecord) -> Result<(), StoreError> {
        self.write_crawl(rec, &[], "updating a crawl")
    }

    /// Write a finished crawl's record together with the page records restated when it finished
    /// (pages found still failing), in one transaction: its status and its pages' changes agree.
    pub fn finish_crawl(&self, rec: &CrawlRecord, restated: &[PageRecord]) -> Result<(), StoreError> {
        self.write_crawl(rec, restated, "finishing a crawl")
    }

    /// Overwrite an existing crawl record and some of its page records in one transaction.
    fn write_crawl(
        &self,
        rec: &CrawlRecord,
        pages: &[PageRecord],
        op: &'static str,
    ) -> Result<(), StoreError> {
        let wtx = self.write_txn(op)?;
        {
            let mut crawls = wtx.open_table(CRAWLS).map_err(db_err(op))?;
            if crawls.get(rec.id).map_err(db_err(op))?.is_none() {
                return Err(StoreError::NoSuchCrawl { id: rec.id });
            }
            crawls
                .insert(rec.id, encode("crawl", || crawl_key(rec.id), rec)?.as_slice())
                .map_err(db_err(op))?;
            let mut table = wtx.open_table(PAGES).map_err(db_err(op))?;
            for page in pages {
                let bytes = encode("page", || page_key(rec.id, &page.key), page)?;
                table.insert((rec.id, page.key.as_str()), bytes.as_slice()).map_err(db_err(op))?;
            }
        }
        wtx.commit().map_err(db_err(op))
    }

    pub fn crawl(&self, id: u64) -> Result<Option<CrawlRecord>, StoreError> {
        const OP: &str = "reading a crawl";
        let rtx = self.read_txn(OP)?;
        read::crawl(&rtx.open_table(CRAWLS).map_err(db_err(OP))?, id, OP)
    }

    fn crawl_required(&self, id: u64) -> Result<CrawlRecord, StoreError> {
        self.crawl(id)?.ok_or(StoreError::NoSuchCrawl { id })
    }

    /// The ids of a site's crawls, oldest first.
    pub fn crawl_ids(&self, site: &str) -> Result<Vec<u64>, StoreError> {
        const OP: &str = "listing crawls";
        let rtx = self.read_txn(OP)?;
        read::crawl_ids(&rtx.open_table(SITE_CRAWLS).map_err(db_err(OP))?, site, OP)
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

    /// Among the approved crawls of a site older than `before` that are not pair crawls, the one
    /// approved last (by approval time, then id): the reference of the structural diff. Approvals
    /// only move forward, so this is the newest approved crawl unless an older one was restored.
    pub fn last_approved_crawl(&self, site: &str, before: u64) -> Result<Option<CrawlRecord>, StoreError> {
        const OP: &str = "finding the approved crawl";
        let rtx = self.read_txn(OP)?;
        let crawls = rtx.open_table(CRAWLS).map_err(db_err(OP))?;
        let idx = rtx.open_table(SITE_CRAWLS).map_err(db_err(OP))?;
        let approved = read::approved_crawls(&crawls, &idx, site, before, OP)?;
        Ok(read::last_approved(&approved).cloned())
    }

    /// What a new crawl of `site` is compared with, read in one transaction: its baselines and
    /// the approved crawl of its structural diff, so the pages and the structure agree on what
    /// they were compared against even when an approval lands while the crawl runs.
    pub fn comparison_basis(&self, site: &str) -> Result<ComparisonBasis, StoreError> {
        const OP: &str = "reading what a crawl is compared with";
        self.with_site_snapshot(site, OP, |crawls, idx, baselines| {
            let approved = read::approved_crawls(crawls, idx, site, u64::MAX, OP)?;
            Ok(ComparisonBasis { against: read::last_approved(&approved).map(|c| c.id), baselines })
        })
    }

    /// The newest approval of a site: the largest id among its approved crawls and the crawls its
    /// baselines come from. Approving an older crawl (or a page older than its baseline) is
    /// refused; restoring it is the explicit way back.
    pub fn newest_approval(&self, site: &str) -> Result<Option<u64>, StoreError> {
        const OP: &str = "finding the newest approval";
        self.with_site_snapshot(site, OP, |crawls, idx, baselines| {
            read::newest_approval(crawls, idx, &baselines, site, OP)
        })
    }

    /// Read a site's crawls, its crawl index and its baselines in one read transaction.
    fn with_site_snapshot<T>(
        &self,
        site: &str,
        op: &'static str,
        f: impl FnOnce(
            &redb::ReadOnlyTable<u64, &'static [u8]>,
            &redb::ReadOnlyTable<(&'static str, u64), ()>,
            HashMap<String, BaselineRecord>,
        ) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let rtx = self.read_txn(op)?;
        let crawls = rtx.open_table(CRAWLS).map_err(db_err(op))?;
        let idx = rtx.open_table(SITE_CRAWLS).map_err(db_err(op))?;
        let bt = rtx.open_table(BASELINES).map_err(db_err(op))?;
        let baselines = read::baselines(&bt, site, op)?.into_iter().collect();
        f(&crawls, &idx, baselines)
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
        read::pages(&rtx.open_table(PAGES).map_err(db_err(OP))?, crawl, OP)
    }

    pub fn page(&self, crawl: u64, key: &str) -> Result<Option<PageRecord>, StoreError> {
        const OP: &str = "reading a page";
        let rtx = self.read_txn(OP)?;
        read::page(&rtx.open_table(PAGES).map_err(db_err(OP))?, crawl, key, OP)
    }

    pub fn baseline(&self, site: &str, key: &str) -> Result<Option<BaselineRecord>, StoreError> {
        const OP: &str = "reading a baseline";
        let rtx = self.read_txn(OP)?;
        read::baseline(&rtx.open_table(BASELINES).map_err(db_err(OP))?, site, key, OP)
    }

    /// All baselines of a site, in page-key order.
    pub fn baselines(&self, site: &str) -> Result<Vec<(String, BaselineRecord)>, StoreError> {
        const OP: &str = "listing baselines";
        let rtx = self.read_txn(OP)?;
        read::baselines(&rtx.open_table(BASELINES).map_err(db_err(OP))?, site, OP)
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

#[cfg(test)]
mod tests;
