"""One Grafana annotation per thing (a milestone crossing, an alert), across retries, restarts
and server replicas.

The thing is named by its key tags (`milestone:<id>` with `crossing:<value>`; `alert:<id>`).
It is looked up by them first, within its time range, and not added when found. After adding it
is looked up again; when there are several (replicas raced, or one stopped between adding and
cleaning up), all but the lowest id are deleted. Grafana's ids grow, so the lowest is one every
replica sees after its own add: all keep the same one. A duplicate another replica deleted
already (404) is fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from server.grafana.client import GrafanaError, call, close_api, grafana_api
from taktline.config.settings import GrafanaSettings

FIND_LIMIT = 100
"""Most annotations one look-up returns (duplicates of one thing: one per racing replica)."""


@dataclass(frozen=True, slots=True)
class Wanted:
    """An annotation as it should be in Grafana: a point (`time_ms == time_end_ms`) or a region."""

    time_ms: int
    time_end_ms: int
    tags: tuple[str, ...]
    text: str
    key_tags: tuple[str, ...]
    """The tags that identify the thing (a subset of `tags`)."""


class ExactlyOnce:
    """`async with ExactlyOnce(settings) as grafana: await grafana.ensure(wanted)`.

    grafana-client's API is built at the first call, so that a token that cannot be read is a
    GrafanaError the caller retries, like an unreachable Grafana."""

    def __init__(self, settings: GrafanaSettings):
        self.settings = settings
        self._api: Any = None
        """grafana-client's AsyncGrafanaApi (untyped), built at the first call."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._api is not None:
            await close_api(self._api)
            self._api = None

    async def ensure(self, wanted: Wanted) -> int:
        """Make sure exactly one annotation has `wanted.key_tags`; returns its id. Raises
        GrafanaError."""
        found = await self._find(wanted)
        if not found:
            await call(
                "add",
                self._annotations().add_annotation(
                    time_from=wanted.time_ms,
                    time_to=wanted.time_end_ms,
                    tags=list(wanted.tags),
                    text=wanted.text,
                ),
            )
            found = await self._find(wanted)
            if not found:
                raise GrafanaError("added, then not found")
        keep, *duplicates = sorted(found)
        for duplicate in duplicates:
            await self._delete(duplicate)
        return keep

    async def _find(self, wanted: Wanted) -> list[int]:
        """The ids of the annotations with the key tags in the wanted time range."""
        request = self._annotations().find_annotations(
            time_from=wanted.time_ms,
            time_to=wanted.time_end_ms,
            tags=list(wanted.key_tags),
            limit=FIND_LIMIT,
        )
        answer = await call("find", request)
        if not isinstance(answer, list) or not all(_has_id(item) for item in answer):
            raise GrafanaError("find: Grafana answered something other than a list of annotations")
        return [item["id"] for item in answer]

    async def _delete(self, annotation_id: int) -> None:
        try:
            await call(
                f"delete {annotation_id}",
                self._annotations().delete_annotations_by_id(annotations_id=annotation_id),
            )
        except GrafanaError as exc:
            if exc.status != 404:
                raise

    def _annotations(self) -> Any:
        """grafana-client's (untyped) annotations element."""
        if self._api is None:
            self._api = grafana_api(self.settings)
        return self._api.annotations


def _has_id(item: object) -> bool:
    return isinstance(item, dict) and type(item.get("id")) is int
