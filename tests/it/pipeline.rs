//! Plugins in the crawl pipeline with the real browser: a live clock is flagged without a mask
//! plugin, not flagged with the WAT or the C mask plugin, a real change is still flagged, and a
//! trapping plugin fails only its page.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{run_sitediff, FixtureServer, Response, TempProject};

fn clock_page(extra: &str) -> Response {
    Response::html(format!(
        "<!doctype html><title>clock</title><style>body{{margin:0;font:16px sans-serif}}\
         .clock{{position:absolute;top:100px;left:20px;width:320px;height:40px;background:#ff00ff;color:#000}}\
         #para{{position:absolute;top:300px;left:20px}}</style>\
         <h1>Live clock</h1><div class=clock id=clock></div><p id=para>{extra}</p>\
         <script>document.getElementById('clock').textContent = new Date().toISOString() + ' ' + Math.random();</script>"
    ))
}

/// Build the C examples into a temp dir with the shipped Makefile.
fn build_c_examples(out: &std::path::Path) -> PathBuf {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/examples");
    let status = Command::new("make")
        .arg("-C")
        .arg(&examples)
        .arg(format!("OUT={}", out.display()))
        .arg("all")
        .status();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "building the C plugin examples failed ({status:?}): they need make, clang and lld"
    );
    out.join("mask_key_color.wasm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mask_plugins_hide_a_live_clock_but_not_real_changes() {
    let srv = FixtureServer::start().await;
    srv.set("/p/", Response::html("<title>home</title><h1>Home</h1><a href='clock.html'>clock</a>"));
    srv.set("/p/clock.html", clock_page("Steady text."));
    let project = TempProject::new();
    let c_plugin = build_c_examples(&project.dir.path().join("c"));
    let wat_plugin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/examples/mask_selectors.wat");
    let trap = project.dir.path().join("trap.wat");
    std::fs::write(
        &trap,
        r#"(module
  (memory (export "memory") 1)
  (func (export "sitediff_abi_version") (result i32) (i32.const 1))
  (func (export "sitediff_alloc") (param i32) (result i32)
    (i32.mul (memory.grow (i32.add (i32.shr_u (local.get 0) (i32.const 16)) (i32.const 1))) (i32.const 65536)))
  (func (export "sitediff_mask") (param i32 i32 i32 i32 i32 i32 i32) (result i64) unreachable))"#,
    )
    .unwrap();
    let start = srv.url("/p/");
    let mut body = String::from("[browser]\nsessions = 2\n");
    // "none" has no mask at all (mask_selectors alone masks, built in: see mask.rs); the C plugin
    // finds the clock by its colour, so its site has no mask_selectors either.
    for (name, plugins, masked) in [
        ("none", "[]", "[]"),
        ("wat", "[\"sel\"]", "[\".clock\"]"),
        ("c", "[\"key\"]", "[]"),
        ("bad", "[\"trap\"]", "[\".clock\"]"),
    ] {
        body.push_str(&format!(
            "[[sites]]\nname = \"{name}\"\nstart = \"{start}\"\nplugins = {plugins}\nmask_selectors = {masked}\n\
             viewport = {{ width = 640, height = 480 }}\n"
        ));
    }
    for (name, path) in [("sel", &wat_plugin), ("key", &c_plugin), ("trap", &trap)] {
        body.push_str(&format!("[[plugins]]\nname = \"{name}\"\npath = {:?}\n", path.display().to_string()));
    }
    let cfg = project.write_config(&body);

    let crawl = |site: &'static str| {
        let cfg = cfg.clone();
        async move {
            let out = run_sitediff(&["crawl", site, "--config", &cfg, "--json"]).await;
            assert!(out.code == 0 || out.code == 1, "{site}: {}", out.stderr);
            (out.code, out.json())
        }
    };
    let clock = |j: &serde_json::Value| {
        j["page_results"].as_array().unwrap().iter().find(|p| p["key"] == "/clock.html").unwrap().clone()
    };

    for site in ["none", "wat", "c", "bad"] {
        crawl(site).await;
        assert_eq!(run_sitediff(&["approve", site, "--config", &cfg]).await.code, 0);
    }
    // Unchanged re-crawl: only the clock moved.
    let (code, j) = crawl("none").await;
    assert_eq!(code, 1, "without a plugin the live clock is a change");
    assert_eq!(clock(&j)["change"], "changed");
    for site in ["wat", "c"] {
        let (code, j) = crawl(site).await;
        assert_eq!(code, 0, "{site}: the mask plugin hides the clock: {j}");
        assert_eq!(clock(&j)["change"], "unchanged", "{site}");
    }
    // A trapping plugin fails its page with a named error; the rest of the crawl goes on.
    let (_, j) = crawl("bad").await;
    let p = clock(&j);
    assert_eq!(p["outcome"], "plugin_error", "{p}");
    let err = p["error"].as_str().unwrap();
    assert!(err.contains("trap") && err.contains("unreachable"), "{err}");
    assert_eq!(j["status"], "reviewing");
    let home = j["page_results"].as_array().unwrap().iter().find(|p| p["key"] == "/").unwrap();
    assert_eq!(home["outcome"], "ok");

    // A real change elsewhere on the page is still flagged with the masks on.
    srv.set("/p/clock.html", clock_page("A paragraph that really changed, with many more words in it."));
    for site in ["wat", "c"] {
        let (code, j) = crawl(site).await;
        assert_eq!(code, 1, "{site}: {j}");
        assert_eq!(clock(&j)["change"], "changed", "{site}");
    }
}

#[tokio::test]
async fn a_broken_plugin_fails_config_loading_with_its_name() {
    let project = TempProject::new();
    let bad = project.dir.path().join("bad.wat");
    std::fs::write(&bad, "(module (memory (export \"memory\") 1))").unwrap();
    let cfg = project.write_config(&format!(
        "[[sites]]\nname = \"s\"\nstart = \"http://127.0.0.1:9/\"\nplugins = [\"broken\"]\n\
         [[plugins]]\nname = \"broken\"\npath = {:?}\n",
        bad.display().to_string()
    ));
    let out = run_sitediff(&["crawl", "s", "--config", &cfg]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("broken") && out.stderr.contains("sitediff_abi_version"), "{}", out.stderr);
}
