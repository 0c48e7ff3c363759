// sitediff review UI: keyboard shortcuts, the overlay slider and drawing ignore areas. No build step, no inline script (CSP).
(function () {
  "use strict";

  function $(sel) { return document.querySelector(sel); }
  function all(sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); }

  function toggleHelp(show) {
    var help = $("#help");
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  function follow(el) {
    if (el && el.href) { window.location.href = el.href; return true; }
    return false;
  }

  // Crawl view: a selectable list of page rows.
  var rows = all(".page-row");
  var selected = -1;
  function select(i) {
    if (!rows.length) return;
    i = Math.max(0, Math.min(rows.length - 1, i));
    if (selected >= 0) rows[selected].classList.remove("selected");
    selected = i;
    rows[i].classList.add("selected");
    rows[i].scrollIntoView({ block: "nearest" });
  }

  // Page view: side by side vs. overlay slider.
  var shots = $("#shots"), compare = $("#compare"), toggle = $("#mode-toggle");
  function setOverlay(on) {
    if (!compare || !shots) return;
    compare.hidden = !on;
    shots.hidden = on;
    if (toggle) toggle.textContent = on ? "Side by side (o)" : "Overlay (o)";
  }
  if (compare && toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () { setOverlay(compare.hidden); });
  }
  var slider = $("#compare-slider"), top = $("#compare-top");
  function clip() {
    if (slider && top) top.style.clipPath = "inset(0 " + (100 - Number(slider.value)) + "% 0 0)";
  }
  if (slider) { slider.addEventListener("input", clip); clip(); }

  // Page view: draw an ignore area with the pointer over the baseline or the new capture (the
  // number fields are the keyboard way, and show what was drawn). Coordinates are image pixels.
  var ignoreForm = $("#ignore-form");
  if (ignoreForm) {
    var fields = { x: $("#ignore-x"), y: $("#ignore-y"), w: $("#ignore-w"), h: $("#ignore-h") };
    var drafts = all("svg.ignored .ignore-draft");
    var drawDraft = function (x, y, w, h) {
      drafts.forEach(function (d) {
        d.setAttribute("x", x); d.setAttribute("y", y); d.setAttribute("width", w); d.setAttribute("height", h);
      });
    };
    var fromFields = function () {
      var v = function (f) { return Math.max(0, Number(f.value) || 0); };
      drawDraft(v(fields.x), v(fields.y), v(fields.w), v(fields.h));
    };
    Object.keys(fields).forEach(function (k) { if (fields[k]) fields[k].addEventListener("input", fromFields); });
    all("#shot-baseline .shot-frame, #shot-new .shot-frame").forEach(function (frame) {
      var svg = frame.querySelector("svg.ignored");
      if (!svg) return;
      frame.classList.add("drawable");
      var start = null, dragged = false;
      var point = function (e) {
        var r = svg.getBoundingClientRect(), vb = svg.viewBox.baseVal;
        var px = Math.round((e.clientX - r.left) * vb.width / r.width);
        var py = Math.round((e.clientY - r.top) * vb.height / r.height);
        return { x: Math.max(0, Math.min(vb.width, px)), y: Math.max(0, Math.min(vb.height, py)) };
      };
      var show = function (a, b) {
        var x = Math.min(a.x, b.x), y = Math.min(a.y, b.y), w = Math.abs(a.x - b.x), h = Math.abs(a.y - b.y);
        fields.x.value = x; fields.y.value = y; fields.w.value = w; fields.h.value = h;
        drawDraft(x, y, w, h);
      };
      frame.addEventListener("dragstart", function (e) { e.preventDefault(); });
      frame.addEventListener("pointerdown", function (e) {
        if (e.button !== 0) return;
        e.preventDefault();
        start = point(e); dragged = false;
        if (frame.setPointerCapture) frame.setPointerCapture(e.pointerId);
      });
      frame.addEventListener("pointermove", function (e) {
        if (!start) return;
        dragged = true; show(start, point(e));
      });
      frame.addEventListener("pointerup", function (e) {
        if (!start) return;
        show(start, point(e)); start = null;
      });
      // A drag is not a click on the image's link.
      frame.addEventListener("click", function (e) { if (dragged) { e.preventDefault(); dragged = false; } }, true);
    });
  }

  // Page view: jump from change to change (the changed regions' tops, in image rows).
  var changeFrame = $("#shot-new .shot-frame[data-changes]");
  var changeAt = -1;
  function jump(step) {
    if (!changeFrame) return false;
    var ys = changeFrame.getAttribute("data-changes").split(",").map(Number);
    var rows = Number(changeFrame.getAttribute("data-height")) || 1;
    changeAt = Math.max(0, Math.min(ys.length - 1, changeAt + step));
    var scale = changeFrame.getBoundingClientRect().height / rows;
    var top = changeFrame.getBoundingClientRect().top + window.scrollY + ys[changeAt] * scale - 80;
    window.scrollTo({ top: Math.max(0, top) });
    return true;
  }
  [["#next-change", 1], ["#prev-change", -1]].forEach(function (b) {
    var el = $(b[0]);
    if (el && changeFrame) { el.hidden = false; el.addEventListener("click", function () { jump(b[1]); }); }
  });

  var helpButton = $("#help-button");
  if (helpButton) helpButton.addEventListener("click", function () { toggleHelp(); });
  var help = $("#help");
  if (help) help.addEventListener("click", function (e) { if (e.target === help) toggleHelp(false); });

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
    var handled = true;
    switch (e.key) {
      case "?": toggleHelp(); break;
      case "Escape": toggleHelp(false); break;
      case "j":
        if (rows.length) {
          if (selected === rows.length - 1) { handled = follow($('.pager a[rel="next"]')); } else { select(selected + 1); }
        } else { handled = follow($("#next-page")); }
        break;
      case "k":
        if (rows.length) {
          if (selected <= 0 && selected !== -1) { handled = follow($('.pager a[rel="prev"]')); } else { select(selected - 1); }
        } else { handled = follow($("#prev-page")); }
        break;
      case "Enter":
        if (rows.length && selected >= 0) { window.location.href = rows[selected].getAttribute("data-href"); } else { handled = false; }
        break;
      case "a":
        var approve = $("#approve-page");
        if (approve) { approve.click(); } else { handled = false; }
        break;
      case "o": setOverlay(compare ? compare.hidden : false); break;
      case "n": handled = jump(1); break;
      case "p": handled = jump(-1); break;
      case "u":
        var up = document.body.getAttribute("data-up");
        if (up) { window.location.href = up; } else { handled = false; }
        break;
      default: handled = false;
    }
    if (handled) e.preventDefault();
  });
})();
