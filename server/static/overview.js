// The plant overview: one live tile per line, fed by /api/events.
"use strict";

(() => {
  const tiles = new Map();
  const container = document.getElementById("tiles");
  const template = document.getElementById("tile-template");

  function tileFor(state) {
    let tile = tiles.get(state.line);
    if (!tile) {
      tile = template.content.firstElementChild.cloneNode(true);
      tile.href = `/lines/${encodeURIComponent(state.line)}`;
      tile.dataset.line = state.line;
      container.appendChild(tile);
      tiles.set(state.line, tile);
    }
    return tile;
  }

  function render(state) {
    const tile = tileFor(state);
    const pick = (selector) => tile.querySelector(selector);
    const pace = taktline.pace(state);
    tile.dataset.pace = pace.css;
    pick(".tile-name").textContent = state.name;
    taktline.setStatus(pick(".status"), state.status, state.stopped_since);
    const inShift = state.shift !== null;
    const count = inShift ? taktline.int(state.shift_count) : "No shift";
    pick(".tile-count").textContent = count;
    pick(".tile-count").className = `tile-count ${inShift ? taktline.sizeClass(count) : "len-text"}`;
    pick(".tile-versus").style.visibility = inShift ? "" : "hidden";
    pick(".tile-where").textContent = state.shift !== null
      ? `${state.area} · ${taktline.capitalized(state.shift)} shift`
      : `${state.area} · no shift`;
    pick(".delta").textContent = pace.text;
    pick(".tile-plan").textContent = taktline.int(state.target_so_far);
    pick(".tile-target").textContent = taktline.int(state.target);
    pick(".tile-rate").textContent = taktline.int(state.rate_per_hour);
    pick(".tile-total").textContent = taktline.int(state.total);
    taktline.setBar(pick(".bar"), state);
  }

  taktline.startClock();
  taktline.follow("/api/events", render);
})();
