"""A run's data interval and its as-of date: the one meaning of time everywhere in Trébol.

A run of logical date D (``trebol run --date D``, the scheduled run at D's local midnight,
``airflow backfill create --from-date D``: the same D) covers the day before D in the business
timezone; every step computes "as of" the interval end (D at local midnight), and its as-of date
is D, the name of its report folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
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


def nightly_interval(logical_date: datetime, timezone: str) -> Interval:
    """The data interval of the nightly run of ``logical_date`` (the run-after moment of its
    schedule, local midnight of D; any moment of D for a run triggered by hand): the day before
    D, from local midnight to local midnight. The DAG's timetable has no interval of its own
    (its logical date is when it runs), so that D names the same day on every path."""
    day = logical_date.astimezone(ZoneInfo(timezone)).date()
    return Interval(local_midnight(day - timedelta(days=1), timezone), local_midnight(day, timezone))
