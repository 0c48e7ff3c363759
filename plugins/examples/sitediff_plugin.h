/* sitediff plugin ABI v1 helpers for C without libc (see plugins/ABI.md).
 *
 * Build: clang --target=wasm32 -nostdlib -O2 -mbulk-memory -Wl,--no-entry -o p.wasm p.c
 * (exports are marked in the source with export_name, so no -Wl,--export flags are needed).
 */
#ifndef SITEDIFF_PLUGIN_H
#define SITEDIFF_PLUGIN_H

typedef unsigned char u8;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

#define SITEDIFF_EXPORT(name) __attribute__((export_name(name)))

/* The one host import: write a UTF-8 message to the daemon's log (rate and size limited). */
__attribute__((import_module("env"), import_name("log"))) void sitediff_log(const char *msg, u32 len);

/* Set by wasm-ld: the first byte after static data and the stack. */
extern u8 __heap_base;

static u32 heap_top = 0;

/* Bump allocator: 8-byte aligned, grows memory as needed, never frees (a fresh instance is made
 * for every call, so nothing leaks). Returns 0 when memory cannot grow. */
SITEDIFF_EXPORT("sitediff_alloc") u32 sitediff_alloc(u32 size) {
    if (heap_top == 0) heap_top = (u32)&__heap_base;
    u64 start = ((u64)heap_top + 7u) & ~(u64)7u;
    u64 end = start + (u64)size;
    u64 have = (u64)__builtin_wasm_memory_size(0) * 65536u;
    if (end > 0xFFFFFFFFull) return 0;
    if (end > have) {
        u64 pages = (end - have + 65535u) / 65536u;
        if (__builtin_wasm_memory_grow(0, (unsigned long)pages) == (unsigned long)-1) return 0;
    }
    heap_top = (u32)end;
    return (u32)start;
}

SITEDIFF_EXPORT("sitediff_abi_version") i32 sitediff_abi_version(void) { return 1; }

/* Pack an output buffer's address and length into the i64 an entry point returns. */
static inline i64 sitediff_out(u32 ptr, u32 len) { return (i64)(((u64)ptr << 32) | (u64)len); }

static inline void put_u32(u8 *p, u32 v) {
    p[0] = (u8)v; p[1] = (u8)(v >> 8); p[2] = (u8)(v >> 16); p[3] = (u8)(v >> 24);
}

static inline u32 get_u32(const u8 *p) {
    return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

static u32 str_len(const char *s) { u32 n = 0; while (s[n]) n++; return n; }

/* Append the decimal form of v at p; returns the number of bytes written. */
static u32 put_dec(char *p, u64 v) {
    char tmp[20]; u32 n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (u32 i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

static u32 put_str(char *p, const char *s) { u32 n = str_len(s); for (u32 i = 0; i < n; i++) p[i] = s[i]; return n; }

/* ---- Images ------------------------------------------------------------------------------------ */

/* An RGBA image as the host hands it over: pixel (x, y) at 4 * (y * width + x), channels R, G, B, A. */
typedef struct { u8 *data; u32 width, height; } sitediff_image;

static inline u8 *sitediff_pixel(sitediff_image img, u32 x, u32 y) {
    return img.data + 4u * ((u64)y * img.width + x);
}

/* Paint the rectangle (clipped to the image) with one colour; alpha included. */
static inline void sitediff_fill_rect(sitediff_image img, u32 x, u32 y, u32 w, u32 h, u8 r, u8 g, u8 b, u8 a) {
    u32 x1 = x + w < x || x + w > img.width ? img.width : x + w;
    u32 y1 = y + h < y || y + h > img.height ? img.height : y + h;
    for (u32 yy = y; yy < y1; yy++)
        for (u32 xx = x; xx < x1; xx++) {
            u8 *p = sitediff_pixel(img, xx, yy);
            p[0] = r; p[1] = g; p[2] = b; p[3] = a;
        }
}

/* ---- Selector rectangles (mask input) ---------------------------------------------------------- */

typedef struct { u32 selector, x, y, width, height; } sitediff_selector_rect;

/* Rectangle i of the `rects` input of sitediff_mask (already clipped to the image by the host). */
static inline sitediff_selector_rect sitediff_selector_rect_at(const u8 *rects, u32 i) {
    const u8 *p = rects + 20u * i;
    sitediff_selector_rect r = {get_u32(p), get_u32(p + 4), get_u32(p + 8), get_u32(p + 12), get_u32(p + 16)};
    return r;
}

/* ---- Mask output builder ----------------------------------------------------------------------- */

typedef struct { u8 *buf; u32 count, cap, flags, width, height; } sitediff_mask_out;

/* Start a mask output with room for `cap` ignore rectangles on a width x height image; 0 when
 * memory ran out. */
static inline int sitediff_mask_begin(sitediff_mask_out *m, u32 cap, u32 width, u32 height) {
    m->buf = (u8 *)sitediff_alloc(8 + 16 * cap);
    m->count = 0; m->cap = cap; m->flags = 0; m->width = width; m->height = height;
    return m->buf != 0;
}

/* Add a rectangle to ignore, clipped to the image (empty ones are dropped); 0 when full. */
static inline int sitediff_mask_ignore(sitediff_mask_out *m, u32 x, u32 y, u32 w, u32 h) {
    if (x >= m->width || y >= m->height || w == 0 || h == 0) return 1;
    if (m->count == m->cap) return 0;
    if (w > m->width - x) w = m->width - x;
    if (h > m->height - y) h = m->height - y;
    u8 *r = m->buf + 8 + 16 * m->count++;
    put_u32(r, x); put_u32(r + 4, y); put_u32(r + 8, w); put_u32(r + 12, h);
    return 1;
}

/* Say that pixels of the image were edited in place (the host reads them back). */
static inline void sitediff_mask_edited(sitediff_mask_out *m) { m->flags |= 1u; }

/* The value sitediff_mask returns. */
static inline i64 sitediff_mask_finish(sitediff_mask_out *m) {
    put_u32(m->buf, m->flags);
    put_u32(m->buf + 4, m->count);
    return sitediff_out((u32)m->buf, 8 + 16 * m->count);
}

/* ---- Score output ------------------------------------------------------------------------------ */

/* The value sitediff_score returns: score in 0..1 (an f64: never pass a float), reason bytes. */
static inline i64 sitediff_score_result(double score, const char *reason, u32 reason_len) {
    if (reason_len > 4096) reason_len = 4096;
    u8 *out = (u8 *)sitediff_alloc(12 + reason_len);
    if (!out) return -1;
    __builtin_memcpy(out, &score, 8);
    put_u32(out + 8, reason_len);
    for (u32 i = 0; i < reason_len; i++) out[12 + i] = (u8)reason[i];
    return sitediff_out((u32)out, 12 + reason_len);
}

/* ---- A small JSON field reader for the context -------------------------------------------------- */
/* sitediff_json_number(ctx, len, "diff.total_pixels", &v) and sitediff_json_string(ctx, len, "site",
 * &s, &n) find a field by its dotted path of object keys (arrays are skipped, not indexed); they
 * return 1 when found with that type, else 0. Strings are returned raw: escapes are not decoded. */

typedef struct { const u8 *p, *end; } sitediff_json;

static inline void sitediff_json_ws(sitediff_json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

/* Skip one string starting at '"'; returns 0 on malformed input. */
static inline int sitediff_json_skip_string(sitediff_json *j) {
    if (j->p >= j->end || *j->p != '"') return 0;
    for (j->p++; j->p < j->end; j->p++) {
        if (*j->p == '\\') { j->p++; continue; }
        if (*j->p == '"') { j->p++; return 1; }
    }
    return 0;
}

/* Skip one value of any type. */
static inline int sitediff_json_skip(sitediff_json *j) {
    sitediff_json_ws(j);
    if (j->p >= j->end) return 0;
    if (*j->p == '"') return sitediff_json_skip_string(j);
    if (*j->p == '{' || *j->p == '[') {
        u32 depth = 0;
        while (j->p < j->end) {
            u8 c = *j->p;
            if (c == '"') { if (!sitediff_json_skip_string(j)) return 0; continue; }
            if (c == '{' || c == '[') depth++;
            if (c == '}' || c == ']') { depth--; if (depth == 0) { j->p++; return 1; } }
            j->p++;
        }
        return 0;
    }
    while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']') j->p++;
    return 1;
}

/* Move to the value at `path` (keys separated by '.'); 1 when found. */
static inline int sitediff_json_find(sitediff_json *j, const char *path) {
    while (*path) {
        u32 klen = 0;
        while (path[klen] && path[klen] != '.') klen++;
        sitediff_json_ws(j);
        if (j->p >= j->end || *j->p != '{') return 0;
        j->p++;
        int found = 0;
        for (;;) {
            sitediff_json_ws(j);
            if (j->p >= j->end || *j->p == '}') return 0;
            const u8 *key = j->p + 1;
            if (!sitediff_json_skip_string(j)) return 0;
            u32 n = (u32)(j->p - key - 1);
            sitediff_json_ws(j);
            if (j->p >= j->end || *j->p != ':') return 0;
            j->p++;
            int same = n == klen;
            for (u32 i = 0; same && i < n; i++) same = key[i] == (u8)path[i];
            if (same) { found = 1; break; }
            if (!sitediff_json_skip(j)) return 0;
            sitediff_json_ws(j);
            if (j->p < j->end && *j->p == ',') j->p++;
        }
        if (!found) return 0;
        path += klen;
        if (*path == '.') path++;
    }
    sitediff_json_ws(j);
    return j->p < j->end;
}

static inline int sitediff_json_number(const u8 *json, u32 len, const char *path, double *out) {
    sitediff_json j = {json, json + len};
    if (!sitediff_json_find(&j, path)) return 0;
    double v = 0, scale = 1; int neg = 0, any = 0, frac = 0, exp = 0, eneg = 0;
    if (j.p < j.end && *j.p == '-') { neg = 1; j.p++; }
    for (; j.p < j.end; j.p++) {
        u8 c = *j.p;
        if (c >= '0' && c <= '9') {
            any = 1;
            if (frac) { scale /= 10; v += (c - '0') * scale; } else v = v * 10 + (c - '0');
        } else if (c == '.' && !frac) frac = 1;
        else break;
    }
    if (j.p < j.end && (*j.p == 'e' || *j.p == 'E')) {
        j.p++;
        if (j.p < j.end && (*j.p == '-' || *j.p == '+')) eneg = *j.p++ == '-';
        while (j.p < j.end && *j.p >= '0' && *j.p <= '9') exp = exp * 10 + (*j.p++ - '0');
        while (exp-- > 0) v = eneg ? v / 10 : v * 10;
    }
    if (!any) return 0;
    *out = neg ? -v : v;
    return 1;
}

static inline int sitediff_json_string(const u8 *json, u32 len, const char *path, const u8 **s, u32 *n) {
    sitediff_json j = {json, json + len};
    if (!sitediff_json_find(&j, path) || *j.p != '"') return 0;
    const u8 *start = j.p + 1;
    if (!sitediff_json_skip_string(&j)) return 0;
    *s = start;
    *n = (u32)(j.p - start - 1);
    return 1;
}

/* Rectangle i ({x, y, width, height}) of the array of rectangles at `path` (e.g. "diff.ignored",
 * "diff.regions"); 1 when there is one. */
static inline int sitediff_json_rect_at(const u8 *json, u32 len, const char *path, u32 i, u32 r[4]) {
    sitediff_json j = {json, json + len};
    if (!sitediff_json_find(&j, path) || *j.p != '[') return 0;
    j.p++;
    for (u32 k = 0;; k++) {
        sitediff_json_ws(&j);
        if (j.p >= j.end || *j.p == ']') return 0;
        const u8 *start = j.p;
        if (!sitediff_json_skip(&j)) return 0;
        if (k == i) {
            static const char *const fields[4] = {"x", "y", "width", "height"};
            for (u32 f = 0; f < 4; f++) {
                double v;
                if (!sitediff_json_number(start, (u32)(j.p - start), fields[f], &v)) return 0;
                r[f] = (u32)v;
            }
            return 1;
        }
        sitediff_json_ws(&j);
        if (j.p < j.end && *j.p == ',') j.p++;
    }
}
#endif
