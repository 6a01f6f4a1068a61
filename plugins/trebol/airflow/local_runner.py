"""Run a Trébol DAG for one logical date with real Airflow, from the command line.

The parent (``run_dag``) prepares a project-local Airflow (SQLite metadata under
``TREBOL_HOME/airflow``, no example DAGs, the warehouse in the environment as connection
``trebol_warehouse``, the admin's, and ``trebol_warehouse_<role>`` for each task role), migrates
the metadata database, then starts a child process
(``python -m trebol.airflow.local_runner DAG_ID LOGICAL_DATE``) that executes every task of one
DAG run with ``dag.test()`` (``test_run``). While the child works, the parent reads task states from the
metadata database and reports them as progress. The child stops with the parent, however the
parent ends (``stopped_with_this_process``, ``stop_with_parent``).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from trebol.settings import Settings

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from airflow.sdk import DAG
from trebol.warehouse.address import (
    AIRFLOW_CONN_ID,
    POS_CONN_ID,
    airflow_connection_json,
    role_conn_id,
)

QUIET_ENV = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "False",
    "TQDM_DISABLE": "1",
}


# the environment variable that carries a run's conf to the child (trebol.settings knows it)
RUN_CONF_VARIABLE = "TREBOL_DAG_RUN_CONF"

# The child's garbage collector thresholds (Python's default: 700, 10, 10). dag.test() runs every
# task inside the child itself: Airflow, its in-process API, dbt, Great Expectations and pandas
# leave about a million objects alive in it, and with the default the collector went through
# them 19 times a run. Measured on the small bench's increment (2,000 people): 5.1 and 4.8 s of
# the run in the collector with the default, 2.3 and 2.6 s with these; the same peak memory
# (565 MB). A larger first generation is collected less often; young cycles wait a little longer.
CHILD_GC_THRESHOLDS = (50_000, 20, 10)


class DagRunFailed(RuntimeError):
    """The DAG run did not succeed; the message names the failed tasks and the log file."""


class DagRunStopped(DagRunFailed):
    """This process was told to stop (SIGTERM) during the run; the run was stopped with it."""


def _stop(signum: int, _frame: object) -> None:
    raise DagRunStopped(f"stopped by signal {signal.Signals(signum).name}: the DAG run was "
                        "stopped with it")


@contextmanager
def stopped_with_this_process(child: subprocess.Popen) -> Iterator[None]:
    """While the block runs, a SIGTERM to this process raises :class:`DagRunStopped`; whatever
    ends the block (that, Ctrl-C, any error) stops ``child`` and its processes (its own session:
    tasks, dbt) first. Without it, a ``trebol run`` stopped with SIGTERM left its ``dag.test()``
    child running the DAG with no run lock held (the lock is the parent's connection): measured,
    an orphan ran tasks of a run for an hour beside the next ``trebol run`` of the same date."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop) if in_main_thread else None
    try:
        yield
    finally:
        if in_main_thread:  # None: a handler not set from Python; the default then
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def stop_with_parent(parent_pid: int, interval: float = 1.0) -> threading.Thread:
    """In the DAG run child: once ``parent_pid`` (the ``trebol run`` that started it) is gone,
    kill this process's group (the child's own session: it, its tasks, dbt) with SIGKILL, as a
    crash would have. :func:`stopped_with_this_process` stops the child when the parent can
    still act; a parent killed with SIGKILL (a crash, the OOM killer, ``kill -9``) cannot, and
    the child went on running the DAG without the run lock (measured), beside the next
    ``trebol run`` of the date (seen once: that run's ``extract_load`` failed at once).
    Each task is a transaction, so a kill leaves what a crash leaves; the next run re-runs
    it. A thread polling the parent id, portable where Linux's parent-death signal is not."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    watcher = threading.Thread(target=watch, name="stop-with-parent", daemon=True)
    watcher.start()
    return watcher


def airflow_env(settings: Settings, dsn: str, pos_dsn: str,
                role_dsns: Mapping[str, str]) -> dict[str, str]:
    """Environment for a project-local Airflow that reaches the warehouse (as the admin, ``dsn``,
    and as each task role, ``role_dsns``) and the POS database."""
    home = settings.airflow_home
    return {
        **QUIET_ENV,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.project_dir / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        f"AIRFLOW_CONN_{AIRFLOW_CONN_ID.upper()}": airflow_connection_json(dsn),
        f"AIRFLOW_CONN_{POS_CONN_ID.upper()}": airflow_connection_json(pos_dsn),
        **{f"AIRFLOW_CONN_{role_conn_id(role).upper()}": airflow_connection_json(role_dsn)
           for role, role_dsn in role_dsns.items()},
        "TREBOL_HOME": str(settings.home),
        "TREBOL_PROJECT_DIR": str(settings.project_dir),
        "TREBOL_CONFIG_DIR": str(settings.config_dir),
    }


def airflow_binary() -> str:
    """The ``airflow`` command of this virtualenv."""
    return str(Path(sys.executable).with_name("airflow"))


def _query(db_path: Path, query: str, parameters: tuple[object, ...]) -> list[tuple]:
    if not db_path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute(query, parameters).fetchall()
    except sqlite3.Error:
        return []


def _task_states(db_path: Path, dag_id: str, since: datetime,
                 map_labels: Mapping[str, list[str]]) -> dict[str, str]:
    """Task states of the runs of ``dag_id`` started since ``since`` (a new run, or an earlier one
    run again: ``_rerun_or_create_dagrun``)."""
    rows = _query(db_path, """
        select ti.task_id, ti.map_index, ti.rendered_map_index, ti.state
        from task_instance ti join dag_run run on run.dag_id = ti.dag_id and run.run_id = ti.run_id
        where run.dag_id = ? and run.start_date >= ?""", (dag_id, f"{since:%Y-%m-%d %H:%M:%S}"))
    # a mapped task is named by its map_labels entry (known before it runs: the sources), else by
    # the name its map_index_template rendered, else by its index
    def name(task: str, index: int, rendered: str | None) -> str:
        if index < 0:
            return task
        labels = map_labels.get(task, [])
        return f"{task}[{labels[index] if index < len(labels) else rendered or index}]"

    return {name(task, index, rendered): state or "scheduled" for task, index, rendered, state in rows}


def _migrate(settings: Settings, env: dict[str, str], log: IO[str], log_file: Path,
             progress: Callable[[str], None]) -> None:
    """``airflow db migrate``, skipped when this Airflow version already migrated the DB."""
    from importlib.metadata import version

    marker = settings.airflow_home / "migrated-version"
    db_file = settings.airflow_home / "airflow.db"
    wanted = version("apache-airflow-core")
    if db_file.exists() and marker.exists() and marker.read_text() == wanted:
        return
    progress("airflow: migrating the metadata database")
    migrated = subprocess.run([airflow_binary(), "db", "migrate"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, check=False)
    if migrated.returncode != 0:
        raise DagRunFailed(f"airflow db migrate failed; see {log_file}")
    marker.write_text(wanted)


def run_dag(settings: Settings, dsn: str, pos_dsn: str, role_dsns: Mapping[str, str], dag_id: str,
            logical_date: datetime, log_file: Path, progress: Callable[[str], None],
            map_labels: Mapping[str, list[str]] | None = None,
            extra_env: Mapping[str, str] | None = None,
            conf: Mapping[str, Any] | None = None) -> None:
    """Migrate Airflow's metadata DB and run ``dag_id`` for ``logical_date``; raise on failure.
    ``map_labels`` names the instances of a mapped task in the progress lines (by map index);
    ``extra_env`` adds to the run's environment (e.g. the demo endpoints' connections);
    ``conf`` is the run's conf (its params), handed to the child in its environment (never on
    its command line, which other users of the machine can read)."""
    env = {**os.environ, **airflow_env(settings, dsn, pos_dsn, role_dsns), **(extra_env or {})}
    if conf is not None:
        env[RUN_CONF_VARIABLE] = json.dumps(dict(conf))
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        _migrate(settings, env, log, log_file, progress)
        progress(f"airflow: running {dag_id} for {logical_date.isoformat()} (parsing the DAG and "
                 "starting the run take a few seconds)")
        db_path = settings.airflow_home / "airflow.db"
        started = datetime.now(UTC).replace(microsecond=0)
        child = subprocess.Popen([sys.executable, "-m", "trebol.airflow.local_runner", dag_id,
                                  logical_date.isoformat()], env=env, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        seen: dict[str, str] = {}
        waited = 0
        with stopped_with_this_process(child):
            while child.poll() is None:
                # a second between looks at the task states, less when the child ends
                with suppress(subprocess.TimeoutExpired):
                    child.wait(1)
                waited += 1
                if not seen and waited % 10 == 0:
                    progress(f"  starting ({waited} s)")
                for task, state in _task_states(db_path, dag_id, started,
                                                map_labels or {}).items():
                    if seen.get(task) != state and state in ("running", "success", "failed",
                                                             "upstream_failed", "up_for_retry"):
                        progress(f"  {task}: {state}")
                        seen[task] = state
    if child.returncode != 0:
        failed = [t for t, s in seen.items() if s in ("failed", "upstream_failed", "up_for_retry")]
        raise DagRunFailed(f"DAG run {dag_id} {logical_date.date()} failed "
                           f"({', '.join(failed) or 'see log'}); log: {log_file}")


def _rerun_or_create_dagrun(*, dag: Any, run_id: str, logical_date: datetime | None,
                            data_interval: Any, run_after: datetime, conf: dict | None,
                            triggered_by: Any, triggering_user_name: str | None,
                            start_date: datetime, session: Any) -> DagRun:
    """Replaces ``airflow.models.dagrun.get_or_create_dagrun``, the helper of ``dag.test()``
    (Airflow 3.3.2), which deletes an earlier run of the logical date (its record and task
    history gone from the UI) and starts the new one at the logical date (a run of a past date
    then lasts months in the UI). Here the earlier run is re-run as the UI's "Clear" does (its
    task instances were cleared by ``dag.test()`` just before; their tries stay in the history)
    and every run starts now."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    now = datetime.now(UTC)
    earlier = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id,
                                                  DagRun.logical_date == logical_date))
    if earlier is None:
        return dag.create_dagrun(run_id=run_id, logical_date=logical_date, data_interval=data_interval,
                                 run_after=run_after, conf=conf, run_type=DagRunType.MANUAL,
                                 state=DagRunState.RUNNING, triggered_by=triggered_by,
                                 triggering_user_name=triggering_user_name, start_date=now,
                                 session=session)
    # a task the clear could not stop (a run killed mid-task: nothing runs it any more) is left
    # 'restarting', which dag.test() never runs: the re-run waited for ever (measured: a killed
    # run's dbt_build). This run holds the run lock, so no process of an earlier run is alive.
    restarting = session.scalars(select(TaskInstance).where(
        TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == earlier.run_id,
        TaskInstance.state == TaskInstanceState.RESTARTING))
    for task_instance in restarting:
        task_instance.state = None
    earlier.dag = dag  # what create_dagrun sets on a new run, for dag.test()'s loop
    earlier.state = DagRunState.RUNNING
    earlier.start_date, earlier.end_date, earlier.queued_at = now, None, now
    earlier.conf = conf or {}
    earlier.clear_number += 1
    session.commit()
    return earlier


def test_run(dag: DAG, logical_date: datetime, run_conf: dict[str, Any] | None = None) -> DagRun:
    """``dag.test()`` of one logical date (with ``run_conf``, a triggered DAG's params), in this
    process, re-running an earlier run of the date rather than deleting it
    (``_rerun_or_create_dagrun``). Without the DAG's Deadline Alerts: no scheduler watches them
    here, and Airflow 3.3.2's ``dag.test()`` fails the run of a DAG that has one when it
    succeeds (it looks the alert up by its serialized form, not its id)."""
    from airflow.models import dagrun

    dag.deadline = None
    # dag.test() imports the helper from its module when it runs: swapped for that call only
    replaced, dagrun.get_or_create_dagrun = dagrun.get_or_create_dagrun, _rerun_or_create_dagrun
    try:
        return dag.test(logical_date=logical_date, run_conf=run_conf)
    finally:
        dagrun.get_or_create_dagrun = replaced


def _child(dag_id: str, logical_date: str) -> int:
    gc.set_threshold(*CHILD_GC_THRESHOLDS)
    from airflow.dag_processing.dagbag import DagBag

    stop_with_parent(os.getppid())
    conf = os.environ.pop(RUN_CONF_VARIABLE, None)

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
        return 2
    dag = bag.get_dag(dag_id)
    dag_run = test_run(dag, datetime.fromisoformat(logical_date), json.loads(conf) if conf else None)
    state = str(getattr(dag_run.state, "value", dag_run.state))
    print(f"trebol: dag run {dag_run.run_id} finished: {state}")
    # what is left is freed with the process: without this, the interpreter's exit collected
    # the million objects above for 3 s after the run had ended (py-spy: gc_collect_main)
    gc.freeze()
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2]))
