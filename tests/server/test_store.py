"""The state store: a real SQLite file, written, closed and opened again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from server.persisted import AuditEntry, Changes, FinishedShift, ShiftRecord
from server.store import STORE_FILE, StateStore, StoreError

START = dt.datetime(2026, 11, 25, 5, 0, tzinfo=dt.UTC)


def record(line: str, start: dt.datetime, latest: int) -> ShiftRecord:
    return ShiftRecord(
        line=line,
        shift="early",
        start=start,
        end=start + dt.timedelta(hours=8),
        target=435,
        output="eol/passed",
        baselines={"eol/passed": 100},
        latest={"eol/passed": latest, "eol/tested": 7},
        corrections={"eol/passed": -1},
    )


def finished(line: str, start: dt.datetime, count: int) -> FinishedShift:
    return FinishedShift(
        line=line,
        shift="early",
        start=start,
        end=start + dt.timedelta(hours=8),
        count=count,
        target=435,
        corrections=0,
        complete=True,
    )


def test_current_shifts_survive_closing_the_file(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state") as store:
        store.save(Changes({"fa1": record("fa1", START, 150), "fa2": record("fa2", START, 9)}))
        store.save(Changes({"fa1": record("fa1", START, 160), "fa2": None}))
    assert (tmp_path / "state" / STORE_FILE).is_file()
    with StateStore(tmp_path / "state") as store:
        current = store.current()
    assert list(current) == ["fa1"]
    assert current["fa1"] == record("fa1", START, 160)
    assert current["fa1"].output_count() == 59


def test_history_is_newest_first_per_line_and_limited(tmp_path: Path) -> None:
    day = dt.timedelta(days=1)
    with StateStore(tmp_path) as store:
        store.save(
            Changes(
                finished=(
                    finished("fa1", START, 400),
                    finished("fa1", START + day, 410),
                    finished("fa2", START, 300),
                    finished("fa1", START + 2 * day, 420),
                )
            )
        )
        store.save(Changes(finished=(finished("fa1", START + day, 411),)))  # written again
        assert [s.count for s in store.history("fa1", 10)] == [420, 411, 400]
        assert [s.count for s in store.history("fa1", 2)] == [420, 411]
        assert store.history("fa9", 10) == []


def test_audit_entries_get_increasing_ids(tmp_path: Path) -> None:
    entry = AuditEntry(
        at=START,
        endpoint="POST /api/lines/{line}/corrections",
        line="fa1",
        body={"counter": "eol/passed", "delta": 2, "reason": "recount", "by": "Ana"},
        by="Ana",
        client="127.0.0.1",
    )
    with StateStore(tmp_path) as store:
        first = store.save(Changes(), entry)
        second = store.save(Changes({"fa1": record("fa1", START, 1)}), entry)
        entries = store.audit(10)
    assert first is not None and second == first + 1
    assert [e.id for e in entries] == [second, first]
    assert entries[0].model_copy(update={"id": None}) == entry


def test_a_state_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open the state store"):
        StateStore(blocker)
