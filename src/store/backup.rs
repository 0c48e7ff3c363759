//! Online backup and verification: a consistent copy of the store taken from one read transaction
//! (a snapshot: writers go on meanwhile and none of their later commits is in the copy), written
//! to a new file under a temporary name, verified, then renamed into place; and a walk that checks
//! a store file is whole (every record decodes, every referenced artifact is there and matches its
//! hash) before anyone relies on it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, MultimapTableHandle, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableHandle, WriteTransaction,
};

use super::error::{baseline_key, crawl_key, db_err, decode, page_key, StoreError};
use super::model::{BaselineRecord, CrawlRecord, Hash, PageRecord};
use super::schema::{BASELINES, BLOBS, CRAWLS, IGNORE_AREAS, META, META_SCHEMA_VERSION, PAGES, SITE_CRAWLS};
use super::Store;

/// What a backup or a verification saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerifyReport {
    pub schema_version: u64,
    pub crawls: u64,
    pub pages: u64,
    pub baselines: u64,
    pub blobs: u64,
    /// Bytes of artifact content.
    pub blob_bytes: u64,
}

/// Copy every entry of one table from the snapshot into the new file.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    rtx: &ReadTransaction,
    wtx: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    const OP: &str = "copying a table into the backup";
    let from = match rtx.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(db_err(OP)(e)),
    };
    let mut to = wtx.open_table(def).map_err(db_err(OP))?;
    for entry in from.iter().map_err(db_err(OP))? {
        let (k, v) = entry.map_err(db_err(OP))?;
        to.insert(k.value(), v.value()).map_err(db_err(OP))?;
    }
    Ok(())
}

/// Every table of the schema, copied. A table added to `schema.rs` must be added here (and to
/// [`KNOWN_TABLES`]): a backup of a file holding a table not listed fails rather than drop it.
fn copy_all(rtx: &ReadTransaction, wtx: &WriteTransaction) -> Result<(), StoreError> {
    copy_table(rtx, wtx, META)?;
    copy_table(rtx, wtx, CRAWLS)?;
    copy_table(rtx, wtx, SITE_CRAWLS)?;
    copy_table(rtx, wtx, PAGES)?;
    copy_table(rtx, wtx, BASELINES)?;
    copy_table(rtx, wtx, BLOBS)?;
    copy_table(rtx, wtx, IGNORE_AREAS)?;
    Ok(())
}

/// The names of the tables [`copy_all`] copies.
const KNOWN_TABLES: &[&str] =
    &["meta", "crawls", "site_crawls", "pages", "baselines", "blobs", "ignore_areas"];

fn check_known_tables(rtx: &ReadTransaction) -> Result<(), StoreError> {
    const OP: &str = "listing the tables";
    let mut names: Vec<String> =
        rtx.list_tables().map_err(db_err(OP))?.map(|t| t.name().to_string()).collect();
    names.extend(rtx.list_multimap_tables().map_err(db_err(OP))?.map(|t| t.name().to_string()));
    match names.into_iter().find(|n| !KNOWN_TABLES.contains(&n.as_str())) {
        Some(table) => Err(StoreError::UnknownTable { table }),
        None => Ok(()),
    }
}

/// `dest` with `.partial` appended: where a backup or restore is written before its rename.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut p = dest.as_os_str().to_os_string();
    p.push(".partial");
    PathBuf::from(p)
}

impl Store {
    /// Write a consistent copy of the store to `dest` (which must not exist) while it stays in
    /// use: the copy is the state of one read transaction. It is written to `dest.partial`,
    /// committed durably, verified, then renamed to `dest`; a crash at any point leaves no file at
    /// `dest` or a whole one. Blocking.
    pub fn backup_to(&self, dest: &Path) -> Result<VerifyReport, StoreError> {
        const OP: &str = "backing up the store";
        let fail = |source: std::io::Error| StoreError::BackupWrite { dest: dest.to_path_buf(), source };
        if dest.exists() {
            return Err(fail(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file exists")));
        }
        let partial = partial_path(dest);
        if partial.exists() {
            // Never removed here: the path may come over the API, and the file may not be ours.
            return Err(StoreError::BackupWrite {
                dest: partial,
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the file exists (a leftover of an interrupted backup? remove it, or choose another name)",
                ),
            });
        }
        let rtx = self.read_txn(OP)?;
        check_known_tables(&rtx)?;
        let copied = (|| {
            let db = Database::builder()
                .set_cache_size(super::STORE_CACHE_BYTES)
                .create(&partial)
                .map_err(|source| StoreError::Open { path: partial.clone(), source })?;
            let mut wtx = db.begin_write().map_err(db_err(OP))?;
            wtx.set_durability(Durability::Immediate).map_err(db_err(OP))?;
            copy_all(&rtx, &wtx)?;
            wtx.commit().map_err(db_err(OP))?;
            drop(db);
            drop(rtx);
            let report = verify_file(&partial)?;
            std::fs::rename(&partial, dest).map_err(fail)?;
            sync_parent(dest).map_err(fail)?;
            Ok(report)
        })();
        if copied.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        copied
    }

    /// Check that the store is whole: every record decodes, every page's and baseline's artifacts
    /// are there, every artifact matches its hash. Blocking; reads one snapshot.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let rtx = self.read_txn("verifying the store")?;
        verify_snapshot(&rtx)
    }
}

/// Open the file at `path` read-only (any schema up to this build's) and verify it.
pub fn verify_file(path: &Path) -> Result<VerifyReport, StoreError> {
    let db = redb::ReadOnlyDatabase::open(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: path.to_path_buf() },
        source => StoreError::Open { path: path.to_path_buf(), source },
    })?;
    super::check_newer_schema(&db, path)?;
    let rtx = db.begin_read().map_err(db_err("verifying the store"))?;
    verify_snapshot(&rtx)
}

fn verify_snapshot(rtx: &ReadTransaction) -> Result<VerifyReport, StoreError> {
    const OP: &str = "verifying the store";
    let mut report = VerifyReport::default();
    let meta = rtx.open_table(META).map_err(db_err(OP))?;
    report.schema_version =
        meta.get(META_SCHEMA_VERSION).map_err(db_err(OP))?.map(|v| v.value()).ok_or(StoreError::NoSchema)?;
    let mut referenced: HashSet<[u8; 32]> = HashSet::new();
    let mut refer = |h: &Hash| {
        referenced.insert(h.0);
    };
    for e in rtx.open_table(CRAWLS).map_err(db_err(OP))?.iter().map_err(db_err(OP))? {
        let (k, v) = e.map_err(db_err(OP))?;
        let _: CrawlRecord = decode("crawl", || crawl_key(k.value()), v.value())?;
        report.crawls += 1;
    }
    for e in rtx.open_table(PAGES).map_err(db_err(OP))?.iter().map_err(db_err(OP))? {
        let (k, v) = e.map_err(db_err(OP))?;
        let (crawl, key) = k.value();
        let p: PageRecord = decode("page", || page_key(crawl, key), v.value())?;
        for h in [&p.png, &p.html, &p.diff, &p.baseline_png].into_iter().flatten() {
            refer(h);
        }
        report.pages += 1;
    }
    for e in rtx.open_table(BASELINES).map_err(db_err(OP))?.iter().map_err(db_err(OP))? {
        let (k, v) = e.map_err(db_err(OP))?;
        let (site, key) = k.value();
        let b: BaselineRecord = decode("baseline", || baseline_key(site, key), v.value())?;
        refer(&b.png);
        if let Some(h) = &b.html {
            refer(h);
        }
        report.baselines += 1;
    }
    let blobs = rtx.open_table(BLOBS).map_err(db_err(OP))?;
    for e in blobs.iter().map_err(db_err(OP))? {
        let (k, v) = e.map_err(db_err(OP))?;
        let bytes = v.value();
        if blake3::hash(bytes).as_bytes() != k.value() {
            return Err(StoreError::BadBlob { hash: Hash(*k.value()).to_string() });
        }
        report.blobs += 1;
        report.blob_bytes += bytes.len() as u64;
    }
    for h in &referenced {
        if blobs.get(h).map_err(db_err(OP))?.is_none() {
            return Err(StoreError::MissingBlob { hash: Hash(*h).to_string() });
        }
    }
    Ok(report)
}

/// Make a rename into `path`'s directory durable.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Put the verified store file `src` in place of `path` (nothing may have `path` open: the daemon
/// is stopped). The file there before, if any, is kept as `path.before-restore`. Returns what
/// `src` holds and where the old file went. Blocking.
pub fn restore_file(src: &Path, path: &Path) -> Result<(VerifyReport, Option<PathBuf>), StoreError> {
    let report = verify_file(src)?;
    let fail = |source: std::io::Error| StoreError::BackupWrite { dest: path.to_path_buf(), source };
    if path.exists() {
        // The lock tells whether a process (the daemon) has it open.
        match Database::open(path) {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::InUse { path: path.to_path_buf() })
            }
            // Open or not (a damaged file is a reason to restore), nobody holds it now.
            Ok(db) => drop(db),
            Err(_) => {}
        }
    } else if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let partial = partial_path(path);
    std::fs::copy(src, &partial).map_err(fail)?;
    std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(fail)?;
    let kept = if path.exists() {
        let mut old = path.as_os_str().to_os_string();
        old.push(".before-restore");
        let old = PathBuf::from(old);
        std::fs::rename(path, &old).map_err(fail)?;
        Some(old)
    } else {
        None
    };
    std::fs::rename(&partial, path).map_err(fail)?;
    sync_parent(path).map_err(fail)?;
    Ok((report, kept))
}
