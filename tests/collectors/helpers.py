"""Waiting for readings and for collector state, with generous timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from taktline.records import Reading


async def collect_until(
    readings: AsyncIterator[Reading],
    done: Callable[[list[Reading]], bool],
    timeout_s: float = 15.0,
) -> list[Reading]:
    """Take readings until `done(all taken so far)`; fail naming what arrived."""
    seen: list[Reading] = []
    try:
        async with asyncio.timeout(timeout_s):
            async for reading in readings:
                seen.append(reading)
                if done(seen):
                    return seen
    except TimeoutError:
        pass
    raise AssertionError(f"condition not met after {timeout_s}s; readings: {seen}")


async def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    """Poll `check()` until it is true; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s}s")
        await asyncio.sleep(0.05)


def latest(readings: list[Reading]) -> dict[str, Reading]:
    """The last reading per address."""
    return {reading.address: reading for reading in readings}
