"""What the DAG tasks call: warehouse access through the Airflow connection, the run's interval,
report folders, and the Cosmos operator that runs ``dbt build``.

Kept out of the DAG files so that they stay thin and import nothing heavy but Cosmos.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from cosmos.config import ProfileConfig
from cosmos.operators.local import DbtBuildLocalOperator

from trebol.load import Interval
from trebol.settings import Settings
from trebol.warehouse import AIRFLOW_CONN_ID, DsnParts, build_dsn, dbt_env

# The dbt nodes that read the CLV fit's predictions (source clv.customer_clv) and everything
# downstream of them: the nightly DAG builds them after fit_clv, the rest before it.
CLV_DEPENDENT_NODES = "source:clv+"


def warehouse_parts(conn_id: str = AIRFLOW_CONN_ID) -> DsnParts:
    """The warehouse's address from the Airflow connection (secrets stay out of XCom and logs)."""
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    return DsnParts(host=connection.host or "localhost", port=int(connection.port or 5432),
                    user=connection.login or "postgres", password=connection.password or "",
                    dbname=connection.schema or "postgres")


def warehouse_dsn(conn_id: str = AIRFLOW_CONN_ID) -> str:
    """The warehouse DSN built from the Airflow connection."""
    return build_dsn(warehouse_parts(conn_id))


@contextmanager
def warehouse_connection(conn_id: str = AIRFLOW_CONN_ID) -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection for an Airflow connection (the warehouse unless
    ``conn_id`` names another, e.g. a source database), from the provider's PostgresHook;
    callers open transactions explicitly with ``conn.transaction()``."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def interval_from(context: Any) -> Interval:
    """The run's data interval from the task context."""
    return Interval(start=context["data_interval_start"], end=context["data_interval_end"])


def as_of_date(interval: Interval, timezone: str) -> date:
    """The run's as-of date: the local date of the data interval end."""
    return interval.end.astimezone(ZoneInfo(timezone)).date()


def report_dir(settings: Settings, day: date) -> Path:
    """Folder for the reports of the run as of ``day``."""
    return settings.reports_dir / day.isoformat()


def keep_dbt_artifacts(project_dir: str, context: Any, **_: Any) -> None:
    """Cosmos callback: copy dbt's run_results.json out of Cosmos's temporary project copy
    into the run's report folder, as ``<task_id>_run_results.json``."""
    from trebol.settings import load_settings

    settings = load_settings()
    interval = interval_from(context)
    target = report_dir(settings, as_of_date(interval, settings.timezone))
    source = Path(project_dir) / "target" / "run_results.json"
    if source.exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target / f"{context['ti'].task_id}_run_results.json")


class WarehouseDbtBuildOperator(DbtBuildLocalOperator):
    """Cosmos ``dbt build`` whose warehouse credentials come from the Airflow connection at run
    time, as environment for dbt_project/profiles.yml: never rendered into templates."""

    def __init__(self, *, conn_id: str = AIRFLOW_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def execute(self, context: Any, **kwargs: Any) -> Any:
        self.env = {**(self.env or {}), **dbt_env(warehouse_parts(self.conn_id))}
        return super().execute(context, **kwargs)


def dbt_profile(settings: Settings) -> ProfileConfig:
    """The dbt profile Cosmos hands to dbt."""
    return ProfileConfig(profile_name="trebol", target_name="warehouse",
                         profiles_yml_filepath=settings.dbt_project_dir / "profiles.yml")


def dbt_build_operator(task_id: str, settings: Settings, **kwargs: Any) -> WarehouseDbtBuildOperator:
    """A ``dbt build`` task of the project as of the run's data interval end (``kwargs``: the
    selection, e.g. ``select`` or ``exclude``, and other operator arguments). Models, seeds and
    data tests: the unit tests check the SQL on fixed inputs, so they run in development and CI
    (``make test``), not every night, as dbt Labs recommends for production builds."""
    return WarehouseDbtBuildOperator(
        task_id=task_id,
        project_dir=str(settings.dbt_project_dir),
        profile_config=dbt_profile(settings),
        install_deps=False,
        env={"TREBOL_AS_OF_AT": "{{ data_interval_end.isoformat() }}",
             "TREBOL_TIMEZONE": settings.timezone,
             "DBT_EXCLUDE_RESOURCE_TYPES": "unit_test",
             "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        callback=keep_dbt_artifacts,
        emit_datasets=False,
        **kwargs,
    )
