//! ABI v1 checks of a compiled module before it is ever run: only the `env.log` import, a plain
//! 32-bit memory, the version and allocator exports, and exactly one entry point (which makes the
//! plugin a mask or a score plugin). Every problem is reported, each naming the plugin.

use std::collections::HashMap;

use wasmtime::{ExternType, FuncType, Module, ValType};

use super::abi;
use super::error::PluginError;
use super::model::PluginKind;

/// Bytes of one wasm page.
pub(super) const WASM_PAGE: usize = 65_536;

/// A required function export: name, parameter count (all i32), result check, description.
type FuncSpec = (&'static str, usize, fn(&ValType) -> bool, &'static str);

fn fmt_func(ty: &FuncType) -> String {
    let list =
        |it: &mut dyn Iterator<Item = ValType>| it.map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
    format!("({}) -> ({})", list(&mut ty.params()), list(&mut ty.results()))
}

/// Does `ty` take `params` i32s and return one value of type `result`?
fn func_is(ty: &FuncType, params: usize, result: Option<fn(&ValType) -> bool>) -> bool {
    let params_ok = ty.params().len() == params && ty.params().all(|p| p.is_i32());
    let results: Vec<ValType> = ty.results().collect();
    let results_ok = match result {
        None => results.is_empty(),
        Some(check) => results.len() == 1 && check(&results[0]),
    };
    params_ok && results_ok
}

fn is_i32(v: &ValType) -> bool {
    v.is_i32()
}
fn is_i64(v: &ValType) -> bool {
    v.is_i64()
}

/// Check a module's imports and exports against ABI v1; returns its kind or every problem found.
pub(super) fn check_module(name: &str, module: &Module) -> Result<PluginKind, Vec<PluginError>> {
    let mut problems = Vec::new();
    for import in module.imports() {
        let is_log = import.module() == abi::IMPORT_MODULE
            && import.name() == abi::IMPORT_LOG
            && matches!(import.ty(), ExternType::Func(ref f) if func_is(f, 2, None));
        if !is_log {
            problems.push(PluginError::UnsupportedImport {
                plugin: name.to_string(),
                module: import.module().to_string(),
                name: import.name().to_string(),
            });
        }
    }
    let exports: HashMap<&str, ExternType> = module.exports().map(|e| (e.name(), e.ty())).collect();
    let bad = |export: &str, problem: String| PluginError::BadExport {
        plugin: name.to_string(),
        export: export.to_string(),
        problem,
    };
    let missing = |export: &str, expected: &str| PluginError::MissingExport {
        plugin: name.to_string(),
        export: export.to_string(),
        expected: expected.to_string(),
    };
    match exports.get(abi::EXPORT_MEMORY) {
        Some(ExternType::Memory(m)) if m.is_64() => {
            problems.push(bad(abi::EXPORT_MEMORY, "is a 64-bit memory; ABI v1 needs a 32-bit one".into()))
        }
        Some(ExternType::Memory(m)) if m.is_shared() => {
            problems.push(bad(abi::EXPORT_MEMORY, "is a shared memory; ABI v1 needs a plain one".into()))
        }
        Some(ExternType::Memory(m)) if m.page_size() as usize != WASM_PAGE => {
            problems.push(bad(abi::EXPORT_MEMORY, format!("has {}-byte pages, not 65536", m.page_size())))
        }
        Some(ExternType::Memory(_)) => {}
        Some(other) => {
            problems.push(bad(abi::EXPORT_MEMORY, format!("is a {}, not a memory", kind_of(other))))
        }
        None => problems.push(missing(abi::EXPORT_MEMORY, "the module's linear memory")),
    }
    let funcs: [FuncSpec; 2] = [
        (abi::EXPORT_ABI_VERSION, 0, is_i32, "a function () -> i32"),
        (abi::EXPORT_ALLOC, 1, is_i32, "a function (i32) -> i32"),
    ];
    for (export, params, result, expected) in funcs {
        match exports.get(export) {
            Some(ExternType::Func(f)) if func_is(f, params, Some(result)) => {}
            Some(ExternType::Func(f)) => {
                problems.push(bad(export, format!("has type {}, ABI v1 needs {expected}", fmt_func(f))))
            }
            Some(other) => {
                problems.push(bad(export, format!("is a {}, ABI v1 needs {expected}", kind_of(other))))
            }
            None => {
                problems.push(missing(export, &format!("{expected}; {}", found_exports(module, &[export]))))
            }
        }
    }
    let entry = |export: &str, params: usize, problems: &mut Vec<PluginError>| -> bool {
        match exports.get(export) {
            Some(ExternType::Func(f)) if func_is(f, params, Some(is_i64)) => true,
            Some(ExternType::Func(f)) => {
                problems.push(bad(
                    export,
                    format!(
                        "has type {}, ABI v1 needs {params} i32 parameters and an i64 result",
                        fmt_func(f)
                    ),
                ));
                true
            }
            Some(other) => {
                problems.push(bad(export, format!("is a {}, not a function", kind_of(other))));
                true
            }
            None => false,
        }
    };
    let mask = entry(abi::EXPORT_MASK, abi::MASK_PARAMS, &mut problems);
    let score = entry(abi::EXPORT_SCORE, abi::SCORE_PARAMS, &mut problems);
    let kind = match (mask, score) {
        (true, false) => Some(PluginKind::Mask),
        (false, true) => Some(PluginKind::Score),
        (true, true) => {
            problems.push(bad(
                abi::EXPORT_SCORE,
                format!(
                    "is exported beside `{}`; a plugin is either a mask or a score plugin",
                    abi::EXPORT_MASK
                ),
            ));
            None
        }
        (false, false) => {
            let expected = format!(
                "one entry point, which makes it a mask or a score plugin; {}",
                found_exports(module, &[abi::EXPORT_MASK, abi::EXPORT_SCORE])
            );
            problems.push(missing(&format!("{} or {}", abi::EXPORT_MASK, abi::EXPORT_SCORE), &expected));
            None
        }
    };
    match kind {
        Some(k) if problems.is_empty() => Ok(k),
        _ => Err(problems),
    }
}

/// The module's function exports and, when one looks like a typo of a name in `wanted`, which:
/// `the module exports functions: a, b; did you mean `sitediff_mask` (exported as `sitediff_msk`)?`.
fn found_exports(module: &Module, wanted: &[&str]) -> String {
    let funcs: Vec<&str> =
        module.exports().filter(|e| matches!(e.ty(), ExternType::Func(_))).map(|e| e.name()).collect();
    if funcs.is_empty() {
        return "the module exports no functions".to_string();
    }
    let mut text = format!("the module exports functions: {}", funcs.join(", "));
    let closest = funcs
        .iter()
        .flat_map(|f| wanted.iter().map(move |w| (strsim::damerau_levenshtein(f, w), *f, *w)))
        .filter(|(d, f, w)| *d > 0 && *d <= (w.len() / 3).max(2) && !wanted.contains(f))
        .min();
    if let Some((_, found, want)) = closest {
        text.push_str(&format!("; did you mean `{want}` (exported as `{found}`)?"));
    }
    text
}

fn kind_of(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Func(_) => "function",
        ExternType::Global(_) => "global",
        ExternType::Table(_) => "table",
        ExternType::Memory(_) => "memory",
        ExternType::Tag(_) => "tag",
    }
}
