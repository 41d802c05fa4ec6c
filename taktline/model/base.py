"""Shared building blocks of the plant model: strict models, identifiers, config paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationInfo

Slug = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$"),
]
"""An identifier usable in MQTT topics, InfluxDB tags and URLs: lower case, digits, '-' and '_'."""


class StrictModel(BaseModel):
    """Immutable model that rejects unknown keys, so a typo in a config file is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_against_config_dir(value: Path, info: ValidationInfo) -> Path:
    """Relative paths in a config file are relative to that file's folder."""
    base = (info.context or {}).get("base_dir") if isinstance(info.context, dict) else None
    if value.is_absolute() or base is None:
        return value
    return (Path(base) / value).resolve()


ConfigPath = Annotated[Path, AfterValidator(_resolve_against_config_dir)]
"""A file path from a config file, resolved against the folder of that file."""
