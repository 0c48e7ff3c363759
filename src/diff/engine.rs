//! The per-row comparison kernel: pixelmatch 7.2.0's main loop for one row of the compared area,
//! plus the "extra" area when the sizes differ, writing palette indices of the diff image.

use super::mask::RowIgnore;
use super::pixel::{aa_either, color_delta, grey_index, Hood, Rows, IDX_AA, IDX_DIFF, IDX_WHITE};
use super::regions::RegionBand;

/// Sizes involved in one comparison.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// Compared (overlap) area, pixelmatch's `width` x `height`.
    pub w: usize,
    pub h: usize,
    /// Union of both images: the output size.
    pub uw: usize,
    pub uh: usize,
    /// Size of the first image (source of the grey background).
    pub wa: usize,
    pub ha: usize,
}

impl Geometry {
    pub(crate) fn new(wa: usize, ha: usize, wb: usize, hb: usize) -> Geometry {
        Geometry { w: wa.min(wb), h: ha.min(hb), uw: wa.max(wb), uh: ha.max(hb), wa, ha }
    }
}

/// Comparison settings resolved for the kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub max_delta: f64,
    pub include_aa: bool,
}

/// Counters of one band of rows.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub diff: u64,
    pub aa: u64,
    pub ignored: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.diff += o.diff;
        self.aa += o.aa;
        self.ignored += o.ignored;
    }
}

/// One contiguous run of decoded rows (`first..end`), `stride` bytes per row.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub first: usize,
    pub end: usize,
    pub stride: usize,
    pub data: &'a [u8],
}

/// The rows of one image currently in memory: a few chunks (streaming) or the whole image.
pub(crate) struct Win<'a> {
    pub views: Vec<View<'a>>,
}

impl Rows for Win<'_> {
    #[inline]
    fn row(&self, y: usize) -> &[u8] {
        for v in &self.views {
            if y >= v.first && y < v.end {
                let o = (y - v.first) * v.stride;
                return &v.data[o..o + v.stride];
            }
        }
        // The pipeline keeps every row within two of the processed one; reaching this is a bug.
        &[]
    }
}

/// Reusable per-worker state.
pub(crate) struct RowKernel<'a> {
    pub geo: Geometry,
    pub params: Params,
    pub ignore: Option<RowIgnore<'a>>,
}

/// Last pixel drawn grey and its index: runs of one colour cost one computation.
struct GreyMemo {
    px: [u8; 4],
    idx: u8,
}

impl GreyMemo {
    fn new() -> GreyMemo {
        GreyMemo { px: [0, 0, 0, 0], idx: grey_index([0, 0, 0, 0]) }
    }

    #[inline]
    fn get(&mut self, p: [u8; 4]) -> u8 {
        if p != self.px {
            self.px = p;
            self.idx = grey_index(p);
        }
        self.idx
    }

    /// Grey palette indices of a run of pixels.
    #[inline]
    fn fill(&mut self, src: &[u8], out: &mut [u8]) {
        for (o, p) in out.iter_mut().zip(src.chunks_exact(4)) {
            *o = self.get([p[0], p[1], p[2], p[3]]);
        }
    }
}

/// Pixels per block in the skip-identical scan.
const BLOCK_PX: usize = 8;

impl RowKernel<'_> {
    /// Compare row `y` of the union. `a`/`b` must hold rows `y-2..=y+2` of the compared area (and
    /// row `y` of the first image when it is taller). `out`, if any, gets `uw` palette indices.
    pub(crate) fn row<R: Rows>(
        &mut self,
        a: &R,
        b: &R,
        y: usize,
        regions: &mut RegionBand<'_>,
        mut out: Option<&mut [u8]>,
        tally: &mut Tally,
    ) {
        let g = self.geo;
        let ignored_here = match self.ignore.as_mut() {
            Some(ig) => ig.load(y),
            None => 0,
        };
        tally.ignored += ignored_here as u64;
        let ig = if ignored_here > 0 { self.ignore.as_ref() } else { None };
        let a_row = if y < g.ha { Some(&a.row(y)[..g.wa * 4]) } else { None };
        let mut extra_from = 0;
        if y < g.h {
            extra_from = g.w;
            let ra = &a.row(y)[..g.w * 4];
            let rb = &b.row(y)[..g.w * 4];
            if ra == rb {
                if let Some(o) = out.as_deref_mut() {
                    GreyMemo::new().fill(ra, &mut o[..g.w]);
                }
            } else {
                self.differing_row(a, b, y, ra, rb, ig, regions, out.as_deref_mut(), tally);
            }
        }
        if extra_from < g.uw {
            extra(g, y, extra_from, a_row, ig, regions, out, tally);
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn differing_row<R: Rows>(
        &self,
        a: &R,
        b: &R,
        y: usize,
        ra: &[u8],
        rb: &[u8],
        ig: Option<&RowIgnore<'_>>,
        regions: &mut RegionBand<'_>,
        mut out: Option<&mut [u8]>,
        tally: &mut Tally,
    ) {
        let g = self.geo;
        let Params { max_delta, include_aa } = self.params;
        let base = y * g.w;
        let mut memo = GreyMemo::new();
        // Rows y-2..=y+2 of both images, fetched at the row's first anti-aliasing test.
        let mut hood = None;
        let mut x = 0;
        while x < g.w {
            // Runs of identical pixels go a block at a time (only drawn grey, if drawn at all).
            if x + BLOCK_PX <= g.w && ra[x * 4..(x + BLOCK_PX) * 4] == rb[x * 4..(x + BLOCK_PX) * 4] {
                if let Some(o) = out.as_deref_mut() {
                    memo.fill(&ra[x * 4..(x + BLOCK_PX) * 4], &mut o[x..x + BLOCK_PX]);
                }
                x += BLOCK_PX;
                continue;
            }
            let i = x * 4;
            let pa = [ra[i], ra[i + 1], ra[i + 2], ra[i + 3]];
            let pb = [rb[i], rb[i + 1], rb[i + 2], rb[i + 3]];
            let mut idx = None;
            if pa != pb && !ig.is_some_and(|ig| ig.get(x)) && color_delta(pa, pb, (base + x) * 4) > max_delta
            {
                if !include_aa && {
                    let (na, nb) =
                        hood.get_or_insert_with(|| (Hood::around(a, y, g.h), Hood::around(b, y, g.h)));
                    aa_either(na, nb, x, y, g.w, g.h)
                } {
                    tally.aa += 1;
                    idx = Some(IDX_AA);
                } else {
                    tally.diff += 1;
                    regions.add(x as u32, y as u32);
                    idx = Some(IDX_DIFF);
                }
            }
            if let Some(o) = out.as_deref_mut() {
                o[x] = match idx {
                    Some(v) => v,
                    None => memo.get(pa),
                };
            }
            x += 1;
        }
    }
}

/// Pixels of the union outside the compared area (`x0..uw` of row `y`): changed unless ignored.
#[allow(clippy::too_many_arguments)]
fn extra(
    g: Geometry,
    y: usize,
    x0: usize,
    a_row: Option<&[u8]>,
    ig: Option<&RowIgnore<'_>>,
    regions: &mut RegionBand<'_>,
    mut out: Option<&mut [u8]>,
    tally: &mut Tally,
) {
    let Some(ig) = ig else {
        tally.diff += (g.uw - x0) as u64;
        regions.add_span(y as u32, x0 as u32, g.uw as u32);
        if let Some(o) = out {
            o[x0..g.uw].fill(IDX_DIFF);
        }
        return;
    };
    let mut run_start = None;
    for x in x0..=g.uw {
        let changed = x < g.uw && !ig.get(x);
        match (changed, run_start) {
            (true, None) => run_start = Some(x),
            (false, Some(s)) => {
                regions.add_span(y as u32, s as u32, x as u32);
                tally.diff += (x - s) as u64;
                run_start = None;
            }
            _ => {}
        }
        if x == g.uw {
            break;
        }
        if let Some(o) = out.as_deref_mut() {
            o[x] = if changed {
                IDX_DIFF
            } else {
                match a_row {
                    Some(r) if x < g.wa => grey_index([r[x * 4], r[x * 4 + 1], r[x * 4 + 2], r[x * 4 + 3]]),
                    _ => IDX_WHITE,
                }
            };
        }
    }
}
