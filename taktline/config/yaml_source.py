"""YAML reading that remembers where each key stands, so errors can name the line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taktline.config.errors import ConfigError, ConfigIssue

KeyPath = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when PyYAML was built with it (ten times faster on a 10,000-node plant)."""


def format_key_path(path: KeyPath) -> str:
    """`('sites', 0, 'areas')` -> `sites[0].areas`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass(slots=True)
class YamlDocument:
    """A parsed YAML file with the line of every key and item."""

    file: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of the deepest part of `path` that exists in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
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
    loader = _Loader(text)
    try:
        root = loader.get_single_node()  # parsed once; the nodes give the lines, then the data
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([ConfigIssue(file, line, "", f"broken YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, None, "", f"broken YAML: {exc}")]) from None
    finally:
        loader.dispose()
    document = YamlDocument(file, data)
    issues: list[ConfigIssue] = []
    if root is not None:
        _index(root, (), document, issues)
    if not isinstance(data, dict):
        issues.append(ConfigIssue(file, 1, "", "the file must hold a mapping of keys"))
    if issues:
        raise ConfigError(issues)
    return document


def _index(node: yaml.Node, path: KeyPath, doc: YamlDocument, issues: list[ConfigIssue]) -> None:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line = key_node.start_mark.line + 1
                issues.append(
                    ConfigIssue(doc.file, line, format_key_path((*path, key)), "duplicate key")
                )
            seen.add(key)
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            _index(value_node, (*path, key), doc, issues)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), doc, issues)
