// sitediff fingerprint scripts (issue 19). `sitediffFingerprintStart()` is installed in every new
// document before the page's own scripts (DevTools `Page.addScriptToEvaluateOnNewDocument`, every
// frame); `sitediffFingerprintRead()` runs after the shots and answers what the page did that could
// make it render differently with every input unchanged, and every URL it used.
//
// The rule ("could change by itself"), marks counted from document start to the read:
// - clock: `Date()`, `new Date()` without arguments, `Date.now()`, `performance.now()` (not ours);
// - random: `Math.random()`, `crypto.getRandomValues()`, `crypto.randomUUID()`;
// - timer: `setInterval` (any delay), `setTimeout` with a delay above 0;
// - animation-frames: more than 4 `requestAnimationFrame` callbacks asked for (a script animation);
// - canvas: a canvas context was created; connection: WebSocket, EventSource, RTCPeerConnection;
// - worker: Worker, SharedWorker, a service worker registered;
// at the read: media (video, audio), any frame (the settle script freezes the top document only;
// a same-origin frame's marks and URLs are read too), requests still in flight. The Rust side adds what DevTools saw (see
// src/capture/fingerprint.rs).

/* exported sitediffFingerprintStart, sitediffFingerprintRead */
function sitediffFingerprintStart() {
  if (window.__sitediffFp) { return; }
  const marks = {};
  Object.defineProperty(window, '__sitediffFp', { value: marks, enumerable: false });
  const mark = r => { marks[r] = (marks[r] || 0) + 1; };
  const wrap = (obj, name, reason, when) => {
    const orig = obj && obj[name];
    if (typeof orig !== 'function') { return; }
    obj[name] = function (...a) {
      if (!when || when(a)) { mark(reason); }
      return orig.apply(this, a);
    };
  };
  const ODate = window.Date;
  function SitediffDate(...a) {
    if (!new.target) { mark('clock'); return ODate(); }
    if (a.length === 0) { mark('clock'); }
    return Reflect.construct(ODate, a, new.target);
  }
  SitediffDate.prototype = ODate.prototype;
  SitediffDate.now = function () { mark('clock'); return ODate.now(); };
  SitediffDate.parse = ODate.parse;
  SitediffDate.UTC = ODate.UTC;
  Object.defineProperty(SitediffDate, 'name', { value: 'Date' });
  window.Date = SitediffDate;
  if (window.performance && performance.now) {
    const oNow = performance.now.bind(performance);
    performance.now = function () {
      // sitediff's own scripts (run under this source URL) read the clock too: not the page's.
      if (!/sitediff-script/.test(String(new Error().stack))) { mark('clock'); }
      return oNow();
    };
  }
  wrap(Math, 'random', 'random');
  if (window.crypto) {
    wrap(window.crypto, 'getRandomValues', 'random');
    wrap(window.crypto, 'randomUUID', 'random');
  }
  wrap(window, 'setInterval', 'timer');
  wrap(window, 'setTimeout', 'timer', a => typeof a[0] === 'function' && Number(a[1]) > 0);
  let frames = 0;
  wrap(window, 'requestAnimationFrame', 'animation-frames', () => ++frames > 4);
  if (window.HTMLCanvasElement) { wrap(HTMLCanvasElement.prototype, 'getContext', 'canvas'); }
  if (window.OffscreenCanvas) { wrap(OffscreenCanvas.prototype, 'getContext', 'canvas'); }
  for (const [name, reason] of [['WebSocket', 'connection'], ['EventSource', 'connection'],
    ['RTCPeerConnection', 'connection'], ['Worker', 'worker'], ['SharedWorker', 'worker']]) {
    const O = window[name];
    if (typeof O !== 'function') { continue; }
    const W = function (...a) { mark(reason); return Reflect.construct(O, a, new.target || O); };
    W.prototype = O.prototype;
    Object.setPrototypeOf(W, O);
    window[name] = W;
  }
  if (navigator.serviceWorker) { wrap(navigator.serviceWorker, 'register', 'worker'); }
}

function sitediffFingerprintRead() {
  const marks = {};
  const add = (m) => { for (const k of Object.keys(m || {})) { marks[k] = (marks[k] || 0) + m[k]; } };
  const urls = new Set();
  const visit = (w, depth) => {
    let doc;
    try { doc = w.document; add(w.__sitediffFp); } catch (e) { marks['cross-origin-frame'] = 1; return; }
    if (!w.__sitediffFp) { marks['unwatched-frame'] = 1; }
    try {
      for (const e of w.performance.getEntriesByType('resource')) { urls.add(e.name); }
    } catch (e) {}
    for (const el of doc.querySelectorAll('img[src], link[rel~=stylesheet][href], script[src]')) {
      const u = el.currentSrc || el.src || el.href;
      if (u) { urls.add(String(u)); }
    }
    if (doc.querySelector('video, audio')) { marks.media = 1; }
    for (const f of doc.querySelectorAll('iframe, frame, object, embed')) {
      // The settle script freezes the top document only: a frame's animations and timers go on.
      marks.frame = 1;
      if (depth > 4) { marks['deep-frames'] = 1; break; }
      const cw = f.contentWindow;
      if (!cw) { if (f.tagName !== 'IFRAME' && f.tagName !== 'FRAME') { marks.plugin = 1; } continue; }
      visit(cw, depth + 1);
    }
  };
  visit(window, 0);
  const sd = window.__sitediff;
  const answer = () => {
    if (sd && sd.inflight > 0) { marks['requests-in-flight'] = sd.inflight; }
    const fontsLoading = !!(document.fonts && document.fonts.status !== 'loaded');
    const imagesLoading = [...document.images].some(i => !i.complete);
    return { marks, urls: [...urls], fontsLoading, imagesLoading };
  };
  // Decoded images only: one still decoding could be missing from a first shot. (sitediff's own
  // timer: the page's are held once the settle script froze it.)
  const st = sd && sd.setTimeout;
  const decodes = [...document.images].filter(i => i.complete && i.naturalWidth > 0 && i.decode)
    .map(i => i.decode().catch(() => {}));
  if (!decodes.length || !st) { return answer(); }
  return Promise.race([Promise.all(decodes), new Promise(r => st(r, 1000))]).then(answer);
}
