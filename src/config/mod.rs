//! Configuration: the TOML file parsed into strict serde structs, then validated into typed values.
//!
//! Rooms: `raw` is the file as written (strict structs: unknown keys are refused); `unknown`
//! finds every unknown key at once, with a "did you mean"; `validate` turns the raw file into the
//! typed `model`, reporting *all* problems at once, each with the path of the key it concerns
//! (`sites[1].start`); `locate` finds that key's line from the parser's spans; `defaults` holds
//! every default and limit; `error` what loading reports. This file only finds and loads.

mod builtin;
mod defaults;
mod error;
mod locate;
mod model;
mod raw;
mod unknown;
mod validate;

use std::path::{Path, PathBuf};

pub use builtin::BUILTIN_PLUGIN_PREFIX;
pub use defaults::{CONFIG_ENV, DEFAULT_CONFIG_PATH};
pub use error::{ConfigError, ConfigIssue, ConfigOrigin};
pub use locate::{locate_key, KeyLocator};
pub use model::{
    AllowedHost, BasicAuth, BrowserConfig, Capacity, CaptureOptions, Config, ConfigIgnoreArea, Cookie,
    NotifyConfig, NotifyFormat, NotifyOn, PairPrefix, PluginConfig, PluginLimits, PluginSource, Schedule,
    SchedulerConfig, ServerConfig, SiteConfig, StoreConfig, Transport, UrlOptions, Viewport,
    WebDriverEndpoint,
};
pub use raw::{
    RawBasicAuth, RawBrowser, RawConfig, RawCookie, RawNotify, RawPlugin, RawScheduler, RawServer, RawSite,
    RawStore, RawUrl, RawUrlOptions, RawViewport,
};

/// Where the config file is looked for, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    pub path: PathBuf,
    pub origin: ConfigOrigin,
}

impl Config {
    /// Resolve the config path: explicit, then `SITEDIFF_CONFIG`, then the default.
    pub fn resolve_path(explicit: Option<&Path>) -> PathBuf {
        Self::locate(explicit).path
    }

    /// Where the config file is: explicit (`--config`), then `SITEDIFF_CONFIG`, then the default.
    pub fn locate(explicit: Option<&Path>) -> ConfigLocation {
        if let Some(p) = explicit {
            return ConfigLocation { path: p.to_path_buf(), origin: ConfigOrigin::Flag };
        }
        match std::env::var_os(CONFIG_ENV) {
            Some(p) if !p.is_empty() => ConfigLocation { path: PathBuf::from(p), origin: ConfigOrigin::Env },
            _ => ConfigLocation { path: PathBuf::from(DEFAULT_CONFIG_PATH), origin: ConfigOrigin::Default },
        }
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// [`Config::load`] from a located file: a missing file says where it was looked for, why
    /// there, and how to name another one (`--config`, `SITEDIFF_CONFIG`).
    pub fn load_located(location: &ConfigLocation) -> Result<Config, ConfigError> {
        Self::load(&location.path).map_err(|e| match e {
            ConfigError::Read { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                let tried = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
                ConfigError::NotFound { path, tried, origin: location.origin }
            }
            other => other,
        })
    }

    /// Parse and validate config text; `path` names the file in messages and anchors relative paths.
    /// Every problem is reported at once, in file order: unknown keys (with the closest known key),
    /// values of the wrong type, and every value that fails validation.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let parse_err = |source| ConfigError::Parse { path: path.to_path_buf(), source };
        let collected = unknown::parse_collecting::<RawConfig>(text).map_err(parse_err)?;
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let mut issues: Vec<ConfigIssue> = collected
            .unknown
            .iter()
            .map(|k| ConfigIssue {
                key: k.path.clone(),
                message: k.message(),
                line: Some(line_of(k.span.start)),
            })
            .collect();
        // A value taken out for its type, or a key that is absent because it was misspelt, is not
        // also reported by validation.
        let taken_out: Vec<String> = collected.others.iter().map(|p| p.path.clone()).collect();
        issues.extend(collected.others.into_iter().map(|p| ConfigIssue {
            key: p.path,
            message: p.message,
            line: Some(line_of(p.offset)),
        }));
        match collected.value {
            Err(source) => return Err(parse_err(source)),
            // Validated even with entries taken out, for the problems of the rest.
            Ok(raw) => match Self::from_raw(raw, path) {
                Ok(config) if issues.is_empty() => return Ok(config),
                Ok(_) => {}
                Err(invalid) => {
                    let locator = KeyLocator::new(text);
                    issues.extend(
                        invalid
                            .into_iter()
                            .filter(|i| {
                                !taken_out.contains(&i.key) && !unknown::misspelt(&collected.unknown, &i.key)
                            })
                            .map(|mut issue| {
                                issue.line = locator.line_of(&issue.key);
                                issue
                            }),
                    );
                }
            },
        }
        // In file order; problems without a line (keys the file leaves out) last.
        issues.sort_by_key(|i| i.line.unwrap_or(usize::MAX));
        Err(ConfigError::Invalid { path: path.to_path_buf(), issues })
    }
}

#[cfg(test)]
mod tests;
