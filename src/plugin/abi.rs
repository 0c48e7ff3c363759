//! ABI v1 of sitediff plugins as data: export names and signatures, the binary layouts the host
//! writes (selector rectangles) and reads (mask and score outputs), and their validation.
//! Pure functions; `plugins/ABI.md` is the prose version of this file.

use std::ops::Range;

use crate::capture::SelectorRects;
use crate::diff::Rect;

/// The ABI version this host speaks.
pub const ABI_VERSION: i32 = 1;

/// Exported linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// `() -> i32`: the ABI version the module was written for.
pub const EXPORT_ABI_VERSION: &str = "sitediff_abi_version";
/// `(size: i32) -> i32`: a pointer to `size` fresh bytes, or 0.
pub const EXPORT_ALLOC: &str = "sitediff_alloc";
/// `(image, width, height, context, context_len, rects, rect_count: i32) -> i64`.
pub const EXPORT_MASK: &str = "sitediff_mask";
/// `(base, base_width, base_height, new, new_width, new_height, context, context_len: i32) -> i64`.
pub const EXPORT_SCORE: &str = "sitediff_score";
/// Parameter count of [`EXPORT_MASK`].
pub const MASK_PARAMS: usize = 7;
/// Parameter count of [`EXPORT_SCORE`].
pub const SCORE_PARAMS: usize = 8;

/// The module name of the one host import.
pub const IMPORT_MODULE: &str = "env";
/// `(ptr: i32, len: i32) -> ()`: log a UTF-8 line.
pub const IMPORT_LOG: &str = "log";

/// Bytes per selector rectangle record the host writes: `selector_index, x, y, width, height` (u32 LE).
pub const SELECTOR_RECT_BYTES: usize = 20;
/// Bytes of the mask output header: `flags, count` (u32 LE).
pub const MASK_HEADER_BYTES: usize = 8;
/// Bytes per rectangle of mask output: `x, y, width, height` (u32 LE).
pub const MASK_RECT_BYTES: usize = 16;
/// Bytes of the score output header: `score` (f64 LE), `reason_len` (u32 LE).
pub const SCORE_HEADER_BYTES: usize = 12;
/// At most this many rectangles in one mask output.
pub const MAX_MASK_RECTS: usize = 65_536;
/// At most this many bytes of score reason.
pub const MAX_REASON_BYTES: usize = 4_096;
/// Log lines kept per call; later ones are counted and dropped.
pub const MAX_LOG_LINES: usize = 32;
/// Bytes kept per log line; the rest is cut.
pub const MAX_LOG_LINE_BYTES: usize = 1_024;

/// Mask output flags (a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MaskFlag {
    /// The plugin edited pixels of the image buffer in place; the host reads it back.
    ImageEdited = 1,
}

/// All flag bits ABI v1 defines.
const KNOWN_MASK_FLAGS: u32 = MaskFlag::ImageEdited as u32;

/// What an entry point's i64 result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryResult {
    /// An output buffer at `ptr`, `len` bytes long.
    Output { ptr: u32, len: u32 },
    /// A negative result: the plugin gave up (it may have logged why).
    Failed(i64),
}

/// Split an entry point result: `(ptr << 32) | len`, negative = failure.
pub fn split_result(result: i64) -> EntryResult {
    if result < 0 {
        EntryResult::Failed(result)
    } else {
        EntryResult::Output { ptr: (result >> 32) as u32, len: result as u32 }
    }
}

/// The byte range `ptr .. ptr + len` if it lies inside a memory of `memory_size` bytes.
pub fn checked_range(ptr: u32, len: u32, memory_size: usize) -> Result<Range<usize>, String> {
    let start = ptr as usize;
    let end = start + len as usize;
    if end > memory_size {
        return Err(format!(
            "buffer at {ptr} of {len} bytes ends at {end}, past the end of memory ({memory_size} bytes)"
        ));
    }
    Ok(start..end)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Encode the selectors' rectangles for a mask call: each rectangle clipped to the image
/// (`width` x `height`), empty ones dropped, as 20-byte records. Returns the bytes and the count.
pub fn encode_selector_rects(selectors: &[SelectorRects], width: u32, height: u32) -> (Vec<u8>, u32) {
    let mut out = Vec::new();
    let mut count = 0u32;
    for (index, sel) in selectors.iter().enumerate() {
        for r in &sel.rects {
            let Some(c) = clip(r, width, height) else { continue };
            put_u32(&mut out, index as u32);
            for v in [c.x, c.y, c.width, c.height] {
                put_u32(&mut out, v);
            }
            count += 1;
        }
    }
    (out, count)
}

/// `r` clipped to a `width` x `height` image; `None` when nothing of it is inside.
pub fn clip(r: &Rect, width: u32, height: u32) -> Option<Rect> {
    let x0 = r.x.min(width);
    let y0 = r.y.min(height);
    let x1 = r.x.saturating_add(r.width).min(width);
    let y1 = r.y.saturating_add(r.height).min(height);
    (x1 > x0 && y1 > y0).then_some(Rect { x: x0, y: y0, width: x1 - x0, height: y1 - y0 })
}

/// A decoded, validated mask output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskReply {
    pub image_edited: bool,
    /// Non-empty rectangles, all inside the image.
    pub ignore: Vec<Rect>,
}

/// Decode a mask output buffer and check every rectangle against a `width` x `height` image.
/// An empty buffer means: nothing to ignore, no pixel edited.
pub fn parse_mask_output(bytes: &[u8], width: u32, height: u32) -> Result<MaskReply, String> {
    if bytes.is_empty() {
        return Ok(MaskReply { image_edited: false, ignore: Vec::new() });
    }
    if bytes.len() < MASK_HEADER_BYTES {
        return Err(format!(
            "mask output is {} bytes, shorter than its {MASK_HEADER_BYTES}-byte header",
            bytes.len()
        ));
    }
    let flags = u32_at(bytes, 0);
    if flags & !KNOWN_MASK_FLAGS != 0 {
        return Err(format!("mask output has unknown flag bits {:#x}", flags & !KNOWN_MASK_FLAGS));
    }
    let count = u32_at(bytes, 4) as usize;
    if count > MAX_MASK_RECTS {
        return Err(format!("mask output has {count} rectangles, more than the limit {MAX_MASK_RECTS}"));
    }
    let want = MASK_HEADER_BYTES + count * MASK_RECT_BYTES;
    if bytes.len() != want {
        return Err(format!(
            "mask output is {} bytes, but a header and {count} rectangles take {want}",
            bytes.len()
        ));
    }
    let mut ignore = Vec::with_capacity(count);
    for i in 0..count {
        let at = MASK_HEADER_BYTES + i * MASK_RECT_BYTES;
        let r = Rect {
            x: u32_at(bytes, at),
            y: u32_at(bytes, at + 4),
            width: u32_at(bytes, at + 8),
            height: u32_at(bytes, at + 12),
        };
        let right = r.x as u64 + r.width as u64;
        let bottom = r.y as u64 + r.height as u64;
        if right > width as u64 || bottom > height as u64 {
            return Err(format!(
                "rectangle {i} (x {}, y {}, {}x{}) reaches past the {width}x{height} image",
                r.x, r.y, r.width, r.height
            ));
        }
        if r.width > 0 && r.height > 0 {
            ignore.push(r);
        }
    }
    Ok(MaskReply { image_edited: flags & MaskFlag::ImageEdited as u32 != 0, ignore })
}

/// Decode a score output buffer: the score (finite, 0..=1) and an optional UTF-8 reason.
pub fn parse_score_output(bytes: &[u8]) -> Result<(f64, Option<String>), String> {
    if bytes.len() < SCORE_HEADER_BYTES {
        return Err(format!(
            "score output is {} bytes, shorter than its {SCORE_HEADER_BYTES}-byte header",
            bytes.len()
        ));
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    let score = f64::from_le_bytes(b);
    if !score.is_finite() || !(0.0..=1.0).contains(&score) {
        return Err(format!("score {score} is not a number in 0..=1"));
    }
    if score != 0.0 && !score.is_normal() {
        return Err(format!(
            "score {score:e} is not a normal number (a subnormal f64: was it written as an f32? the score \
             is a little-endian f64 at offset 0)"
        ));
    }
    let reason_len = u32_at(bytes, 8) as usize;
    if reason_len > MAX_REASON_BYTES {
        return Err(format!("reason is {reason_len} bytes, more than the limit {MAX_REASON_BYTES}"));
    }
    if bytes.len() != SCORE_HEADER_BYTES + reason_len {
        return Err(format!(
            "score output is {} bytes, but the header and a {reason_len}-byte reason take {}",
            bytes.len(),
            SCORE_HEADER_BYTES + reason_len
        ));
    }
    let reason =
        std::str::from_utf8(&bytes[SCORE_HEADER_BYTES..]).map_err(|e| format!("reason is not UTF-8: {e}"))?;
    Ok((score, (!reason.is_empty()).then(|| reason.to_string())))
}

/// A log line as kept: at most [`MAX_LOG_LINE_BYTES`], invalid UTF-8 and control characters
/// replaced so a plugin cannot forge log lines.
pub fn sanitize_log_line(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_LOG_LINE_BYTES)];
    String::from_utf8_lossy(cut).chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_bytes(flags: u32, rects: &[[u32; 4]]) -> Vec<u8> {
        let mut b = Vec::new();
        put_u32(&mut b, flags);
        put_u32(&mut b, rects.len() as u32);
        for r in rects {
            for v in r {
                put_u32(&mut b, *v);
            }
        }
        b
    }

    #[test]
    fn result_split() {
        assert_eq!(split_result((8i64 << 32) | 24), EntryResult::Output { ptr: 8, len: 24 });
        assert_eq!(
            split_result(((0x7fff_ffffu64 << 32) | 0xffff_ffff) as i64),
            EntryResult::Output { ptr: 0x7fff_ffff, len: u32::MAX }
        );
        assert_eq!(split_result(-1), EntryResult::Failed(-1));
        assert_eq!(split_result(0), EntryResult::Output { ptr: 0, len: 0 });
    }

    #[test]
    fn ranges_checked() {
        assert_eq!(checked_range(10, 6, 16), Ok(10..16));
        assert!(checked_range(10, 7, 16).is_err());
        assert!(checked_range(u32::MAX, u32::MAX, 65536).is_err());
    }

    #[test]
    fn selector_rects_clipped_and_indexed() {
        let sels = vec![
            SelectorRects {
                selector: ".a".into(),
                rects: vec![
                    Rect { x: 5, y: 5, width: 10, height: 10 },
                    Rect { x: 95, y: 0, width: 50, height: 200 },
                    Rect { x: 200, y: 0, width: 5, height: 5 },
                ],
            },
            SelectorRects { selector: ".b".into(), rects: vec![Rect { x: 0, y: 0, width: 0, height: 4 }] },
            SelectorRects {
                selector: ".c".into(),
                rects: vec![Rect { x: u32::MAX, y: 1, width: u32::MAX, height: 1 }],
            },
            SelectorRects { selector: ".d".into(), rects: vec![Rect { x: 1, y: 2, width: 3, height: 4 }] },
        ];
        let (bytes, n) = encode_selector_rects(&sels, 100, 50);
        assert_eq!(n, 3);
        assert_eq!(bytes.len(), 3 * SELECTOR_RECT_BYTES);
        let words: Vec<u32> = (0..bytes.len() / 4).map(|i| u32_at(&bytes, i * 4)).collect();
        assert_eq!(words, [0, 5, 5, 10, 10, 0, 95, 0, 5, 50, 3, 1, 2, 3, 4]);
    }

    #[test]
    fn mask_output_decoded() {
        assert_eq!(parse_mask_output(&[], 10, 10), Ok(MaskReply { image_edited: false, ignore: vec![] }));
        let r = parse_mask_output(&mask_bytes(1, &[[0, 0, 10, 10], [3, 3, 0, 2], [9, 0, 1, 1]]), 10, 10);
        assert_eq!(
            r,
            Ok(MaskReply {
                image_edited: true,
                ignore: vec![
                    Rect { x: 0, y: 0, width: 10, height: 10 },
                    Rect { x: 9, y: 0, width: 1, height: 1 }
                ]
            })
        );
    }

    #[test]
    fn mask_output_rejected() {
        let err = |b: &[u8]| parse_mask_output(b, 10, 10).unwrap_err();
        assert!(err(&[0, 0, 0]).contains("shorter"));
        assert!(err(&mask_bytes(2, &[])).contains("unknown flag"));
        assert!(err(&mask_bytes(0, &[[0, 0, 11, 1]])).contains("reaches past"));
        assert!(err(&mask_bytes(0, &[[0, 9, 1, 2]])).contains("reaches past"));
        assert!(err(&mask_bytes(0, &[[u32::MAX, 0, 2, 1]])).contains("reaches past"));
        let mut b = mask_bytes(0, &[[0, 0, 1, 1]]);
        b.push(0);
        assert!(err(&b).contains("take 24"));
        let mut huge = mask_bytes(0, &[]);
        huge[4..8].copy_from_slice(&(MAX_MASK_RECTS as u32 + 1).to_le_bytes());
        assert!(err(&huge).contains("limit"));
    }

    fn score_bytes(score: f64, reason: &[u8]) -> Vec<u8> {
        let mut b = score.to_le_bytes().to_vec();
        put_u32(&mut b, reason.len() as u32);
        b.extend_from_slice(reason);
        b
    }

    #[test]
    fn score_output() {
        assert_eq!(parse_score_output(&score_bytes(0.25, b"top")), Ok((0.25, Some("top".into()))));
        assert_eq!(parse_score_output(&score_bytes(1.0, b"")), Ok((1.0, None)));
        assert!(parse_score_output(&score_bytes(1.5, b"")).unwrap_err().contains("0..=1"));
        assert!(parse_score_output(&score_bytes(f64::NAN, b"")).unwrap_err().contains("0..=1"));
        assert!(parse_score_output(&score_bytes(-0.1, b"")).is_err());
        // 0.5 written as an f32 into the first 4 bytes: a subnormal f64 (about 5e-315).
        let mut f32_written = 0.5f32.to_le_bytes().to_vec();
        f32_written.extend_from_slice(&[0; 8]);
        let err = parse_score_output(&f32_written).unwrap_err();
        assert!(err.contains("not a normal number") && err.contains("f32"), "{err}");
        assert_eq!(parse_score_output(&score_bytes(0.0, b"")), Ok((0.0, None)));
        assert!(parse_score_output(&score_bytes(0.5, &[0xff, 0xfe])).unwrap_err().contains("UTF-8"));
        let mut b = score_bytes(0.5, b"ab");
        b.pop();
        assert!(parse_score_output(&b).unwrap_err().contains("take 14"));
        assert!(parse_score_output(&[0; 11]).is_err());
    }

    #[test]
    fn log_lines_sanitized() {
        assert_eq!(sanitize_log_line(b"ok\nfake line\x1b[31m"), "ok\u{fffd}fake line\u{fffd}[31m");
        assert_eq!(sanitize_log_line(&vec![b'a'; 5000]).len(), MAX_LOG_LINE_BYTES);
    }
}
