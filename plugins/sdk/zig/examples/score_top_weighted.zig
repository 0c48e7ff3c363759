//! sitediff example score plugin (Zig): a change near the top of the page matters more.
//!
//! Every pixel that differs between baseline and new capture (any channel by more than TOLERANCE, or
//! present in only one of them) counts with weight 1 / (1 + y / FOLD): full weight on the first
//! screen, half at y = FOLD, a third at 2 * FOLD... The score is the weighted count of changed pixels
//! over the weighted count of all pixels: 0 for identical images, 1 when everything changed. What
//! sitediff ignored (`diff.ignored`: masked areas) is painted alike in both images first.
const std = @import("std");
const sd = @import("sitediff");

comptime {
    sd.exportAbi();
}
pub const panic = sd.panic;

const TOLERANCE: u8 = 16;
const FOLD: f64 = 800.0;

fn differs(a: u8, b: u8) bool {
    return (if (a > b) a - b else b - a) > TOLERANCE;
}

fn pixelDiffers(p: sd.Rgba, q: sd.Rgba) bool {
    return differs(p.r, q.r) or differs(p.g, q.g) or differs(p.b, q.b) or differs(p.a, q.a);
}

export fn sitediff_score(base_ptr: [*]u8, base_w: u32, base_h: u32, new_ptr: [*]u8, new_w: u32, new_h: u32, context: [*]const u8, context_len: u32) i64 {
    const ctx = sd.parseContext(context, context_len) catch |e| {
        sd.logf("score_top_weighted: bad context: {s}", .{@errorName(e)});
        return sd.FAILED;
    };
    const base = sd.Image.init(base_ptr, base_w, base_h);
    const cur = sd.Image.init(new_ptr, new_w, new_h);
    // What sitediff ignored (masked areas) must not count here either: paint it the same in both.
    for (ctx.diff.ignored) |r| {
        base.fillRect(r, .{ .r = 0, .g = 0, .b = 0 });
        cur.fillRect(r, .{ .r = 0, .g = 0, .b = 0 });
    }
    const w = @max(base_w, new_w);
    const h = @max(base_h, new_h);
    var changed_weight: f64 = 0;
    var total_weight: f64 = 0;
    var changed: u64 = 0;
    var first_row: ?u32 = null;
    var y: u32 = 0;
    while (y < h) : (y += 1) {
        const weight = 1.0 / (1.0 + @as(f64, @floatFromInt(y)) / FOLD);
        var row_changed: u32 = w;
        if (y < base_h and y < new_h) {
            const common = @min(base_w, new_w);
            const p = base.row(y)[0..common];
            const q = cur.row(y)[0..common];
            row_changed = w - common; // pixels present in only one image
            for (p, q) |a, b| {
                if (@as(u32, @bitCast(a)) == @as(u32, @bitCast(b))) continue;
                row_changed += @intFromBool(pixelDiffers(a, b));
            }
        }
        if (row_changed > 0 and first_row == null) first_row = y;
        changed += row_changed;
        changed_weight += weight * @as(f64, @floatFromInt(row_changed));
        total_weight += weight * @as(f64, @floatFromInt(w));
    }
    const score = if (total_weight > 0) @min(changed_weight / total_weight, 1.0) else 0.0;
    var buf: [128]u8 = undefined;
    const reason = if (first_row) |r|
        std.fmt.bufPrint(&buf, "{d} pixel(s) changed, first at row {d}", .{ changed, r }) catch unreachable
    else
        std.fmt.bufPrint(&buf, "{d} pixel(s) changed", .{changed}) catch unreachable;
    sd.logf("score_top_weighted: {s} (sitediff's distortion {d:.6})", .{ reason, ctx.diff.distortion });
    return sd.scoreResult(score, reason);
}
