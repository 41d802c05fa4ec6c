"""The mapped nodes of a source: parsed once, resolved and monitored on every session."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError, UaStringParsingError

DEFAULT_BATCH = 500
"""Monitored items per CreateMonitoredItems call when the server publishes no limit."""

MAX_ITEM_QUEUE = 100


@dataclass(frozen=True, slots=True)
class MappedNode:
    """One configured node: its client handle, its string as configured, its parsed NodeId."""

    handle: int
    address: str
    node_id: ua.NodeId


def parse_nodes(addresses: Iterable[str]) -> list[MappedNode]:
    """The distinct node strings in config order; raises ValueError naming a malformed one."""
    nodes: list[MappedNode] = []
    for address in dict.fromkeys(addresses):
        try:
            node_id = ua.NodeId.from_string(address)
        except (UaStringParsingError, ValueError) as exc:
            raise ValueError(f"not an OPC UA NodeId: {address!r} ({exc})") from None
        nodes.append(MappedNode(len(nodes) + 1, address, node_id))
    return nodes


async def resolve(client: Client, nodes: Sequence[MappedNode]) -> list[ua.NodeId | None]:
    """Each node's NodeId in this session; `nsu=` URIs become today's namespace index.

    None where the server does not know the namespace URI (it may register it later).
    """
    namespaces: list[str] = []
    if any(isinstance(n.node_id, ua.ExpandedNodeId) and n.node_id.NamespaceUri for n in nodes):
        namespaces = await client.get_namespace_array()
    resolved: list[ua.NodeId | None] = []
    for node in nodes:
        uri = node.node_id.NamespaceUri if isinstance(node.node_id, ua.ExpandedNodeId) else None
        if not uri:
            resolved.append(node.node_id)
        elif uri in namespaces:
            index = ua.Int16(namespaces.index(uri))
            resolved.append(ua.NodeId(node.node_id.Identifier, index, node.node_id.NodeIdType))
        else:
            resolved.append(None)
    return resolved


async def batch_size(client: Client) -> int:
    """The server's OperationLimits.MaxMonitoredItemsPerCall, else DEFAULT_BATCH."""
    limit_node = client.get_node(
        ua.NodeId(
            ua.Int32(ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall)
        )
    )
    try:
        limit = await limit_node.read_value()
    except UaStatusCodeError:  # servers without OperationLimits
        return DEFAULT_BATCH
    return limit if isinstance(limit, int) and limit > 0 else DEFAULT_BATCH


def item_queue_size(publishing_interval_ms: int, sampling_interval_ms: int) -> int:
    """Enough server-side queue to keep every sample taken between two publishes."""
    if sampling_interval_ms <= 0:
        return MAX_ITEM_QUEUE
    return max(1, min(MAX_ITEM_QUEUE, math.ceil(publishing_interval_ms / sampling_interval_ms)))


def _request(
    handle: int, node_id: ua.NodeId, sampling_ms: int, queue: int
) -> ua.MonitoredItemCreateRequest:
    return ua.MonitoredItemCreateRequest(
        ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value),
        MonitoringMode=ua.MonitoringMode.Reporting,
        RequestedParameters=ua.MonitoringParameters(
            ClientHandle=handle,
            SamplingInterval=float(sampling_ms),
            QueueSize=queue,
            DiscardOldest=True,
        ),
    )


async def monitor(
    client: Client,
    subscription: Subscription,
    nodes: Sequence[MappedNode],
    *,
    sampling_ms: int,
    queue: int,
    batch: int,
) -> dict[MappedNode, ua.StatusCode]:
    """Create a monitored item per node, `batch` per call; returns the nodes that failed.

    Each new monitored item reports the node's current value first, so every (re)connect
    delivers the current values.
    """
    failed: dict[MappedNode, ua.StatusCode] = {}
    pending: list[tuple[MappedNode, ua.MonitoredItemCreateRequest]] = []
    for node, node_id in zip(nodes, await resolve(client, nodes), strict=True):
        if node_id is None:
            failed[node] = ua.StatusCode(ua.UInt32(StatusCodes.BadNodeIdUnknown))
        else:
            pending.append((node, _request(node.handle, node_id, sampling_ms, queue)))
    for start in range(0, len(pending), batch):
        chunk = pending[start : start + batch]
        results = await subscription.create_monitored_items([request for _, request in chunk])
        for (node, _), result in zip(chunk, results, strict=True):
            if isinstance(result, ua.StatusCode):
                failed[node] = result
    return failed
