//! Pure helpers on shots and measurements: the height to capture, measured rectangles clipped to
//! whole pixels, a PNG's size, what changed between two consecutive shots, and the vertical tiles a
//! tall page is shot in.

use crate::diff::{exact_difference, Rect};

/// Smallest screenshot height we ask for (an empty page still yields an image).
const MIN_CAPTURE_HEIGHT: u32 = 1;
/// Tallest single `captureBeyondViewport` shot: a page taller than this is shot in vertical tiles of
/// this height (the last one shorter), each a clipped shot of the whole-page layout, stitched into
/// one image. One shot of a whole 1280-px-wide, 100,000-px page comes out blank below ~86,600 px
/// (Chromium's surface limit, Playwright's `fullPage` alike); 16,384 px is Chromium's usual texture
/// limit and keeps every tile well inside it.
pub const TILE_HEIGHT: u32 = 16_384;

/// The vertical tiles (`(top, height)`, page px) a shot `height` px tall is taken in: one when it
/// fits in [`TILE_HEIGHT`].
pub fn tiles(height: u32) -> Vec<(u32, u32)> {
    let height = height.max(MIN_CAPTURE_HEIGHT);
    (0..height.div_ceil(TILE_HEIGHT))
        .map(|i| {
            let top = i * TILE_HEIGHT;
            (top, TILE_HEIGHT.min(height - top))
        })
        .collect()
}

/// The height to capture and whether the page was cut to `max_height`.
pub fn capped_height(page_height: f64, max_height: u32) -> (u32, bool) {
    let h = if page_height.is_finite() && page_height > 0.0 { page_height.ceil() } else { 0.0 };
    let max = f64::from(max_height.max(MIN_CAPTURE_HEIGHT));
    if h > max {
        (max_height.max(MIN_CAPTURE_HEIGHT), true)
    } else {
        ((h as u32).max(MIN_CAPTURE_HEIGHT), false)
    }
}

/// A measured rectangle (`[x, y, w, h]`, page CSS px) as whole pixels clipped to the captured area;
/// `None` when nothing of it is inside (or it has no size).
pub fn clip_rect(r: [f64; 4], page_width: u32, page_height: u32) -> Option<Rect> {
    let [x, y, w, h] = r;
    if ![x, y, w, h].iter().all(|v| v.is_finite()) || w <= 0.0 || h <= 0.0 {
        return None;
    }
    let left = x.floor().max(0.0);
    let top = y.floor().max(0.0);
    let right = (x + w).ceil().min(f64::from(page_width));
    let bottom = (y + h).ceil().min(f64::from(page_height));
    if right <= left || bottom <= top {
        return None;
    }
    Some(Rect { x: left as u32, y: top as u32, width: (right - left) as u32, height: (bottom - top) as u32 })
}

/// Width and height from a PNG's IHDR chunk.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 24 || &png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let h = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    Some((w, h))
}

/// Pixels that differ between two PNG shots and their bounding box; `None` when identical.
/// Shots that cannot be decoded or differ in size count as changed everywhere. Compared row by row
/// (a 100,000-px shot is never decoded whole).
pub fn shot_difference(a: &[u8], b: &[u8]) -> Option<(u64, Rect)> {
    exact_difference(a, b).unwrap_or_else(|_| {
        let (w, h) = png_size(b).unwrap_or((0, 0));
        Some((u64::from(w) * u64::from(h), Rect { x: 0, y: 0, width: w, height: h }))
    })
}

/// The smallest rectangle holding both `a` and `b`.
pub fn union_rect(a: Rect, b: Rect) -> Rect {
    let x = a.x.min(b.x);
    let y = a.y.min(b.y);
    let right = (a.x + a.width).max(b.x + b.width);
    let bottom = (a.y + a.height).max(b.y + b.height);
    Rect { x, y, width: right - x, height: bottom - y }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_height_truncates_and_floors() {
        assert_eq!(capped_height(6000.0, 30_000), (6000, false));
        assert_eq!(capped_height(6000.4, 30_000), (6001, false));
        assert_eq!(capped_height(40_000.0, 30_000), (30_000, true));
        assert_eq!(capped_height(0.0, 30_000), (1, false));
        assert_eq!(capped_height(f64::NAN, 100), (1, false));
    }

    #[test]
    fn tall_shots_are_cut_in_tiles_of_tile_height() {
        assert_eq!(tiles(800), vec![(0, 800)]);
        assert_eq!(tiles(0), vec![(0, 1)]);
        assert_eq!(tiles(TILE_HEIGHT), vec![(0, TILE_HEIGHT)]);
        assert_eq!(tiles(TILE_HEIGHT + 1), vec![(0, TILE_HEIGHT), (TILE_HEIGHT, 1)]);
        let t = tiles(100_000);
        assert_eq!(t.len(), 7);
        assert_eq!(t[6], (6 * TILE_HEIGHT, 100_000 - 6 * TILE_HEIGHT));
        assert_eq!(t.iter().map(|(_, h)| h).sum::<u32>(), 100_000);
    }

    #[test]
    fn clip_rect_clips_rounds_and_drops() {
        assert_eq!(
            clip_rect([10.0, 20.0, 30.0, 40.0], 800, 600),
            Some(Rect { x: 10, y: 20, width: 30, height: 40 })
        );
        assert_eq!(
            clip_rect([10.5, 20.5, 30.0, 40.0], 800, 600),
            Some(Rect { x: 10, y: 20, width: 31, height: 41 })
        );
        assert_eq!(
            clip_rect([-10.0, 590.0, 30.0, 40.0], 800, 600),
            Some(Rect { x: 0, y: 590, width: 20, height: 10 })
        );
        assert_eq!(clip_rect([10.0, 20.0, 0.0, 40.0], 800, 600), None);
        assert_eq!(clip_rect([900.0, 20.0, 10.0, 10.0], 800, 600), None);
        assert_eq!(clip_rect([10.0, 700.0, 10.0, 10.0], 800, 600), None);
    }

    fn png(width: u32, height: u32, rgba: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut buf, width, height);
            enc.set_color(png::ColorType::Rgba);
            let mut w = enc.write_header().unwrap();
            w.write_image_data(rgba).unwrap();
        }
        buf
    }

    #[test]
    fn png_size_reads_ihdr() {
        assert_eq!(png_size(&png(3, 7, &[0u8; 3 * 7 * 4])), Some((3, 7)));
        assert_eq!(png_size(b"not a png at all, really not"), None);
    }

    #[test]
    fn shot_difference_counts_pixels_and_bounds_them() {
        let white = [255u8; 4 * 4 * 3];
        let a = png(4, 3, &white);
        assert_eq!(shot_difference(&a, &a), None);
        let mut changed = white;
        changed[(4 + 1) * 4] = 0; // (1, 1)
        changed[(2 * 4 + 3) * 4 + 1] = 0; // (3, 2)
        let b = png(4, 3, &changed);
        assert_eq!(shot_difference(&a, &b), Some((2, Rect { x: 1, y: 1, width: 3, height: 2 })));
        let taller = png(4, 5, &[255u8; 4 * 5 * 4]);
        assert_eq!(shot_difference(&a, &taller), Some((20, Rect { x: 0, y: 0, width: 4, height: 5 })));
        assert_eq!(
            shot_difference(b"junk", &a),
            Some((12, Rect { x: 0, y: 0, width: 4, height: 3 })),
            "an undecodable shot counts as changed everywhere"
        );
    }

    #[test]
    fn union_rect_holds_both() {
        let a = Rect { x: 1, y: 2, width: 3, height: 4 };
        let b = Rect { x: 10, y: 0, width: 1, height: 1 };
        assert_eq!(union_rect(a, b), Rect { x: 1, y: 0, width: 10, height: 6 });
    }
}
