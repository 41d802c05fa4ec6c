"""What a milestone crossing makes: stored first, then a live-bus message, an InfluxDB point and
a Grafana annotation.

Up to four loops, none of which blocks the live-bus listener or another loop:
- store: the detector's changes (counter totals and new crossings) go to the state store in one
  transaction, at once after a crossing (`wake`) and every second for totals. When the store
  fails they go back to the detector and are tried again.
- publish: each stored crossing not yet published goes to `taktline/v1/_milestones/{id}`
  (QoS 1, not retained), then is marked published. Its own MQTT connection, reconnected with
  backoff.
- write (when `influxdb` is configured): each stored crossing not yet written goes to InfluxDB
  (`server.milestone_influx`), then is marked written; a failed write is retried with backoff.
- annotate (when `grafana` is configured): each stored crossing not yet annotated becomes one
  Grafana annotation (`server.grafana.annotations`, which skips one that is there already), then
  is marked annotated; a failure is retried with backoff.

The store is the queue: what is pending survives a restart and is sent then. A crash between
sending and marking sends a crossing again after the restart: the InfluxDB point is the same
point; the live-bus message is the same body (screens may dedupe on milestone and value); the
annotation is found and not added again.
Failures are logged once, and the recovery once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiomqtt

from server.crossings import CrossingDetector
from server.database import StoreError
from server.grafana.annotations import PlantNames, annotation
from server.grafana.client import GrafanaError
from server.grafana.exactly_once import ExactlyOnce
from server.influx_http import InfluxHttpWriter, InfluxWriteError
from server.milestone_influx import point
from server.retrying import drain_forever
from server.store import StateStore
from taktline.config.settings import GrafanaSettings, InfluxV1, InfluxV2
from taktline.livebus import MilestoneMessage, milestone_topic
from taktline.model.connections import MqttConnection
from taktline.model.plant import Plant
from taktline.mqttclient import mqtt_client

log = logging.getLogger(__name__)

STORE_EVERY_S = 1.0
MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class MilestoneOutputs:
    """Stores, publishes, writes and annotates the crossings of `detector`; `run()` until
    cancelled. `plant` names the lines and time zones in the annotations' text."""

    def __init__(
        self,
        detector: CrossingDetector,
        store: StateStore,
        live_bus: MqttConnection,
        influxdb: InfluxV1 | InfluxV2 | None,
        *,
        grafana: GrafanaSettings | None = None,
        plant: Plant | None = None,
        every_s: float = STORE_EVERY_S,
        min_backoff_s: float = MIN_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ):
        self.detector = detector
        self.store = store
        self.live_bus = live_bus
        self.influxdb = influxdb
        if grafana is not None and plant is None:
            raise ValueError("Grafana annotations need the plant (line names, time zones)")
        self.grafana = grafana
        self.plant = plant
        self.every_s = every_s
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.published = 0
        self.written = 0
        self.annotated = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._publish_due = asyncio.Event()
        self._write_due = asyncio.Event()
        self._annotate_due = asyncio.Event()
        self._store_failing = False

    def wake(self) -> None:
        """A crossing was made: store it (and send it) now."""
        self._wake.set()

    async def restore(self) -> None:
        """Prime the detector from the store (before the first live-bus message)."""
        totals = await asyncio.to_thread(self.store.milestone_totals)
        crossed = await asyncio.to_thread(self.store.crossed)
        self.detector.restore(totals, crossed)

    async def run(self) -> None:
        """Store, publish, write and annotate until cancelled."""
        loops = [self._store_loop(), self._publish_loop()]
        async with contextlib.AsyncExitStack() as stack:
            if self.influxdb is not None:
                influx = await stack.enter_async_context(InfluxHttpWriter(self.influxdb))
                loops.append(self._write_loop(influx))
            if self.grafana is not None and self.plant is not None:
                grafana = await stack.enter_async_context(ExactlyOnce(self.grafana))
                loops.append(self._annotate_loop(grafana, PlantNames.of(self.plant)))
            await asyncio.gather(*loops)

    async def flush(self) -> None:
        """Store the detector's changes; raises StoreError after giving them back."""
        async with self._lock:
            changes = self.detector.take_changes()
            if not changes:
                return
            try:
                await asyncio.to_thread(self.store.save_milestones, changes)
            except StoreError as exc:
                self.detector.give_back(changes)
                if not self._store_failing:
                    log.error("milestones: %s; crossings are kept in memory and retried", exc)
                    self._store_failing = True
                raise
            if self._store_failing:
                log.info("milestones: the state store takes crossings again")
                self._store_failing = False
            if changes.crossings:
                for crossing in changes.crossings:
                    log.info(
                        "milestone %s crossed: %s at %s (line %s)",
                        crossing.milestone,
                        f"{crossing.value:,}",
                        crossing.ts.isoformat(),
                        crossing.counter.line,
                    )
                self._publish_due.set()
                self._write_due.set()
                self._annotate_due.set()

    async def _store_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.every_s)
            self._wake.clear()
            with contextlib.suppress(StoreError):  # logged once in flush; retried
                await self.flush()

    async def _publish_loop(self) -> None:
        backoff = self.min_backoff_s
        failing = False
        identifier = f"{self.live_bus.client_id}-milestones" if self.live_bus.client_id else None
        while True:
            try:
                async with mqtt_client(self.live_bus, identifier=identifier) as client:
                    while True:
                        self._publish_due.clear()
                        for crossing in await asyncio.to_thread(
                            self.store.pending_crossings, "published"
                        ):
                            body = MilestoneMessage(
                                milestone=crossing.milestone,
                                name=crossing.name,
                                value=crossing.value,
                                scope=crossing.scope,
                                line=crossing.counter.line,
                                ts=crossing.ts,
                            )
                            await client.publish(
                                milestone_topic(crossing.milestone),
                                body.model_dump_json().encode(),
                                qos=1,
                                retain=False,
                            )
                            await asyncio.to_thread(
                                self.store.mark_crossings, "published", [crossing.key]
                            )
                            self.published += 1
                        if failing:
                            log.info("milestones: publishing on the live bus again")
                            failing = False
                        backoff = self.min_backoff_s
                        await self._publish_due.wait()
            except (aiomqtt.MqttError, StoreError) as exc:
                if not failing:
                    log.warning("milestones: cannot publish crossings (%s); retrying", exc)
                    failing = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _write_loop(self, influx: InfluxHttpWriter) -> None:
        async def write_pending() -> None:
            pending = await asyncio.to_thread(self.store.pending_crossings, "written")
            if pending:
                await influx.write(point(crossing) for crossing in pending)
                keys = [crossing.key for crossing in pending]
                await asyncio.to_thread(self.store.mark_crossings, "written", keys)
                self.written += len(pending)

        await drain_forever(
            write_pending,
            self._write_due,
            errors=(InfluxWriteError, StoreError),
            log=log,
            failing_text="milestones: cannot write crossings to InfluxDB (%s)",
            recovered_text="milestones: writing crossings to InfluxDB again",
            min_backoff_s=self.min_backoff_s,
            max_backoff_s=self.max_backoff_s,
        )

    async def _annotate_loop(self, grafana: ExactlyOnce, names: PlantNames) -> None:
        async def annotate_pending() -> None:
            for crossing in await asyncio.to_thread(self.store.pending_crossings, "annotated"):
                await grafana.ensure(annotation(crossing, names))
                await asyncio.to_thread(self.store.mark_crossings, "annotated", [crossing.key])
                self.annotated += 1

        await drain_forever(
            annotate_pending,
            self._annotate_due,
            errors=(GrafanaError, StoreError),
            log=log,
            failing_text="milestones: cannot annotate crossings in Grafana (%s)",
            recovered_text="milestones: annotating crossings in Grafana again",
            min_backoff_s=self.min_backoff_s,
            max_backoff_s=self.max_backoff_s,
        )
