"""The nightly run's data interval, from the context Airflow gives a running task."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from trebol.interval import Interval, nightly_interval


def run_interval(context: Mapping[str, Any], timezone: str) -> Interval:
    """The data interval of the running DAG run (``trebol.interval.nightly_interval`` of its
    logical date; a run triggered without one, which Airflow 3 allows, by its run-after)."""
    logical_date: datetime | None = context.get("logical_date")
    if logical_date is None:
        logical_date = context["dag_run"].run_after
    return nightly_interval(logical_date, timezone)
