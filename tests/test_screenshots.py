"""`python -m bench.screenshots`: the README's screenshots come out of the running demo as real,
non-blank 1280x720 PNGs.

Pillow is not installed, so the PNGs are decoded here with zlib: chunks, IHDR, and the IDAT rows
with their filters undone (8-bit RGB or RGBA, non-interlaced: what Chromium writes).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from bench.screenshots import LINE_SCREEN, PLANT_OVERVIEW, take_screenshots

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of pixel bytes) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    chunks: dict[bytes, bytes] = {}
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, interlace) == (8, 0) and colour in (2, 6), (depth, colour, interlace)
    step = 3 if colour == 2 else 4
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * step
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = row[x - step] if x >= step else 0
            up = previous[x]
            corner = previous[x - step] if x >= step else 0
            row[x] = (row[x] + _predict(kind, left, up, corner)) & 0xFF
        rows.append(bytes(row))
        previous = row
    return width, height, rows


def _predict(kind: int, left: int, up: int, corner: int) -> int:
    if kind == 0:
        return 0
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    guess = left + up - corner  # Paeth
    near = min(
        (abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner)
    )
    return near[2]


def test_the_decoder_sees_a_flat_image_as_blank() -> None:
    width, height = 4, 2
    rows = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    png = PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
    png += chunk(b"IEND", b"")
    assert decode_png(png) == (4, 2, [b"\x10\x20\x30" * 4] * 2)
    assert len(set(decode_png(png)[2])) == 1  # what the test below calls blank


async def test_screenshots_of_the_demo_are_live_and_not_blank(tmp_path: Path) -> None:
    shots = await take_screenshots(tmp_path, timeout_s=120)

    assert shots.line_screen == tmp_path / LINE_SCREEN
    assert shots.plant_overview == tmp_path / PLANT_OVERVIEW
    assert shots.line_count.strip().isdigit(), shots.line_count
    assert len(shots.tile_counts) == 3 and all(c.strip().isdigit() for c in shots.tile_counts)
    for path in (shots.line_screen, shots.plant_overview):
        data = path.read_bytes()
        assert 10_000 < len(data) < 1_000_000, (path.name, len(data))
        width, height, rows = decode_png(data)
        assert (width, height) == (1280, 720), path.name
        step = len(rows[0]) // width
        pixels = {row[x : x + 3] for row in rows[::8] for x in range(0, len(row), step * 8)}
        assert len(pixels) >= 16, f"{path.name}: only {len(pixels)} colours: blank?"
        assert len(set(rows)) > height // 4, f"{path.name}: few distinct rows: blank?"
