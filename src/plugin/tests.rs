//! Unit tests of the plugin errors: the wasmtime failure stays reachable as the source and the
//! message still shows its whole chain.

use std::error::Error as StdError;

use super::error::chain;
use super::*;
use crate::config::PluginLimits;
use crate::diff::RgbaImage;

/// Load one plugin from WAT text written to a temporary file.
fn load_wat(name: &str, wat: &str) -> (tempfile::TempDir, Result<PluginHost, Vec<PluginError>>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.wat"));
    std::fs::write(&path, wat).unwrap();
    let host = PluginHost::load_file(name, path, PluginLimits::default());
    (dir, host)
}

fn chain_text(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text = format!("{text} | {cause}");
        next = cause.source();
    }
    text
}

#[test]
fn a_compile_error_keeps_wasmtime_s_chain_as_its_source() {
    let (_d, host) = load_wat("bad", r#"(module (func (export "f") (result i32) (i64.const 1)))"#);
    let errors = host.unwrap_err();
    let [e @ PluginError::Compile { plugin, .. }] = &errors[..] else { panic!("{errors:?}") };
    assert_eq!(plugin, "bad");
    // The message still shows the whole chain, as it did when the cause was flattened into it.
    let msg = e.to_string();
    assert!(msg.starts_with("plugin bad: ") && msg.contains("is not a valid WebAssembly module"), "{msg}");
    assert!(msg.contains("type mismatch"), "{msg}");
    let source = e.source().expect("the wasmtime error is the source");
    assert!(chain_text(source).contains("type mismatch"), "{}", chain_text(source));
    assert_eq!(e.outcome(), "compile");
}

#[test]
fn a_trap_names_the_trap_and_keeps_the_error() {
    let wat = r#"(module
        (memory (export "memory") 1)
        (func (export "sitediff_abi_version") (result i32) i32.const 1)
        (func (export "sitediff_alloc") (param i32) (result i32) i32.const 1024)
        (func (export "sitediff_mask") (param i32 i32 i32 i32 i32 i32 i32) (result i64) unreachable))"#;
    let (_d, host) = load_wat("boom", wat);
    let host = host.unwrap();
    let img = RgbaImage { width: 1, height: 1, data: vec![0; 4] };
    let e = host.mask("boom", &img, &PageContext::default()).unwrap_err();
    let PluginError::Trap { plugin, reason, .. } = &e else { panic!("{e:?}") };
    assert_eq!(plugin, "boom");
    assert!(reason.contains("unreachable"), "{reason}");
    assert!(e.to_string().starts_with("plugin boom: trapped: "), "{e}");
    assert!(e.source().is_some(), "{e:?}");
    assert_eq!(e.outcome(), "trap");
}

#[test]
fn chain_joins_every_cause() {
    let e = wasmtime::Error::msg("innermost").context("inner").context("outer");
    let boxed: WasmError = e.into();
    assert_eq!(chain(&*boxed), "outer: inner: innermost");
}

#[test]
fn every_builtin_plugin_loads() {
    let names: Vec<&str> = crate::config::PluginSource::builtin_names().collect();
    assert!(names.contains(&"mask_selectors"), "{names:?}");
    for name in names {
        let source = crate::config::PluginSource::builtin(name).expect("listed");
        let host = PluginHost::load_source(name, source, PluginLimits::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let info = host.info(name).expect("loaded");
        assert_eq!(info.path, std::path::PathBuf::from(format!("builtin:{name}")));
        assert_eq!(host.kind(name), Some(PluginKind::Mask));
    }
}
