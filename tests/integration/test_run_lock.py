"""One run at a time on a warehouse (trebol.warehouse.run_lock): a second run stops before any
task with one line naming the one that holds the warehouse, and the lock goes with its holder."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from trebol.demo import SimulationResult
from trebol.warehouse.run_lock import RunInProgress, exclusive_run

from ..helpers import DEMO_DATE, SessionWarehouse

pytestmark = [pytest.mark.integration, pytest.mark.server]


def test_a_second_run_stops_naming_the_first(test_warehouse: SessionWarehouse) -> None:
    with (exclusive_run(test_warehouse.dsn, "trebol run 2026-06-30 (pid 1)"),
          pytest.raises(RunInProgress) as busy,
          exclusive_run(test_warehouse.dsn, "trebol run 2026-06-29")):
        pass
    assert str(busy.value).startswith("another run holds the warehouse: trebol run 2026-06-30 (pid 1) "
                                      "(server pid ")
    assert str(busy.value).endswith("; wait until it ends, then run again")
    with exclusive_run(test_warehouse.dsn, "trebol run 2026-06-29"):  # released with its holder
        pass


def test_a_lock_whose_connection_the_server_ended_is_released_without_an_error(
        test_warehouse: SessionWarehouse) -> None:
    """The warehouse stopped (here: its server ended the holder's connection) while a run held
    the lock: the run's own error is what it reports, not a second one on releasing the lock."""
    with pytest.raises(ZeroDivisionError), exclusive_run(test_warehouse.dsn, "trebol run lost"):
        with psycopg.connect(test_warehouse.dsn, autocommit=True) as admin:
            [ended] = admin.execute("""select pg_terminate_backend(pid) from pg_stat_activity
                where application_name = 'trebol run lost'""").fetchone()
        assert ended
        1 / 0  # noqa: B018 - the run's own error
    with exclusive_run(test_warehouse.dsn, "trebol run 2026-06-29"):  # the lock went with it
        pass


def test_trebol_run_beside_a_running_one_is_one_line(test_warehouse: SessionWarehouse,
                                                     demo_sources: SimulationResult) -> None:
    with exclusive_run(test_warehouse.dsn, "trebol demo 2026-06-30 (pid 1)"):
        done = subprocess.run([sys.executable, "-m", "trebol.cli", "run", "--date", DEMO_DATE.isoformat()],
                              env=dict(os.environ), capture_output=True, text=True, timeout=120,
                              check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    [*progress, line] = done.stderr.strip().splitlines()
    assert all(note.startswith("warehouse: ") for note in progress), progress
    assert line.startswith("trebol: another run holds the warehouse: trebol demo 2026-06-30 (pid 1)")
    assert "airflow" not in done.stdout
