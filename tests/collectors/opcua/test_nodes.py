"""Mapped nodes from the plant file; resolved and monitored per session against a real server."""

from __future__ import annotations

from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client

from collectors.opcua.nodes import (
    MappedNode,
    NodeError,
    item_queue_size,
    monitor,
    parse_nodes,
    refusal,
    resolve,
)
from taktline.model.sources import OpcUaNode
from tests.collectors.conftest import FAILED, PASSED
from tests.collectors.plc import NAMESPACE, PlcServer


def config(**spec: Any) -> OpcUaNode:
    return OpcUaNode.model_validate({"counter": "s/a/l/st/c"} | spec)


def test_nodes_from_the_plant_file_keep_address_index_and_edges() -> None:
    nodes = parse_nodes(
        [
            config(node="ns=2;s=FA1.EOL.Passed"),
            config(node="ns=2;s=FA1.Stations", index=3),
            config(browse_path="/Objects/FA1/EOL/PartPresent", count_edges="rising"),
            config(node="nsu=urn:plc;i=5"),
            config(node="ns=2;s=FA1.EOL.Passed"),  # the same node twice: monitored once
        ]
    )
    assert [(n.handle, n.address, n.index, n.count_edges) for n in nodes] == [
        (1, "ns=2;s=FA1.EOL.Passed", None, None),
        (2, "ns=2;s=FA1.Stations[3]", 3, None),
        (3, "/Objects/FA1/EOL/PartPresent", None, "rising"),
        (4, "nsu=urn:plc;i=5", None, None),
    ]
    assert nodes[0].node_id == ua.NodeId("FA1.EOL.Passed", 2)
    assert nodes[1].node_id == ua.NodeId("FA1.Stations", 2)
    assert nodes[2].node_id is None and nodes[2].browse_path is not None
    assert [e.name for e in nodes[2].browse_path.elements] == [
        "Objects",
        "FA1",
        "EOL",
        "PartPresent",
    ]
    assert isinstance(nodes[3].node_id, ua.ExpandedNodeId)
    assert nodes[3].node_id.NamespaceUri == "urn:plc"


def test_plain_strings_still_parse() -> None:
    nodes = parse_nodes(["ns=2;s=A", "i=2258", "/Objects/Server", "ns=2;s=A"])
    assert [(n.address, n.browse_path is not None) for n in nodes] == [
        ("ns=2;s=A", False),
        ("i=2258", False),
        ("/Objects/Server", True),
    ]


def test_a_malformed_node_is_named() -> None:
    with pytest.raises(ValueError, match=r"not an OPC UA NodeId: 'FA1\.EOL\.Passed'"):
        parse_nodes(["FA1.EOL.Passed"])
    with pytest.raises(ValueError, match=r"browse path '/Objects//X': an element has no name"):
        parse_nodes([config(browse_path="/Objects//X")])


def test_one_node_with_two_edge_settings_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'ns=2;s=Bit' is mapped twice with different edges"):
        parse_nodes(
            [
                config(node="ns=2;s=Bit", count_edges="rising"),
                config(node="ns=2;s=Bit", count_edges="falling"),
            ]
        )


@pytest.mark.parametrize(
    ("publishing", "sampling", "queue"),
    [(500, 250, 2), (500, 500, 1), (250, 1000, 1), (500, 0, 100)],
)
def test_item_queue_keeps_every_sample_between_publishes(
    publishing: int, sampling: int, queue: int
) -> None:
    assert item_queue_size(publishing, sampling) == queue


async def test_bad_nodes_get_a_clear_error_each_and_the_others_are_monitored(
    plc: PlcServer,
) -> None:
    nodes = parse_nodes(
        [
            config(node=plc.address(PASSED)),
            config(node="ns=2;s=FA1.EOL.Nothing"),
            config(node=f"nsu={NAMESPACE};s={FAILED}"),
            config(node="nsu=urn:nowhere;s=X"),
            config(node="i=85"),  # the Objects folder: no value
            config(browse_path=f"/Objects/{PASSED}"),
            config(browse_path="/Objects/FA2.EOL.Passed"),
        ]
    )
    client = Client(plc.endpoint, timeout=4)
    async with client:
        subscription = await client.create_subscription(50, None)
        failed = await monitor(client, subscription, nodes, sampling_ms=0, queue=10, batch=500)
        assert {node.address: str(error) for node, error in failed.items()} == {
            "ns=2;s=FA1.EOL.Nothing": "BadNodeIdUnknown: the server has no such node",
            "nsu=urn:nowhere;s=X": "BadNodeIdUnknown: namespace URI 'urn:nowhere' is not on the"
            " server",
            "i=85": "BadAttributeIdInvalid: not a variable: the node has no value",
            "/Objects/FA2.EOL.Passed": "BadNoMatch: browse path: nothing named 'FA2.EOL.Passed'"
            " under /Objects",
        }
        assert all(isinstance(e, NodeError) and e.status.is_bad() for e in failed.values())
        denied = refusal(ua.StatusCode(ua.StatusCodes.BadUserAccessDenied))
        assert str(denied) == "BadUserAccessDenied: access denied for this user"
        values: dict[int, Any] = {}
        while len(values) < 3:
            event = await subscription.next_event(10)
            assert event is not None, f"only {values}"
            item = event.data.monitored_item  # type: ignore[union-attr]
            values[item.ClientHandle] = item.Value.Value.Value
        by_address = {n.address: values.get(n.handle) for n in nodes if n not in failed}
        assert by_address == {
            plc.address(PASSED): 16_250_210,
            f"nsu={NAMESPACE};s={FAILED}": 61_830,
            f"/Objects/{PASSED}": 16_250_210,
        }
        assert await resolve(client, nodes[:4]) == [
            ua.NodeId(PASSED, 2),
            ua.NodeId("FA1.EOL.Nothing", 2),
            ua.NodeId(FAILED, 2),
            None,
        ]


def test_mapped_nodes_are_hashable_keys() -> None:
    node = parse_nodes([config(node="ns=2;s=A", index=1)])[0]
    assert {node: 1}[MappedNode(1, "ns=2;s=A[1]", ua.NodeId("A", 2), None, 1, None)] == 1
