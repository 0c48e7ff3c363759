//! Unit and property tests of the diff engine: exactness against pixelmatch 7.2.0 fixtures and a
//! naive whole-image port, streaming vs in-memory agreement, and the properties.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::pixel::{self, Rows};
use super::*;

const TEXT_A: &[u8] = include_bytes!("../../tests/fixtures/diff/text-a.png");
const TEXT_B: &[u8] = include_bytes!("../../tests/fixtures/diff/text-b.png");
const TEXT_PM: &[u8] = include_bytes!("../../tests/fixtures/diff/text-pixelmatch-diff.png");
const ALPHA_A: &[u8] = include_bytes!("../../tests/fixtures/diff/alpha-a.png");
const ALPHA_B: &[u8] = include_bytes!("../../tests/fixtures/diff/alpha-b.png");
const ALPHA_PM: &[u8] = include_bytes!("../../tests/fixtures/diff/alpha-pixelmatch-diff.png");

/// A whole decoded image as row access (for the kernel over whole images).
struct Full<'a>(&'a RgbaImage);

impl Rows for Full<'_> {
    fn row(&self, y: usize) -> &[u8] {
        let s = self.0.width as usize * 4;
        &self.0.data[y * s..(y + 1) * s]
    }
}

/// The test oracle: pixelmatch 7.2.0's `antialiased` ported line by line over flat RGBA buffers
/// (JavaScript's indexing, no row access, no prefetching), independent of the production kernel
/// `pixel::aa_either` it checks. Only the per-pixel arithmetic (`brightness_delta`, tested against
/// node's values in `pixel`) is shared.
mod oracle {
    use super::pixel::brightness_delta;

    fn px(img: &[u8], i: usize) -> [u8; 4] {
        [img[i * 4], img[i * 4 + 1], img[i * 4 + 2], img[i * 4 + 3]]
    }

    pub(super) fn antialiased(
        img: &[u8],
        x1: usize,
        y1: usize,
        w: usize,
        h: usize,
        a: &[u8],
        b: &[u8],
    ) -> bool {
        let (x0, y0) = (x1.saturating_sub(1), y1.saturating_sub(1));
        let (x2, y2) = ((x1 + 1).min(w - 1), (y1 + 1).min(h - 1));
        let pos = y1 * w + x1;
        let mut zeroes = u32::from(x1 == x0 || x1 == x2 || y1 == y0 || y1 == y2);
        let (mut min, mut max) = (0.0f64, 0.0f64);
        let (mut min_x, mut min_y, mut max_x, mut max_y) = (0, 0, 0, 0);
        for x in x0..=x2 {
            for y in y0..=y2 {
                if x == x1 && y == y1 {
                    continue;
                }
                let delta = brightness_delta(px(img, pos), px(img, y * w + x), pos * 4);
                if delta == 0.0 {
                    zeroes += 1;
                    if zeroes > 2 {
                        return false;
                    }
                } else if delta < min {
                    (min, min_x, min_y) = (delta, x, y);
                } else if delta > max {
                    (max, max_x, max_y) = (delta, x, y);
                }
            }
        }
        if min == 0.0 || max == 0.0 {
            return false;
        }
        (has_many_siblings(a, min_x, min_y, w, h) && has_many_siblings(b, min_x, min_y, w, h))
            || (has_many_siblings(a, max_x, max_y, w, h) && has_many_siblings(b, max_x, max_y, w, h))
    }

    fn has_many_siblings(img: &[u8], x1: usize, y1: usize, w: usize, h: usize) -> bool {
        let (x0, y0) = (x1.saturating_sub(1), y1.saturating_sub(1));
        let (x2, y2) = ((x1 + 1).min(w - 1), (y1 + 1).min(h - 1));
        let val = px(img, y1 * w + x1);
        let mut zeroes = u32::from(x1 == x0 || x1 == x2 || y1 == y0 || y1 == y2);
        for x in x0..=x2 {
            for y in y0..=y2 {
                if x == x1 && y == y1 {
                    continue;
                }
                zeroes += u32::from(val == px(img, y * w + x));
                if zeroes > 2 {
                    return true;
                }
            }
        }
        false
    }
}

/// Straight port of pixelmatch 7.2.0's main loop over two equally sized whole images (with the
/// oracle's anti-aliasing test).
fn naive(a: &RgbaImage, b: &RgbaImage, threshold: f64, include_aa: bool) -> (u64, Vec<u8>) {
    let (w, h) = (a.width as usize, a.height as usize);
    let max = pixel::max_delta(threshold);
    let (da, db) = (&a.data[..], &b.data[..]);
    let mut out = vec![0u8; w * h * 4];
    let mut diff = 0;
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 4;
            let pa = [a.data[i], a.data[i + 1], a.data[i + 2], a.data[i + 3]];
            let pb = [b.data[i], b.data[i + 1], b.data[i + 2], b.data[i + 3]];
            let delta = if pa == pb { 0.0 } else { pixel::color_delta(pa, pb, i) };
            let px = if delta > max {
                if !include_aa
                    && (oracle::antialiased(da, x, y, w, h, da, db)
                        || oracle::antialiased(db, x, y, w, h, db, da))
                {
                    [255, 255, 0, 255]
                } else {
                    diff += 1;
                    [255, 0, 0, 255]
                }
            } else {
                let g = pixel::grey_index(pa);
                [g, g, g, 255]
            };
            out[i..i + 4].copy_from_slice(&px);
        }
    }
    (diff, out)
}

/// A web-like image: flat blocks, hard and soft (anti-aliased) edges, some translucency.
fn page(rng: &mut StdRng, w: u32, h: u32, translucent: bool) -> RgbaImage {
    let mut img = RgbaImage::new(w, h);
    img.data.iter_mut().for_each(|v| *v = 255);
    for _ in 0..(w * h / 200).max(3) {
        let (bw, bh) = (rng.random_range(1..w.min(40) + 1), rng.random_range(1..h.min(12) + 1));
        let (x0, y0) = (rng.random_range(0..w), rng.random_range(0..h));
        let c = [rng.random::<u8>(), rng.random::<u8>(), rng.random::<u8>()];
        let a = if translucent && rng.random_bool(0.3) { rng.random::<u8>() } else { 255 };
        for y in y0..(y0 + bh).min(h) {
            for x in x0..(x0 + bw).min(w) {
                let i = ((y * w + x) * 4) as usize;
                let edge = x == x0 || y == y0;
                let k = if edge { 2 } else { 1 };
                for (ch, &cv) in c.iter().enumerate() {
                    img.data[i + ch] = ((img.data[i + ch] as u32 * (k - 1) + cv as u32) / k) as u8;
                }
                img.data[i + 3] = a;
            }
        }
    }
    img
}

/// `img` with scattered changes: small colour shifts, strong changes, a moved strip.
fn mutate(rng: &mut StdRng, img: &RgbaImage) -> RgbaImage {
    let mut out = img.clone();
    let n = out.data.len() / 4;
    for _ in 0..(n / 50).max(2) {
        let i = rng.random_range(0..n) * 4;
        let ch = rng.random_range(0..4);
        let d: u8 = if rng.random_bool(0.5) { rng.random_range(1..12) } else { rng.random() };
        out.data[i + ch] = out.data[i + ch].wrapping_add(d);
    }
    // Shift a horizontal strip by one pixel (creates anti-aliasing-like edges).
    let (w, h) = (img.width as usize, img.height as usize);
    if w > 2 && h > 2 {
        let y0 = rng.random_range(0..h - 1);
        for y in y0..(y0 + 5).min(h) {
            let row = &mut out.data[y * w * 4..(y + 1) * w * 4];
            row.rotate_right(4);
        }
    }
    out
}

fn opts(threshold: f64, include_aa: bool) -> DiffOptions {
    DiffOptions { threshold, include_aa, ..DiffOptions::default() }
}

#[test]
fn fixtures_match_pixelmatch_counts_and_image() {
    for (a, b, pm, excluded, counted) in
        [(TEXT_A, TEXT_B, TEXT_PM, 323, 761), (ALPHA_A, ALPHA_B, ALPHA_PM, 219, 219)]
    {
        let o = compare_png(a, b, &DiffOptions { diff_image: true, diff_png: true, ..opts(0.1, false) })
            .expect("compare");
        assert_eq!(o.diff_pixels, excluded);
        assert_eq!(o.diff_pixels + o.aa_pixels, counted);
        let want = decode_png(pm, "pixelmatch").expect("reference image");
        assert_eq!(o.diff_image.as_ref().expect("rgba"), &want);
        let png = decode_png(o.diff_png.as_deref().expect("png"), "ours").expect("our png decodes");
        assert_eq!(png, want);
        assert_eq!(compare_png(a, b, &opts(0.1, true)).expect("compare").diff_pixels, counted);
    }
}

#[test]
fn antialiased_text_edges_are_not_counted_by_default() {
    let strict = compare_png(TEXT_A, TEXT_B, &opts(0.1, true)).expect("compare");
    let default = compare_png(TEXT_A, TEXT_B, &opts(0.1, false)).expect("compare");
    assert!(default.aa_pixels > 0 && default.diff_pixels < strict.diff_pixels);
    // The 6x5 red box is a real change and stays in.
    assert!(default
        .regions
        .iter()
        .any(|r| r.x <= 200 && r.x + r.width >= 206 && r.y <= 50 && r.y + r.height >= 55));
}

#[test]
fn engine_equals_naive_port_streaming_and_in_memory() {
    let mut rng = StdRng::seed_from_u64(7);
    // Sizes chosen so the streaming path uses several chunks (chunk rows depend on width).
    for (w, h, translucent) in
        [(1, 1, false), (3, 2, true), (37, 29, true), (700, 520, false), (300, 1000, true)]
    {
        let a = page(&mut rng, w, h, translucent);
        let b = mutate(&mut rng, &a);
        for (t, aa) in [(0.1, false), (0.1, true), (0.0, false), (0.3, false)] {
            let (want, want_img) = naive(&a, &b, t, aa);
            let o = compare(&a, &b, &DiffOptions { diff_image: true, ..opts(t, aa) });
            assert_eq!(o.diff_pixels, want, "{w}x{h} t={t} aa={aa} in memory");
            assert_eq!(o.diff_image.as_ref().map(|i| &i.data), Some(&want_img), "{w}x{h} image");
            let (pa, pb) = (encode_png(&a).expect("enc"), encode_png(&b).expect("enc"));
            let s = compare_png(&pa, &pb, &DiffOptions { diff_image: true, ..opts(t, aa) }).expect("stream");
            assert_eq!(s.diff_pixels, want, "{w}x{h} t={t} aa={aa} streaming");
            assert_eq!(s.diff_image.map(|i| i.data), Some(want_img), "{w}x{h} streamed image");
            let mixed = compare_sources(
                ImageSource::Decoded(&a),
                ImageSource::Png { bytes: &pb, name: "b" },
                &opts(t, aa),
                None,
            )
            .expect("mixed");
            assert_eq!(mixed.diff_pixels, want, "{w}x{h} decoded vs PNG");
            assert_eq!(mixed.regions, o.regions);
        }
    }
}

/// The one anti-aliasing kernel, over whole images and over prefetched neighbourhoods, agrees with
/// the oracle at every pixel (including borders and translucent pixels), whether or not it differs.
#[test]
fn aa_kernel_equals_oracle_over_every_row_access() {
    let mut rng = StdRng::seed_from_u64(11);
    for (w, h, translucent) in
        [(1, 1, false), (2, 3, true), (5, 1, false), (1, 6, true), (41, 33, true), (64, 48, false)]
    {
        let a = page(&mut rng, w, h, translucent);
        let b = mutate(&mut rng, &a);
        let (wu, hu) = (w as usize, h as usize);
        let (fa, fb) = (Full(&a), Full(&b));
        let mut found = 0;
        for y in 0..hu {
            let (na, nb) = (pixel::Hood::around(&fa, y, hu), pixel::Hood::around(&fb, y, hu));
            for x in 0..wu {
                let want = oracle::antialiased(&a.data, x, y, wu, hu, &a.data, &b.data)
                    || oracle::antialiased(&b.data, x, y, wu, hu, &b.data, &a.data);
                assert_eq!(
                    pixel::aa_either(&fa, &fb, x, y, wu, hu),
                    want,
                    "{w}x{h} whole image at ({x}, {y})"
                );
                assert_eq!(
                    pixel::aa_either(&na, &nb, x, y, wu, hu),
                    want,
                    "{w}x{h} neighbourhood at ({x}, {y})"
                );
                found += usize::from(want);
            }
        }
        assert!(w < 40 || found > 0, "{w}x{h}: the images exercise the anti-aliasing branch");
    }
}

#[test]
fn identical_inputs_give_zero() {
    let mut rng = StdRng::seed_from_u64(1);
    let a = page(&mut rng, 50, 40, true);
    let png = encode_png(&a).expect("enc");
    let o =
        compare_png(&png, &png.clone(), &DiffOptions { diff_image: true, ..opts(0.0, true) }).expect("same");
    assert_eq!((o.diff_pixels, o.total_pixels, o.regions.len()), (0, 2000, 0));
    // Same bytes still draw pixelmatch's grey image when asked.
    assert_eq!(o.diff_image.map(|i| i.data), Some(naive(&a, &a, 0.0, true).1));
    assert_eq!(compare(&a, &a.clone(), &opts(0.0, true)).diff_pixels, 0);
}

#[test]
fn counts_are_symmetric_and_threshold_monotone() {
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..4 {
        let a = page(&mut rng, 120, 90, true);
        let b = mutate(&mut rng, &a);
        for aa in [false, true] {
            let mut last = u64::MAX;
            for t in [0.0, 0.05, 0.1, 0.2, 0.5, 1.0] {
                let ab = compare(&a, &b, &opts(t, aa)).diff_pixels;
                assert_eq!(ab, compare(&b, &a, &opts(t, aa)).diff_pixels, "symmetric at {t}");
                assert!(ab <= last, "monotone at {t}");
                last = ab;
            }
        }
    }
}

#[test]
fn one_pixel_change_is_found() {
    let mut a = RgbaImage::new(64, 64);
    a.data.iter_mut().for_each(|v| *v = 255);
    let mut b = a.clone();
    let i = (40 * 64 + 17) * 4;
    b.data[i..i + 3].copy_from_slice(&[0, 0, 0]);
    let o = compare(&a, &b, &DiffOptions::default());
    assert_eq!(o.diff_pixels, 1);
    assert_eq!(o.regions, vec![Rect { x: 17, y: 40, width: 1, height: 1 }]);
    assert!((o.distortion - 1.0 / 4096.0).abs() < 1e-12);
}

#[test]
fn size_change_counts_the_extra_area() {
    let mut rng = StdRng::seed_from_u64(5);
    let a = page(&mut rng, 30, 20, false);
    let mut b = RgbaImage::new(34, 25);
    for y in 0..20 {
        b.data[y * 34 * 4..y * 34 * 4 + 120].copy_from_slice(&a.data[y * 120..(y + 1) * 120]);
    }
    let o = compare(&a, &b, &DiffOptions { diff_image: true, ..DiffOptions::default() });
    let extra = 34 * 25 - 30 * 20;
    assert!(o.size_changed);
    assert_eq!((o.diff_pixels, o.total_pixels, o.width, o.height), (extra, 34 * 25, 34, 25));
    let img = o.diff_image.expect("image");
    assert_eq!(&img.data[(24 * 34 + 33) * 4..][..4], &[255, 0, 0, 255]);
    // The same through PNG streaming, in both orders.
    let (pa, pb) = (encode_png(&a).expect("enc"), encode_png(&b).expect("enc"));
    assert_eq!(compare_png(&pa, &pb, &DiffOptions::default()).expect("s").diff_pixels, extra);
    assert_eq!(compare_png(&pb, &pa, &DiffOptions::default()).expect("s").diff_pixels, extra);
}

#[test]
fn ignore_rects_and_masks_are_excluded() {
    let mut rng = StdRng::seed_from_u64(9);
    let a = page(&mut rng, 80, 60, false);
    let mut b = a.clone();
    b.data.iter_mut().for_each(|v| *v = v.wrapping_add(128)); // everything changes
    let all = compare(&a, &b, &opts(0.1, true)).diff_pixels;
    let rect = Rect { x: 10, y: 5, width: 20, height: 10 };
    let mut mask = IgnoreMask::new(80, 60);
    mask.set_rect(Rect { x: 0, y: 50, width: 80, height: 10 });
    mask.set_rect(rect); // overlaps the rectangle: counted once
    let o = compare(
        &a,
        &b,
        &DiffOptions { ignore: vec![rect], ignore_mask: Some(Arc::new(mask)), ..opts(0.1, true) },
    );
    assert_eq!(o.total_pixels, 4800 - 200 - 800);
    assert_eq!(all - o.diff_pixels, (4800 - o.total_pixels).min(all));
    let (pa, pb) = (encode_png(&a).expect("enc"), encode_png(&b).expect("enc"));
    let s = compare_png(&pa, &pb, &DiffOptions { ignore: vec![rect], ..opts(0.1, true) }).expect("s");
    assert_eq!(s.total_pixels, 4800 - 200);
}

#[test]
fn decode_errors_name_the_input_and_keep_the_cause() {
    use std::error::Error as _;
    let err = compare_png(b"nope", TEXT_A, &DiffOptions::default()).expect_err("bad png");
    assert!(err.to_string().contains("cannot decode PNG a"), "{err}");
    assert!(matches!(&err, DiffError::Decode { name, .. } if name == "a"), "{err:?}");
    let cause = err.source().expect("the decoder's error is kept as the source");
    assert!(cause.downcast_ref::<png::DecodingError>().is_some());
    let truncated = &TEXT_B[..TEXT_B.len() / 2];
    let err = compare_png(TEXT_A, truncated, &DiffOptions::default()).expect_err("truncated png");
    assert!(err.to_string().contains("cannot decode PNG b"), "{err}");
}

/// A writer that fails after `left` bytes.
struct FailingWriter {
    left: usize,
}

impl std::io::Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full"));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn diff_image_write_errors_keep_the_io_error() {
    use std::error::Error as _;
    // Failing in the header, in the palette, in the image data.
    for left in [0, 100, 1000] {
        let mut w = FailingWriter { left };
        let err = compare_sources(
            ImageSource::Png { bytes: TEXT_A, name: "a" },
            ImageSource::Png { bytes: TEXT_B, name: "b" },
            &DiffOptions::default(),
            Some(&mut w),
        )
        .expect_err("the writer fails");
        assert!(err.to_string().contains("disk full"), "{err}");
        let io =
            err.source().and_then(|c| c.downcast_ref::<std::io::Error>()).expect("io::Error as the source");
        assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
    }
}
