// The review grid's selection and keys. Each tile is a plain checkbox in the grid's form (the page works without
// JavaScript); this adds shift-click ranges, arrow keys between tiles, `a` for all, and keys that press the action
// buttons. Keys are ignored while a request is in flight, so a held key sends one action.
(function () {
  "use strict";
  let anchor = null; // index of the last tile clicked without Shift: one end of a Shift-click range
  document.addEventListener("htmx:afterSwap", function () { anchor = null; updateCount(); });

  function boxes() { return Array.from(document.querySelectorAll("#grid input[name=pick]")); }

  function updateCount() {
    const count = document.querySelector("#grid .selected-count");
    if (count) count.textContent = boxes().filter(b => b.checked).length + " selected";
    for (const box of boxes()) box.closest(".tile").classList.toggle("selected", box.checked);
  }

  function selectAll() {
    const all = boxes();
    const every = all.length > 0 && all.every(b => b.checked);
    for (const box of all) box.checked = !every;
    updateCount();
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest(".keys-toggle")) { toggleKeys(); return; }
    if (event.target.closest("#grid .select-all")) { selectAll(); return; }
    const tile = event.target.closest("#grid label.tile");
    if (!tile) return;
    const box = tile.querySelector("input[name=pick]");
    const index = Number(box.dataset.index);
    if (event.target !== box) return; // the label forwards its click to the box: handle that one
    if (event.shiftKey && anchor !== null) {
      const [lo, hi] = anchor < index ? [anchor, index] : [index, anchor];
      for (const other of boxes().slice(lo, hi + 1)) other.checked = box.checked;
    } else {
      anchor = index;
    }
    updateCount();
  });
  document.addEventListener("change", function (event) {
    if (event.target.matches("#grid input[name=pick]")) updateCount();
  });

  function toggleKeys() {
    const dialog = document.getElementById("keys");
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  function columns(all) {
    if (all.length < 2) return 1;
    const top = all[0].closest("li").offsetTop;
    const n = all.findIndex(b => b.closest("li").offsetTop !== top);
    return n === -1 ? all.length : n;
  }

  function move(key) {
    const all = boxes();
    if (!all.length) return;
    const at = all.indexOf(document.activeElement);
    const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(all), ArrowDown: columns(all) }[key];
    const next = at === -1 ? 0 : Math.min(all.length - 1, Math.max(0, at + step));
    all[next].focus();
  }

  function buttonFor(key) {
    for (const button of document.querySelectorAll("#grid button[data-key]")) {
      if (button.dataset.key.split(" ").includes(key)) return button;
    }
    return null;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("select, textarea, dialog[open], input:not([name=pick])")) return;
    if (event.key.startsWith("Arrow")) { event.preventDefault(); move(event.key); return; }
    if (event.key === " ") {
      // Space toggles the tile in focus (natively for a focused box; here for the rest of the page).
      if (event.target.matches("input[name=pick]")) return;
      const all = boxes();
      if (all.length) { event.preventDefault(); all[0].focus(); }
      return;
    }
    const key = event.key === "Enter" ? "Enter" : event.key.toLowerCase();
    if (key === "?") { event.preventDefault(); toggleKeys(); return; }
    const button = buttonFor(key);
    if (!button) return;
    event.preventDefault();
    if (window.ferHtmx.busy() || event.repeat || button.disabled || button.closest("fieldset:disabled")) return;
    if (key === "a") { selectAll(); return; }
    if (!boxes().some(b => b.checked)) return; // nothing selected: nothing to send
    button.click();
  });
})();
