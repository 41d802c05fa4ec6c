"""Line screen and overview in a real Chromium: live updates, no scrollbars, stale warning."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from server.app import Server
from taktline.config import ServerConfig
from tests.server.conftest import FA1, FA2, PAINT1, PinnedClock, Publish, publish_counter

pytestmark = pytest.mark.browser

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


async def test_line_screen_updates_live_fits_the_tv_and_warns_when_stale(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    browser: Browser,
    tmp_path: Path,
) -> None:
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
        await page.screenshot(path=tmp_path / "line-1920x1080.png")
        await assert_no_scrollbars(page)

        await page.set_viewport_size({"width": 1280, "height": 720})
        await page.screenshot(path=tmp_path / "line-1280x720.png")
        await assert_no_scrollbars(page)

        overview = await browser.new_page(viewport={"width": 1920, "height": 1080})
        await overview.goto(f"{server.url}/")
        await expect(overview.locator(".line-tile")).to_have_count(3, timeout=20_000)
        await expect(overview.locator('[data-line="fa2"] .tile-count')).to_have_text("190")
        await overview.screenshot(path=tmp_path / "overview-1920x1080.png")
        await assert_no_scrollbars(overview)
        await overview.close()

    # the server is gone: the screen must say its numbers are old
    await expect(page.locator("#stale")).to_be_visible(timeout=15_000)
    await expect(page.locator("#stale")).to_contain_text("data stale since")
    await page.screenshot(path=tmp_path / "line-stale-1280x720.png")
    await assert_no_scrollbars(page)
    await expect(count).to_have_text("230")
