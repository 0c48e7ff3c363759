//! The plugin error type: every variant names its plugin; wasmtime failures are kept as sources.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::model::PluginKind;

/// A wasmtime failure kept as the source of a [`PluginError`] (wasmtime's own error type converts
/// into it with its whole chain of causes).
pub type WasmError = Box<dyn StdError + Send + Sync + 'static>;

pub(super) use crate::errors::chain;

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
    /// `reason` names the trap and where it happened (function and offset), `logs` what the
    /// plugin logged before.
    #[error("plugin {plugin}: trapped: {reason}{logs}")]
    Trap {
        plugin: String,
        reason: String,
        logs: PluginLogs,
        #[source]
        source: WasmError,
    },
    #[error("plugin {plugin}: ran out of fuel (limit {fuel} units per call){logs}")]
    OutOfFuel { plugin: String, fuel: u64, logs: PluginLogs },
    #[error("plugin {plugin}: timed out (limit {} ms per call){logs}", timeout.as_millis())]
    Timeout { plugin: String, timeout: Duration, logs: PluginLogs },
    #[error("plugin {plugin}: memory limit exceeded (wanted {requested} bytes, limit {limit} bytes){logs}")]
    MemoryLimit { plugin: String, requested: usize, limit: usize, logs: PluginLogs },
    #[error("plugin {plugin}: bad output: {reason}{logs}")]
    BadOutput { plugin: String, reason: String, logs: PluginLogs },
    #[error("plugin {plugin}: reported failure (returned {code}){logs}")]
    Failed { plugin: String, code: i64, logs: PluginLogs },
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

/// What a plugin logged during a failed call, shown with the failure: `; it logged: "a" / "b"`
/// (nothing when it logged nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginLogs(pub Vec<String>);

impl fmt::Display for PluginLogs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { "; it logged: " } else { " / " })?;
            write!(f, "{line:?}")?;
        }
        Ok(())
    }
}

impl PluginError {
    /// The lines the plugin logged during the failed call (empty for load errors).
    pub fn logs(&self) -> &[String] {
        match self {
            PluginError::Trap { logs, .. }
            | PluginError::OutOfFuel { logs, .. }
            | PluginError::Timeout { logs, .. }
            | PluginError::MemoryLimit { logs, .. }
            | PluginError::BadOutput { logs, .. }
            | PluginError::Failed { logs, .. } => &logs.0,
            _ => &[],
        }
    }

    /// Attach what the plugin logged to a call failure (other errors are returned as they are).
    pub(super) fn with_logs(mut self, lines: Vec<String>) -> PluginError {
        match &mut self {
            PluginError::Trap { logs, .. }
            | PluginError::OutOfFuel { logs, .. }
            | PluginError::Timeout { logs, .. }
            | PluginError::MemoryLimit { logs, .. }
            | PluginError::BadOutput { logs, .. }
            | PluginError::Failed { logs, .. } => logs.0 = lines,
            _ => {}
        }
        self
    }

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
