"""Polling mode: read every node on a fixed interval, for servers without subscriptions.

Each poll reads all nodes with Read calls of at most the server's
`OperationLimits.MaxNodesPerRead` nodes (nodes.DEFAULT_BATCH, 500, when it publishes none).
A Read the server refuses as a whole fails only its chunk; an error that means the session or
the connection is gone ends the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError

from collectors.opcua.nodes import (
    DEFAULT_BATCH,
    MappedNode,
    NodeError,
    operation_limit,
    resolve_nodes,
)

_READ_LIMIT = ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead

SESSION_ENDED = frozenset(
    {
        StatusCodes.BadSessionIdInvalid,
        StatusCodes.BadSessionClosed,
        StatusCodes.BadSessionNotActivated,
        StatusCodes.BadSecureChannelIdInvalid,
        StatusCodes.BadSecureChannelClosed,
        StatusCodes.BadConnectionClosed,
        StatusCodes.BadServerHalted,
        StatusCodes.BadShutdown,
        StatusCodes.BadCommunicationError,
    }
)
"""Service results that end the session rather than one chunk."""


@dataclass(frozen=True, slots=True)
class ChunkFailure:
    """A Read call the server refused: its position in the poll and the status."""

    index: int
    status: ua.StatusCode


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll: a DataValue per node read (Bad for the nodes of a failed chunk), the nodes
    that do not resolve in this session and why, and the failed chunks."""

    values: list[tuple[MappedNode, ua.DataValue]]
    unresolved: dict[MappedNode, NodeError]
    failures: list[ChunkFailure]


class Poller:
    """Reads a fixed list of nodes in chunks, resolving `nsu=` namespaces per session."""

    def __init__(self, nodes: Sequence[MappedNode]) -> None:
        self._nodes = list(nodes)
        self._ids: list[ua.NodeId | NodeError] = []
        self.limit = DEFAULT_BATCH

    async def start(self, client: Client) -> None:
        """Resolve the nodes and learn the read limit in a new session."""
        self.limit = await operation_limit(client, _READ_LIMIT)
        self._ids = await resolve_nodes(client, self._nodes)

    async def poll(self, client: Client) -> Poll:
        """Read every node once (nodes that did not resolve are resolved again first)."""
        if any(isinstance(node_id, NodeError) for node_id in self._ids):
            self._ids = await resolve_nodes(client, self._nodes)
        values: list[tuple[MappedNode, ua.DataValue]] = []
        failures: list[ChunkFailure] = []
        unresolved: dict[MappedNode, NodeError] = {}
        readable: list[tuple[MappedNode, ua.NodeId]] = []
        for node, node_id in zip(self._nodes, self._ids, strict=True):
            if isinstance(node_id, NodeError):
                unresolved[node] = node_id
            else:
                readable.append((node, node_id))
        for index, start in enumerate(range(0, len(readable), self.limit)):
            chunk = readable[start : start + self.limit]
            try:
                results = await client.uaclient.read(
                    ua.ReadParameters(
                        NodesToRead=[
                            ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value)
                            for _, node_id in chunk
                        ],
                        TimestampsToReturn=ua.TimestampsToReturn.Both,
                    )
                )
            except UaStatusCodeError as exc:
                if exc.code in SESSION_ENDED:
                    raise
                status = ua.StatusCode(ua.UInt32(exc.code))
                failures.append(ChunkFailure(index, status))
                values.extend((node, ua.DataValue(StatusCode=status)) for node, _ in chunk)
                continue
            values.extend((node, value) for (node, _), value in zip(chunk, results, strict=True))
        return Poll(values, unresolved, failures)
