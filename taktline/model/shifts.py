"""Shift calendars: shifts by weekday in a time zone, crossing midnight, with breaks."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Literal

from pydantic import Field, field_validator

from taktline.model.base import Slug, StrictModel

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Break(StrictModel):
    """An unproductive pause inside a shift (wall-clock times in the calendar's zone)."""

    start: dt.time
    end: dt.time


class Shift(StrictModel):
    """A shift that starts on the given weekdays; an `end` at or before `start` is the next day."""

    name: Slug
    start: dt.time
    end: dt.time
    days: list[Weekday] = Field(default_factory=lambda: list(ALL_DAYS))
    breaks: list[Break] = Field(default_factory=list)


class ShiftCalendar(StrictModel):
    """The shifts of a group of lines, in one time zone, with days off (holidays)."""

    timezone: str = Field(description="IANA time zone, e.g. Europe/Berlin.")
    shifts: list[Shift] = Field(min_length=1)
    days_off: list[dt.date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The calendar's time zone."""
        return zoneinfo.ZoneInfo(self.timezone)
