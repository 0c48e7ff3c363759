/* sitediff example mask plugin (C, no libc): paints the elements matched by the site's
 * `mask_selectors` with a flat grey, PAD pixels beyond their boxes.
 *
 * sitediff already ignores the boxes of `mask_selectors` itself; what it cannot know is that a box
 * shadow, an outline or a focus ring drawn *around* an element changes with it. This plugin paints
 * each box grown by PAD pixels (clipped to the image) in one colour on the baseline and on the new
 * capture alike, so the painted areas compare equal. It edits pixels (no ignore rectangles), so the
 * diff image shows the painted area as unchanged.
 *
 * Build (see Makefile): clang --target=wasm32 -nostdlib -O2 -mbulk-memory -Wl,--no-entry \
 *                          -o mask_selector_paint.wasm mask_selector_paint.c
 */
#include "sitediff_plugin.h"

#define PAD 12
#define GREY 128

SITEDIFF_EXPORT("sitediff_mask")
i64 sitediff_mask(u8 *pixels, u32 width, u32 height, const u8 *context, u32 context_len,
                  const u8 *rects, u32 rect_count) {
    sitediff_image img = {pixels, width, height};
    for (u32 i = 0; i < rect_count; i++) {
        sitediff_selector_rect r = sitediff_selector_rect_at(rects, i);
        u32 x = r.x > PAD ? r.x - PAD : 0, y = r.y > PAD ? r.y - PAD : 0;
        sitediff_fill_rect(img, x, y, r.x + r.width + PAD - x, r.y + r.height + PAD - y, GREY, GREY, GREY, 255);
    }
    sitediff_mask_out out;
    if (!sitediff_mask_begin(&out, 0, width, height)) return -1;
    if (rect_count > 0) sitediff_mask_edited(&out);

    /* A log line with the site's name, read from the JSON context. */
    char msg[160];
    const u8 *site = 0;
    u32 site_len = 0;
    u32 m = put_str(msg, "mask_selector_paint: painted ");
    m += put_dec(msg + m, rect_count);
    m += put_str(msg + m, " box(es) on site ");
    if (sitediff_json_string(context, context_len, "site", &site, &site_len) && site_len <= 64)
        for (u32 i = 0; i < site_len; i++) msg[m++] = (char)site[i];
    sitediff_log(msg, m);
    return sitediff_mask_finish(&out);
}
