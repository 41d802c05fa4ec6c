"""YAML reading that can name the line of each key, so errors can be located.

The data is built straight from the parser's events (`read_yaml`), so a 10,000-node plant never
holds PyYAML's node tree: the tree with two marks per node is five times the size of the data,
and a process's peak memory is what it keeps. The lines of the keys are wanted only for an
error; the first `line_of` composes the tree once to find them. A file with what the event
reader leaves to PyYAML (anchors, aliases, explicit tags, merge keys, complex keys, several
documents, a value a constructor refuses) is read through PyYAML's composer and constructor,
which give the same data or the same error as ever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taktline.config.errors import ConfigError, ConfigIssue

KeyPath = tuple[str | int, ...]
Duplicate = tuple[int, KeyPath]
"""A key given twice in one mapping: its (second) line and its path."""

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it (ten times faster on a 10,000-node plant)."""

_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("null", "bool", "int", "float", "timestamp", "str")
)
"""Implicitly resolved scalar tags the event reader constructs (merge and value keys, and the
`!`/`&`/`*` scalars, go to PyYAML)."""
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_CONSTRUCTOR_ERRORS = (yaml.YAMLError, ValueError, LookupError, TypeError, ArithmeticError)


def format_key_path(path: KeyPath) -> str:
    """`('sites', 0, 'areas')` -> `sites[0].areas`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass(slots=True)
class YamlDocument:
    """A parsed YAML file; the line of every key and item is found on demand."""

    file: Path
    data: Any
    text: str = field(repr=False)
    _lines: dict[KeyPath, int] | None = field(default=None, repr=False)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of the deepest part of `path` that exists in the file."""
        if self._lines is None:
            self._lines = _lines_of(self.text)
        for end in range(len(path), -1, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def issue(self, path: KeyPath, message: str) -> ConfigIssue:
        """A problem at `path` in this file."""
        return ConfigIssue(self.file, self.line_of(path), format_key_path(path), message)


def read_yaml(file: Path) -> YamlDocument:
    """Parse a YAML file; broken YAML, a duplicate key or a non-mapping raises ConfigError."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, None, "", f"cannot read: {exc.strerror}")]) from None
    try:
        try:
            data, duplicates = _read_events(text)
            document = YamlDocument(file, data, text)
        except _Unusual:
            document, duplicates = _read_nodes(file, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([ConfigIssue(file, line, "", f"broken YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, None, "", f"broken YAML: {exc}")]) from None
    issues = [
        ConfigIssue(file, line, format_key_path(path), "duplicate key") for line, path in duplicates
    ]
    if not isinstance(document.data, dict):
        issues.append(ConfigIssue(file, 1, "", "the file must hold a mapping of keys"))
    if issues:
        raise ConfigError(issues)
    return document


# --- PyYAML's composer and constructor: the reference, for lines and unusual files ----------


def _read_nodes(file: Path, text: str) -> tuple[YamlDocument, list[Duplicate]]:
    """Parse once into nodes; the nodes give the lines and duplicates, then the data."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    duplicates: list[Duplicate] = []
    if root is not None:
        _index(root, (), lines, duplicates)
    return YamlDocument(file, data, text, lines), duplicates


def _lines_of(text: str) -> dict[KeyPath, int]:
    """The line of every key and item of a file that parsed before."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if root is not None:
        _index(root, (), lines, [])
    return lines


def _index(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], duplicates: list[Duplicate]
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                duplicates.append((key_node.start_mark.line + 1, (*path, key)))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index(value_node, (*path, key), lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), lines, duplicates)


# --- the event reader ----------------------------------------------------------------------


class _Unusual(Exception):
    """The file uses what the event reader leaves to PyYAML's composer and constructor."""


class _Mapping:
    """A mapping being read: its keys so far, and the key whose value comes next."""

    __slots__ = ("data", "has_key", "key", "key_text", "path", "seen")

    def __init__(self, path: KeyPath) -> None:
        self.data: dict[Any, Any] = {}
        self.path = path
        self.seen: set[str] = set()
        self.key: Any = None
        self.key_text = ""
        self.has_key = False


class _Sequence:
    """A sequence being read."""

    __slots__ = ("data", "path")

    def __init__(self, path: KeyPath) -> None:
        self.data: list[Any] = []
        self.path = path


def _read_events(text: str) -> tuple[Any, list[Duplicate]]:
    """The document's data as PyYAML's safe loader builds it, and the duplicate keys."""
    loader = _Loader(text)
    try:
        return _build(loader)
    finally:
        loader.dispose()


def _build(loader: Any) -> tuple[Any, list[Duplicate]]:
    duplicates: list[Duplicate] = []
    loader.get_event()  # stream start
    if loader.check_event(yaml.StreamEndEvent):
        return None, duplicates
    loader.get_event()  # document start
    stack: list[_Mapping | _Sequence] = []
    while True:
        event = loader.get_event()
        value: Any
        if isinstance(event, yaml.ScalarEvent):
            value = _scalar(loader, event)
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            stack.append(_collection(loader, event, stack[-1] if stack else None))
            continue
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            value = stack.pop().data
        else:  # an alias
            raise _Unusual
        if not stack:
            break
        parent = stack[-1]
        if isinstance(parent, _Sequence):
            parent.data.append(value)
        elif parent.has_key:
            parent.data[parent.key] = value
            parent.has_key = False
        else:
            _take_key(parent, event, value, duplicates)
    loader.get_event()  # document end
    if not loader.check_event(yaml.StreamEndEvent):
        raise _Unusual  # another document: PyYAML says why that is an error
    loader.get_event()
    return value, duplicates


def _take_key(mapping: _Mapping, event: Any, key: Any, duplicates: list[Duplicate]) -> None:
    text = str(event.value)
    if text in mapping.seen:
        duplicates.append((event.start_mark.line + 1, (*mapping.path, text)))
    mapping.seen.add(text)
    mapping.key, mapping.key_text, mapping.has_key = key, text, True


def _collection(loader: Any, event: Any, parent: _Mapping | _Sequence | None) -> Any:
    mapping = isinstance(event, yaml.MappingStartEvent)
    tag = event.tag
    if tag is None or tag == "!":
        kind = yaml.MappingNode if mapping else yaml.SequenceNode
        tag = loader.resolve(kind, None, event.implicit)
    if event.anchor is not None or tag != (_MAP_TAG if mapping else _SEQ_TAG):
        raise _Unusual
    path: KeyPath = ()
    if isinstance(parent, _Sequence):
        path = (*parent.path, len(parent.data))
    elif parent is not None:
        if not parent.has_key:
            raise _Unusual  # a complex key
        path = (*parent.path, parent.key_text)
    return _Mapping(path) if mapping else _Sequence(path)


def _scalar(loader: Any, event: Any) -> Any:
    if event.anchor is not None or event.tag not in (None, "!"):
        raise _Unusual
    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag not in _SCALAR_TAGS:
        raise _Unusual
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    try:
        return loader.yaml_constructors[tag](loader, node)
    except _CONSTRUCTOR_ERRORS as exc:  # PyYAML's own path raises it in its order
        raise _Unusual from exc
