"""Line screen and overview in a real Chromium: live updates, no scrollbars, stale warning."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from server.app import Server
from taktline.config import ServerConfig
from taktline.localbroker import free_port
from taktline.model.connections import HttpListen
from tests.conftest import REPO
from tests.fixtures.smtp import run_smtp
from tests.server.conftest import FA1, FA2, PAINT1, PinnedClock, Publish, publish_counter
from tests.server.test_alerts import LINK, alert_config, start_running, stop_for

pytestmark = pytest.mark.browser

ARTIFACTS = Path(os.environ.get("TAKTLINE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "screens"
"""Screenshots are kept here after the run (git ignores the folder)."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def assert_no_scrollbars(page: Page) -> None:
    sizes = await page.evaluate(
        "() => [document.documentElement.scrollHeight, innerHeight,"
        " document.documentElement.scrollWidth, innerWidth]"
    )
    scroll_height, height, scroll_width, width = sizes
    assert scroll_height <= height, sizes
    assert scroll_width <= width, sizes


@pytest.fixture
def shots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


async def test_line_screen_updates_live_fits_the_tv_and_warns_when_stale(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    browser: Browser,
    shots: Path,
) -> None:
    listen = HttpListen(host="127.0.0.1", port=free_port())  # the same address after a restart
    server_config = ServerConfig(
        server_config.settings.model_copy(update={"http": listen}), server_config.plant
    )
    before_shift = clock.now - dt.timedelta(hours=4, minutes=1)  # 05:59, before the early shift
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    async with Server(server_config, clock=clock) as server:
        await server.listener.connected.wait()
        await publish_counter(publish, FA1, 16_250_000, 1, before_shift)
        await publish_counter(publish, FA1, 16_250_212, 1, clock.now)
        await publish_counter(publish, FA2, 13_749_300, 1, before_shift)
        await publish_counter(publish, FA2, 13_749_490, 1, clock.now)
        await publish_counter(publish, PAINT1, 52_140, 1, clock.now)
        await page.goto(f"{server.url}/lines/fa1")
        count = page.locator("#count")
        await expect(count).to_have_text("212", timeout=20_000)
        await expect(page.locator("#name")).to_have_text("Final assembly line 1")
        await expect(page.locator("body")).to_have_attribute("data-pace", "behind")

        await publish_counter(publish, FA1, 16_250_230, 18, clock.now)
        await expect(count).to_have_text("230", timeout=10_000)  # no reload
        await expect(page.locator("body")).to_have_attribute("data-pace", "ahead")
        await expect(page.locator("#delta")).to_have_text("+5 ahead")
        await expect(page.locator("#so-far")).to_have_text("225")
        await expect(page.locator("#target")).to_have_text("435")
        await expect(page.locator("#status")).to_have_text("Running")
        await expect(page.locator("#stale")).to_be_hidden()
        await expect(page.locator("#takt-plan")).to_contain_text("plan")
        await expect(page.locator("#milestone")).to_have_text("30,000,000")  # the site's next
        await expect(page.locator("#celebration")).to_be_hidden()
        await page.screenshot(path=shots / "line-1920x1080.png")
        await assert_no_scrollbars(page)

        await page.set_viewport_size({"width": 1280, "height": 720})
        await page.screenshot(path=shots / "line-1280x720.png")
        await assert_no_scrollbars(page)

        overview = await browser.new_page(viewport={"width": 1920, "height": 1080})
        await overview.goto(f"{server.url}/")
        await expect(overview.locator(".line-tile")).to_have_count(3, timeout=20_000)
        await expect(overview.locator('[data-line="fa2"] .tile-count')).to_have_text("190")
        await overview.screenshot(path=shots / "overview-1920x1080.png")
        await assert_no_scrollbars(overview)
        await overview.close()

    # the server is gone: the screen must say its numbers are old
    await expect(page.locator("#stale")).to_be_visible(timeout=15_000)
    await expect(page.locator("#stale")).to_contain_text("data stale since")
    await page.screenshot(path=shots / "line-stale-1280x720.png")
    await assert_no_scrollbars(page)
    await expect(count).to_have_text("230")

    # a new server (its shift counts persisted): the same screen recovers by itself
    async with Server(server_config, clock=clock) as server_again:
        await server_again.listener.connected.wait()
        await expect(page.locator("#stale")).to_be_hidden(timeout=20_000)
        await expect(count).to_have_text("230")


async def test_a_milestone_crossed_while_watching_is_celebrated(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    browser: Browser,
    shots: Path,
) -> None:
    """The example plant marks every 1,000,000 units of the site: fa1 and fa2 together pass
    30,000,000 while fa1's screen watches."""
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    async with Server(server_config, clock=clock) as server:
        await server.listener.connected.wait()
        await publish_counter(publish, FA2, 13_000_000, 1, clock.now)
        await publish_counter(publish, FA1, 16_999_990, 1, clock.now)
        await page.goto(f"{server.url}/lines/fa1")
        await expect(page.locator("#milestone")).to_have_text("30,000,000", timeout=20_000)
        await expect(page.locator("#celebration")).to_be_hidden()
        await publish_counter(publish, FA1, 17_000_001, 11, clock.now)
        await expect(page.locator("#celebration")).to_be_visible(timeout=10_000)
        await expect(page.locator("#celebration-count")).to_have_text("30,000,000")
        await expect(page.locator("#milestone")).to_have_text("31,000,000")
        await page.screenshot(path=shots / "line-milestone-1280x720.png")
        await assert_no_scrollbars(page)


async def test_the_line_screen_shows_its_active_alert_and_who_took_it_on(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    browser: Browser,
    shots: Path,
) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    with run_smtp() as smtp:
        config = alert_config(server_config, smtp)
        async with (
            Server(config, clock=clock, evaluate_every_s=0.05) as server,
            httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        ):
            await start_running(server, publish, clock)
            await page.goto(f"{server.url}/lines/fa1")
            await expect(page.locator("#name")).to_have_text(
                "Final assembly line 1", timeout=20_000
            )
            await expect(page.locator("#alerts")).to_be_hidden()
            await stop_for(server, publish, clock, 6)
            [mail] = await asyncio.to_thread(smtp.wait_for_mails, 1)
            row = page.locator("#alerts .alert")
            await expect(row).to_have_count(1, timeout=10_000)
            await expect(row.locator(".alert-text")).to_have_text(
                "Final assembly line 1 stopped: no unit for 6 min (takt 60 s)"
            )
            await expect(row.locator(".alert-who")).to_have_text("→ Anna Berger")
            await page.screenshot(path=shots / "line-alert-1280x720.png")
            await assert_no_scrollbars(page)

            link = LINK.search(mail.text())
            assert link is not None
            assert (await http.post(link.group(1))).status_code == 200
            await expect(row.locator(".alert-who")).to_have_text("✓ Anna Berger")
            await page.set_viewport_size({"width": 1920, "height": 1080})
            await page.screenshot(path=shots / "line-alert-acknowledged-1920x1080.png")
            await assert_no_scrollbars(page)
