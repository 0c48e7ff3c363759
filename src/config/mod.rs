//! Configuration: the TOML file parsed into strict serde structs, then validated into typed values.
//!
//! Rooms: `raw` is the file as written (unknown keys are rejected by the parser with their name
//! and line); `validate` turns it into the typed `model`, reporting *all* problems at once, each
//! with the path of the key it concerns (`sites[1].start`); `locate` finds that key's line from
//! the parser's spans; `defaults` holds every default and limit; `error` what loading reports.
//! This file only loads.

mod defaults;
mod error;
mod locate;
mod model;
mod raw;
mod validate;

use std::path::{Path, PathBuf};

pub use defaults::{BUILTIN_PLUGIN_PREFIX, CONFIG_ENV, DEFAULT_CONFIG_PATH};
pub use error::{ConfigError, ConfigIssue};
pub use locate::{locate_key, KeyLocator};
pub use model::{
    BasicAuth, BrowserConfig, CaptureOptions, Config, Cookie, PluginConfig, PluginLimits, PluginSource,
    Schedule, SchedulerConfig, ServerConfig, SiteConfig, StoreConfig, UrlOptions, Viewport,
    WebDriverEndpoint,
};
pub use raw::{
    RawBasicAuth, RawBrowser, RawConfig, RawCookie, RawPlugin, RawScheduler, RawServer, RawSite, RawStore,
    RawUrl, RawUrlOptions, RawViewport,
};

impl Config {
    /// Resolve the config path: explicit, then `SITEDIFF_CONFIG`, then the default.
    pub fn resolve_path(explicit: Option<&Path>) -> PathBuf {
        if let Some(p) = explicit {
            return p.to_path_buf();
        }
        match std::env::var_os(CONFIG_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_CONFIG_PATH),
        }
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parse and validate config text; `path` names the file in messages and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })?;
        Self::from_raw(raw, path).map_err(|mut issues| {
            let locator = KeyLocator::new(text);
            for issue in &mut issues {
                issue.line = locator.line_of(&issue.key);
            }
            ConfigError::Invalid { path: path.to_path_buf(), issues }
        })
    }
}

#[cfg(test)]
mod tests;
