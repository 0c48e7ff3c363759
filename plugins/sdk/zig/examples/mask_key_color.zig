//! sitediff example mask plugin (Zig): finds areas painted in a key colour by their pixels and tells
//! sitediff to ignore them.
//!
//! Give the dynamic part of your page (a clock, a "last updated" line, an ad slot) a background of
//! the key colour, magenta #FF00FF, and this plugin masks it: every band of consecutive rows that
//! holds a run of at least MIN_RUN key-colour pixels becomes one ignore rectangle, from the leftmost
//! to the rightmost run in that band, padded by PAD pixels. Text drawn on the key colour is inside.
const sd = @import("sitediff");

comptime {
    sd.exportAbi();
}
pub const panic = sd.panic;

const KEY = sd.Rgba{ .r = 255, .g = 0, .b = 255 };
const TOLERANCE: u8 = 8;
const MIN_RUN: u32 = 8;
const MAX_GAP: u32 = 4;
const PAD: u32 = 2;
const MAX_RECTS: usize = 1024;

fn near(v: u8, want: u8) bool {
    return (if (v >= want) v - want else want - v) <= TOLERANCE;
}

const Span = struct { x0: u32, x1: u32 };

/// The leftmost start and rightmost end of key-colour runs in one row.
fn rowSpan(row: []const sd.Rgba) ?Span {
    var run: u32 = 0;
    var found: ?Span = null;
    for (row, 0..) |px, i| {
        const x: u32 = @intCast(i);
        // Cheap test first: the key colour has almost no green, most pixels of a page have plenty.
        if (px.g > KEY.g + TOLERANCE or !near(px.r, KEY.r) or !near(px.b, KEY.b)) {
            run = 0;
            continue;
        }
        run += 1;
        if (run == MIN_RUN) {
            const start = x + 1 - MIN_RUN;
            if (found) |*f| f.x0 = @min(f.x0, start) else found = .{ .x0 = start, .x1 = x + 1 };
        }
        if (run >= MIN_RUN) found.?.x1 = x + 1;
    }
    return found;
}

const Band = struct { x0: u32, y0: u32, x1: u32, y1: u32 };

export fn sitediff_mask(image: [*]u8, width: u32, height: u32, context: [*]const u8, context_len: u32, rects: [*]const u8, rect_count: u32) i64 {
    _ = .{ context, context_len, rects, rect_count };
    const img = sd.Image.init(image, width, height);
    var bands: [MAX_RECTS]Band = undefined;
    var n: usize = 0;
    var open = false;
    var gap: u32 = 0;
    var y: u32 = 0;
    while (y < height) : (y += 1) {
        if (rowSpan(img.row(y))) |s| {
            if (open) {
                const b = &bands[n - 1];
                b.x0 = @min(b.x0, s.x0);
                b.x1 = @max(b.x1, s.x1);
                b.y1 = y + 1;
            } else if (n < MAX_RECTS) {
                bands[n] = .{ .x0 = s.x0, .y0 = y, .x1 = s.x1, .y1 = y + 1 };
                n += 1;
                open = true;
            }
            gap = 0;
        } else if (open) {
            gap += 1;
            if (gap > MAX_GAP) open = false;
        }
    }
    var out = sd.MaskResult.init(width, height);
    for (bands[0..n]) |b| {
        const x0 = if (b.x0 > PAD) b.x0 - PAD else 0;
        const y0 = if (b.y0 > PAD) b.y0 - PAD else 0;
        out.ignore(.{ .x = x0, .y = y0, .width = b.x1 + PAD - x0, .height = b.y1 + PAD - y0 });
    }
    sd.logf("mask_key_color: {d} area(s) masked", .{out.rects.items.len});
    return out.finish();
}
