//! Change groups: the signature of what a comparison found changed, equal for pages showing the
//! same change. Two compared pages are in the same group exactly when their diffs found the same
//! changed regions (the same rectangles, in the same top-to-bottom order) and, inside every
//! region, the baseline pixels are the same and the capture pixels are the same (RGBA, exact; a
//! pixel outside an image counts as absent). So a header changed the same way on 100 pages is one
//! group, and a change anywhere else (another place, or other pixels in the same place) is another.

use super::{Rect, RgbaImage};

/// Bumped whenever what the signature covers changes (old groups then never match new ones).
const SIGNATURE_VERSION: &[u8] = b"sitediff-change-group-v1";

/// The change signature of a comparison: `regions` of the diff, `base` the baseline, `new` the
/// capture, each given from its row 0 (it may stop after the lowest region: rows beyond an
/// image's `height` count as absent, and `full_heights` gives the images' real heights).
pub fn change_signature(
    regions: &[Rect],
    base: &RgbaImage,
    new: &RgbaImage,
    full_heights: (u32, u32),
) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(SIGNATURE_VERSION);
    h.update(&(regions.len() as u32).to_le_bytes());
    for r in regions {
        for v in [r.x, r.y, r.width, r.height] {
            h.update(&v.to_le_bytes());
        }
        for (img, full_height) in [(base, full_heights.0), (new, full_heights.1)] {
            hash_area(&mut h, img, full_height, r);
        }
    }
    *h.finalize().as_bytes()
}

/// The rows needed of each image to sign `regions`: everything above the lowest region's bottom.
pub fn signature_rows(regions: &[Rect]) -> u32 {
    regions.iter().map(|r| r.y.saturating_add(r.height)).max().unwrap_or(0)
}

/// Hash the pixels of `img` inside `r`, a marker byte per row part outside the image.
fn hash_area(h: &mut blake3::Hasher, img: &RgbaImage, full_height: u32, r: &Rect) {
    const ABSENT: &[u8] = &[0xff];
    let stride = img.width as usize * 4;
    for y in r.y..r.y.saturating_add(r.height) {
        if y >= full_height.min(img.height) || r.x >= img.width {
            h.update(ABSENT);
            continue;
        }
        let x1 = r.x.saturating_add(r.width).min(img.width);
        let row = &img.data[y as usize * stride..(y as usize + 1) * stride];
        h.update(&row[r.x as usize * 4..x1 as usize * 4]);
        if x1 < r.x.saturating_add(r.width) {
            h.update(ABSENT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32, fill: u8) -> RgbaImage {
        RgbaImage { width: w, height: h, data: vec![fill; (w * h * 4) as usize] }
    }

    #[test]
    fn same_change_same_signature_other_pixels_or_place_another() {
        let header = [Rect { x: 0, y: 0, width: 4, height: 2 }];
        let (base, new) = (img(4, 8, 10), img(4, 8, 20));
        let mut other_below = new.clone();
        other_below.data[4 * 4 * 6] = 99; // below the region: not part of the change
        let s = change_signature(&header, &base, &new, (8, 8));
        assert_eq!(s, change_signature(&header, &base, &other_below, (8, 8)));
        assert_eq!(signature_rows(&header), 2);
        let strip = RgbaImage { width: 4, height: 2, data: new.data[..4 * 4 * 2].to_vec() };
        assert_eq!(s, change_signature(&header, &base, &strip, (8, 8)), "rows below are not read");
        assert_ne!(s, change_signature(&header, &base, &img(4, 8, 21), (8, 8)), "other new pixels");
        assert_ne!(s, change_signature(&header, &img(4, 8, 11), &new, (8, 8)), "other old pixels");
        let moved = [Rect { x: 0, y: 1, width: 4, height: 2 }];
        assert_ne!(s, change_signature(&moved, &base, &new, (8, 8)), "another place");
        let short = img(4, 1, 20);
        assert_ne!(s, change_signature(&header, &base, &short, (8, 1)), "absent rows differ");
    }
}
