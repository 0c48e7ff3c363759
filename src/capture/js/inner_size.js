// sitediff viewport measure (W3C-only endpoints): the viewport's size in CSS px, to correct the
// window size for the browser's own chrome. Run as a WebDriver script, no arguments.

/* exported sitediffInnerSize */
function sitediffInnerSize() {
  return [window.innerWidth, window.innerHeight];
}
