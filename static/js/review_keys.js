// Keyboard shortcuts of the review queue. Each key clicks the button whose data-key lists it, so a key does
// exactly what the button does. Held keys (auto-repeat) and keys pressed while a request is in flight are
// dropped: a decision is recorded at most once per card (the server's version check is the final guard).
(function () {
  "use strict";

  function buttonFor(key) {
    for (const button of document.querySelectorAll("#card button[data-key]")) {
      if (button.dataset.key.split(" ").includes(key)) return button;
    }
    return null;
  }

  function toggleKeys() {
    const dialog = document.getElementById("keys");
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  function toggleZoom() {
    const figure = document.querySelector("#card .zoomable");
    if (figure) figure.classList.toggle("zoomed");
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest(".keys-toggle")) toggleKeys();
    if (event.target.closest("#card .zoomable img, #card .zoom-toggle")) toggleZoom();
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, select, textarea, dialog[open]")) return;
    const key = event.key === "Enter" ? "Enter" : event.key.toLowerCase();
    if (key === "?") { event.preventDefault(); toggleKeys(); return; }
    if (key === "z") { event.preventDefault(); toggleZoom(); return; }
    const button = buttonFor(key);
    if (!button) return;
    // Enter on a focused button would also click it natively: one decision per key press.
    event.preventDefault();
    if (window.ferHtmx.busy() || event.repeat || button.disabled || button.closest("fieldset:disabled")) return;
    button.click();
  });
})();
