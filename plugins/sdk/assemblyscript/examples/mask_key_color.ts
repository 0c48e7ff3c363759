// sitediff example mask plugin (AssemblyScript): finds areas painted in a key colour by their pixels
// and tells sitediff to ignore them.
//
// Give the dynamic part of your page (a clock, a "last updated" line, an ad slot) a background of the
// key colour, magenta #FF00FF, and this plugin masks it: every band of consecutive rows that holds a
// run of at least MIN_RUN key-colour pixels becomes one ignore rectangle, from the leftmost to the
// rightmost run in that band, padded by PAD pixels. Text drawn on the key colour lies inside the band.
import { Image, MaskResult, log } from "../sitediff";
export { sitediff_alloc, sitediff_abi_version } from "../sitediff";

const KEY_R: i32 = 255;
const KEY_G: i32 = 0;
const KEY_B: i32 = 255;
const TOLERANCE: i32 = 8;
const MIN_RUN: u32 = 8;
const MAX_GAP: u32 = 4;
const PAD: u32 = 2;
const MAX_RECTS: i32 = 1024;

// @ts-ignore: decorator
@inline function near(v: i32, want: i32): bool {
  return abs(v - want) <= TOLERANCE;
}

let spanX0: u32 = 0;
let spanX1: u32 = 0;

/** The leftmost start and rightmost end of key-colour runs in one row (in spanX0, spanX1). */
function rowSpan(row: usize, width: u32): bool {
  let run: u32 = 0;
  let found = false;
  let lo: u32 = 0;
  let hi: u32 = 0;
  for (let x: u32 = 0; x < width; x++) {
    const p = row + (<usize>x << 2);
    // Cheap test first: the key colour has almost no green, most pixels of a page have plenty.
    const g = <i32>load<u8>(p, 1);
    if (g > KEY_G + TOLERANCE || !near(<i32>load<u8>(p), KEY_R) || !near(<i32>load<u8>(p, 2), KEY_B)) {
      run = 0;
      continue;
    }
    run++;
    if (run == MIN_RUN) {
      const start = x + 1 - MIN_RUN;
      if (!found || start < lo) lo = start;
      found = true;
    }
    if (run >= MIN_RUN) hi = x + 1;
  }
  spanX0 = lo;
  spanX1 = hi;
  return found;
}

export function sitediff_mask(image: usize, width: u32, height: u32, context: usize, contextLen: u32,
                              rects: usize, rectCount: u32): i64 {
  const img = new Image(image, width, height);
  const x0s = new Array<u32>(), y0s = new Array<u32>(), x1s = new Array<u32>(), y1s = new Array<u32>();
  let open = false;
  let gap: u32 = 0;
  for (let y: u32 = 0; y < height; y++) {
    if (rowSpan(img.row(y), width)) {
      if (open) {
        const n = x0s.length - 1;
        if (spanX0 < x0s[n]) x0s[n] = spanX0;
        if (spanX1 > x1s[n]) x1s[n] = spanX1;
        y1s[n] = y + 1;
      } else if (x0s.length < MAX_RECTS) {
        x0s.push(spanX0); y0s.push(y); x1s.push(spanX1); y1s.push(y + 1);
        open = true;
      }
      gap = 0;
    } else if (open && ++gap > MAX_GAP) {
      open = false;
    }
  }
  const out = new MaskResult(width, height);
  for (let i = 0; i < x0s.length; i++) {
    const x = x0s[i] > PAD ? x0s[i] - PAD : 0;
    const y = y0s[i] > PAD ? y0s[i] - PAD : 0;
    out.ignore(x, y, x1s[i] + PAD - x, y1s[i] + PAD - y);
  }
  log("mask_key_color: " + out.count.toString() + " area(s) masked");
  return out.finish();
}
