// The dataset map: one point per train image, drawn on a canvas from the compact binary the API answers
// (GET /api/datasets/<name>/map/, described in curation/maps/store.py). Wheel zooms about the pointer, dragging pans
// (or draws a box or a lasso, by the chosen mode); hovering a point shows its thumbnail, clicking it opens its
// review card, and a box or lasso selection is stored (POST .../map/selection/) and opened in the review grid.
// No library: a few hundred lines of canvas code, served from this site under its content security policy.
(function () {
  "use strict";
  const holder = document.getElementById("map-config");
  const canvas = document.getElementById("map");
  if (!holder || !canvas) return;
  const config = JSON.parse(holder.textContent);
  const ctx = canvas.getContext("2d");
  const status = document.getElementById("map-status");
  const tip = document.getElementById("map-tip");
  const CSS_W = 900, CSS_H = 640, PAD = 12, CELL = 8, HIT = 6;
  // Eight classes, in the canonical order (training/labels.py), told apart also by people with common colour
  // blindness (Okabe-Ito, and a grey for the eighth).
  const CLASS_COLOURS = ["#999999", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"];
  const NONE_COLOUR = "#d0d0d0";
  const STATUS_COLOURS = {unreviewed: "#b0b0b0", confirmed: "#009E73", relabelled: "#0072B2", excluded: "#D55E00"};
  const SUSPICION_STEPS = 8;

  let P = null; // the points: {n, ids, bx, by (base canvas coordinates), label, suggested, suspicion, status}
  let view = {k: 1, tx: 0, ty: 0}; // screen = base * k + t (CSS pixels)
  let grid = null; // spatial index over base coordinates: cell -> point indices
  let groups = []; // [{colour, indices}] for the current colouring
  let selected = null; // Uint8Array(n) of the current selection, or null
  let drag = null; // {mode, x0, y0, x, y, path, moved}
  let hovered = -1;

  function setupCanvas() {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = CSS_W * ratio;
    canvas.height = CSS_H * ratio;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  }

  function decode(buffer) {
    const head = new DataView(buffer, 0, 16);
    const magic = String.fromCharCode(head.getUint8(0), head.getUint8(1), head.getUint8(2), head.getUint8(3));
    if (magic !== "FMAP") throw new Error("not a map (no FMAP header)");
    if (head.getUint32(4, true) !== 1) throw new Error("map version " + head.getUint32(4, true) + " unknown");
    const n = head.getUint32(8, true);
    let at = 16;
    const take = (Type) => { const a = new Type(buffer, at, n); at += n * Type.BYTES_PER_ELEMENT; return a; };
    const ids = take(Uint32Array), x = take(Uint16Array), y = take(Uint16Array);
    const label = take(Uint8Array), suggested = take(Uint8Array), suspicion = take(Uint8Array), st = take(Uint8Array);
    // One scale for both axes (distances keep their proportions), the map centred in the canvas.
    let xMax = 0, yMax = 0;
    for (let i = 0; i < n; i++) { if (x[i] > xMax) xMax = x[i]; if (y[i] > yMax) yMax = y[i]; }
    const w = CSS_W - 2 * PAD, h = CSS_H - 2 * PAD, s = Math.min(w / Math.max(xMax, 1), h / Math.max(yMax, 1));
    const ox = PAD + (w - xMax * s) / 2, oy = PAD + (h - yMax * s) / 2;
    const bx = new Float32Array(n), by = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      bx[i] = ox + x[i] * s;
      by[i] = oy + (yMax - y[i]) * s; // y grows upwards on the map
    }
    return {n, ids, bx, by, label, suggested, suspicion, status: st};
  }

  function buildGrid() {
    const cols = Math.ceil(CSS_W / CELL) + 1, rows = Math.ceil(CSS_H / CELL) + 1;
    const counts = new Uint32Array(cols * rows + 1);
    const cellOf = new Uint32Array(P.n);
    for (let i = 0; i < P.n; i++) {
      const c = Math.floor(P.by[i] / CELL) * cols + Math.floor(P.bx[i] / CELL);
      cellOf[i] = c;
      counts[c + 1]++;
    }
    for (let c = 1; c < counts.length; c++) counts[c] += counts[c - 1];
    const order = new Uint32Array(P.n), fill = counts.slice();
    for (let i = 0; i < P.n; i++) order[fill[cellOf[i]]++] = i;
    grid = {cols, rows, start: counts, order};
  }

  function colourOf(mode, i) {
    if (mode === "label") return CLASS_COLOURS[P.label[i]] || NONE_COLOUR;
    if (mode === "suggested") return P.suggested[i] === 255 ? NONE_COLOUR : CLASS_COLOURS[P.suggested[i]];
    if (mode === "status") return STATUS_COLOURS[config.statuses[P.status[i]]] || NONE_COLOUR;
    if (P.suspicion[i] === 255) return NONE_COLOUR;
    return suspicionColour(Math.min(SUSPICION_STEPS - 1, Math.floor(P.suspicion[i] / 254 * SUSPICION_STEPS)));
  }

  function suspicionColour(step) { // pale yellow (least suspicious) to dark red
    const t = step / (SUSPICION_STEPS - 1);
    return `rgb(${Math.round(250 - 110 * t)},${Math.round(220 - 200 * t)},${Math.round(120 - 100 * t)})`;
  }

  function colourMode() { return document.getElementById("map-colour").value; }

  function regroup() {
    const mode = colourMode(), byColour = new Map();
    for (let i = 0; i < P.n; i++) {
      const c = colourOf(mode, i);
      let list = byColour.get(c);
      if (!list) { list = []; byColour.set(c, list); }
      list.push(i);
    }
    // Grey (no value) first, so coloured points are drawn over it.
    groups = Array.from(byColour, ([colour, indices]) => ({colour, indices}))
      .sort((a, b) => (b.colour === NONE_COLOUR) - (a.colour === NONE_COLOUR));
    legend(mode);
  }

  function legend(mode) {
    const box = document.getElementById("map-legend");
    const rows = [];
    const count = (arr, v) => { let c = 0; for (let i = 0; i < P.n; i++) if (arr[i] === v) c++; return c; };
    if (mode === "label" || mode === "suggested") {
      const arr = mode === "label" ? P.label : P.suggested;
      config.classes.forEach((name, code) => rows.push([CLASS_COLOURS[code], name, count(arr, code)]));
      if (mode === "suggested") rows.push([NONE_COLOUR, "no suggestion", count(arr, 255)]);
    } else if (mode === "status") {
      config.statuses.forEach((name, code) => rows.push([STATUS_COLOURS[name], name, count(P.status, code)]));
    } else {
      for (let s = 0; s < SUSPICION_STEPS; s++) {
        const lo = (s / SUSPICION_STEPS).toFixed(2), hi = ((s + 1) / SUSPICION_STEPS).toFixed(2);
        let c = 0;
        for (let i = 0; i < P.n; i++) {
          const v = P.suspicion[i];
          if (v !== 255 && Math.min(SUSPICION_STEPS - 1, Math.floor(v / 254 * SUSPICION_STEPS)) === s) c++;
        }
        rows.push([suspicionColour(s), `${lo}-${hi}`, c]);
      }
      rows.push([NONE_COLOUR, "not scored", count(P.suspicion, 255)]);
    }
    box.replaceChildren(...rows.map(([colour, name, n]) => {
      const item = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = colour;
      item.append(swatch, `${name} (${n})`);
      item.dataset.name = name;
      return item;
    }));
  }

  function draw() {
    ctx.clearRect(0, 0, CSS_W, CSS_H);
    const size = Math.max(1.5, Math.min(6, 2.2 * Math.sqrt(view.k))), half = size / 2;
    const {k, tx, ty} = view;
    for (const g of groups) {
      ctx.fillStyle = g.colour;
      const idx = g.indices;
      for (let j = 0; j < idx.length; j++) {
        const i = idx[j];
        const sx = P.bx[i] * k + tx, sy = P.by[i] * k + ty;
        if (sx < -half || sy < -half || sx > CSS_W + half || sy > CSS_H + half) continue;
        ctx.fillRect(sx - half, sy - half, size, size);
      }
    }
    if (selected) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 1;
      for (let i = 0; i < P.n; i++) {
        if (!selected[i]) continue;
        ctx.strokeRect(P.bx[i] * k + tx - half - 1, P.by[i] * k + ty - half - 1, size + 2, size + 2);
      }
    }
    if (hovered >= 0) {
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(P.bx[hovered] * k + tx, P.by[hovered] * k + ty, half + 3, 0, 2 * Math.PI);
      ctx.stroke();
    }
    if (drag && drag.mode !== "pan" && drag.moved) {
      ctx.strokeStyle = "#222";
      ctx.setLineDash([4, 3]);
      ctx.lineWidth = 1;
      if (drag.mode === "box") {
        ctx.strokeRect(Math.min(drag.x0, drag.x), Math.min(drag.y0, drag.y), Math.abs(drag.x - drag.x0),
                       Math.abs(drag.y - drag.y0));
      } else {
        ctx.beginPath();
        drag.path.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        ctx.closePath();
        ctx.stroke();
      }
      ctx.setLineDash([]);
    }
  }

  function pointer(event) {
    const r = canvas.getBoundingClientRect();
    return [event.clientX - r.left, event.clientY - r.top];
  }

  function nearest(sx, sy) { // the point under the pointer (within HIT CSS pixels), or -1
    const bx = (sx - view.tx) / view.k, by = (sy - view.ty) / view.k, r = HIT / view.k;
    const c0 = Math.max(0, Math.floor((bx - r) / CELL)), c1 = Math.min(grid.cols - 1, Math.floor((bx + r) / CELL));
    const r0 = Math.max(0, Math.floor((by - r) / CELL)), r1 = Math.min(grid.rows - 1, Math.floor((by + r) / CELL));
    let best = -1, bestD = r * r;
    for (let row = r0; row <= r1; row++) {
      for (let col = c0; col <= c1; col++) {
        const c = row * grid.cols + col;
        for (let j = grid.start[c]; j < grid.start[c + 1]; j++) {
          const i = grid.order[j], dx = P.bx[i] - bx, dy = P.by[i] - by, d = dx * dx + dy * dy;
          if (d <= bestD) { best = i; bestD = d; }
        }
      }
    }
    return best;
  }

  function imageUrl(id) { return config.image.replace(/0\/$/, id + "/"); }

  function cardUrl(id) {
    return config.card + new URLSearchParams({dataset: config.dataset, status: "any", image: String(id)});
  }

  function showTip(i, sx, sy) {
    if (i < 0) { tip.hidden = true; return; }
    const img = tip.querySelector("img"), text = tip.querySelector("span");
    const url = imageUrl(P.ids[i]);
    if (img.dataset.id !== String(P.ids[i])) { img.src = url; img.dataset.id = String(P.ids[i]); }
    const sug = P.suggested[i] === 255 ? "" : `, suggested ${config.classes[P.suggested[i]]}`;
    const sus = P.suspicion[i] === 255 ? "" : `, suspicion ${(P.suspicion[i] / 254).toFixed(2)}`;
    text.textContent = `image ${P.ids[i]}: ${config.classes[P.label[i]]}${sug}${sus} (${config.statuses[P.status[i]]})`;
    tip.style.left = Math.min(sx + 14, CSS_W - 150) + "px";
    tip.style.top = Math.min(sy + 14, CSS_H - 130) + "px";
    tip.hidden = false;
  }

  function mode() { return document.querySelector("input[name=map-mode]:checked").value; }

  function inPolygon(x, y, poly) {
    let inside = false;
    for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
      const [xa, ya] = poly[a], [xb, yb] = poly[b];
      if ((ya > y) !== (yb > y) && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
    }
    return inside;
  }

  function select(test) {
    const picked = new Uint8Array(P.n);
    let count = 0;
    for (let i = 0; i < P.n; i++) {
      const sx = P.bx[i] * view.k + view.tx, sy = P.by[i] * view.k + view.ty;
      if (sx >= 0 && sy >= 0 && sx <= CSS_W && sy <= CSS_H && test(sx, sy)) { picked[i] = 1; count++; }
    }
    selected = count ? picked : null;
    const panel = document.getElementById("map-selected");
    panel.hidden = !count;
    document.getElementById("map-selected-count").textContent = `${count} image${count === 1 ? "" : "s"} selected`;
    document.getElementById("map-error").textContent = "";
    canvas.dataset.selected = String(count);
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (!P) return;
    const [x, y] = pointer(event);
    canvas.setPointerCapture(event.pointerId);
    drag = {mode: mode(), x0: x, y0: y, x, y, tx: view.tx, ty: view.ty, path: [[x, y]], moved: false};
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!P) return;
    const [x, y] = pointer(event);
    if (drag) {
      drag.x = x;
      drag.y = y;
      if (Math.abs(x - drag.x0) + Math.abs(y - drag.y0) > 3) drag.moved = true;
      if (drag.mode === "pan") {
        if (drag.moved) { view.tx = drag.tx + x - drag.x0; view.ty = drag.ty + y - drag.y0; }
      } else if (drag.mode === "lasso") {
        drag.path.push([x, y]);
      }
      tip.hidden = true;
      draw();
      return;
    }
    const i = nearest(x, y);
    if (i !== hovered) { hovered = i; draw(); }
    canvas.dataset.hovered = i >= 0 ? String(P.ids[i]) : "";
    showTip(i, x, y);
  });

  canvas.addEventListener("pointerup", (event) => {
    if (!P || !drag) return;
    const [x, y] = pointer(event);
    const d = drag;
    drag = null;
    if (!d.moved) { // a click: the point's card
      const i = nearest(x, y);
      if (i >= 0) window.location.assign(cardUrl(P.ids[i]));
      draw();
      return;
    }
    if (d.mode === "box") {
      const x0 = Math.min(d.x0, x), x1 = Math.max(d.x0, x), y0 = Math.min(d.y0, y), y1 = Math.max(d.y0, y);
      select((sx, sy) => sx >= x0 && sx <= x1 && sy >= y0 && sy <= y1);
    } else if (d.mode === "lasso") {
      d.path.push([x, y]);
      select((sx, sy) => inPolygon(sx, sy, d.path));
    }
    draw();
  });

  canvas.addEventListener("pointerleave", () => { if (!drag) { hovered = -1; tip.hidden = true; if (P) draw(); } });

  canvas.addEventListener("wheel", (event) => {
    if (!P) return;
    event.preventDefault();
    const [x, y] = pointer(event);
    const f = Math.exp(-event.deltaY * 0.0015), k = Math.min(400, Math.max(0.5, view.k * f)), g = k / view.k;
    view = {k, tx: x - (x - view.tx) * g, ty: y - (y - view.ty) * g};
    draw();
  }, {passive: false});

  document.getElementById("map-colour").addEventListener("change", () => { regroup(); draw(); });
  document.getElementById("map-reset").addEventListener("click", () => { view = {k: 1, tx: 0, ty: 0}; draw(); });
  for (const radio of document.querySelectorAll("input[name=map-mode]")) {
    radio.addEventListener("change", () => canvas.classList.toggle("select", mode() !== "pan"));
  }
  document.getElementById("map-clear").addEventListener("click", () => {
    selected = null;
    document.getElementById("map-selected").hidden = true;
    canvas.dataset.selected = "0";
    draw();
  });
  document.getElementById("map-to-grid").addEventListener("click", async () => {
    const ids = [];
    for (let i = 0; i < P.n; i++) if (selected && selected[i]) ids.push(P.ids[i]);
    const error = document.getElementById("map-error");
    const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
    try {
      const response = await fetch(config.selection, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": token, "Accept": "application/json"},
        body: JSON.stringify({ids, source: `${mode() === "lasso" ? "lasso" : "box"} on the map`}),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || JSON.stringify(body));
      window.location.assign(body.grid);
    } catch (e) {
      error.textContent = `The selection was not stored: ${e.message}`;
    }
  });

  setupCanvas();
  const started = performance.now();
  fetch(config.data, {credentials: "same-origin"})
    .then((response) => {
      if (!response.ok) throw new Error(`the map's data answered ${response.status}`);
      return response.arrayBuffer();
    })
    .then((buffer) => {
      P = decode(buffer);
      buildGrid();
      regroup();
      draw();
      const ms = Math.round(performance.now() - started);
      canvas.dataset.points = String(P.n);
      canvas.dataset.loadMs = String(ms);
      status.textContent = `${P.n} points, loaded and drawn in ${ms} ms.`;
    })
    .catch((e) => { status.textContent = `The map could not be loaded: ${e.message}`; });

  // Tests and scripts find a point's place on the screen through this (read-only).
  window.datasetMap = {
    screenOf(id) {
      if (!P) return null;
      let lo = 0, hi = P.n - 1; // ids ascend
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (P.ids[mid] === id) return [P.bx[mid] * view.k + view.tx, P.by[mid] * view.k + view.ty];
        if (P.ids[mid] < id) lo = mid + 1; else hi = mid - 1;
      }
      return null;
    },
  };
})();
