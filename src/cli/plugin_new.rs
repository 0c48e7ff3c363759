//! `sitediff plugin new NAME --lang as|zig|c|wat [--kind mask|score]`: a ready plugin project in the
//! directory NAME: the source (the SDK's selector-paint mask or top-weighted score example), the
//! SDK, a Makefile and a README saying how to build, check and try it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use sitediff::plugin::PluginKind;

use super::EXIT_OK;

/// A plugin's kind on the command line (`--kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    Mask,
    Score,
}

impl From<KindArg> for PluginKind {
    fn from(k: KindArg) -> PluginKind {
        match k {
            KindArg::Mask => PluginKind::Mask,
            KindArg::Score => PluginKind::Score,
        }
    }
}

/// The languages a project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// AssemblyScript (npm package `assemblyscript` 0.28).
    As,
    /// Zig 0.14 (`zig`, or PyPI `ziglang`: `python3 -m ziglang`).
    Zig,
    /// C without libc (clang + lld with the wasm32 target).
    C,
    /// WebAssembly text: no build step, sitediff loads `.wat` files.
    Wat,
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name: the directory to create (must not exist) and the module's file name.
    pub name: PathBuf,
    /// The language of the project.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Mask plugin (hides what legitimately changes) or score plugin (rates a diff).
    #[arg(long, value_enum, default_value = "mask")]
    pub kind: KindArg,
}

const AS_SDK: &str = include_str!("../../plugins/sdk/assemblyscript/sitediff.ts");
const AS_MASK: &str = include_str!("../../plugins/sdk/assemblyscript/examples/mask_selector_paint.ts");
const AS_SCORE: &str = include_str!("../../plugins/sdk/assemblyscript/examples/score_top_weighted.ts");
const ZIG_SDK: &str = include_str!("../../plugins/sdk/zig/sitediff.zig");
const ZIG_MASK: &str = include_str!("../../plugins/sdk/zig/examples/mask_selector_paint.zig");
const ZIG_SCORE: &str = include_str!("../../plugins/sdk/zig/examples/score_top_weighted.zig");
const C_SDK: &str = include_str!("../../plugins/examples/sitediff_plugin.h");
const C_MASK: &str = include_str!("../../plugins/examples/mask_selector_paint.c");
const C_SCORE: &str = include_str!("../../plugins/examples/score_top_weighted.c");
const WAT_MASK: &str = include_str!("../../plugins/examples/mask_selectors.wat");
const WAT_SCORE: &str = include_str!("../../plugins/examples/score_size_changed.wat");

/// The files of a project: (file name, contents).
fn files(name: &str, lang: Lang, kind: KindArg) -> Vec<(String, String)> {
    let mask = kind == KindArg::Mask;
    let pick = |m: &str, s: &str| if mask { m.to_string() } else { s.to_string() };
    let (source, sdk, build) = match lang {
        Lang::As => (
            ("plugin.ts", pick(AS_MASK, AS_SCORE).replace("\"../sitediff\"", "\"./sitediff\"")),
            Some(("sitediff.ts", AS_SDK)),
            format!(
                "ASC ?= npx asc\n\n{name}.wasm: plugin.ts sitediff.ts\n\
                 \t$(ASC) plugin.ts -o $@ -O3 --debug --runtime stub --use abort=sitediff/sitediffAbort\n"
            ),
        ),
        Lang::Zig => (
            ("plugin.zig", pick(ZIG_MASK, ZIG_SCORE)),
            Some(("sitediff.zig", ZIG_SDK)),
            format!(
                "ZIG ?= zig\n\n{name}.wasm: plugin.zig sitediff.zig\n\
                 \t$(ZIG) build-exe -target wasm32-freestanding -O ReleaseSafe -fno-entry -rdynamic \\\n\
                 \t\t--dep sitediff -Mroot=plugin.zig -Msitediff=sitediff.zig -femit-bin=$@\n\
                 \t@rm -f $@.o\n"
            ),
        ),
        Lang::C => (
            ("plugin.c", pick(C_MASK, C_SCORE)),
            Some(("sitediff_plugin.h", C_SDK)),
            format!(
                "CLANG ?= clang\n\n{name}.wasm: plugin.c sitediff_plugin.h\n\
                 \t$(CLANG) --target=wasm32 -nostdlib -O2 -mbulk-memory -Wall -Wextra -Wl,--no-entry -o $@ plugin.c\n"
            ),
        ),
        Lang::Wat => (("plugin.wat", pick(WAT_MASK, WAT_SCORE)), None, String::new()),
    };
    let module = match lang {
        Lang::Wat => "plugin.wat".to_string(),
        _ => format!("{name}.wasm"),
    };
    let kind_word = if mask { "mask" } else { "score" };
    let build_step = match lang {
        Lang::As => "make              # needs `npm install assemblyscript@0.28` (or ASC=path/to/asc)\n",
        Lang::Zig => "make              # needs Zig 0.14 (or ZIG=\"python3 -m ziglang\" after `pip install ziglang==0.14.1`)\n",
        Lang::C => "make              # needs clang and lld (Debian: apt-get install clang lld)\n",
        Lang::Wat => "# no build step: sitediff compiles .wat itself\n",
    };
    let try_it = if mask {
        format!("sitediff plugin run {module} --image shot.png --out masked.png --context '{{\"selectors\": [{{\"selector\": \".ad\", \"rects\": [{{\"x\": 10, \"y\": 10, \"width\": 100, \"height\": 40}}]}}]}}'")
    } else {
        format!("sitediff plugin run {module} --base old.png --image new.png")
    };
    let readme = format!(
        "# {name}: a sitediff {kind_word} plugin\n\n\
         Written by `sitediff plugin new`. The ABI is `plugins/ABI.md` in the sitediff repository; the SDK\n\
         file beside the source is a copy of sitediff's.\n\n\
         ```sh\n{build_step}sitediff plugin check {module}\n\
         sitediff plugin run {module} --image shot.png --print-context   # the JSON context it receives\n\
         {try_it}\n```\n\n\
         Then in `sitediff.toml`:\n\n```toml\n[[plugins]]\nname = \"{name}\"\npath = \"{name}/{module}\"\n\n\
         [[sites]]\n# ...\nplugins = [\"{name}\"]\n```\n"
    );
    let mut out = vec![(source.0.to_string(), source.1)];
    if let Some((file, text)) = sdk {
        out.push((file.to_string(), text.to_string()));
    }
    if !build.is_empty() {
        out.push(("Makefile".into(), build));
    }
    out.push(("README.md".into(), readme));
    out
}

pub fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.name;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .with_context(|| {
            format!(
                "{}: a plugin name is letters, digits, `_` and `-` (it names the directory and the module)",
                dir.display()
            )
        })?;
    if dir.exists() {
        bail!("{} already exists: give a new directory", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = files(name, args.lang, args.kind);
    for (file, text) in &files {
        write(&dir.join(file), text)?;
    }
    println!(
        "wrote {} ({}):",
        dir.display(),
        files.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(", ")
    );
    println!("  see {} for how to build, check and try it", dir.join("README.md").display());
    Ok(ExitCode::from(EXIT_OK))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_and_kind_has_a_source_and_a_readme() {
        for lang in [Lang::As, Lang::Zig, Lang::C, Lang::Wat] {
            for kind in [KindArg::Mask, KindArg::Score] {
                let f = files("p", lang, kind);
                assert!(f.iter().any(|(n, _)| n.starts_with("plugin.")), "{lang:?} {kind:?}");
                assert!(f.iter().any(|(n, t)| n == "README.md" && t.contains("sitediff plugin check")));
                let entry = if kind == KindArg::Mask { "sitediff_mask" } else { "sitediff_score" };
                assert!(f[0].1.contains(entry), "{lang:?} {kind:?}");
                assert!(!f[0].1.contains("\"../sitediff\""), "{lang:?}: the SDK import still points up");
            }
        }
    }
}
