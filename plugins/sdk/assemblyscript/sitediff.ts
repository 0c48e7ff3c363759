// sitediff plugin SDK for AssemblyScript (ABI v1, see plugins/ABI.md).
//
// A plugin file imports what it needs from here, re-exports the two ABI functions, and exports its
// entry point:
//
//   import { Image, MaskResult, parseContext, log } from "./sitediff";
//   export { sitediff_alloc, sitediff_abi_version } from "./sitediff";
//   export function sitediff_mask(image: usize, width: u32, height: u32, context: usize,
//                                 contextLen: u32, rects: usize, rectCount: u32): i64 { ... }
//
// Build: asc plugin.ts -o plugin.wasm -O3 --debug --runtime stub --use abort=sitediff/sitediffAbort
// (no WASI, no JS glue; the only import is env.log).

// ---- The host -------------------------------------------------------------------------------------

@external("env", "log")
declare function hostLog(ptr: usize, len: u32): void;

/** Write one line to sitediff's log (at most 32 lines per call are kept, 1024 bytes each). */
export function log(message: string): void {
  const bytes = String.UTF8.encode(message);
  hostLog(changetype<usize>(bytes), <u32>bytes.byteLength);
}

/** Called by AssemblyScript on a failed assertion, an index out of range, `throw`...: logs where and
 * traps, so sitediff reports the plugin's failure with this line. Pass `--use abort=sitediff/sitediffAbort`. */
export function sitediffAbort(message: string | null, file: string | null, line: u32, column: u32): void {
  log("abort: " + (message ? message : "") + " at " + (file ? file : "?") + ":" + line.toString() + ":" + column.toString());
  unreachable();
}

/** `sitediff_alloc`: fresh memory for the host's inputs (a bump allocator; nothing is ever freed,
 * each call runs in a fresh instance). */
export function sitediff_alloc(size: u32): usize {
  return heap.alloc(<usize>size);
}

/** `sitediff_abi_version`: this SDK speaks ABI 1. */
export function sitediff_abi_version(): i32 {
  return 1;
}

// ---- Images ---------------------------------------------------------------------------------------

/** A colour packed as a u32 the way it lies in memory: R in the low byte, then G, B, A. */
// @ts-ignore: decorator
@inline export function rgba(r: u32, g: u32, b: u32, a: u32 = 255): u32 {
  return (r & 0xff) | ((g & 0xff) << 8) | ((b & 0xff) << 16) | ((a & 0xff) << 24);
}

/** The RGBA image the host handed over (in the plugin's memory; a mask plugin may edit it). */
export class Image {
  constructor(public ptr: usize, public width: u32, public height: u32) {}

  /** The address of the first pixel of row `y`. */
  // @ts-ignore: decorator
  @inline row(y: u32): usize {
    return this.ptr + (<usize>y * <usize>this.width << 2);
  }
  /** Pixel (x, y) as a packed colour (see `rgba`); no bounds check. */
  // @ts-ignore: decorator
  @inline get(x: u32, y: u32): u32 {
    return load<u32>(this.row(y) + (<usize>x << 2));
  }
  /** Set pixel (x, y); no bounds check. */
  // @ts-ignore: decorator
  @inline set(x: u32, y: u32, colour: u32): void {
    store<u32>(this.row(y) + (<usize>x << 2), colour);
  }
  /** Paint a rectangle (clipped to the image) with one colour. */
  fillRect(x: u32, y: u32, width: u32, height: u32, colour: u32): void {
    const x1 = <u32>min<u64>(<u64>x + width, this.width);
    const y1 = <u32>min<u64>(<u64>y + height, this.height);
    for (let yy = y; yy < y1; yy++) {
      for (let xx = x; xx < x1; xx++) this.set(xx, yy, colour);
    }
  }
}

// ---- Rectangles -----------------------------------------------------------------------------------

export class Rect {
  constructor(public x: u32 = 0, public y: u32 = 0, public width: u32 = 0, public height: u32 = 0) {}
}

/** A rectangle of the `rects` input of a mask call: which selector (index into the context's
 * `selectors`) and where (clipped to the image by the host). */
export class SelectorRect extends Rect {
  selector: u32 = 0;
}

/** Decode the `rects, rectCount` parameters of `sitediff_mask`. */
export function selectorRects(ptr: usize, count: u32): SelectorRect[] {
  const out = new Array<SelectorRect>();
  for (let i: u32 = 0; i < count; i++) {
    const p = ptr + <usize>i * 20;
    const r = new SelectorRect(load<u32>(p, 4), load<u32>(p, 8), load<u32>(p, 12), load<u32>(p, 16));
    r.selector = load<u32>(p);
    out.push(r);
  }
  return out;
}

// ---- Outputs --------------------------------------------------------------------------------------

/** Builds a mask call's answer: rectangles to ignore (clipped to the image) and whether pixels
 * were edited. `finish()` gives the value `sitediff_mask` returns. */
export class MaskResult {
  private rects: Rect[] = new Array<Rect>();
  private edited: bool = false;
  constructor(public width: u32, public height: u32) {}

  /** Ignore a rectangle (clipped to the image; empty ones are dropped). */
  ignore(x: u32, y: u32, width: u32, height: u32): void {
    if (x >= this.width || y >= this.height || width == 0 || height == 0) return;
    const w = <u32>min<u64>(width, this.width - x);
    const h = <u32>min<u64>(height, this.height - y);
    this.rects.push(new Rect(x, y, w, h));
  }
  /** Say the image's pixels were edited in place: the host reads them back. */
  pixelsEdited(): void {
    this.edited = true;
  }
  get count(): i32 {
    return this.rects.length;
  }
  finish(): i64 {
    const n = this.rects.length;
    const len = 8 + 16 * n;
    const out = heap.alloc(<usize>len);
    store<u32>(out, this.edited ? 1 : 0);
    store<u32>(out, n, 4);
    for (let i = 0; i < n; i++) {
      const r = this.rects[i];
      const p = out + 8 + 16 * <usize>i;
      store<u32>(p, r.x);
      store<u32>(p, r.y, 4);
      store<u32>(p, r.width, 8);
      store<u32>(p, r.height, 12);
    }
    return packOutput(out, <u32>len);
  }
}

/** The value `sitediff_score` returns: a score in 0..1 and a reason shown to reviewers. */
export function scoreResult(score: f64, reason: string = ""): i64 {
  const text = String.UTF8.encode(reason);
  const n = <u32>min(text.byteLength, 4096);
  const out = heap.alloc(12 + <usize>n);
  store<f64>(out, score);
  store<u32>(out, n, 8);
  memory.copy(out + 12, changetype<usize>(text), n);
  return packOutput(out, 12 + n);
}

/** Give up on this page (log why first): the page's plugin step fails. */
export const FAILED: i64 = -1;

function packOutput(ptr: usize, len: u32): i64 {
  return <i64>((<u64>ptr << 32) | <u64>len);
}

// ---- The context ----------------------------------------------------------------------------------

export class Size {
  width: u32 = 0;
  height: u32 = 0;
}

export class SelectorMatch {
  selector: string = "";
  rects: Rect[] = new Array<Rect>();
}

/** sitediff's own diff, as score plugins see it (after masking). */
export class Diff {
  diffPixels: f64 = 0;
  totalPixels: f64 = 0;
  distortion: f64 = 0;
  sizeChanged: bool = false;
  regions: Rect[] = new Array<Rect>();
  /** What the diff did not compare: the `mask_selectors` boxes and the mask plugins' rectangles. */
  ignored: Rect[] = new Array<Rect>();
}

/** The JSON context of a call, parsed. Fields a call does not have keep their defaults (`image` is
 * for mask calls; `base`, `new_`, `diff` for score calls). */
export class Context {
  abiVersion: i32 = 0;
  kind: string = "";
  site: string = "";
  pageKey: string = "";
  url: string = "";
  viewport: Size = new Size();
  image: Size = new Size();
  base: Size = new Size();
  new_: Size = new Size();
  diff: Diff = new Diff();
  selectors: SelectorMatch[] = new Array<SelectorMatch>();
}

/** Parse the `context, contextLen` parameters of an entry point. */
export function parseContext(ptr: usize, len: u32): Context {
  const text = String.UTF8.decodeUnsafe(ptr, <usize>len);
  const root = new JsonParser(text).value();
  const c = new Context();
  c.abiVersion = <i32>root.num("abi_version");
  c.kind = root.str("kind");
  c.site = root.str("site");
  c.pageKey = root.str("page_key");
  c.url = root.str("url");
  c.viewport = size(root.get("viewport"));
  c.image = size(root.get("image"));
  c.base = size(root.get("base"));
  c.new_ = size(root.get("new"));
  const d = root.get("diff");
  c.diff.diffPixels = d.num("diff_pixels");
  c.diff.totalPixels = d.num("total_pixels");
  c.diff.distortion = d.num("distortion");
  c.diff.sizeChanged = d.get("size_changed").kind == JsonKind.True;
  c.diff.regions = rects(d.get("regions"));
  c.diff.ignored = rects(d.get("ignored"));
  const sels = root.get("selectors").items;
  for (let i = 0; i < sels.length; i++) {
    const m = new SelectorMatch();
    m.selector = sels[i].str("selector");
    m.rects = rects(sels[i].get("rects"));
    c.selectors.push(m);
  }
  return c;
}

function size(v: JsonValue): Size {
  const s = new Size();
  s.width = <u32>v.num("width");
  s.height = <u32>v.num("height");
  return s;
}

function rects(v: JsonValue): Rect[] {
  const out = new Array<Rect>();
  for (let i = 0; i < v.items.length; i++) {
    const r = v.items[i];
    out.push(new Rect(<u32>r.num("x"), <u32>r.num("y"), <u32>r.num("width"), <u32>r.num("height")));
  }
  return out;
}

// ---- A small JSON reader (enough for the context) ---------------------------------------------------

export enum JsonKind { Null, False, True, Number, String, Array, Object }

export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  number: f64 = 0;
  text: string = "";
  items: JsonValue[] = new Array<JsonValue>();
  keys: string[] = new Array<string>();

  /** The member `key` of an object (a null value when absent or not an object). */
  get(key: string): JsonValue {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] == key) return this.items[i];
    return new JsonValue();
  }
  num(key: string): f64 {
    return this.get(key).number;
  }
  str(key: string): string {
    return this.get(key).text;
  }
}

export class JsonParser {
  private at: i32 = 0;
  constructor(private s: string) {}

  value(): JsonValue {
    this.ws();
    const v = new JsonValue();
    if (this.at >= this.s.length) return v;
    const c = this.s.charCodeAt(this.at);
    if (c == 0x7b /* { */) {
      v.kind = JsonKind.Object;
      this.at++;
      this.ws();
      if (this.peek() == 0x7d) { this.at++; return v; }
      while (this.at < this.s.length) {
        this.ws();
        v.keys.push(this.string());
        this.ws();
        this.at++; // ':'
        v.items.push(this.value());
        this.ws();
        if (this.s.charCodeAt(this.at++) != 0x2c /* , */) break;
      }
    } else if (c == 0x5b /* [ */) {
      v.kind = JsonKind.Array;
      this.at++;
      this.ws();
      if (this.peek() == 0x5d) { this.at++; return v; }
      while (this.at < this.s.length) {
        v.items.push(this.value());
        this.ws();
        if (this.s.charCodeAt(this.at++) != 0x2c) break;
      }
    } else if (c == 0x22 /* " */) {
      v.kind = JsonKind.String;
      v.text = this.string();
    } else if (c == 0x74 /* t */) {
      v.kind = JsonKind.True;
      this.at += 4;
    } else if (c == 0x66 /* f */) {
      v.kind = JsonKind.False;
      this.at += 5;
    } else if (c == 0x6e /* n */) {
      this.at += 4;
    } else {
      const start = this.at;
      while (this.at < this.s.length) {
        const d = this.s.charCodeAt(this.at);
        if (d == 0x2c || d == 0x7d || d == 0x5d || d == 0x20 || d == 0x0a) break;
        this.at++;
      }
      v.kind = JsonKind.Number;
      v.number = parseFloat(this.s.substring(start, this.at));
    }
    return v;
  }

  private peek(): i32 {
    return this.at < this.s.length ? this.s.charCodeAt(this.at) : -1;
  }

  private ws(): void {
    while (this.at < this.s.length) {
      const c = this.s.charCodeAt(this.at);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.at++;
    }
  }

  private string(): string {
    this.at++; // opening quote
    let out = "";
    let start = this.at;
    while (this.at < this.s.length) {
      const c = this.s.charCodeAt(this.at);
      if (c == 0x22) break;
      if (c == 0x5c /* \ */) {
        out += this.s.substring(start, this.at);
        const e = this.s.charCodeAt(this.at + 1);
        if (e == 0x75 /* u */) {
          out += String.fromCharCode(<i32>parseInt(this.s.substring(this.at + 2, this.at + 6), 16));
          this.at += 6;
        } else {
          out += e == 0x6e ? "\n" : e == 0x74 ? "\t" : e == 0x72 ? "\r" : e == 0x62 ? "\b" : e == 0x66 ? "\f" : String.fromCharCode(e);
          this.at += 2;
        }
        start = this.at;
        continue;
      }
      this.at++;
    }
    out += this.s.substring(start, this.at);
    this.at++; // closing quote
    return out;
  }
}
