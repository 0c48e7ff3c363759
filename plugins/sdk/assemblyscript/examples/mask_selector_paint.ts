// sitediff example mask plugin (AssemblyScript): paints the elements matched by the site's
// `mask_selectors` with a flat grey, PAD pixels beyond their boxes, so a shadow, outline or focus
// ring drawn around them (outside the box sitediff measures and ignores) is hidden too. It edits
// pixels, on the baseline and the new capture alike, so the painted areas compare equal.
import { Image, MaskResult, log, parseContext, rgba, selectorRects } from "../sitediff";
export { sitediff_alloc, sitediff_abi_version } from "../sitediff";

const PAD: u32 = 12;

export function sitediff_mask(image: usize, width: u32, height: u32, context: usize, contextLen: u32,
                              rects: usize, rectCount: u32): i64 {
  const img = new Image(image, width, height);
  const ctx = parseContext(context, contextLen);
  const boxes = selectorRects(rects, rectCount);
  const grey = rgba(128, 128, 128);
  for (let i = 0; i < boxes.length; i++) {
    const r = boxes[i];
    const x = r.x > PAD ? r.x - PAD : 0;
    const y = r.y > PAD ? r.y - PAD : 0;
    img.fillRect(x, y, r.x + r.width + PAD - x, r.y + r.height + PAD - y, grey);
  }
  const out = new MaskResult(width, height);
  if (boxes.length > 0) out.pixelsEdited();
  const names = new Array<string>();
  for (let i = 0; i < ctx.selectors.length; i++) names.push(ctx.selectors[i].selector);
  log("mask_selector_paint: painted " + boxes.length.toString() + " box(es) of " + names.join(", ") + " on site " + ctx.site);
  return out.finish();
}
