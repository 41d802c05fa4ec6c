"""Browse paths and `nsu=` NodeIds against a real asyncua server whose namespaces move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.server.server import Server
from asyncua.ua.object_ids import ObjectIds

from collectors.opcua.browse import Discovered, PathElement, discover, parse_browse_path
from collectors.opcua.nodes import NodeError, parse_nodes, resolve_nodes
from taktline.localbroker import free_port

PLC = "urn:taktline:test:plc"
OTHER = "urn:taktline:test:other"


@dataclass
class TreeServer:
    """/Objects/Line1/EOL/{Passed,Failed} in the PLC namespace, /Objects/Shared in both, and
    /Objects/Other/Passed in the other one; `order` is the order namespaces are registered in.
    """

    port: int
    order: tuple[str, ...] = (OTHER, PLC)
    translate_limit: int | None = None
    translate_batches: list[int] = field(default_factory=list)
    _server: Server | None = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/tree"

    async def start(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = {uri: await server.register_namespace(uri) for uri in self.order}
        objects = server.nodes.objects
        line = await objects.add_folder(ua.NodeId("Line1", ns[PLC]), f"{ns[PLC]}:Line1")
        eol = await line.add_object(ua.NodeId("Line1.EOL", ns[PLC]), f"{ns[PLC]}:EOL")
        for name, value in (("Passed", 1200), ("Failed", 34)):
            await eol.add_variable(
                ua.NodeId(f"Line1.EOL.{name}", ns[PLC]),
                f"{ns[PLC]}:{name}",
                ua.Variant(value, ua.VariantType.UInt32),
            )
        other = await objects.add_object(ua.NodeId("Other", ns[OTHER]), f"{ns[OTHER]}:Other")
        await other.add_variable(
            ua.NodeId("Other.Passed", ns[OTHER]), f"{ns[OTHER]}:Passed", ua.Variant(7)
        )
        for uri in (PLC, OTHER):
            await objects.add_folder(ua.NodeId(f"Shared.{uri}", ns[uri]), f"{ns[uri]}:Shared")
        if self.translate_limit is not None:
            limit = server.get_node(
                ua.NodeId(
                    ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds
                )
            )
            await limit.write_value(ua.Variant(self.translate_limit, ua.VariantType.UInt32))
        view = server.iserver.view_service
        translate = view.translate_browsepaths_to_nodeids

        def recorded(paths: list[Any]) -> Any:
            self.translate_batches.append(len(paths))
            return translate(paths)

        view.translate_browsepaths_to_nodeids = recorded  # type: ignore[method-assign]
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None


@pytest.fixture
async def tree() -> AsyncIterator[TreeServer]:
    server = TreeServer(free_port())
    await server.start()
    yield server
    await server.stop()


async def resolved(endpoint: str, addresses: Sequence[str]) -> list[tuple[str, str] | str]:
    """Each address as (namespace URI, identifier) of its node, or the NodeError text."""
    client = Client(endpoint, timeout=4)
    async with client:
        namespaces = await client.get_namespace_array()
        results = await resolve_nodes(client, parse_nodes(addresses))
    return [
        str(r) if isinstance(r, NodeError) else (namespaces[r.NamespaceIndex], str(r.Identifier))
        for r in results
    ]


@pytest.mark.parametrize(
    ("text", "elements"),
    [
        ("/Objects/Line1", [("Objects", None, None), ("Line1", None, None)]),
        ("/Objects/3:Line1", [("Objects", None, None), ("Line1", 3, None)]),
        ("/{urn:plc:a/b}Line1/x", [("Line1", None, "urn:plc:a/b"), ("x", None, None)]),
        ("/A&/B/10&:30/&&x", [("A/B", None, None), ("10:30", None, None), ("&x", None, None)]),
    ],
)
def test_browse_path_elements(
    text: str, elements: list[tuple[str, int | None, str | None]]
) -> None:
    path = parse_browse_path(text)
    assert path.text == text
    assert [(e.name, e.namespace_index, e.namespace_uri) for e in path.elements] == elements
    assert isinstance(path.elements[0], PathElement)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Objects/Line1", "starts with '/'"),
        ("/", "starts with '/'"),
        ("/Objects//Line1", "an element has no name"),
        ("/Objects/Line1/", "an element has no name"),
        ("/Objects/{urn:plc", "not closed"),
        ("/Objects/{}Line1", "empty namespace URI"),
        ("/Objects/Line1&", "unescaped '&'"),
    ],
)
def test_a_malformed_browse_path_is_named(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        parse_browse_path(text)
    assert repr(text) in str(raised.value)


async def test_paths_and_nsu_node_ids_survive_a_restart_that_reorders_namespaces(
    tree: TreeServer,
) -> None:
    addresses = [
        "/Objects/Line1/EOL/Passed",  # unprefixed: found in the one namespace that has it
        f"/Objects/{{{PLC}}}Line1/{{{PLC}}}EOL/{{{PLC}}}Failed",
        f"nsu={PLC};s=Line1.EOL.Passed",
        "/Objects/Other/Passed",
        "/Objects/Server/ServerStatus/State",  # namespace 0 throughout
    ]
    expected = [
        (PLC, "Line1.EOL.Passed"),
        (PLC, "Line1.EOL.Failed"),
        (PLC, "Line1.EOL.Passed"),
        (OTHER, "Other.Passed"),
        ("http://opcfoundation.org/UA/", str(ObjectIds.Server_ServerStatus_State)),
    ]
    assert await resolved(tree.endpoint, addresses) == expected
    # today the PLC namespace has index 3, so an index prefix finds it; after the restart not
    assert await resolved(tree.endpoint, ["/Objects/3:Line1/3:EOL"]) == [(PLC, "Line1.EOL")]

    await tree.stop()
    tree.order = (PLC, OTHER)  # the PLC namespace is now index 2
    await tree.start()
    assert await resolved(tree.endpoint, addresses) == expected
    assert await resolved(tree.endpoint, ["/Objects/3:Line1/3:EOL"]) == [
        "BadNoMatch: browse path: nothing named 'Line1' under /Objects"
    ]


async def test_a_path_that_does_not_resolve_says_where_and_the_others_resolve(
    tree: TreeServer,
) -> None:
    results = await resolved(
        tree.endpoint,
        [
            "/Objects/Line1/EOX/Passed",
            "/Objects/Line1/EOL/Passed",
            "/Objectz/Line1",
            "/Objects/Shared",
            "/Objects/{urn:nowhere}Line1",
            "/Objects/9:Line1",
            "nsu=urn:nowhere;s=Line1.EOL.Passed",
            "/Objects/Line1/EOL/Passed/Nothing",
        ],
    )
    assert results == [
        "BadNoMatch: browse path: nothing named 'EOX' under /Objects/Line1",
        (PLC, "Line1.EOL.Passed"),
        "BadNoMatch: browse path: nothing named 'Objectz' under the Root folder",
        f"BadNoMatch: browse path: ambiguous: the names exist in namespaces '{OTHER}' and"
        f" '{PLC}'; prefix them as {{uri}}Name",
        "BadNoMatch: browse path: namespace URI 'urn:nowhere' is not on the server",
        "BadNoMatch: browse path: namespace index 9 is not on the server (it has 4)",
        "BadNodeIdUnknown: namespace URI 'urn:nowhere' is not on the server",
        "BadNoMatch: browse path: nothing named 'Nothing' under /Objects/Line1/EOL/Passed",
    ]


async def test_paths_are_translated_in_batches_of_the_server_limit() -> None:
    tree = TreeServer(free_port(), translate_limit=3)
    await tree.start()
    try:
        paths = ["/Objects/Line1/EOL/Passed", "/Objects/Line1/EOL/Failed", "/Objects/Other/Passed"]
        results = await resolved(tree.endpoint, paths)
        assert [r[1] for r in results] == ["Line1.EOL.Passed", "Line1.EOL.Failed", "Other.Passed"]
        # each path is tried in each of the 4 namespaces: 12 translations, 3 per call
        assert tree.translate_batches == [3, 3, 3, 3]
    finally:
        await tree.stop()


async def test_discovery_by_pattern_finds_variables_whose_paths_resolve_back(
    tree: TreeServer,
) -> None:
    client = Client(tree.endpoint, timeout=4)
    async with client:
        namespaces = await client.get_namespace_array()
        found = await discover(client, "/Objects/*/EOL/*", namespaces, batch=1)
        assert found == [
            Discovered("/Objects/Line1/EOL/Passed", f"nsu={PLC};s=Line1.EOL.Passed"),
            Discovered("/Objects/Line1/EOL/Failed", f"nsu={PLC};s=Line1.EOL.Failed"),
        ]
        others = await discover(client, f"/Objects/{{{OTHER}}}*/Pass?d", namespaces, batch=10)
        assert [d.node for d in others] == [f"nsu={OTHER};s=Other.Passed"]
        assert await discover(client, "/Objects/Line1", namespaces, batch=10) == []  # a folder
        assert await discover(client, "/Objects/{urn:nowhere}*/*", namespaces, batch=10) == []
    back = await resolved(tree.endpoint, [d.browse_path for d in found + others])
    assert back == [(PLC, "Line1.EOL.Passed"), (PLC, "Line1.EOL.Failed"), (OTHER, "Other.Passed")]
