// sitediff document-start script: installed in every new document before the page's own scripts
// (DevTools `Page.addScriptToEvaluateOnNewDocument`; on W3C-only endpoints run right after the
// navigation instead). Called as `sitediffDocStart(prefixHref, longMs)`: the site prefix (a URL)
// and the shortest page timer that never fires (ms); see src/capture/scripts.rs.
// - Top-level navigations (script, meta refresh, form submit) outside the prefix are cancelled
//   through the Navigation API and remembered in `__sitediff.blocked`; `window.open` returns null.
// - fetch/XHR in flight are counted (`__sitediff.inflight`) for the network-quiet wait.
// - Timers of `longMs` or more never fire; once `__sitediff.frozen` is set, the page's timer and
//   animation-frame callbacks are held (not run), so script animation stops at the shot.
// - What could load content only when scrolled into view is counted (`__sitediff.lazyHooks`:
//   IntersectionObserver targets, scroll/wheel listeners): a page without any is not scrolled through.

/* exported sitediffDocStart */
function sitediffDocStart(prefixHref, longMs) {
  if (window.__sitediff) { return; }
  const prefix = new URL(prefixHref);
  const sd = window.__sitediff = { inflight: 0, frozen: false, blocked: [], held: 0, dropped: 0, lazyHooks: 0 };
  // Installed before the page's scripts (not late, after load): the hook count is complete.
  sd.early = document.readyState === 'loading';
  const W = window, oST = W.setTimeout, oSI = W.setInterval, oRAF = W.requestAnimationFrame;
  sd.setTimeout = oST.bind(W);
  sd.raf = oRAF ? oRAF.bind(W) : (cb => oST.call(W, () => cb(performance.now()), 16));
  const norm = s => s.replace(/%[0-9a-fA-F]{2}/g, m => {
    const c = String.fromCharCode(parseInt(m.slice(1), 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : m.toUpperCase();
  });
  const allowed = u => {
    let x;
    try { x = new URL(u, location.href); } catch (e) { return false; }
    if (x.protocol === 'about:' || x.protocol === 'javascript:') { return true; }
    return x.protocol === prefix.protocol && x.host === prefix.host
      && norm(x.pathname).startsWith(norm(prefix.pathname));
  };
  if (W === W.top) {
    if (W.navigation && W.navigation.addEventListener) {
      W.navigation.addEventListener('navigate', e => {
        if (!allowed(e.destination.url) && e.cancelable) {
          e.preventDefault();
          if (sd.blocked.length < 20) { sd.blocked.push(String(e.destination.url)); }
        }
      });
    }
    W.open = () => null;
  }
  const hold = fn => function (...a) {
    if (sd.frozen) { sd.held++; return; }
    return fn.apply(this, a);
  };
  W.setTimeout = function (fn, ms, ...a) {
    if (typeof fn !== 'function') { return oST.call(W, fn, ms, ...a); }
    if (Number(ms) >= longMs) { sd.dropped++; return oST.call(W, () => {}, 0); }
    return oST.call(W, hold(fn), ms, ...a);
  };
  W.setInterval = function (fn, ms, ...a) {
    if (typeof fn !== 'function') { return oSI.call(W, fn, ms, ...a); }
    if (Number(ms) >= longMs) { sd.dropped++; return oST.call(W, () => {}, 0); }
    return oSI.call(W, hold(fn), ms, ...a);
  };
  if (oRAF) {
    W.requestAnimationFrame = function (cb) {
      return oRAF.call(W, t => { if (sd.frozen) { sd.held++; return; } cb(t); });
    };
  }
  if (W.IntersectionObserver) {
    const oObserve = W.IntersectionObserver.prototype.observe;
    W.IntersectionObserver.prototype.observe = function (...a) { sd.lazyHooks++; return oObserve.apply(this, a); };
  }
  if (W.EventTarget) {
    const oAdd = W.EventTarget.prototype.addEventListener;
    W.EventTarget.prototype.addEventListener = function (type, ...a) {
      if (type === 'scroll' || type === 'wheel' || type === 'scrollend') { sd.lazyHooks++; }
      return oAdd.call(this, type, ...a);
    };
  }
  if (W.fetch) {
    const oFetch = W.fetch;
    W.fetch = function (...a) {
      sd.inflight++;
      let p;
      try { p = oFetch.apply(this, a); } catch (e) { sd.inflight--; throw e; }
      const end = () => { sd.inflight--; };
      p.then(end, end);
      return p;
    };
  }
  if (W.XMLHttpRequest) {
    const oSend = W.XMLHttpRequest.prototype.send;
    W.XMLHttpRequest.prototype.send = function (...a) {
      sd.inflight++;
      this.addEventListener('loadend', () => { sd.inflight--; }, { once: true });
      try { return oSend.apply(this, a); } catch (e) { sd.inflight--; throw e; }
    };
  }
}
