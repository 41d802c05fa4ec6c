"""The server against a real Mosquitto: API, restart from retained messages, bad messages,
edge status, health, metrics, pages."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import httpx
import pytest

from server.app import Server, ServerStartError
from taktline.config import ServerConfig
from taktline.livebus import counter_topic
from taktline.model import HttpListen
from tests.fixtures.services import MosquittoService
from tests.server.conftest import (
    FA1,
    FA2,
    PinnedClock,
    Publish,
    eventually,
    publish_counter,
    publish_status,
)


async def line_states(server: Server) -> dict[str, dict[str, object]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        response = await http.get("/api/lines")
    response.raise_for_status()
    return {state["line"]: state for state in response.json()}


async def test_api_shows_totals_and_shift_counts(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    async with Server(server_config, clock=clock) as server:
        await publish_counter(publish, FA1, 16_250_300, 1, clock.now)
        await publish_counter(publish, FA2, 13_749_500, 3, clock.now)

        async def both_seen() -> dict[str, dict[str, object]] | None:
            states = await line_states(server)
            return states if states["fa2"]["total"] is not None else None

        states = await eventually(both_seen)
    assert [states[k]["line"] for k in ("fa1", "fa2", "paint1")] == ["fa1", "fa2", "paint1"]
    fa1 = states["fa1"]
    assert (fa1["total"], fa1["shift_count"], fa1["status"]) == (16_250_300, 1, "running")
    assert (fa1["shift"], fa1["target"], fa1["target_so_far"]) == ("early", 435, 225.0)
    assert fa1["name"] == "Final assembly line 1"
    assert (fa1["site"], fa1["area"]) == ("neustadt", "final")
    assert (states["fa2"]["total"], states["fa2"]["shift_count"]) == (13_749_500, 3)
    assert states["paint1"]["status"] == "no data"
    for key in ("rate_per_hour", "updated_at", "shift_count", "target"):
        assert key in states["paint1"]


async def test_a_server_started_later_rebuilds_totals_from_retained_messages(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    before_shift = clock.now - dt.timedelta(hours=5)  # 05:00, in last night's shift
    await publish_counter(publish, FA1, 16_250_000, 1, before_shift)
    await publish_counter(publish, FA2, 13_749_400, 1, clock.now)
    async with Server(server_config, clock=clock) as server:

        async def rebuilt() -> bool:
            states = await line_states(server)
            return states["fa1"]["total"] == 16_250_000 and states["fa2"]["total"] == 13_749_400

        await eventually(rebuilt)
        states = await line_states(server)
    assert states["fa1"]["shift_count"] == 0  # its last change was before the shift
    assert states["fa2"]["shift_count"] == 1  # no stored state: earlier units unseen


async def test_a_malformed_message_is_counted_and_the_next_good_one_arrives(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    async with Server(server_config, clock=clock) as server:
        await publish(counter_topic(FA1), b'{"total": "lots"}', retain=False)
        await publish_counter(publish, FA1, 16_250_400, 2, clock.now)

        async def arrived() -> bool:
            return (await line_states(server))["fa1"]["total"] == 16_250_400

        await eventually(arrived)
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            metrics = (await http.get("/metrics")).text
    assert 'taktline_server_livebus_rejected_total{reason="malformed"} 1.0' in metrics
    assert server.board.rejected["malformed"] == 1


async def test_an_offline_edge_marks_its_lines_offline(
    server_config: ServerConfig, clock: PinnedClock, publish: Publish
) -> None:
    async with Server(server_config, clock=clock) as server:
        await publish_counter(publish, FA1, 16_250_500, 1, clock.now)
        await publish_status(publish, "edge-final", "online", ["fa1", "fa2"], clock.now)

        async def fa1_running() -> bool:
            return (await line_states(server))["fa1"]["status"] == "running"

        await eventually(fa1_running)
        # what the edge's last will publishes when it drops off the broker
        await publish_status(publish, "edge-final", "offline", ["fa1", "fa2"], clock.now)

        async def offline() -> dict[str, dict[str, object]] | None:
            states = await line_states(server)
            return states if states["fa1"]["status"] == "offline" else None

        states = await eventually(offline)
    assert states["fa2"]["status"] == "offline"
    assert states["paint1"]["status"] == "no data"


async def test_unknown_line_health_metrics_docs_and_pages(
    server_config: ServerConfig, clock: PinnedClock
) -> None:
    async with Server(server_config, clock=clock) as server:
        await server.listener.connected.wait()
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            missing = await http.get("/api/lines/fa9")
            one = await http.get("/api/lines/fa1")
            health = await http.get("/healthz")
            metrics = await http.get("/metrics")
            docs = await http.get("/docs")
            openapi = await http.get("/openapi.json")
            overview = await http.get("/")
            screen = await http.get("/lines/fa1")
            no_screen = await http.get("/lines/fa9")
            script = await http.get("/static/line.js")
    assert missing.status_code == 404
    assert missing.json()["error"] == "unknown_line"
    assert missing.json()["known"] == ["fa1", "fa2", "paint1"]
    assert one.json()["line"] == "fa1"
    assert health.json()["status"] == "ok"
    assert health.json()["live_bus"]["connected"] is True
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "taktline_server_livebus_connected 1.0" in metrics.text
    assert 'taktline_line_status{area="final",line="fa1",site="neustadt",status="no data"} 1.0' in (
        metrics.text
    )
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/api/lines/{line}/events" in openapi.json()["paths"]
    assert overview.status_code == 200 and "Plant overview" in overview.text
    assert screen.status_code == 200 and 'id="count"' in screen.text
    assert no_screen.status_code == 404
    assert script.status_code == 200


async def test_the_listener_reconnects_after_a_broker_restart(
    server_config: ServerConfig,
    clock: PinnedClock,
    publish: Publish,
    mosquitto: MosquittoService,
) -> None:
    async with Server(server_config, clock=clock) as server:
        await server.listener.connected.wait()
        await asyncio.to_thread(mosquitto.restart)
        await publish_counter(publish, FA1, 16_250_700, 1, clock.now)

        async def arrived() -> bool:
            return (await line_states(server))["fa1"]["total"] == 16_250_700

        await eventually(arrived, timeout_s=20)
        assert server.listener.connects >= 2
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            health = (await http.get("/healthz")).json()
    assert health["live_bus"]["connected"] is True


async def test_a_taken_port_is_a_clear_start_error(
    server_config: ServerConfig, clock: PinnedClock
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = server_config.settings.model_copy(
            update={"http": HttpListen(host="127.0.0.1", port=port)}
        )
        with pytest.raises(ServerStartError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with Server(ServerConfig(settings, server_config.plant), clock=clock):
                pass
