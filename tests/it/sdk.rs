//! The plugin SDKs (issue 22): the AssemblyScript, Zig and C examples built from source with their
//! Makefiles and run in real crawls with Chromium (a masked change is not counted, an unmasked one
//! is, the score plugin decides), the score and its reason where people and programs look, and the
//! author tooling: `plugin new`, `--print-context`, logs with failures, named traps, did-you-mean
//! for entry points, f32 scores, swapped results, the exit code of a crawl with failed pages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sitediff::diff::{self, RgbaImage};

use crate::helpers::{http_get, run_sitediff, tool, tools_dir, Daemon, FixtureServer, Response, TempProject};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A language's examples and how to build them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    AssemblyScript,
    Zig,
    C,
}

/// `make` with the tool variables of `lang` (the toolchains in the tools directory).
fn make(lang: Lang, dir: &Path, out: &Path, target: &str) -> Command {
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(dir).arg(format!("OUT={}", out.display())).arg(target);
    match lang {
        Lang::AssemblyScript => {
            cmd.arg(format!("ASC={}", tool("npm/node_modules/.bin/asc").display()));
        }
        Lang::Zig => {
            tool("pip/ziglang");
            cmd.arg("ZIG=python3 -m ziglang").env("PYTHONPATH", tools_dir().join("pip"));
        }
        Lang::C => {}
    }
    cmd
}

/// Build the three examples of `lang` from source (once per test run); returns their directory.
fn examples(lang: Lang) -> &'static Path {
    static AS: OnceLock<PathBuf> = OnceLock::new();
    static ZIG: OnceLock<PathBuf> = OnceLock::new();
    static C: OnceLock<PathBuf> = OnceLock::new();
    let (cell, src, name) = match lang {
        Lang::AssemblyScript => (&AS, "plugins/sdk/assemblyscript", "as"),
        Lang::Zig => (&ZIG, "plugins/sdk/zig", "zig"),
        Lang::C => (&C, "plugins/examples", "c"),
    };
    cell.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sdk-examples-{name}"));
        let status = make(lang, &repo().join(src), &out, "all").status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "building the {lang:?} examples failed ({status:?}); the toolchains come from \
             scripts/install-test-tools, C needs clang and lld"
        );
        out
    })
}

fn example(lang: Lang, name: &str) -> String {
    let path = examples(lang).join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path.display().to_string()
}

fn page_of<'a>(crawl: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    crawl["page_results"]
        .as_array()
        .and_then(|pages| pages.iter().find(|p| p["key"] == key))
        .unwrap_or_else(|| panic!("no page {key} in {crawl}"))
}

/// Version `v` (1 or 2) of the fixture pages: `/m/` for the masks, `/s/` for the score.
fn serve_pages(srv: &FixtureServer, v: u32) {
    let (outline, ad, digits, top, bottom) = match v {
        1 => ("#000", "Buy one", "Mon 12:00:01<br>Jan 01 2026", "#fff", "#fff"),
        _ => ("#f00", "Buy two, get one", "Sun 23:59:58<br>Dec 27 2026", "#333", "#000"),
    };
    let style = "<style>body{margin:0;font:16px sans-serif}p{margin:20px}</style>";
    srv.set(
        "/m/",
        Response::html(format!(
            "<title>m</title>{style}<h1>Masks</h1><a href=shadow.html>shadow</a> \
             <a href=clock.html>clock</a> <a href=top.html>top</a>"
        )),
    );
    // The box is masked by `mask_selectors`; its outline lies outside the box (the paint plugin's
    // padding covers it).
    srv.set(
        "/m/shadow.html",
        Response::html(format!(
            "<title>shadow</title>{style}<div class=ad style='margin:40px;width:300px;height:60px;\
             outline:10px solid {outline};background:#eee'>{ad}</div><p>Static text.</p>"
        )),
    );
    // The clock sits on the key colour.
    let clock = Response::html(format!(
        "<title>clock</title>{style}<p>Time: <span style='display:inline-block;background:#f0f;color:#000;\
             padding:4px 12px;font:bold 56px monospace'>{digits}</span></p><p>Static text.</p>"
    ));
    srv.set("/m/clock.html", clock.clone());
    srv.set("/s/clock.html", clock);
    let top_page = Response::html(format!(
        "<title>top</title>{style}<h1 style='margin:0;padding:20px;background:{top}'>Top</h1><p>Text.</p>"
    ));
    srv.set("/m/top.html", top_page.clone());
    srv.set(
        "/s/",
        Response::html(format!(
            "<title>s</title>{style}<h1>Score</h1><a href=tall.html>tall</a> <a href=top.html>top</a> \
             <a href=clock.html>clock</a>"
        )),
    );
    srv.set("/s/top.html", top_page);
    // 6000 px tall; the change is a 40 px band near the bottom: 0.67% of the pixels.
    srv.set(
        "/s/tall.html",
        Response::html(format!(
            "<title>tall</title><style>body{{margin:0}}</style><div style='height:5900px'></div>\
             <div style='height:40px;background:{bottom}'></div><div style='height:60px'></div>"
        )),
    );
}

const MAX_DISTORTION: f64 = 0.005;

/// Two crawls of each site (first, approve, pages changed, second); returns the second crawls'
/// JSON reports by site.
async fn crawl_twice(cfg: &str, srv: &FixtureServer, sites: &[&str]) -> Vec<serde_json::Value> {
    serve_pages(srv, 1);
    for site in sites {
        let out = run_sitediff(&["crawl", site, "--config", cfg, "--json"]).await;
        assert_eq!(out.code, 0, "first crawl of {site}: {}\n{}", out.stdout, out.stderr);
        let approve = run_sitediff(&["approve", site, "--config", cfg]).await;
        assert_eq!(approve.code, 0, "{}", approve.stderr);
    }
    serve_pages(srv, 2);
    let mut reports = Vec::new();
    for site in sites {
        let out = run_sitediff(&["crawl", site, "--config", cfg, "--json"]).await;
        assert_eq!(out.code, 1, "second crawl of {site}: top.html changed: {}\n{}", out.stdout, out.stderr);
        reports.push(out.json());
    }
    reports
}

/// The three examples of `lang` in real crawls: the selector-paint and key-colour masks hide their
/// changes while an unmasked change counts, and the top-weighted score keeps a change at the bottom
/// of a tall page under `max_distortion` though its distortion is over it.
async fn examples_in_a_crawl(lang: Lang) {
    let (paint, key, score) = (
        example(lang, "mask_selector_paint"),
        example(lang, "mask_key_color"),
        example(lang, "score_top_weighted"),
    );
    let srv = FixtureServer::start().await;
    let project = TempProject::new();
    let site = |name: &str, path: &str, plugins: &str| {
        format!(
            "[[sites]]\nname = \"{name}\"\nstart = \"{}\"\nviewport = {{ width = 640, height = 480 }}\n\
             max_distortion = {MAX_DISTORTION}\nmask_selectors = [\".ad\"]\nplugins = [{plugins}]\n\n",
            srv.url(path)
        )
    };
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nallow_anonymous_writes = true\n\n\
         [[plugins]]\nname = \"paint\"\npath = {paint:?}\n\n[[plugins]]\nname = \"key\"\npath = {key:?}\n\n\
         [[plugins]]\nname = \"score\"\npath = {score:?}\n\n{}{}{}",
        site("m", "/m/", "\"paint\", \"key\""),
        site("s", "/s/", "\"key\", \"score\""),
        site("bare", "/m/", ""),
    ));
    // Without plugins (C run only, the pages are the same for every language), the masked changes
    // do count: the plugins are what hides them.
    let sites: &[&str] = if lang == Lang::C { &["m", "s", "bare"] } else { &["m", "s"] };
    let reports = crawl_twice(&cfg, &srv, sites).await;
    let (m, s) = (&reports[0], &reports[1]);

    for key in ["/shadow.html", "/clock.html"] {
        let p = page_of(m, key);
        assert_eq!(p["change"], "unchanged", "{lang:?} {key}: the masked change counted: {p}");
        assert_eq!(p["outcome"], "ok", "{p}");
    }
    let top = page_of(m, "/top.html");
    assert_eq!(top["change"], "changed", "{lang:?}: the unmasked change was hidden: {top}");

    let tall = page_of(s, "/tall.html");
    let distortion = tall["distortion"].as_f64().expect("distortion");
    let score = tall["score"].as_f64().expect("score");
    assert!(distortion > MAX_DISTORTION, "{lang:?}: the bottom change is too small to test: {tall}");
    assert!(
        score < MAX_DISTORTION && score > 0.0,
        "{lang:?}: the score did not weigh the bottom less: {tall}"
    );
    assert_eq!(tall["change"], "unchanged", "{lang:?}: the score did not decide: {tall}");
    let reason = tall["score_reason"].as_str().expect("a score reason");
    assert!(
        reason.starts_with("score: ") && reason.contains("pixel(s) changed, first at row 59"),
        "{reason}"
    );
    // The score plugin is told what the key-colour mask ignored (`diff.ignored`) and leaves it out.
    let clock = page_of(s, "/clock.html");
    assert_eq!(clock["change"], "unchanged", "{lang:?}: the score counted a masked change: {clock}");
    assert_eq!(clock["score"], 0.0, "{clock}");
    let top = page_of(s, "/top.html");
    assert_eq!(top["change"], "changed", "{top}");
    assert!(top["score"].as_f64() > top["distortion"].as_f64(), "{lang:?}: a top change weighs more: {top}");

    if lang == Lang::C {
        let bare = &reports[2];
        for key in ["/shadow.html", "/clock.html", "/top.html"] {
            assert_eq!(page_of(bare, key)["change"], "changed", "without plugins {key} changes: {bare}");
        }
        score_is_visible(&cfg, s, reason).await;
    }
}

/// The score and its reason in `status SITE --json`, the API's page record and the page view.
async fn score_is_visible(cfg: &str, report: &serde_json::Value, reason: &str) {
    let out = run_sitediff(&["status", "s", "--config", cfg, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = out.json();
    let tall = page_of(&status["sites"][0]["latest_pages"], "/tall.html");
    assert_eq!(tall["score_reason"], reason, "{status}");
    assert!(tall["score"].as_f64().is_some(), "{status}");

    let id = report["crawl"].as_u64().expect("crawl id");
    let daemon = Daemon::start(cfg);
    let (code, body) = http_get(&daemon.url(&format!("/api/crawls/{id}"))).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let page = v["pages"].as_array().unwrap().iter().find(|p| p["key"] == "/tall.html").unwrap();
    assert_eq!(page["score_reason"], reason, "{page}");
    assert!(page["score"].as_f64() < page["distortion"].as_f64(), "{page}");
    let (code, html) = http_get(&daemon.url(&format!("/crawls/{id}/page?key=%2Ftall.html"))).await;
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("id=\"page-score\"") && html.contains(reason), "no score reason in the page view");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assemblyscript_examples_mask_and_score_in_a_crawl() {
    examples_in_a_crawl(Lang::AssemblyScript).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zig_examples_mask_and_score_in_a_crawl() {
    examples_in_a_crawl(Lang::Zig).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_examples_mask_and_score_in_a_crawl() {
    examples_in_a_crawl(Lang::C).await;
}

// ---------------------------------------------------------------------------------------------
// Author tooling
// ---------------------------------------------------------------------------------------------

fn sitediff(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sitediff")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn white_png(dir: &Path, name: &str, width: u32, height: u32) -> String {
    let img = RgbaImage { width, height, data: vec![255; (width * height * 4) as usize] };
    let path = dir.join(name);
    std::fs::write(&path, diff::encode_png(&img).unwrap()).unwrap();
    path.display().to_string()
}

/// A WAT module with the ABI exports around `body`: `$alloc` (bump from 1024), `$log`, and the
/// texts "boom happened" at 16 and "hello line" at 48.
fn module(body: &str) -> String {
    format!(
        r#"(module
  (import "env" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "boom happened")
  (data (i32.const 48) "hello line")
  (global $top (mut i32) (i32.const 1024))
  (func (export "sitediff_abi_version") (result i32) (i32.const 1))
  (func $alloc (export "sitediff_alloc") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $top))
    (global.set $top (i32.add (global.get $top) (i32.and (i32.add (local.get $size) (i32.const 7)) (i32.const -8))))
    (if (i32.gt_u (global.get $top) (i32.shl (memory.size) (i32.const 16)))
      (then (drop (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $top) (i32.shl (memory.size) (i32.const 16))) (i32.const 16)) (i32.const 1))))))
    (local.get $ptr))
  {body}
)"#
    )
}

const MASK: &str = r#"(func (export "sitediff_mask") (param i32 i32 i32 i32 i32 i32 i32) (result i64)"#;
const SCORE: &str = r#"(func (export "sitediff_score") (param i32 i32 i32 i32 i32 i32 i32 i32) (result i64)"#;

fn write_wat(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(format!("{name}.wat"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn print_context_shows_what_a_call_receives() {
    let dir = tempfile::tempdir().unwrap();
    let img = white_png(dir.path(), "a.png", 30, 40);
    let wat = repo().join("plugins/examples/mask_selectors.wat").display().to_string();
    let (code, out, err) = sitediff(&["plugin", "run", &wat, "--image", &img, "--print-context"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["kind"], "mask");
    assert_eq!(v["site"], "cli");
    assert_eq!(v["viewport"], serde_json::json!({"width": 30, "height": 40}));
    assert_eq!(v["image"], serde_json::json!({"width": 30, "height": 40}));
    assert!(!out.contains("mask_selectors: ignoring"), "the plugin ran: {out}");
    // A partial context keeps the defaults of what it leaves out.
    let (code, out, err) = sitediff(&[
        "plugin",
        "run",
        &wat,
        "--image",
        &img,
        "--print-context",
        "--context",
        r#"{"page_key": "a.html"}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((&v["page_key"], &v["site"]), (&serde_json::json!("a.html"), &serde_json::json!("cli")));
    assert_eq!(v["viewport"], serde_json::json!({"width": 30, "height": 40}), "{v}");

    let other = white_png(dir.path(), "b.png", 30, 50);
    let score = write_wat(dir.path(), "s", &module(&format!("{SCORE} (i64.const -1))")));
    let (code, out, err) =
        sitediff(&["plugin", "run", &score, "--base", &img, "--image", &other, "--print-context"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "score");
    assert_eq!(v["base"], serde_json::json!({"width": 30, "height": 40}));
    assert_eq!(v["new"], serde_json::json!({"width": 30, "height": 50}));
    assert_eq!(v["diff"]["size_changed"], true, "{v}");
}

#[test]
fn failures_show_the_plugin_s_logs_and_where_it_trapped() {
    let dir = tempfile::tempdir().unwrap();
    let img = white_png(dir.path(), "a.png", 8, 8);
    // Logs, then gives up: the log line is part of the error.
    let give_up = write_wat(
        dir.path(),
        "give_up",
        &module(&format!("{MASK} (call $log (i32.const 16) (i32.const 13)) (i64.const -7))")),
    );
    let (code, out, err) = sitediff(&["plugin", "run", &give_up, "--image", &img]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("reported failure (returned -7); it logged: \"boom happened\""), "{err}");

    // Logs, then stores out of bounds in a named function: function name and offset, and the log.
    let oob = write_wat(
        dir.path(),
        "oob",
        &module(&format!(
            "(func $write_past_the_end (i32.store (i32.const 0x7fff0000) (i32.const 1)))\n\
             {MASK} (call $log (i32.const 16) (i32.const 13)) (call $write_past_the_end) (i64.const 0))"
        )),
    );
    let (code, _, err) = sitediff(&["plugin", "run", &oob, "--image", &img]);
    assert_eq!(code, 2);
    assert!(
        err.contains("out of bounds memory access in wasm function `write_past_the_end` at module offset 0x"),
        "{err}"
    );
    assert!(err.contains("it logged: \"boom happened\""), "{err}");

    // Human output on stdout, each log line once.
    let ok = write_wat(
        dir.path(),
        "ok",
        &module(&format!("{MASK} (call $log (i32.const 16) (i32.const 13)) (i64.const 0))")),
    );
    let (code, out, err) = sitediff(&["-v", "plugin", "run", &ok, "--image", &img]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("boom happened").count(), 1, "stdout:\n{out}");
    assert!(!err.contains("boom happened"), "stderr:\n{err}");
    assert!(out.contains("ok: 0 region(s) to ignore"), "{out}");
}

#[test]
fn a_typo_in_the_entry_point_lists_the_exports_with_a_did_you_mean() {
    let dir = tempfile::tempdir().unwrap();
    let typo = write_wat(
        dir.path(),
        "typo",
        &module(
            r#"(func (export "sitediff_msak") (param i32 i32 i32 i32 i32 i32 i32) (result i64) (i64.const 0))"#,
        ),
    );
    let (code, _, err) = sitediff(&["plugin", "check", &typo]);
    assert_eq!(code, 2);
    assert!(
        err.contains("the module exports functions: sitediff_abi_version, sitediff_alloc, sitediff_msak"),
        "{err}"
    );
    assert!(err.contains("did you mean `sitediff_mask` (exported as `sitediff_msak`)?"), "{err}");
}

#[test]
fn a_score_written_as_f32_and_a_swapped_result_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let a = white_png(dir.path(), "a.png", 8, 8);
    let f32_score = write_wat(
        dir.path(),
        "f32",
        &module(&format!(
            "{SCORE} (local $o i32) (local.set $o (call $alloc (i32.const 12)))
             (f32.store (local.get $o) (f32.const 0.5)) (i32.store offset=4 (local.get $o) (i32.const 0))
             (i32.store offset=8 (local.get $o) (i32.const 0))
             (i64.or (i64.shl (i64.extend_i32_u (local.get $o)) (i64.const 32)) (i64.const 12)))"
        )),
    );
    let (code, _, err) = sitediff(&["plugin", "run", &f32_score, "--base", &a, "--image", &a]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a normal number") && err.contains("f32"), "{err}");

    // (length << 32) | address instead of (address << 32) | length.
    let swapped = write_wat(
        dir.path(),
        "swapped",
        &module(&format!(
            "{MASK} (local $o i32) (local.set $o (call $alloc (i32.const 8)))
             (i64.store (local.get $o) (i64.const 0))
             (i64.or (i64.shl (i64.const 8) (i64.const 32)) (i64.extend_i32_u (local.get $o))))"
        )),
    );
    let (code, _, err) = sitediff(&["plugin", "run", &swapped, "--image", &a]);
    assert_eq!(code, 2);
    assert!(err.contains("read as address") && err.contains("(address << 32) | length"), "{err}");
}

/// `plugin new` in every language writes a project that builds with its Makefile, loads and runs.
#[test]
fn plugin_new_writes_projects_that_build_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let img = white_png(dir.path(), "a.png", 64, 64);
    let ctx =
        r#"{"selectors": [{"selector": ".ad", "rects": [{"x": 20, "y": 20, "width": 10, "height": 10}]}]}"#;
    for (lang, make_lang) in
        [("c", Some(Lang::C)), ("as", Some(Lang::AssemblyScript)), ("zig", Some(Lang::Zig)), ("wat", None)]
    {
        for kind in ["mask", "score"] {
            let name = format!("my_{lang}_{kind}");
            let project = dir.path().join(&name);
            let (code, out, err) =
                sitediff(&["plugin", "new", project.to_str().unwrap(), "--lang", lang, "--kind", kind]);
            assert_eq!(code, 0, "{lang} {kind}: {err}");
            assert!(out.contains("README.md"), "{out}");
            let module = match make_lang {
                Some(l) => {
                    let status = make(l, &project, &project, &format!("{name}.wasm")).status().unwrap();
                    assert!(status.success(), "{lang} {kind}: make failed");
                    project.join(format!("{name}.wasm"))
                }
                None => project.join("plugin.wat"),
            };
            let module = module.display().to_string();
            let (code, out, err) = sitediff(&["plugin", "check", &module]);
            assert_eq!(code, 0, "{lang} {kind}: {err}");
            assert!(out.contains(&format!("a {kind} plugin")), "{out}");
            let args: Vec<&str> = match kind {
                "mask" => vec!["plugin", "run", &module, "--image", &img, "--context", ctx, "--json"],
                _ => vec!["plugin", "run", &module, "--base", &img, "--image", &img, "--json"],
            };
            let (code, out, err) = sitediff(&args);
            assert_eq!(code, 0, "{lang} {kind}: {err}");
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            match kind {
                "mask" => assert!(
                    v["image_edited"] == true || v["ignore"].as_array().is_some_and(|a| !a.is_empty()),
                    "{lang}: {v}"
                ),
                _ => assert_eq!(v["score"], 0.0, "{lang}: {v}"),
            }
        }
    }
    let (code, _, err) =
        sitediff(&["plugin", "new", dir.path().join("my_c_mask").to_str().unwrap(), "--lang", "c"]);
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
}

/// A crawl whose compared pages all fail with `plugin_error` exits 1, and the error carries the
/// plugin's log line (crawl JSON and page view).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_with_a_failing_plugin_exits_1_and_shows_its_logs() {
    let srv = FixtureServer::start().await;
    srv.set("/f/", Response::html("<title>f</title><h1>Failing plugin</h1>"));
    let changed = || Response::html("<title>f</title><h1>Failing plugin, changed</h1>");
    let project = TempProject::new();
    let plugin = write_wat(
        project.dir.path(),
        "give_up",
        &module(&format!("{MASK} (call $log (i32.const 16) (i32.const 13)) (i64.const -7))")),
    );
    // A plugin that logs and succeeds runs first: at -v its line is logged once per call.
    let hello = write_wat(
        project.dir.path(),
        "hello",
        &module(&format!("{MASK} (call $log (i32.const 48) (i32.const 10)) (i64.const 0))")),
    );
    let cfg = project.write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nallow_anonymous_writes = true\n\n\
         [[plugins]]\nname = \"hello\"\npath = {hello:?}\n\n\
         [[plugins]]\nname = \"give_up\"\npath = {plugin:?}\n\n\
         [[sites]]\nname = \"f\"\nstart = \"{}\"\nplugins = [\"hello\", \"give_up\"]\n",
        srv.url("/f/")
    ));
    // The first crawl has no baseline: nothing is compared, no plugin runs.
    let out = run_sitediff(&["crawl", "f", "--config", &cfg, "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(run_sitediff(&["approve", "f", "--config", &cfg]).await.code, 0);
    // Other pixels, so the page is compared (identical bytes are not) and the plugin runs.
    srv.set("/f/", changed());
    let out = run_sitediff(&["-v", "crawl", "f", "--config", &cfg, "--json"]).await;
    // hello ran once (on the baseline; give_up then failed and stopped the chain): one line.
    assert_eq!(out.stderr.matches("hello line").count(), 1, "plugin log lines once at -v:\n{}", out.stderr);
    let j = out.json();
    let page = page_of(&j, "/");
    assert_eq!(
        (&page["outcome"], &page["change"]),
        (&serde_json::json!("plugin_error"), &serde_json::json!("failed")),
        "{j}"
    );
    assert_eq!(out.code, 1, "a crawl with a failed page must fail the run: {j}");
    let error = page["error"].as_str().expect("error");
    assert!(error.contains("returned -7); it logged: \"boom happened\""), "{error}");

    let id = j["crawl"].as_u64().expect("crawl id");
    let daemon = Daemon::start(&cfg);
    let (code, html) = http_get(&daemon.url(&format!("/crawls/{id}/page?key=%2F"))).await;
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("it logged: &quot;boom happened&quot;"), "no plugin log in the page view:\n{html}");
}

/// Every section an example cites in `plugins/ABI.md` exists, and every example, SDK or header file
/// the plugin docs name is there.
#[test]
fn every_reference_in_the_plugin_docs_resolves() {
    let plugins = repo().join("plugins");
    let abi = std::fs::read_to_string(plugins.join("ABI.md")).unwrap();
    let headings: Vec<&str> =
        abi.lines().filter_map(|l| l.strip_prefix('#')).map(|l| l.trim_start_matches('#').trim()).collect();
    let mut files = Vec::new();
    let mut dirs = vec![plugins.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && p.file_name() != Some("build".as_ref()) {
                dirs.push(p);
            } else if ["wat", "c", "h", "ts", "zig", "md"].iter().any(|x| p.extension() == Some(x.as_ref())) {
                files.push(p);
            }
        }
    }
    let mut cited = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // `ABI.md, "Section"` (a comment may wrap after `plugins/`).
        for (at, _) in text.match_indices("ABI.md, \"") {
            let rest = &text[at + "ABI.md, \"".len()..];
            let section = &rest[..rest.find('"').unwrap()];
            assert!(
                headings.contains(&section),
                "{}: cites ABI.md section {section:?}, which does not exist",
                f.display()
            );
            cited += 1;
        }
        // Backticked paths of example and SDK files.
        for (at, _) in text.match_indices('`') {
            let rest = &text[at + 1..];
            let Some(end) = rest.find('`') else { continue };
            let path = &rest[..end];
            let known_ext = [".c", ".h", ".wat", ".ts", ".zig", ".md"].iter().any(|x| path.ends_with(x));
            if !known_ext || path.contains(' ') || path.contains('*') || !path.contains('/') {
                continue;
            }
            let candidates = [repo().join(path), plugins.join(path), f.parent().unwrap().join(path)];
            assert!(
                candidates.iter().any(|c| c.exists()),
                "{}: names `{path}`, which does not exist",
                f.display()
            );
        }
    }
    assert!(cited >= 2, "the examples cite ABI.md sections: {cited}");
}
