"""`taktline demo` on embedded defaults: every line counts, and the summary matches the truth."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from taktline.demo import run_demo
from taktline.localbroker import free_port

pytestmark = pytest.mark.integration


async def _lines(url: str) -> dict[str, dict[str, object]]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{url}/api/lines")
        return {line["line"]: line for line in response.json()}


async def _when_every_line_has_a_total(url: str) -> dict[str, dict[str, object]]:
    async with asyncio.timeout(30):
        while True:
            try:
                lines = await _lines(url)
                if lines and all(line["total"] is not None for line in lines.values()):
                    return lines
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)


async def test_demo_counts_on_every_line_and_matches_ground_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    demo = asyncio.create_task(run_demo(duration=20, port=port, state_dir=tmp_path))
    first = await _when_every_line_has_a_total(url)
    later = first
    for _ in range(60):  # each line makes ~0.5 units/s at random: give every line time
        await asyncio.sleep(0.25)
        later = await _lines(url)
        if all(later[line]["total"] != first[line]["total"] for line in first):
            break
    await asyncio.wait_for(demo, 60)

    assert set(first) == {"fa1", "fa2", "paint1"}
    for line, state in later.items():
        assert isinstance(state["total"], int) and isinstance(first[line]["total"], int)
        assert state["total"] > first[line]["total"], line
        if state["shift"] is not None:  # on a day off the demo honestly shows no shift
            assert isinstance(state["shift_count"], int)
            assert state["shift_count"] > first[line]["shift_count"], line
    out = capsys.readouterr().out
    assert f"line screen      {url}/lines/fa1" in out
    summary = out[out.index("produced") :].splitlines()[1:]
    assert len(summary) == 7
    assert all(row.rstrip().endswith(" ok") for row in summary), summary
    assert (tmp_path / "edge" / "outbox.sqlite").exists()
