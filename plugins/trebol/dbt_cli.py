"""dbt's command line on the project against one warehouse, outside Airflow (``trebol docs``, the
tests): the connection of ``dbt_project/profiles.yml`` as environment made from a DSN, the run's
as-of moment, telemetry off, and dbt's target and log folders in a work folder of the caller's
(the project folder may be read-only, and two runs must not share a target)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from trebol.airflow.local_runner import QUIET_ENV
from trebol.warehouse.address import dbt_env, dsn_parts


def dbt_command(dbt_project_dir: Path, dsn: str, as_of_at: datetime, *args: str,
                work_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``dbt <args>`` on the project in ``dbt_project_dir``
    against ``dsn`` as of ``as_of_at`` (the data interval end), writing under ``work_dir``."""
    env = {**os.environ, **QUIET_ENV, **dbt_env(dsn_parts(dsn)),
           "TREBOL_AS_OF_AT": as_of_at.isoformat()}
    return ([str(Path(sys.executable).with_name("dbt")), *args,
             "--project-dir", str(dbt_project_dir), "--profiles-dir", str(dbt_project_dir),
             "--target-path", str(work_dir / "target"), "--log-path", str(work_dir / "logs")], env)
