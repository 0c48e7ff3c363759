;; sitediff example mask plugin (WebAssembly text): ignore the rectangles of the site's
;; `mask_selectors`, which the browser measured at capture time and the host hands over as a binary
;; list (plugins/ABI.md, "Mask entry point"). The host has already clipped them to the image.
;;
;; No build step: sitediff loads .wat files directly (`path = "plugins/examples/mask_selectors.wat"`),
;; and bundles this one: `path = "builtin:mask_selectors"` works wherever the config lives.
;; To get a binary: `wat2wasm mask_selectors.wat -o mask_selectors.wasm` (Debian package wabt).
(module
  ;; The one host import: a log line (pointer, length of UTF-8 text).
  (import "env" "log" (func $log (param i32 i32)))

  ;; Static data lives below 1024; the bump allocator hands out memory from 1024 up.
  (memory (export "memory") 1)
  (data (i32.const 16) "mask_selectors: ignoring the selectors' rectangles")
  (global $top (mut i32) (i32.const 1024))

  (func (export "sitediff_abi_version") (result i32) (i32.const 1))

  ;; sitediff_alloc(size) -> pointer, 8-byte aligned; 0 when memory cannot grow.
  (func $alloc (export "sitediff_alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i64) (local $have i64)
    (local.set $ptr (i32.and (i32.add (global.get $top) (i32.const 7)) (i32.const -8)))
    (local.set $end (i64.add (i64.extend_i32_u (local.get $ptr)) (i64.extend_i32_u (local.get $size))))
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
    (if (i64.gt_u (local.get $end) (local.get $have))
      (then
        ;; pages = ceil((end - have) / 65536); memory.grow returns -1 on failure
        (if (i32.eq
              (memory.grow (i32.wrap_i64
                (i64.shr_u (i64.add (i64.sub (local.get $end) (local.get $have)) (i64.const 65535))
                           (i64.const 16))))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $top (i32.wrap_i64 (local.get $end)))
    (local.get $ptr))

  ;; sitediff_mask(image, width, height, context, context_len, rects, rect_count) -> (ptr << 32) | len
  ;; Input records are 20 bytes {selector_index, x, y, width, height}; output is
  ;; {flags = 0, count} followed by count records of 16 bytes {x, y, width, height}.
  (func (export "sitediff_mask")
    (param $image i32) (param $width i32) (param $height i32)
    (param $ctx i32) (param $ctx_len i32) (param $rects i32) (param $count i32)
    (result i64)
    (local $out i32) (local $len i32) (local $i i32) (local $src i32) (local $dst i32)
    (call $log (i32.const 16) (i32.const 50))
    (local.set $len (i32.add (i32.const 8) (i32.mul (local.get $count) (i32.const 16))))
    (local.set $out (call $alloc (local.get $len)))
    (if (i32.eqz (local.get $out)) (then (return (i64.const -1))))
    (i32.store (local.get $out) (i32.const 0))
    (i32.store offset=4 (local.get $out) (local.get $count))
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        ;; skip the selector index (first 4 bytes), copy x, y, width, height
        (local.set $src (i32.add (i32.add (local.get $rects) (i32.mul (local.get $i) (i32.const 20)))
                                 (i32.const 4)))
        (local.set $dst (i32.add (i32.add (local.get $out) (i32.const 8))
                                 (i32.mul (local.get $i) (i32.const 16))))
        (i64.store (local.get $dst) (i64.load (local.get $src)))
        (i64.store offset=8 (local.get $dst) (i64.load offset=8 (local.get $src)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))
)
