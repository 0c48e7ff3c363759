//! Changed-region bounding boxes: exact per-tile bounding boxes of counted pixels, tiles joined by
//! 8-connectivity, then boxes closer than a gap merged (the gap doubling until few enough remain).

use super::Rect;

/// Changes this close (pixels, both axes) end up in one region.
pub const MERGE_GAP: u32 = 16;
/// At most this many regions are reported; closer ones are merged further until it holds.
pub const MAX_REGIONS: usize = 64;
/// log2 of the tile size; tiles of `MERGE_GAP` pixels make neighbours within the gap adjacent tiles.
const TILE_SHIFT: u32 = 4;
/// Bound on the grid size (tiles grow for giant images).
const MAX_TILES: usize = 1 << 20;
/// Above this many connected components, coarsen the grid before pairwise merging.
const MAX_COMPONENTS: usize = 4096;

/// Inclusive bounding box; empty when `x0 > x1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BBox {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

const EMPTY: BBox = BBox { x0: u32::MAX, y0: u32::MAX, x1: 0, y1: 0 };

impl BBox {
    fn is_empty(&self) -> bool {
        self.x0 > self.x1
    }

    #[inline]
    fn add(&mut self, x0: u32, x1: u32, y: u32) {
        self.x0 = self.x0.min(x0);
        self.x1 = self.x1.max(x1);
        self.y0 = self.y0.min(y);
        self.y1 = self.y1.max(y);
    }

    fn union(&mut self, o: &BBox) {
        self.x0 = self.x0.min(o.x0);
        self.x1 = self.x1.max(o.x1);
        self.y0 = self.y0.min(o.y0);
        self.y1 = self.y1.max(o.y1);
    }

    fn near(&self, o: &BBox, gap: u32) -> bool {
        self.x0 <= o.x1.saturating_add(gap)
            && o.x0 <= self.x1.saturating_add(gap)
            && self.y0 <= o.y1.saturating_add(gap)
            && o.y0 <= self.y1.saturating_add(gap)
    }

    fn rect(&self) -> Rect {
        Rect { x: self.x0, y: self.y0, width: self.x1 - self.x0 + 1, height: self.y1 - self.y0 + 1 }
    }
}

/// Tile grid collecting changed pixels of a whole image.
pub(crate) struct RegionGrid {
    shift: u32,
    tiles_x: usize,
    tiles_y: usize,
    boxes: Vec<BBox>,
}

impl RegionGrid {
    pub(crate) fn new(width: u32, height: u32) -> RegionGrid {
        let mut shift = TILE_SHIFT;
        let tiles = |s: u32| ((width as usize) >> s).max(1) * ((height as usize) >> s).max(1);
        while tiles(shift) > MAX_TILES {
            shift += 1;
        }
        let tiles_x = (width as usize).div_ceil(1 << shift).max(1);
        let tiles_y = (height as usize).div_ceil(1 << shift).max(1);
        RegionGrid { shift, tiles_x, tiles_y, boxes: vec![EMPTY; tiles_x * tiles_y] }
    }

    /// Rows per tile row: parallel bands must start at multiples of this.
    pub(crate) fn tile_rows(&self) -> usize {
        1 << self.shift
    }

    /// The whole grid as one band.
    pub(crate) fn band(&mut self) -> RegionBand<'_> {
        RegionBand { shift: self.shift, tiles_x: self.tiles_x, tile_y0: 0, boxes: &mut self.boxes }
    }

    /// Disjoint bands of `band_rows` image rows (a multiple of `tile_rows()`).
    pub(crate) fn bands(&mut self, band_rows: usize) -> impl Iterator<Item = RegionBand<'_>> {
        let tile_rows_per_band = (band_rows >> self.shift).max(1);
        let (shift, tiles_x) = (self.shift, self.tiles_x);
        self.boxes.chunks_mut(tiles_x * tile_rows_per_band).enumerate().map(move |(i, boxes)| RegionBand {
            shift,
            tiles_x,
            tile_y0: i * tile_rows_per_band,
            boxes,
        })
    }

    /// Final regions, sorted top to bottom, at most `MAX_REGIONS`.
    pub(crate) fn finish(mut self) -> Vec<Rect> {
        let mut boxes = loop {
            let comps = self.components();
            if comps.len() <= MAX_COMPONENTS || (self.tiles_x == 1 && self.tiles_y == 1) {
                break comps;
            }
            self = self.coarsen();
        };
        let mut gap = MERGE_GAP;
        loop {
            merge_near(&mut boxes, gap);
            if boxes.len() <= MAX_REGIONS {
                break;
            }
            gap = gap.saturating_mul(2);
        }
        boxes.sort_by_key(|b| (b.y0, b.x0));
        boxes.iter().map(BBox::rect).collect()
    }

    fn coarsen(&self) -> RegionGrid {
        let tiles_x = self.tiles_x.div_ceil(2);
        let tiles_y = self.tiles_y.div_ceil(2);
        let mut boxes = vec![EMPTY; tiles_x * tiles_y];
        for ty in 0..self.tiles_y {
            for tx in 0..self.tiles_x {
                let b = &self.boxes[ty * self.tiles_x + tx];
                if !b.is_empty() {
                    boxes[(ty / 2) * tiles_x + tx / 2].union(b);
                }
            }
        }
        RegionGrid { shift: self.shift + 1, tiles_x, tiles_y, boxes }
    }

    /// 8-connected components of non-empty tiles, as bounding boxes.
    fn components(&self) -> Vec<BBox> {
        let n = self.boxes.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut i: usize) -> usize {
            while p[i] != i {
                p[i] = p[p[i]];
                i = p[i];
            }
            i
        }
        let tx = self.tiles_x;
        for i in 0..n {
            if self.boxes[i].is_empty() {
                continue;
            }
            let (x, y) = (i % tx, i / tx);
            // Left, up-left, up, up-right neighbours (each pair visited once).
            let mut neigh = [None; 4];
            if x > 0 {
                neigh[0] = Some(i - 1);
            }
            if y > 0 {
                neigh[2] = Some(i - tx);
                if x > 0 {
                    neigh[1] = Some(i - tx - 1);
                }
                if x + 1 < tx {
                    neigh[3] = Some(i - tx + 1);
                }
            }
            for j in neigh.into_iter().flatten() {
                if !self.boxes[j].is_empty() {
                    let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                    if ri != rj {
                        parent[ri.max(rj)] = ri.min(rj);
                    }
                }
            }
        }
        let mut out: Vec<BBox> = Vec::new();
        let mut slot = vec![usize::MAX; n];
        for i in 0..n {
            if self.boxes[i].is_empty() {
                continue;
            }
            let r = find(&mut parent, i);
            if slot[r] == usize::MAX {
                slot[r] = out.len();
                out.push(self.boxes[i]);
            } else {
                out[slot[r]].union(&self.boxes[i]);
            }
        }
        out
    }
}

/// Merge boxes closer than `gap` until no two are.
fn merge_near(boxes: &mut Vec<BBox>, gap: u32) {
    let mut changed = true;
    while changed {
        changed = false;
        let mut i = 0;
        while i < boxes.len() {
            let mut j = i + 1;
            while j < boxes.len() {
                if boxes[i].near(&boxes[j], gap) {
                    let b = boxes.swap_remove(j);
                    boxes[i].union(&b);
                    changed = true;
                } else {
                    j += 1;
                }
            }
            i += 1;
        }
    }
}

/// A horizontal slice of the grid that one worker fills.
pub(crate) struct RegionBand<'a> {
    shift: u32,
    tiles_x: usize,
    tile_y0: usize,
    boxes: &'a mut [BBox],
}

impl RegionBand<'_> {
    /// Record one changed pixel.
    #[inline]
    pub(crate) fn add(&mut self, x: u32, y: u32) {
        self.add_span(y, x, x + 1);
    }

    /// Record changed pixels `x0..x1` of row `y`.
    pub(crate) fn add_span(&mut self, y: u32, x0: u32, x1: u32) {
        if x1 <= x0 {
            return;
        }
        let row = ((y >> self.shift) as usize - self.tile_y0) * self.tiles_x;
        let (t0, t1) = ((x0 >> self.shift) as usize, ((x1 - 1) >> self.shift) as usize);
        for t in t0..=t1 {
            let lo = x0.max((t as u32) << self.shift);
            let hi = (x1 - 1).min((((t + 1) as u32) << self.shift) - 1);
            self.boxes[row + t].add(lo, hi, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(w: u32, h: u32, pts: &[(u32, u32)]) -> Vec<Rect> {
        let mut g = RegionGrid::new(w, h);
        let mut b = g.band();
        for &(x, y) in pts {
            b.add(x, y);
        }
        g.finish()
    }

    #[test]
    fn near_changes_merge_far_ones_do_not() {
        let r = regions(200, 200, &[(10, 10), (20, 25), (150, 150)]);
        assert_eq!(
            r,
            vec![Rect { x: 10, y: 10, width: 11, height: 16 }, Rect { x: 150, y: 150, width: 1, height: 1 }]
        );
        assert!(regions(200, 200, &[]).is_empty());
    }

    #[test]
    fn region_count_is_capped() {
        let pts: Vec<(u32, u32)> = (0..40).flat_map(|i| (0..40).map(move |j| (i * 50, j * 50))).collect();
        let r = regions(2000, 2000, &pts);
        assert!(!r.is_empty() && r.len() <= MAX_REGIONS, "{}", r.len());
        let covered = |x: u32, y: u32| {
            r.iter().any(|b| x >= b.x && x < b.x + b.width && y >= b.y && y < b.y + b.height)
        };
        assert!(pts.iter().all(|&(x, y)| covered(x, y)));
    }

    #[test]
    fn spans_cross_tiles_and_bands_are_disjoint() {
        let mut g = RegionGrid::new(100, 64);
        assert_eq!(g.tile_rows(), 16);
        let mut bands: Vec<_> = g.bands(32).collect();
        assert_eq!(bands.len(), 2);
        bands[1].add_span(40, 5, 60);
        drop(bands);
        assert_eq!(g.finish(), vec![Rect { x: 5, y: 40, width: 55, height: 1 }]);
    }
}
