"""The example plant (examples/plant.yaml, three shifts) with rosters for alert tests.

Final assembly (fa1, fa2) is led by crew A on the early, B on the late and C on the night
shift, every day; paint1 has no rotation (no lead on duty ever). Escalation: the area manager
of final assembly (fatma) after 15 minutes, the plant manager (georg) after 45.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from taktline.config import load_plant
from taktline.config.settings import RetryPolicy
from taktline.model import Plant
from tests.conftest import EXAMPLE_PLANT

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
WEDNESDAY = dt.date(2026, 11, 25)
NAMES = {
    "anna": "Anna Berger",
    "ben": "Ben Schulz",
    "clara": "Clara Weiss",
    "fatma": "Fatma Demir",
    "georg": "Georg Lang",
}
FAST = RetryPolicy(max_attempts=2, min_backoff_s=0.01, max_backoff_s=0.02, attempt_timeout_s=30)
"""Quick retries, so a failing channel gives up within the test."""
ONLY_STOPS: dict[str, Any] = {
    "rate_below_target": {"enabled": False},
    "shift_target_at_risk": {"enabled": False},
    "yield_below": {"enabled": False},
    "source_stale": {"enabled": False},
    "edge_backlog": {"enabled": False},
}
"""Alert rule settings with only `line_stopped` (and milestone notices) on."""


def berlin(hour: int, minute: int = 0, day: dt.date = WEDNESDAY) -> dt.datetime:
    """An instant on the plant's wall clock, in UTC."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(dt.UTC)


def email(person: str) -> str:
    return f"{person}@plant.example"


def roster_plant(
    channels: dict[str, list[Any]] | None = None,
    alerts: dict[str, Any] | None = None,
    *,
    rosters: bool = True,
) -> Plant:
    """The example plant with the rosters above (each person's channels: an email address
    unless `channels` names others) and `alerts` rule settings."""
    data = load_plant(EXAMPLE_PLANT).model_dump(by_alias=True, exclude_none=True)
    chosen = channels or {}
    if rosters:
        data["rosters"] = {
            "people": [
                {"id": person, "name": name, "channels": chosen.get(person, [email(person)])}
                for person, name in NAMES.items()
            ],
            "crews": [
                {"id": "a", "lead": "anna"},
                {"id": "b", "lead": "ben"},
                {"id": "c", "lead": "clara"},
            ],
            "rotations": [
                {
                    "id": "three-crews",
                    "calendar": "three-shift",
                    "anchor": "2026-11-23",
                    "areas": ["neustadt/final"],
                    "by_shift": {"early": "A", "late": "B", "night": "C"},
                }
            ],
            "escalation": [
                {
                    "scope": "neustadt/final",
                    "levels": [{"name": "area manager", "person": "fatma", "after_minutes": 15}],
                },
                {
                    "scope": "neustadt",
                    "levels": [{"name": "plant manager", "person": "georg", "after_minutes": 45}],
                },
            ],
        }
    if alerts is not None:
        data["alerts"] = alerts
    return Plant.model_validate(data)
