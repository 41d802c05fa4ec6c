"""The server's output loops: send what is pending whenever there is news, and when sending
fails, retry with capped exponential backoff; log once when it starts failing and once when it
works again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def drain_forever(
    drain: Callable[[], Awaitable[None]],
    due: asyncio.Event,
    *,
    errors: tuple[type[Exception], ...],
    log: logging.Logger,
    failing_text: str,
    recovered_text: str,
    min_backoff_s: float,
    max_backoff_s: float,
) -> None:
    """Run `drain` now and each time `due` is set, until cancelled. When it raises one of
    `errors`, log `failing_text % error` (once per outage) and run it again after a backoff;
    after the outage, log `recovered_text` once."""
    backoff = min_backoff_s
    failing = False
    while True:
        due.clear()
        try:
            await drain()
        except errors as exc:
            if not failing:
                log.warning(failing_text, exc)
                failing = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
            continue
        if failing:
            log.info(recovered_text)
            failing = False
        backoff = min_backoff_s
        await due.wait()
