"""Data values to Readings: widths, edges, doubles, arrays, qualities; then from a real server."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeEvent
from asyncua.server.server import Server

from collectors.opcua.nodes import MappedNode, monitor, parse_nodes
from collectors.opcua.values import NodeValue, good_codes, missing_reading, node_values, quality_of
from collectors.opcua.wire import Change, change_of, utc
from taktline.localbroker import free_port
from taktline.model.sources import OpcUaNode, OpcUaSource
from taktline.records import Quality, Reading

NOW = dt.datetime(2026, 11, 26, 9, 41, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(seconds=1)
V = ua.VariantType


def node(
    address: str = "ns=2;s=X", *, index: int | None = None, edges: str | None = None
) -> MappedNode:
    spec: dict[str, Any] = {"node": address, "counter": "s/a/l/st/c", "index": index}
    if edges is not None:
        spec["count_edges"] = edges
    return parse_nodes([OpcUaNode.model_validate(spec)])[0]


def value(raw: Any, kind: ua.VariantType, status: int = ua.StatusCodes.Good) -> Change:
    return change_of(
        1,
        ua.DataValue(
            ua.Variant(raw, kind),
            StatusCode=ua.StatusCode(status),
            SourceTimestamp=NOW,
            ServerTimestamp=LATER,
        ),
    )


# --- integer widths, floats, arrays --------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (-128, V.SByte),
        (127, V.SByte),
        (255, V.Byte),
        (-32_768, V.Int16),
        (65_535, V.UInt16),
        (-(2**31), V.Int32),
        (2**32 - 1, V.UInt32),
        (-(2**63), V.Int64),
        (2**53 + 1, V.Int64),  # not representable as a double
        (2**63 - 1, V.Int64),
        (2**64 - 1, V.UInt64),
    ],
)
def test_every_integer_width_is_the_count_exactly(raw: int, kind: ua.VariantType) -> None:
    reading = NodeValue("eol", node()).convert(value(raw, kind), NOW)
    assert reading is not None
    assert (reading.value, reading.quality) == (raw, Quality.GOOD)
    assert type(reading.value) is int
    assert (reading.source_ts, reading.server_ts, reading.received_at) == (NOW, LATER, NOW)
    assert reading.address == "ns=2;s=X"


def test_doubles_are_rounded_and_logged_once_per_node(caplog: pytest.LogCaptureFixture) -> None:
    converter = NodeValue("eol", node())
    with caplog.at_level(logging.WARNING, logger="collectors.opcua.values"):
        counts = [converter.convert(value(x, V.Double), NOW) for x in (12.6, 13.2, 14.0)]
        assert [r.value for r in counts if r is not None] == [13, 13, 14]
        assert converter.convert(value(2.5, V.Float), NOW) == converter.convert(
            value(2.0, V.Float), NOW
        )  # halves to even
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "source eol: node ns=2;s=X holds floating-point values (12.6); counts are rounded (13)"
    ]


@pytest.mark.parametrize("raw", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_double_is_bad_with_an_error(raw: float) -> None:
    converter = NodeValue("eol", node())
    reading = converter.convert(value(raw, V.Double), NOW)
    assert reading is not None and (reading.quality, reading.value) == (Quality.BAD, None)
    assert converter.error == f"holds a non-finite number: {raw}"


def test_array_elements_by_index_and_a_clear_error_out_of_range() -> None:
    third = NodeValue("eol", node(index=2))
    reading = third.convert(value([10, 20, 30], V.UInt32), NOW)
    assert reading is not None and reading.value == 30 and reading.address == "ns=2;s=X[2]"
    reading = third.convert(value([10, 20], V.UInt32), NOW)
    assert reading is not None and (reading.quality, reading.value) == (Quality.BAD, None)
    assert third.error == "index 2 is out of range: the array has 2 elements"
    assert third.convert(value([1, 2, 3], V.UInt32), NOW) is not None and third.error is None


@pytest.mark.parametrize(
    ("mapped", "data", "error"),
    [
        (node(), value([1, 2], V.Int32), "holds an array of Int32: give `index`"),
        (node(index=0), value(5, V.Int32), "holds a Int32, not an array: remove `index`"),
        (node(), value("12", V.String), "holds a String, not a number"),
        (node(), change_of(1, ua.DataValue(ua.Variant())), "holds no value"),
        (node(), value(True, V.Boolean), "holds a Boolean: set `count_edges` to count its edges"),
        (node(edges="rising"), value(3, V.Int16), "holds a Int16: count_edges needs a Boolean"),
        (node(index=0), value([[1, 2], [3, 4]], V.Int32), "holds a multi-dimensional array"),
    ],
)
def test_a_good_value_of_the_wrong_type_is_bad_and_says_why(
    mapped: MappedNode, data: Change, error: str
) -> None:
    converter = NodeValue("eol", mapped)
    reading = converter.convert(data, NOW)
    assert reading is not None and (reading.quality, reading.value) == (Quality.BAD, None)
    assert converter.error is not None and converter.error.startswith(error)


# --- edges ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("edges", "counted"), [("rising", [2, 5]), ("falling", [4, 6])])
def test_boolean_edges_are_one_unit_each_and_the_first_value_only_sets_the_state(
    edges: str, counted: list[int]
) -> None:
    converter = NodeValue("eol", node(edges=edges))
    bits = [False, False, True, True, False, True, False]  # index 0: the first value
    readings = {i: converter.convert(value(bit, V.Boolean), NOW) for i, bit in enumerate(bits)}
    assert [i for i, r in readings.items() if r is not None] == counted
    assert {(r.value, r.quality) for r in readings.values() if r is not None} == {(1, Quality.GOOD)}


def test_edges_ignore_non_good_values_and_continue_from_the_last_good_state() -> None:
    converter = NodeValue("eol", node(edges="rising"))
    assert converter.convert(value(False, V.Boolean), NOW) is None
    uncertain = converter.convert(
        value(True, V.Boolean, ua.StatusCodes.UncertainLastUsableValue), NOW
    )
    assert uncertain is not None and (uncertain.quality, uncertain.value) == (
        Quality.UNCERTAIN,
        None,
    )
    no_value = ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadCommunicationError))
    bad = converter.convert(change_of(1, no_value), NOW)
    assert bad is not None and (bad.quality, bad.value) == (Quality.BAD, None)
    rising = converter.convert(value(True, V.Boolean), NOW)  # False -> True across the gap
    assert rising is not None and (rising.quality, rising.value) == (Quality.GOOD, 1)


# --- quality --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "quality"),
    [
        (ua.StatusCodes.Good, Quality.GOOD),
        (ua.StatusCodes.GoodClamped, Quality.GOOD),
        (ua.StatusCodes.UncertainLastUsableValue, Quality.UNCERTAIN),
        (ua.StatusCodes.BadNodeIdUnknown, Quality.BAD),
        (0xC0000000, Quality.BAD),  # reserved severity: treat as Bad
    ],
)
def test_quality_follows_the_status_severity(status: int, quality: Quality) -> None:
    assert quality_of(status) is quality


def test_extra_good_codes_are_good_whatever_their_info_bits() -> None:
    good = good_codes(["UncertainLastUsableValue", "BadOutOfService"])
    assert quality_of(ua.StatusCodes.UncertainLastUsableValue | 0x0400, good) is Quality.GOOD
    assert quality_of(ua.StatusCodes.UncertainSensorNotAccurate, good) is Quality.UNCERTAIN
    converter = NodeValue("eol", node(), good)
    reading = converter.convert(value(7, V.UInt16, ua.StatusCodes.BadOutOfService), NOW)
    assert reading is not None and (reading.quality, reading.value) == (Quality.GOOD, 7)


@pytest.mark.parametrize("name", ["UncertainLastUsable", "good", "__doc__"])
def test_an_unknown_extra_good_code_is_named(name: str) -> None:
    with pytest.raises(ValueError, match=f"extra_good_codes: '{name}' is not"):
        good_codes(["Good", name])


def test_bad_never_carries_a_value_and_uncertain_keeps_the_register() -> None:
    converter = NodeValue("eol", node())
    bad = converter.convert(value(61_830, V.UInt32, ua.StatusCodes.BadSensorFailure), NOW)
    assert bad is not None and (bad.quality, bad.value) == (Quality.BAD, None)
    uncertain = converter.convert(
        value(61_831, V.UInt32, ua.StatusCodes.UncertainLastUsableValue), NOW
    )
    assert uncertain is not None and (uncertain.quality, uncertain.value) == (
        Quality.UNCERTAIN,
        61_831,
    )
    assert converter.error is None  # a non-Good status is the server's word, not a rejection
    assert missing_reading("eol", "x", NOW).quality is Quality.BAD


def test_trouble_is_logged_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    converter = NodeValue("eol", node())
    with caplog.at_level(logging.INFO, logger="collectors.opcua.values"):
        for status in (ua.StatusCodes.BadSensorFailure,) * 3 + (ua.StatusCodes.Good,) * 2:
            converter.convert(value(5, V.UInt32, status), NOW)
    assert [r.getMessage() for r in caplog.records] == [
        "source eol: node ns=2;s=X status BadSensorFailure",
        "source eol: node ns=2;s=X is good again",
    ]


def test_a_good_status_with_info_bits_counts_and_says_values_were_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    overflow = ua.StatusCodes.Good | 0x0480  # InfoType DataValue, Overflow
    with caplog.at_level(logging.WARNING, logger="collectors.opcua.values"):
        reading = NodeValue("eol", node()).convert(value(7, V.UInt32, overflow), NOW)
    assert reading is not None
    assert (reading.value, reading.quality) == (7, Quality.GOOD)
    assert [r.getMessage() for r in caplog.records] == [
        "source eol: node ns=2;s=X: the server's queue overflowed, changes were lost"
    ]


@pytest.mark.parametrize(
    "data",
    [
        value(5, V.UInt32),
        value(5, V.UInt32, ua.StatusCodes.UncertainLastUsableValue),
        value(5, V.UInt32, ua.StatusCodes.BadSensorFailure),
        value(True, V.Boolean),
        value(5.5, V.Double),
        value([1, 2], V.UInt32),
        value(None, V.Null),
        change_of(1, ua.DataValue(ua.Variant(5, V.Int64), SourceTimestamp=dt.datetime(2026, 1, 1))),
        change_of(1, ua.DataValue(ua.Variant(5, V.Int64), StatusCode=None)),
    ],
)
def test_a_plain_node_reads_each_value_as_its_general_path_does(data: Change) -> None:
    """The converter's shortcut for Good integers gives what its general path gives."""
    general = NodeValue("eol", node())
    general._plain = False  # the shortcut is for plain nodes only
    assert NodeValue("eol", node()).convert(data, NOW) == general.convert(data, NOW)


@pytest.mark.parametrize("stamp", ["source", "server"])
def test_both_timestamps_travel_and_the_source_setting_says_which_stamps(stamp: str) -> None:
    plant = OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "eol",
            "endpoint": "opc.tcp://127.0.0.1:1/x",
            "timestamp": stamp,
            "nodes": [{"node": "ns=2;s=X", "counter": "s/a/l/st/c"}],
        }
    )
    converters = node_values(plant, parse_nodes(plant.nodes))
    reading = converters[1].convert(value(5, V.UInt32), NOW)
    assert reading is not None
    assert (reading.source_ts, reading.server_ts, reading.stamp) == (NOW, LATER, stamp)
    unknown = plant.model_copy(update={"extra_good_codes": ["GoodEnough"]})
    with pytest.raises(ValueError, match="'GoodEnough' is not an OPC UA status code name"):
        node_values(unknown, parse_nodes(plant.nodes))


def test_timestamps_become_aware_utc_and_zero_time_is_none() -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert utc(dt.datetime(2026, 1, 1, 13, tzinfo=berlin)) == dt.datetime(
        2026, 1, 1, 12, tzinfo=dt.UTC
    )
    assert utc(dt.datetime(2026, 1, 1, 12)) == dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert utc(dt.datetime(1601, 1, 1)) is None


# --- on a real server -------------------------------------------------------------------------

WIDTHS: dict[str, tuple[ua.VariantType, Any]] = {
    "SByte": (V.SByte, -128),
    "Byte": (V.Byte, 255),
    "Int16": (V.Int16, -32_768),
    "UInt16": (V.UInt16, 65_535),
    "Int32": (V.Int32, -(2**31)),
    "UInt32": (V.UInt32, 2**32 - 1),
    "Int64": (V.Int64, 2**63 - 1),
    "Int64Odd": (V.Int64, 2**53 + 1),
    "UInt64": (V.UInt64, 2**64 - 1),
}
OTHERS: dict[str, tuple[ua.VariantType, Any]] = {
    "Part": (V.Boolean, False),
    "Gone": (V.Boolean, True),
    "Rate": (V.Double, 99.7),
    "Stations": (V.UInt32, [5, 6, 7]),
    "Label": (V.String, "twelve"),
}


@asynccontextmanager
async def typed_server() -> AsyncIterator[tuple[str, dict[str, Node]]]:
    """An asyncua server with a variable per entry of WIDTHS and OTHERS, namespace 2."""
    server = Server()
    await server.init()
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/typed"
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace("urn:taktline:test:typed")
    variables = {
        name: await server.nodes.objects.add_variable(
            ua.NodeId(name, ns), name, ua.Variant(raw, kind)
        )
        for name, (kind, raw) in (WIDTHS | OTHERS).items()
    }
    await server.start()
    try:
        yield endpoint, variables
    finally:
        await server.stop()


def source(endpoint: str) -> OpcUaSource:
    nodes: list[dict[str, Any]] = [{"node": f"ns=2;s={name}"} for name in WIDTHS]
    nodes += [
        {"node": "ns=2;s=Part", "count_edges": "rising"},
        {"node": "ns=2;s=Gone", "count_edges": "falling"},
        {"node": "ns=2;s=Rate"},
        {"node": "ns=2;s=Stations", "index": 1},
        {"node": "ns=2;s=Label"},
        {"node": "ns=2;s=NoSuchNode"},
    ]
    return OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "eol",
            "endpoint": endpoint,
            "extra_good_codes": ["UncertainLastUsableValue"],
            "nodes": [n | {"counter": f"s/a/l/st/c{i}"} for i, n in enumerate(nodes)],
        }
    )


async def test_values_from_a_real_server_flow_per_node_and_edges_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with typed_server() as (endpoint, variables):
        plant = source(endpoint)
        nodes = parse_nodes(plant.nodes)
        converters = node_values(plant, nodes)
        readings: list[Reading] = []
        client = Client(endpoint, timeout=4)
        async with client:
            subscription = await client.create_subscription(20, None, queue_maxsize=1000)
            failed = await monitor(client, subscription, nodes, sampling_ms=0, queue=100, batch=5)
            assert {n.address: str(e) for n, e in failed.items()} == {
                "ns=2;s=NoSuchNode": "BadNodeIdUnknown: the server has no such node"
            }

            async def until(done: Callable[[], bool]) -> None:
                while not done():
                    event = await subscription.next_event(10)
                    assert event is not None, f"nothing more after {readings}"
                    if isinstance(event, DataChangeEvent):
                        item = event.data.monitored_item
                        change = change_of(item.ClientHandle, item.Value)
                        reading = converters[item.ClientHandle].convert(change, NOW)
                        if reading is not None:
                            readings.append(reading)

            def latest(address: str) -> Reading | None:
                return next((r for r in reversed(readings) if r.address == address), None)

            def last(address: str) -> Reading:
                reading = latest(address)
                assert reading is not None, f"no reading of {address} in {readings}"
                return reading

            def a(name: str) -> str:
                return f"ns=2;s={name}"

            with caplog.at_level(logging.WARNING, logger="collectors.opcua.values"):
                await until(lambda: all(latest(a(n)) for n in [*WIDTHS, "Label", "Rate"]))
                for name, (_, raw) in WIDTHS.items():
                    assert (last(a(name)).value, last(a(name)).quality) == (raw, Quality.GOOD)
                assert last(a("Stations[1]")).value == 6
                assert last(a("Rate")).value == 100
                assert (last(a("Label")).quality, last(a("Label")).value) == (Quality.BAD, None)
                handle = next(n.handle for n in nodes if n.address == a("Label"))
                assert converters[handle].error == "holds a String, not a number"

                for _ in range(5):  # five parts pass the light barrier
                    for bit in (True, False):
                        await variables["Part"].write_value(ua.Variant(bit, V.Boolean))
                await variables["Gone"].write_value(ua.Variant(False, V.Boolean))
                await variables["Rate"].write_value(ua.Variant(101.2, V.Double))
                await variables["UInt16"].write_value(
                    ua.DataValue(
                        ua.Variant(7, V.UInt16),
                        StatusCode=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
                    )
                )
                await until(lambda: last(a("UInt16")).value == 7)
                await until(lambda: sum(r.address == a("Part") for r in readings) == 5)
                await until(lambda: last(a("Rate")).value == 101)

            part = [r for r in readings if r.address == a("Part")]
            assert {(r.value, r.quality) for r in part} == {(1, Quality.GOOD)}
            gone = [r for r in readings if r.address == a("Gone")]
            assert [(r.value, r.quality) for r in gone] == [(1, Quality.GOOD)]
            assert last(a("UInt16")).quality is Quality.GOOD  # UncertainLastUsableValue: extra good
            assert all(r.server_ts is not None for r in readings)
            assert all(r.source_ts is not None for r in part)
        messages = [r.getMessage() for r in caplog.records]
        assert sum("floating-point" in m for m in messages) == 1
        assert "source eol: node ns=2;s=Label holds a String, not a number" in messages
