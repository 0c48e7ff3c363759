//! What can go wrong loading a config: the file missing or unreadable, not TOML, or keys and
//! values that fail (every problem at once, each with its key path and line).

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong loading a config file.
///
/// The cause of `Read` and `Parse` is their [`source`](std::error::Error::source), not part of the
/// message: print the chain (`{:#}` with anyhow) to see it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No file where the config was looked for: where, why there, and how to name another.
    #[error(
        "config file {path} not found ({origin}; looked for {tried}): name the config file with \
         --config PATH or the SITEDIFF_CONFIG variable"
    )]
    NotFound { path: PathBuf, tried: PathBuf, origin: ConfigOrigin },
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a value of the wrong type (the source says where).
    #[error("config file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("config file {path} has {} problem(s):\n{}", issues.len(), ConfigIssues(issues))]
    Invalid { path: PathBuf, issues: Vec<ConfigIssue> },
}

/// Why the config file was looked for where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// `--config PATH`.
    Flag,
    /// The `SITEDIFF_CONFIG` variable.
    Env,
    /// Neither: the default path.
    Default,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigOrigin::Flag => "given with --config",
            ConfigOrigin::Env => "named by SITEDIFF_CONFIG",
            ConfigOrigin::Default => "the default path: neither --config nor SITEDIFF_CONFIG is set",
        })
    }
}

/// One problem: the key path it concerns and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigIssue {
    pub key: String,
    pub message: String,
    /// The 1-based line of the key (or of its table) in the file, when found.
    pub line: Option<usize>,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// The issues of [`ConfigError::Invalid`], one indented `- ` line each.
struct ConfigIssues<'a>(&'a [ConfigIssue]);

impl fmt::Display for ConfigIssues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {issue}")?;
        }
        Ok(())
    }
}
