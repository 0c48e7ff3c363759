//! The store's error type and the small helpers that build it (redb failures, JSON record coding).

use std::path::PathBuf;

use super::model::CrawlStatus;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: cannot create {dir}: {source}")]
    CreateDir {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
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
    #[error(
        "database {path} has schema version {found}; opening it to write (sitediff serve, crawl, \
         approve) upgrades it to {supported}"
    )]
    NeedsUpgrade { path: PathBuf, found: u64, supported: u64 },
    #[error("database {path} is open read-only: cannot write while {op}")]
    ReadOnly { path: PathBuf, op: &'static str },
    #[error(
        "database {path} needs a schema upgrade but cannot be copied to {dest} first (the upgrade \
         was not started; the file is untouched): {source}"
    )]
    Backup {
        path: PathBuf,
        dest: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {dest}: {source}")]
    BackupWrite {
        dest: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the database holds a table {table:?} the backup does not know: add it to store/backup.rs \
         (nothing was written)"
    )]
    UnknownTable { table: String },
    #[error("the database has no schema version: it is not a sitediff store")]
    NoSchema,
    #[error("artifact {hash} does not match its content: the file is damaged")]
    BadBlob { hash: String },
    #[error("artifact {hash} is referenced but missing: the file is damaged")]
    MissingBlob { hash: String },
    #[error("no upgrade step from schema version {found} (this build writes {supported})")]
    NoUpgrade { found: u64, supported: u64 },
    #[error("database error while {op}: {source}")]
    Db {
        op: &'static str,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("corrupt {what} record ({key}) in the database: {source}")]
    Corrupt {
        what: &'static str,
        /// Which record: e.g. `crawl 3`, `crawl 3, page "/a"`.
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode the {what} record ({key}): {source}")]
    Encode {
        what: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no crawl with id {id}")]
    NoSuchCrawl { id: u64 },
    #[error("site {site:?} has no crawls")]
    NoCrawls { site: String },
    #[error("crawl {crawl} has no page {key:?}")]
    NoSuchPage { crawl: u64, key: String },
    #[error("crawl {id} is {status} and cannot be {action}")]
    BadTransition { id: u64, status: CrawlStatus, action: &'static str },
    #[error(
        "crawl {id} is older than the newest approval of site {site:?} (crawl {newer}): approving it \
         would move {back} baseline(s) back to older captures; restore it to do that on purpose"
    )]
    OlderThanApproved {
        id: u64,
        site: String,
        /// The newest approved crawl (or page approval) of the site.
        newer: u64,
        /// How many baselines would move back.
        back: usize,
    },
    #[error(
        "page {key:?} of crawl {crawl} is older than its baseline (from crawl {baseline}): approving \
         it would move the baseline back to an older capture; restore the page to do that on purpose"
    )]
    OlderThanBaseline { crawl: u64, key: String, baseline: u64 },
}

impl StoreError {
    /// An approval refused because it would move baselines back (a restore would do it).
    pub fn is_rollback(&self) -> bool {
        matches!(self, StoreError::OlderThanApproved { .. } | StoreError::OlderThanBaseline { .. })
    }
}

/// Maps a redb failure during `op` to [`StoreError::Db`].
pub(super) fn db_err<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Db { op, source: Box::new(e.into()) }
}

/// JSON-encode a record; `key` names it in the error (only built on failure).
pub(super) fn encode<T: serde::Serialize>(
    what: &'static str,
    key: impl FnOnce() -> String,
    v: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|source| StoreError::Encode { what, key: key(), source })
}

/// Decode a JSON record; `key` names it in the error (only built on failure).
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    key: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { what, key: key(), source })
}

/// How errors name a crawl record.
pub(super) fn crawl_key(id: u64) -> String {
    format!("crawl {id}")
}

/// How errors name a page record.
pub(super) fn page_key(crawl: u64, key: &str) -> String {
    format!("crawl {crawl}, page {key:?}")
}

/// How errors name a baseline record.
pub(super) fn baseline_key(site: &str, key: &str) -> String {
    format!("site {site:?}, page {key:?}")
}
