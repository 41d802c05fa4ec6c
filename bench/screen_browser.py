"""Line screens in headless Chromium (Debian's, through Playwright) with a clock on the count.

Every page gets OBSERVER_JS before its own scripts: a MutationObserver on the line screen's
`#count` element that records, each time the shown text changes, the number shown (digits of
the text; null for a dash or "No shift"), the time of the DOM change and the time of the next
animation frame, both as `performance.timeOrigin + performance.now()` (epoch milliseconds, the
machine's wall clock at navigation plus a monotonic clock since).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, Playwright, ViewportSize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
"""As tests/server/test_screens.py, and no throttling of pages that are not in front."""
BROWSER_NICE = 19
"""Chromium's threads run at this nice value: they get the CPU the plant stack leaves."""
VIEWPORT: ViewportSize = {"width": 1920, "height": 1080}

OBSERVER_JS = """
(() => {
  const marks = [];
  window.__taktlineMarks = marks;
  const now = () => performance.timeOrigin + performance.now();
  function watch() {
    const count = document.getElementById("count");
    if (!count) return;
    let last = null;
    const record = () => {
      const text = count.textContent;
      if (text === last) return;
      last = text;
      const digits = text.replace(/\\D/g, "");
      const mark = { value: digits ? Number(digits) : null, dom: now(), frame: null };
      marks.push(mark);
      requestAnimationFrame(() => { mark.frame = now(); });
    };
    new MutationObserver(record).observe(
      count, { childList: true, characterData: true, subtree: true });
    record();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();
"""

SHOWS_A_NUMBER_JS = "() => /\\d/.test(document.getElementById('count')?.textContent ?? '')"


@dataclass(frozen=True, slots=True)
class Mark:
    """The count element showed `value` from `dom_s` on (epoch seconds); painted by `frame_s`."""

    value: int | None
    dom_s: float
    frame_s: float | None


async def launch(playwright: Playwright) -> Browser:
    """Headless Debian Chromium at nice BROWSER_NICE (see `deprioritize`)."""
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    deprioritize(os.getpid())
    return browser


def deprioritize(ancestor: int) -> int:
    """Set every thread of every Chromium process descending from `ancestor` to BROWSER_NICE;
    the number of processes. Chromium sets its new processes' priorities itself (renderers 0
    or 5, the GPU process -8), so this runs again after every page opens. The screens stand in
    for TVs with hardware of their own: at normal priority 50 renderers would take the CPU the
    edge and the server need."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue  # the process ended meanwhile
        pid = int(entry.name)
        names[pid] = stat[stat.index("(") + 1 : stat.rindex(")")]
        parents[pid] = int(stat[stat.rindex(")") + 2 :].split()[1])
    done = 0
    for pid, name in names.items():
        if not name.startswith("chrom") or not _descends(pid, ancestor, parents):
            continue
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue  # the process ended meanwhile
        for task in tasks:
            with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
                os.setpriority(os.PRIO_PROCESS, int(task.name), BROWSER_NICE)
        done += 1
    return done


def _descends(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    while pid > 1:
        pid = parents.get(pid, 0)
        if pid == ancestor:
            return True
    return False


async def open_screen(browser: Browser, base_url: str, line: str, timeout_s: float) -> Page:
    """A page on `/lines/{line}` in a browser context of its own, once its count shows a number;
    then every Chromium thread is put at BROWSER_NICE again.

    One context per screen, as every TV is a browser of its own: within one context Chromium
    opens at most 6 connections to a host, and each screen holds one for its event stream.
    Close it with `page.context.close()`.
    """
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        await context.add_init_script(OBSERVER_JS)
        page = await context.new_page()
        await page.goto(f"{base_url}/lines/{line}")
        await page.wait_for_function(SHOWS_A_NUMBER_JS, timeout=timeout_s * 1000)
        deprioritize(os.getpid())
    except BaseException:
        await context.close()
        raise
    return page


async def marks(page: Page) -> list[Mark]:
    """Every change of the page's count so far, oldest first."""
    raw: list[dict[str, Any]] = await page.evaluate("() => window.__taktlineMarks")
    return [
        Mark(
            value=None if m["value"] is None else int(m["value"]),
            dom_s=float(m["dom"]) / 1000,
            frame_s=None if m["frame"] is None else float(m["frame"]) / 1000,
        )
        for m in raw
    ]


async def clock_offset_ms(page: Page) -> tuple[float, float]:
    """(the page's clock minus this process's `time.time()`, the round trip), in ms."""
    before = time.time()
    page_ms = float(await page.evaluate("() => performance.timeOrigin + performance.now()"))
    after = time.time()
    return page_ms - 500 * (before + after), 1000 * (after - before)
