//! Perceptual image diff (pixelmatch 7.2.0 semantics): differing-pixel count, distortion,
//! changed regions and an optional diff image. Pure: no I/O besides PNG (de)coding of buffers.

use serde::{Deserialize, Serialize};

/// pixelmatch's maximum YIQ delta (35215).
pub const MAX_YIQ_DELTA: f64 = 35215.0;
/// pixelmatch's default per-pixel threshold.
pub const DEFAULT_THRESHOLD: f64 = 0.1;

/// Errors of the diff module.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("cannot decode PNG {name}: {reason}")]
    Decode { name: String, reason: String },
    #[error("cannot encode PNG: {0}")]
    Encode(String),
    #[error("image {name} is too large: {width}x{height}")]
    TooLarge { name: String, width: u32, height: u32 },
}

/// An axis-aligned rectangle in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// An 8-bit RGBA image, rows top to bottom, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbaImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbaImage {
    pub fn new(width: u32, height: u32) -> RgbaImage {
        RgbaImage { width, height, data: vec![0; width as usize * height as usize * 4] }
    }
}

/// What to compare and what to produce.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Per-pixel colour distance threshold, 0..1 (pixelmatch `threshold`).
    pub threshold: f64,
    /// Count anti-aliased pixels as differences (pixelmatch `includeAA`).
    pub include_aa: bool,
    /// Produce a diff image.
    pub diff_image: bool,
    /// Rectangles excluded from the comparison.
    pub ignore: Vec<Rect>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions { threshold: DEFAULT_THRESHOLD, include_aa: false, diff_image: false, ignore: Vec::new() }
    }
}

/// The result of comparing two images.
#[derive(Debug, Clone, Serialize)]
pub struct DiffOutcome {
    pub diff_pixels: u64,
    pub total_pixels: u64,
    pub distortion: f64,
    pub size_changed: bool,
    pub regions: Vec<Rect>,
    #[serde(skip)]
    pub diff_image: Option<RgbaImage>,
}

/// Decode PNG bytes into RGBA8.
pub fn decode_png(bytes: &[u8], name: &str) -> Result<RgbaImage, DiffError> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| DiffError::Decode { name: name.to_string(), reason: e.to_string() })?
        .into_rgba8();
    let (width, height) = img.dimensions();
    Ok(RgbaImage { width, height, data: img.into_raw() })
}

/// Encode RGBA8 as PNG.
pub fn encode_png(img: &RgbaImage) -> Result<Vec<u8>, DiffError> {
    let mut out = Vec::new();
    let enc = image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    );
    image::ImageEncoder::write_image(enc, &img.data, img.width, img.height, image::ExtendedColorType::Rgba8)
        .map_err(|e| DiffError::Encode(e.to_string()))?;
    Ok(out)
}

/// Compare two PNG byte strings (identical bytes skip decoding).
pub fn compare_png(a: &[u8], b: &[u8], opts: &DiffOptions) -> Result<DiffOutcome, DiffError> {
    if a == b && !opts.diff_image {
        let img = png_dimensions(a, "a")?;
        let total = img.0 as u64 * img.1 as u64;
        return Ok(DiffOutcome {
            diff_pixels: 0,
            total_pixels: total,
            distortion: 0.0,
            size_changed: false,
            regions: Vec::new(),
            diff_image: None,
        });
    }
    let a = decode_png(a, "a")?;
    let b = decode_png(b, "b")?;
    Ok(compare(&a, &b, opts))
}

fn png_dimensions(bytes: &[u8], name: &str) -> Result<(u32, u32), DiffError> {
    let dec = png::Decoder::new(std::io::Cursor::new(bytes));
    let reader =
        dec.read_info().map_err(|e| DiffError::Decode { name: name.to_string(), reason: e.to_string() })?;
    let info = reader.info();
    Ok((info.width, info.height))
}

fn blend(c: f64, a: f64) -> f64 {
    255.0 + (c - 255.0) * a
}

fn rgb2y(r: f64, g: f64, b: f64) -> f64 {
    r * 0.29889531 + g * 0.58662247 + b * 0.11448223
}
fn rgb2i(r: f64, g: f64, b: f64) -> f64 {
    r * 0.59597799 - g * 0.27417610 - b * 0.32180189
}
fn rgb2q(r: f64, g: f64, b: f64) -> f64 {
    r * 0.21147017 - g * 0.52261711 + b * 0.31114694
}

/// pixelmatch 7.2.0 colour delta between two RGBA pixels.
fn color_delta(p1: [u8; 4], p2: [u8; 4], y_only: bool) -> f64 {
    let (mut r1, mut g1, mut b1, a1) = (p1[0] as f64, p1[1] as f64, p1[2] as f64, p1[3] as f64);
    let (mut r2, mut g2, mut b2, a2) = (p2[0] as f64, p2[1] as f64, p2[2] as f64, p2[3] as f64);
    if a1 < 255.0 {
        let a = a1 / 255.0;
        r1 = blend(r1, a);
        g1 = blend(g1, a);
        b1 = blend(b1, a);
    }
    if a2 < 255.0 {
        let a = a2 / 255.0;
        r2 = blend(r2, a);
        g2 = blend(g2, a);
        b2 = blend(b2, a);
    }
    let y = rgb2y(r1, g1, b1) - rgb2y(r2, g2, b2);
    if y_only {
        return y;
    }
    let i = rgb2i(r1, g1, b1) - rgb2i(r2, g2, b2);
    let q = rgb2q(r1, g1, b1) - rgb2q(r2, g2, b2);
    0.5053 * y * y + 0.299 * i * i + 0.1957 * q * q
}

fn pixel(img: &RgbaImage, x: u32, y: u32) -> Option<[u8; 4]> {
    if x < img.width && y < img.height {
        let i = (y as usize * img.width as usize + x as usize) * 4;
        Some([img.data[i], img.data[i + 1], img.data[i + 2], img.data[i + 3]])
    } else {
        None
    }
}

/// Compare two decoded images over the union of their sizes; area present in only one counts as changed.
/// (Straightforward reference implementation without anti-aliasing detection.)
pub fn compare(a: &RgbaImage, b: &RgbaImage, opts: &DiffOptions) -> DiffOutcome {
    let w = a.width.max(b.width);
    let h = a.height.max(b.height);
    let max_delta = MAX_YIQ_DELTA * opts.threshold * opts.threshold;
    let mut diff_pixels = 0u64;
    let mut total = 0u64;
    let mut out = opts.diff_image.then(|| RgbaImage::new(w, h));
    let mut bbox: Option<(u32, u32, u32, u32)> = None;
    for y in 0..h {
        for x in 0..w {
            if opts.ignore.iter().any(|r| x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height) {
                continue;
            }
            total += 1;
            let (pa, pb) = (pixel(a, x, y), pixel(b, x, y));
            let differs = match (pa, pb) {
                (Some(p), Some(q)) => p != q && color_delta(p, q, false).abs() > max_delta,
                _ => true,
            };
            if differs {
                diff_pixels += 1;
                bbox = Some(match bbox {
                    None => (x, y, x, y),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                });
            }
            if let Some(img) = out.as_mut() {
                let i = (y as usize * w as usize + x as usize) * 4;
                let px = if differs {
                    [255, 0, 0, 255]
                } else {
                    let p = pa.unwrap_or([255, 255, 255, 255]);
                    let g =
                        blend(rgb2y(p[0] as f64, p[1] as f64, p[2] as f64), 0.1 * p[3] as f64 / 255.0) as u8;
                    [g, g, g, 255]
                };
                img.data[i..i + 4].copy_from_slice(&px);
            }
        }
    }
    let regions = bbox
        .map(|(x0, y0, x1, y1)| vec![Rect { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 }])
        .unwrap_or_default();
    DiffOutcome {
        diff_pixels,
        total_pixels: total,
        distortion: if total == 0 { 0.0 } else { diff_pixels as f64 / total as f64 },
        size_changed: a.width != b.width || a.height != b.height,
        regions,
        diff_image: out,
    }
}
