//! The redb schema: every table definition and the schema version, in one place.
//!
//! Values are JSON-encoded records (see `model.rs`) except blobs (raw bytes) and counters.
//! Bump [`SCHEMA_VERSION`] on any incompatible change; a file written by a newer version is refused.

use redb::TableDefinition;

/// The schema version this build writes and understands. Older files are upgraded by the steps in
/// `migrate.rs`, each in one write transaction.
pub const SCHEMA_VERSION: u64 = 3;

/// Keys of [`META`].
pub const META_SCHEMA_VERSION: &str = "schema_version";
pub const META_NEXT_CRAWL_ID: &str = "next_crawl_id";
pub const META_NEXT_IGNORE_ID: &str = "next_ignore_id";

/// Counters and the schema version.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// crawl id -> `CrawlRecord` (JSON).
pub const CRAWLS: TableDefinition<u64, &[u8]> = TableDefinition::new("crawls");
/// (site, crawl id) -> () : the crawls of each site, in id order.
pub const SITE_CRAWLS: TableDefinition<(&str, u64), ()> = TableDefinition::new("site_crawls");
/// (crawl id, page key) -> `PageRecord` (JSON).
pub const PAGES: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("pages");
/// (site, page key) -> `BaselineRecord` (JSON).
pub const BASELINES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("baselines");
/// blake3 hash -> artifact bytes (PNG, HTML, diff image), stored once.
pub const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// (site, ignore area id) -> `IgnoreArea` (JSON) (schema 3).
pub const IGNORE_AREAS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("ignore_areas");
