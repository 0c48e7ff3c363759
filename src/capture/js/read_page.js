// sitediff page read, after the shots: the rendered DOM, the document's URL, whether the settle
// script ran on this document (a navigation during the shots makes it false), and the top-level
// navigations the document-start script refused. Run as a WebDriver script, no arguments.

/* exported sitediffReadPage */
function sitediffReadPage() {
  return {
    settled: window.__sitediffSettled === true,
    url: location.href,
    html: document.documentElement ? document.documentElement.outerHTML : '',
    blocked: (window.__sitediff && window.__sitediff.blocked) || [],
  };
}
