"""The data the nightly DAG produces, as Airflow Assets: a DAG scheduled on them (a BI refresh, an
activation-only DAG) runs when the nightly tasks that write them succeed.

Each is an outlet of the tasks that write it; Airflow records an asset event when such a task
succeeds, with ``extra`` (:func:`event_extra`): the run's as-of date (the data interval's end,
in the business timezone), so that a consumer knows which day the data is as of.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import Asset

from trebol.airflow.run_context import run_interval
from trebol.interval import Interval
from trebol.settings import Settings

# dbt_build: staging, identity, dim_customers, fct_transactions, RFMT, the quality models
MARTS_CORE = Asset(name="trebol_marts_core", uri="trebol://warehouse/marts/core")
# dbt_build_value: customer_value, customer_segments and their history (what BI reads)
MARTS_VALUE = Asset(name="trebol_marts_value", uri="trebol://warehouse/marts/value")
# stage_audiences: activation.audience_members, the members each sync sends
AUDIENCES_STAGED = Asset(name="trebol_audiences_staged", uri="trebol://warehouse/activation/staged")
# push_audiences: one event per sync delivered to its destination
AUDIENCES_PUSHED = Asset(name="trebol_audiences_pushed", uri="trebol://destinations/audiences")

OUTLETS: dict[str, list[Asset]] = {
    "dbt_build": [MARTS_CORE],
    "dbt_build_value": [MARTS_VALUE],
    # after a backfill, the current marts as of the newest date again
    "rebuild_current_marts": [MARTS_CORE, MARTS_VALUE],
    "stage_audiences": [AUDIENCES_STAGED],
    "push_audiences": [AUDIENCES_PUSHED],
}


def event_extra(interval: Interval, timezone: str, **more: Any) -> dict[str, Any]:
    """The ``extra`` of an asset event of the run for ``interval``."""
    return {"as_of_date": interval.as_of_date(timezone).isoformat(), **more}


def record_events(context: Any, timezone: str, as_of_at: datetime | None = None, **more: Any) -> None:
    """Put :func:`event_extra` on the events of the running task's outlets (written by Airflow
    when the task succeeds); ``as_of_at``: the moment the task built the data as of, when it is
    not the run's interval end (rebuild_current_marts, after a backfill: the newest date's)."""
    interval = run_interval(context, timezone)
    if as_of_at is not None:
        interval = Interval(interval.start, as_of_at)
    extra = event_extra(interval, timezone, **more)
    for outlet in context["task"].outlets:
        if isinstance(outlet, Asset):
            context["outlet_events"][outlet].extra = extra


def write_publication_marker(settings: Settings, events: Iterable[Mapping[str, Any]]) -> Path:
    """Record that the marts of an as-of date were published (``events``: the triggering asset
    events, each with ``extra`` and ``source_run_id``): ``marts_published.json`` in the report
    folder of the newest as-of date among them, which a BI tool's refresh can poll. Returns the
    marker's path; one clear ValueError when no event says its as-of date."""
    dated = [event for event in events if event.get("extra", {}).get("as_of_date")]
    if not dated:
        raise ValueError("no triggering asset event carries an as_of_date extra")
    newest = max(dated, key=lambda event: event["extra"]["as_of_date"])
    as_of = newest["extra"]["as_of_date"]
    marker = settings.report_dir(datetime.fromisoformat(as_of).date()) / "marts_published.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({
        "as_of_date": as_of,
        "source_run_id": newest.get("source_run_id"),
        "events": len(dated),
    }, indent=2) + "\n")
    return marker
