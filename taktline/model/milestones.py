"""Milestones: a threshold or a step of a counter summed over a scope of the asset tree."""

from __future__ import annotations

from pydantic import Field, model_validator

from taktline.model.base import Slug, StrictModel


class Milestone(StrictModel):
    """Crossed once when the sum of `counter` over every station below `scope` reaches a value.

    `scope` is an asset path prefix: `site`, `site/area`, `site/area/line` or a station path.
    """

    id: Slug
    name: str | None = None
    scope: str
    counter: Slug
    threshold: int | None = Field(default=None, gt=0)
    every: int | None = Field(default=None, gt=0, description="A step: every N units.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Milestone:
        if (self.threshold is None) == (self.every is None):
            raise ValueError("give exactly one of 'threshold' or 'every'")
        return self

    @property
    def scope_parts(self) -> tuple[str, ...]:
        """The scope split into its asset path levels."""
        return tuple(part for part in self.scope.strip("/").split("/") if part)
