//! WebAssembly plugins against the real host: the shipped examples (the C ones built from source
//! with clang), hostile modules (each must fail with its named error, and the host must go on), and
//! the `sitediff plugin` command line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use sitediff::capture::SelectorRects;
use sitediff::config::{PluginConfig, PluginLimits, PluginSource};
use sitediff::diff::{self, DiffOptions, Rect, RgbaImage};
use sitediff::plugin::abi::{MAX_LOG_LINES, MAX_LOG_LINE_BYTES};
use sitediff::plugin::{PageContext, PluginError, PluginHost, PluginKind, Size};

const MAGENTA: [u8; 4] = [255, 0, 255, 255];
const WHITE: [u8; 4] = [255, 255, 255, 255];
const BLACK: [u8; 4] = [0, 0, 0, 255];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> PathBuf {
    repo().join("plugins/examples")
}

/// Build the C examples from source with the shipped Makefile (once per test run).
fn c_examples() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-examples");
        let status = Command::new("make")
            .arg("-C")
            .arg(examples())
            .arg(format!("OUT={}", out.display()))
            .arg("all")
            .status();
        match status {
            Ok(s) if s.success() => out,
            other => panic!(
                "\n\n*** building the C plugin examples failed ({other:?}).\n*** They need make, clang and \
                 lld with the wasm32 target: `apt-get install make clang lld`.\n\n"
            ),
        }
    })
}

fn c_example(name: &str) -> PathBuf {
    c_examples().join(format!("{name}.wasm"))
}

fn config(name: &str, path: PathBuf) -> PluginConfig {
    PluginConfig { name: name.into(), source: PluginSource::File(path), limits: PluginLimits::default() }
}

fn load(configs: &[PluginConfig]) -> PluginHost {
    match PluginHost::load(configs) {
        Ok(h) => h,
        Err(errs) => panic!("load failed: {errs:#?}"),
    }
}

fn write_module(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{name}.wat"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A well-formed ABI v1 module around `body` (which defines an entry point), with a bump
/// allocator `$alloc`, the log import `$log` and "hello" at address 16.
fn module(version: i32, body: &str) -> String {
    format!(
        r#"(module
  (import "env" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello")
  (global $top (mut i32) (i32.const 1024))
  (func (export "sitediff_abi_version") (result i32) (i32.const {version}))
  (func $alloc (export "sitediff_alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i64) (local $have i64)
    (local.set $ptr (i32.and (i32.add (global.get $top) (i32.const 7)) (i32.const -8)))
    (local.set $end (i64.add (i64.extend_i32_u (local.get $ptr)) (i64.extend_i32_u (local.get $size))))
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
    (if (i64.gt_u (local.get $end) (local.get $have))
      (then (if (i32.eq (memory.grow (i32.wrap_i64 (i64.shr_u (i64.add (i64.sub (local.get $end)
                 (local.get $have)) (i64.const 65535)) (i64.const 16)))) (i32.const -1))
              (then (return (i32.const 0))))))
    (global.set $top (i32.wrap_i64 (local.get $end)))
    (local.get $ptr))
  {body}
)"#
    )
}

const MASK_SIG: &str = r#"(func (export "sitediff_mask") (param $img i32) (param $w i32) (param $h i32)
  (param $ctx i32) (param $ctx_len i32) (param $rects i32) (param $n i32) (result i64)"#;

fn mask_module(body: &str) -> String {
    module(1, &format!("{MASK_SIG}\n{body})"))
}

/// A mask entry returning one rectangle `x y w h` (expressions).
fn mask_returning_rect(x: &str, y: &str, w: &str, h: &str) -> String {
    mask_module(&format!(
        r#"(local $o i32)
  (local.set $o (call $alloc (i32.const 24)))
  (i32.store (local.get $o) (i32.const 0))
  (i32.store offset=4 (local.get $o) (i32.const 1))
  (i32.store offset=8 (local.get $o) {x})
  (i32.store offset=12 (local.get $o) {y})
  (i32.store offset=16 (local.get $o) {w})
  (i32.store offset=20 (local.get $o) {h})
  (i64.or (i64.shl (i64.extend_i32_u (local.get $o)) (i64.const 32)) (i64.const 24))"#
    ))
}

fn solid(width: u32, height: u32, px: [u8; 4]) -> RgbaImage {
    RgbaImage {
        width,
        height,
        data: px.iter().copied().cycle().take(width as usize * height as usize * 4).collect(),
    }
}

fn fill(img: &mut RgbaImage, r: Rect, px: [u8; 4]) {
    for y in r.y..r.y + r.height {
        for x in r.x..r.x + r.width {
            let i = (y as usize * img.width as usize + x as usize) * 4;
            img.data[i..i + 4].copy_from_slice(&px);
        }
    }
}

fn ctx(selectors: Vec<SelectorRects>) -> PageContext {
    PageContext {
        site: "docs".into(),
        page_key: "index.html".into(),
        url: "http://127.0.0.1:8000/docs/index.html".into(),
        viewport: Size { width: 1280, height: 800 },
        selectors,
        ignored: Vec::new(),
    }
}

fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
    Rect { x, y, width, height }
}

// ---------------------------------------------------------------------------------------------
// The examples
// ---------------------------------------------------------------------------------------------

#[test]
fn wat_example_ignores_selector_rects_and_hides_their_changes() {
    let host = load(&[config("sel", examples().join("mask_selectors.wat"))]);
    assert_eq!(host.kind("sel"), Some(PluginKind::Mask));
    let sels = vec![
        SelectorRects { selector: ".clock".into(), rects: vec![rect(10, 20, 30, 10)] },
        SelectorRects { selector: ".ad".into(), rects: vec![rect(90, 90, 50, 50), rect(500, 0, 5, 5)] },
    ];
    let base = solid(100, 100, WHITE);
    let out = host.mask("sel", &base, &ctx(sels.clone())).unwrap();
    // Clipped to the image; the rectangle entirely outside is dropped.
    assert_eq!(out.ignore, vec![rect(10, 20, 30, 10), rect(90, 90, 10, 10)]);
    assert!(out.image.is_none());
    assert_eq!(out.logs, vec!["mask_selectors: ignoring the selectors' rectangles".to_string()]);
    assert!(out.stats.fuel_used > 0);

    // The clock changed: hidden by the plugin's rectangles. A change elsewhere still shows.
    let mut new = base.clone();
    fill(&mut new, rect(12, 22, 20, 6), BLACK);
    let plain = diff::compare(&base, &new, &DiffOptions::default());
    assert_eq!(plain.diff_pixels, 120);
    let masked =
        diff::compare(&base, &new, &DiffOptions { ignore: out.ignore.clone(), ..Default::default() });
    assert_eq!(masked.diff_pixels, 0);
    fill(&mut new, rect(50, 50, 2, 2), BLACK);
    let masked = diff::compare(&base, &new, &DiffOptions { ignore: out.ignore, ..Default::default() });
    assert_eq!(masked.diff_pixels, 4);
}

/// A page with a magenta clock box (digits drawn inside) and a magenta banner lower down.
fn clock_page(width: u32, height: u32, digits_at: u32) -> RgbaImage {
    let mut img = solid(width, height, WHITE);
    fill(&mut img, rect(100, 300, 200, 40), MAGENTA);
    // "digits": black blocks whose position changes with the time
    fill(&mut img, rect(110 + digits_at, 305, 12, 30), BLACK);
    fill(&mut img, rect(150 + digits_at, 305, 12, 30), BLACK);
    fill(&mut img, rect(0, height - 50, width, 20), MAGENTA);
    img
}

#[test]
fn c_mask_example_finds_key_colour_areas_by_their_pixels() {
    let host = load(&[config("key", c_example("mask_key_color"))]);
    assert_eq!(host.kind("key"), Some(PluginKind::Mask));
    let base = clock_page(640, 1000, 0);
    let new = clock_page(640, 1000, 40);
    let mb = host.mask("key", &base, &ctx(vec![])).unwrap();
    let mn = host.mask("key", &new, &ctx(vec![])).unwrap();
    // The box (padded by 2) and the banner.
    assert_eq!(mb.ignore, vec![rect(98, 298, 204, 44), rect(0, 948, 640, 24)]);
    assert_eq!(mb.ignore, mn.ignore);
    assert_eq!(mb.logs, vec!["mask_key_color: 2 area(s) masked".to_string()]);

    let ignore: Vec<Rect> = mb.ignore.iter().chain(&mn.ignore).copied().collect();
    let plain = diff::compare(&base, &new, &DiffOptions::default());
    assert!(plain.diff_pixels > 0);
    let masked = diff::compare(&base, &new, &DiffOptions { ignore: ignore.clone(), ..Default::default() });
    assert_eq!(masked.diff_pixels, 0, "the clock must be masked");

    // A real change elsewhere is still flagged.
    let mut changed = new.clone();
    fill(&mut changed, rect(400, 600, 10, 10), BLACK);
    let mc = host.mask("key", &changed, &ctx(vec![])).unwrap();
    assert_eq!(mc.ignore, mn.ignore);
    let masked = diff::compare(&base, &changed, &DiffOptions { ignore, ..Default::default() });
    assert_eq!(masked.diff_pixels, 100);

    // Nothing magenta: nothing masked.
    let none = host.mask("key", &solid(64, 64, WHITE), &ctx(vec![])).unwrap();
    assert!(none.ignore.is_empty());
}

#[test]
fn c_score_example_weights_changes_near_the_top_more() {
    let host = load(&[config("top", c_example("score_top_weighted"))]);
    assert_eq!(host.kind("top"), Some(PluginKind::Score));
    let base = solid(400, 4000, WHITE);
    let mut top = base.clone();
    fill(&mut top, rect(10, 10, 100, 100), BLACK);
    let mut bottom = base.clone();
    fill(&mut bottom, rect(10, 3800, 100, 100), BLACK);
    let score = |new: &RgbaImage| {
        let d = diff::compare(&base, new, &DiffOptions::default());
        host.score("top", &base, new, &d, &ctx(vec![])).unwrap()
    };
    let same = score(&base);
    let s_top = score(&top);
    let s_bottom = score(&bottom);
    assert_eq!(same.score, 0.0);
    assert_eq!(same.reason.as_deref(), Some("0 pixel(s) changed"));
    assert!(s_top.score > 0.0 && s_bottom.score > 0.0);
    assert!(s_top.score > 3.0 * s_bottom.score, "top {} vs bottom {}", s_top.score, s_bottom.score);
    assert_eq!(s_top.reason.as_deref(), Some("10000 pixel(s) changed, first at row 10"));
    // Everything changed, and a size change counts the extra rows as changed.
    let all = score(&solid(400, 4000, BLACK));
    assert!((all.score - 1.0).abs() < 1e-9, "{}", all.score);
    let taller = score(&solid(400, 4100, WHITE));
    assert!(taller.score > 0.0 && taller.score < s_top.score * 10.0);
}

#[test]
fn pixel_edits_are_read_back_and_chained() {
    let dir = tempfile::tempdir().unwrap();
    // Paints the first row black and says so.
    let paint = mask_module(
        r#"(local $i i32) (local $o i32)
  (block $done (loop $next
    (br_if $done (i32.ge_u (local.get $i) (i32.mul (local.get $w) (i32.const 4))))
    (i32.store (i32.add (local.get $img) (local.get $i)) (i32.const 0xff000000))
    (local.set $i (i32.add (local.get $i) (i32.const 4)))
    (br $next)))
  (local.set $o (call $alloc (i32.const 8)))
  (i32.store (local.get $o) (i32.const 1))
  (i32.store offset=4 (local.get $o) (i32.const 0))
  (i64.or (i64.shl (i64.extend_i32_u (local.get $o)) (i64.const 32)) (i64.const 8))"#,
    );
    let host = load(&[
        config("paint", write_module(dir.path(), "paint", &paint)),
        config("key", c_example("mask_key_color")),
        config("top", c_example("score_top_weighted")),
        config("sel", examples().join("mask_selectors.wat")),
    ]);
    let mut img = solid(32, 16, MAGENTA);
    fill(&mut img, rect(0, 8, 32, 8), WHITE);
    let out = host.mask("paint", &img, &ctx(vec![])).unwrap();
    let edited = out.image.expect("edited image");
    assert_eq!(&edited.data[..4], &BLACK);
    assert_eq!(&edited.data[32 * 4..32 * 4 + 4], &MAGENTA);
    // Chain: paint, then the key-colour plugin sees row 0 black, so its band starts at row 1;
    // the score plugin in the list is skipped; the selector plugin adds its rectangle.
    let names: Vec<String> = ["paint", "top", "key", "sel"].iter().map(|s| s.to_string()).collect();
    let sels = vec![SelectorRects { selector: ".x".into(), rects: vec![rect(1, 1, 2, 2)] }];
    let chained = host.apply_masks(&names, &img, &ctx(sels)).unwrap();
    assert_eq!(chained.ignore, vec![rect(0, 0, 32, 10), rect(1, 1, 2, 2)]);
    assert_eq!(chained.image.as_ref().map(|i| &i.data[..4]), Some(&BLACK[..]));
    assert!(chained.logs.iter().any(|l| l.starts_with("key: ")), "{:?}", chained.logs);
    let unknown = host.apply_masks(&["nope".to_string()], &img, &ctx(vec![])).unwrap_err();
    assert!(matches!(unknown, PluginError::Unknown { .. }), "{unknown}");
    // Kinds are enforced.
    let wrong = host.mask("top", &img, &ctx(vec![])).unwrap_err();
    assert!(matches!(wrong, PluginError::WrongKind { wanted: PluginKind::Mask, .. }), "{wrong}");
}

#[test]
fn full_size_capture_fits_default_limits() {
    // 1280x8000 is 41 MB per image, two of them for a score: the memory cap counts the plugin's
    // own memory on top of the inputs, so the defaults work for tall pages.
    let host =
        load(&[config("key", c_example("mask_key_color")), config("top", c_example("score_top_weighted"))]);
    let base = clock_page(1280, 8000, 0);
    let new = clock_page(1280, 8000, 30);
    let m = host.mask("key", &new, &ctx(vec![])).unwrap();
    assert_eq!(m.ignore.len(), 2);
    let d = diff::compare(&base, &new, &DiffOptions { ignore: m.ignore.clone(), ..Default::default() });
    assert_eq!(d.diff_pixels, 0);
    let s = host.score("top", &base, &new, &d, &ctx(vec![])).unwrap();
    assert!(s.score > 0.0);
}

#[test]
fn calls_from_many_threads() {
    let host = load(&[config("key", c_example("mask_key_color"))]);
    let img = clock_page(320, 600, 0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    assert_eq!(host.mask("key", &img, &ctx(vec![])).unwrap().ignore.len(), 2);
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Hostile modules
// ---------------------------------------------------------------------------------------------

/// `e` is a refused output whose reason mentions `needle`.
fn assert_bad_output(e: &PluginError, needle: &str) {
    match e {
        PluginError::BadOutput { reason, .. } => assert!(reason.contains(needle), "{reason}"),
        other => panic!("expected BadOutput, got {other}"),
    }
}

/// Load `hostile` beside the WAT example, call it twice (the error must repeat: no state carries
/// over), check the good plugin still works after it, and return the error.
fn call_hostile(text: &str, limits: PluginLimits) -> PluginError {
    let dir = tempfile::tempdir().unwrap();
    let path = write_module(dir.path(), "hostile", text);
    let host = load(&[
        PluginConfig { name: "hostile".into(), source: PluginSource::File(path), limits },
        config("sel", examples().join("mask_selectors.wat")),
    ]);
    let img = solid(64, 48, WHITE);
    let sels = vec![SelectorRects { selector: ".a".into(), rects: vec![rect(1, 2, 3, 4)] }];
    let first = host.mask("hostile", &img, &ctx(sels.clone())).unwrap_err();
    assert_eq!(first.plugin(), "hostile");
    let good = host.mask("sel", &img, &ctx(sels.clone())).expect("the next page is processed normally");
    assert_eq!(good.ignore, vec![rect(1, 2, 3, 4)]);
    let second = host.mask("hostile", &img, &ctx(sels)).unwrap_err();
    assert_eq!(first.to_string(), second.to_string());
    first
}

fn small_fuel() -> PluginLimits {
    PluginLimits { fuel: 5_000_000, ..PluginLimits::default() }
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let e = call_hostile(&mask_module("(loop $l (br $l)) (i64.const 0)"), small_fuel());
    assert!(matches!(e, PluginError::OutOfFuel { fuel: 5_000_000, .. }), "{e}");
    assert!(e.to_string().contains("hostile") && e.to_string().contains("fuel"), "{e}");
}

#[test]
fn infinite_loop_with_plenty_of_fuel_times_out() {
    let limits =
        PluginLimits { fuel: u64::MAX / 2, timeout: Duration::from_millis(150), ..PluginLimits::default() };
    let e = call_hostile(&mask_module("(loop $l (br $l)) (i64.const 0)"), limits);
    assert!(matches!(e, PluginError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("150 ms"), "{e}");
}

#[test]
fn memory_grow_bomb_hits_the_memory_limit() {
    let limits = PluginLimits { memory_bytes: 8 << 20, ..PluginLimits::default() };
    let e = call_hostile(
        &mask_module("(loop $l (drop (memory.grow (i32.const 16))) (br $l)) (i64.const 0)"),
        limits,
    );
    match e {
        PluginError::MemoryLimit { requested, limit, .. } => {
            // The cap is the configured 8 MiB plus the (page-rounded) inputs.
            assert!((8 << 20..(8 << 20) + (1 << 20)).contains(&limit), "{limit}");
            assert!(requested > limit);
        }
        other => panic!("expected MemoryLimit, got {other}"),
    }
}

#[test]
fn allocator_that_grows_past_the_cap_is_a_memory_limit() {
    // The image alone (64x48) is small, but this allocator asks for 1 GiB every time.
    let text = mask_module("(i64.const 0)").replace(
        "(local $ptr i32) (local $end i64) (local $have i64)",
        "(local $ptr i32) (local $end i64) (local $have i64) (drop (memory.grow (i32.const 16384)))",
    );
    let e = call_hostile(&text, PluginLimits::default());
    assert!(matches!(e, PluginError::MemoryLimit { .. }), "{e}");
}

#[test]
fn unreachable_traps() {
    let e = call_hostile(&mask_module("unreachable"), PluginLimits::default());
    match &e {
        PluginError::Trap { reason, .. } => assert!(reason.contains("unreachable"), "{reason}"),
        other => panic!("expected Trap, got {other}"),
    }
}

#[test]
fn out_of_bounds_region_is_bad_output() {
    // x + width one past the image's right edge.
    let text = mask_returning_rect("(i32.const 1)", "(i32.const 0)", "(local.get $w)", "(i32.const 1)");
    let e = call_hostile(&text, PluginLimits::default());
    assert_bad_output(&e, "reaches past the 64x48 image");
    // Overflowing coordinates are caught too.
    let text = mask_returning_rect("(i32.const -1)", "(i32.const 0)", "(i32.const 2)", "(i32.const 1)");
    assert!(matches!(call_hostile(&text, PluginLimits::default()), PluginError::BadOutput { .. }));
}

#[test]
fn output_outside_memory_is_bad_output() {
    let e = call_hostile(&mask_module("(i64.const 0x7fff000000000010)"), PluginLimits::default());
    assert_bad_output(&e, "past the end of memory");
}

#[test]
fn allocator_returning_garbage_is_bad_output() {
    let text = mask_module("(i64.const 0)")
        .replace("\n    (local.get $ptr))", "\n    (drop (local.get $ptr)) (i32.const 65000))");
    let e = call_hostile(&text, PluginLimits::default());
    assert_bad_output(&e, "sitediff_alloc(12288) for the image");
}

#[test]
fn negative_result_is_a_reported_failure() {
    let e = call_hostile(&mask_module("(i64.const -7)"), PluginLimits::default());
    assert!(matches!(e, PluginError::Failed { code: -7, .. }), "{e}");
}

#[test]
fn log_with_a_wild_pointer_traps() {
    let e = call_hostile(
        &mask_module("(call $log (i32.const 0x7fffffff) (i32.const 100)) (i64.const 0)"),
        PluginLimits::default(),
    );
    match &e {
        PluginError::Trap { reason, .. } => assert!(reason.contains("env.log"), "{reason}"),
        other => panic!("expected Trap, got {other}"),
    }
}

#[test]
fn log_flood_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let text = mask_module(
        r#"(local $i i32)
  (call $log (i32.const 0) (i32.const 5000))
  (block $done (loop $next
    (br_if $done (i32.ge_u (local.get $i) (i32.const 10000)))
    (call $log (i32.const 16) (i32.const 5))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
  (i64.const 0)"#,
    );
    let host = load(&[config("chatty", write_module(dir.path(), "chatty", &text))]);
    let out = host.mask("chatty", &solid(8, 8, WHITE), &ctx(vec![])).unwrap();
    assert_eq!(out.logs.len(), MAX_LOG_LINES + 1);
    // Cut at the byte limit, then NULs (and any bad UTF-8) become U+FFFD.
    assert_eq!(out.logs[0].chars().count(), MAX_LOG_LINE_BYTES);
    assert!(out.logs[0].contains("\u{fffd}hello\u{fffd}"), "{}", out.logs[0]);
    assert_eq!(out.logs[1], "hello");
    assert_eq!(out.logs[MAX_LOG_LINES], format!("({} more log line(s) dropped)", 10_001 - MAX_LOG_LINES));
    assert!(out.ignore.is_empty());
}

#[test]
fn score_out_of_range_is_bad_output() {
    let dir = tempfile::tempdir().unwrap();
    let text = module(
        1,
        r#"(func (export "sitediff_score") (param i32 i32 i32 i32 i32 i32 i32 i32) (result i64)
  (local $o i32)
  (local.set $o (call $alloc (i32.const 12)))
  (f64.store (local.get $o) (f64.const 1.5))
  (i32.store offset=8 (local.get $o) (i32.const 0))
  (i64.or (i64.shl (i64.extend_i32_u (local.get $o)) (i64.const 32)) (i64.const 12)))"#,
    );
    let host = load(&[config("over", write_module(dir.path(), "over", &text))]);
    let img = solid(4, 4, WHITE);
    let d = diff::compare(&img, &img, &DiffOptions::default());
    let e = host.score("over", &img, &img, &d, &ctx(vec![])).unwrap_err();
    assert!(matches!(&e, PluginError::BadOutput { reason, .. } if reason.contains("0..=1")), "{e}");
}

#[test]
fn bad_modules_fail_at_load_with_every_problem_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = config("good", examples().join("mask_selectors.wat"));
    let mut plugins = vec![
        good,
        config("v2", write_module(d, "v2", &module(2, &format!("{MASK_SIG} (i64.const 0))")))),
        config(
            "noalloc",
            write_module(
                d,
                "noalloc",
                &format!(
                    "(module (memory (export \"memory\") 1) (func (export \"sitediff_abi_version\") (result i32) \
                     (i32.const 1)) {MASK_SIG} (i64.const 0)))"
                ),
            ),
        ),
        config("noentry", write_module(d, "noentry", &module(1, ""))),
        config(
            "both",
            write_module(
                d,
                "both",
                &module(
                    1,
                    &format!(
                        "{MASK_SIG} (i64.const 0)) (func (export \"sitediff_score\") (param i32 i32 i32 i32 \
                         i32 i32 i32 i32) (result i64) (i64.const 0))"
                    ),
                ),
            ),
        ),
        config(
            "wasi",
            write_module(
                d,
                "wasi",
                &mask_module("(i64.const 0)").replace(
                    "(module\n",
                    "(module\n (import \"wasi_snapshot_preview1\" \"fd_write\" (func (param i32 i32 i32 i32) (result i32)))\n",
                ),
            ),
        ),
        config(
            "badsig",
            write_module(
                d,
                "badsig",
                &module(1, "(func (export \"sitediff_mask\") (param i32 i32) (result i32) (i32.const 0))"),
            ),
        ),
        config("huge", write_module(d, "huge", &mask_module("(i64.const 0)").replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 2000)"))),
        config(
            "startloop",
            write_module(
                d,
                "startloop",
                // The body closes the entry point and adds a start function that never returns.
                &mask_module("(i64.const 0)) (func $spin (loop $l (br $l))) (start $spin"),
            ),
        ),
        config("garbage", write_module(d, "garbage", "this is not wasm")),
        config("missing", d.join("missing.wasm")),
    ];
    for p in &mut plugins {
        if p.name == "startloop" {
            p.limits.fuel = 2_000_000;
        }
    }
    let errs = PluginHost::load(&plugins).unwrap_err();
    let of = |name: &str| errs.iter().filter(|e| e.plugin() == name).collect::<Vec<_>>();
    assert!(of("good").is_empty(), "{errs:#?}");
    assert!(matches!(&of("v2")[..], [PluginError::AbiVersion { found: 2, supported: 1, .. }]), "{errs:#?}");
    assert!(
        matches!(&of("noalloc")[..], [PluginError::MissingExport { export, .. }] if export == "sitediff_alloc"),
        "{errs:#?}"
    );
    assert!(
        matches!(&of("noentry")[..], [PluginError::MissingExport { export, .. }] if export.contains("sitediff_mask")),
        "{errs:#?}"
    );
    assert!(matches!(&of("both")[..], [PluginError::BadExport { .. }]), "{errs:#?}");
    assert!(
        matches!(&of("wasi")[..], [PluginError::UnsupportedImport { module, name, .. }]
            if module == "wasi_snapshot_preview1" && name == "fd_write"),
        "{errs:#?}"
    );
    assert!(
        matches!(&of("badsig")[..], [PluginError::BadExport { export, problem, .. }]
            if export == "sitediff_mask" && problem.contains("(i32, i32) -> (i32)")),
        "{errs:#?}"
    );
    assert!(matches!(&of("huge")[..], [PluginError::MemoryLimit { .. }]), "{errs:#?}");
    assert!(matches!(&of("startloop")[..], [PluginError::OutOfFuel { .. }]), "{errs:#?}");
    assert!(matches!(&of("garbage")[..], [PluginError::Compile { .. }]), "{errs:#?}");
    assert!(matches!(&of("missing")[..], [PluginError::Io { .. }]), "{errs:#?}");
    assert_eq!(errs.len(), 10, "{errs:#?}");
    for e in &errs {
        assert!(e.to_string().contains(e.plugin()), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

fn sitediff(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sitediff")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_png(path: &Path, img: &RgbaImage) {
    std::fs::write(path, diff::encode_png(img).unwrap()).unwrap();
}

#[test]
fn cli_check_reports_what_it_found() {
    let wat = examples().join("mask_selectors.wat");
    let (code, out, err) = sitediff(&["plugin", "check", wat.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // The report is the command's output: on stdout, so it can be piped.
    assert!(out.contains("a mask plugin, ABI version 1") && out.contains("imports: env.log"), "{out}\n{err}");
    assert!(!err.contains("ABI version"), "{err}");
    let wasm = c_example("score_top_weighted");
    let (code, out, err) = sitediff(&["plugin", "check", "--json", wasm.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "score");
    assert_eq!(v["abi_version"], 1);

    let dir = tempfile::tempdir().unwrap();
    let bad = write_module(dir.path(), "bad", &module(3, ""));
    let (code, _, err) = sitediff(&["plugin", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("plugin bad: missing export `sitediff_mask or sitediff_score`"), "{err}");
}

#[test]
fn cli_run_masks_and_scores_a_screenshot() {
    let dir = tempfile::tempdir().unwrap();
    let base_png = dir.path().join("base.png");
    let new_png = dir.path().join("new.png");
    let out_png = dir.path().join("out.png");
    write_png(&base_png, &clock_page(300, 500, 0));
    let mut new = clock_page(300, 500, 20);
    fill(&mut new, rect(0, 0, 300, 5), BLACK);
    write_png(&new_png, &new);

    let key = c_example("mask_key_color");
    let (code, out, err) = sitediff(&[
        "plugin",
        "run",
        key.to_str().unwrap(),
        "--image",
        new_png.to_str().unwrap(),
        "--out",
        out_png.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ignore"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["ignore"][0], serde_json::json!({"x": 98, "y": 298, "width": 202, "height": 44}));
    let shown = diff::decode_png(&std::fs::read(&out_png).unwrap(), "out").unwrap();
    let px = |x: u32, y: u32| shown.data[((y * shown.width + x) * 4) as usize..][..4].to_vec();
    assert_ne!(px(200, 320), MAGENTA.to_vec(), "masked area is tinted");
    assert_eq!(px(200, 200), WHITE.to_vec(), "the rest is untouched");

    let sel = examples().join("mask_selectors.wat");
    let context =
        r#"{"site":"s","selectors":[{"selector":".ad","rects":[{"x":5,"y":6,"width":7,"height":8}]}]}"#;
    let (code, out, err) = sitediff(&[
        "plugin",
        "run",
        sel.to_str().unwrap(),
        "--image",
        new_png.to_str().unwrap(),
        "--context",
        context,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ignore"], serde_json::json!([{"x": 5, "y": 6, "width": 7, "height": 8}]));
    assert_eq!(v["logs"][0], "mask_selectors: ignoring the selectors' rectangles");

    let top = c_example("score_top_weighted");
    let (code, out, err) = sitediff(&[
        "plugin",
        "run",
        top.to_str().unwrap(),
        "--kind",
        "score",
        "--image",
        new_png.to_str().unwrap(),
        "--base",
        base_png.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("score_top_weighted: score 0.") && out.contains("first at row 0"), "{out}");
    let (code, _, err) =
        sitediff(&["plugin", "run", top.to_str().unwrap(), "--image", new_png.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("--base"), "{err}");
    let (code, _, err) = sitediff(&[
        "plugin",
        "run",
        key.to_str().unwrap(),
        "--kind",
        "score",
        "--image",
        new_png.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("is a mask plugin, not a score plugin"), "{err}");

    // A hostile plugin fails with its named error and exit code 2.
    let spin = write_module(dir.path(), "spin", &mask_module("(loop $l (br $l)) (i64.const 0)"));
    let (code, _, err) = sitediff(&[
        "plugin",
        "run",
        spin.to_str().unwrap(),
        "--image",
        new_png.to_str().unwrap(),
        "--fuel",
        "1000000",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("plugin spin: ran out of fuel (limit 1000000 units per call)"), "{err}");
    let (code, _, err) = sitediff(&[
        "plugin",
        "run",
        spin.to_str().unwrap(),
        "--image",
        new_png.to_str().unwrap(),
        "--fuel",
        "100000000000000",
        "--timeout-ms",
        "100",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("plugin spin: timed out (limit 100 ms per call)"), "{err}");
}
