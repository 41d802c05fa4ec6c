"""Load plant, edge and server files into validated models, or raise a located ConfigError."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from taktline.config.errors import ConfigError, ConfigIssue
from taktline.config.references import check_plant
from taktline.config.settings import EdgeSettings, ServerSettings
from taktline.config.yaml_source import KeyPath, YamlDocument, read_yaml
from taktline.model.plant import Plant

ModelT = TypeVar("ModelT", bound=BaseModel)
ConfigKind = Literal["plant", "edge", "server"]


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """An edge's settings with the plant they name."""

    settings: EdgeSettings
    plant: Plant


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """A server's settings with the plant they name."""

    settings: ServerSettings
    plant: Plant


def load_plant(file: Path) -> Plant:
    """Read and check a plant file."""
    document = read_yaml(file)
    plant = _validate(document, Plant)
    problems = check_plant(plant)
    if problems:
        raise ConfigError([document.issue(path, message) for path, message in problems])
    return plant


def load_edge_config(file: Path) -> EdgeConfig:
    """Read an edge file and the plant file it names."""
    document = read_yaml(file)
    settings = _validate(document, EdgeSettings)
    plant = load_plant(settings.plant)
    known = {source.id for source in plant.sources}
    unknown = [
        document.issue(("sources", index), f"the plant has no source '{source_id}'")
        for index, source_id in enumerate(settings.sources or [])
        if source_id not in known
    ]
    if unknown:
        raise ConfigError(unknown)
    return EdgeConfig(settings, plant)


def load_server_config(file: Path) -> ServerConfig:
    """Read a server file and the plant file it names."""
    document = read_yaml(file)
    settings = _validate(document, ServerSettings)
    return ServerConfig(settings, load_plant(settings.plant))


def detect_kind(file: Path) -> ConfigKind:
    """Tell a plant file (has `sites`) from an edge file (has `edge_id`) and a server file."""
    data = read_yaml(file).data
    if "sites" in data:
        return "plant"
    return "edge" if "edge_id" in data else "server"


def _validate(document: YamlDocument, model: type[ModelT]) -> ModelT:
    context = {"base_dir": document.file.resolve().parent}
    try:
        return model.model_validate(document.data, context=context)
    except ValidationError as exc:
        raise ConfigError(_issues(document, exc, _known_keys(model))) from None


def _issues(document: YamlDocument, exc: ValidationError, known: set[str]) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        path = _yaml_path(document.data, error["loc"])
        issues.append(document.issue(path, _message(error, path, known)))
    return issues


def _yaml_path(data: Any, loc: tuple[int | str, ...]) -> KeyPath:
    """Map pydantic's error location onto the file's keys, dropping union tags."""
    path: list[str | int] = []
    node = data
    for part in loc:
        is_union_tag = isinstance(node, dict) and part in (node.get("type"), node.get("api"))
        if is_union_tag and part not in node:
            continue  # discriminated-union tag, not a key of the file
        path.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(path)


def _message(error: Any, path: KeyPath, known: set[str]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        hint = difflib.get_close_matches(key, sorted(known), n=1)
        return f"unknown key '{key}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
    if kind == "missing":
        return "missing required key"
    message = str(error["msg"])
    if kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    if kind != "inline_secret" and not isinstance(error.get("input"), dict | list | None):
        message += f" (got {error['input']!r:.60})"
    return message


def _known_keys(model: type[BaseModel]) -> set[str]:
    """Every key name the model tree accepts, for 'did you mean' hints."""
    keys: set[str] = set()
    pending: list[Any] = [model]
    seen: set[Any] = set()
    while pending:
        item = pending.pop()
        if item in seen:
            continue
        seen.add(item)
        if isinstance(item, type) and issubclass(item, BaseModel):
            for name, field in item.model_fields.items():
                keys.add(name)
                pending.append(field.annotation)
        pending.extend(get_args(item))
    return keys
