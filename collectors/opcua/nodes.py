"""The mapped nodes of a source: parsed once, resolved and monitored on every session."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError, UaStringParsingError

from collectors.opcua.browse import BrowsePath, parse_browse_path, translate
from taktline.model.sources import OpcUaNode

DEFAULT_BATCH = 500
"""Operations per call (monitored items, browse paths) when the server publishes no limit."""

MAX_ITEM_QUEUE = 100

_LIMITS = ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall
_TRANSLATE_LIMIT = (
    ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds
)

_REASONS = {
    StatusCodes.BadNodeIdUnknown: "the server has no such node",
    StatusCodes.BadNodeIdInvalid: "not a valid NodeId on this server",
    StatusCodes.BadAttributeIdInvalid: "not a variable: the node has no value",
    StatusCodes.BadNotReadable: "the value is not readable",
    StatusCodes.BadUserAccessDenied: "access denied for this user",
}


@dataclass(frozen=True, slots=True)
class MappedNode:
    """One configured node: its client handle and `address` (what Readings carry, as the
    plant file maps it), and either a NodeId or a browse path, plus how its value is read."""

    handle: int
    address: str
    node_id: ua.NodeId | None
    browse_path: BrowsePath | None = None
    index: int | None = None
    count_edges: Literal["rising", "falling"] | None = None


@dataclass(frozen=True, slots=True)
class NodeError:
    """Why a node cannot be monitored in this session: a status code and a plain message."""

    status: ua.StatusCode
    message: str

    @property
    def name(self) -> str:
        """The status code name and the message (what a log line shows)."""
        return f"{self.status.name}: {self.message}"

    def __str__(self) -> str:
        return self.name


def refusal(status: ua.StatusCode) -> NodeError:
    """The NodeError for a status a server answered a node with (CreateMonitoredItems, Read)."""
    return NodeError(status, _REASONS.get(status.value, status.doc))


def _mapped(handle: int, node: OpcUaNode | str) -> MappedNode:
    if isinstance(node, str):
        text, address, index, edges = node, node, None, None
    else:
        text = node.node if node.node is not None else str(node.browse_path)
        address, index, edges = node.address, node.index, node.count_edges
    if text.startswith("/"):
        return MappedNode(handle, address, None, parse_browse_path(text), index, edges)
    try:
        node_id = ua.NodeId.from_string(text)
    except (UaStringParsingError, ValueError) as exc:
        raise ValueError(f"not an OPC UA NodeId: {text!r} ({exc})") from None
    return MappedNode(handle, address, node_id, None, index, edges)


def parse_nodes(nodes: Iterable[OpcUaNode | str]) -> list[MappedNode]:
    """The distinct nodes in config order, handles from 1; raises ValueError naming a bad one.

    A string is a NodeId, or a browse path when it starts with '/' (no `index`, no edges). The
    same address twice is mapped once; twice with different `count_edges` raises.
    """
    mapped: dict[str, MappedNode] = {}
    for node in nodes:
        candidate = _mapped(len(mapped) + 1, node)
        seen = mapped.get(candidate.address)
        if seen is None:
            mapped[candidate.address] = candidate
        elif seen.count_edges != candidate.count_edges:
            raise ValueError(f"node {candidate.address!r} is mapped twice with different edges")
    return list(mapped.values())


async def operation_limit(client: Client, limit_id: int) -> int:
    """A limit of the server's OperationLimits, else DEFAULT_BATCH (also for 0: no limit)."""
    try:
        limit = await client.get_node(ua.NodeId(ua.Int32(limit_id))).read_value()
    except UaStatusCodeError:  # servers without OperationLimits
        return DEFAULT_BATCH
    return limit if isinstance(limit, int) and limit > 0 else DEFAULT_BATCH


async def batch_size(client: Client) -> int:
    """The server's OperationLimits.MaxMonitoredItemsPerCall, else DEFAULT_BATCH."""
    return await operation_limit(client, _LIMITS)


def _uri(node: MappedNode) -> str | None:
    node_id = node.node_id
    return node_id.NamespaceUri if isinstance(node_id, ua.ExpandedNodeId) else None


async def resolve_nodes(client: Client, nodes: Sequence[MappedNode]) -> list[ua.NodeId | NodeError]:
    """Each node's NodeId in this session, or why it has none.

    `nsu=` URIs become today's namespace index; browse paths are translated (see browse.py),
    MaxNodesPerTranslateBrowsePathsToNodeIds at a time. Run on every session: a server
    restart may reorder its namespaces.
    """
    paths = [node.browse_path for node in nodes if node.browse_path is not None]
    namespaces: list[str] = []
    if paths or any(_uri(node) for node in nodes):
        namespaces = await client.get_namespace_array()
    translated = iter(
        await translate(client, paths, namespaces, await operation_limit(client, _TRANSLATE_LIMIT))
        if paths
        else []
    )
    resolved: list[ua.NodeId | NodeError] = []
    for node in nodes:
        if node.browse_path is not None:
            target = next(translated)
            resolved.append(
                target
                if isinstance(target, ua.NodeId)
                else NodeError(_status(StatusCodes.BadNoMatch), f"browse path: {target}")
            )
            continue
        assert node.node_id is not None
        uri = _uri(node)
        if uri is None:
            resolved.append(node.node_id)
        elif uri in namespaces:
            index = ua.Int16(namespaces.index(uri))
            resolved.append(ua.NodeId(node.node_id.Identifier, index, node.node_id.NodeIdType))
        else:
            resolved.append(
                NodeError(
                    _status(StatusCodes.BadNodeIdUnknown),
                    f"namespace URI {uri!r} is not on the server",
                )
            )
    return resolved


async def resolve(client: Client, nodes: Sequence[MappedNode]) -> list[ua.NodeId | None]:
    """Like `resolve_nodes`, with None for a node that does not resolve."""
    return [n if isinstance(n, ua.NodeId) else None for n in await resolve_nodes(client, nodes)]


def item_queue_size(publishing_interval_ms: int, sampling_interval_ms: int) -> int:
    """Enough server-side queue to keep every sample taken between two publishes."""
    if sampling_interval_ms <= 0:
        return MAX_ITEM_QUEUE
    return max(1, min(MAX_ITEM_QUEUE, math.ceil(publishing_interval_ms / sampling_interval_ms)))


def _status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


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
) -> dict[MappedNode, NodeError]:
    """Resolve `nodes`, create a monitored item per node, `batch` per call; returns the nodes
    that failed and why (no such node, browse path not found, not a variable, access denied).

    Each new monitored item reports the node's current value first, so every (re)connect
    delivers the current values.
    """
    failed: dict[MappedNode, NodeError] = {}
    pending: list[tuple[MappedNode, ua.MonitoredItemCreateRequest]] = []
    for node, node_id in zip(nodes, await resolve_nodes(client, nodes), strict=True):
        if isinstance(node_id, NodeError):
            failed[node] = node_id
        else:
            pending.append((node, _request(node.handle, node_id, sampling_ms, queue)))
    for start in range(0, len(pending), batch):
        chunk = pending[start : start + batch]
        results = await subscription.create_monitored_items([request for _, request in chunk])
        for (node, _), result in zip(chunk, results, strict=True):
            if isinstance(result, ua.StatusCode):
                failed[node] = refusal(result)
    return failed
