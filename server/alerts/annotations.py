"""Alert history as Grafana annotations: one region per resolved alert, exactly once.

Each resolved alert becomes one organization annotation from `raised_at` to `resolved_at`
(epoch ms) with the text "Final assembly line 1 stopped: no unit for 5 min (takt 60 s) ·
resolved: ... · acknowledged by Anna Berger" and the tags

    alert                          every alert annotation (what dashboards query)
    rule:<rule>, line:<line>       the rule, and each line of the alert (filter by either)
    severity:<severity>            info, warning or critical
    alert:<id>                     what identifies the alert, as the state store's id

The store is the queue (`AlertStore.unannotated`): a resolved alert waits there until Grafana
has its annotation, across restarts. As with milestone crossings
(`server.grafana.annotations`), an alert is looked up by its `alert:<id>` tag within its own
time range first (so that an annotation of another store's alert with the same id does not
count), added when missing, looked up again, and duplicates but the lowest id are deleted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from server.alerts.alert_store import AlertStore
from server.alerts.records import Alert
from server.alerts.routing import name_of
from server.grafana.client import GrafanaError, call, close_api, grafana_api
from server.store import StoreError
from taktline.config.settings import GrafanaSettings
from taktline.model.plant import Plant

log = logging.getLogger(__name__)

TAG = "alert"
FIND_LIMIT = 100
MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class AlertAnnotationError(RuntimeError):
    """Grafana did not take, find or delete an alert's annotation."""


@dataclass(frozen=True, slots=True)
class AlertAnnotation:
    """What Grafana is sent for one resolved alert."""

    time_ms: int
    time_end_ms: int
    tags: tuple[str, ...]
    text: str

    @property
    def key_tag(self) -> str:
        """`alert:<id>`."""
        return self.tags[-1]


def alert_annotation(plant: Plant, alert: Alert) -> AlertAnnotation:
    """One resolved alert as one region annotation."""
    end = alert.resolved_at if alert.resolved_at is not None else alert.raised_at
    tags = (
        TAG,
        f"rule:{alert.key.rule}",
        *(f"line:{line}" for line in alert.lines),
        f"severity:{alert.severity}",
        f"alert:{alert.id}",
    )
    text = [alert.message]
    if alert.resolved_message:
        text.append(f"resolved: {alert.resolved_message}")
    if alert.acknowledged_by is not None:
        text.append(f"acknowledged by {name_of(plant, alert.acknowledged_by)}")
    return AlertAnnotation(
        _ms(alert.raised_at.timestamp()), _ms(end.timestamp()), tags, " · ".join(text)
    )


class AlertAnnotations:
    """`async with AlertAnnotations(settings, plant) as grafana: await grafana.annotate(a)`."""

    def __init__(self, settings: GrafanaSettings, plant: Plant):
        self.settings = settings
        self.plant = plant
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

    async def annotate(self, alert: Alert) -> int:
        """Make sure the alert has exactly one annotation; returns its id. Raises
        AlertAnnotationError."""
        wanted = alert_annotation(self.plant, alert)
        try:
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
        except GrafanaError as exc:
            raise AlertAnnotationError(
                f"Grafana {self.settings.url}, annotation of alert {alert.id}: {exc}"
            ) from None
        return keep

    async def _find(self, wanted: AlertAnnotation) -> list[int]:
        request = self._annotations().find_annotations(
            time_from=wanted.time_ms,
            time_to=wanted.time_end_ms,
            tags=[TAG, wanted.key_tag],
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
        if self._api is None:
            self._api = grafana_api(self.settings)
        return self._api.annotations


class AlertAnnotator:
    """Annotates resolved alerts from the store until cancelled (`run`); `wake` after a
    resolve. Failures are logged once, the recovery once, and retried with backoff."""

    def __init__(
        self,
        store: AlertStore,
        settings: GrafanaSettings,
        plant: Plant,
        *,
        min_backoff_s: float = MIN_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ):
        self.store = store
        self.settings = settings
        self.plant = plant
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.annotated = 0
        self._due = asyncio.Event()

    def wake(self) -> None:
        """An alert was resolved: annotate it now."""
        self._due.set()

    async def run(self) -> None:
        """Annotate what is pending, then wait to be woken; until cancelled."""
        backoff = self.min_backoff_s
        failing = False
        async with AlertAnnotations(self.settings, self.plant) as grafana:
            while True:
                self._due.clear()
                try:
                    while pending := await asyncio.to_thread(self.store.unannotated):
                        for alert in pending:
                            await grafana.annotate(alert)
                            await asyncio.to_thread(self.store.mark_annotated, alert.id)
                            self.annotated += 1
                except (AlertAnnotationError, StoreError) as exc:
                    if not failing:
                        log.warning("alerts: cannot annotate alerts in Grafana (%s)", exc)
                        failing = True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
                    continue
                if failing:
                    log.info("alerts: annotating alerts in Grafana again")
                    failing = False
                backoff = self.min_backoff_s
                await self._due.wait()


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _has_id(item: object) -> bool:
    return isinstance(item, dict) and type(item.get("id")) is int
