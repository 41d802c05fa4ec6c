"""One asyncua server per OPC UA source, serving the source's nodes as PLC registers."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes

from taktline.model.paths import CounterPath
from taktline.model.sources import OpcUaSource
from taktline.sim.errors import SimulatorError

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:taktline:sim"
"""The namespace of the simulated nodes; a fresh server gives it index 2 (`ns=2`)."""

VARIANT_TYPES = {16: ua.VariantType.UInt16, 32: ua.VariantType.UInt32, 64: ua.VariantType.UInt64}
"""Register width in bits -> OPC UA variant type of the node."""

_GOOD = ua.StatusCode(ua.UInt32(StatusCodes.Good))


@dataclass(frozen=True, slots=True)
class NodeFeed:
    """A node of the source and the counter register it shows."""

    node: str
    path: CounterPath
    bits: int


class OpcUaEndpoint:
    """An OPC UA server at the source's endpoint (host, port and path) without security."""

    def __init__(self, source: OpcUaSource, feeds: Sequence[NodeFeed]) -> None:
        self.source = source
        self._feeds = tuple(feeds)
        self._server = Server()
        self._nodes: dict[CounterPath, list[tuple[ua.NodeId, ua.VariantType]]] = {}

    @property
    def endpoint(self) -> str:
        """The opc.tcp URL served."""
        return self.source.endpoint

    async def start(self, registers: Mapping[CounterPath, int]) -> None:
        """Build the address space with the registers' values and listen."""
        server = self._server
        await server.init()
        server.set_server_name(f"taktline simulator: {self.source.id}")
        server.set_endpoint(self.source.endpoint)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        await server.set_application_uri(f"{NAMESPACE_URI}:{self.source.id}")
        index = await server.register_namespace(NAMESPACE_URI)
        folders: dict[tuple[str, ...], Node] = {}
        for feed in self._feeds:
            node_id = await self._node_id(feed.node, index)
            parent = await self._folder(folders, feed.path, index)
            variant_type = VARIANT_TYPES[feed.bits]
            value = ua.Variant(registers[feed.path], variant_type)
            name = ua.QualifiedName(feed.path.counter, node_id.NamespaceIndex)
            await parent.add_variable(node_id, name, value)
            self._nodes.setdefault(feed.path, []).append((node_id, variant_type))
        await server.start()
        log.debug("OPC UA source %s served at %s", self.source.id, self.source.endpoint)

    async def _node_id(self, text: str, index: int) -> ua.NodeId:
        """The plant's NodeId; `nsu=` URIs are registered, `ns=` must be the simulator's index."""
        node_id = ua.NodeId.from_string(text)
        if isinstance(node_id, ua.ExpandedNodeId) and node_id.NamespaceUri:
            uri_index = await self._server.register_namespace(node_id.NamespaceUri)
            return ua.NodeId(node_id.Identifier, ua.Int16(uri_index), node_id.NodeIdType)
        if node_id.NamespaceIndex != index:
            raise SimulatorError(
                f"source '{self.source.id}': node '{text}' is in ns={node_id.NamespaceIndex}, "
                f"but the simulator serves its nodes in ns={index} ({NAMESPACE_URI})"
            )
        return node_id

    async def _folder(
        self, folders: dict[tuple[str, ...], Node], path: CounterPath, index: int
    ) -> Node:
        """Objects/site/area/line/station, created on first use."""
        parent = self._server.nodes.objects
        levels = (path.site, path.area, path.line, path.station)
        for depth in range(1, len(levels) + 1):
            key = levels[:depth]
            if key not in folders:
                folder_id = ua.NodeId(ua.String("taktline-sim:" + "/".join(key)), ua.Int16(index))
                folders[key] = await parent.add_folder(folder_id, ua.QualifiedName(key[-1], index))
            parent = folders[key]
        return parent

    async def write(self, path: CounterPath, value: int, now: dt.datetime) -> None:
        """Set the counter's node(s) to `value`, Good, with source and server timestamp `now`."""
        stamp = cast(ua.DateTime, now)  # asyncua's marker type for datetimes
        for node_id, variant_type in self._nodes.get(path, ()):
            data = ua.DataValue(
                Value=ua.Variant(value, variant_type),
                StatusCode=_GOOD,
                SourceTimestamp=stamp,
                ServerTimestamp=stamp,
            )
            await self._server.write_attribute_value(node_id, data)

    async def stop(self) -> None:
        """Stop listening (takes about a second: asyncua's clock task)."""
        await self._server.stop()
