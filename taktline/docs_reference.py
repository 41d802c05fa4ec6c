"""docs/plant-reference.md: every key of the plant, edge and server files, from the models.

The text comes from one JSON Schema of the three root models (`Plant`, `EdgeSettings`,
`ServerSettings`), generated with the defaults of `default_factory` fields filled in (pydantic
leaves them out), so a nested section's default such as the edge's `http: {port: 8081}` shows.
Each model is one section with a table (key, type, default, description), rendered under the
first file kind that reaches it, and a line naming every key path where it appears. Key order is
the models' (the order of a file); sections follow the first path that reaches them; paths are
sorted. `taktline docs reference` writes the file; tests/test_docs_reference.py keeps it current.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema
from pydantic_core import core_schema

from taktline.config.settings import EdgeSettings, ServerSettings
from taktline.model.plant import Plant

REFERENCE_FILE = Path("docs/plant-reference.md")
"""Where the reference lives, relative to the repository root."""
REGENERATE = "taktline docs reference --out docs/plant-reference.md"
SLUG_PATTERN = "^[a-z0-9][a-z0-9_-]{0,62}$"
ROOTS: tuple[tuple[str, str, type[BaseModel]], ...] = (
    ("plant", "Plant file", Plant),
    ("edge", "Edge file", EdgeSettings),
    ("server", "Server file", ServerSettings),
)
"""(kind, heading, root model) of each file kind, in the order of the document."""
_FORMATS = {
    "date": "date (`YYYY-MM-DD`)",
    "time": 'time (`"HH:MM"`)',
    "date-time": "date-time (ISO 8601)",
    "path": "path",
}
Schema = dict[str, Any]


class _WithFactoryDefaults(GenerateJsonSchema):
    """JSON Schema whose `default` also covers `default_factory` fields."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return super().get_default_value(schema)


def reference_schema() -> Schema:
    """The combined JSON Schema: `$defs` of every model, `roots` by file kind."""
    refs, schema = models_json_schema(
        [(model, "validation") for _, _, model in ROOTS], schema_generator=_WithFactoryDefaults
    )
    roots = {kind: refs[(model, "validation")]["$ref"] for kind, _, model in ROOTS}
    return {"$defs": schema["$defs"], "roots": roots}


def render_reference() -> str:
    """The Markdown text of docs/plant-reference.md."""
    schema = reference_schema()
    defs: dict[str, Schema] = schema["$defs"]
    roots = {kind: _name(ref) for kind, ref in schema["roots"].items()}
    anchors = {roots[kind]: heading.lower().replace(" ", "-") for kind, heading, _ in ROOTS}
    places: dict[str, dict[int, set[str]]] = {}
    order: list[tuple[str, str]] = []  # (file kind, model) in the order they are first reached
    for rank, (kind, _, _) in enumerate(ROOTS):
        for name, path in _reachable(defs, roots[kind], ""):
            if name not in places:
                order.append((kind, name))
            places.setdefault(name, {}).setdefault(rank, set()).add(path)
    out = [_INTRO.format(regenerate=REGENERATE, slug=SLUG_PATTERN)]
    for kind, heading, _ in ROOTS:
        root = roots[kind]
        out += [f"## {heading}", "", *_paragraphs(defs[root]), ""]
        out += _table(defs, defs[root], anchors)
        for owner, name in order:
            if owner == kind and name not in roots.values():
                out += [f"### {name}", "", *_paragraphs(defs[name]), "", _where(places[name]), ""]
                out += _table(defs, defs[name], anchors)
    return "\n".join(out).rstrip() + "\n"


def write_reference(path: Path = REFERENCE_FILE) -> Path:
    """Write the reference to `path`; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_reference(), encoding="utf-8")
    return path


_INTRO = """\
# Plant, edge and server file reference

<!-- Generated from the pydantic models by taktline/docs_reference.py: do not edit.
     Regenerate with `{regenerate}`. -->

Every key of the three YAML files, generated from the models that validate them
(`taktline.model.Plant`, `taktline.config.EdgeSettings`, `taktline.config.ServerSettings`);
`taktline schema plant|edge|server` prints the same as JSON Schema. The working introduction is
[configuration.md](configuration.md); [getting-started.md](getting-started.md) builds the files
step by step. Regenerate this page with `{regenerate}`
(tests/test_docs_reference.py fails when it is out of date).

How to read the tables:

- **required**: the key must be written; every other key may be left out and takes its default.
  "none" means the feature is off (or the value is unset) when the key is left out.
- **slug**: an id of lower-case letters, digits, `-` and `_`, starting with a letter or digit, at
  most 63 characters (`{slug}`): usable in MQTT topics, InfluxDB tags and URLs.
- **path**: a file or folder, relative to the file it is written in.
- **secret** ([SecretRef](#secretref)): `{{env: VARIABLE}}` or `{{file: PATH}}`, never the value.
- A key of another model links to that model's section; "each key at its default" means the
  section's own defaults apply.
- Unknown keys are errors (with a "did you mean"), so a typo never goes unnoticed.
"""


def _where(places: dict[int, set[str]]) -> str:
    """Where a model appears: `In the plant file at `a`, `b`; in the edge file at `c`.`"""
    texts = [
        f"in the {ROOTS[rank][1].lower()} at " + ", ".join(f"`{path}`" for path in sorted(paths))
        for rank, paths in sorted(places.items())
    ]
    text = "; ".join(texts)
    return text[0].upper() + text[1:] + "."


def _name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _reachable(defs: dict[str, Schema], root: str, prefix: str) -> Iterator[tuple[str, str]]:
    """(model, key path) of every model below `root`, depth first in key order."""
    for key, prop in defs[root].get("properties", {}).items():
        for suffix, ref in _refs(prop):
            path = f"{prefix}{key}{suffix}"
            yield _name(ref), path
            yield from _reachable(defs, _name(ref), f"{path}.")


def _refs(schema: Schema) -> Iterator[tuple[str, str]]:
    """(path suffix, $ref) of the models a property holds: `[]` for list items, `.<key>` for
    map values."""
    if "$ref" in schema:
        yield "", schema["$ref"]
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        yield from _refs(option)
    if "items" in schema:
        yield from (("[]" + suffix, ref) for suffix, ref in _refs(schema["items"]))
    for value in _map_values(schema):
        yield from ((".<name>" + suffix, ref) for suffix, ref in _refs(value))


def _map_values(schema: Schema) -> list[Schema]:
    values = list(schema.get("patternProperties", {}).values())
    extra = schema.get("additionalProperties")
    return [*values, extra] if isinstance(extra, dict) else values


def _paragraphs(schema: Schema) -> list[str]:
    text = schema.get("description", "")
    paragraphs = [" ".join(part.split()) for part in text.split("\n\n") if part.strip()]
    return [line for paragraph in paragraphs for line in (paragraph, "")][:-1]


def _table(defs: dict[str, Schema], schema: Schema, anchors: dict[str, str]) -> list[str]:
    required = set(schema.get("required", []))
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, prop in schema.get("properties", {}).items():
        default = "required" if key in required else _default(defs, prop)
        description = " ".join(prop.get("description", _model_summary(defs, prop)).split())
        cells = (f"`{key}`", _type(prop, anchors), default, description)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return [*rows, ""]


def _model_summary(defs: dict[str, Schema], schema: Schema) -> str:
    """The first paragraph of the model a key holds (not a secret's): its description."""
    names = {_name(ref) for _, ref in _refs(schema)} - {"SecretRef"}
    if len(names) != 1:
        return ""
    return str(defs[names.pop()].get("description", "")).split("\n\n")[0]


def _type(schema: Schema, anchors: dict[str, str]) -> str:
    if "$ref" in schema:
        name = _name(schema["$ref"])
        text = "secret" if name == "SecretRef" else name
        return f"[{text}](#{anchors.get(name, name.lower())})"
    options = [
        o for o in schema.get("oneOf", []) + schema.get("anyOf", []) if o != {"type": "null"}
    ]
    if options:
        tag = schema.get("discriminator", {}).get("propertyName")
        tags = {
            ref: value for value, ref in schema.get("discriminator", {}).get("mapping", {}).items()
        }
        texts = [
            _type(o, anchors) + (f" (`{tag}: {tags[o['$ref']]}`)" if tag else "") for o in options
        ]
        return " or ".join(texts)
    if "const" in schema:
        return f"`{_yaml(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{_yaml(value)}`" for value in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        text = f"list of {_grouped(_type(schema.get('items', {}), anchors))}"
    elif kind == "object":
        values = _map_values(schema)
        key = "slug" if SLUG_PATTERN in schema.get("patternProperties", {}) else "name"
        text = f"map of {key} to {_grouped(_type(values[0], anchors))}" if values else "map"
    elif kind == "string" and "format" in schema:
        text = _FORMATS.get(schema["format"], str(schema["format"]))
    elif kind == "string" and schema.get("pattern") == SLUG_PATTERN:
        text = "slug"
    elif kind == "string" and "pattern" in schema:
        text = f"string matching `{schema['pattern']}`"
    else:
        text = kind if kind in ("integer", "number", "boolean", "string") else "any"
    return ", ".join([text, *_constraints(schema)])


def _grouped(text: str) -> str:
    return f"({text})" if " or " in text else text


def _constraints(schema: Schema) -> list[str]:
    low, high = schema.get("minimum"), schema.get("maximum")
    found = []
    if low is not None and high is not None:
        found.append(f"{_yaml(low)} to {_yaml(high)}")
    else:
        bounds = (
            ("exclusiveMinimum", ">"),
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
        )
        found += [f"{sign} {_yaml(schema[key])}" for key, sign in bounds if key in schema]
    for key, unit in (("minItems", "item"), ("minProperties", "entry"), ("minLength", "char")):
        if schema.get(key):
            found.append(f"at least {schema[key]} {unit}{'s' if schema[key] != 1 else ''}")
    return found


def _default(defs: dict[str, Schema], schema: Schema) -> str:
    if "default" not in schema:
        return "required"
    value = schema["default"]
    if value is None:
        return "none"
    refs = [ref for suffix, ref in _refs(schema) if suffix == ""]
    if isinstance(value, dict) and refs:
        own = _implied_defaults(defs[_name(refs[0])])
        changed = {key: item for key, item in value.items() if own.get(key) != item}
        return (
            f"`{_yaml(changed)}`, other keys at their defaults"
            if changed
            else ("each key at its default")
        )
    return f"`{_yaml(value)}`"


def _implied_defaults(schema: Schema) -> dict[str, Any]:
    return {
        key: prop["default"]
        for key, prop in schema.get("properties", {}).items()
        if "default" in prop
    }


def _yaml(value: Any) -> str:
    """A value as it is written in a YAML file (flow style for lists and maps)."""
    if isinstance(value, str):
        return value
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n...\n").strip()
