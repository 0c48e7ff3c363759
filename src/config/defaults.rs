//! Every default value and limit of the config file in one place (the values a key takes when the
//! file leaves it out, and the ranges validation accepts).

use std::time::Duration;

use super::model::{PluginLimits, Viewport};

/// Default config path when neither `--config` nor `SITEDIFF_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/sitediff.toml";
/// Environment variable that overrides the config path.
pub const CONFIG_ENV: &str = "SITEDIFF_CONFIG";

pub(super) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Connections served at once; past it the oldest connection without a request in progress is closed.
pub(super) const DEFAULT_MAX_CONNECTIONS: usize = 256;
pub(super) const MAX_MAX_CONNECTIONS: usize = 100_000;
/// A request's headers (and an idle keep-alive connection's next request) must arrive within this.
pub(super) const DEFAULT_HEADER_TIMEOUT_MS: u64 = 20_000;
/// A request body must arrive within this (uploads: no pause longer than this).
pub(super) const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
/// Shortest header or body timeout accepted.
pub(super) const MIN_HTTP_TIMEOUT_MS: u64 = 100;
pub(super) const DEFAULT_STORE_PATH: &str = "data/sitediff.redb";
pub(super) const DEFAULT_KEEP_CRAWLS: u32 = 20;
pub(super) const DEFAULT_SESSIONS: usize = 2;
pub(super) const MAX_SESSIONS: usize = 64;
pub(super) const DEFAULT_SESSION_TIMEOUT_MS: u64 = 60_000;
/// Shortest `session_timeout_ms` accepted (a browser takes about a second to start).
pub(super) const MIN_SESSION_TIMEOUT_MS: u64 = 1_000;
pub(super) const DEFAULT_RECYCLE_AFTER: u32 = 200;
pub(super) const DEFAULT_MAX_PAGES: usize = 1000;
pub(super) const DEFAULT_MAX_QUERY_VARIANTS: usize = 100;
pub(super) const DEFAULT_VIEWPORT: Viewport = Viewport { width: 1280, height: 800 };
pub(super) const DEFAULT_THRESHOLD: f64 = 0.1;
pub(super) const DEFAULT_PAGE_TIMEOUT_MS: u64 = 30_000;
pub(super) const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 15_000;
pub(super) const DEFAULT_MAX_HEIGHT: u32 = 150_000;
/// Smallest `max_height` accepted.
pub(super) const MIN_MAX_HEIGHT: u32 = 100;
pub(super) const DEFAULT_MAX_CONCURRENT_SITES: usize = 2;
pub(super) const DEFAULT_PLUGIN_FUEL: u64 = 5_000_000_000;
pub(super) const DEFAULT_PLUGIN_MEMORY_MB: u32 = 64;
/// Largest `memory_mb` a plugin may ask for.
pub(super) const MAX_PLUGIN_MEMORY_MB: u32 = 4096;
pub(super) const DEFAULT_PLUGIN_TIMEOUT_MS: u64 = 2_000;
pub(super) const MAX_VIEWPORT_DIM: u32 = 10_000;
/// Most viewports one site may be captured at.
pub(super) const MAX_VIEWPORTS: usize = 8;
/// Largest `urls_file` read.
pub(super) const MAX_URLS_FILE_BYTES: u64 = 16 * 1024 * 1024;

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            fuel: DEFAULT_PLUGIN_FUEL,
            memory_bytes: DEFAULT_PLUGIN_MEMORY_MB as usize * 1024 * 1024,
            timeout: Duration::from_millis(DEFAULT_PLUGIN_TIMEOUT_MS),
        }
    }
}
