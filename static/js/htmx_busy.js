// Shared by the review queue's and the grid's keys: whether a key may act now. Until htmx has processed the page,
// and between a swap and htmx processing the new content, a click would submit a form natively (a full page
// load); while a request is in flight a second one would repeat a decision. body[data-keys] says which state it
// is in (the browser tests wait for "ready").
window.ferHtmx = (function () {
  "use strict";
  let inFlight = 0;
  let ready = false;
  let swapping = false;
  document.addEventListener("htmx:load", function () {
    ready = true;
    swapping = false;
    document.body.dataset.keys = "ready";
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.shouldSwap) return;
    swapping = true;
    document.body.dataset.keys = "swapping";
  });
  document.addEventListener("htmx:beforeRequest", function () { inFlight += 1; });
  document.addEventListener("htmx:afterRequest", function () { inFlight = Math.max(0, inFlight - 1); });
  return { busy: function () { return !ready || swapping || inFlight > 0; } };
})();
