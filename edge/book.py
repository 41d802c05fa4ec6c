"""The edge's counters as a book: readings in, outbox rows and changed states out. No I/O."""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge.clock import reading_times_ns
from edge.counters import (
    DEFAULT_RULES,
    STATE_KEPT,
    CounterLogic,
    Decision,
    Step,
    TotalRules,
    counter_logic,
)
from edge.mapping import MappedCounter
from edge.outbox import UpdateRow
from taktline.model.paths import CounterPath
from taktline.records import Quality, Reading

log = logging.getLogger(__name__)

_LOGGED = frozenset({Decision.RESET, Decision.ROLLOVER, Decision.GLITCH})
_GOOD = Quality.GOOD.value


@dataclass(slots=True, eq=False)
class _Counter:
    """One counter of the edge: its logic, its decisions so far and its outbox row prefix."""

    key: str
    row: tuple[str]
    logic: CounterLogic
    decisions: dict[Decision, int]


class CounterBook:
    """The edge's counters: applies batches of readings, counts decisions, tracks held drops.

    No I/O. `apply` turns readings into outbox rows and the states (JSON texts) of the counters
    they changed; it offers `expire` only the counters that hold a drop.
    """

    def __init__(
        self,
        addresses: Mapping[tuple[str, str], MappedCounter],
        states: Mapping[str, dict[str, Any]],
        rules: TotalRules = DEFAULT_RULES,
    ) -> None:
        self._by_path: dict[CounterPath, _Counter] = {}
        for mapped in addresses.values():
            path = mapped.path
            if path not in self._by_path:
                key = str(path)
                logic = counter_logic(mapped.counter, states.get(key), rules)
                row = (key,)
                self._by_path[path] = _Counter(key, row, logic, {})
        self._by_address = {address: self._by_path[m.path] for address, m in addresses.items()}
        self._pending: dict[_Counter, None] = {
            counter: None for counter in self._by_path.values() if counter.logic.pending
        }
        self.unmapped: Tally[tuple[str, str]] = Tally()

    def __len__(self) -> int:
        return len(self._by_path)

    def total(self, path: CounterPath) -> int | None:
        """A counter's lifetime total (None before its first good reading or when unknown)."""
        counter = self._by_path.get(path)
        return counter.logic.total if counter is not None else None

    def totals(self) -> dict[str, int | None]:
        """Every counter's total, by counter path."""
        return {c.key: c.logic.total for c in self._by_path.values()}

    def decisions(self) -> dict[str, dict[str, int]]:
        """Every counter's decisions so far, by counter path."""
        return {
            c.key: {decision.value: n for decision, n in c.decisions.items()}
            for c in self._by_path.values()
        }

    def apply(
        self, readings: Sequence[Reading], now_ns: int
    ) -> tuple[list[UpdateRow], dict[str, str]]:
        """The rows of the updates `readings` (and drops confirmed by `now_ns`) make, and the
        states of the counters they changed, by counter path."""
        rows: list[UpdateRow] = []
        touched: set[_Counter] = set()
        by_address = self._by_address
        for reading in readings:
            counter = by_address.get((reading.source_id, reading.address))
            if counter is None:
                self._unmapped(reading)
                continue
            ts_ns, at_ns = reading_times_ns(reading)
            step = counter.logic.step(
                reading.value, reading.quality, ts_ns, at_ns, reading.message_id
            )
            self._record(counter, step, rows, touched)
        for counter in list(self._pending):
            expired = counter.logic.expire(now_ns)
            if expired is not None:
                self._record(counter, expired, rows, touched)
            if not counter.logic.pending:
                del self._pending[counter]
        return rows, {counter.key: counter.logic.state_text() for counter in touched}

    def _record(
        self, counter: _Counter, step: Step, rows: list[UpdateRow], touched: set[_Counter]
    ) -> None:
        decision = step.decision
        decisions = counter.decisions
        decisions[decision] = decisions.get(decision, 0) + 1
        if decision not in STATE_KEPT:
            touched.add(counter)
            if decision is Decision.DROP:
                self._pending[counter] = None
            elif decision in _LOGGED:
                log.info(
                    "counter %s: %s at raw %s, +%d, total %d",
                    counter.key,
                    decision.value,
                    step.raw,
                    step.delta,
                    step.total,
                )
        if step.emit:
            rows.append((*counter.row, step.ts_ns, step.raw, step.total, step.delta, _GOOD))

    def _unmapped(self, reading: Reading) -> None:
        key = (reading.source_id, reading.address)
        self.unmapped[key] += 1
        if self.unmapped[key] == 1:
            log.warning("source %s: no counter is mapped to %s", *key)
