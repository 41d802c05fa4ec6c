"""README screenshots: a line screen and the plant overview of the running demo, in Chromium.

`python -m bench.screenshots [--out docs/images]` runs `taktline demo` in this process (the
simulator, an edge and the server on free ports of 127.0.0.1, state in a temp folder), waits
until every line's shift count has moved, then opens the screens in headless Debian Chromium
(Playwright, `executable_path`) at 1280x720 and writes `line-screen.png` and
`plant-overview.png`. It lives in `bench/` because it needs Playwright, a test dependency that
the installed `taktline` package does not pull in; it reuses the browser settings of the screen
benchmark (`bench.screen_browser`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.async_api import Page, ViewportSize, async_playwright

from bench.screen_browser import CHROMIUM, CHROMIUM_ARGS, SHOWS_A_NUMBER_JS
from taktline.demo import run_demo
from taktline.localbroker import free_port

IMAGES = Path("docs/images")
"""Where the README's screenshots live, relative to the repository root."""
LINE_SCREEN = "line-screen.png"
PLANT_OVERVIEW = "plant-overview.png"
LINE = "fa1"
VIEWPORT: ViewportSize = {"width": 1280, "height": 720}
MIN_MOVED = 3
"""Units every line must have made since the first look, so the screens show live numbers."""
TIMEOUT_S = 120.0
TILES_SHOW_NUMBERS_JS = """
() => { const tiles = [...document.querySelectorAll('.line-tile .tile-count')];
        return tiles.length > 0 && tiles.every(t => /\\d/.test(t.textContent)); }
"""


@dataclass(frozen=True, slots=True)
class Screenshots:
    """The files written and what the screens showed when they were taken."""

    line_screen: Path
    plant_overview: Path
    line_count: str
    """The line screen's shift count as shown (`#count`)."""
    tile_counts: list[str]
    """Each overview tile's count as shown, in page order."""


async def take_screenshots(out: Path, *, timeout_s: float = TIMEOUT_S) -> Screenshots:
    """Run the demo, wait until counts move, screenshot both screens into `out`."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    demo_output = io.StringIO()  # the demo's announcements; shown only when it fails
    with (
        tempfile.TemporaryDirectory(prefix="taktline-shots-") as state,
        contextlib.redirect_stdout(demo_output),
    ):
        demo = asyncio.create_task(
            run_demo(duration=None, port=port, state_dir=Path(state)), name="demo"
        )
        try:
            async with asyncio.timeout(timeout_s):
                await _until_counts_move(url, demo)
                return await _shoot(url, out)
        except TimeoutError:
            raise RuntimeError(
                f"the demo's screens did not show moving counts within {timeout_s:g} s;"
                f" demo output:\n{demo_output.getvalue()}"
            ) from None
        finally:
            demo.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await demo


async def _until_counts_move(url: str, demo: asyncio.Task[None]) -> None:
    """Return once every line's shift count grew by MIN_MOVED since it first had one."""
    first: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while True:
            if demo.done():
                demo.result()  # raises why the demo stopped
                raise RuntimeError("the demo stopped before its counts moved")
            with contextlib.suppress(httpx.HTTPError):
                lines = (await client.get("/api/lines")).json()
                counts = {line["line"]: line["shift_count"] for line in lines}
                for line, count in counts.items():
                    if isinstance(count, int):
                        first.setdefault(line, count)
                if counts and all(
                    isinstance(count, int) and line in first and count >= first[line] + MIN_MOVED
                    for line, count in counts.items()
                ):
                    return
            await asyncio.sleep(0.5)


async def _shoot(url: str, out: Path) -> Screenshots:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            await page.goto(f"{url}/lines/{LINE}")
            await page.wait_for_function(SHOWS_A_NUMBER_JS)
            line_count = await _settled(page, "#count")
            await page.screenshot(path=out / LINE_SCREEN)
            await page.goto(f"{url}/")
            await page.wait_for_function(TILES_SHOW_NUMBERS_JS)
            await _settled(page, ".line-tile .tile-count")
            tiles = await page.locator(".line-tile .tile-count").all_text_contents()
            await page.screenshot(path=out / PLANT_OVERVIEW)
        finally:
            await browser.close()
    return Screenshots(out / LINE_SCREEN, out / PLANT_OVERVIEW, line_count, tiles)


async def _settled(page: Page, selector: str) -> str:
    """The text of `selector` once the page's fonts are loaded and a frame has been painted."""
    await page.evaluate("() => document.fonts.ready")
    await page.evaluate("() => new Promise(done => requestAnimationFrame(() => done()))")
    return await page.locator(selector).first.inner_text()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.screenshots [--out DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=IMAGES, help=f"folder (default {IMAGES})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # "no signing policy" on the sim PLCs
    shots = asyncio.run(take_screenshots(args.out))
    for path in (shots.line_screen, shots.plant_overview):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
