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

#endif
