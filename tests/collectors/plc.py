"""A real asyncua server standing in for a PLC: counters as UInt16/UInt32 variables.

It can be stopped and started again on the same port (a PLC restart), counts the sessions
clients create, and records the size of every CreateMonitoredItems call.
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
    batch_limit: int | None = None
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

    async def start(self, *, without: Collection[str] = ()) -> None:
        """Start (again) on the same port, with every variable except `without`.

        The session and batch records start afresh with each start.
        """
        self.sessions_created = self.sessions_live = self.sessions_peak = 0
        self.item_batches = []
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
        self._namespace = await server.register_namespace(NAMESPACE)
        self._server = server
        self._nodes = {}
        for name in self.variables:
            if name not in without:
                await self.add(name)
        if self.batch_limit is not None:
            limit = server.get_node(
                ua.NodeId(
                    ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall
                )
            )
            await limit.write_value(ua.Variant(self.batch_limit, ua.VariantType.UInt32))
        self._count_sessions(server)
        server.subscribe_server_callback(CallbackType.ItemSubscriptionCreated, self._on_items)
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

    async def write(self, name: str, value: int) -> None:
        variant_type, _ = self.variables[name]
        self.variables[name] = (variant_type, value)
        await self._nodes[name].write_value(ua.Variant(value, variant_type))

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
