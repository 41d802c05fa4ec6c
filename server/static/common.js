// Shared by the line screen and the overview: number formats, pace colours, the live feed.
"use strict";

const taktline = (() => {
  const STALE_AFTER_MS = 5000;
  const numbers = new Intl.NumberFormat();
  const STATUS_TEXT = {
    running: "Running",
    stopped: "Stopped",
    "no data": "No data",
    offline: "Offline",
    "no shift": "No shift",
  };

  function int(value) {
    return value === null || value === undefined ? "–" : numbers.format(Math.floor(value));
  }

  function seconds(value) {
    return value === null || value === undefined ? "–" : `${Math.round(value)} s`;
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : `${value.toFixed(1)} %`;
  }

  let zone;  // the plant's time zone, once a line state named it
  let tickClock = () => {};

  function time(date, withSeconds) {
    const options = { hour: "2-digit", minute: "2-digit", hour12: false };
    if (withSeconds) options.second = "2-digit";
    try {
      return date.toLocaleTimeString([], { ...options, timeZone: zone });
    } catch (unknownZone) {
      return date.toLocaleTimeString([], options);
    }
  }

  function useZone(timezone) {
    if (zone === timezone) return;
    zone = timezone;
    tickClock();
  }

  function capitalized(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  // shorter numbers may be bigger: the count must never spill out of its panel
  function sizeClass(text) {
    return text.length <= 3 ? "len-s" : text.length <= 5 ? "len-m" : "len-l";
  }

  // ahead: at or above plan; behind: below plan by a little (amber) or by more (red).
  function pace(state) {
    if (state.shift === null || state.target_so_far === null) return { css: "neutral", text: "–" };
    const diff = state.shift_count - Math.floor(state.target_so_far);
    if (diff >= 0) return { css: "ahead", text: diff === 0 ? "on plan" : `+${int(diff)} ahead` };
    const slack = Math.max(2, 0.03 * state.target_so_far);
    return { css: diff > -slack ? "behind-a-bit" : "behind", text: `${int(-diff)} behind` };
  }

  function setStatus(element, status, stoppedSince) {
    const text = STATUS_TEXT[status] || status;
    element.textContent = status === "stopped" && stoppedSince
      ? `${text} since ${time(new Date(stoppedSince), false)}`
      : text;
    element.className = `status status-${status.replace(" ", "-")}`;
  }

  function setBar(bar, state) {
    const fill = bar.querySelector(".bar-fill");
    const plan = bar.querySelector(".bar-plan");
    if (!state.target) {
      fill.style.width = "0";
      plan.style.display = "none";
      return;
    }
    fill.style.width = `${Math.min(100, (100 * state.shift_count) / state.target)}%`;
    plan.style.display = "";
    plan.style.left = `${Math.min(100, (100 * state.target_so_far) / state.target)}%`;
  }

  function startClock() {
    const clock = document.getElementById("clock");
    tickClock = () => { clock.textContent = time(new Date(), false); };
    tickClock();
    setInterval(tickClock, 1000);
  }

  // Follow an event stream; show "data stale since" when it drops or goes quiet for 5 s.
  function follow(url, onLine) {
    const banner = document.getElementById("stale");
    const since = document.getElementById("stale-since");
    let lastEvent = Date.now();
    let stale = false;
    let source = null;

    function markStale() {
      if (stale) return;
      stale = true;
      since.textContent = time(new Date(lastEvent), true);
      banner.hidden = false;
      document.body.classList.add("is-stale");
    }

    function fresh() {
      lastEvent = Date.now();
      if (!stale) return;
      stale = false;
      banner.hidden = true;
      document.body.classList.remove("is-stale");
    }

    function connect() {
      source = new EventSource(url);
      source.addEventListener("line", (event) => {
        fresh();
        const state = JSON.parse(event.data);
        useZone(state.timezone);
        onLine(state);
      });
      source.addEventListener("heartbeat", fresh);
      source.onerror = () => {
        markStale();
        // EventSource retries by itself, except after a hard failure (CLOSED): then we do.
        if (source.readyState === EventSource.CLOSED) setTimeout(connect, STALE_AFTER_MS);
      };
    }

    setInterval(() => { if (Date.now() - lastEvent > STALE_AFTER_MS) markStale(); }, 500);
    connect();
  }

  return {
    int, seconds, percent, time, capitalized, sizeClass, pace, setStatus, setBar, startClock, follow,
  };
})();
