// The line screen: /lines/{line}, fed by /api/lines/{line}/events.
"use strict";

(() => {
  const lineId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const $ = (id) => document.getElementById(id);

  // A milestone crossed while the screen watches: celebrate it for CELEBRATE_MS.
  const CELEBRATE_MS = 30000;
  let announced = null;  // the next milestone the last state named
  let announcedName = "";
  let hideCelebration = null;

  // `next_milestone.total` is the milestone's own total (a site-wide one sums several lines).
  function celebrateCrossing(state) {
    const next = state.next_milestone;
    // the announced one is gone: crossed (a threshold with none after it leaves null)
    const reached = next ? next.value !== announced && next.total >= announced : true;
    if (announced !== null && reached) {
      const count = taktline.int(announced);
      const name = announcedName && !announcedName.includes(count) ? `${announcedName} · ` : "";
      $("celebration-count").textContent = count;
      $("celebration-text").textContent = `${name}${state.name} · ${taktline.time(new Date(), true)}`;
      $("celebration").hidden = false;
      clearTimeout(hideCelebration);
      hideCelebration = setTimeout(() => { $("celebration").hidden = true; }, CELEBRATE_MS);
    }
    announced = next ? next.value : null;
    announcedName = next ? next.name : "";
  }

  // Active alerts of this line: a strip of rows under the header, the oldest first.
  const MAX_ALERTS = 3;

  function cell(className, text) {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    return span;
  }

  function alertWho(alert) {
    if (alert.state === "acknowledged") return `✓ ${alert.acknowledged_by}`;
    if (alert.state === "notified") return `→ ${alert.notified.join(", ")}`;
    return "alerting…";
  }

  function renderAlerts(alerts) {
    const box = $("alerts");
    const rows = alerts.slice(0, MAX_ALERTS).map((alert) => {
      const row = document.createElement("div");
      row.className = `alert alert-${alert.severity} alert-${alert.state}`;
      row.dataset.alert = alert.id;
      row.append(
        cell("alert-severity", alert.severity),
        cell("alert-text", alert.message),
        cell("alert-since", `at ${taktline.time(new Date(alert.raised_at), false)}`),
        cell("alert-who", alertWho(alert)),
      );
      return row;
    });
    if (alerts.length > MAX_ALERTS) rows.push(cell("alert-more", `+${alerts.length - MAX_ALERTS} more`));
    box.replaceChildren(...rows);
    box.hidden = alerts.length === 0;
    document.body.classList.toggle("has-alerts", alerts.length > 0);
  }

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
    $("takt").textContent = taktline.seconds(state.takt_actual_s);
    $("takt-plan").textContent = state.takt_planned_s ? ` plan ${taktline.seconds(state.takt_planned_s)}` : "";
    $("yield").textContent = taktline.percent(state.yield_percent);
    $("yield-label").textContent = state.yield_basis ? `Yield (${state.yield_basis})` : "Yield";
    const next = state.next_milestone;
    $("milestone").textContent = next ? taktline.int(next.value) : "–";
    $("milestone-eta").textContent = state.next_milestone_eta
      ? ` at ${taktline.time(new Date(state.next_milestone_eta), false)}`
      : "";
    celebrateCrossing(state);
    renderAlerts(state.alerts || []);
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
