// sitediff example score plugin (AssemblyScript): a change near the top of the page matters more.
//
// Every pixel that differs between baseline and new capture (any channel by more than TOLERANCE, or
// present in only one of them) counts with weight 1 / (1 + y / FOLD): full weight on the first screen,
// half at y = FOLD, a third at 2 * FOLD... The score is the weighted count of changed pixels over the
// weighted count of all pixels: 0 for identical images, 1 when everything changed. What sitediff
// ignored (`diff.ignored`: masked areas) is painted alike in both images first, so it never counts.
import { Image, log, parseContext, rgba, scoreResult } from "../sitediff";
export { sitediff_alloc, sitediff_abi_version } from "../sitediff";

const TOLERANCE: i32 = 16;
const FOLD: f64 = 800.0;

// @ts-ignore: decorator
@inline function channelDiffers(a: i32, b: i32): bool {
  return abs(a - b) > TOLERANCE;
}

function pixelDiffers(p: usize, q: usize): bool {
  return channelDiffers(load<u8>(p), load<u8>(q)) || channelDiffers(load<u8>(p, 1), load<u8>(q, 1)) ||
    channelDiffers(load<u8>(p, 2), load<u8>(q, 2)) || channelDiffers(load<u8>(p, 3), load<u8>(q, 3));
}

export function sitediff_score(base: usize, baseW: u32, baseH: u32, cur: usize, curW: u32, curH: u32,
                               context: usize, contextLen: u32): i64 {
  const ctx = parseContext(context, contextLen);
  // What sitediff ignored (masked areas) must not count here either: paint it the same in both.
  const baseImg = new Image(base, baseW, baseH);
  const curImg = new Image(cur, curW, curH);
  for (let i = 0; i < ctx.diff.ignored.length; i++) {
    const r = ctx.diff.ignored[i];
    baseImg.fillRect(r.x, r.y, r.width, r.height, rgba(0, 0, 0));
    curImg.fillRect(r.x, r.y, r.width, r.height, rgba(0, 0, 0));
  }
  const w = max(baseW, curW);
  const h = max(baseH, curH);
  let changedWeight: f64 = 0;
  let totalWeight: f64 = 0;
  let changed: u64 = 0;
  let firstRow: i64 = -1;
  for (let y: u32 = 0; y < h; y++) {
    const weight = 1.0 / (1.0 + <f64>y / FOLD);
    let rowChanged: u32;
    if (y < baseH && y < curH) {
      const p = base + (<usize>y * baseW << 2);
      const q = cur + (<usize>y * curW << 2);
      const common = min(baseW, curW);
      rowChanged = w - common; // pixels present in only one image
      let x: u32 = 0;
      // Two pixels at a time as 64-bit words: most are equal, and then nothing else is needed.
      for (; x + 2 <= common; x += 2) {
        const o = <usize>x << 2;
        if (load<u64>(p + o) == load<u64>(q + o)) continue;
        rowChanged += <u32>pixelDiffers(p + o, q + o) + <u32>pixelDiffers(p + o + 4, q + o + 4);
      }
      if (x < common) rowChanged += <u32>pixelDiffers(p + (<usize>x << 2), q + (<usize>x << 2));
    } else {
      rowChanged = w;
    }
    if (rowChanged > 0 && firstRow < 0) firstRow = y;
    changed += rowChanged;
    changedWeight += weight * <f64>rowChanged;
    totalWeight += weight * <f64>w;
  }
  const score = totalWeight > 0 ? min(changedWeight / totalWeight, 1.0) : 0.0;
  let reason = changed.toString() + " pixel(s) changed";
  if (firstRow >= 0) reason += ", first at row " + firstRow.toString();
  log("score_top_weighted: " + reason + " (sitediff's distortion " + ctx.diff.distortion.toString() + ")");
  return scoreResult(score, reason);
}
