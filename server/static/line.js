// The line screen: /lines/{line}, fed by /api/lines/{line}/events.
"use strict";

(() => {
  const lineId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const $ = (id) => document.getElementById(id);

  function render(state) {
    document.title = `${state.name} · taktline`;
    $("name").textContent = state.name;
    $("where").textContent = `${state.site} · ${state.area} · ${state.line}`;
    taktline.setStatus($("status"), state.status, state.stopped_since);
    const inShift = state.shift !== null;
    const count = inShift ? taktline.int(state.shift_count) : "No shift";
    $("count").textContent = count;
    $("count").className = `huge ${inShift ? taktline.sizeClass(count) : "len-text"}`;
    document.querySelector(".versus").style.visibility = inShift ? "" : "hidden";
    const pace = taktline.pace(state);
    document.body.dataset.pace = pace.css;
    $("delta").textContent = pace.text;
    $("so-far").textContent = taktline.int(state.target_so_far);
    $("target").textContent = taktline.int(state.target);
    $("rate").textContent = taktline.int(state.rate_per_hour);
    $("total").textContent = taktline.int(state.total);
    $("shift").textContent = inShift ? `${taktline.capitalized(state.shift)} shift` : "No shift";
    $("shift-time").textContent = inShift
      ? `${taktline.time(new Date(state.shift_start), false)}–${taktline.time(new Date(state.shift_end), false)}`
      : "";
    $("shift-progress").textContent = inShift
      ? `${Math.round(100 * state.shift_progress)}% of shift time`
      : "";
    taktline.setBar(document.querySelector("footer .bar"), state);
  }

  taktline.startClock();
  taktline.follow(`/api/lines/${encodeURIComponent(lineId)}/events`, render);
})();
