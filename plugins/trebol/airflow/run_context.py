"""The nightly run's data interval and the key its results are recorded under, from the context
Airflow gives a running task."""

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


def run_key(context: Mapping[str, Any]) -> str:
    """The key the run's check results and syncs are recorded under: its run id, and how many
    times it was cleared (re-run whole: the UI's Clear, a backfill's reprocessing, ``trebol
    run`` of the same date), so that the summary of each attempt counts only its own."""
    run = context["dag_run"]
    cleared = getattr(run, "clear_number", 0) or 0
    return run.run_id if cleared == 0 else f"{run.run_id}~{cleared}"


def task_states(context: Mapping[str, Any]) -> dict[str, str]:
    """The state of every task instance of the running DAG run, as the task SDK gives them
    (``task_id``, or ``task_id_<map index>`` for a mapped one; ``none`` when not yet run)."""
    run = context["dag_run"]
    states = context["ti"].get_task_states(dag_id=run.dag_id, run_ids=[run.run_id])
    return {key: str(getattr(state, "value", state)) if state else "none"
            for key, state in states.get(run.run_id, {}).items()}
