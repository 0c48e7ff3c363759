//! sitediff plugin SDK for Zig (ABI v1, see plugins/ABI.md). Target: wasm32-freestanding, no libc,
//! no WASI; the only import is `env.log`.
//!
//! A plugin imports this file as the module `sitediff` and exports its entry point:
//!
//!     const sd = @import("sitediff");
//!     comptime { sd.exportAbi(); }            // sitediff_alloc and sitediff_abi_version
//!     pub const panic = sd.panic;             // a panic logs its message, then traps
//!     export fn sitediff_mask(image: [*]u8, width: u32, height: u32, ctx: [*]const u8, ctx_len: u32,
//!                             rects: [*]const u8, rect_count: u32) i64 { ... }
//!
//! Build:
//!     zig build-exe -target wasm32-freestanding -O ReleaseSafe -fno-entry -rdynamic \
//!         --dep sitediff -Mroot=plugin.zig -Msitediff=sitediff.zig -femit-bin=plugin.wasm
const std = @import("std");

// ---- The host --------------------------------------------------------------------------------------

extern "env" fn log(ptr: [*]const u8, len: u32) void;

/// Write one line to sitediff's log (at most 32 lines per call are kept, 1024 bytes each).
pub fn logLine(msg: []const u8) void {
    log(msg.ptr, @intCast(msg.len));
}

/// Format and log one line (cut to 1024 bytes).
pub fn logf(comptime fmt: []const u8, args: anytype) void {
    var buf: [1024]u8 = undefined;
    const line = std.fmt.bufPrint(&buf, fmt, args) catch buf[0..];
    logLine(line);
}

/// The allocator for everything a plugin needs: memory grows on demand, nothing has to be freed
/// (every call runs in a fresh instance).
pub const allocator = std.heap.wasm_allocator;

fn alloc(size: u32) callconv(.c) u32 {
    const bytes = allocator.alignedAlloc(u8, 8, size) catch return 0;
    return @intCast(@intFromPtr(bytes.ptr));
}

fn abiVersion() callconv(.c) i32 {
    return 1;
}

/// Export `sitediff_alloc` and `sitediff_abi_version`: call it in a `comptime` block of the plugin.
pub fn exportAbi() void {
    @export(&alloc, .{ .name = "sitediff_alloc" });
    @export(&abiVersion, .{ .name = "sitediff_abi_version" });
}

/// `pub const panic = sitediff.panic;` in the plugin: a panic (overflow, index out of bounds,
/// unreachable...) logs its message before it traps, so sitediff shows why the plugin failed.
pub const panic = std.debug.FullPanic(panicLog);

fn panicLog(msg: []const u8, _: ?usize) noreturn {
    logf("panic: {s}", .{msg});
    @trap();
}

// ---- Images ---------------------------------------------------------------------------------------

pub const Rgba = extern struct { r: u8, g: u8, b: u8, a: u8 = 255 };

/// The RGBA image the host handed over (a mask plugin may edit it in place).
pub const Image = struct {
    pixels: [*]Rgba,
    width: u32,
    height: u32,

    pub fn init(ptr: [*]u8, width: u32, height: u32) Image {
        return .{ .pixels = @ptrCast(@alignCast(ptr)), .width = width, .height = height };
    }
    /// The pixels of row `y`.
    pub inline fn row(self: Image, y: u32) []Rgba {
        const start = @as(usize, y) * self.width;
        return self.pixels[start .. start + self.width];
    }
    pub inline fn get(self: Image, x: u32, y: u32) Rgba {
        return self.pixels[@as(usize, y) * self.width + x];
    }
    pub inline fn set(self: Image, x: u32, y: u32, c: Rgba) void {
        self.pixels[@as(usize, y) * self.width + x] = c;
    }
    /// Paint a rectangle (clipped to the image) with one colour.
    pub fn fillRect(self: Image, r: Rect, c: Rgba) void {
        const x1: u32 = @intCast(@min(@as(u64, r.x) + r.width, self.width));
        const y1: u32 = @intCast(@min(@as(u64, r.y) + r.height, self.height));
        var y = r.y;
        while (y < y1) : (y += 1) {
            var x = r.x;
            while (x < x1) : (x += 1) self.set(x, y, c);
        }
    }
};

// ---- Rectangles -----------------------------------------------------------------------------------

pub const Rect = struct { x: u32 = 0, y: u32 = 0, width: u32 = 0, height: u32 = 0 };

/// A rectangle of the `rects` input of a mask call: `selector` indexes the context's `selectors`.
pub const SelectorRect = extern struct { selector: u32, x: u32, y: u32, width: u32, height: u32 };

/// The `rects, rect_count` parameters of `sitediff_mask` as a slice.
pub fn selectorRects(ptr: [*]const u8, count: u32) []align(1) const SelectorRect {
    if (count == 0) return &.{};
    const p: [*]align(1) const SelectorRect = @ptrCast(ptr);
    return p[0..count];
}

// ---- Outputs --------------------------------------------------------------------------------------

/// Builds a mask call's answer; `finish()` gives the value `sitediff_mask` returns.
pub const MaskResult = struct {
    width: u32,
    height: u32,
    rects: std.ArrayListUnmanaged(Rect) = .empty,
    edited: bool = false,

    pub fn init(width: u32, height: u32) MaskResult {
        return .{ .width = width, .height = height };
    }
    /// Ignore a rectangle (clipped to the image; empty ones are dropped).
    pub fn ignore(self: *MaskResult, r: Rect) void {
        if (r.x >= self.width or r.y >= self.height or r.width == 0 or r.height == 0) return;
        const w = @min(r.width, self.width - r.x);
        const h = @min(r.height, self.height - r.y);
        self.rects.append(allocator, .{ .x = r.x, .y = r.y, .width = w, .height = h }) catch @panic("out of memory");
    }
    /// Say the image's pixels were edited in place: the host reads them back.
    pub fn pixelsEdited(self: *MaskResult) void {
        self.edited = true;
    }
    pub fn finish(self: *MaskResult) i64 {
        const n: u32 = @intCast(self.rects.items.len);
        const len = 8 + 16 * n;
        const out = allocator.alignedAlloc(u8, 8, len) catch return FAILED;
        std.mem.writeInt(u32, out[0..4], if (self.edited) 1 else 0, .little);
        std.mem.writeInt(u32, out[4..8], n, .little);
        for (self.rects.items, 0..) |r, i| {
            const p = out[8 + 16 * i ..];
            std.mem.writeInt(u32, p[0..4], r.x, .little);
            std.mem.writeInt(u32, p[4..8], r.y, .little);
            std.mem.writeInt(u32, p[8..12], r.width, .little);
            std.mem.writeInt(u32, p[12..16], r.height, .little);
        }
        return pack(out.ptr, len);
    }
};

/// The value `sitediff_score` returns: a score in 0..1 (an f64) and a reason shown to reviewers.
pub fn scoreResult(score: f64, reason: []const u8) i64 {
    const n: u32 = @intCast(@min(reason.len, 4096));
    const out = allocator.alignedAlloc(u8, 8, 12 + n) catch return FAILED;
    std.mem.writeInt(u64, out[0..8], @bitCast(score), .little);
    std.mem.writeInt(u32, out[8..12], n, .little);
    @memcpy(out[12..][0..n], reason[0..n]);
    return pack(out.ptr, 12 + n);
}

/// Give up on this page (log why first): the page's plugin step fails.
pub const FAILED: i64 = -1;

fn pack(ptr: [*]const u8, len: u32) i64 {
    return @bitCast((@as(u64, @intFromPtr(ptr)) << 32) | len);
}

// ---- The context ----------------------------------------------------------------------------------

pub const Size = struct { width: u32 = 0, height: u32 = 0 };
pub const SelectorMatch = struct { selector: []const u8 = "", rects: []const Rect = &.{} };
/// sitediff's own diff, as score plugins see it (after masking).
pub const Diff = struct {
    diff_pixels: u64 = 0,
    total_pixels: u64 = 0,
    distortion: f64 = 0,
    size_changed: bool = false,
    regions: []const Rect = &.{},
    /// What the diff did not compare: the `mask_selectors` boxes and the mask plugins' rectangles.
    ignored: []const Rect = &.{},
};

/// The JSON context of a call, parsed. Fields a call does not have keep their defaults (`image` is
/// for mask calls; `base`, `new`, `diff` for score calls); unknown fields are ignored.
pub const Context = struct {
    abi_version: i32 = 0,
    kind: []const u8 = "",
    site: []const u8 = "",
    page_key: []const u8 = "",
    url: []const u8 = "",
    viewport: Size = .{},
    image: Size = .{},
    base: Size = .{},
    new: Size = .{},
    diff: Diff = .{},
    selectors: []const SelectorMatch = &.{},
};

/// Parse the `context, context_len` parameters of an entry point.
pub fn parseContext(ptr: [*]const u8, len: u32) !Context {
    return std.json.parseFromSliceLeaky(Context, allocator, ptr[0..len], .{ .ignore_unknown_fields = true });
}
