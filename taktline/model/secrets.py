"""Secrets are referenced, never written inline: `{env: NAME}` or `{file: PATH}`."""

from __future__ import annotations

import os
from typing import Any

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from taktline.model.base import ConfigPath, StrictModel


class SecretError(RuntimeError):
    """A referenced secret cannot be read (variable unset, file missing)."""


class SecretRef(StrictModel):
    """Where a secret lives. Its value is read on demand and never logged or serialised."""

    env: str | None = None
    file: ConfigPath | None = None

    @model_validator(mode="before")
    @classmethod
    def _never_inline(cls, data: Any) -> Any:
        if isinstance(data, str | int | float):
            raise PydanticCustomError(
                "inline_secret",
                "secrets are never written inline: use {env: VARIABLE} or {file: PATH}",
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def reveal(self) -> str:
        """Read the secret now. Raises SecretError naming where it looked (not the value)."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise SecretError(f"environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            return self.file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read secret file {self.file}: {exc.strerror}") from None

    def __repr__(self) -> str:
        where = f"env={self.env}" if self.env else f"file={self.file}"
        return f"SecretRef({where})"
