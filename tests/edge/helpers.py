"""Small real parts for edge tests: a TCP relay that can be opened late, sample updates."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable

from taktline.model.paths import CounterPath
from taktline.records import CounterUpdate

PASSED = CounterPath("neustadt", "final", "fa1", "eol", "passed")
T0 = dt.datetime(2026, 11, 26, 9, 41, 2, 123456, tzinfo=dt.UTC)


def update(total: int, path: CounterPath = PASSED, delta: int = 1) -> CounterUpdate:
    """An update stamped T0 + total seconds."""
    return CounterUpdate(path, T0 + dt.timedelta(seconds=total), total % 65536, total, delta)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def tcp_relay(listen_port: int, target_port: int) -> AsyncIterator[None]:
    """Relay 127.0.0.1:listen_port to 127.0.0.1:target_port (a real TCP hop, opened late)."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        for pipe in (_pipe(reader, up_writer), _pipe(up_reader, writer)):
            task = asyncio.create_task(pipe)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    try:
        yield
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Poll `condition` until it holds; TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (state owned by other tasks)
            await asyncio.sleep(0.02)
