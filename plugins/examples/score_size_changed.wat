;; sitediff example score plugin (WebAssembly text), the template of `sitediff plugin new NAME --lang
;; wat --kind score`: scores 1 when the page's height (or width) changed, else 0, with a reason.
;; A real score plugin reads the pixels at `base` and `new` (RGBA, 4 bytes a pixel, rows top to
;; bottom; plugins/ABI.md, "Score entry point").
(module
  (import "env" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "size changed")   ;; 12 bytes
  (data (i32.const 32) "same size")      ;; 9 bytes
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
        (if (i32.eq
              (memory.grow (i32.wrap_i64
                (i64.shr_u (i64.add (i64.sub (local.get $end) (local.get $have)) (i64.const 65535))
                           (i64.const 16))))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $top (i32.wrap_i64 (local.get $end)))
    (local.get $ptr))

  ;; sitediff_score(base, base_w, base_h, new, new_w, new_h, ctx, ctx_len) -> (ptr << 32) | len
  ;; Output: f64 score, u32 reason length, reason bytes.
  (func (export "sitediff_score")
    (param $base i32) (param $bw i32) (param $bh i32) (param $new i32) (param $nw i32) (param $nh i32)
    (param $ctx i32) (param $ctx_len i32) (result i64)
    (local $out i32) (local $changed i32) (local $reason i32) (local $len i32)
    (local.set $changed (i32.or (i32.ne (local.get $bw) (local.get $nw)) (i32.ne (local.get $bh) (local.get $nh))))
    (local.set $reason (select (i32.const 16) (i32.const 32) (local.get $changed)))
    (local.set $len (select (i32.const 12) (i32.const 9) (local.get $changed)))
    (call $log (local.get $reason) (local.get $len))
    (local.set $out (call $alloc (i32.add (i32.const 12) (local.get $len))))
    (if (i32.eqz (local.get $out)) (then (return (i64.const -1))))
    (f64.store (local.get $out) (select (f64.const 1) (f64.const 0) (local.get $changed)))
    (i32.store offset=8 (local.get $out) (local.get $len))
    (memory.copy (i32.add (local.get $out) (i32.const 12)) (local.get $reason) (local.get $len))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (i32.add (i32.const 12) (local.get $len)))))
)
