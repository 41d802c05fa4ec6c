"""Browse paths: parsed once from the plant file, translated to NodeIds on every session.

Syntax: `/Objects/Line1/EOL/Passed`, one element per node below the Root folder. An element is

- `Name`: unprefixed. If it is the first element and one of Root's standard folders
  (`Objects`, `Types`, `Views`) it is in namespace 0. All other unprefixed elements of one path
  share one namespace, found at connect: the path is tried in every namespace of the server and
  must resolve in exactly one of them (two is an error naming both: prefix the names). This
  survives a server restart that reorders its namespaces.
- `{urn:plc}Name`: in the namespace with that URI (today's index is looked up at connect).
- `3:Name`: in namespace index 3 as the server numbers them today (OPC UA's own text form;
  an index can change when the server restarts: prefer the two forms above).

`&` escapes the next character (`&/`, `&:`, `&{`, `&&`) in a name. Children are followed over
any hierarchical reference (Organizes, HasComponent, HasProperty, ...), as UaExpert shows them.

`discover` finds the variables below a pattern such as `/Objects/Line*/EOL/*` by browsing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.object_ids import ObjectIds

STANDARD_FOLDERS = frozenset({"Objects", "Types", "Views"})
"""Unprefixed first elements that name Root's own folders (namespace 0)."""

_LOCAL = 0xFFFFFFFF
"""RemainingPathIndex of a target in this server (the whole path was followed)."""

_INDEX_PREFIX = re.compile(r"(\d+):")


@dataclass(frozen=True, slots=True)
class PathElement:
    """One element: its name and at most one of a namespace index or URI (neither: unprefixed)."""

    text: str
    name: str
    namespace_index: int | None = None
    namespace_uri: str | None = None


@dataclass(frozen=True, slots=True)
class BrowsePath:
    """A parsed browse path; `text` as configured."""

    text: str
    elements: tuple[PathElement, ...]

    def prefix_text(self, length: int) -> str:
        """The path of the first `length` elements, for messages ('the Root folder' for 0)."""
        if length == 0:
            return "the Root folder"
        return "/" + "/".join(element.text for element in self.elements[:length])


def parse_browse_path(text: str) -> BrowsePath:
    """Parse `text`; raises ValueError saying what is wrong with it."""
    if not text.startswith("/") or text == "/":
        raise ValueError(f"browse path {text!r}: starts with '/' and names at least one node")
    return BrowsePath(text, tuple(_element(text, raw) for raw in _split(text)))


def _split(text: str) -> list[str]:
    """The raw elements between unescaped slashes outside braces."""
    elements: list[str] = []
    current: list[str] = []
    position, braced = 1, False
    while position < len(text):
        char = text[position]
        if braced:
            braced = char != "}"
        elif char == "{" and not current:
            braced = True
        elif char == "&":
            if position + 1 == len(text):
                raise ValueError(f"browse path {text!r}: ends with an unescaped '&'")
            current.append(char)
            position += 1
            char = text[position]
        elif char == "/":
            elements.append("".join(current))
            current = []
            position += 1
            continue
        current.append(char)
        position += 1
    if braced:
        raise ValueError(f"browse path {text!r}: a '{{' namespace URI is not closed")
    elements.append("".join(current))
    return elements


def _element(path: str, raw: str) -> PathElement:
    index: int | None = None
    uri: str | None = None
    rest = raw
    if raw.startswith("{"):
        uri, rest = raw[1:].split("}", 1)
        if not uri:
            raise ValueError(f"browse path {path!r}: empty namespace URI in {raw!r}")
    elif match := _INDEX_PREFIX.match(raw):
        index, rest = int(match.group(1)), raw[match.end() :]
    name = re.sub(r"&(.)", r"\1", rest)
    if not name:
        raise ValueError(f"browse path {path!r}: an element has no name")
    return PathElement(raw, name, index, uri)


def _candidates(path: BrowsePath, namespaces: Sequence[str]) -> list[list[int]] | str:
    """The namespace index of each element for each candidate namespace of unprefixed names.

    A string says why the path cannot resolve on this server.
    """
    fixed: list[int | None] = []
    for position, element in enumerate(path.elements):
        if element.namespace_uri is not None:
            if element.namespace_uri not in namespaces:
                return f"namespace URI {element.namespace_uri!r} is not on the server"
            fixed.append(namespaces.index(element.namespace_uri))
        elif element.namespace_index is not None:
            if element.namespace_index >= len(namespaces):
                return (
                    f"namespace index {element.namespace_index} is not on the server"
                    f" (it has {len(namespaces)})"
                )
            fixed.append(element.namespace_index)
        elif position == 0 and element.name in STANDARD_FOLDERS:
            fixed.append(0)
        else:
            fixed.append(None)
    if all(index is not None for index in fixed):
        return [[index for index in fixed if index is not None]]
    return [
        [shared if index is None else index for index in fixed] for shared in range(len(namespaces))
    ]


def _request(elements: Sequence[PathElement], indices: Sequence[int]) -> ua.BrowsePath:
    return ua.BrowsePath(
        StartingNode=ua.NodeId(ua.Int32(ObjectIds.RootFolder)),
        RelativePath=ua.RelativePath(
            Elements=[
                ua.RelativePathElement(
                    ReferenceTypeId=ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences)),
                    IsInverse=False,  # type: ignore[arg-type]  # asyncua annotates bool as ua.Boolean
                    IncludeSubtypes=True,  # type: ignore[arg-type]
                    TargetName=ua.QualifiedName(element.name, index),
                )
                for element, index in zip(elements, indices, strict=True)
            ]
        ),
    )


async def _translate(
    client: Client, requests: Sequence[ua.BrowsePath], batch: int
) -> list[list[ua.NodeId]]:
    """The local targets of each request (empty: no match), `batch` requests per call."""
    targets: list[list[ua.NodeId]] = []
    for start in range(0, len(requests), batch):
        chunk = list(requests[start : start + batch])
        results = await client.uaclient.translate_browsepaths_to_nodeids(chunk)
        for result in results:
            found = result.Targets if result.StatusCode.is_good() else []
            targets.append(
                [
                    ua.NodeId(
                        t.TargetId.Identifier, t.TargetId.NamespaceIndex, t.TargetId.NodeIdType
                    )
                    for t in found
                    if t.RemainingPathIndex == _LOCAL and not getattr(t.TargetId, "ServerIndex", 0)
                ]
            )
    return targets


async def translate(
    client: Client, paths: Sequence[BrowsePath], namespaces: Sequence[str], batch: int
) -> list[ua.NodeId | str]:
    """Each path's NodeId in this session, or a message saying why it does not resolve.

    `namespaces` is the server's namespace array of this session; `batch` is the most paths
    per TranslateBrowsePathsToNodeIds call (the server's OperationLimit).
    """
    plans = [_candidates(path, namespaces) for path in paths]
    requests = [
        _request(path.elements, indices)
        for path, plan in zip(paths, plans, strict=True)
        if not isinstance(plan, str)
        for indices in plan
    ]
    answers = iter(await _translate(client, requests, batch))
    results: list[ua.NodeId | str] = []
    unmatched: list[tuple[int, BrowsePath, list[list[int]]]] = []
    for path, plan in zip(paths, plans, strict=True):
        if isinstance(plan, str):
            results.append(plan)
            continue
        found = [(indices, targets) for indices in plan if (targets := next(answers))]
        if not found:
            unmatched.append((len(results), path, plan))
            results.append("")
        elif len(found) > 1:
            uris = " and ".join(repr(namespaces[_shared(path, i)]) for i, _ in found)
            results.append(
                f"ambiguous: the names exist in namespaces {uris}; prefix them as {{uri}}Name"
            )
        elif len(found[0][1]) > 1:
            results.append(f"ambiguous: {len(found[0][1])} nodes have this path")
        else:
            results.append(found[0][1][0])
    for position, reason in zip(
        (u[0] for u in unmatched), await _diagnose(client, unmatched, batch), strict=True
    ):
        results[position] = reason
    return results


def _shared(path: BrowsePath, indices: Sequence[int]) -> int:
    """The namespace a candidate gave the unprefixed names of `path`."""
    for position, element in enumerate(path.elements):
        prefixed = element.namespace_index is not None or element.namespace_uri is not None
        if not prefixed and not (position == 0 and element.name in STANDARD_FOLDERS):
            return indices[position]
    return indices[0]


async def _diagnose(
    client: Client, unmatched: Sequence[tuple[int, BrowsePath, list[list[int]]]], batch: int
) -> list[str]:
    """For paths that match nothing: the first element that is not there, and where."""
    requests = [
        _request(path.elements[:length], indices[:length])
        for _, path, plan in unmatched
        for indices in plan
        for length in range(1, len(path.elements))
    ]
    answers = iter(await _translate(client, requests, batch))
    reasons: list[str] = []
    for _, path, plan in unmatched:
        deepest = 0
        for _indices in plan:
            for length in range(1, len(path.elements)):
                if next(answers):
                    deepest = max(deepest, length)
        missing = path.elements[deepest].name
        reasons.append(f"nothing named {missing!r} under {path.prefix_text(deepest)}")
    return reasons


@dataclass(frozen=True, slots=True)
class Discovered:
    """A variable found by `discover`: its browse path (unprefixed names) and `nsu=` NodeId."""

    browse_path: str
    node: str


def _escape(name: str) -> str:
    return re.sub(r"([/:&{])", r"&\1", name)


async def _children(
    client: Client, parents: Sequence[ua.NodeId], batch: int
) -> list[list[ua.ReferenceDescription]]:
    """The hierarchical children of each parent, `batch` parents per Browse call."""
    children: list[list[ua.ReferenceDescription]] = []
    for start in range(0, len(parents), batch):
        described = [
            ua.BrowseDescription(
                NodeId=parent,
                ReferenceTypeId=ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences)),
                ResultMask=ua.UInt32(ua.BrowseResultMask.All),
            )
            for parent in parents[start : start + batch]
        ]
        for result in await client.uaclient.browse(ua.BrowseParameters(NodesToBrowse=described)):
            found = list(result.References) if result.StatusCode.is_good() else []
            point = result.ContinuationPoint
            while point:
                (more,) = await client.uaclient.browse_next(
                    ua.BrowseNextParameters(
                        ReleaseContinuationPoints=False,
                        ContinuationPoints=[point],
                    )
                )
                found.extend(more.References)
                point = more.ContinuationPoint
            children.append(found)
    return children


async def discover(
    client: Client, pattern: str, namespaces: Sequence[str], batch: int
) -> list[Discovered]:
    """The variables whose browse path matches `pattern`, a browse path whose names may hold
    `*`, `?` and `[...]` wildcards, in browse order. Unprefixed names match in any namespace;
    `{uri}` and index prefixes restrict an element to their namespace.

    `batch` is the most nodes per Browse call (the server's MaxNodesPerBrowse).
    """
    level: list[tuple[str, ua.NodeId, ua.NodeClass | None]] = [
        ("", ua.NodeId(ua.Int32(ObjectIds.RootFolder)), None)
    ]
    for element in parse_browse_path(pattern).elements:
        namespace = element.namespace_index
        if element.namespace_uri is not None:
            namespace = (
                namespaces.index(element.namespace_uri)
                if element.namespace_uri in namespaces
                else -1
            )
        parents = [(path, node_id) for path, node_id, _ in level]
        children = await _children(client, [node_id for _, node_id in parents], batch)
        level = [
            (
                f"{path}/{_escape(ref.BrowseName.Name)}",
                ua.NodeId(ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType),
                ref.NodeClass,
            )
            for (path, _), refs in zip(parents, children, strict=True)
            for ref in refs
            if fnmatch.fnmatchcase(ref.BrowseName.Name, element.name)
            and namespace in (None, ref.BrowseName.NamespaceIndex)
        ]
    return [
        Discovered(path, f"nsu={namespaces[node_id.NamespaceIndex]};{_identifier(node_id)}")
        for path, node_id, node_class in level
        if node_class == ua.NodeClass.Variable
    ]


def _identifier(node_id: ua.NodeId) -> str:
    """The `i=`/`s=`/`g=`/`b=` part of a NodeId string."""
    return node_id.to_string().split(";")[-1]
