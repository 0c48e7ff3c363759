//! Ignore masks: a per-pixel bitmap (handed over by plugins) and the per-row combination of mask and
//! ignore rectangles used by the engine.

use super::{DiffError, Rect};

const WORD_BITS: usize = 64;

/// A bitmap of pixels to leave out of the comparison (1 = ignored), row-major, one bit per pixel.
/// Pixels outside the mask's own size are not ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreMask {
    width: u32,
    height: u32,
    words_per_row: usize,
    bits: Vec<u64>,
}

impl IgnoreMask {
    /// An empty mask (nothing ignored) of the given size.
    pub fn new(width: u32, height: u32) -> IgnoreMask {
        let words_per_row = (width as usize).div_ceil(WORD_BITS);
        IgnoreMask { width, height, words_per_row, bits: vec![0; words_per_row * height as usize] }
    }

    /// A mask from one byte per pixel (non-zero = ignored), e.g. a plugin's output buffer.
    pub fn from_bytes(width: u32, height: u32, bytes: &[u8]) -> Result<IgnoreMask, DiffError> {
        let expected = width as usize * height as usize;
        if bytes.len() != expected {
            return Err(DiffError::MaskSize { expected, got: bytes.len() });
        }
        let mut mask = IgnoreMask::new(width, height);
        if width == 0 {
            return Ok(mask);
        }
        for (y, row) in bytes.chunks_exact(width as usize).enumerate() {
            let words = &mut mask.bits[y * mask.words_per_row..(y + 1) * mask.words_per_row];
            for (x, &b) in row.iter().enumerate() {
                if b != 0 {
                    words[x / WORD_BITS] |= 1 << (x % WORD_BITS);
                }
            }
        }
        Ok(mask)
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Mark one pixel ignored (outside the mask: no effect).
    pub fn set(&mut self, x: u32, y: u32) {
        if x < self.width && y < self.height {
            let (x, y) = (x as usize, y as usize);
            self.bits[y * self.words_per_row + x / WORD_BITS] |= 1 << (x % WORD_BITS);
        }
    }

    /// Mark a rectangle ignored (clipped to the mask).
    pub fn set_rect(&mut self, r: Rect) {
        let x1 = r.x.saturating_add(r.width).min(self.width);
        let y1 = r.y.saturating_add(r.height).min(self.height);
        for y in r.y.min(y1)..y1 {
            let words =
                &mut self.bits[y as usize * self.words_per_row..(y as usize + 1) * self.words_per_row];
            set_span(words, r.x.min(x1) as usize, x1 as usize);
        }
    }

    /// Is pixel (x, y) ignored?
    pub fn get(&self, x: u32, y: u32) -> bool {
        if x >= self.width || y >= self.height {
            return false;
        }
        let (x, y) = (x as usize, y as usize);
        self.bits[y * self.words_per_row + x / WORD_BITS] >> (x % WORD_BITS) & 1 == 1
    }

    /// Number of ignored pixels.
    pub fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// Set bits `x0..x1` in a row of words.
fn set_span(words: &mut [u64], x0: usize, x1: usize) {
    for x in x0..x1 {
        words[x / WORD_BITS] |= 1 << (x % WORD_BITS);
    }
}

/// The ignore rectangles and mask of one comparison, turned into one bit row at a time.
pub(crate) struct RowIgnore<'a> {
    rects: &'a [Rect],
    mask: Option<&'a IgnoreMask>,
    width: usize,
    words: Vec<u64>,
}

impl<'a> RowIgnore<'a> {
    /// `None` when nothing is ignored at all.
    pub(crate) fn new(rects: &'a [Rect], mask: Option<&'a IgnoreMask>, width: usize) -> Option<Self> {
        let rects_active = rects.iter().any(|r| r.width > 0 && r.height > 0);
        let mask = mask.filter(|m| m.bits.iter().any(|&w| w != 0));
        if !rects_active && mask.is_none() {
            return None;
        }
        Some(RowIgnore { rects, mask, width, words: vec![0; width.div_ceil(WORD_BITS)] })
    }

    /// Compute row `y`; returns the number of ignored pixels in it (0: the row needs no checks).
    pub(crate) fn load(&mut self, y: usize) -> usize {
        self.words.iter_mut().for_each(|w| *w = 0);
        if let Some(m) = self.mask {
            if y < m.height as usize {
                let src = &m.bits[y * m.words_per_row..(y + 1) * m.words_per_row];
                for (d, s) in self.words.iter_mut().zip(src) {
                    *d = *s;
                }
                // Bits past our width (mask wider than the union) must not count.
                let tail = self.width % WORD_BITS;
                if m.width as usize > self.width && tail != 0 {
                    if let Some(last) = self.words.get_mut(self.width / WORD_BITS) {
                        *last &= (1u64 << tail) - 1;
                    }
                }
            }
        }
        for r in self.rects {
            let (ry, rh) = (r.y as usize, r.height as usize);
            if y >= ry && y < ry.saturating_add(rh) {
                let x0 = (r.x as usize).min(self.width);
                let x1 = (r.x as usize).saturating_add(r.width as usize).min(self.width);
                set_span(&mut self.words, x0, x1);
            }
        }
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Is x ignored in the loaded row?
    #[inline]
    pub(crate) fn get(&self, x: usize) -> bool {
        self.words[x / WORD_BITS] >> (x % WORD_BITS) & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_rects_combine_per_row() {
        let mut m = IgnoreMask::new(70, 3);
        m.set(65, 1);
        m.set_rect(Rect { x: 0, y: 2, width: 100, height: 9 });
        assert!(m.get(65, 1) && !m.get(64, 1) && m.get(69, 2) && !m.get(70, 2));
        assert_eq!(m.count(), 71);
        let rects = [Rect { x: 10, y: 1, width: 5, height: 1 }];
        let mut ri = RowIgnore::new(&rects, Some(&m), 68).expect("something ignored");
        assert_eq!(ri.load(0), 0);
        assert_eq!(ri.load(1), 6);
        assert!(ri.get(10) && ri.get(14) && !ri.get(15) && ri.get(65));
        assert_eq!(ri.load(2), 68); // clipped to the union width
        assert_eq!(ri.load(5), 0);
    }

    #[test]
    fn from_bytes_checks_size() {
        let m = IgnoreMask::from_bytes(2, 2, &[0, 1, 1, 0]).expect("right size");
        assert!(m.get(1, 0) && m.get(0, 1) && !m.get(0, 0));
        assert!(IgnoreMask::from_bytes(2, 2, &[0; 3]).is_err());
        assert!(RowIgnore::new(&[], Some(&IgnoreMask::new(4, 4)), 4).is_none());
    }
}
