/* sitediff example score plugin (C, no libc): a change near the top of the page matters more.
 *
 * Every pixel that differs between baseline and new capture (any channel by more than TOLERANCE, or
 * present in only one of them) counts with weight 1 / (1 + y / FOLD): full weight on the first screen,
 * half at y = FOLD, a third at 2 * FOLD, and so on. The score is the weighted count of changed pixels
 * divided by the weighted count of all pixels, so it is 0 for identical images and 1 when everything
 * changed; the reason says how many pixels changed and the first changed row. What sitediff ignored
 * (`diff.ignored`: masked areas) is painted alike in both images first, so it never counts.
 *
 * Build (see Makefile): clang --target=wasm32 -nostdlib -O2 -mbulk-memory -Wl,--no-entry \
 *                          -o score_top_weighted.wasm score_top_weighted.c
 */
#include "sitediff_plugin.h"

#define TOLERANCE 16
#define FOLD 800.0

static int channel_differs(u8 a, u8 b) { return a > b ? a - b > TOLERANCE : b - a > TOLERANCE; }

static int pixel_differs(const u8 *p, const u8 *q) {
    return channel_differs(p[0], q[0]) || channel_differs(p[1], q[1]) || channel_differs(p[2], q[2]) ||
           channel_differs(p[3], q[3]);
}

SITEDIFF_EXPORT("sitediff_score")
i64 sitediff_score(const u8 *base, u32 base_w, u32 base_h, const u8 *cur, u32 cur_w, u32 cur_h,
                   const u8 *context, u32 context_len) {
    /* What sitediff ignored (masked areas, `diff.ignored`) must not count here either: paint it the
     * same in both images first. */
    sitediff_image bi = {(u8 *)base, base_w, base_h}, ci = {(u8 *)cur, cur_w, cur_h};
    u32 r[4];
    for (u32 i = 0; sitediff_json_rect_at(context, context_len, "diff.ignored", i, r); i++) {
        sitediff_fill_rect(bi, r[0], r[1], r[2], r[3], 0, 0, 0, 255);
        sitediff_fill_rect(ci, r[0], r[1], r[2], r[3], 0, 0, 0, 255);
    }
    u32 w = base_w > cur_w ? base_w : cur_w;
    u32 h = base_h > cur_h ? base_h : cur_h;
    double changed_weight = 0.0, total_weight = 0.0;
    u64 changed = 0;
    i64 first_row = -1;
    for (u32 y = 0; y < h; y++) {
        double weight = 1.0 / (1.0 + (double)y / FOLD);
        u32 row_changed;
        if (y < base_h && y < cur_h) {
            /* Compare two pixels at a time as 64-bit words first (fuel is counted per instruction):
             * most are equal, and then nothing else is needed. */
            const u8 *p = base + (u64)y * base_w * 4, *q = cur + (u64)y * cur_w * 4;
            u32 common = base_w < cur_w ? base_w : cur_w;
            row_changed = w - common; /* pixels present in only one image */
            u32 x = 0;
            for (; x + 2 <= common; x += 2) {
                if (*(const u64 *)(p + 4 * x) == *(const u64 *)(q + 4 * x)) continue;
                row_changed += (u32)pixel_differs(p + 4 * x, q + 4 * x);
                row_changed += (u32)pixel_differs(p + 4 * x + 4, q + 4 * x + 4);
            }
            if (x < common) row_changed += (u32)pixel_differs(p + 4 * x, q + 4 * x);
        } else {
            row_changed = w;
        }
        if (row_changed && first_row < 0) first_row = y;
        changed += row_changed;
        changed_weight += weight * row_changed;
        total_weight += weight * w;
    }
    double score = total_weight > 0.0 ? changed_weight / total_weight : 0.0;
    if (score > 1.0) score = 1.0;

    char reason[96];
    u32 n = put_dec(reason, changed);
    n += put_str(reason + n, " pixel(s) changed");
    if (first_row >= 0) {
        n += put_str(reason + n, ", first at row ");
        n += put_dec(reason + n, (u64)first_row);
    }
    /* Output: f64 score, u32 reason length, reason bytes. */
    u8 *out = (u8 *)sitediff_alloc(12 + n);
    if (!out) return -1;
    __builtin_memcpy(out, &score, 8);
    put_u32(out + 8, n);
    for (u32 i = 0; i < n; i++) out[12 + i] = (u8)reason[i];
    return sitediff_out((u32)out, 12 + n);
}
