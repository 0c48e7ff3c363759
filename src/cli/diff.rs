//! `sitediff diff A.png B.png`: compare two PNG, JPEG or WebP files with the pixelmatch-exact engine.
//! Exit 0 no differing pixel, 1 different, 2 error (returned as `Err`, printed by `main`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::cli::{EXIT_CHANGES, EXIT_OK};
use sitediff::diff::{self, DiffOptions, DiffOutcome, ImageSource};

/// Buffer of the diff image file writer.
const OUT_BUFFER: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// First (baseline) image.
    pub a: PathBuf,
    /// Second (new) image.
    pub b: PathBuf,
    /// Write the diff image (PNG) here: red changes, yellow anti-aliasing, the first image in grey.
    #[arg(long, value_name = "DIFF.png")]
    pub out: Option<PathBuf>,
    /// Per-pixel colour distance threshold, 0 to 1 (smaller is more sensitive).
    #[arg(long, default_value_t = diff::DEFAULT_THRESHOLD, value_parser = parse_threshold)]
    pub threshold: f64,
    /// Count anti-aliased pixels as changes.
    #[arg(long)]
    pub count_aa: bool,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Benchmark aid: after the normal run, compare N more times in process with both images already
    /// decoded (the daemon's warm path) and report the median on stderr.
    #[arg(long, value_name = "N", hide = true, default_value_t = 0)]
    pub repeat: usize,
}

fn parse_threshold(s: &str) -> Result<f64, String> {
    let t: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&t) {
        Ok(t)
    } else {
        Err("must be between 0 and 1".into())
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read image {}", path.display()))
}

pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let opts = DiffOptions { threshold: args.threshold, include_aa: args.count_aa, ..DiffOptions::default() };
    let (a, b) = std::thread::scope(|s| {
        let hb = s.spawn(|| read(&args.b));
        let a = read(&args.a);
        (a, hb.join().unwrap_or_else(|_| Err(anyhow::anyhow!("reader thread panicked"))))
    });
    let (a, b) = (a?, b?);
    let (na, nb) = (args.a.display().to_string(), args.b.display().to_string());
    // PNG pairs take the streaming path; JPEG and WebP (either side) are decoded whole first.
    let png = |bytes: &[u8]| diff::ImageFormat::sniff(bytes) == Some(diff::ImageFormat::Png);
    let decoded = match png(&a) && png(&b) {
        true => None,
        false => Some((diff::decode_image(&a, &na)?, diff::decode_image(&b, &nb)?)),
    };
    let (sa, sb) = match &decoded {
        None => (ImageSource::Png { bytes: &a, name: &na }, ImageSource::Png { bytes: &b, name: &nb }),
        Some((ia, ib)) => (ImageSource::Decoded(ia), ImageSource::Decoded(ib)),
    };
    let outcome = match &args.out {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create diff image {}", path.display()))?;
            let mut w = BufWriter::with_capacity(OUT_BUFFER, file);
            let o = diff::compare_sources(sa, sb, &opts, Some(&mut w))?;
            w.flush().with_context(|| format!("cannot write diff image {}", path.display()))?;
            o
        }
        None => diff::compare_sources(sa, sb, &opts, None)?,
    };
    if args.repeat > 0 {
        warm_repeat(&a, &b, &na, &nb, &opts, args.repeat, args.out.is_some())?;
    }
    report(&outcome, args)?;
    Ok(ExitCode::from(if outcome.diff_pixels == 0 { EXIT_OK } else { EXIT_CHANGES }))
}

/// Time the in-process comparison of already-decoded images (diff PNG into a reused buffer if asked).
fn warm_repeat(
    a: &[u8],
    b: &[u8],
    na: &str,
    nb: &str,
    opts: &DiffOptions,
    n: usize,
    with_png: bool,
) -> anyhow::Result<()> {
    let (ia, ib) = (diff::decode_image(a, na)?, diff::decode_image(b, nb)?);
    let mut buf = Vec::new();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        buf.clear();
        let t = Instant::now();
        let out: Option<&mut dyn Write> = if with_png { Some(&mut buf) } else { None };
        diff::compare_sources(ImageSource::Decoded(&ia), ImageSource::Decoded(&ib), opts, out)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    eprintln!("warm in-process median over {n}: {:.1} ms", times[n / 2]);
    Ok(())
}

fn report(o: &DiffOutcome, args: &DiffArgs) -> anyhow::Result<()> {
    if args.json {
        let mut v = serde_json::to_value(o)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("threshold".into(), args.threshold.into());
            m.insert("include_aa".into(), args.count_aa.into());
            if let Some(p) = &args.out {
                m.insert("diff_image".into(), p.display().to_string().into());
            }
        }
        println!("{v}");
    }
    let verdict = if o.diff_pixels == 0 { "identical (within threshold)" } else { "different" };
    let line = format!(
        "{verdict}: {} of {} pixels differ ({:.4}%), {} anti-aliased, {} region(s){}",
        o.diff_pixels,
        o.total_pixels,
        o.distortion * 100.0,
        o.aa_pixels,
        o.regions.len(),
        if o.size_changed { ", size changed" } else { "" }
    );
    // The human summary is the output (stdout), unless stdout carries the JSON.
    if args.json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(())
}
