//! pixelmatch 7.2.0 per-pixel arithmetic, reproduced operation for operation in f64 (as JavaScript
//! evaluates it) so that counts and diff images match the reference exactly.

/// YIQ luma weights, exactly as written in pixelmatch 7.2.0.
const Y_R: f64 = 0.29889531;
const Y_G: f64 = 0.58662247;
const Y_B: f64 = 0.11448223;
const I_R: f64 = 0.59597799;
const I_G: f64 = 0.27417610;
const I_B: f64 = 0.32180189;
const Q_R: f64 = 0.21147017;
const Q_G: f64 = 0.52261711;
const Q_B: f64 = 0.31114694;
/// Weights of the squared Y, I and Q differences.
const W_Y: f64 = 0.5053;
const W_I: f64 = 0.299;
const W_Q: f64 = 0.1957;
/// Checkerboard background of semi-transparent pixels: the two levels and the two periods.
const CHECKER_DARK: i32 = 48;
const CHECKER_STEP: i32 = 159;
const CHECKER_PERIOD_G: f64 = 1.618033988749895;
const CHECKER_PERIOD_B: f64 = 2.618033988749895;
/// Opacity of the first image in the diff output (pixelmatch `alpha` default).
pub(crate) const GREY_ALPHA: f64 = 0.1;
/// Fully opaque alpha.
const OPAQUE: u8 = 255;

/// Palette index of a counted difference in the diff image (red).
pub(crate) const IDX_DIFF: u8 = 0;
/// Palette index of an anti-aliased difference (yellow).
pub(crate) const IDX_AA: u8 = 1;
/// Palette index of plain white (used where the first image has no pixel).
pub(crate) const IDX_WHITE: u8 = 255;

/// The diff-image palette: index 0 red, 1 yellow, every other index `v` the grey `(v, v, v)`.
/// Grey values pixelmatch can draw are `trunc(255 + (Y - 255) * 0.1 * a / 255)` with `0 <= Y < 255`,
/// i.e. 229..=255, so indices 0 and 1 are never needed for greys (see the `grey_range` test).
pub(crate) fn palette_rgb() -> [u8; 768] {
    let mut p = [0u8; 768];
    for v in 0..256usize {
        let rgb = match v as u8 {
            IDX_DIFF => [255, 0, 0],
            IDX_AA => [255, 255, 0],
            g => [g, g, g],
        };
        p[v * 3..v * 3 + 3].copy_from_slice(&rgb);
    }
    p
}

/// RGBA of a palette index.
#[inline]
pub(crate) fn palette_rgba(idx: u8) -> [u8; 4] {
    match idx {
        IDX_DIFF => [255, 0, 0, 255],
        IDX_AA => [255, 255, 0, 255],
        g => [g, g, g, 255],
    }
}

/// JavaScript `x | 0` for a finite non-negative double below 2^63.
#[inline]
fn js_int32(x: f64) -> i32 {
    (x as i64) as i32
}

/// pixelmatch's position-dependent checkerboard background at byte offset `k`. Kept out of line:
/// screenshots are opaque, and inlined it gets hoisted (two divisions) into the AA loops.
#[cold]
#[inline(never)]
fn checkerboard(k: usize) -> (f64, f64, f64) {
    let kf = k as f64;
    let rb = CHECKER_DARK + CHECKER_STEP * (k % 2) as i32;
    let gb = CHECKER_DARK + CHECKER_STEP * (js_int32(kf / CHECKER_PERIOD_G) % 2);
    let bb = CHECKER_DARK + CHECKER_STEP * (js_int32(kf / CHECKER_PERIOD_B) % 2);
    (rb as f64, gb as f64, bb as f64)
}

/// Channel differences, blended against the checkerboard when either pixel is not opaque.
#[inline]
fn channel_deltas(p1: [u8; 4], p2: [u8; 4], k: usize) -> (f64, f64, f64) {
    let (r1, g1, b1, a1) = (p1[0] as f64, p1[1] as f64, p1[2] as f64, p1[3] as f64);
    let (r2, g2, b2, a2) = (p2[0] as f64, p2[1] as f64, p2[2] as f64, p2[3] as f64);
    if p1[3] < OPAQUE || p2[3] < OPAQUE {
        let (rb, gb, bb) = checkerboard(k);
        let da = a1 - a2;
        (
            (r1 * a1 - r2 * a2 - rb * da) / 255.0,
            (g1 * a1 - g2 * a2 - gb * da) / 255.0,
            (b1 * a1 - b2 * a2 - bb * da) / 255.0,
        )
    } else {
        (r1 - r2, g1 - g2, b1 - b2)
    }
}

/// Squared YIQ distance (pixelmatch `colorDelta`, magnitude only) of two differing pixels at byte
/// offset `k`.
#[inline]
pub(crate) fn color_delta(p1: [u8; 4], p2: [u8; 4], k: usize) -> f64 {
    let (dr, dg, db) = channel_deltas(p1, p2, k);
    let y = dr * Y_R + dg * Y_G + db * Y_B;
    let i = dr * I_R - dg * I_G - db * I_B;
    let q = dr * Q_R - dg * Q_G + db * Q_B;
    W_Y * y * y + W_I * i * i + W_Q * q * q
}

/// Luma difference (pixelmatch `brightnessDelta`); `k` is the centre pixel's byte offset.
#[inline]
pub(crate) fn brightness_delta(p1: [u8; 4], p2: [u8; 4], k: usize) -> f64 {
    if p1 == p2 {
        return 0.0;
    }
    let (dr, dg, db) = channel_deltas(p1, p2, k);
    dr * Y_R + dg * Y_G + db * Y_B
}

/// Grey value pixelmatch draws for an unchanged pixel (`drawGrayPixel`, stored truncated into a
/// Uint8Array), which is also its palette index.
#[inline]
pub(crate) fn grey_index(p: [u8; 4]) -> u8 {
    let y = p[0] as f64 * Y_R + p[1] as f64 * Y_G + p[2] as f64 * Y_B;
    let val = 255.0 + (y - 255.0) * GREY_ALPHA * p[3] as f64 / 255.0;
    val as u8
}

/// `maxDelta` of pixelmatch for a threshold.
#[inline]
pub(crate) fn max_delta(threshold: f64) -> f64 {
    super::MAX_YIQ_DELTA * threshold * threshold
}

/// Read access to RGBA8 rows of one image: a rolling window of decoded chunks (`engine::Win`), the
/// five rows around a pixel ([`Hood`]) or, in tests, a whole image. The anti-aliasing test below is
/// written once over this trait and monomorphised for each accessor.
pub(crate) trait Rows {
    /// The RGBA8 bytes of row `y`, starting at x = 0 (may be longer than the compared width).
    fn row(&self, y: usize) -> &[u8];
}

#[inline]
fn px(row: &[u8], x: usize) -> [u8; 4] {
    let i = x * 4;
    [row[i], row[i + 1], row[i + 2], row[i + 3]]
}

/// Rows `yc-2..=yc+2` of one image, fetched once per image row at its first anti-aliasing test, so
/// that the test's neighbourhood reads are plain array indexing. Rows outside the image are never
/// read: every loop of the test is clamped to the compared area.
#[derive(Clone, Copy)]
pub(crate) struct Hood<'r> {
    rows: [&'r [u8]; 5],
    /// `yc - 2` (wrapping): the row held in `rows[0]`.
    first: usize,
}

impl<'r> Hood<'r> {
    /// The neighbourhood of row `yc` of `img`, whose compared height is `h`.
    pub(crate) fn around<R: Rows>(img: &'r R, yc: usize, h: usize) -> Hood<'r> {
        let centre = img.row(yc);
        let mut rows = [centre; 5];
        for (k, slot) in rows.iter_mut().enumerate() {
            let y = (yc + k).wrapping_sub(2);
            if y < h && y != yc {
                *slot = img.row(y);
            }
        }
        Hood { rows, first: yc.wrapping_sub(2) }
    }
}

impl Rows for Hood<'_> {
    /// Row `y`, which must lie within two rows of the centre.
    #[inline(always)]
    fn row(&self, y: usize) -> &[u8] {
        self.rows[y.wrapping_sub(self.first)]
    }
}

/// pixelmatch's `antialiased(img1, ..) || antialiased(img2, ..)` for pixel (x, y) of two images `a`
/// and `b`, compared over `w` x `h`. `a` and `b` must hold rows `y-2..=y+2` (clamped to the area).
#[inline(never)]
pub(crate) fn aa_either<R: Rows>(a: &R, b: &R, x: usize, y: usize, w: usize, h: usize) -> bool {
    antialiased(a, b, x, y, w, h) || antialiased(b, a, x, y, w, h)
}

/// pixelmatch `antialiased`: is pixel (x1, y1) of `img` likely anti-aliasing? `other` is the second
/// image (pixelmatch's `a32`/`b32` pair is `img`/`other`). Same loop order and tie rules as the
/// JavaScript: the first equal-valued extreme wins, and a third identical neighbour ends the test.
#[inline]
fn antialiased<R: Rows>(img: &R, other: &R, x1: usize, y1: usize, w: usize, h: usize) -> bool {
    let x0 = x1.saturating_sub(1);
    let y0 = y1.saturating_sub(1);
    let x2 = (x1 + 1).min(w - 1);
    let y2 = (y1 + 1).min(h - 1);
    let pos4 = (y1 * w + x1) * 4;
    let centre = px(img.row(y1), x1);
    let mut zeroes = u32::from(x1 == x0 || x1 == x2 || y1 == y0 || y1 == y2);
    let (mut min, mut max) = (0.0f64, 0.0f64);
    let (mut min_x, mut min_y, mut max_x, mut max_y) = (0, 0, 0, 0);
    for x in x0..=x2 {
        for y in y0..=y2 {
            if x == x1 && y == y1 {
                continue;
            }
            let delta = brightness_delta(centre, px(img.row(y), x), pos4);
            if delta == 0.0 {
                zeroes += 1;
                if zeroes > 2 {
                    return false;
                }
            } else if delta < min {
                min = delta;
                min_x = x;
                min_y = y;
            } else if delta > max {
                max = delta;
                max_x = x;
                max_y = y;
            }
        }
    }
    if min == 0.0 || max == 0.0 {
        return false;
    }
    (has_many_siblings(img, min_x, min_y, w, h) && has_many_siblings(other, min_x, min_y, w, h))
        || (has_many_siblings(img, max_x, max_y, w, h) && has_many_siblings(other, max_x, max_y, w, h))
}

/// pixelmatch `hasManySiblings`: does (x1, y1) have 3+ identical neighbours (borders count as one)?
#[inline]
fn has_many_siblings<R: Rows>(img: &R, x1: usize, y1: usize, w: usize, h: usize) -> bool {
    let x0 = x1.saturating_sub(1);
    let y0 = y1.saturating_sub(1);
    let x2 = (x1 + 1).min(w - 1);
    let y2 = (y1 + 1).min(h - 1);
    let val = px(img.row(y1), x1);
    let mut zeroes = u32::from(x1 == x0 || x1 == x2 || y1 == y0 || y1 == y2);
    for x in x0..=x2 {
        for y in y0..=y2 {
            if x == x1 && y == y1 {
                continue;
            }
            zeroes += u32::from(val == px(img.row(y), x));
            if zeroes > 2 {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_range() {
        // Darkest possible grey (black, opaque) and lightest (any colour, transparent).
        assert_eq!(grey_index([0, 0, 0, 255]), 229);
        assert_eq!(grey_index([255, 255, 255, 255]), 255); // the weights sum to 1.00000001
        assert_eq!(grey_index([0, 0, 0, 0]), 255);
        let mut lo = 255;
        for a in [0u8, 1, 127, 254, 255] {
            for c in [0u8, 1, 128, 255] {
                lo = lo.min(grey_index([c, 0, 0, a])).min(grey_index([0, c, c, a]));
            }
        }
        assert!(lo >= 229, "greys stay in the palette's grey range");
        const { assert!(IDX_AA < 229, "the anti-aliasing colour is outside the grey range") };
    }

    #[test]
    fn delta_extremes() {
        // Black vs white: luma only (node: 32857.13315714265).
        assert_eq!(color_delta([0, 0, 0, 255], [255, 255, 255, 255], 0), 32857.13315714265);
        // The documented maximum is reached by saturated opposite colours.
        assert!(color_delta([255, 0, 255, 255], [0, 255, 0, 255], 0) <= 35215.0 + 1.0);
        assert_eq!(brightness_delta([1, 2, 3, 4], [1, 2, 3, 4], 0), 0.0);
        // Fully transparent pixels of any colour are alike.
        assert_eq!(color_delta([10, 20, 30, 0], [200, 0, 9, 0], 40), 0.0);
    }

    #[test]
    fn checkerboard_matches_js() {
        // Values computed with node: k / 1.618033988749895 | 0, etc.
        assert_eq!(checkerboard(0), (48.0, 48.0, 48.0));
        assert_eq!(checkerboard(4), (48.0, 48.0, 207.0)); // 4/1.618=2.47 -> 2 (even); 4/2.618=1.52 -> 1
        assert_eq!(checkerboard(8), (48.0, 48.0, 207.0)); // 8/1.618=4.94 -> 4; 8/2.618=3.05 -> 3
        assert_eq!(checkerboard(12), (48.0, 207.0, 48.0));
        // Past 2^31 JavaScript's `| 0` wraps to negative numbers and `% 2` can give -1.
        assert_eq!(checkerboard(4_000_000_004), (48.0, -111.0, 48.0));
    }

    #[test]
    fn palette_layout() {
        let p = palette_rgb();
        assert_eq!(&p[0..3], &[255, 0, 0]);
        assert_eq!(&p[3..6], &[255, 255, 0]);
        assert_eq!(&p[229 * 3..230 * 3], &[229, 229, 229]);
        assert_eq!(palette_rgba(240), [240, 240, 240, 255]);
    }
}
