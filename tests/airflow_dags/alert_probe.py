"""
### Alert probe (tests only)

A one-task DAG wired like the nightly one (the policy's default arguments, the failure alert on
its task, the recovery alert and the deadline on the DAG) whose task writes the nightly's marts
asset: it fails when ``ALERT_PROBE_FAIL`` is set (with an address holding a password in the
error, which no alert may show), else succeeds and records the asset event.
tests/unit/test_alerts.py runs it.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, dag, get_current_context, task

from trebol.airflow import alerts
from trebol.airflow.assets import MARTS_VALUE, record_events
from trebol.airflow.policy import DEFAULT_ARGS

SECRET = "s3cret-probe-pass"


@dag(dag_id="alert_probe", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
     default_args={**DEFAULT_ARGS, "retries": 1, "retry_delay": timedelta(seconds=1),
                   "on_failure_callback": alerts.on_task_failure},
     on_success_callback=alerts.on_dag_success,
     deadline=DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(hours=7),
                            callback=AsyncCallback(alerts.notify_deadline_missed,
                                                   kwargs={"deadline": "07:00 Europe/Madrid"})),
     tags=["trebol", "test"], doc_md=__doc__)
def alert_probe() -> None:
    @task(outlets=[MARTS_VALUE])
    def build_marts() -> None:
        if os.environ.get("ALERT_PROBE_FAIL"):
            raise ConnectionError(f"could not reach postgresql://loader:{SECRET}@db.example:5432/"
                                  "trebol: connection refused\nsecond line of the error")
        record_events(get_current_context(), "Europe/Madrid")

    build_marts()


alert_probe()
