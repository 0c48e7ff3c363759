//! PNG input row by row (converted to RGBA8 the way pngjs does) and the palette PNG diff-image writer.

use std::io::{Cursor, Write};

use super::pixel::{palette_rgb, palette_rgba};
use super::{DiffError, RgbaImage, MAX_PIXELS};

/// Decoder memory limit handed to the png crate (its own buffers only; rows go to our buffers).
const DECODER_LIMIT_BYTES: usize = 1 << 30;
const MAX_U16: f64 = 65535.0;

/// The row layouts the png crate yields after `EXPAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Rgba8,
    Rgb8,
    Grey8,
    GreyAlpha8,
    Rgba16,
    Rgb16,
    Grey16,
    GreyAlpha16,
}

/// A PNG being decoded one row at a time into RGBA8 (the strip reader of a page's image: never more
/// than one row of it decoded at a time, besides the decoder's own window).
pub struct PngRows<'a> {
    reader: png::Reader<Cursor<&'a [u8]>>,
    name: String,
    width: usize,
    height: usize,
    layout: Layout,
    /// Colour-key transparency (tRNS on grey/RGB): pngjs zeroes such pixels entirely.
    zero_transparent: bool,
    scratch: Vec<u8>,
    /// Interlaced images are decoded whole; rows are then served from here.
    frame: Option<Vec<u8>>,
    line_size: usize,
    next_row: usize,
}

fn decode_err(name: &str) -> impl FnOnce(png::DecodingError) -> DiffError + '_ {
    move |source| DiffError::Decode { name: name.to_string(), source }
}

fn unusable(name: &str, reason: impl Into<String>) -> DiffError {
    DiffError::Unusable { name: name.to_string(), reason: reason.into() }
}

impl<'a> PngRows<'a> {
    /// Read the header; fails on anything that is not a readable PNG.
    pub fn open(bytes: &'a [u8], name: &str) -> Result<PngRows<'a>, DiffError> {
        let mut dec =
            png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: DECODER_LIMIT_BYTES });
        dec.set_transformations(png::Transformations::EXPAND);
        let reader = dec.read_info().map_err(decode_err(name))?;
        let info = reader.info();
        let (width, height) = (info.width, info.height);
        if width as u64 * height as u64 > MAX_PIXELS {
            return Err(DiffError::TooLarge { name: name.to_string(), width, height });
        }
        let zero_transparent =
            info.trns.is_some() && matches!(info.color_type, png::ColorType::Grayscale | png::ColorType::Rgb);
        let interlaced = info.interlaced;
        let layout = match reader.output_color_type() {
            (png::ColorType::Rgba, png::BitDepth::Eight) => Layout::Rgba8,
            (png::ColorType::Rgb, png::BitDepth::Eight) => Layout::Rgb8,
            (png::ColorType::Grayscale, png::BitDepth::Eight) => Layout::Grey8,
            (png::ColorType::GrayscaleAlpha, png::BitDepth::Eight) => Layout::GreyAlpha8,
            (png::ColorType::Rgba, png::BitDepth::Sixteen) => Layout::Rgba16,
            (png::ColorType::Rgb, png::BitDepth::Sixteen) => Layout::Rgb16,
            (png::ColorType::Grayscale, png::BitDepth::Sixteen) => Layout::Grey16,
            (png::ColorType::GrayscaleAlpha, png::BitDepth::Sixteen) => Layout::GreyAlpha16,
            other => return Err(unusable(name, format!("unsupported pixel format {other:?}"))),
        };
        let line_size = reader.output_line_size(width).ok_or_else(|| unusable(name, "row size overflows"))?;
        let mut rows = PngRows {
            reader,
            name: name.to_string(),
            width: width as usize,
            height: height as usize,
            layout,
            zero_transparent,
            scratch: vec![0; line_size],
            frame: None,
            line_size,
            next_row: 0,
        };
        if interlaced {
            let size =
                rows.reader.output_buffer_size().ok_or_else(|| unusable(name, "image size overflows"))?;
            let mut frame = vec![0; size];
            rows.reader.next_frame(&mut frame).map_err(decode_err(name))?;
            rows.frame = Some(frame);
        }
        Ok(rows)
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Decode the next row into `dst` (`width * 4` bytes of RGBA8).
    pub fn read_into(&mut self, dst: &mut [u8]) -> Result<(), DiffError> {
        let y = self.next_row;
        if y >= self.height {
            return Err(unusable(&self.name, "read past the last row"));
        }
        self.next_row += 1;
        if let Some(frame) = &self.frame {
            let src = &frame[y * self.line_size..(y + 1) * self.line_size];
            convert(self.layout, src, dst);
        } else if self.layout == Layout::Rgba8 {
            match self.reader.read_row(dst).map_err(decode_err(&self.name))? {
                Some(_) => {}
                None => return Err(unusable(&self.name, "image data ends early")),
            }
        } else {
            match self.reader.read_row(&mut self.scratch).map_err(decode_err(&self.name))? {
                Some(_) => {}
                None => return Err(unusable(&self.name, "image data ends early")),
            }
            convert(self.layout, &self.scratch, dst);
        }
        if self.zero_transparent {
            for p in dst.chunks_exact_mut(4) {
                if p[3] == 0 {
                    p.copy_from_slice(&[0, 0, 0, 0]);
                }
            }
        }
        Ok(())
    }

    /// Decode everything into one image.
    pub(crate) fn into_image(mut self) -> Result<RgbaImage, DiffError> {
        let stride = self.width * 4;
        let mut data = vec![0u8; stride * self.height];
        for row in data.chunks_exact_mut(stride.max(1)).take(self.height) {
            self.read_into(row)?;
        }
        Ok(RgbaImage { width: self.width as u32, height: self.height as u32, data })
    }
}

/// pngjs' 16-to-8-bit scaling: `floor(v * 255 / 65535 + 0.5)`.
#[inline]
fn scale16(hi: u8, lo: u8) -> u8 {
    let v = u16::from_be_bytes([hi, lo]) as f64;
    ((v * 255.0) / MAX_U16 + 0.5).floor() as u8
}

fn convert(layout: Layout, src: &[u8], dst: &mut [u8]) {
    match layout {
        Layout::Rgba8 => dst.copy_from_slice(&src[..dst.len()]),
        Layout::Rgb8 => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(3)) {
                d.copy_from_slice(&[s[0], s[1], s[2], 255]);
            }
        }
        Layout::Grey8 => {
            for (d, &g) in dst.chunks_exact_mut(4).zip(src) {
                d.copy_from_slice(&[g, g, g, 255]);
            }
        }
        Layout::GreyAlpha8 => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(2)) {
                d.copy_from_slice(&[s[0], s[0], s[0], s[1]]);
            }
        }
        Layout::Rgba16 => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(8)) {
                d.copy_from_slice(&[
                    scale16(s[0], s[1]),
                    scale16(s[2], s[3]),
                    scale16(s[4], s[5]),
                    scale16(s[6], s[7]),
                ]);
            }
        }
        Layout::Rgb16 => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(6)) {
                d.copy_from_slice(&[scale16(s[0], s[1]), scale16(s[2], s[3]), scale16(s[4], s[5]), 255]);
            }
        }
        Layout::Grey16 => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(2)) {
                let g = scale16(s[0], s[1]);
                d.copy_from_slice(&[g, g, g, 255]);
            }
        }
        Layout::GreyAlpha16 => {
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                let g = scale16(s[0], s[1]);
                d.copy_from_slice(&[g, g, g, scale16(s[2], s[3])]);
            }
        }
    }
}

/// Bytes of compressed data per IDAT chunk.
const IDAT_BYTES: usize = 1 << 18;
const PNG_SIGNATURE: [u8; 8] = [137, 80, 78, 71, 13, 10, 26, 10];
/// PNG colour type "indexed" and filter type "Sub".
const COLOR_INDEXED: u8 = 3;
const FILTER_SUB: u8 = 1;

fn write_err(source: std::io::Error) -> DiffError {
    DiffError::WriteDiff { source }
}

fn write_chunk(out: &mut dyn Write, kind: &[u8; 4], data: &[u8]) -> std::io::Result<()> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.write_all(&(data.len() as u32).to_be_bytes())?;
    out.write_all(kind)?;
    out.write_all(data)?;
    out.write_all(&crc.finalize().to_be_bytes())
}

/// Collects the zlib stream and emits it as IDAT chunks.
struct IdatWriter<'w> {
    out: &'w mut dyn Write,
    buf: Vec<u8>,
}

impl Write for IdatWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= IDAT_BYTES {
            write_chunk(self.out, b"IDAT", &self.buf)?;
            self.buf.clear();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            write_chunk(self.out, b"IDAT", &self.buf)?;
            self.buf.clear();
        }
        self.out.flush()
    }
}

/// Streaming writer of the diff image as an 8-bit palette PNG (index 0 red, 1 yellow, others grey),
/// rows Sub-filtered and compressed with fdeflate: decodes to exactly pixelmatch's RGBA output while
/// compressing a quarter of the bytes.
pub(crate) struct DiffPngWriter<'w> {
    z: fdeflate::Compressor<IdatWriter<'w>>,
    filtered: Vec<u8>,
}

impl<'w> DiffPngWriter<'w> {
    pub(crate) fn new(out: &'w mut dyn Write, width: u32, height: u32) -> Result<Self, DiffError> {
        out.write_all(&PNG_SIGNATURE).map_err(write_err)?;
        let mut ihdr = [0u8; 13];
        ihdr[0..4].copy_from_slice(&width.to_be_bytes());
        ihdr[4..8].copy_from_slice(&height.to_be_bytes());
        ihdr[8] = 8; // bit depth
        ihdr[9] = COLOR_INDEXED;
        write_chunk(out, b"IHDR", &ihdr).map_err(write_err)?;
        write_chunk(out, b"PLTE", &palette_rgb()).map_err(write_err)?;
        let z = fdeflate::Compressor::new(IdatWriter { out, buf: Vec::with_capacity(IDAT_BYTES + 64) })
            .map_err(write_err)?;
        Ok(DiffPngWriter { z, filtered: vec![0; width as usize + 1] })
    }

    /// Append one row of palette indices.
    pub(crate) fn write_row(&mut self, idx: &[u8]) -> Result<(), DiffError> {
        let f = &mut self.filtered;
        f[0] = FILTER_SUB;
        let mut prev = 0u8;
        for (d, &v) in f[1..].iter_mut().zip(idx) {
            *d = v.wrapping_sub(prev);
            prev = v;
        }
        self.z.write_data(f).map_err(write_err)
    }

    pub(crate) fn finish(self) -> Result<(), DiffError> {
        let mut w = self.z.finish().map_err(write_err)?;
        w.flush().map_err(write_err)?;
        write_chunk(w.out, b"IEND", &[]).map_err(write_err)?;
        w.out.flush().map_err(write_err)
    }
}

/// Expand palette indices into RGBA8.
pub(crate) fn indices_to_rgba(idx: &[u8], dst: &mut [u8]) {
    for (d, &i) in dst.chunks_exact_mut(4).zip(idx) {
        d.copy_from_slice(&palette_rgba(i));
    }
}
