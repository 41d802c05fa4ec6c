"""docs/plant-reference.md: current with the models, and complete (every key of every model)."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taktline.cli import main
from taktline.docs_reference import REFERENCE_FILE, REGENERATE, ROOTS, render_reference
from tests.conftest import REPO

COMMITTED = REPO / REFERENCE_FILE


def _sections(text: str) -> dict[str, str]:
    """Section heading (without the #s) -> its text."""
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _rows(section: str) -> dict[str, list[str]]:
    """Key -> the other cells of its table row."""
    rows = {}
    for line in section.splitlines():
        match = re.match(r"^\| `([^`]+)` \| (.*) \|$", line)
        if match:
            rows[match[1]] = re.split(r"(?<!\\) \| ", match[2])
    return rows


def _models(model: type[BaseModel]) -> set[type[BaseModel]]:
    """The model and every model its fields hold, read from the annotations (not the schema)."""
    found: set[type[BaseModel]] = set()
    pending: list[Any] = [model]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in found:
                continue
            found.add(item)
            pending += [field.annotation for field in item.model_fields.values()]
        pending += typing.get_args(item)
    return found


def test_committed_reference_is_up_to_date() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_reference(), (
        f"{REFERENCE_FILE} is out of date with the models; run: {REGENERATE}"
    )


def test_every_key_of_every_model_has_a_row() -> None:
    sections = _sections(render_reference())
    for _, heading, root in ROOTS:
        for model in _models(root):
            title = heading if model is root else model.__name__
            assert title in sections, f"no section for {model.__name__}"
            rows = _rows(sections[title])
            keys = [field.alias or name for name, field in model.model_fields.items()]
            assert list(rows) == keys, title


def test_types_defaults_and_enums_are_shown() -> None:
    sections = _sections(render_reference())
    edge = _rows(sections["Edge file"])
    assert edge["http"][1] == "`{port: 8081}`, other keys at their defaults"  # a default_factory
    assert edge["plant"][1] == "required"
    assert edge["influxdb"][0].startswith("[InfluxV1](#influxv1) (`api: v1`) or [InfluxV2]")
    counter = _rows(sections["Counter"])
    assert counter["bits"][:2] == ["one of `16`, `32`, `64`", "none"]
    assert counter["semantics"][:2] == ["one of `total`, `increment`", "`total`"]
    outbox = _rows(sections["OutboxSettings"])
    assert outbox["max_records"][:2] == ["integer, ≥ 1000", "`10000000`"]
    assert outbox["when_full"][0] == "one of `block`, `drop_oldest`"
    shift = _rows(sections["Shift"])
    assert shift["days"][1] == "`[mon, tue, wed, thu, fri, sat, sun]`"
    assert "In the plant file at `sources[].broker`" in sections["MqttConnection"]
    assert _rows(sections["Server file"])["api_token"][0] == "[secret](#secretref)"


def test_cli_writes_the_same_text(tmp_path: Path) -> None:
    out = tmp_path / "reference.md"
    assert main(["docs", "reference", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_reference()
