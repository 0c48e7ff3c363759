// sitediff review UI: keyboard shortcuts and the overlay slider. No build step, no inline script (CSP).
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
      case "u":
        var up = document.body.getAttribute("data-up");
        if (up) { window.location.href = up; } else { handled = false; }
        break;
      default: handled = false;
    }
    if (handled) e.preventDefault();
  });
})();
