//! `sitediff diff` end to end: the real binary on checked-in pairs (exit codes, JSON shape, diff image
//! equal to pixelmatch 7.2.0's, error messages) and one exact count on a shared benchmark pair.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sitediff::diff::decode_png;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diff").join(name)
}

fn sitediff(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sitediff")).arg("diff").args(args).output().expect("run sitediff")
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

#[test]
fn different_pair_exits_1_with_json_and_pixelmatch_identical_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let diff_png = dir.path().join("d.png");
    let (a, b) = (fixture("text-a.png"), fixture("text-b.png"));
    let out = sitediff(&[os(&a), os(&b), os("--json"), os("--out"), os(&diff_png)]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["diff_pixels"], 323);
    assert_eq!(v["total_pixels"], 240 * 72);
    assert_eq!(v["size_changed"], false);
    assert!((v["distortion"].as_f64().expect("number") - 323.0 / 17280.0).abs() < 1e-12);
    let regions = v["regions"].as_array().expect("regions array");
    assert!(!regions.is_empty() && regions.iter().all(|r| r["width"].as_u64() > Some(0)));
    let ours = decode_png(&std::fs::read(&diff_png).expect("diff written"), "ours").expect("valid PNG");
    let want =
        decode_png(&std::fs::read(fixture("text-pixelmatch-diff.png")).expect("fixture"), "pm").expect("png");
    assert_eq!(ours, want);
    assert!(String::from_utf8_lossy(&out.stderr).contains("323 of 17280"));

    let aa = sitediff(&[os(&a), os(&b), os("--json"), os("--count-aa")]);
    assert_eq!(json(&aa)["diff_pixels"], 761);
    let loose = sitediff(&[os(&a), os(&b), os("--json"), os("--threshold"), os("1")]);
    assert!(json(&loose)["diff_pixels"].as_u64() < Some(323));
}

#[test]
fn same_image_exits_0() {
    let a = fixture("alpha-a.png");
    let copy = tempfile::tempdir().expect("tempdir");
    let b = copy.path().join("same.png");
    std::fs::copy(&a, &b).expect("copy");
    let out = sitediff(&[os(&a), os(&b), os("--json")]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["diff_pixels"], 0);
}

#[test]
fn size_change_is_reported() {
    let out = sitediff(&[os(&fixture("text-a.png")), os(&fixture("alpha-b.png")), os("--json")]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["size_changed"], true);
    assert_eq!(v["total_pixels"], 240 * 72);
    // Everything outside the 67x45 overlap is changed.
    assert!(v["diff_pixels"].as_u64() >= Some(240 * 72 - 67 * 45));
}

#[test]
fn unreadable_inputs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.png");
    let out = sitediff(&[os(&missing), os(&fixture("text-a.png"))]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read image") && err.contains("missing.png"), "{err}");

    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"definitely not a PNG").expect("write");
    let out = sitediff(&[os(&fixture("text-a.png")), os(&junk)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot decode") && err.contains("not a PNG, JPEG or WebP") && err.contains("junk.png"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = sitediff(&[os(&fixture("text-a.png")), os(&fixture("text-b.png")), os("--threshold"), os("7")]);
    assert_eq!(out.status.code(), Some(2));
}

/// The shared benchmark pairs: `$SITEDIFF_BENCH_DIR`, or `shared/bench` beside the repository (as
/// CI lays it out). Missing pairs fail the test: an exactness check that cannot run must not pass.
fn bench_dir() -> PathBuf {
    match std::env::var_os("SITEDIFF_BENCH_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench"),
    }
}

/// Exact pixelmatch count on the smallest real pair of the shared benchmark set.
#[test]
fn rustbook_pair_matches_pixelmatch_exactly() {
    let bench = bench_dir();
    let reference = std::fs::read_to_string(bench.join("reference.json")).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; the shared benchmark pairs belong beside the repository \
             (../shared/bench) or in the directory SITEDIFF_BENCH_DIR names",
            bench.join("reference.json").display()
        )
    });
    let r: serde_json::Value = serde_json::from_str(&reference).expect("reference.json");
    let (a, b) = (bench.join("rustbook-a.png"), bench.join("rustbook-b.png"));
    for p in [&a, &b] {
        assert!(p.is_file(), "benchmark image {} is missing", p.display());
    }
    let want = &r["pairs"]["rustbook"];
    assert!(want["pixelmatch_aa_excluded"].is_u64(), "reference.json has no rustbook counts: {r}");
    let v = json(&sitediff(&[os(&a), os(&b), os("--json")]));
    assert_eq!(v["diff_pixels"], want["pixelmatch_aa_excluded"]);
    let v = json(&sitediff(&[os(&a), os(&b), os("--json"), os("--count-aa")]));
    assert_eq!(v["diff_pixels"], want["pixelmatch_aa_counted"]);
}
