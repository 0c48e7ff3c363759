//! sitediff example mask plugin (Zig): paints the elements matched by the site's `mask_selectors`
//! with a flat grey, PAD pixels beyond their boxes, so a shadow, outline or focus ring drawn around
//! them (outside the box sitediff measures and ignores) is hidden too. It edits pixels, on the
//! baseline and the new capture alike, so the painted areas compare equal.
const sd = @import("sitediff");

comptime {
    sd.exportAbi();
}
pub const panic = sd.panic;

const PAD: u32 = 12;

export fn sitediff_mask(image: [*]u8, width: u32, height: u32, context: [*]const u8, context_len: u32, rects: [*]const u8, rect_count: u32) i64 {
    const img = sd.Image.init(image, width, height);
    const ctx = sd.parseContext(context, context_len) catch |e| {
        sd.logf("mask_selector_paint: bad context: {s}", .{@errorName(e)});
        return sd.FAILED;
    };
    const boxes = sd.selectorRects(rects, rect_count);
    for (boxes) |r| {
        const x = if (r.x > PAD) r.x - PAD else 0;
        const y = if (r.y > PAD) r.y - PAD else 0;
        img.fillRect(.{ .x = x, .y = y, .width = r.x + r.width + PAD - x, .height = r.y + r.height + PAD - y }, .{ .r = 128, .g = 128, .b = 128 });
    }
    var out = sd.MaskResult.init(width, height);
    if (boxes.len > 0) out.pixelsEdited();
    sd.logf("mask_selector_paint: painted {d} box(es) of {d} selector(s) on site {s}", .{ boxes.len, ctx.selectors.len, ctx.site });
    return out.finish();
}
