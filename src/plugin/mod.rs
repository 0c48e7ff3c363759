//! WebAssembly plugins (ABI v1, `plugins/ABI.md`): mask plugins hide what legitimately changes
//! before the diff, score plugins rate a diff afterwards. Sandboxed by wasmtime with fuel, a wall
//! clock (epoch) deadline and a memory cap per call; no WASI, one logging import.
//!
//! [`PluginHost`] compiles every configured module once, checks its imports, exports and ABI
//! version, and then runs calls ([`PluginHost::mask`], [`PluginHost::score`]) in a fresh store each.
//! Calls are blocking CPU work: run them off the async threads (`spawn_blocking`).
//!
//! Rooms: `model` (kinds, call contexts and outputs), `error`, `abi` (the wire format of ABI v1),
//! `check` (a module's imports and exports against the ABI), `host` (engine, loading, calls).

pub mod abi;
mod check;
mod error;
mod host;
mod model;

pub use error::{PluginError, PluginLogs, WasmError, OUTCOME_OK};
pub use host::{mask_context_json, score_context_json, PluginHost, PluginInfo};
pub use model::{CallStats, MaskContext, MaskOutput, PageContext, PluginKind, ScoreOutput, Size};

#[cfg(test)]
mod tests;
