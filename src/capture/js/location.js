// sitediff location check: the document's URL (where the browser ended up after navigating and
// redirects). Run as a WebDriver script, no arguments.

/* exported sitediffLocation */
function sitediffLocation() {
  return location.href;
}
