//! Orchestration: decode both PNGs on their own threads row chunk by row chunk, compare in lockstep
//! with a rolling window (rows y-2..y+2) and stream the diff image out as rows are done; or, for two
//! decoded images, compare bands of rows in parallel on rayon.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use rayon::prelude::*;

use super::codec::{indices_to_rgba, DiffPngWriter, PngRows};
use super::engine::{Geometry, Params, RowKernel, Tally, View, Win};
use super::mask::RowIgnore;
use super::pixel::max_delta;
use super::regions::RegionGrid;
use super::{DiffError, DiffOptions, DiffOutcome, ImageSource, RgbaImage};

/// Target size of one decoded chunk (rows of one image handed over at a time).
const CHUNK_BYTES: usize = 256 * 1024;
const MIN_CHUNK_ROWS: usize = 4;
const MAX_CHUNK_ROWS: usize = 512;
/// Decoded chunks in flight per image ahead of the comparison.
const CHANNEL_CHUNKS: usize = 4;
/// Rows below and above the current one the anti-aliasing test may read.
const WINDOW_REACH: usize = 2;
/// Rows per parallel band for in-memory images (rounded up to whole region tiles).
const BAND_ROWS: usize = 64;

/// Rows `first..first + rows` of one image, RGBA8.
struct Chunk {
    first: usize,
    rows: usize,
    data: Vec<u8>,
}

/// Where one image's rows come from during a streaming comparison.
enum Feed<'a> {
    Memory(&'a RgbaImage),
    Stream {
        rx: Receiver<Result<Chunk, DiffError>>,
        recycle: Sender<Vec<u8>>,
        chunks: VecDeque<Chunk>,
        received: usize,
        height: usize,
        stride: usize,
    },
}

impl<'a> Feed<'a> {
    /// Is row `y` processable, i.e. are rows up to `y + WINDOW_REACH` (clamped) here?
    fn ready(&self, y: usize) -> bool {
        match self {
            Feed::Memory(_) => true,
            Feed::Stream { received, height, .. } => *received >= (y + WINDOW_REACH + 1).min(*height),
        }
    }

    /// First row that is not processable yet (or `usize::MAX`).
    fn ready_end(&self) -> usize {
        match self {
            Feed::Memory(_) => usize::MAX,
            Feed::Stream { received, height, .. } => {
                if received >= height {
                    usize::MAX
                } else {
                    received.saturating_sub(WINDOW_REACH)
                }
            }
        }
    }

    fn recv(&mut self, name: &str) -> Result<(), DiffError> {
        if let Feed::Stream { rx, chunks, received, .. } = self {
            let chunk = rx
                .recv()
                .map_err(|source| DiffError::DecoderStopped { name: name.to_string(), source })??;
            *received = chunk.first + chunk.rows;
            chunks.push_back(chunk);
        }
        Ok(())
    }

    /// Drop chunks no row at or after `next_y` can need.
    fn prune(&mut self, next_y: usize) {
        if let Feed::Stream { chunks, recycle, .. } = self {
            while chunks.front().is_some_and(|c| c.first + c.rows + WINDOW_REACH <= next_y) {
                if let Some(c) = chunks.pop_front() {
                    // Back to the decoder for reuse; once it has decoded its last row it takes none
                    // and the buffer is freed here, which is all a failed send means.
                    if recycle.send(c.data).is_err() {
                        tracing::trace!("decoder finished: chunk buffer freed");
                    }
                }
            }
        }
    }

    fn window(&self) -> Win<'_> {
        match self {
            Feed::Memory(img) => Win { views: vec![memory_view(img)] },
            Feed::Stream { chunks, stride, .. } => Win {
                views: chunks
                    .iter()
                    .map(|c| View { first: c.first, end: c.first + c.rows, stride: *stride, data: &c.data })
                    .collect(),
            },
        }
    }
}

fn memory_view(img: &RgbaImage) -> View<'_> {
    let stride = img.width as usize * 4;
    let rows = img.data.len().checked_div(stride).unwrap_or(0).min(img.height as usize);
    View { first: 0, end: rows, stride, data: &img.data }
}

/// Usable height of a decoded image (rows its buffer really holds).
fn memory_height(img: &RgbaImage) -> usize {
    memory_view(img).end
}

fn decoder_thread(
    mut rows: PngRows<'_>,
    chunk_rows: usize,
    tx: SyncSender<Result<Chunk, DiffError>>,
    recycle: Receiver<Vec<u8>>,
) {
    let stride = rows.width() * 4;
    let height = rows.height();
    let mut y = 0;
    while y < height {
        let n = chunk_rows.min(height - y);
        let mut data = recycle.try_recv().unwrap_or_default();
        data.resize(n * stride, 0);
        for r in 0..n {
            if let Err(e) = rows.read_into(&mut data[r * stride..(r + 1) * stride]) {
                if let Err(mpsc::SendError(Err(e))) = tx.send(Err(e)) {
                    // The comparison has already stopped (the other image failed, or a write did).
                    tracing::warn!(error = %e, "decode error after the comparison had stopped");
                }
                return;
            }
        }
        if tx.send(Ok(Chunk { first: y, rows: n, data })).is_err() {
            return;
        }
        y += n;
    }
}

/// Output targets of one comparison.
struct Sinks<'w> {
    png: Option<DiffPngWriter<'w>>,
    rgba: Option<Vec<u8>>,
    row: Vec<u8>,
}

impl Sinks<'_> {
    fn wanted(&self) -> bool {
        self.png.is_some() || self.rgba.is_some()
    }

    fn emit(&mut self, row: &[u8]) -> Result<(), DiffError> {
        if let Some(p) = self.png.as_mut() {
            p.write_row(row)?;
        }
        if let Some(img) = self.rgba.as_mut() {
            let o = img.len();
            img.resize(o + row.len() * 4, 0);
            indices_to_rgba(row, &mut img[o..]);
        }
        Ok(())
    }
}

fn params(opts: &DiffOptions) -> Params {
    Params { max_delta: max_delta(opts.threshold), include_aa: opts.include_aa }
}

/// A source opened for reading: header known.
#[allow(clippy::large_enum_variant)] // one per side per comparison; boxing buys nothing
enum Opened<'a> {
    Memory(&'a RgbaImage),
    Png(PngRows<'a>),
}

impl Opened<'_> {
    fn size(&self) -> (usize, usize) {
        match self {
            Opened::Memory(img) => (img.width as usize, memory_height(img)),
            Opened::Png(r) => (r.width(), r.height()),
        }
    }
}

fn open<'a>(src: &ImageSource<'a>) -> Result<Opened<'a>, DiffError> {
    Ok(match *src {
        ImageSource::Decoded(img) => Opened::Memory(img),
        ImageSource::Png { bytes, name } => Opened::Png(PngRows::open(bytes, name)?),
    })
}

fn name_of<'a>(src: &ImageSource<'a>, default: &'a str) -> &'a str {
    match src {
        ImageSource::Png { name, .. } => name,
        ImageSource::Decoded(_) => default,
    }
}

/// Compare two sources; see `super::compare_sources`.
pub(crate) fn run(
    a: ImageSource<'_>,
    b: ImageSource<'_>,
    opts: &DiffOptions,
    png_out: Option<&mut dyn Write>,
) -> Result<DiffOutcome, DiffError> {
    let same_bytes = match (&a, &b) {
        (ImageSource::Png { bytes: x, .. }, ImageSource::Png { bytes: y, .. }) => x == y,
        (ImageSource::Decoded(x), ImageSource::Decoded(y)) => std::ptr::eq(*x, *y),
        _ => false,
    };
    let oa = open(&a)?;
    let (wa, ha) = oa.size();
    if same_bytes {
        return identical(oa, wa, ha, opts, png_out);
    }
    let ob = open(&b)?;
    let (wb, hb) = ob.size();
    let geo = Geometry::new(wa, ha, wb, hb);
    let mut sinks = make_sinks(geo, opts, png_out)?;
    let mut grid = RegionGrid::new(geo.uw as u32, geo.uh as u32);
    let tally = match (oa, ob) {
        (Opened::Memory(ia), Opened::Memory(ib)) => {
            let (tally, indices) = parallel(ia, ib, geo, opts, &mut grid, sinks.wanted());
            emit_all(&mut sinks, indices, geo.uw)?;
            tally
        }
        (oa, ob) => {
            let names = [name_of(&a, "a"), name_of(&b, "b")];
            streaming(oa, ob, names, geo, opts, &mut grid, &mut sinks)?
        }
    };
    finish(geo, tally, grid, sinks, (wa, ha) != (wb, hb))
}

fn make_sinks<'w>(
    geo: Geometry,
    opts: &DiffOptions,
    png_out: Option<&'w mut dyn Write>,
) -> Result<Sinks<'w>, DiffError> {
    let png = match png_out {
        Some(w) => {
            if geo.uw == 0 || geo.uh == 0 {
                return Err(DiffError::EmptyDiff);
            }
            Some(DiffPngWriter::new(w, geo.uw as u32, geo.uh as u32)?)
        }
        None => None,
    };
    let rgba = opts.diff_image.then(|| Vec::with_capacity(geo.uw * geo.uh * 4));
    Ok(Sinks { png, rgba, row: vec![0; geo.uw] })
}

fn finish(
    geo: Geometry,
    tally: Tally,
    grid: RegionGrid,
    sinks: Sinks<'_>,
    size_changed: bool,
) -> Result<DiffOutcome, DiffError> {
    if let Some(p) = sinks.png {
        p.finish()?;
    }
    let mut o = outcome(geo, tally, grid, size_changed);
    o.diff_image = sinks.rgba.map(|data| RgbaImage { width: geo.uw as u32, height: geo.uh as u32, data });
    Ok(o)
}

fn outcome(geo: Geometry, tally: Tally, grid: RegionGrid, size_changed: bool) -> DiffOutcome {
    let union = geo.uw as u64 * geo.uh as u64;
    let total = union - tally.ignored;
    DiffOutcome {
        diff_pixels: tally.diff,
        aa_pixels: tally.aa,
        total_pixels: total,
        distortion: if total == 0 { 0.0 } else { tally.diff as f64 / total as f64 },
        size_changed,
        width: geo.uw as u32,
        height: geo.uh as u32,
        regions: grid.finish(),
        diff_image: None,
        diff_png: None,
    }
}

/// Both inputs are the same bytes (or the same image): nothing differs; decode only if an image is
/// wanted (pixelmatch draws the first image in grey then).
fn identical(
    oa: Opened<'_>,
    w: usize,
    h: usize,
    opts: &DiffOptions,
    png_out: Option<&mut dyn Write>,
) -> Result<DiffOutcome, DiffError> {
    let geo = Geometry::new(w, h, w, h);
    let mut sinks = make_sinks(geo, opts, png_out)?;
    let mut grid = RegionGrid::new(w as u32, h as u32);
    let mut ignore = RowIgnore::new(&opts.ignore, opts.ignore_mask.as_deref(), w);
    let mut tally = Tally::default();
    if let Some(ig) = ignore.as_mut() {
        for y in 0..h {
            tally.ignored += ig.load(y) as u64;
        }
    }
    if sinks.wanted() {
        // Same rows on both sides: the kernel's identical-row path draws the grey image.
        match oa {
            Opened::Memory(img) => {
                let (_, indices) = parallel(img, img, geo, opts, &mut grid, true);
                emit_all(&mut sinks, indices, geo.uw)?;
            }
            Opened::Png(mut rows) => {
                let stride = w * 4;
                let mut buf = vec![0u8; stride];
                let mut kernel = RowKernel { geo, params: params(opts), ignore: None };
                let mut band = grid.band();
                let mut t = Tally::default();
                for y in 0..h {
                    rows.read_into(&mut buf)?;
                    let win = Win { views: vec![View { first: y, end: y + 1, stride, data: &buf }] };
                    kernel.row(&win, &win, y, &mut band, Some(&mut sinks.row), &mut t);
                    let row = std::mem::take(&mut sinks.row);
                    let r = sinks.emit(&row);
                    sinks.row = row;
                    r?;
                }
            }
        }
    }
    finish(geo, tally, grid, sinks, false)
}

/// Two decoded images: bands of rows on rayon, each with its own kernel, tiles and output slice.
/// Returns the tally and, if `want_out`, the diff image as palette indices.
fn parallel(
    a: &RgbaImage,
    b: &RgbaImage,
    geo: Geometry,
    opts: &DiffOptions,
    grid: &mut RegionGrid,
    want_out: bool,
) -> (Tally, Option<Vec<u8>>) {
    let band_rows = BAND_ROWS.div_ceil(grid.tile_rows()) * grid.tile_rows();
    let mut indices = if want_out { vec![0u8; geo.uw * geo.uh] } else { Vec::new() };
    let bands: Vec<_> = grid.bands(band_rows).collect();
    let out_chunks: Vec<Option<&mut [u8]>> = if want_out {
        indices.chunks_mut((band_rows * geo.uw).max(1)).map(Some).collect()
    } else {
        (0..bands.len()).map(|_| None).collect()
    };
    let prm = params(opts);
    let tally = bands
        .into_par_iter()
        .zip(out_chunks)
        .enumerate()
        .map(|(i, (mut band, mut out))| {
            let wa = Win { views: vec![memory_view(a)] };
            let wb = Win { views: vec![memory_view(b)] };
            let mut kernel = RowKernel {
                geo,
                params: prm,
                ignore: RowIgnore::new(&opts.ignore, opts.ignore_mask.as_deref(), geo.uw),
            };
            let mut t = Tally::default();
            let y0 = i * band_rows;
            for y in y0..(y0 + band_rows).min(geo.uh) {
                let o = out.as_deref_mut().map(|o| &mut o[(y - y0) * geo.uw..(y - y0 + 1) * geo.uw]);
                kernel.row(&wa, &wb, y, &mut band, o, &mut t);
            }
            t
        })
        .reduce(Tally::default, |mut x, y| {
            x += y;
            x
        });
    (tally, want_out.then_some(indices))
}

/// Feed a whole palette-index image to the sinks.
fn emit_all(sinks: &mut Sinks<'_>, indices: Option<Vec<u8>>, width: usize) -> Result<(), DiffError> {
    if let Some(idx) = indices {
        if let Some(rgba) = sinks.rgba.as_mut() {
            rgba.resize(idx.len() * 4, 0);
            indices_to_rgba(&idx, rgba);
        }
        if let Some(p) = sinks.png.as_mut() {
            for row in idx.chunks_exact(width.max(1)) {
                p.write_row(row)?;
            }
        }
    }
    Ok(())
}

/// Two decoded images, no PNG output: cannot fail.
pub(crate) fn run_decoded(a: &RgbaImage, b: &RgbaImage, opts: &DiffOptions) -> DiffOutcome {
    let (wa, ha) = (a.width as usize, memory_height(a));
    let (wb, hb) = (b.width as usize, memory_height(b));
    let geo = Geometry::new(wa, ha, wb, hb);
    let mut grid = RegionGrid::new(geo.uw as u32, geo.uh as u32);
    let (tally, indices) = parallel(a, b, geo, opts, &mut grid, opts.diff_image);
    let mut outcome = outcome(geo, tally, grid, (wa, ha) != (wb, hb));
    if let Some(idx) = indices {
        let mut data = vec![0u8; idx.len() * 4];
        indices_to_rgba(&idx, &mut data);
        outcome.diff_image = Some(RgbaImage { width: geo.uw as u32, height: geo.uh as u32, data });
    }
    outcome
}

/// At least one PNG: decoder threads feed chunks; this thread compares and writes in lockstep.
fn streaming(
    oa: Opened<'_>,
    ob: Opened<'_>,
    names: [&str; 2],
    geo: Geometry,
    opts: &DiffOptions,
    grid: &mut RegionGrid,
    sinks: &mut Sinks<'_>,
) -> Result<Tally, DiffError> {
    let chunk_rows = (CHUNK_BYTES / (geo.uw * 4).max(1)).clamp(MIN_CHUNK_ROWS, MAX_CHUNK_ROWS);
    std::thread::scope(|scope| {
        let mut feeds = [oa, ob].map(|o| match o {
            Opened::Memory(img) => Feed::Memory(img),
            Opened::Png(rows) => {
                let (tx, rx) = mpsc::sync_channel(CHANNEL_CHUNKS);
                let (recycle, recycle_rx) = mpsc::channel();
                let (height, stride) = (rows.height(), rows.width() * 4);
                scope.spawn(move || decoder_thread(rows, chunk_rows, tx, recycle_rx));
                Feed::Stream { rx, recycle, chunks: VecDeque::new(), received: 0, height, stride }
            }
        });
        let mut kernel = RowKernel {
            geo,
            params: params(opts),
            ignore: RowIgnore::new(&opts.ignore, opts.ignore_mask.as_deref(), geo.uw),
        };
        let want_out = sinks.wanted();
        let mut band = grid.band();
        let mut tally = Tally::default();
        let mut next_y = 0;
        let mut row = std::mem::take(&mut sinks.row);
        let result = (|| {
            while next_y < geo.uh {
                for (feed, name) in feeds.iter_mut().zip(names) {
                    while !feed.ready(next_y) {
                        feed.recv(name)?;
                    }
                }
                let end = feeds.iter().map(Feed::ready_end).min().unwrap_or(usize::MAX).min(geo.uh);
                {
                    let (wa, wb) = (feeds[0].window(), feeds[1].window());
                    for y in next_y..end {
                        let o = if want_out { Some(&mut row[..]) } else { None };
                        kernel.row(&wa, &wb, y, &mut band, o, &mut tally);
                        if want_out {
                            sinks.emit(&row)?;
                        }
                    }
                }
                next_y = end;
                for feed in feeds.iter_mut() {
                    feed.prune(next_y);
                }
            }
            Ok(tally)
        })();
        // Dropping the feeds closes the channels, so decoder threads stop if we bailed out early.
        drop(feeds);
        result
    })
}
