"""Node strings from the plant file: parsed once, duplicates monitored once."""

from __future__ import annotations

import pytest
from asyncua import ua

from collectors.opcua.nodes import item_queue_size, parse_nodes


def test_distinct_nodes_keep_their_configured_string_and_order() -> None:
    nodes = parse_nodes(
        ["ns=2;s=FA1.EOL.Passed", "i=2258", "ns=2;s=FA1.EOL.Passed", "nsu=urn:x;s=A"]
    )
    assert [(n.handle, n.address) for n in nodes] == [
        (1, "ns=2;s=FA1.EOL.Passed"),
        (2, "i=2258"),
        (3, "nsu=urn:x;s=A"),
    ]
    assert nodes[0].node_id == ua.NodeId("FA1.EOL.Passed", 2)
    assert isinstance(nodes[2].node_id, ua.ExpandedNodeId)


def test_a_malformed_node_string_is_named() -> None:
    with pytest.raises(ValueError, match=r"not an OPC UA NodeId: 'FA1\.EOL\.Passed'"):
        parse_nodes(["FA1.EOL.Passed"])


@pytest.mark.parametrize(
    ("publishing", "sampling", "queue"),
    [(500, 250, 2), (500, 500, 1), (250, 1000, 1), (500, 0, 100)],
)
def test_item_queue_keeps_every_sample_between_publishes(
    publishing: int, sampling: int, queue: int
) -> None:
    assert item_queue_size(publishing, sampling) == queue
