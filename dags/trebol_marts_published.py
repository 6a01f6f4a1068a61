"""
### Trébol marts published (an example of data-aware scheduling)

Runs whenever the nightly DAG's `dbt_build_value` succeeds: it is scheduled on the Airflow Asset
`trebol_marts_value` (`trebol.airflow.assets.MARTS_VALUE`: customer value, segments and their
history, what BI reads), not on a clock. Its one task, **mark_published**, writes
`marts_published.json` into the report folder of the as-of date the asset event carries
(`extra.as_of_date`; with the source run's id), a marker a BI tool's refresh can poll instead of
guessing when the night is over. Several events since its last run make one run, marked with the
newest as-of date.

The same pattern schedules an activation-only DAG on `trebol_audiences_staged` or a DAG after the
pushes on `trebol_audiences_pushed` (README, "Assets"). Owner: data engineering.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from trebol.airflow import alerts
from trebol.airflow.assets import MARTS_VALUE
from trebol.airflow.policy import DEFAULT_ARGS, task_policy


@dag(
    dag_id="trebol_marts_published",
    schedule=[MARTS_VALUE],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "on_failure_callback": alerts.on_task_failure},
    tags=["trebol", "assets", "example"],
    doc_md=__doc__,
)
def trebol_marts_published() -> None:
    @task(**task_policy("mark_published"))
    def mark_published(triggering_asset_events=None) -> str:
        from trebol.airflow.assets import write_publication_marker
        from trebol.settings import load_settings

        events = [{"extra": dict(event.extra or {}), "source_run_id": event.source_run_id}
                  for event in (triggering_asset_events or {}).get(MARTS_VALUE, [])]
        return str(write_publication_marker(load_settings(), events))

    mark_published()


trebol_marts_published()
