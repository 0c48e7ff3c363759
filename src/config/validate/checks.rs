//! The validation toolkit: the collector of issues and the checks several keys share (names, http
//! URLs, time zones, viewports, CSS selectors, paths relative to the project).

use std::path::{Path, PathBuf};

use url::Url;

use crate::config::defaults::MAX_VIEWPORT_DIM;
use crate::config::error::ConfigIssue;
use crate::config::model::Viewport;
use crate::config::raw::RawViewport;
use crate::crawl::links::normalize_url;

/// Collects every problem found, so that one run reports them all.
#[derive(Default)]
pub(in crate::config) struct Validator {
    pub issues: Vec<ConfigIssue>,
}

impl Validator {
    pub fn issue(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue { key: key.into(), message: message.into(), line: None });
    }

    /// A site or plugin name; reports and answers false when it is not one.
    pub fn name(&mut self, key: impl Into<String>, name: &str) -> bool {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            self.issue(key, format!("{name:?} must be 1-64 characters of a-z, A-Z, 0-9, '-', '_', '.'"));
        }
        ok
    }

    /// The name of an environment variable; reports and answers false when it cannot be one.
    pub fn env_var_name(&mut self, key: impl Into<String>, name: &str) -> bool {
        let ok = !(name.is_empty() || name.contains('=') || name.contains('\0'));
        if !ok {
            self.issue(key, format!("{name:?} is not an environment variable name"));
        }
        ok
    }

    /// An absolute http(s) URL with a host, normalised.
    pub fn http_url(&mut self, key: &str, site: &str, text: &str) -> Option<Url> {
        match Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(normalize_url(&u)),
            Ok(u) => {
                self.issue(
                    key,
                    format!("site {site:?}: {text:?} is not an http(s) URL (scheme {:?})", u.scheme()),
                );
                None
            }
            Err(e) => {
                self.issue(key, format!("site {site:?}: {text:?} is not a URL: {e}"));
                None
            }
        }
    }

    pub fn timezone(&mut self, key: &str, zone: &str) -> Option<chrono_tz::Tz> {
        match zone.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.issue(key, format!("{zone:?} is not an IANA time zone (e.g. \"Europe/Paris\")"));
                None
            }
        }
    }

    /// A viewport; an out-of-range one is reported (`what` prefixes the message) and kept as given.
    pub fn viewport(&mut self, key: impl Into<String>, what: &str, vp: RawViewport) -> Viewport {
        let in_range = |d: u32| (1..=MAX_VIEWPORT_DIM).contains(&d);
        if !in_range(vp.width) || !in_range(vp.height) {
            self.issue(
                key,
                format!("{what}{}x{} is out of range 1..={MAX_VIEWPORT_DIM}", vp.width, vp.height),
            );
        }
        Viewport { width: vp.width, height: vp.height }
    }
}

/// A CSS selector the browser can apply (non-empty, parsed by the same engine as discovery's).
pub(in crate::config) fn is_css_selector(sel: &str) -> bool {
    !sel.trim().is_empty() && scraper::Selector::parse(sel).is_ok()
}

/// The directory relative config paths are resolved against: the directory *above* `config/` when
/// the file lives in a `config` directory (the repo layout), else the file's directory.
pub(in crate::config) fn project_root(config_file: &Path) -> PathBuf {
    // Absolute, so that resolved paths (and the messages naming them) do not depend on where the
    // command runs from.
    let config_file = std::path::absolute(config_file).unwrap_or_else(|_| config_file.to_path_buf());
    let config_dir = config_file.parent().map(Path::to_path_buf).unwrap_or_default();
    if config_dir.file_name().is_some_and(|n| n == "config") {
        config_dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        config_dir
    }
}

/// A path from the config, relative to `root` unless absolute.
pub(in crate::config) fn resolve(root: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || root.as_os_str().is_empty() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}
