"""The alert lifecycle: firing -> notified -> acknowledged -> resolved, with escalation,
reminders and a resolved notice; milestone notices on the side.

    engine = AlertEngine(plant, AlertStore(state_store), clock=board.now, ...)
    async with engine:                              # restores open alerts, closes the notifier
        await engine.handle(evaluator.evaluate(now, signals))   # firing / resolved / notice
        await engine.tick()                         # escalation and reminders that are due
        await engine.acknowledge(alert_id, "anna", "link")

- `firing` for a key (rule, scope) with no open alert raises one; while it is open, further
  firings of the key are ignored (deduplicated). Its escalation plan (`server.alerts.routing`)
  is fixed when it is raised: the lead on duty of its line at that moment at once (else the
  first escalation level at once), then each level `after_minutes` after the alert was raised.
- Each step's person gets one message on each of their channels, through the notifier (which
  never lets one channel delay another), with an acknowledge link for that person. A delivered
  message makes a firing alert `notified` and is recorded (who, channel, when, attempts).
- Not acknowledged by a step's due time: that step is alerted too (escalation), until the plan
  ends. Every `repeat_minutes` without acknowledgement the level alerted last is reminded.
- `acknowledge` (the link's POST, or the API) stops escalation and reminders.
- `resolved` sends one resolved notice to everyone a message went to (unless every attempt to
  reach them failed), and moves the alert to history.
- A `notice` (a milestone) goes once to the lead on duty of its line: no escalation, nothing
  to acknowledge or resolve.

Counted since the engine started (for `GET /metrics`): alerts `raised`, `resolved` and
`acknowledged` per (rule, severity), and `store_failures` (writes of alert state that failed);
the notifier counts the messages per channel.

State lives in memory and is written through to the state store after each change
(`server.alerts.alert_store`); a failed write is logged once and retried with the next change or
tick. A restart restores open alerts with their plans, the steps already alerted, the reminder
time and acknowledgements: escalation carries on where it was (steps that fell due while the
server was down are alerted at once). Messages of open, unacknowledged alerts still queued when
the server stopped are recorded as `interrupted` and sent again (at least once). An
acknowledgement is told to everyone else the alert reached (reason `acknowledged`).

Without rosters in the plant, alerts are raised and shown but not sent (logged once).

Replicas on one shared store (`server.alerts.lease`): only the engine of the replica holding
the lease runs the alerts (`take_over`: the restart path above). The others `follow`: they
show the open alerts as stored, and acknowledge in the store (`acknowledge` works on any
replica); the running engine adopts those acknowledgements before each tick and before an
acknowledgement of its own, and never writes one back over (`AlertStore.save`). An engine
that loses the lease `stand_by`s: its queued messages are dropped (the next holder records
them as interrupted and sends them again) and its unsaved changes are not written over the
next holder's.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

from server.alerts.ack_tokens import AckTokens, ack_link
from server.alerts.alert_store import AlertStore
from server.alerts.channels import Channel, ChannelError, channel_for
from server.alerts.messages import body, title
from server.alerts.notifier import Delivery, Message, Notifier
from server.alerts.records import AckVia, Alert, AlertKind, Notification, Reason, Step
from server.alerts.routing import lead_for_notice, person, plan
from server.alerts.transitions import AlertKey, Transition
from server.alerts.views import line_alert
from server.database import StoreError
from server.persisted import AuditEntry
from server.snapshot import LineAlert
from taktline.config.settings import RetryPolicy, SmtpSettings
from taktline.model.alerts import Severity
from taktline.model.plant import Plant
from taktline.model.rosters import Person
from taktline.model.secrets import SecretError

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
_ALERTING: tuple[Reason, ...] = ("alert", "escalation", "repeat")
"""Messages that ask someone to act (they carry the acknowledge link)."""
LinesChanged = Callable[[set[str]], None]
RuleSeverity = tuple[str, Severity]


class AlertError(Exception):
    """An acknowledgement that cannot be made."""


class UnknownAlert(AlertError):
    """No alert has this id."""


class AlertClosed(AlertError):
    """The alert is resolved (or is a notice): there is nothing to acknowledge."""

    def __init__(self, alert: Alert):
        super().__init__(f"alert {alert.id} is {alert.state}")
        self.alert = alert


class AlreadyAcknowledged(AlertError):
    """Someone acknowledged the alert already."""

    def __init__(self, alert: Alert):
        super().__init__(f"alert {alert.id} was acknowledged by {alert.acknowledged_by}")
        self.alert = alert


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """An acknowledgement as stored, with its audit entry's id."""

    alert: Alert
    audit_id: int | None


class AlertEngine:
    """Open alerts of one server; use `async with` (or `restore()` and `aclose()`).

    `on_change(lines)` is called after the open alerts of these lines changed (raised,
    notified, acknowledged, resolved), `on_resolved()` after a resolved alert was stored.
    """

    def __init__(
        self,
        plant: Plant,
        store: AlertStore,
        *,
        clock: Clock,
        policy: RetryPolicy | None = None,
        smtp: SmtpSettings | None = None,
        tokens: AckTokens | None = None,
        public_url: str | None = None,
        repeat_minutes: float = 30,
        on_change: LinesChanged | None = None,
        on_resolved: Callable[[], None] | None = None,
    ):
        self.plant = plant
        self.store = store
        self.notifier = Notifier(policy, on_result=self._on_result)
        self.leading = False
        """Whether this engine runs the alerts (else it follows the store: `follow`)."""
        self._policy = policy
        self._clock = clock
        self._smtp = smtp
        self._tokens = tokens
        self._public_url = public_url
        self._repeat = dt.timedelta(minutes=repeat_minutes) if repeat_minutes > 0 else None
        self._on_change = on_change
        self._on_resolved = on_resolved
        self._lock = asyncio.Lock()
        self._open: dict[int, Alert] = {}
        self._by_key: dict[AlertKey, Alert] = {}
        self._unsaved: dict[int, Alert] = {}
        self._pending: dict[tuple[str, Channel], tuple[Alert, int]] = {}
        """(message id, channel) -> the alert and the index of its notification."""
        self._results: set[asyncio.Task[None]] = set()
        self._last_id = 0
        self._store_failing = False
        self._warned: set[str] = set()
        self.raised: collections.Counter[RuleSeverity] = collections.Counter()
        self.resolved: collections.Counter[RuleSeverity] = collections.Counter()
        self.acknowledged: collections.Counter[RuleSeverity] = collections.Counter()
        self.store_failures = 0

    async def __aenter__(self) -> AlertEngine:
        await self.restore()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def restore(self) -> None:
        """Take the open alerts from the store and run them (before the first `handle`).
        Raises StoreError."""
        interrupted = await asyncio.to_thread(self.store.interrupt_pending)
        restored = await asyncio.to_thread(self.store.open_alerts)
        self._last_id = await asyncio.to_thread(self.store.last_id)
        self._open = {alert.id: alert for alert in restored}
        self._by_key = {alert.key: alert for alert in restored}
        self.leading = True
        if restored or interrupted:
            log.info(
                "alerts: %d open alerts restored; %d messages the last run did not see answered",
                len(restored),
                len(interrupted),
            )
        async with self._lock:
            self._resend(interrupted)
            await self._flush()
        if self.plant.rosters is None:
            self._warn_once("rosters", "alerts: the plant has no rosters; alerts show, not sent")
        elif self._public_url is None:
            log.info("alerts: no delivery.public_url, so messages carry no acknowledge link")
        self._changed({line for alert in restored for line in alert.lines})

    async def aclose(self) -> None:
        """Stop the notifier (what is still queued is not sent) and write what is unsaved."""
        await self._stop_notifier()
        async with self._lock:
            await self._flush()

    async def take_over(self) -> None:
        """Start running the alerts as the store has them (this replica got the lease).
        Raises StoreError (try again next period)."""
        async with self._lock:
            if self.notifier.closed:
                self.notifier = Notifier(self._policy, on_result=self._on_result)
            self._pending.clear()
            self._unsaved.clear()
        await self.restore()

    async def stand_by(self) -> None:
        """Stop running the alerts (the lease is lost): queued messages are not sent, unsaved
        changes are dropped (the next holder's state wins), the store is followed."""
        await self._stop_notifier()
        async with self._lock:
            self.leading = False
            self._pending.clear()
            dropped, self._unsaved = len(self._unsaved), {}
        log.warning(
            "alerts: this replica stopped running the alerts (%d unsaved alert changes dropped)",
            dropped,
        )

    async def follow(self) -> None:
        """Show the open alerts as stored by the replica running them. Raises StoreError."""
        stored = await asyncio.to_thread(self.store.open_alerts)
        async with self._lock:
            before = self._shown(self._open.values())
            self._open = {alert.id: alert for alert in stored}
            self._by_key = {alert.key: alert for alert in stored}
        after = self._shown(stored)
        changed = {
            line
            for alert_id in before.keys() | after.keys()
            if before.get(alert_id) != after.get(alert_id)
            for line in (after.get(alert_id) or before[alert_id])[1]
        }
        self._changed(changed)

    def firing(self) -> list[tuple[AlertKey, Severity, tuple[str, ...], dt.datetime]]:
        """The open alerts as the evaluator restores them (`AlertEvaluator.restore`)."""
        return [(a.key, a.severity, a.lines, a.since) for a in self._open.values()]

    def open_alerts(self) -> list[Alert]:
        """The open alerts, oldest first."""
        return sorted(self._open.values(), key=lambda alert: alert.id)

    def line_alerts(self) -> dict[str, list[LineAlert]]:
        """Each line's open alerts as its screen shows them, oldest first."""
        by_line: dict[str, list[LineAlert]] = collections.defaultdict(list)
        for alert in self.open_alerts():
            shown = line_alert(self.plant, alert)
            for line in alert.lines:
                by_line[line].append(shown)
        return dict(by_line)

    def _shown(self, alerts: Iterable[Alert]) -> dict[int, tuple[LineAlert, tuple[str, ...]]]:
        """What screens show of each alert, and on which lines."""
        return {alert.id: (line_alert(self.plant, alert), alert.lines) for alert in alerts}

    async def find(self, alert_id: int) -> Alert | None:
        """An alert by id: open, or from the store. Raises StoreError."""
        alert = self._open.get(alert_id) or self._unsaved.get(alert_id)
        if alert is not None:
            return alert
        return await asyncio.to_thread(self.store.get, alert_id)

    async def handle(self, transitions: Iterable[Transition]) -> None:
        """Take the evaluator's transitions."""
        changed: set[str] = set()
        async with self._lock:
            now = self._clock()
            for transition in transitions:
                if transition.kind == "firing":
                    alert = self._raise(transition, now)
                elif transition.kind == "resolved":
                    alert = self._resolve(transition, now)
                else:
                    await self._notice(transition, now)
                    continue
                if alert is not None:
                    changed.update(alert.lines)
            await self._flush()
        self._changed(changed)

    async def tick(self) -> None:
        """Alert the steps that fell due and send the reminders that are due (after taking the
        acknowledgements other replicas stored)."""
        changed = await self._adopt_acknowledgements()
        async with self._lock:
            now = self._clock()
            for alert in self.open_alerts():
                if alert.state == "acknowledged":
                    continue
                if self._escalate(alert, now) | self._remind(alert, now):
                    self._unsaved[alert.id] = alert
            await self._flush()
        self._changed(changed)

    async def acknowledge(
        self, alert_id: int, by: str, via: AckVia, audit: AuditEntry | None = None
    ) -> Acknowledged:
        """Acknowledge an open alert (stored with `audit` in one transaction). Raises
        UnknownAlert, AlertClosed, AlreadyAcknowledged, or StoreError (nothing changed)."""
        if not self.leading:
            return await self._acknowledge_in_store(alert_id, by, via, audit)
        self._changed(await self._adopt_acknowledgements())
        async with self._lock:
            alert = self._open.get(alert_id)
            if alert is None:
                stored = self._unsaved.get(alert_id) or await asyncio.to_thread(
                    self.store.get, alert_id
                )
                if stored is None:
                    raise UnknownAlert(f"no alert {alert_id}")
                raise AlertClosed(stored)
            if alert.state == "acknowledged":
                raise AlreadyAcknowledged(alert)
            before = dataclasses.replace(alert)
            alert.state = "acknowledged"
            alert.acknowledged_at = self._clock()
            alert.acknowledged_by = by
            alert.acknowledged_via = via
            alert.next_repeat_at = None
            unsaved = {**self._unsaved, alert.id: alert}
            try:
                audit_id = await asyncio.to_thread(
                    self.store.save, sorted(unsaved.values(), key=lambda a: a.id), audit
                )
            except StoreError:
                for name in ("state", "acknowledged_at", "acknowledged_by", "acknowledged_via"):
                    setattr(alert, name, getattr(before, name))
                alert.next_repeat_at = before.next_repeat_at
                self.store_failures += 1
                raise
            self._unsaved.clear()
            self.acknowledged[(alert.key.rule, alert.severity)] += 1
            self._tell_others(alert, self._clock())
            await self._flush()
        log.info("alert %d (%s) acknowledged by %s (%s)", alert.id, alert.key, by, via)
        self._changed(set(alert.lines))
        return Acknowledged(alert, audit_id)

    async def _acknowledge_in_store(
        self, alert_id: int, by: str, via: AckVia, audit: AuditEntry | None
    ) -> Acknowledged:
        """A follower's acknowledgement: written to the store, adopted by the running engine."""
        alert, changed, audit_id = await asyncio.to_thread(
            self.store.acknowledge, alert_id, by, via, self._clock(), audit
        )
        if alert is None:
            raise UnknownAlert(f"no alert {alert_id}")
        if not changed and alert.state == "acknowledged":
            raise AlreadyAcknowledged(alert)
        if not changed:
            raise AlertClosed(alert)
        async with self._lock:
            self._open[alert.id] = alert
            self._by_key[alert.key] = alert
        self.acknowledged[(alert.key.rule, alert.severity)] += 1
        log.info("alert %d (%s) acknowledged by %s (%s)", alert.id, alert.key, by, via)
        self._changed(set(alert.lines))
        return Acknowledged(alert, audit_id)

    async def _adopt_acknowledgements(self) -> set[str]:
        """Take the acknowledgements of open alerts that another replica stored; returns the
        lines concerned."""
        waiting = [a.id for a in self._open.values() if a.state != "acknowledged"]
        try:
            stored = await asyncio.to_thread(self.store.acknowledged, waiting)
        except StoreError as exc:
            self._store_failed(exc)
            return set()
        lines: set[str] = set()
        async with self._lock:
            for acknowledged in stored:
                alert = self._open.get(acknowledged.id)
                if alert is None or alert.state == "acknowledged":
                    continue
                alert.state = "acknowledged"
                alert.acknowledged_at = acknowledged.acknowledged_at
                alert.acknowledged_by = acknowledged.acknowledged_by
                alert.acknowledged_via = acknowledged.acknowledged_via
                alert.next_repeat_at = None
                lines.update(alert.lines)
                log.info(
                    "alert %d (%s) acknowledged by %s on another replica",
                    alert.id,
                    alert.key,
                    alert.acknowledged_by,
                )
                self._tell_others(alert, self._clock())
            await self._flush()
        return lines

    async def settle(self) -> None:
        """Until every queued message is delivered, failed or dropped and its result recorded."""
        await self.notifier.join()
        while self._results:
            await asyncio.gather(*list(self._results))

    def _new(self, transition: Transition, kind: AlertKind) -> Alert:
        """A new alert (`firing`) or notice of the transition, with the next id."""
        self._last_id += 1
        return Alert(
            id=self._last_id,
            kind=kind,
            key=transition.key,
            severity=transition.severity,
            lines=transition.lines,
            message=transition.message,
            since=transition.since,
            raised_at=transition.at,
            state="firing" if kind == "alert" else "notice",
            values=dict(transition.values),
        )

    def _raise(self, transition: Transition, now: dt.datetime) -> Alert | None:
        if transition.key in self._by_key:
            return None  # deduplicated: the key's alert is open
        alert = self._new(transition, "alert")
        alert.chain = plan(self.plant, transition.lines, transition.at)
        self._open[alert.id] = alert
        self._by_key[alert.key] = alert
        self.raised[(alert.key.rule, alert.severity)] += 1
        log.info("alert %d raised: %s (%s)", alert.id, alert.message, alert.key)
        if not alert.chain and self.plant.rosters is not None:
            log.warning(
                "alert %d (%s): nobody to alert (no lead on duty, no escalation for %s)",
                alert.id,
                alert.key,
                ", ".join(alert.lines) or "no line",
            )
        self._escalate(alert, now)
        self._unsaved[alert.id] = alert
        return alert

    def _resolve(self, transition: Transition, now: dt.datetime) -> Alert | None:
        alert = self._by_key.pop(transition.key, None)
        if alert is None:
            return None
        del self._open[alert.id]
        alert.state = "resolved"
        alert.resolved_at = transition.at
        alert.resolved_message = transition.message
        alert.next_repeat_at = None
        self._send(alert, _reached(alert, now), "resolved", now)
        self._unsaved[alert.id] = alert
        self.resolved[(alert.key.rule, alert.severity)] += 1
        log.info("alert %d resolved: %s", alert.id, transition.message)
        return alert

    async def _notice(self, transition: Transition, now: dt.datetime) -> None:
        try:
            if await asyncio.to_thread(self.store.has_notice, transition.key):
                return
        except StoreError as exc:
            self._store_failed(exc)
        alert = self._new(transition, "notice")
        alert.resolved_at = transition.at
        lead = lead_for_notice(self.plant, transition.lines, now)
        if lead is not None:
            alert.chain, alert.next_step = (lead,), 1
            self._send(alert, [lead], "notice", now)
        elif self.plant.rosters is not None:
            log.info("notice %d (%s): no lead on duty, not sent", alert.id, alert.message)
        self._unsaved[alert.id] = alert

    def _escalate(self, alert: Alert, now: dt.datetime) -> bool:
        """Alert every step that is due, a batch per due time; True when one was."""
        chain = alert.chain
        alerted = False
        while alert.next_step < len(chain) and chain[alert.next_step].due_at <= now:
            first = alert.next_step
            due = chain[first].due_at
            while alert.next_step < len(chain) and chain[alert.next_step].due_at == due:
                alert.next_step += 1
            batch = chain[first : alert.next_step]
            self._send(alert, batch, "alert" if first == 0 else "escalation", now)
            alert.current = batch
            alerted = True
        if alerted and self._repeat is not None:
            alert.next_repeat_at = now + self._repeat
        return alerted

    def _remind(self, alert: Alert, now: dt.datetime) -> bool:
        due = alert.next_repeat_at
        if self._repeat is None or due is None or now < due or not alert.current:
            return False
        self._send(alert, alert.current, "repeat", now)
        alert.next_repeat_at = now + self._repeat
        return True

    def _tell_others(self, alert: Alert, now: dt.datetime) -> None:
        """Tell everyone the alert reached (but who acknowledged it) that it is acknowledged."""
        others = [step for step in _reached(alert, now) if step.person != alert.acknowledged_by]
        if others:
            self._send(alert, others, "acknowledged", now)
            self._unsaved[alert.id] = alert

    def _resend(self, interrupted: Iterable[tuple[int, int]]) -> None:
        """Send the alerting messages of open, unacknowledged alerts again that the last run
        queued but did not see answered (at least once: one that went out just before the stop
        arrives twice), to the same people on the same channels (on their channels now when
        none of those is left)."""
        now = self._clock()
        again: dict[tuple[int, str, str, Reason], set[str]] = collections.defaultdict(set)
        for alert_id, seq in interrupted:
            alert = self._open.get(alert_id)
            if alert is None or alert.state == "acknowledged":
                continue
            n = alert.notifications[seq] if seq < len(alert.notifications) else None
            if n is not None and n.reason in _ALERTING:
                again[(alert_id, n.person, n.level, n.reason)].add(n.channel)
        for (alert_id, someone, level, reason), channels in again.items():
            alert = self._open[alert_id]
            due = next(
                (s.due_at for s in alert.chain if (s.person, s.level) == (someone, level)), now
            )
            self._send(alert, [Step(level, someone, due)], reason, now, only=channels)
            self._unsaved[alert_id] = alert
            log.info("alert %d: %s sent again to %s (interrupted)", alert_id, reason, someone)

    def _send(
        self,
        alert: Alert,
        steps: Iterable[Step],
        reason: Reason,
        now: dt.datetime,
        only: set[str] | None = None,
    ) -> None:
        """One message per step's person, on each of their channels (`only` those of them
        named, by their redacted form, when any of them still is)."""
        if self.plant.rosters is None:
            return
        for step in steps:
            someone = person(self.plant, step.person)
            if someone is None:
                self._warn_once(f"person {step.person}", "alerts: %s is not in the rosters", step)
                continue
            channels = self._channels(someone)
            if only is not None:  # none of them left: the person's contacts changed since
                channels = [c for c in channels if c.redacted in only] or channels
            if not channels:
                continue
            message_id = f"{alert.id}#{len(alert.notifications)}"
            message = Message(
                id=message_id,
                title=title(alert, reason),
                body=body(self.plant, alert, reason, step, self._public_url),
                ack_url=self._ack_url(alert, someone, reason),
            )
            for channel in channels:
                self._pending[(message_id, channel)] = (alert, len(alert.notifications))
                alert.notifications.append(
                    Notification(message_id, someone.id, step.level, reason, channel.redacted, now)
                )
            self.notifier.send(message, channels)

    def _ack_url(self, alert: Alert, someone: Person, reason: Reason) -> str | None:
        if reason not in _ALERTING:
            return None
        if self._tokens is None or self._public_url is None:
            return None
        return ack_link(self._public_url, self._tokens.issue(alert.ref, someone.id))

    def _channels(self, someone: Person) -> list[Channel]:
        """The person's channels that can be used now (a bad one is logged once)."""
        found: list[Channel] = []
        for index, contact in enumerate(someone.channels):
            try:
                found.append(channel_for(contact.reveal(), self._smtp))
            except (SecretError, ChannelError) as exc:
                self._warn_once(
                    f"channel {someone.id} {index}",
                    "alerts: channel %d of %s (%r) cannot be used: %s",
                    index + 1,
                    someone.id,
                    contact,
                    exc,
                )
        if not found:
            self._warn_once(
                f"unreachable {someone.id}", "alerts: %s has no usable channel", someone.id
            )
        return list(dict.fromkeys(found))

    async def _stop_notifier(self) -> None:
        await self.notifier.aclose()
        for task in self._results:
            task.cancel()
        await asyncio.gather(*self._results, return_exceptions=True)

    def _on_result(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._record(delivery))
        self._results.add(task)
        task.add_done_callback(self._results.discard)

    async def _record(self, delivery: Delivery) -> None:
        async with self._lock:
            found = self._pending.pop((delivery.message_id, delivery.channel), None)
            if found is None:
                return
            alert, index = found
            alert.notifications[index] = dataclasses.replace(
                alert.notifications[index],
                result="delivered" if delivery.delivered else "failed",
                result_at=self._clock(),
                attempts=delivery.attempts,
                error=delivery.error,
            )
            if delivery.delivered and alert.state == "firing":
                alert.state = "notified"
            self._unsaved[alert.id] = alert
            await self._flush()
        if alert.open:
            self._changed(set(alert.lines))

    async def _flush(self) -> None:
        """Write the unsaved alerts (under the lock); a failure is logged once and retried."""
        if not self._unsaved:
            return
        alerts = sorted(self._unsaved.values(), key=lambda alert: alert.id)
        try:
            await asyncio.to_thread(self.store.save, alerts)
        except StoreError as exc:
            self._store_failed(exc)
            return
        for alert in alerts:
            self._unsaved.pop(alert.id, None)
        if self._on_resolved is not None and any(a.state == "resolved" for a in alerts):
            self._on_resolved()
        if self._store_failing:
            log.info("alerts: the state store takes alert state again")
            self._store_failing = False

    def _store_failed(self, exc: StoreError) -> None:
        self.store_failures += 1
        if not self._store_failing:
            log.error("alerts: %s; alert state is kept in memory and written again", exc)
            self._store_failing = True

    def _changed(self, lines: set[str]) -> None:
        if lines and self._on_change is not None:
            self._on_change(lines)

    def _warn_once(self, key: str, text: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(text, *args)


def _reached(alert: Alert, now: dt.datetime) -> list[Step]:
    """Everyone an alerting message of `alert` went to (unless every attempt failed), once
    each, as steps due `now`."""
    reached = {
        n.person: Step(n.level, n.person, now)
        for n in alert.notifications
        if n.reason in _ALERTING and n.result != "failed"
    }
    return list(reached.values())
