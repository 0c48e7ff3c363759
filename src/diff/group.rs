//! Change groups: the signature of what a comparison found changed, equal for pages showing the
//! same change. Two compared pages are in the same group exactly when their diffs found the same
//! changed regions (the same rectangles, in the same top-to-bottom order) and, inside every
//! region, the baseline pixels are the same and the capture pixels are the same (RGBA, exact; a
//! pixel outside an image counts as absent). So a header changed the same way on 100 pages is one
//! group, and a change anywhere else (another place, or other pixels in the same place) is another.

use super::{DiffError, PngRows, Rect};

/// Bumped whenever what the signature covers changes (old groups then never match new ones).
const SIGNATURE_VERSION: &[u8] = b"sitediff-change-group-v2";

/// The change signature of a comparison: `regions` of the diff, `base` the baseline's PNG rows and
/// `new` the capture's, both unread so far. Each image is read row by row down to the lowest
/// region (never more than one row of either in memory, however tall the page); a row beyond an
/// image's height counts as absent.
pub fn change_signature(
    regions: &[Rect],
    base: &mut PngRows,
    new: &mut PngRows,
) -> Result<[u8; 32], DiffError> {
    let bottom = signature_rows(regions);
    let base_areas = hash_areas(regions, base, bottom)?;
    let new_areas = hash_areas(regions, new, bottom)?;
    let mut h = blake3::Hasher::new();
    h.update(SIGNATURE_VERSION);
    h.update(&(regions.len() as u32).to_le_bytes());
    for ((r, b), n) in regions.iter().zip(&base_areas).zip(&new_areas) {
        for v in [r.x, r.y, r.width, r.height] {
            h.update(&v.to_le_bytes());
        }
        h.update(b.as_bytes());
        h.update(n.as_bytes());
    }
    Ok(*h.finalize().as_bytes())
}

/// The rows needed of each image to sign `regions`: everything above the lowest region's bottom.
pub fn signature_rows(regions: &[Rect]) -> u32 {
    regions.iter().map(|r| r.y.saturating_add(r.height)).max().unwrap_or(0)
}

/// One hash per region of the pixels of `rows` inside it (rows `0..bottom` read in order), a
/// marker byte per row part outside the image.
fn hash_areas(regions: &[Rect], rows: &mut PngRows, bottom: u32) -> Result<Vec<blake3::Hash>, DiffError> {
    const ABSENT: &[u8] = &[0xff];
    let (width, height) = (rows.width() as u32, rows.height() as u32);
    let mut hashers = vec![blake3::Hasher::new(); regions.len()];
    let mut row = vec![0u8; width as usize * 4];
    for y in 0..bottom {
        let present = y < height;
        if present {
            rows.read_into(&mut row)?;
        }
        for (r, h) in regions.iter().zip(hashers.iter_mut()) {
            if y < r.y || y >= r.y.saturating_add(r.height) {
                continue;
            }
            if !present || r.x >= width {
                h.update(ABSENT);
                continue;
            }
            let x1 = r.x.saturating_add(r.width).min(width);
            h.update(&row[r.x as usize * 4..x1 as usize * 4]);
            if x1 < r.x.saturating_add(r.width) {
                h.update(ABSENT);
            }
        }
    }
    Ok(hashers.into_iter().map(|h| h.finalize()).collect())
}

#[cfg(test)]
mod tests {
    use super::super::{encode_png, RgbaImage};
    use super::*;

    fn png(w: u32, h: u32, fill: u8) -> Vec<u8> {
        encode_png(&RgbaImage { width: w, height: h, data: vec![fill; (w * h * 4) as usize] }).unwrap()
    }

    fn sig(regions: &[Rect], base: &[u8], new: &[u8]) -> [u8; 32] {
        let mut b = PngRows::open(base, "base").unwrap();
        let mut n = PngRows::open(new, "new").unwrap();
        change_signature(regions, &mut b, &mut n).unwrap()
    }

    #[test]
    fn same_change_same_signature_other_pixels_or_place_another() {
        let header = [Rect { x: 0, y: 0, width: 4, height: 2 }];
        let (base, new) = (png(4, 8, 10), png(4, 8, 20));
        let mut below = RgbaImage { width: 4, height: 8, data: vec![20; 4 * 8 * 4] };
        below.data[4 * 4 * 6] = 99; // below the region: not part of the change
        let other_below = encode_png(&below).unwrap();
        let s = sig(&header, &base, &new);
        assert_eq!(s, sig(&header, &base, &other_below));
        assert_eq!(signature_rows(&header), 2);
        assert_ne!(s, sig(&header, &base, &png(4, 8, 21)), "other new pixels");
        assert_ne!(s, sig(&header, &png(4, 8, 11), &new), "other old pixels");
        let moved = [Rect { x: 0, y: 1, width: 4, height: 2 }];
        assert_ne!(s, sig(&moved, &base, &new), "another place");
        assert_ne!(s, sig(&header, &base, &png(4, 1, 20)), "absent rows differ");
    }
}
