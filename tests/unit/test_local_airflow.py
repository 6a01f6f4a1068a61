"""The project's Airflow services (trebol.airflow.local_airflow) and the CLI around them, without
starting them: what each service runs with, and the one-line refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trebol import cli
from trebol.airflow import local_airflow
from trebol.settings import SettingsError, load_settings

from ..helpers import PROJECT_DIR

ADMIN_DSN = "postgresql://postgres:pa%40ss@db.example:5432/trebol"


def _settings(tmp_path: Path, **env: str):
    return load_settings({"TREBOL_PROJECT_DIR": str(PROJECT_DIR), "TREBOL_HOME": str(tmp_path), **env})


def test_the_metadata_database_sits_beside_the_warehouse_database() -> None:
    assert local_airflow.metadata_database(ADMIN_DSN) == "trebol_airflow"
    assert local_airflow.metadata_url(ADMIN_DSN) == (
        "postgresql+psycopg2://postgres:pa%40ss@db.example:5432/trebol_airflow")
    socket_dsn = "postgresql://postgres@/trebol_test?host=/tmp/wh&port=15432"
    assert local_airflow.metadata_dsn(socket_dsn) == (
        "postgresql://postgres@/trebol_test_airflow?host=/tmp/wh&port=15432")


def test_every_service_shares_the_projects_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, TREBOL_AIRFLOW_PORT="18123", TREBOL_TIMEZONE="America/Bogota")
    env = local_airflow.services_env(settings, ADMIN_DSN, ADMIN_DSN, {}, demo_webhook=False)
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(PROJECT_DIR / "dags")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    # `airflow backfill create --from-date D` means D's local midnight, the logical date of D
    assert env["AIRFLOW__CORE__DEFAULT_TIMEZONE"] == "America/Bogota"
    assert env["AIRFLOW__API__PORT"] == "18123"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18123/execution/"
    # the task tokens are signed and checked with one key, made once and kept private
    secret_file = tmp_path / "secrets" / "airflow_jwt_secret"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secret_file.read_text()
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
    again = local_airflow.services_env(settings, ADMIN_DSN, ADMIN_DSN, {}, demo_webhook=False)
    assert again["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert "AIRFLOW__CELERY__BROKER_URL" not in env
    names = [service.name for service in local_airflow.services(settings, demo_webhook=False)]
    assert names == ["api-server", "scheduler", "dag-processor", "triggerer"]


def test_celery_adds_its_workers_and_broker(tmp_path: Path) -> None:
    settings = _settings(tmp_path, TREBOL_AIRFLOW_EXECUTOR="celery", TREBOL_AIRFLOW_WORKERS="3",
                         TREBOL_AIRFLOW_BROKER_URL="redis://:pw@10.0.0.5:6379/2")
    env = local_airflow.services_env(settings, ADMIN_DSN, ADMIN_DSN, {}, demo_webhook=True)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:pw@10.0.0.5:6379/2"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    # the demo's webhook receiver: a connection to it, its secret only in the receiver's own env
    connection = json.loads(env["AIRFLOW_CONN_TREBOL_DEMO_WEBHOOK"])
    assert connection["host"] == f"http://127.0.0.1:{settings.airflow_port + 3}"
    assert local_airflow.DEMO_WEBHOOK_SECRET_ENV not in env
    services = local_airflow.services(settings, demo_webhook=True)
    workers = [service for service in services if service.name.startswith("celery-worker")]
    assert [worker.name for worker in workers] == [f"celery-worker-{n}" for n in (1, 2, 3)]
    hostnames = {worker.argv[worker.argv.index("--celery-hostname") + 1] for worker in workers}
    assert len(hostnames) == 3
    assert services[-1].name == "demo-webhook"


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("TREBOL_AIRFLOW_EXECUTOR", "kubernetes", "TREBOL_AIRFLOW_EXECUTOR: 'kubernetes' is not one of"),
    ("TREBOL_AIRFLOW_BROKER_URL", "amqp://guest@localhost//",
     "TREBOL_AIRFLOW_BROKER_URL: scheme 'amqp' is not redis"),
    ("TREBOL_AIRFLOW_PORT", "80", "TREBOL_AIRFLOW_PORT: 80 is below 1,024"),
    ("TREBOL_SCHEDULE_END", "2026-13-01", "TREBOL_SCHEDULE_END: '2026-13-01' is not a date"),
])
def test_a_wrong_airflow_setting_is_one_line(tmp_path: Path, name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as error:
        _settings(tmp_path, **{name: value})
    assert str(error.value).startswith(expected)
    assert "\n" not in str(error.value)


def test_status_reads_the_pid_files_and_ignores_dead_ones(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    run_dir = local_airflow.run_dir(settings)
    run_dir.mkdir(parents=True)
    (run_dir / "scheduler.pid").write_text(str(os.getpid()))
    (run_dir / "triggerer.pid").write_text("999999999")
    (run_dir / "api-server.pid").write_text("not a pid")
    assert local_airflow.running(settings) == {"scheduler": os.getpid()}


def test_a_one_shot_run_is_refused_while_the_scheduler_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREBOL_HOME", str(tmp_path))
    settings = _settings(tmp_path)
    local_airflow.run_dir(settings).mkdir(parents=True)
    (local_airflow.run_dir(settings) / "scheduler.pid").write_text(str(os.getpid()))
    with pytest.raises(local_airflow.AirflowRunning) as error:
        local_airflow.refuse_if_running(settings, "trebol run --date 2026-06-30")
    assert "the project's Airflow is running" in str(error.value)
    assert "trebol backfill --from D --to D" in str(error.value)


def test_a_backfill_range_backwards_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["backfill", "--from", "2026-06-30", "--to", "2026-06-27"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "trebol backfill: --to 2026-06-27 is before --from 2026-06-30"


def test_backfill_offers_airflows_reprocess_behaviors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["backfill", "--from", "2026-06-27", "--to", "2026-06-29",
                  "--reprocess-behavior", "sometimes"])
    assert "(choose from 'none', 'failed', 'completed')" in capsys.readouterr().err
