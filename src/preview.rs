//! Small previews of stored captures, made with the `image` crate when a page is stored (on the
//! blocking pool, like the diff): a JPEG thumbnail of the top of the capture and, for a changed
//! page, a JPEG crop of the diff image around its first changed region. Both are content-addressed
//! artifacts like the PNGs (named by the page record, collected by retention). Only the rows a
//! preview shows are decoded, so a 30,000 px page costs no more than a short one.

use image::codecs::jpeg::JpegEncoder;

use crate::diff::{self, DiffError, Rect, RgbaImage};

/// Thumbnail size: the top of the page at 4:3, scaled to this width.
pub const THUMB_WIDTH: u32 = 160;
pub const THUMB_HEIGHT: u32 = 120;
/// Change preview size (a crop around the first changed region, scaled down to fit).
pub const CROP_WIDTH: u32 = 320;
pub const CROP_HEIGHT: u32 = 200;
/// Space kept around the changed region in a change preview, image pixels.
pub const CROP_MARGIN: u32 = 24;
/// The most rows a change preview's crop decodes: a region taller than that (a page changed
/// from top to bottom) is shown from its top, so a preview never costs more than this many rows.
pub const MAX_CROP_ROWS: u32 = 2_000;
/// JPEG quality of previews.
pub const JPEG_QUALITY: u8 = 70;

/// Errors of preview making.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("cannot read the {what} for its preview: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: DiffError,
    },
    #[error("cannot encode the {what} preview: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: image::ImageError,
    },
    #[error("the {what} is empty")]
    Empty { what: &'static str },
}

/// A JPEG thumbnail of the top of a PNG capture ([`THUMB_WIDTH`] x [`THUMB_HEIGHT`] at most).
pub fn thumbnail(png: &[u8]) -> Result<Vec<u8>, PreviewError> {
    const WHAT: &str = "capture";
    let (_, (width, _)) = read_rows(png, WHAT, 0, 0)?;
    let top = (width as u64 * u64::from(THUMB_HEIGHT) / u64::from(THUMB_WIDTH)).max(1) as u32;
    let (strip, _) = read_rows(png, WHAT, 0, top)?;
    scaled_jpeg(strip, THUMB_WIDTH, THUMB_HEIGHT, WHAT)
}

/// A JPEG crop of a diff image around `region` (with [`CROP_MARGIN`] around it, widened to the
/// preview's aspect where the image allows), scaled down to fit [`CROP_WIDTH`] x [`CROP_HEIGHT`].
pub fn change_crop(diff_png: &[u8], region: Rect) -> Result<Vec<u8>, PreviewError> {
    const WHAT: &str = "diff image";
    let (_, (width, height)) = read_rows(diff_png, WHAT, 0, 0)?;
    let window = crop_window(region, width, height);
    let (strip, _) = read_rows(diff_png, WHAT, window.y, window.y + window.height)?;
    let mut data = Vec::with_capacity(window.width as usize * window.height as usize * 4);
    for row in strip.data.chunks_exact((strip.width as usize * 4).max(1)) {
        data.extend_from_slice(&row[window.x as usize * 4..(window.x + window.width) as usize * 4]);
    }
    let crop = RgbaImage { width: window.width, height: strip.height, data };
    scaled_jpeg(crop, CROP_WIDTH, CROP_HEIGHT, WHAT)
}

/// The part of a `width` x `height` image a change preview shows for `region`: the region plus a
/// margin, grown to at least the preview's size (1:1) around its centre, kept inside the image.
pub fn crop_window(region: Rect, width: u32, height: u32) -> Rect {
    let grow = |start: u32, len: u32, min: u32, limit: u32| -> (u32, u32) {
        let want = (len + 2 * CROP_MARGIN).max(min).min(limit);
        let centre = u64::from(start) + u64::from(len) / 2;
        let start = centre.saturating_sub(u64::from(want) / 2).min(u64::from(limit - want)) as u32;
        (start, want)
    };
    let (x, w) = grow(region.x.min(width.saturating_sub(1)), region.width, CROP_WIDTH, width.max(1));
    let (mut y, mut h) =
        grow(region.y.min(height.saturating_sub(1)), region.height, CROP_HEIGHT, height.max(1));
    if h > MAX_CROP_ROWS {
        y = region.y.saturating_sub(CROP_MARGIN).min(height.saturating_sub(MAX_CROP_ROWS));
        h = MAX_CROP_ROWS;
    }
    Rect { x, y, width: w.min(width), height: h.min(height) }
}

fn read_rows(
    png: &[u8],
    what: &'static str,
    start: u32,
    end: u32,
) -> Result<(RgbaImage, (u32, u32)), PreviewError> {
    diff::decode_png_rows(png, what, start, end).map_err(|source| PreviewError::Decode { what, source })
}

/// Scale `img` down to fit `max_w` x `max_h` (never up; an area average, each source pixel
/// counted once) and encode it as JPEG over white. Only the small image is composited.
fn scaled_jpeg(img: RgbaImage, max_w: u32, max_h: u32, what: &'static str) -> Result<Vec<u8>, PreviewError> {
    if img.width == 0 || img.height == 0 {
        return Err(PreviewError::Empty { what });
    }
    let scale =
        (f64::from(max_w) / f64::from(img.width)).min(f64::from(max_h) / f64::from(img.height)).min(1.0);
    let (w, h) = (
        ((f64::from(img.width) * scale).round() as u32).max(1),
        ((f64::from(img.height) * scale).round() as u32).max(1),
    );
    let full =
        image::RgbaImage::from_raw(img.width, img.height, img.data).ok_or(PreviewError::Empty { what })?;
    let small = match (w, h) == full.dimensions() {
        true => full,
        false => image::imageops::thumbnail(&full, w, h),
    };
    let rgb: Vec<u8> = small
        .as_raw()
        .chunks_exact(4)
        .flat_map(|p| {
            let a = u16::from(p[3]);
            let over_white = |c: u8| ((u16::from(c) * a + 255 * (255 - a)) / 255) as u8;
            [over_white(p[0]), over_white(p[1]), over_white(p[2])]
        })
        .collect();
    let buf = image::RgbImage::from_raw(w, h, rgb).ok_or(PreviewError::Empty { what })?;
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode_image(&buf)
        .map_err(|source| PreviewError::Encode { what, source })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tall(width: u32, height: u32) -> Vec<u8> {
        let data =
            (0..width * height).flat_map(|i| [(i % 251) as u8, (i / width % 256) as u8, 90, 255]).collect();
        diff::encode_png(&RgbaImage { width, height, data }).unwrap()
    }

    fn size(jpeg: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).unwrap();
        (img.width(), img.height())
    }

    #[test]
    fn a_thumbnail_shows_the_top_of_a_tall_page_small() {
        let png = tall(1280, 20_000);
        let thumb = thumbnail(&png).unwrap();
        assert_eq!(size(&thumb), (THUMB_WIDTH, THUMB_HEIGHT));
        assert!(thumb.len() < 16 * 1024, "{} bytes", thumb.len());
        let short = thumbnail(&tall(100, 30)).unwrap();
        assert_eq!(size(&short), (100, 30), "never scaled up");
    }

    #[test]
    fn a_thumbnail_averages_what_it_shows_and_puts_transparency_on_white() {
        // Left half black, right half transparent, a red band across the top 80 rows.
        let (width, height) = (1280u32, 960u32);
        let data = (0..width * height)
            .flat_map(|i| match (i % width < width / 2, i / width < 80) {
                (_, true) => [255, 0, 0, 255],
                (true, false) => [0, 0, 0, 255],
                (false, false) => [0, 0, 0, 0],
            })
            .collect();
        let thumb = thumbnail(&diff::encode_png(&RgbaImage { width, height, data }).unwrap()).unwrap();
        let img = image::load_from_memory_with_format(&thumb, image::ImageFormat::Jpeg).unwrap().to_rgb8();
        let px = |x, y| img.get_pixel(x, y).0;
        let near = |p: [u8; 3], want: [u8; 3]| p.iter().zip(want).all(|(a, b)| a.abs_diff(b) < 40);
        assert!(near(px(20, 3), [255, 0, 0]), "red band {:?}", px(20, 3));
        assert!(near(px(20, 80), [0, 0, 0]), "black half {:?}", px(20, 80));
        assert!(near(px(140, 80), [255, 255, 255]), "transparent half on white {:?}", px(140, 80));
    }

    #[test]
    fn the_change_crop_is_around_the_region_and_inside_the_image() {
        let w = crop_window(Rect { x: 600, y: 15_000, width: 10, height: 10 }, 1280, 20_000);
        assert!(w.x <= 600 && w.x + w.width >= 610 && w.y <= 15_000 && w.y + w.height >= 15_010, "{w:?}");
        assert_eq!((w.width, w.height), (CROP_WIDTH, CROP_HEIGHT));
        let w = crop_window(Rect { x: 1270, y: 0, width: 10, height: 5 }, 1280, 100);
        assert_eq!(w, Rect { x: 1280 - CROP_WIDTH, y: 0, width: CROP_WIDTH, height: 100 });
        let big = crop_window(Rect { x: 0, y: 0, width: 1280, height: 900 }, 1280, 1000);
        assert_eq!(big, Rect { x: 0, y: 0, width: 1280, height: 948 });
        let whole = crop_window(Rect { x: 0, y: 50_000, width: 1280, height: 50_000 }, 1280, 100_000);
        assert_eq!(whole, Rect { x: 0, y: 50_000 - CROP_MARGIN, width: 1280, height: MAX_CROP_ROWS });
        let crop =
            change_crop(&tall(1280, 20_000), Rect { x: 600, y: 15_000, width: 10, height: 10 }).unwrap();
        assert_eq!(size(&crop), (CROP_WIDTH, CROP_HEIGHT));
    }
}
