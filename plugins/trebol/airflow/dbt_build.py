"""The Cosmos operator that runs ``dbt build`` of the project as of the run's as-of moment.

Credentials reach dbt at run time from the transformer role's Airflow connection
(``trebol_warehouse_transformer``), as the environment that ``dbt_project/profiles.yml`` reads:
never rendered into templates. dbt's ``run_results.json``
is kept in the run's report folder as ``<task_id>_run_results.json``. A build that succeeds
writes its outlets' asset events with the run's as-of date (``trebol.airflow.assets``).
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from cosmos.config import ProfileConfig
from cosmos.operators.local import DbtBuildLocalOperator

from trebol.airflow.assets import record_events
from trebol.airflow.connections import task_conn_id, warehouse_parts
from trebol.airflow.run_context import run_interval
from trebol.settings import Settings, load_settings
from trebol.warehouse.address import dbt_env, role_conn_id

# The dbt nodes that read the CLV fit's predictions (source clv.customer_clv) and everything
# downstream of them: the nightly DAG builds them after fit_clv, the rest before it.
CLV_DEPENDENT_NODES = "source:clv+"


def keep_dbt_artifacts(project_dir: str, context: Any, **_: Any) -> None:
    """Cosmos callback (Cosmos hands it the task context): copy dbt's run_results.json out of
    Cosmos's temporary project copy into the run's report folder."""
    settings = load_settings()
    interval = run_interval(context, settings.timezone)
    target = settings.report_dir(interval.as_of_date(settings.timezone))
    source = Path(project_dir) / "target" / "run_results.json"
    if source.exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target / f"{context['ti'].task_id}_run_results.json")


class WarehouseDbtBuildOperator(DbtBuildLocalOperator):
    """Cosmos ``dbt build`` whose warehouse credentials come from an Airflow connection (the
    transformer's unless told) at run time, as environment for dbt_project/profiles.yml: never
    rendered into templates."""

    def __init__(self, *, conn_id: str = role_conn_id("transformer"), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def execute(self, context: Any, **kwargs: Any) -> Any:
        timezone = load_settings().timezone
        # rendered when given (a newer date's, after a backfill), else the run's interval end
        as_of_at = (self.env or {}).get("TREBOL_AS_OF_AT") or run_interval(context, timezone).end.isoformat()
        self.env = {**(self.env or {}), **dbt_env(warehouse_parts(self.conn_id)),
                    "TREBOL_AS_OF_AT": as_of_at}
        result = super().execute(context, **kwargs)
        record_events(context, timezone, as_of_at=datetime.fromisoformat(as_of_at))
        return result


def dbt_profile(settings: Settings) -> ProfileConfig:
    """The dbt profile Cosmos hands to dbt."""
    return ProfileConfig(profile_name="trebol", target_name="warehouse",
                         profiles_yml_filepath=settings.dbt_project_dir / "profiles.yml")


def dbt_build_operator(task_id: str, settings: Settings,
                       as_of_at: str = "",
                       **kwargs: Any) -> WarehouseDbtBuildOperator:
    """A ``dbt build`` task of the project as of the run's data interval end, or of ``as_of_at``
    when given (a template rendering an ISO timestamp) (``kwargs``: the selection, e.g. ``select`` or
    ``exclude``, and other operator arguments). Models, seeds and data tests: the unit tests
    check the SQL on fixed inputs, so they run in development and CI (``make test``), not every
    night, as dbt Labs recommends for production builds."""
    return WarehouseDbtBuildOperator(
        task_id=task_id,
        conn_id=task_conn_id(task_id),
        project_dir=str(settings.dbt_project_dir),
        profile_config=dbt_profile(settings),
        install_deps=False,
        env={"TREBOL_AS_OF_AT": as_of_at,
             "TREBOL_TIMEZONE": settings.timezone,
             "DBT_EXCLUDE_RESOURCE_TYPES": "unit_test",
             "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        callback=keep_dbt_artifacts,
        emit_datasets=False,
        **kwargs,
    )
