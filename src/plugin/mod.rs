//! WebAssembly plugins (ABI v1, `plugins/ABI.md`): mask plugins hide what legitimately changes
//! before the diff, score plugins rate a diff afterwards. Sandboxed by wasmtime with fuel, a wall
//! clock (epoch) deadline and a memory cap per call; no WASI, one logging import.
//!
//! [`PluginHost`] compiles every configured module once, checks its imports, exports and ABI
//! version, and then runs calls ([`PluginHost::mask`], [`PluginHost::score`]) in a fresh store each.
//! Calls are blocking CPU work: run them off the async threads (`spawn_blocking`).

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::capture::SelectorRects;
use crate::diff::{Rect, RgbaImage};

pub mod abi;
mod check;
mod host;

pub use host::{PluginHost, PluginInfo};

/// What a plugin does, decided by the entry point it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `sitediff_mask`: runs on each capture before the diff.
    Mask,
    /// Exports `sitediff_score`: runs after the diff and gives the page's score.
    Score,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Mask => "mask",
            PluginKind::Score => "score",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A width and a height in pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl From<crate::config::Viewport> for Size {
    fn from(v: crate::config::Viewport) -> Size {
        Size { width: v.width, height: v.height }
    }
}

/// What a plugin is told about the page, besides the pixels. Serialised as the JSON context of
/// ABI v1 (`plugins/ABI.md`); the host fills in the image sizes (and, for scores, the diff) itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageContext {
    pub site: String,
    pub page_key: String,
    pub url: String,
    pub viewport: Size,
    /// The rectangles of elements matching the site's `mask_selectors`, measured at capture.
    pub selectors: Vec<SelectorRects>,
}

/// The context of a mask call (the same for both kinds of plugin).
pub type MaskContext = PageContext;

/// How one call went, for logs, metrics and the CLI.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallStats {
    /// Fuel units consumed (about one per wasm instruction).
    pub fuel_used: u64,
    /// Wall-clock time of the whole call, instantiation and copies included.
    pub elapsed: Duration,
}

/// What a mask plugin returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaskOutput {
    /// Regions the diff must not count (inside the image, validated).
    pub ignore: Vec<Rect>,
    /// The image with the pixels the plugin edited, when it edited any.
    pub image: Option<RgbaImage>,
    /// Lines the plugin logged through `env.log` (bounded).
    pub logs: Vec<String>,
    pub stats: CallStats,
}

/// What a score plugin returned.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreOutput {
    /// 0 = no meaningful change .. 1 = everything changed.
    pub score: f64,
    pub reason: Option<String>,
    pub logs: Vec<String>,
    pub stats: CallStats,
}

/// A wasmtime failure kept as the source of a [`PluginError`] (wasmtime's own error type converts
/// into it with its whole chain of causes).
pub type WasmError = Box<dyn StdError + Send + Sync + 'static>;

/// An error and its causes on one line, `outer: inner: innermost` (what `{:#}` printed for the
/// wasmtime errors these messages used to carry as text).
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// Everything that can go wrong loading or calling a plugin. Every variant names the plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin}: cannot read {}: {source}", path.display())]
    Io {
        plugin: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {plugin}: {} is not a valid WebAssembly module: {}", path.display(), chain(&**source))]
    Compile {
        plugin: String,
        path: PathBuf,
        #[source]
        source: WasmError,
    },
    #[error("plugin {plugin}: missing export `{export}` (ABI v1 needs {expected})")]
    MissingExport { plugin: String, export: String, expected: String },
    #[error("plugin {plugin}: export `{export}` {problem}")]
    BadExport { plugin: String, export: String, problem: String },
    #[error(
        "plugin {plugin}: imports `{module}.{name}`, but the only import sitediff provides is \
         `env.log(i32, i32)` (no WASI)"
    )]
    UnsupportedImport { plugin: String, module: String, name: String },
    #[error("plugin {plugin}: ABI version {found}, but this sitediff speaks version {supported}")]
    AbiVersion { plugin: String, found: i32, supported: i32 },
    #[error("plugin {plugin}: cannot be instantiated: {}", chain(&**source))]
    Instantiate {
        plugin: String,
        #[source]
        source: WasmError,
    },
    #[error("plugin {plugin}: cannot be instantiated: no exported memory")]
    NoMemory { plugin: String },
    #[error("no plugin named {plugin:?} is loaded")]
    Unknown { plugin: String },
    #[error("plugin {plugin} is a {actual} plugin, not a {wanted} plugin")]
    WrongKind { plugin: String, wanted: PluginKind, actual: PluginKind },
    /// The call failed inside wasm: `reason` names the trap (or gives the error's chain).
    #[error("plugin {plugin}: trapped: {reason}")]
    Trap {
        plugin: String,
        reason: String,
        #[source]
        source: WasmError,
    },
    #[error("plugin {plugin}: ran out of fuel (limit {fuel} units per call)")]
    OutOfFuel { plugin: String, fuel: u64 },
    #[error("plugin {plugin}: timed out (limit {} ms per call)", timeout.as_millis())]
    Timeout { plugin: String, timeout: Duration },
    #[error("plugin {plugin}: memory limit exceeded (wanted {requested} bytes, limit {limit} bytes)")]
    MemoryLimit { plugin: String, requested: usize, limit: usize },
    #[error("plugin {plugin}: bad output: {reason}")]
    BadOutput { plugin: String, reason: String },
    #[error("plugin {plugin}: reported failure (returned {code})")]
    Failed { plugin: String, code: i64 },
    #[error("plugin {plugin}: input rejected: {reason}")]
    Input { plugin: String, reason: String },
    #[error("plugin {plugin}: input rejected: context: {source}")]
    Context {
        plugin: String,
        #[source]
        source: serde_json::Error,
    },
    /// Setting up the shared engine failed (shared by every plugin, hence the `Arc`).
    #[error("plugin {plugin}: wasm engine: {step}: {}", chain(&**source))]
    Engine {
        plugin: String,
        /// What the host was doing, e.g. `starting the epoch ticker thread`.
        step: &'static str,
        #[source]
        source: Arc<dyn StdError + Send + Sync + 'static>,
    },
}

impl PluginError {
    /// The plugin this error concerns.
    pub fn plugin(&self) -> &str {
        match self {
            PluginError::Io { plugin, .. }
            | PluginError::Compile { plugin, .. }
            | PluginError::MissingExport { plugin, .. }
            | PluginError::BadExport { plugin, .. }
            | PluginError::UnsupportedImport { plugin, .. }
            | PluginError::AbiVersion { plugin, .. }
            | PluginError::Instantiate { plugin, .. }
            | PluginError::NoMemory { plugin }
            | PluginError::Unknown { plugin }
            | PluginError::WrongKind { plugin, .. }
            | PluginError::Trap { plugin, .. }
            | PluginError::OutOfFuel { plugin, .. }
            | PluginError::Timeout { plugin, .. }
            | PluginError::MemoryLimit { plugin, .. }
            | PluginError::BadOutput { plugin, .. }
            | PluginError::Failed { plugin, .. }
            | PluginError::Input { plugin, .. }
            | PluginError::Context { plugin, .. }
            | PluginError::Engine { plugin, .. } => plugin,
        }
    }

    /// A short, bounded label for metrics (`sitediff_plugin_calls_total{outcome}`); successful
    /// calls use [`OUTCOME_OK`].
    pub fn outcome(&self) -> &'static str {
        match self {
            PluginError::Io { .. } => "io",
            PluginError::Compile { .. } => "compile",
            PluginError::MissingExport { .. }
            | PluginError::BadExport { .. }
            | PluginError::UnsupportedImport { .. }
            | PluginError::AbiVersion { .. } => "abi",
            PluginError::Instantiate { .. } | PluginError::NoMemory { .. } => "instantiate",
            PluginError::Unknown { .. } | PluginError::WrongKind { .. } => "not_applicable",
            PluginError::Trap { .. } => "trap",
            PluginError::OutOfFuel { .. } => "out_of_fuel",
            PluginError::Timeout { .. } => "timeout",
            PluginError::MemoryLimit { .. } => "memory_limit",
            PluginError::BadOutput { .. } | PluginError::Failed { .. } => "bad_output",
            PluginError::Input { .. } | PluginError::Context { .. } => "input",
            PluginError::Engine { .. } => "engine",
        }
    }
}

/// Metrics label of a successful plugin call.
pub const OUTCOME_OK: &str = "ok";

#[cfg(test)]
mod tests;
