//! Image formats besides PNG: JPEG and WebP are decoded whole with the `image` crate (PNG keeps the
//! streaming row decoder), and a row-range read of a PNG that stops decoding after the last row
//! asked for (thumbnails, strips of very tall pages).

use std::borrow::Cow;
use std::io::Cursor;

use super::codec::PngRows;
use super::{encode_png, DiffError, RgbaImage, MAX_PIXELS};

/// An input image's format, told by its first bytes (never by a file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    WebP,
}

impl ImageFormat {
    /// The format of `bytes`, or `None` for anything but PNG, JPEG and WebP.
    pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormat::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(ImageFormat::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageFormat::WebP)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Png => "PNG",
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::WebP => "WebP",
        }
    }

    fn to_image_crate(self) -> image::ImageFormat {
        match self {
            ImageFormat::Png => image::ImageFormat::Png,
            ImageFormat::Jpeg => image::ImageFormat::Jpeg,
            ImageFormat::WebP => image::ImageFormat::WebP,
        }
    }
}

/// Decode a PNG, JPEG or WebP image into RGBA8 (PNG through the engine's own decoder, so its pixels
/// are exactly the streaming path's).
pub fn decode_image(bytes: &[u8], name: &str) -> Result<RgbaImage, DiffError> {
    match ImageFormat::sniff(bytes) {
        Some(ImageFormat::Png) => PngRows::open(bytes, name)?.into_image(),
        Some(format) => decode_other(bytes, name, format),
        None => Err(DiffError::UnknownFormat { name: name.to_string() }),
    }
}

/// The bytes as PNG: PNG input as it is, JPEG and WebP decoded and re-encoded (uploads store PNG).
pub fn to_png<'a>(bytes: &'a [u8], name: &str) -> Result<Cow<'a, [u8]>, DiffError> {
    match ImageFormat::sniff(bytes) {
        Some(ImageFormat::Png) => Ok(Cow::Borrowed(bytes)),
        Some(format) => Ok(Cow::Owned(encode_png(&decode_other(bytes, name, format)?)?)),
        None => Err(DiffError::UnknownFormat { name: name.to_string() }),
    }
}

fn decode_other(bytes: &[u8], name: &str, format: ImageFormat) -> Result<RgbaImage, DiffError> {
    let err = |source| DiffError::Image {
        name: name.to_string(),
        format: format.as_str(),
        source: Box::new(source),
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format.to_image_crate());
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4);
    reader.limits(limits);
    let img = reader.decode().map_err(err)?.into_rgba8();
    let (width, height) = img.dimensions();
    Ok(RgbaImage { width, height, data: img.into_raw() })
}

/// Rows `start..end` of a PNG (clamped to its height), decoding no row past `end - 1`. Returns the
/// strip and the image's full size (width, height).
pub fn decode_png_rows(
    bytes: &[u8],
    name: &str,
    start: u32,
    end: u32,
) -> Result<(RgbaImage, (u32, u32)), DiffError> {
    let mut rows = PngRows::open(bytes, name)?;
    let (width, height) = (rows.width(), rows.height());
    let end = (end as usize).min(height);
    let start = (start as usize).min(end);
    let stride = width * 4;
    let mut data = vec![0u8; stride * (end - start)];
    let mut skip = vec![0u8; stride];
    for _ in 0..start {
        rows.read_into(&mut skip)?;
    }
    for row in data.chunks_exact_mut(stride.max(1)).take(end - start) {
        rows.read_into(row)?;
    }
    let strip = RgbaImage { width: width as u32, height: (end - start) as u32, data };
    Ok((strip, (width as u32, height as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RgbaImage {
        let (w, h) = (7u32, 5u32);
        let data = (0..w * h).flat_map(|i| [(i * 7) as u8, (i * 13) as u8, (i * 29) as u8, 255]).collect();
        RgbaImage { width: w, height: h, data }
    }

    #[test]
    fn webp_lossless_decodes_to_the_same_pixels_as_png() {
        let img = sample();
        let mut webp = Vec::new();
        let buf = image::RgbaImage::from_raw(img.width, img.height, img.data.clone()).unwrap();
        buf.write_to(&mut Cursor::new(&mut webp), image::ImageFormat::WebP).unwrap();
        assert_eq!(ImageFormat::sniff(&webp), Some(ImageFormat::WebP));
        assert_eq!(decode_image(&webp, "w").unwrap(), img);
        let png = to_png(&webp, "w").unwrap();
        assert_eq!(decode_image(&png, "p").unwrap(), img);
    }

    #[test]
    fn row_ranges_are_the_rows_of_the_whole_image() {
        let img = sample();
        let png = encode_png(&img).unwrap();
        let (strip, size) = decode_png_rows(&png, "p", 1, 3).unwrap();
        assert_eq!(size, (7, 5));
        assert_eq!(strip.height, 2);
        assert_eq!(strip.data, img.data[7 * 4..3 * 7 * 4]);
        let (strip, _) = decode_png_rows(&png, "p", 4, 99).unwrap();
        assert_eq!(strip.height, 1, "clamped to the height");
    }

    #[test]
    fn unknown_bytes_are_refused_by_name() {
        let e = decode_image(b"GIF89a....", "x.gif").unwrap_err();
        assert!(e.to_string().contains("x.gif"), "{e}");
    }
}
