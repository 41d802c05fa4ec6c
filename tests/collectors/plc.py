"""A real asyncua server standing in for a PLC: counters as UInt16/UInt32 variables.

It can be stopped and started again on the same port (a PLC restart, optionally with other
namespaces registered first so ours moves), cut its client connections while keeping the
sessions (a network cut), stop publishing while the connection stays up (a hung PLC task),
delete and re-add a variable (a program download), and publish OperationLimits. It counts
the sessions clients create and records the size of every CreateMonitoredItems and Read call.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.node import Node
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.object_ids import ObjectIds

NAMESPACE = "urn:taktline:test:plc"
PATH = "/taktline/test"

# asyncua logs every request at INFO and tracebacks at every connection loss; tests want ours.
logging.getLogger("asyncua").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Security:
    """Basic256Sha256 SignAndEncrypt only, with username/password users."""

    certificate: Path
    private_key: Path
    users: dict[str, str]


class _Users(UserManager):
    """An asyncua user manager that knows a fixed set of username/password pairs."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User)
        return None


@dataclass
class PlcServer:
    """The server; `variables` maps string NodeId identifiers to (variant type, value)."""

    port: int
    variables: dict[str, tuple[ua.VariantType, int]]
    sessions_created: int = 0
    sessions_live: int = 0
    sessions_peak: int = 0
    item_batches: list[int] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    batch_limit: int | None = None
    read_limit: int | None = None
    refuse_reads_of: set[str] = field(default_factory=set)
    namespaces_before: list[str] = field(default_factory=list)
    """Namespace URIs registered before ours at the next start (moves our namespace index)."""
    security: Security | None = None
    _server: Server | None = None
    _nodes: dict[str, Node] = field(default_factory=dict)
    _namespace: int = 0

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}{PATH}"

    def address(self, name: str) -> str:
        """The NodeId string a plant file uses for a variable."""
        return f"ns={self._namespace or 2};s={name}"

    @staticmethod
    def uri_address(name: str) -> str:
        """The NodeId string with the namespace URI: independent of the namespace index."""
        return f"nsu={NAMESPACE};s={name}"

    @property
    def namespace_index(self) -> int:
        return self._namespace

    async def start(self, *, without: Collection[str] = ()) -> None:
        """Start (again) on the same port, with every variable except `without`.

        The session and batch records start afresh with each start.
        """
        self.sessions_created = self.sessions_live = self.sessions_peak = 0
        self.item_batches = []
        self.reads = []
        server = Server(user_manager=_Users(self.security.users) if self.security else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        if self.security is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            await server.load_certificate(str(self.security.certificate))
            await server.load_private_key(str(self.security.private_key))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            server.set_identity_tokens([ua.UserNameIdentityToken])
        for uri in self.namespaces_before:
            await server.register_namespace(uri)
        self._namespace = await server.register_namespace(NAMESPACE)
        self._server = server
        self._nodes = {}
        for name in self.variables:
            if name not in without:
                await self.add(name)
        limits = {
            ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall: (
                self.batch_limit
            ),
            ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead: self.read_limit,
        }
        for node_id, limit in limits.items():
            if limit is not None:
                await server.get_node(ua.NodeId(ua.Int32(node_id))).write_value(
                    ua.Variant(limit, ua.VariantType.UInt32)
                )
        self._count_sessions(server)
        server.subscribe_server_callback(CallbackType.ItemSubscriptionCreated, self._on_items)
        server.subscribe_server_callback(CallbackType.PreRead, self._on_read)
        await server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
            self.sessions_live = 0

    async def add(self, name: str) -> None:
        """Create the variable `name` (e.g. one missing after a restart)."""
        assert self._server is not None
        variant_type, value = self.variables[name]
        node = await self._server.nodes.objects.add_variable(
            ua.NodeId(name, self._namespace), name, ua.Variant(value, variant_type)
        )
        self._nodes[name] = node

    async def remove(self, name: str) -> None:
        """Delete the variable `name` while running, telling its monitored items so.

        A server reports a deleted node to its monitored items with status BadNodeIdUnknown;
        asyncua 2.1 means to but never awaits that callback, so the status is written first.
        """
        assert self._server is not None
        await self.write_status(name, ua.StatusCodes.BadNodeIdUnknown)
        await self._server.delete_nodes([self._nodes.pop(name)])

    def cut(self) -> None:
        """Close every client connection, keeping their sessions and subscriptions (spec
        Part 4 6.7): what a cut cable looks like to the server."""
        assert self._server is not None
        for transport in list(self._server.iserver.asyncio_transports):
            transport.close()

    def hang(self) -> None:
        """Stop reading from every client connection, keeping it open: requests are never
        answered (a PLC whose OPC UA task hangs, or a cable cut without a reset)."""
        assert self._server is not None
        for transport in list(self._server.iserver.asyncio_transports):
            transport.pause_reading()

    def pause_publishing(self) -> None:
        """Stop the publishing cycle of every subscription (no data, no keep-alive), keeping
        the connection, the session and reads working: a hung server task."""
        assert self._server is not None
        for subscription in self._server.iserver.subscription_service.subscriptions.values():
            if subscription._task is not None:
                subscription._task.cancel()

    def publishing_intervals(self) -> list[float]:
        """The publishing interval of each live subscription, in creation order."""
        assert self._server is not None
        subscriptions = self._server.iserver.subscription_service.subscriptions
        return [sub.data.RevisedPublishingInterval for sub in subscriptions.values()]

    async def write(self, name: str, value: int) -> None:
        """Set the register; it reaches the server when that runs and has the variable (a
        PLC keeps counting while its OPC UA server restarts)."""
        variant_type, _ = self.variables[name]
        self.variables[name] = (variant_type, value)
        node = self._nodes.get(name) if self._server is not None else None
        if node is not None:
            await node.write_value(ua.Variant(value, variant_type))

    async def write_status(self, name: str, status: int, value: Any = None) -> None:
        """Write a value with a non-Good status (Bad: no value; Uncertain: a value)."""
        variant_type, _ = self.variables[name]
        variant = ua.Variant(value, variant_type) if value is not None else ua.Variant()
        await self._nodes[name].write_value(ua.DataValue(variant, StatusCode=ua.StatusCode(status)))

    def _count_sessions(self, server: Server) -> None:
        register = server.iserver.register_external_session
        unregister = server.iserver.unregister_external_session

        def registered(session: Any) -> None:
            self.sessions_created += 1
            self.sessions_live += 1
            self.sessions_peak = max(self.sessions_peak, self.sessions_live)
            register(session)

        def unregistered(session: Any) -> None:
            self.sessions_live -= 1
            unregister(session)

        server.iserver.register_external_session = registered  # type: ignore[method-assign]
        server.iserver.unregister_external_session = unregistered  # type: ignore[method-assign]

    async def _on_items(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        self.item_batches.append(len(event.request_params.ItemsToCreate))

    async def _on_read(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        """Records external reads; refuses one over `read_limit` (BadTooManyOperations, as
        servers do) and one that holds a variable of `refuse_reads_of`."""
        if not event.is_external:
            return
        nodes = event.request_params.NodesToRead
        self.reads.append(len(nodes))
        if self.read_limit is not None and len(nodes) > self.read_limit:
            raise ServiceError(ua.StatusCodes.BadTooManyOperations)
        refused = {self._nodes[name].nodeid for name in self.refuse_reads_of if name in self._nodes}
        if any(node.NodeId in refused for node in nodes):
            raise ServiceError(ua.StatusCodes.BadResourceUnavailable)
