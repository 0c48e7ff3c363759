/* sitediff example mask plugin (C, no libc): finds areas painted in a key colour by their pixels and
 * tells sitediff to ignore them.
 *
 * Give the dynamic part of your page (a clock, a "last updated" line, an ad slot) a background of the
 * key colour, magenta #FF00FF, and this plugin masks it: every band of consecutive rows that holds a
 * run of at least MIN_RUN key-colour pixels becomes one ignore rectangle, spanning from the leftmost to
 * the rightmost key-colour run in that band, padded by PAD pixels. Text drawn on the key colour (the
 * clock's digits) lies inside the band, so it is ignored too.
 *
 * Build (see Makefile): clang --target=wasm32 -nostdlib -O2 -mbulk-memory -Wl,--no-entry \
 *                          -o mask_key_color.wasm mask_key_color.c
 */
#include "sitediff_plugin.h"

#define KEY_R 255
#define KEY_G 0
#define KEY_B 255
/* Per-channel tolerance (anti-aliasing at the edges of the box, colour profiles). */
#define TOLERANCE 8
/* A row counts when it has at least this many key-colour pixels in a row. */
#define MIN_RUN 8
/* Rows without a run that may separate two parts of one band (the clock's digits can cover a row). */
#define MAX_GAP 4
/* Pixels added around each rectangle (clipped to the image). */
#define PAD 2
/* At most this many rectangles are reported. */
#define MAX_RECTS 1024

static int near(u8 v, u8 want) { return v >= want ? v - want <= TOLERANCE : want - v <= TOLERANCE; }

static int is_key(const u8 *px) { return near(px[0], KEY_R) && near(px[1], KEY_G) && near(px[2], KEY_B); }

/* Finds the leftmost start and rightmost end of key-colour runs in one row; returns 0 if none. */
static int row_span(const u8 *row, u32 width, u32 *x0, u32 *x1) {
    u32 run = 0, found = 0, lo = 0, hi = 0;
    for (u32 x = 0; x < width; x++) {
        const u8 *px = row + 4 * x;
        /* Cheap test first: the key colour has almost no green, most pixels of a page have plenty. */
        if (px[1] > KEY_G + TOLERANCE || !is_key(px)) {
            run = 0;
            continue;
        }
        run++;
        if (run == MIN_RUN) {
            u32 start = x + 1 - MIN_RUN;
            if (!found || start < lo) lo = start;
            found = 1;
        }
        if (run >= MIN_RUN) hi = x + 1;
    }
    *x0 = lo; *x1 = hi;
    return (int)found;
}

struct band { u32 x0, y0, x1, y1; };

SITEDIFF_EXPORT("sitediff_mask")
i64 sitediff_mask(u8 *image, u32 width, u32 height, const u8 *context, u32 context_len,
                  const u8 *rects, u32 rect_count) {
    (void)context; (void)context_len; (void)rects; (void)rect_count;
    struct band *bands = (struct band *)sitediff_alloc(MAX_RECTS * sizeof(struct band));
    if (!bands) return -1;
    u32 n = 0;
    int open = 0;
    u32 gap = 0;
    for (u32 y = 0; y < height; y++) {
        u32 x0, x1;
        if (row_span(image + (u64)y * width * 4, width, &x0, &x1)) {
            if (open) {
                struct band *b = &bands[n - 1];
                if (x0 < b->x0) b->x0 = x0;
                if (x1 > b->x1) b->x1 = x1;
                b->y1 = y + 1;
            } else if (n < MAX_RECTS) {
                bands[n++] = (struct band){x0, y, x1, y + 1};
                open = 1;
            }
            gap = 0;
        } else if (open && ++gap > MAX_GAP) {
            open = 0;
        }
    }

    u32 len = 8 + 16 * n;
    u8 *out = (u8 *)sitediff_alloc(len);
    if (!out) return -1;
    put_u32(out, 0); /* flags: pixels not edited */
    put_u32(out + 4, n);
    for (u32 i = 0; i < n; i++) {
        struct band b = bands[i];
        u32 x0 = b.x0 > PAD ? b.x0 - PAD : 0, y0 = b.y0 > PAD ? b.y0 - PAD : 0;
        u32 x1 = b.x1 + PAD < width ? b.x1 + PAD : width, y1 = b.y1 + PAD < height ? b.y1 + PAD : height;
        u8 *r = out + 8 + 16 * i;
        put_u32(r, x0); put_u32(r + 4, y0); put_u32(r + 8, x1 - x0); put_u32(r + 12, y1 - y0);
    }

    char msg[64];
    u32 m = put_str(msg, "mask_key_color: ");
    m += put_dec(msg + m, n);
    m += put_str(msg + m, " area(s) masked");
    sitediff_log(msg, m);
    return sitediff_out((u32)out, len);
}
