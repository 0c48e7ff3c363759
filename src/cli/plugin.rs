//! `sitediff plugin check|run|new`: validate a WebAssembly plugin, try it on a screenshot (issue 4),
//! or start a plugin project from a template (issue 22). Output (human or `--json`) goes to stdout,
//! errors to stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use sitediff::config::{PluginLimits, PluginSource, BUILTIN_PLUGIN_PREFIX};
use sitediff::diff::{self, DiffOptions, Rect, RgbaImage};
use sitediff::plugin::{
    mask_context_json, score_context_json, PageContext, PluginError, PluginHost, PluginInfo, PluginKind, Size,
};

use super::plugin_new::KindArg;
use super::EXIT_OK;

/// Ignored regions in `plugin run --out` images are blended toward this colour...
const OVERLAY_RGB: [u8; 3] = [0, 120, 255];
/// ...by this fraction.
const OVERLAY_ALPHA: f32 = 0.6;

#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Load a plugin (.wat or .wasm, or `builtin:NAME`), verify its imports, exports and ABI version,
    /// print what it found.
    Check {
        file: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run a plugin on a screenshot and show what it masks or scores.
    Run(RunArgs),
    /// Write a ready plugin project (source, SDK, Makefile, README) into the directory NAME.
    New(super::plugin_new::NewArgs),
}

/// Per-call limits (defaults as in the config file).
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Fuel per call (about one unit per wasm instruction).
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Working memory per call in MiB, besides the buffers the host hands over.
    #[arg(long, value_name = "MIB")]
    pub memory_mb: Option<u32>,
    /// Wall-clock limit per call in milliseconds.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
}

impl LimitArgs {
    fn limits(&self) -> anyhow::Result<PluginLimits> {
        let mut l = PluginLimits::default();
        if let Some(f) = self.fuel {
            anyhow::ensure!(f > 0, "--fuel must be positive");
            l.fuel = f;
        }
        if let Some(m) = self.memory_mb {
            anyhow::ensure!((1..=4096).contains(&m), "--memory-mb must be in 1..=4096");
            l.memory_bytes = m as usize * 1024 * 1024;
        }
        if let Some(t) = self.timeout_ms {
            anyhow::ensure!(t > 0, "--timeout-ms must be positive");
            l.timeout = Duration::from_millis(t);
        }
        Ok(l)
    }
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The plugin (.wat or .wasm, or `builtin:NAME`).
    pub file: PathBuf,
    /// The screenshot (PNG): the capture to mask, or the new capture to score.
    #[arg(long, value_name = "PNG")]
    pub image: PathBuf,
    /// Page context: a JSON file, or inline JSON starting with `{`
    /// (fields: site, page_key, url, viewport {width,height}, selectors [{selector, rects:[{x,y,width,height}]}],
    /// ignored [{x,y,width,height}]: for a score plugin, what the diff leaves out).
    /// Fields left out take the defaults: site "cli", page_key and url empty, viewport the image
    /// size, no selectors.
    #[arg(long, value_name = "JSON")]
    pub context: Option<String>,
    /// Print the JSON context the call would receive (pretty) on stdout, and do not run the plugin.
    #[arg(long)]
    pub print_context: bool,
    /// Write the result: for a mask plugin the image with edits applied and ignored regions tinted
    /// blue; for a score plugin the diff image.
    #[arg(long, value_name = "PNG")]
    pub out: Option<PathBuf>,
    /// Fail unless the plugin is of this kind (default: whatever it exports).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// The baseline screenshot (PNG); needed for score plugins.
    #[arg(long, value_name = "PNG")]
    pub base: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: &PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::Check { file, limits, json } => check(file, limits, *json),
        PluginCommand::Run(args) => run_plugin(args),
        PluginCommand::New(args) => super::plugin_new::run(args),
    }
}

fn plugin_name(file: &Path) -> String {
    file.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin").to_string()
}

/// Load FILE, or the bundled plugin it names as `builtin:NAME`.
fn load(file: &Path, limits: &LimitArgs) -> anyhow::Result<(PluginHost, String)> {
    let (name, source) = match file.to_str().and_then(|s| s.strip_prefix(BUILTIN_PLUGIN_PREFIX)) {
        Some(builtin) => {
            let source = PluginSource::builtin(builtin).with_context(|| {
                let known: Vec<&str> = PluginSource::builtin_names().collect();
                format!("no built-in plugin {builtin:?} (built in: {})", known.join(", "))
            })?;
            (builtin.to_string(), source)
        }
        None => (plugin_name(file), PluginSource::File(file.to_path_buf())),
    };
    let host = PluginHost::load_source(&name, source, limits.limits()?).map_err(load_errors)?;
    Ok((host, name))
}

fn load_errors(errors: Vec<PluginError>) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
    anyhow::anyhow!("plugin rejected, {} problem(s):\n{}", errors.len(), lines.join("\n"))
}

fn check(file: &Path, limits: &LimitArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (host, name) = load(file, limits)?;
    let info = host.info(&name).context("plugin vanished after loading")?;
    if json {
        println!("{}", serde_json::to_string(info)?);
    } else {
        print_info(info);
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn print_info(info: &PluginInfo) {
    println!("{}: ok, a {} plugin, ABI version {}", info.path.display(), info.kind, info.abi_version);
    println!(
        "  module: {} bytes, initial memory {} KiB",
        info.module_bytes,
        info.initial_memory_bytes / 1024
    );
    println!("  exports: {}", info.exports.join(", "));
    let imports = if info.imports.is_empty() { "none".to_string() } else { info.imports.join(", ") };
    println!("  imports: {imports}");
    println!(
        "  limits per call: fuel {}, memory {} MiB + inputs, timeout {} ms (load probe used {} fuel)",
        info.fuel,
        info.memory_limit_bytes / (1024 * 1024),
        info.timeout_ms,
        info.probe_fuel
    );
}

fn read_png(path: &Path) -> anyhow::Result<RgbaImage> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(diff::decode_png(&bytes, &path.display().to_string())?)
}

fn write_png(path: &Path, img: &RgbaImage) -> anyhow::Result<()> {
    let bytes = diff::encode_png(img)?;
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Site of a `plugin run` call whose context does not name one.
const CLI_SITE: &str = "cli";

/// The page context of a `plugin run`: `--context` with the fields it leaves out (or all of them)
/// defaulted: site "cli", viewport the image size.
fn read_context(arg: Option<&str>, image: &RgbaImage) -> anyhow::Result<PageContext> {
    let mut ctx = match arg {
        None => PageContext::default(),
        Some(arg) => {
            let text = if arg.trim_start().starts_with('{') {
                arg.to_string()
            } else {
                std::fs::read_to_string(arg).with_context(|| format!("cannot read context file {arg}"))?
            };
            serde_json::from_str(&text).context("context is not valid JSON for a page context")?
        }
    };
    if ctx.site.is_empty() {
        ctx.site = CLI_SITE.into();
    }
    if ctx.viewport == Size::default() {
        ctx.viewport = Size { width: image.width, height: image.height };
    }
    Ok(ctx)
}

/// Print a context as the plugin would receive it, pretty.
fn print_context(json: &[u8]) -> anyhow::Result<()> {
    let value: serde_json::Value = serde_json::from_slice(json)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

#[derive(Serialize)]
struct MaskReport<'a> {
    plugin: &'a str,
    kind: PluginKind,
    ignore: &'a [Rect],
    ignored_pixels: u64,
    image_edited: bool,
    logs: &'a [String],
    fuel_used: u64,
    elapsed_ms: f64,
}

#[derive(Serialize)]
struct ScoreReport<'a> {
    plugin: &'a str,
    kind: PluginKind,
    score: f64,
    reason: Option<&'a str>,
    distortion: f64,
    logs: &'a [String],
    fuel_used: u64,
    elapsed_ms: f64,
}

fn run_plugin(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let (host, name) = load(&args.file, &args.limits)?;
    let kind = host.kind(&name).context("plugin vanished after loading")?;
    if let Some(want) = args.kind {
        let want = PluginKind::from(want);
        if want != kind {
            bail!("{} is a {kind} plugin, not a {want} plugin", args.file.display());
        }
    }
    let image = read_png(&args.image)?;
    let ctx = read_context(args.context.as_deref(), &image)?;
    match kind {
        PluginKind::Mask => {
            if args.base.is_some() {
                bail!("--base is for score plugins; {} is a mask plugin", args.file.display());
            }
            if args.print_context {
                print_context(&mask_context_json(&ctx, Size { width: image.width, height: image.height })?)?;
                return Ok(ExitCode::from(EXIT_OK));
            }
            let out = host.mask(&name, &image, &ctx)?;
            let ignored: u64 = out.ignore.iter().map(|r| r.width as u64 * r.height as u64).sum();
            if let Some(path) = &args.out {
                let mut shown = out.image.clone().unwrap_or_else(|| image.clone());
                tint(&mut shown, &out.ignore);
                write_png(path, &shown)?;
            }
            let report = MaskReport {
                plugin: &name,
                kind,
                ignore: &out.ignore,
                ignored_pixels: ignored,
                image_edited: out.image.is_some(),
                logs: &out.logs,
                fuel_used: out.stats.fuel_used,
                elapsed_ms: out.stats.elapsed.as_secs_f64() * 1000.0,
            };
            let mut summary = format!(
                "{name}: {} region(s) to ignore ({ignored} pixels), pixels {}edited; {} fuel, {:.1} ms",
                out.ignore.len(),
                if out.image.is_some() { "" } else { "not " },
                report.fuel_used,
                report.elapsed_ms
            );
            for r in &out.ignore {
                summary.push_str(&format!("\n  x {} y {} {}x{}", r.x, r.y, r.width, r.height));
            }
            print_run(args.json, &name, &report, &out.logs, &summary)?;
        }
        PluginKind::Score => {
            let Some(base_path) = &args.base else {
                bail!("{} is a score plugin: give the baseline with --base PNG", args.file.display());
            };
            let base = read_png(base_path)?;
            let opts = DiffOptions {
                diff_image: args.out.is_some(),
                ignore: ctx.ignored.clone(),
                ..DiffOptions::default()
            };
            let outcome = diff::compare(&base, &image, &opts);
            if args.print_context {
                let size = |i: &RgbaImage| Size { width: i.width, height: i.height };
                print_context(&score_context_json(&ctx, size(&base), size(&image), &outcome)?)?;
                return Ok(ExitCode::from(EXIT_OK));
            }
            let out = host.score(&name, &base, &image, &outcome, &ctx)?;
            if let (Some(path), Some(img)) = (&args.out, &outcome.diff_image) {
                write_png(path, img)?;
            }
            let report = ScoreReport {
                plugin: &name,
                kind,
                score: out.score,
                reason: out.reason.as_deref(),
                distortion: outcome.distortion,
                logs: &out.logs,
                fuel_used: out.stats.fuel_used,
                elapsed_ms: out.stats.elapsed.as_secs_f64() * 1000.0,
            };
            let summary = format!(
                "{name}: score {:.6} (distortion {:.6}){}; {} fuel, {:.1} ms",
                out.score,
                outcome.distortion,
                out.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default(),
                report.fuel_used,
                report.elapsed_ms
            );
            print_run(args.json, &name, &report, &out.logs, &summary)?;
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

/// Print one plugin run on stdout: `report` as JSON with `--json`; otherwise the plugin's log lines
/// (once each) and `summary`.
fn print_run(
    json: bool,
    name: &str,
    report: &impl Serialize,
    logs: &[String],
    summary: &str,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        for line in logs {
            println!("[{name}] {line}");
        }
        println!("{summary}");
    }
    Ok(())
}

/// Blend the ignored regions toward the overlay colour so they stand out.
fn tint(img: &mut RgbaImage, rects: &[Rect]) {
    let width = img.width as usize;
    for r in rects {
        for y in r.y..r.y + r.height {
            for x in r.x..r.x + r.width {
                let i = (y as usize * width + x as usize) * 4;
                for (c, overlay) in OVERLAY_RGB.iter().enumerate() {
                    let v = img.data[i + c] as f32;
                    img.data[i + c] = (v + (*overlay as f32 - v) * OVERLAY_ALPHA).round() as u8;
                }
                img.data[i + 3] = 255;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tint_only_touches_rects() {
        let mut img = RgbaImage::new(4, 3);
        tint(&mut img, &[Rect { x: 1, y: 1, width: 2, height: 1 }]);
        let px = |x: usize, y: usize| &img.data[(y * 4 + x) * 4..(y * 4 + x) * 4 + 4];
        assert_eq!(px(0, 0), [0, 0, 0, 0]);
        assert_eq!(px(1, 1), [0, 72, 153, 255]);
        assert_eq!(px(2, 1), [0, 72, 153, 255]);
        assert_eq!(px(3, 1), [0, 0, 0, 0]);
        assert_eq!(px(1, 2), [0, 0, 0, 0]);
    }

    #[test]
    fn inline_and_default_context() {
        let img = RgbaImage::new(10, 20);
        let c = read_context(None, &img).unwrap();
        assert_eq!(c.viewport, Size { width: 10, height: 20 });
        assert_eq!(c.site, "cli");
        let c =
            read_context(Some(r#"{"site":"s","selectors":[{"selector":".a","rects":[]}]}"#), &img).unwrap();
        assert_eq!(c.site, "s");
        assert_eq!(c.selectors.len(), 1);
        // A partial context keeps the defaults of what it leaves out.
        assert_eq!(c.viewport, Size { width: 10, height: 20 });
        let c = read_context(Some(r#"{"page_key":"a.html"}"#), &img).unwrap();
        assert_eq!((c.site.as_str(), c.viewport), ("cli", Size { width: 10, height: 20 }));
        let c = read_context(Some(r#"{"viewport":{"width":3,"height":4}}"#), &img).unwrap();
        assert_eq!(c.viewport, Size { width: 3, height: 4 });
        assert!(read_context(Some(r#"{"sites":"s"}"#), &img).is_err());
    }
}
