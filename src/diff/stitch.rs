//! Tall images as row strips: vertical tiles stitched into one PNG, and the exact difference of two
//! PNGs, both streamed row by row (never more than a row of each image decoded at once).

use super::codec::PngRows;
use super::{DiffError, Rect};

/// Stitch PNG tiles of the same width, top to bottom, into one RGBA8 PNG, row by row.
pub fn stitch_png(tiles: &[&[u8]], name: &str) -> Result<Vec<u8>, DiffError> {
    let stitch_err = |reason: String| DiffError::Stitch { name: name.to_string(), reason };
    let mut readers = tiles.iter().map(|t| PngRows::open(t, name)).collect::<Result<Vec<_>, _>>()?;
    let width = readers.first().map(PngRows::width).ok_or_else(|| stitch_err("no tiles".into()))?;
    if let Some((i, r)) = readers.iter().enumerate().find(|(_, r)| r.width() != width) {
        return Err(stitch_err(format!("tile {i} is {} px wide, tile 0 {width} px", r.width())));
    }
    let height: usize = readers.iter().map(PngRows::height).sum();
    let too_large = || DiffError::TooLarge { name: name.to_string(), width: width as u32, height: u32::MAX };
    let (w, h) =
        (u32::try_from(width).map_err(|_| too_large())?, u32::try_from(height).map_err(|_| too_large())?);
    if w == 0 || h == 0 {
        return Err(stitch_err("the tiles are empty".into()));
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let encode = |source| DiffError::Encode { source };
        let mut writer = enc.write_header().map_err(encode)?;
        let mut stream = writer.stream_writer().map_err(encode)?;
        let mut row = vec![0u8; width * 4];
        for r in readers.iter_mut() {
            for _ in 0..r.height() {
                r.read_into(&mut row)?;
                std::io::Write::write_all(&mut stream, &row)
                    .map_err(|source| DiffError::WriteDiff { source })?;
            }
        }
        stream.finish().map_err(encode)?;
    }
    Ok(out)
}

/// Pixels that differ at all between two PNGs and their bounding box, row by row; `None` when
/// every pixel is equal. Images of different sizes differ everywhere (the larger size's area).
pub fn exact_difference(a: &[u8], b: &[u8]) -> Result<Option<(u64, Rect)>, DiffError> {
    if a == b {
        return Ok(None);
    }
    let (mut ra, mut rb) = (PngRows::open(a, "a")?, PngRows::open(b, "b")?);
    if (ra.width(), ra.height()) != (rb.width(), rb.height()) {
        let (w, h) = (ra.width().max(rb.width()) as u32, ra.height().max(rb.height()) as u32);
        return Ok(Some((u64::from(w) * u64::from(h), Rect { x: 0, y: 0, width: w, height: h })));
    }
    let w = ra.width();
    let (mut row_a, mut row_b) = (vec![0u8; w * 4], vec![0u8; w * 4]);
    let (mut n, mut x0, mut y0, mut x1, mut y1) = (0u64, usize::MAX, usize::MAX, 0usize, 0usize);
    for y in 0..ra.height() {
        ra.read_into(&mut row_a)?;
        rb.read_into(&mut row_b)?;
        if row_a == row_b {
            continue;
        }
        for (x, (pa, pb)) in row_a.chunks_exact(4).zip(row_b.chunks_exact(4)).enumerate() {
            if pa != pb {
                n += 1;
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
    }
    Ok((n > 0).then(|| {
        (n, Rect { x: x0 as u32, y: y0 as u32, width: (x1 - x0 + 1) as u32, height: (y1 - y0 + 1) as u32 })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{decode_png, encode_png, RgbaImage};

    fn image(w: u32, h: u32, seed: u8) -> RgbaImage {
        let mut img = RgbaImage::new(w, h);
        for (i, b) in img.data.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        img
    }

    #[test]
    fn stitched_tiles_decode_to_the_rows_in_order() {
        let (a, b) = (image(5, 3, 1), image(5, 2, 7));
        let (pa, pb) = (encode_png(&a).unwrap(), encode_png(&b).unwrap());
        let whole = decode_png(&stitch_png(&[&pa, &pb], "t").unwrap(), "w").unwrap();
        assert_eq!((whole.width, whole.height), (5, 5));
        assert_eq!(&whole.data[..a.data.len()], &a.data[..]);
        assert_eq!(&whole.data[a.data.len()..], &b.data[..]);
        let narrow = encode_png(&image(4, 2, 0)).unwrap();
        assert!(matches!(stitch_png(&[&pa, &narrow], "t"), Err(DiffError::Stitch { .. })));
        assert!(matches!(stitch_png(&[], "t"), Err(DiffError::Stitch { .. })));
    }

    #[test]
    fn exact_difference_counts_and_bounds_changed_pixels() {
        let a = image(6, 4, 3);
        let mut b = a.clone();
        b.data[(6 + 2) * 4] ^= 1; // (2, 1)
        b.data[(3 * 6 + 4) * 4 + 2] ^= 8; // (4, 3)
        let (pa, pb) = (encode_png(&a).unwrap(), encode_png(&b).unwrap());
        assert_eq!(exact_difference(&pa, &pa).unwrap(), None);
        assert_eq!(exact_difference(&pa, &encode_png(&a).unwrap()).unwrap(), None);
        assert_eq!(exact_difference(&pa, &pb).unwrap(), Some((2, Rect { x: 2, y: 1, width: 3, height: 3 })));
        let taller = encode_png(&image(6, 5, 3)).unwrap();
        assert_eq!(
            exact_difference(&pa, &taller).unwrap(),
            Some((30, Rect { x: 0, y: 0, width: 6, height: 5 }))
        );
        assert!(exact_difference(b"junk", &pa).is_err());
    }
}
