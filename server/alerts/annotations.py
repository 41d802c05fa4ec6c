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
(`server.grafana.annotations`), exactly one per alert (`server.grafana.exactly_once`): looked
up by its `alert:<id>` tag within its own time range, so that an annotation of another store's
alert with the same id does not count.
"""

from __future__ import annotations

import asyncio
import logging

from server.alerts.alert_store import AlertStore
from server.alerts.records import Alert
from server.alerts.routing import name_of
from server.database import StoreError
from server.grafana.client import GrafanaError
from server.grafana.exactly_once import ExactlyOnce, Wanted
from server.retrying import drain_forever
from taktline.config.settings import GrafanaSettings
from taktline.model.plant import Plant

log = logging.getLogger(__name__)

TAG = "alert"
MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


def alert_annotation(plant: Plant, alert: Alert) -> Wanted:
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
    start_ms, end_ms = _ms(alert.raised_at.timestamp()), _ms(end.timestamp())
    return Wanted(start_ms, end_ms, tags, " · ".join(text), (TAG, tags[-1]))


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
        async with ExactlyOnce(self.settings) as grafana:

            async def annotate_pending() -> None:
                while pending := await asyncio.to_thread(self.store.unannotated):
                    for alert in pending:
                        await grafana.ensure(alert_annotation(self.plant, alert))
                        await asyncio.to_thread(self.store.mark_annotated, alert.id)
                        self.annotated += 1

            await drain_forever(
                annotate_pending,
                self._due,
                errors=(GrafanaError, StoreError),
                log=log,
                failing_text="alerts: cannot annotate alerts in Grafana (%s)",
                recovered_text="alerts: annotating alerts in Grafana again",
                min_backoff_s=self.min_backoff_s,
                max_backoff_s=self.max_backoff_s,
            )


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
