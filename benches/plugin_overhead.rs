//! Plugin overhead per page on a 1280x8000 capture: a do-nothing mask plugin (instantiation and
//! copying the 41 MB image in), the shipped examples (the C ones built from source with clang),
//! a pixel-editing plugin (copy back out), against the diff of the same pair.
//! Run: `cargo bench --bench plugin_overhead` (needs make, clang, lld).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sitediff::capture::SelectorRects;
use sitediff::config::{PluginConfig, PluginLimits, PluginSource};
use sitediff::diff::{self, DiffOptions, Rect, RgbaImage};
use sitediff::plugin::{PageContext, PluginHost, Size};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 8000;
const RUNS: usize = 9;

const NOOP: &str = r#"(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 1024))
  (func (export "sitediff_abi_version") (result i32) (i32.const 1))
  (func (export "sitediff_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $top))
    (global.set $top (i32.add (local.get $ptr) (local.get $size)))
    (drop (memory.grow (i32.sub (i32.shr_u (i32.add (global.get $top) (i32.const 65535)) (i32.const 16))
                                (memory.size))))
    (local.get $ptr))
  (func (export "sitediff_mask") (param i32 i32 i32 i32 i32 i32 i32) (result i64) (i64.const 0))
)"#;

/// Like NOOP but reports the image as edited (the host copies it back out).
fn edited() -> String {
    NOOP.replace(
        "(result i64) (i64.const 0))",
        "(result i64) (local $o i32) (local.set $o (i32.const 16)) (i32.store (i32.const 16) (i32.const 1))
         (i32.store (i32.const 20) (i32.const 0)) (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 8)))",
    )
}

fn page(clock_offset: u32) -> RgbaImage {
    let mut img = RgbaImage::new(WIDTH, HEIGHT);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let i = ((y * WIDTH + x) * 4) as usize;
            // text-like rows of blocks on white
            let ink = (y / 12) % 3 == 0 && (x / 7 + y / 36) % 5 != 0 && x > 40 && x < 1240;
            let v = if ink { 40 } else { 255 };
            img.data[i..i + 4].copy_from_slice(&[v, v, v, 255]);
        }
    }
    for y in 20..60 {
        for x in 1000..1200 {
            let i = ((y * WIDTH + x) * 4) as usize;
            let digit = (x - 1000 + clock_offset) % 40 < 12 && (25..55).contains(&y);
            let px = if digit { [0, 0, 0, 255] } else { [255, 0, 255, 255] };
            img.data[i..i + 4].copy_from_slice(&px);
        }
    }
    img
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<R>(mut f: impl FnMut() -> R) -> (Duration, R) {
    let _warm = f();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed());
    }
    (median(times), last.expect("RUNS > 0"))
}

fn main() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/examples");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-bench");
    let ok = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&examples)
        .arg(format!("OUT={}", out.display()))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "building the C examples failed: install make, clang and lld");
    std::fs::write(out.join("noop.wat"), NOOP).expect("write noop");
    std::fs::write(out.join("edited.wat"), edited()).expect("write edited");

    let cfg = |name: &str, path: PathBuf| PluginConfig {
        name: name.into(),
        source: PluginSource::File(path),
        limits: PluginLimits::default(),
    };
    let t = Instant::now();
    let host = PluginHost::load(&[
        cfg("noop", out.join("noop.wat")),
        cfg("edited", out.join("edited.wat")),
        cfg("selectors", examples.join("mask_selectors.wat")),
        cfg("key_color", out.join("mask_key_color.wasm")),
        cfg("score_top", out.join("score_top_weighted.wasm")),
    ])
    .unwrap_or_else(|e| panic!("{e:?}"));
    let load = t.elapsed();

    let base = page(0);
    let new = page(17);
    let ctx = PageContext {
        site: "bench".into(),
        page_key: "index.html".into(),
        url: "http://127.0.0.1/index.html".into(),
        viewport: Size { width: WIDTH, height: 800 },
        selectors: vec![SelectorRects {
            selector: ".clock".into(),
            rects: vec![Rect { x: 1000, y: 20, width: 200, height: 40 }],
        }],
        ignored: Vec::new(),
    };

    let (diff_t, outcome) = time(|| diff::compare(&base, &new, &DiffOptions::default()));
    println!("1280x8000 capture ({} MB RGBA), median of {RUNS} runs", base.data.len() / 1_000_000);
    println!("load + check of 5 plugins: {:.1} ms", load.as_secs_f64() * 1e3);
    println!(
        "diff::compare (reference): {:.1} ms ({} differing pixels)",
        diff_t.as_secs_f64() * 1e3,
        outcome.diff_pixels
    );
    let report = |what: &str, d: Duration, fuel: u64| {
        println!(
            "{what:<44} {:>8.1} ms  {:>6.3}x diff  fuel {fuel}",
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() / diff_t.as_secs_f64()
        );
    };
    for name in ["noop", "edited", "selectors", "key_color"] {
        let (d, m) = time(|| host.mask(name, &new, &ctx).unwrap_or_else(|e| panic!("{e}")));
        report(&format!("mask {name} ({} rects)", m.ignore.len()), d, m.stats.fuel_used);
    }
    let (d, s) =
        time(|| host.score("score_top", &base, &new, &outcome, &ctx).unwrap_or_else(|e| panic!("{e}")));
    report(&format!("score score_top ({:.5})", s.score), d, s.stats.fuel_used);
    let names: Vec<String> = vec!["key_color".into(), "selectors".into()];
    let (d, m) = time(|| {
        (
            host.apply_masks(&names, &base, &ctx).unwrap_or_else(|e| panic!("{e}")),
            host.apply_masks(&names, &new, &ctx).unwrap_or_else(|e| panic!("{e}")),
        )
    });
    report("pipeline: 2 masks x 2 captures", d, m.0.stats.fuel_used + m.1.stats.fuel_used);
}
