"""Fault injection on a real PostgreSQL: a process killed (SIGKILL) in the middle of a dbt model
or of the CLV write, and the loader's connection terminated by the server in the middle of a
load. Each fault is placed deterministically: the test holds a lock the step needs, waits until
the step is blocked on it (mid-transaction), strikes, then releases the lock. After each, the
warehouse is as before the fault, and a re-run leaves it as a clean run does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psycopg
import pytest

from trebol.summary import history_checksum, marts_checksum, predicted_value
from trebol.warehouse.address import dsn_parts

from ..helpers import (
    DEMO_DATE,
    PROJECT_DIR,
    DemoMarts,
    SessionWarehouse,
    dbt_command,
    local_midnight,
    run_dbt,
)
from .test_load import TZ, _checksum, _interval, _source, _write

pytestmark = pytest.mark.integration


def _wait_until_blocked(conn: psycopg.Connection, database: str, what: str,
                        child: subprocess.Popen) -> int:
    """The backend pid of the query of ``database`` waiting on a lock (``what`` in its text)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert child.poll() is None, f"the step ended before it reached {what!r}"
        row = conn.execute("""select pid from pg_stat_activity where datname = %s
            and wait_event_type = 'Lock' and query ilike %s""", (database, f"%{what}%")).fetchone()
        if row:
            return row[0]
        time.sleep(0.05)
    raise AssertionError(f"never blocked on {what!r}")


@contextmanager
def _holding(dsn: str, statement: str) -> Iterator[None]:
    """A lock taken by ``statement`` and held in an open transaction until the block ends."""
    blocker = psycopg.connect(dsn)
    blocker.execute(statement)
    try:
        yield
    finally:
        blocker.rollback()
        blocker.close()


def _gone(conn: psycopg.Connection, pid: int) -> None:
    while conn.execute("select 1 from pg_stat_activity where pid = %s", (pid,)).fetchone():
        time.sleep(0.05)


def _leftovers(conn: psycopg.Connection) -> list[str]:
    return [row[0] for row in conn.execute("""select schemaname || '.' || tablename from pg_tables
        where tablename like '%%\\_\\_dbt\\_tmp%%' or tablename like '%%\\_\\_dbt\\_backup%%'""")]


def test_dbt_killed_in_the_middle_of_a_model_leaves_the_marts_as_they_were(
        demo_marts: DemoMarts, tmp_path: Path) -> None:
    database = dsn_parts(demo_marts.dsn).dbname
    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        before = (marts_checksum(conn), history_checksum(conn, DEMO_DATE))
        command, env = dbt_command(demo_marts.dsn, local_midnight(DEMO_DATE), "run", "--select",
                                   "dim_customers", work_dir=tmp_path)
        # a read of the table holds the lock its swap needs
        with _holding(demo_marts.dsn, "select 1 from marts.dim_customers limit 1"):
            child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
            # dbt built the new table and waits to swap it in: kill it there
            pid = _wait_until_blocked(conn, database, "dim_customers", child)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        _gone(conn, pid)
        after_kill = (marts_checksum(conn), history_checksum(conn, DEMO_DATE))
        run_dbt(demo_marts.dsn, local_midnight(DEMO_DATE), "run", "--select", "dim_customers",
                work_dir=tmp_path)
        after_rerun = (marts_checksum(conn), history_checksum(conn, DEMO_DATE))
        leftovers = _leftovers(conn)
    assert after_kill == before
    assert after_rerun == before
    assert leftovers == []


KILLED_CLV = """
import sys
from datetime import date
import psycopg
from trebol.clv import predictions
from trebol.settings import load_settings
with psycopg.connect(sys.argv[1], autocommit=True, application_name="trebol-killed-clv") as conn:
    predictions.run_clv(conn, date.fromisoformat(sys.argv[2]), load_settings())
"""


def test_the_clv_write_killed_halfway_changes_nothing(demo_marts: DemoMarts,
                                                      test_warehouse: SessionWarehouse) -> None:
    """Killed after it deleted the date's predictions and while it waits to delete the fit's
    record: the predictions are those of the last clean run, and a re-run gives the same."""
    from trebol.clv import predictions

    database = dsn_parts(demo_marts.dsn).dbname
    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        predictions.run_clv(conn, DEMO_DATE, test_warehouse.settings)
        clean = predicted_value(conn, DEMO_DATE)["checksum"]
        with _holding(demo_marts.dsn, "lock table marts.clv_model_runs in share mode"):
            child = subprocess.Popen([sys.executable, "-c", KILLED_CLV, demo_marts.dsn,
                                      DEMO_DATE.isoformat()], cwd=PROJECT_DIR)
            pid = _wait_until_blocked(conn, database, "clv_model_runs", child)
            deleted_meanwhile = conn.execute(
                "select count(*) from marts.customer_clv where as_of_date = %s", (DEMO_DATE,)
            ).fetchone()[0]
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        _gone(conn, pid)
        after_kill = predicted_value(conn, DEMO_DATE)["checksum"]
        predictions.run_clv(conn, DEMO_DATE, test_warehouse.settings)
        after_rerun = predicted_value(conn, DEMO_DATE)["checksum"]
    assert deleted_meanwhile > 0  # the delete was not visible outside its transaction
    assert after_kill == clean
    assert after_rerun == clean


TERMINATED_LOAD = """
import sys
from datetime import date
from pathlib import Path
import psycopg
from trebol.extract import load
from tests.integration.test_load import TZ, _interval, _source
with psycopg.connect(sys.argv[1], autocommit=True, application_name="trebol-terminated-load") as conn:
    load.extract_and_load(conn, _source("t_terminated"), Path(sys.argv[2]),
                          _interval(date(2026, 6, 3)), 0, TZ)
"""


def test_a_load_whose_connection_the_server_terminates_leaves_no_trace(
        test_warehouse: SessionWarehouse, tmp_path: Path) -> None:
    """pg_terminate_backend while the loader waits to merge a file: the transient error ends
    the attempt with nothing applied or audited; the retry loads the file as a clean run."""
    source = _source("t_terminated")
    _write(tmp_path, source.name, "2026-06-01", ["a,1,2026-06-01T09:00:00+02:00"])
    _write(tmp_path, source.name, "2026-06-02", [f"k{n:05d},{n % 50}.5,2026-06-02T09:00:00+02:00"
                                                 for n in range(5000)] + ["a,2,2026-06-02T10:00:00+02:00"])
    database = dsn_parts(test_warehouse.dsn).dbname
    from trebol.extract import load

    with test_warehouse.connect() as conn:
        load.extract_and_load(conn, source, tmp_path, _interval(date(2026, 6, 2)), 0, TZ)
        before = _checksum(conn, source.target)
        with _holding(test_warehouse.dsn, f"lock table raw.{source.target} in share mode"):
            child = subprocess.Popen([sys.executable, "-c", TERMINATED_LOAD, test_warehouse.dsn,
                                      str(tmp_path)], cwd=PROJECT_DIR,
                                     env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
                                     stderr=subprocess.PIPE, text=True)
            pid = _wait_until_blocked(conn, database, source.target, child)
            assert conn.execute("select pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            _, error = child.communicate(timeout=60)
        after = _checksum(conn, source.target)
        audits = conn.execute("select count(*) from raw._load_audit where source = %s",
                              (source.name,)).fetchone()[0]
        [result] = load.extract_and_load(conn, source, tmp_path, _interval(date(2026, 6, 3)), 0, TZ)
        rows = conn.execute(f"select count(*), max(amount) filter (where id = 'a') "
                            f"from raw.{source.target}").fetchone()
    assert child.returncode != 0 and "terminating connection" in error
    assert (after, audits) == (before, 1)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (5001, 5001, 0)
    assert rows[0] == 5002 and str(rows[1]) == "2", "5,000 new keys and a's second version"


KILLED_SYNC = """
import sys
from datetime import date
from pathlib import Path
import psycopg
from trebol.activation import sync
from trebol.activation.config import parse
from trebol.activation.destinations import file
from trebol.activation.destinations.base import Connection
config = parse({"destinations": {"drop": {"type": "file", "batch_size": 20}},
                "syncs": [{"audience": "aud_winback_high_value", "destination": "drop",
                           "holdout_share": 0.1, "fields": {"email": "email", "offer": "offer_code"}}]})
with psycopg.connect(sys.argv[1], autocommit=True, application_name="trebol-killed-sync") as conn:
    drop = file.build("drop", Connection("", sys.argv[3]), config.destinations["drop"].options)
    sync.run_sync(conn, config, config.syncs[0].name, date.fromisoformat(sys.argv[2]),
                  "killed_run", drop)
"""


def test_a_sync_killed_midway_is_resumed_by_the_rerun_to_the_clean_run_s_files(
        demo_marts: DemoMarts, tmp_path: Path) -> None:
    """kill -9 of a sync while it records its first batch: nothing of that batch counts as sent,
    no delivery appears (its parts wait in a hidden folder), and the re-run resumes the same
    sync run and delivers exactly what a clean sync delivers."""
    from trebol.activation import staging, sync
    from trebol.activation.config import parse
    from trebol.activation.destinations import file
    from trebol.activation.destinations.base import Connection

    database = dsn_parts(demo_marts.dsn).dbname
    config = parse({"destinations": {"drop": {"type": "file", "batch_size": 20}},
                    "syncs": [{"audience": "aud_winback_high_value", "destination": "drop",
                               "holdout_share": 0.1,
                               "fields": {"email": "email", "offer": "offer_code"}}]})
    name = config.syncs[0].name
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    options = config.destinations["drop"].options

    def reset(conn: psycopg.Connection) -> None:
        conn.execute("delete from activation.sync_runs where sync_name = %s", (name,))
        conn.execute("delete from activation.sync_state where sync_name = %s", (name,))

    with psycopg.connect(demo_marts.dsn, autocommit=True) as conn:
        staging.stage_audiences(conn, config, DEMO_DATE)
        reset(conn)
        clean = sync.run_sync(conn, config, name, DEMO_DATE, "clean_run",
                              file.build("drop", Connection("", str(clean_dir)), options))
        reset(conn)
        with _holding(demo_marts.dsn, "lock table activation.sync_state in share mode"):
            child = subprocess.Popen([sys.executable, "-c", KILLED_SYNC, demo_marts.dsn,
                                      DEMO_DATE.isoformat(), str(killed_dir)], cwd=PROJECT_DIR)
            pid = _wait_until_blocked(conn, database, "sync_state", child)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        _gone(conn, pid)
        sent_by_killed = conn.execute("select count(*) from activation.sync_records "
                                      "where status <> 'pending'").fetchone()[0]
        visible = sorted(p.name for p in (killed_dir / "drop" / name).iterdir()
                         if not p.name.startswith("."))
        rerun = sync.run_sync(conn, config, name, DEMO_DATE, "rerun",
                              file.build("drop", Connection("", str(killed_dir)), options))
        runs = conn.execute("select status, run_id from activation.sync_runs where sync_name = %s",
                            (name,)).fetchall()
        reset(conn)
    assert clean.added > 20 and sent_by_killed == 0 and visible == []
    assert rerun.added == clean.added
    assert runs == [("succeeded", "rerun")]  # the killed run, resumed: one run, no duplicate
    delivered = {path.relative_to(killed_dir).as_posix() for path in killed_dir.rglob("*")}
    assert delivered == {path.relative_to(clean_dir).as_posix() for path in clean_dir.rglob("*")}
    for kind in ("snapshot.csv", "changes.csv"):
        relative = Path("drop", name, DEMO_DATE.isoformat(), kind)
        assert (killed_dir / relative).read_bytes() == (clean_dir / relative).read_bytes()
