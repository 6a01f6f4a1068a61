"""A run's data interval and its as-of date: the one meaning of time everywhere in Trébol.

A run of logical date D covers the day before D in the business timezone; every step computes
"as of" the interval end (D at local midnight), and its as-of date is that end's local date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Interval:
    """A run's data interval, as Airflow gives it (timezone-aware, end exclusive)."""

    start: datetime
    end: datetime

    def as_of_date(self, timezone: str) -> date:
        """The run's as-of date: the local date of the interval end."""
        return self.end.astimezone(ZoneInfo(timezone)).date()


def local_midnight(day: date, timezone: str) -> datetime:
    """The first moment of ``day`` in ``timezone``: the interval end of the run of date ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone))
