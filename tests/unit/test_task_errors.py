"""Task errors: what no retry cures (a wrong setting or configuration, a value PostgreSQL
refuses) fails the task at once with AirflowFailException; what time may cure (a connection, a
lock, an unreachable source) raises as it is, for Airflow's retries."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from airflow.sdk.exceptions import AirflowFailException

from trebol.airflow import tasks
from trebol.extract import load
from trebol.interval import Interval

from ..helpers import PROJECT_DIR

INTERVAL = Interval(datetime(2026, 6, 1, tzinfo=ZoneInfo("Europe/Madrid")),
                    datetime(2026, 6, 2, tzinfo=ZoneInfo("Europe/Madrid")))


def test_every_task_body_fails_without_retry_on_deterministic_errors() -> None:
    bodies = [name for name, function in inspect.getmembers(tasks, inspect.isfunction)
              if function.__module__ == tasks.__name__ and not name.startswith("_")
              and name != "final_on_deterministic_errors"]
    assert "extract_load_source" in bodies
    assert [name for name in bodies if not hasattr(getattr(tasks, name), "__wrapped__")] == []


def test_a_wrong_sources_file_fails_the_extract_task_without_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("sources.yml", "quality.yml", "destinations.yml"):
        (tmp_path / name).write_text((PROJECT_DIR / "config" / name).read_text())
    (tmp_path / "sources.yml").write_text((tmp_path / "sources.yml").read_text().replace(
        "max_text_length: 1000", "max_text_length: -1"))
    monkeypatch.setenv("TREBOL_CONFIG_DIR", str(tmp_path))
    with pytest.raises(AirflowFailException, match=r"^SourceConfigError: sources\.yml: max_text_length: "):
        tasks.extract_load_source("crm_contacts", INTERVAL)
    (tmp_path / "sources.yml").write_text((PROJECT_DIR / "config" / "sources.yml").read_text())
    with pytest.raises(AirflowFailException, match=r"source 'gone' is no longer declared"):
        tasks.extract_load_source("gone", INTERVAL)


@contextmanager
def _no_warehouse(_conn_id: str = "") -> Iterator[None]:
    yield None


@pytest.mark.parametrize(("error", "final"), [
    (psycopg.errors.InvalidTextRepresentation("invalid input syntax for type integer"), True),
    (psycopg.errors.NotNullViolation("null value in column"), True),
    (psycopg.errors.StatementTooComplex("stack depth limit exceeded"), True),
    (psycopg.OperationalError("connection refused"), False),
    (psycopg.errors.LockNotAvailable("could not obtain lock"), False),
    (psycopg.errors.DeadlockDetected("deadlock detected"), False),
    (load.SourceUnavailable("source pos_tickets: cannot reach connection 'trebol_pos'"), False),
])
def test_only_data_errors_are_final(monkeypatch: pytest.MonkeyPatch, error: Exception, final: bool) -> None:
    def raising(*_args: object, **_kwargs: object) -> None:
        raise error

    monkeypatch.setattr(tasks, "task_connection", _no_warehouse)
    monkeypatch.setattr(load, "extract_and_load", raising)
    expected = AirflowFailException if final else type(error)
    with pytest.raises(expected) as raised:
        tasks.extract_load_source("crm_contacts", INTERVAL)
    if final:
        assert str(raised.value) == f"{type(error).__name__}: {error}"
        assert raised.value.__cause__ is error


def test_a_clv_guard_rail_fails_the_fit_without_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    from trebol.clv import fitting, predictions

    def refused(*_args: object, **_kwargs: object) -> None:
        raise fitting.CLVFitError("BG/NBD: 12 repeat customers, fewer than the 100 required")

    monkeypatch.setattr(tasks, "task_connection", _no_warehouse)
    monkeypatch.setattr(predictions, "run_clv", refused)
    with pytest.raises(AirflowFailException, match="CLVFitError: BG/NBD: 12 repeat customers"):
        tasks.fit_clv(INTERVAL)
