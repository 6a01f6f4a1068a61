"""What the tests share besides fixtures: the session's constants, databases of their own on
the session's server, loading the demo sources as the DAG does, and dbt runs against a database.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from pytest import MonkeyPatch

from trebol import dbt_cli, interval
from trebol.extract import load
from trebol.extract.load import SourceConnector
from trebol.extract.sources import load_sources
from trebol.settings import Settings
from trebol.warehouse import address
from trebol.warehouse.embedded import create_database

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEMO_CONFIG_DIR = PROJECT_DIR / "config"
# the pytest-xdist worker this session is (make test runs two: gw0, gw1), none when run alone
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
# the test session's TREBOL_HOME (TREBOL_TEST_HOME: another one, e.g. for a second session beside
# the first, as .ci/run runs the server pass), one per xdist worker: each its own warehouse
_HOME = Path(os.environ.get("TREBOL_TEST_HOME") or PROJECT_DIR / ".trebol" / "test")
TEST_HOME = (_HOME.with_name(f"{_HOME.name}-{XDIST_WORKER}") if XDIST_WORKER else _HOME).resolve()
# the session's databases; on an external server (TREBOL_WAREHOUSE_DSN) each worker has its own
TEST_DATABASE = "trebol_test" + (f"_{XDIST_WORKER}" if XDIST_WORKER else "")
TEST_POS_DATABASE = TEST_DATABASE + "_pos"
DEMO_DATE = date(2026, 6, 30)

QUIET = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "GX_ANALYTICS_ENABLED": "False",
    "TQDM_DISABLE": "1",
}


@dataclass(frozen=True)
class SessionWarehouse:
    """The session's warehouse and POS database: their DSNs and the settings that reach them."""

    dsn: str
    pos_dsn: str
    settings: Settings
    env: dict[str, str]

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True)


def fresh_database(admin_dsn: str, name: str) -> str:
    """(Re)create database ``name`` on the server of ``admin_dsn``; its DSN."""
    parts = address.dsn_parts(admin_dsn)
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        create_database(conn, name)  # as the embedded warehouse's own
    return address.build_dsn(address.DsnParts(parts.host, parts.port, parts.user,
                                                  parts.password, name))


def copy_database(admin_dsn: str, template_dsn: str, name: str) -> str:
    """(Re)create database ``name`` as a copy of ``template_dsn``'s (no one may be connected to
    it); its DSN."""
    parts = address.dsn_parts(template_dsn)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {} template {}").format(
            sql.Identifier(name), sql.Identifier(parts.dbname)))
    return address.build_dsn(address.DsnParts(parts.host, parts.port, parts.user, parts.password,
                                              name))


def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drop the database ``dsn`` names, from the server of ``admin_dsn``."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(address.dsn_parts(dsn).dbname)))


def source_connector(dsn: str) -> SourceConnector:
    """A source connector like the DAG's (which goes through Airflow connections) that opens
    ``dsn`` whatever connection name the source declares."""

    @contextmanager
    def connect(_name: str) -> Iterator[psycopg.Connection]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            yield conn

    return connect


def load_sources_until(conn: psycopg.Connection, pos_dsn: str, sources_dir: Path, day: date,
                       timezone: str = "Europe/Madrid") -> None:
    """Extract and load every declared source into ``conn``'s ``raw``, as the DAG's
    ``extract_load`` does for the data interval that ends as ``day`` starts."""
    end = local_midnight(day, timezone)
    interval = load.Interval(end - timedelta(days=1), end)
    for source in load_sources().values():
        load.extract_and_load(conn, source, sources_dir, interval, 3, timezone, source_connector(pos_dsn))


def dbt_command(dsn: str, as_of_at: datetime, *args: str,
                work_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``dbt <args>`` on the project against ``dsn`` as of
    ``as_of_at`` (its own target folder under ``work_dir``, so the project's is untouched)."""
    command, env = dbt_cli.dbt_command(PROJECT_DIR / "dbt_project", dsn, as_of_at, *args,
                                       work_dir=work_dir)
    return command, {**env, **QUIET}


def run_dbt(dsn: str, as_of_at: datetime, *args: str, work_dir: Path,
            should_fail: bool = False) -> str:
    """``dbt <args>`` (see :func:`dbt_command`); its output. Fails the test with dbt's output
    when dbt fails, or, ``should_fail``, when it succeeds."""
    command, env = dbt_command(dsn, as_of_at, *args, work_dir=work_dir)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert (done.returncode != 0) == should_fail, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def local_midnight(day: date, timezone: str = "Europe/Madrid") -> datetime:
    """The first moment of ``day`` in ``timezone`` (default: the tests' business timezone)."""
    return interval.local_midnight(day, timezone)


def use_mailchimp_destination(monkeypatch: MonkeyPatch, tmp_path: Path, base_url: str,
                              api_key: str, list_id: str) -> Path:
    """Point the settings at a configuration folder of the demo's sources with a Mailchimp
    destination ``news`` (beside a file one) whose Airflow connection ``test_mailchimp``, in the
    environment, reaches ``base_url``, and at an empty sources folder; returns the latter."""
    config = tmp_path / "config"
    config.mkdir()
    for name in ("sources.yml", "quality.yml"):
        (config / name).write_text((DEMO_CONFIG_DIR / name).read_text())
    (config / "destinations.yml").write_text("""
destinations:
  drop: {type: file}
  news: {type: mailchimp, connection: test_mailchimp, max_attempts: 2, backoff_seconds: 0.001,
         max_backoff_seconds: 0.01}
syncs:
  - {audience: aud_vip, destination: news, holdout_share: 0, fields: {email_address: email}}
""")
    monkeypatch.setenv("TREBOL_CONFIG_DIR", str(config))
    monkeypatch.setenv("TREBOL_SOURCES_DIR", str(tmp_path / "sources"))
    monkeypatch.setenv("AIRFLOW_CONN_TEST_MAILCHIMP", json.dumps(
        {"conn_type": "generic", "host": base_url, "password": api_key,
         "extra": {"list_id": list_id}}))
    return tmp_path / "sources"


@dataclass(frozen=True)
class DemoMarts:
    """A database of its own holding the session's demo sources, loaded and built by dbt as of
    DEMO_DATE (outside the e2e DAG runs), and the work folder its dbt runs use."""

    dsn: str
    work_dir: Path


