//! Perceptual image diff with pixelmatch 7.2.0 semantics (exact counts and diff image): differing-pixel
//! count, distortion, changed regions and an optional diff image. Pure: no I/O besides PNG (de)coding
//! of buffers and writing the diff PNG to a caller-provided writer.
//!
//! Entry points:
//! - [`compare_png`] / [`compare_sources`]: PNG bytes (or decoded images) in; PNGs are decoded on two
//!   threads row chunk by row chunk and compared in lockstep, so a cold comparison costs little more
//!   than the decoding and never holds either image whole in memory.
//! - [`compare`]: two decoded images, compared in parallel bands (rayon).
//! - [`DecodedCache`]: keep decoded baselines across crawls; see its docs for the daemon pattern.
//!
//! Differences to pixelmatch, by design: images of different sizes are compared over their overlap
//! (exactly as pixelmatch would compare the two crops) and the rest of the union counts as changed;
//! ignored pixels (rectangles, [`IgnoreMask`]) are neither counted nor compared and are drawn grey.

mod cache;
mod codec;
mod engine;
mod formats;
mod group;
mod mask;
mod pipeline;
mod pixel;
mod regions;
mod stitch;

use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use cache::{content_key, DecodedCache};
pub use codec::PngRows;
pub use formats::{decode_image, decode_png_rows, to_png, ImageFormat};
pub use group::{change_signature, signature_rows};
pub use mask::IgnoreMask;
pub use regions::{MAX_REGIONS, MERGE_GAP};
pub use stitch::{exact_difference, stitch_png};

/// pixelmatch's maximum YIQ delta (35215).
pub const MAX_YIQ_DELTA: f64 = 35215.0;
/// pixelmatch's default per-pixel threshold.
pub const DEFAULT_THRESHOLD: f64 = 0.1;
/// Largest image (pixels) accepted.
pub const MAX_PIXELS: u64 = 1 << 31;

/// Errors of the diff module. `name` is the input's name as given with its [`ImageSource`] (a file
/// path, a URL, "baseline" ...).
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The PNG decoder rejected an input.
    #[error("cannot decode PNG {name}: {source}")]
    Decode {
        name: String,
        #[source]
        source: png::DecodingError,
    },
    /// A PNG the decoder read but this engine cannot use (a pixel format it does not convert, a size
    /// that overflows, image data that ends early); no underlying error value.
    #[error("cannot decode PNG {name}: {reason}")]
    Unusable { name: String, reason: String },
    /// An input's decoder thread ended without handing over its rows.
    #[error("cannot decode PNG {name}: decoder stopped")]
    DecoderStopped {
        name: String,
        #[source]
        source: std::sync::mpsc::RecvError,
    },
    /// The PNG encoder failed ([`encode_png`]).
    #[error("cannot encode PNG: {source}")]
    Encode {
        #[source]
        source: png::EncodingError,
    },
    /// Writing the streamed diff image to the caller's writer failed.
    #[error("cannot encode PNG: {source}")]
    WriteDiff {
        #[source]
        source: std::io::Error,
    },
    /// A diff image was asked for two empty images (a PNG cannot be 0 pixels wide or high).
    #[error("cannot encode PNG: cannot write a diff image of an empty image")]
    EmptyDiff,
    #[error("image {name} is too large: {width}x{height}")]
    TooLarge { name: String, width: u32, height: u32 },
    /// Tiles of one page that cannot be stitched (none, or of different widths).
    #[error("cannot stitch the tiles of {name}: {reason}")]
    Stitch { name: String, reason: String },
    /// A JPEG or WebP input the `image` crate could not decode.
    #[error("cannot decode {format} {name}: {source}")]
    Image {
        name: String,
        format: &'static str,
        #[source]
        source: Box<image::ImageError>,
    },
    /// An input that is neither PNG, JPEG nor WebP.
    #[error("cannot decode {name}: not a PNG, JPEG or WebP image")]
    UnknownFormat { name: String },
    #[error("ignore mask has {got} pixels, expected {expected}")]
    MaskSize { expected: usize, got: usize },
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

    /// Bytes held (for cache accounting).
    pub fn byte_size(&self) -> usize {
        self.data.len()
    }
}

/// What to compare and what to produce.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Per-pixel colour distance threshold, 0..1 (pixelmatch `threshold`).
    pub threshold: f64,
    /// Count anti-aliased pixels as differences (pixelmatch `includeAA`).
    pub include_aa: bool,
    /// Produce the diff image as RGBA ([`DiffOutcome::diff_image`]).
    pub diff_image: bool,
    /// Produce the diff image as PNG bytes ([`DiffOutcome::diff_png`]); streamed while comparing.
    pub diff_png: bool,
    /// Rectangles excluded from the comparison.
    pub ignore: Vec<Rect>,
    /// Pixels excluded from the comparison (e.g. from plugins), in union-image coordinates.
    pub ignore_mask: Option<Arc<IgnoreMask>>,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            threshold: DEFAULT_THRESHOLD,
            include_aa: false,
            diff_image: false,
            diff_png: false,
            ignore: Vec::new(),
            ignore_mask: None,
        }
    }
}

/// The result of comparing two images.
#[derive(Debug, Clone, Serialize)]
pub struct DiffOutcome {
    /// Pixels counted as changed (pixelmatch's return value, plus extra area and minus ignored).
    pub diff_pixels: u64,
    /// Pixels above the threshold but excluded as anti-aliasing (0 with `include_aa`).
    pub aa_pixels: u64,
    /// Compared pixels: the union of both sizes minus ignored pixels.
    pub total_pixels: u64,
    /// `diff_pixels / total_pixels` (0 when nothing was compared).
    pub distortion: f64,
    pub size_changed: bool,
    /// Size of the union (and of the diff image).
    pub width: u32,
    pub height: u32,
    /// Bounding boxes of changed pixels, nearby ones merged, top to bottom, at most `MAX_REGIONS`.
    pub regions: Vec<Rect>,
    #[serde(skip)]
    pub diff_image: Option<RgbaImage>,
    #[serde(skip)]
    pub diff_png: Option<Vec<u8>>,
}

/// One side of a comparison.
#[derive(Debug, Clone, Copy)]
pub enum ImageSource<'a> {
    /// PNG bytes; `name` appears in errors.
    Png { bytes: &'a [u8], name: &'a str },
    /// An already decoded image (e.g. a cached baseline).
    Decoded(&'a RgbaImage),
}

/// Decode PNG bytes into RGBA8 (pngjs conventions: grey expanded, 16-bit rounded, colour-key
/// transparent pixels zeroed).
pub fn decode_png(bytes: &[u8], name: &str) -> Result<RgbaImage, DiffError> {
    codec::PngRows::open(bytes, name)?.into_image()
}

/// Encode RGBA8 as PNG.
pub fn encode_png(img: &RgbaImage) -> Result<Vec<u8>, DiffError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, img.width, img.height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let encode = |source| DiffError::Encode { source };
    let mut w = enc.write_header().map_err(encode)?;
    w.write_image_data(&img.data).map_err(encode)?;
    w.finish().map_err(encode)?;
    Ok(out)
}

/// Compare two sources. Identical PNG bytes return without decoding (unless a diff image is wanted).
/// With `png_out`, the diff image is written there as a palette PNG while comparing (pixel-identical to
/// pixelmatch's); `opts.diff_png` is then ignored. `opts.diff_image` still yields the RGBA image.
pub fn compare_sources(
    a: ImageSource<'_>,
    b: ImageSource<'_>,
    opts: &DiffOptions,
    png_out: Option<&mut dyn Write>,
) -> Result<DiffOutcome, DiffError> {
    match png_out {
        Some(w) => pipeline::run(a, b, opts, Some(w)),
        None if opts.diff_png => {
            let mut buf = Vec::new();
            let mut outcome = pipeline::run(a, b, opts, Some(&mut buf))?;
            outcome.diff_png = Some(buf);
            Ok(outcome)
        }
        None => pipeline::run(a, b, opts, None),
    }
}

/// Compare two PNG byte strings (identical bytes skip decoding).
pub fn compare_png(a: &[u8], b: &[u8], opts: &DiffOptions) -> Result<DiffOutcome, DiffError> {
    compare_sources(
        ImageSource::Png { bytes: a, name: "a" },
        ImageSource::Png { bytes: b, name: "b" },
        opts,
        None,
    )
}

/// Compare two decoded images over the union of their sizes, in parallel bands; area present in only
/// one counts as changed. Rows missing from a short `data` buffer count as absent. Fills
/// `diff_image` if asked; for `diff_png` use [`compare_sources`] with [`ImageSource::Decoded`].
pub fn compare(a: &RgbaImage, b: &RgbaImage, opts: &DiffOptions) -> DiffOutcome {
    pipeline::run_decoded(a, b, opts)
}

#[cfg(test)]
mod tests;
