"""The state store on both databases (a real SQLite file, a real PostgreSQL): written, closed
and opened again; PostgreSQL's errors and restarts; a file made by an earlier version."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import sqlite3
import threading
from pathlib import Path

import pytest

from server.alerts.alert_store import AlertStore
from server.database import SQLITE_FILE, StoreError
from server.persisted import AuditEntry, Changes, FinishedShift, ShiftRecord
from server.store import StateStore
from tests.fixtures.postgres import PASSWORD, PostgresService

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


def test_current_shifts_survive_closing_the_store(state_location: Path | str) -> None:
    with StateStore(state_location) as store:
        store.save(Changes({"fa1": record("fa1", START, 150), "fa2": record("fa2", START, 9)}))
        store.save(Changes({"fa1": record("fa1", START, 160), "fa2": None}))
    with StateStore(state_location) as store:
        current = store.current()
    assert list(current) == ["fa1"]
    assert current["fa1"] == record("fa1", START, 160)
    assert current["fa1"].output_count() == 59


def test_history_is_newest_first_per_line_and_limited(state_location: Path | str) -> None:
    day = dt.timedelta(days=1)
    with StateStore(state_location) as store:
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


def test_audit_entries_get_increasing_ids(state_location: Path | str) -> None:
    entry = AuditEntry(
        at=START,
        endpoint="POST /api/lines/{line}/corrections",
        line="fa1",
        body={"counter": "eol/passed", "delta": 2, "reason": "recount", "by": "Ana"},
        by="Ana",
        client="127.0.0.1",
    )
    with StateStore(state_location) as store:
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


def test_sqlite_is_one_file_in_the_state_dir(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state") as store:
        store.save(Changes({"fa1": record("fa1", START, 150)}))
    assert (tmp_path / "state" / SQLITE_FILE).is_file()


def test_a_file_made_by_the_previous_version_is_read_and_written(tmp_path: Path) -> None:
    """The tables as the SQLite-only store made them (its own DDL) are used as they are."""
    tmp_path.joinpath("state").mkdir()
    with sqlite3.connect(tmp_path / "state" / SQLITE_FILE) as old:
        old.executescript(
            """
            CREATE TABLE current_shift (line TEXT PRIMARY KEY, shift TEXT NOT NULL,
                start TEXT NOT NULL, "end" TEXT NOT NULL, target INTEGER NOT NULL,
                output TEXT NOT NULL, baselines TEXT NOT NULL, latest TEXT NOT NULL,
                corrections TEXT NOT NULL);
            CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
                endpoint TEXT NOT NULL, line TEXT NOT NULL, body TEXT NOT NULL,
                who TEXT NOT NULL, client TEXT NOT NULL);
            INSERT INTO current_shift VALUES ('fa1', 'early', '2026-11-25T05:00:00.000000+00:00',
                '2026-11-25T13:00:00.000000+00:00', 435, 'eol/passed', '{"eol/passed": 100}',
                '{"eol/passed": 130}', '{}');
            INSERT INTO audit (at, endpoint, line, body, who, client) VALUES
                ('2026-11-25T06:00:00.000000+00:00', 'POST x', 'fa1', '{}', 'Ana', '127.0.0.1');
            """
        )
    old.close()
    with StateStore(tmp_path / "state") as store:
        assert store.current()["fa1"].output_count() == 30
        store.save(Changes({"fa1": record("fa1", START, 160)}))
        assert store.current()["fa1"].output_count() == 60  # the shift's stored corrections kept
        assert [entry.id for entry in store.audit(10)] == [1]


def test_a_url_that_is_not_postgresql_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="must start with postgresql://"):
        StateStore("mysql://u:p@127.0.0.1/taktline")


def test_a_wrong_password_is_a_clear_error_that_does_not_show_the_password(
    postgres: PostgresService,
) -> None:
    url = postgres.new_database().replace(PASSWORD, "wrong-pw")
    with pytest.raises(StoreError) as raised:
        StateStore(url)
    message = str(raised.value)
    assert "password authentication failed" in message
    assert "wrong-pw" not in message and PASSWORD not in message
    assert f"127.0.0.1:{postgres.port}" in message


def test_a_postgresql_restart_fails_calls_while_it_is_down_and_none_after(
    postgres: PostgresService,
) -> None:
    url = postgres.new_database()
    with StateStore(url) as store:
        store.save(Changes({"fa1": record("fa1", START, 150)}))
        postgres.stop()
        try:
            with pytest.raises(StoreError, match="cannot write the state store"):
                store.save(Changes({"fa1": record("fa1", START, 155)}))
        finally:
            postgres.start()
        store.save(Changes({"fa1": record("fa1", START, 160)}))
        assert store.current()["fa1"].output_count() == 59


def test_replicas_starting_together_on_an_empty_database_both_start(
    postgres: PostgresService,
) -> None:
    """Both see no tables; without a lock the second CREATE TABLE fails (seen 20 of 20)."""

    def start(url: str, barrier: threading.Barrier) -> None:
        barrier.wait()
        with StateStore(url) as store:
            AlertStore(store)

    for _ in range(5):
        url, barrier = postgres.new_database(), threading.Barrier(2)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            started = [pool.submit(start, url, barrier) for _ in range(2)]
            for future in started:
                future.result(timeout=60)
