"""``trebol backfill``: Airflow's own backfill of the nightly DAG, through the api-server's REST
API (``POST /api/v2/backfills``: the request ``airflow backfill create`` makes), with progress
per day and the first failure named.

The scheduler runs the backfill's DAG runs (one at a time: ``max_active_runs=1``); this module
only submits it and watches the runs of its dates. Written by hand over ``urllib``: the REST API
is four calls, and the Python client (``apache-airflow-client``) would pin its own versions of
half our dependencies for them.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from trebol.interval import local_midnight

# what `--reprocess-behavior` accepts (Airflow's ReprocessBehavior)
REPROCESS_BEHAVIORS = ("none", "failed", "completed")
FINISHED = ("success", "failed")


class BackfillError(RuntimeError):
    """The API refused the backfill or did not answer; one line saying why."""


@dataclass(frozen=True)
class DayOutcome:
    """How the run of one logical date ended: its state and, when it failed, its first failed task."""

    day: date
    state: str
    failed_task: str | None = None


class AirflowApi:
    """The few calls of Airflow's REST API a backfill needs, authenticated with a token of the
    simple auth manager's login."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = self._fetch_token(username, password)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                 token: str | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     **({"Authorization": f"Bearer {token}"} if token else {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return json.load(reply)
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("detail", detail)
            raise BackfillError(f"Airflow API {method} {path}: {error.code} {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise BackfillError(f"Airflow API at {self.base_url} did not answer ({error}); "
                                "is it running? (trebol airflow status)") from None

    def _fetch_token(self, username: str, password: str) -> str:
        reply = self._request("POST", "/auth/token", {"username": username, "password": password})
        return str(reply["access_token"])

    @property
    def token(self) -> str:
        """The access token of the login (the UI takes it as its ``_token`` cookie)."""
        return self._token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._request(method, path, body, self._token)


def _iso(day: date, timezone: str) -> str:
    return local_midnight(day, timezone).isoformat()


def _backfill_body(dag_id: str, first: date, last: date, timezone: str,
                   reprocess_behavior: str) -> dict[str, Any]:
    return {"dag_id": dag_id, "from_date": _iso(first, timezone), "to_date": _iso(last, timezone),
            "run_backwards": False, "dag_run_conf": {}, "reprocess_behavior": reprocess_behavior,
            "max_active_runs": 1}


def planned_dates(api: AirflowApi, dag_id: str, first: date, last: date, timezone: str,
                  reprocess_behavior: str) -> list[date]:
    """The dates the backfill would run (the API's dry run: the schedule's dates in the range,
    less those the reprocess behaviour leaves)."""
    plan = api.call("POST", "/api/v2/backfills/dry_run",
                    _backfill_body(dag_id, first, last, timezone, reprocess_behavior))
    return sorted(_local_day(run["logical_date"], timezone) for run in plan["backfills"])


def create_backfill(api: AirflowApi, dag_id: str, first: date, last: date, timezone: str,
                    reprocess_behavior: str) -> dict[str, Any]:
    """Submit the backfill of logical dates ``first``..``last`` (each date's local midnight,
    like the schedule's), one run at a time; the backfill as the API returns it."""
    return api.call("POST", "/api/v2/backfills",
                    _backfill_body(dag_id, first, last, timezone, reprocess_behavior))


def _runs(api: AirflowApi, dag_id: str, first: date, last: date, timezone: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"logical_date_gte": _iso(first, timezone),
                                    "logical_date_lte": _iso(last, timezone),
                                    "order_by": "logical_date", "limit": 1000})
    return api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?{query}")["dag_runs"]


def _first_failed_task(api: AirflowApi, dag_id: str, run_id: str) -> str | None:
    quoted = urllib.parse.quote(run_id, safe="")
    query = urllib.parse.urlencode({"state": "failed", "order_by": "end_date", "limit": 100})
    instances = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?{query}")
    failed = [ti for ti in instances["task_instances"] if ti["task_id"] != "fail_run"]
    if not failed:
        return None
    first = failed[0]
    index = first.get("rendered_map_index") or (first["map_index"] if first["map_index"] >= 0 else None)
    return f"{first['task_id']}[{index}]" if index is not None else first["task_id"]


def _local_day(logical_date: str, timezone: str) -> date:
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(logical_date).astimezone(ZoneInfo(timezone)).date()


def _as_of_backfill(run: dict[str, Any], created: datetime) -> dict[str, Any]:
    """A run as the backfill sees it: an earlier run of the date that it re-runs still shows
    its old end until the scheduler clears it, so a run that ended before the backfill was
    created is still to run (``queued``)."""
    ended = run.get("end_date")
    if run["state"] in FINISHED and (ended is None or datetime.fromisoformat(ended) < created):
        return {**run, "state": "queued"}
    return run


def watch_backfill(api: AirflowApi, backfill_id: int, dag_id: str, planned: list[date],
                   timezone: str, progress: Callable[[str], None],
                   poll_seconds: float = 5) -> list[DayOutcome]:
    """Report the state of each planned date's run as it changes until every one has finished
    (or the scheduler marks the backfill complete); each date's outcome, oldest first."""
    seen: dict[date, str] = {}
    while True:
        backfill = api.call("GET", f"/api/v2/backfills/{backfill_id}")
        created = datetime.fromisoformat(backfill["created_at"])
        runs = {_local_day(run["logical_date"], timezone): _as_of_backfill(run, created)
                for run in _runs(api, dag_id, planned[0], planned[-1], timezone)
                if _local_day(run["logical_date"], timezone) in planned} if planned else {}
        for day, run in sorted(runs.items()):
            if seen.get(day) != run["state"]:
                seen[day] = run["state"]
                progress(f"  {day}: {run['state']}")
        finished = all(run["state"] in FINISHED for run in runs.values())
        # the scheduler marks the backfill complete a while after its last run ended
        if backfill.get("completed_at") or (finished and len(runs) == len(planned)):
            break
        time.sleep(poll_seconds)
    outcomes = []
    for day, run in sorted(runs.items()):
        failed = _first_failed_task(api, dag_id, run["dag_run_id"]) if run["state"] == "failed" else None
        outcomes.append(DayOutcome(day, run["state"], failed))
    return outcomes
