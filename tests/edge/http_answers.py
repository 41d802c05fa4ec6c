"""A real HTTP/1.1 server on 127.0.0.1 that gives canned answers in turn and records requests.

For answers a real InfluxDB cannot be made to give on demand (429 with Retry-After, 401 with a
message); the sink under test speaks real HTTP to it over a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

Answer = tuple[int, dict[str, str], bytes]
"""Status, headers, body."""
_REASONS = {204: "No Content", 400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests"}


@dataclass(frozen=True, slots=True)
class Request:
    """One request as received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class AnsweringServer:
    """The server's address and what it received."""

    url: str
    requests: list[Request] = field(default_factory=list)


@contextlib.asynccontextmanager
async def answering(answers: Sequence[Answer]) -> AsyncIterator[AnsweringServer]:
    """Serve `answers` one per request, then 204 to every further request."""
    queue = list(answers)
    loop = asyncio.get_running_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request_line := await reader.readline():
                method, path, _ = request_line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                server.requests.append(Request(method, path, headers, body, loop.time()))
                status, extra, content = queue.pop(0) if queue else (204, {}, b"")
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Answer')}"]
                head += [f"{k}: {v}" for k, v in extra.items()]
                head += [f"Content-Length: {len(content)}", "Content-Type: application/json"]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + content)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server = AnsweringServer(f"http://127.0.0.1:{port}")
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()
