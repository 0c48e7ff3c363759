// sitediff settle script: settles the page for its shot and measures it. Run as an async WebDriver
// script; its arguments, in order (built in src/capture/scripts.rs): the style sheet to inject, the
// image wait, the frame wait, the network-quiet window and its cap (ms), the max height (px), the
// most scroll steps, the poll interval (ms), the mask selectors, whether the site injects a script,
// and last the callback `done`.
//
// Waits for `load` and `document.fonts.ready`; makes lazy images and iframes eager; scrolls through
// the page viewport by viewport and back when something on it could load content only when seen
// (IntersectionObserver targets, scroll listeners, `onscroll` handlers; always when the
// document-start script did not run); waits for images and for network quiet (no fetch/XHR in
// flight, no image loading, and, on a page where a script could start more requests, nothing
// finished for the window); then freezes: held page timers, the style sheet, cancelled animations,
// paused media, blurred focus (no caret), top of the page, one frame. Calls `done` with the
// measurement `{url, height, masks, title}`, `{invalid_selector}` for a mask selector that does not
// parse, or `{error}`.

/* exported sitediffSettle */
function sitediffSettle(css, imageWaitMs, frameWaitMs, quietMs, quietCapMs, maxScroll, maxSteps, pollMs, sels,
  injected, done) {
  const url = location.href;
  const sd = window.__sitediff;
  const st = (sd && sd.setTimeout) || window.setTimeout.bind(window);
  const raf = (sd && sd.raf) || window.requestAnimationFrame.bind(window);
  const sleep = ms => new Promise(r => st(r, ms));
  const frame = () => new Promise(r => raf(() => r()));
  const frames = () => Promise.race([frame().then(frame), sleep(frameWaitMs)]);
  const de = document.documentElement;
  const pageHeight = () => Math.max(de.scrollHeight, document.body ? document.body.scrollHeight : 0);
  const eager = () => {
    for (const el of document.querySelectorAll('img[loading=lazy], iframe[loading=lazy]')) { el.loading = 'eager'; }
  };
  const needsScroll = () => !sd || !sd.early || sd.lazyHooks > 0 || !!(window.onscroll || document.onscroll
    || (document.body && document.body.onscroll) || document.querySelector('[onscroll]'));
  const waitImages = async () => {
    const pending = [];
    for (const img of document.images) {
      if (!img.complete) {
        pending.push(new Promise(r => {
          img.addEventListener('load', r, { once: true });
          img.addEventListener('error', r, { once: true });
        }));
      }
    }
    if (pending.length) { await Promise.race([Promise.all(pending), sleep(imageWaitMs)]); }
  };
  // Only a script can start requests once the page has loaded: the page's own (elements, handlers
  // that fire without user input), one in a frame or plugin, or the site's inject_js.
  const scripted = () => injected || !!document.querySelector('script, iframe, frame, object, embed, '
    + '[onload], [onpageshow], [onerror], [onfocus], [onresize], [onanimationstart], [onanimationend], '
    + '[onanimationiteration], [ontransitionend], [ontoggle]');
  const networkQuiet = async () => {
    let last = 0;
    for (const e of performance.getEntriesByType('resource')) { last = Math.max(last, e.responseEnd || 0); }
    let po = null;
    try {
      po = new PerformanceObserver(l => { for (const e of l.getEntries()) { last = Math.max(last, e.responseEnd || 0); } });
      po.observe({ type: 'resource' });
    } catch (e) {}
    const t0 = performance.now(), quiet = !scripted();
    while (performance.now() - t0 < quietCapMs) {
      const busy = ((sd && sd.inflight) || 0) > 0 || [...document.images].some(i => !i.complete);
      if (!busy && (quiet || performance.now() - last >= quietMs)) { break; }
      await sleep(pollMs);
    }
    if (po) { po.disconnect(); }
  };
  const blur = () => {
    const el = document.activeElement;
    if (el && el !== document.body && el.blur) { el.blur(); }
  };
  const measure = () => {
    const b = document.body;
    const height = Math.max(de.scrollHeight, de.offsetHeight, b ? b.scrollHeight : 0, b ? b.offsetHeight : 0);
    const sx = window.scrollX, sy = window.scrollY;
    const masks = [];
    for (const s of sels) {
      let els;
      try { els = document.querySelectorAll(s); } catch (e) { return { invalid_selector: s }; }
      const rects = [];
      for (const el of els) {
        const r = el.getBoundingClientRect();
        rects.push([r.left + sx, r.top + sy, r.width, r.height]);
      }
      masks.push(rects);
    }
    return { url, height, masks, title: document.title };
  };
  (async () => {
    if (document.readyState !== 'complete') {
      await new Promise(r => window.addEventListener('load', r, { once: true }));
    }
    if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
    eager();
    if (needsScroll()) {
      const vh = Math.max(1, window.innerHeight);
      let steps = 0;
      while (steps < maxSteps && (steps + 1) * vh < Math.min(pageHeight(), maxScroll)) {
        steps++;
        window.scrollTo(0, steps * vh);
        await frames();
      }
      if (steps > 0) { window.scrollTo(0, 0); await frames(); }
      eager();
    }
    await waitImages();
    await networkQuiet();
    if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
    if (sd) { sd.frozen = true; }
    const style = document.createElement('style');
    style.setAttribute('data-sitediff', '');
    style.textContent = css;
    (document.head || document.documentElement).appendChild(style);
    if (document.getAnimations) {
      for (const a of document.getAnimations()) { try { a.cancel(); } catch (e) {} }
    }
    for (const v of document.querySelectorAll('video, audio')) { try { v.pause(); v.currentTime = 0; } catch (e) {} }
    blur();
    window.scrollTo(0, 0);
    // One frame with the frozen styles; the shot itself forces the next one. The frame also
    // flushes pending `autofocus`, which would focus an element after the blur above: blur again.
    await Promise.race([frame(), sleep(frameWaitMs)]);
    blur();
    if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
    window.__sitediffSettled = true;
    done(measure());
  })().catch(e => done({ error: String((e && e.message) || e) }));
}
