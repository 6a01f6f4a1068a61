"""The Cosmos operator that runs ``dbt build`` of the project as of the run's as-of moment.

Credentials reach dbt at run time from the transformer role's Airflow connection
(``trebol_warehouse_transformer``), as the environment that ``dbt_project/profiles.yml`` reads:
never rendered into templates. dbt's ``run_results.json``
is kept in the run's report folder as ``<task_id>_run_results.json``. A build that succeeds
writes its outlets' asset events with the run's as-of date (``trebol.airflow.assets``).

A build whose only failures are data tests that found rows, or rows a model wrote that break one
of its contract's check constraints, fails at once, without Airflow's retries
(``AirflowFailException``, naming the tests and constraints): a retry reads the same rows and
fails the same, hours later. Any other error of a model may be a lost connection or a lock, so
it is retried.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
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
# how many failed tests the one-line error names before "and N more"
NAMED_TESTS = 5


# PostgreSQL's message for a row that breaks a check constraint (SQLSTATE 23514)
CHECK_VIOLATION = re.compile(r'violates check constraint "([^"]+)"')


def failed_data_tests(run_results: Mapping[str, Any]) -> list[str]:
    """What failed on the warehouse's rows, when nothing else failed: the data tests that found
    rows (status ``fail``, by name) and the check constraints that rows a model wrote broke
    (``constraint <name>``); none when any other error (of a model, seed or test) is among the
    failures."""
    named = []
    for result in run_results.get("results", []):
        if result.get("status") == "fail":
            # a unique id is test.<package>.<name>[.<hash of a generic test>]
            named.append(result["unique_id"].split(".")[2])
        elif result.get("status") in ("error", "runtime error"):
            if not (violation := CHECK_VIOLATION.search(result.get("message") or "")):
                return []
            named.append(f"constraint {violation.group(1)}")
    return sorted(named)


def data_tests_failure(tests: list[str]) -> AirflowFailException:
    """The one-line, final error of a build whose data tests (or check constraints) failed."""
    named = ", ".join(tests[:NAMED_TESTS])
    more = f" and {len(tests) - NAMED_TESTS} more" if len(tests) > NAMED_TESTS else ""
    return AirflowFailException(f"dbt data tests failed on the warehouse's rows (a retry would "
                                f"read the same): {named}{more}")


class WarehouseDbtBuildOperator(DbtBuildLocalOperator):
    """Cosmos ``dbt build`` whose warehouse credentials come from an Airflow connection (the
    transformer's unless told) at run time, as environment for dbt_project/profiles.yml: never
    rendered into templates."""

    def __init__(self, *, conn_id: str = role_conn_id("transformer"), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.run_results: dict[str, Any] = {}

    def keep_run_results(self, project_dir: str, context: Any, **_: Any) -> None:
        """Cosmos callback (after dbt, before Cosmos raises its failure): copy dbt's
        run_results.json out of Cosmos's temporary project copy into the run's report folder,
        and hold it for ``execute`` to judge a failure by."""
        source = Path(project_dir) / "target" / "run_results.json"
        if not source.exists():
            return
        settings = load_settings()
        target = settings.report_dir(run_interval(context, settings.timezone)
                                     .as_of_date(settings.timezone))
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target / f"{context['ti'].task_id}_run_results.json")
        self.run_results = json.loads(source.read_text())

    def execute(self, context: Any, **kwargs: Any) -> Any:
        timezone = load_settings().timezone
        # rendered when given (a newer date's, after a backfill), else the run's interval end
        as_of_at = (self.env or {}).get("TREBOL_AS_OF_AT") or run_interval(context, timezone).end.isoformat()
        self.env = {**(self.env or {}), **dbt_env(warehouse_parts(self.conn_id)),
                    "TREBOL_AS_OF_AT": as_of_at}
        self.callback, self.run_results = self.keep_run_results, {}
        try:
            result = super().execute(context, **kwargs)
        except Exception as error:
            if tests := failed_data_tests(self.run_results):
                raise data_tests_failure(tests) from error
            raise
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
        # without a cache folder, Cosmos copies the project to a new temporary folder without
        # dbt's partial-parse file, and every task parsed the whole project (14 s on the demo,
        # 6 s partially)
        cache_dir=settings.dbt_cache_dir,
        env={"TREBOL_AS_OF_AT": as_of_at,
             "TREBOL_TIMEZONE": settings.timezone,
             "DBT_EXCLUDE_RESOURCE_TYPES": "unit_test",
             "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
             # dbt's debug log file (every statement of every node) went to logs/ of Cosmos's
             # temporary copy of the project, deleted after the task. Not writing it: dbt build
             # 7.6 and 7.2 s before, 6.7 and 6.7 s after, alternated (the small bench's
             # increment). The task log keeps dbt's console output.
             "DBT_LOG_LEVEL_FILE": "none"},
        emit_datasets=False,
        **kwargs,
    )
