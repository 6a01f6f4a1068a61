"""Shared fixtures: one real PostgreSQL warehouse and one simulated dataset per test session.

The warehouse is the embedded server (under .trebol/test) unless TREBOL_WAREHOUSE_DSN names an
external PostgreSQL; then a fresh database ``trebol_test`` is created on that server, so the
suite never touches the database the DSN points at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from trebol import load, warehouse
from trebol.load import SourceConnector
from trebol.settings import Settings, load_settings
from trebol.simulator import SimulationResult, SimulationSpec, simulate
from trebol.sources import load_sources

PROJECT_DIR = Path(__file__).resolve().parents[1]
TEST_HOME = PROJECT_DIR / ".trebol" / "test"
TEST_DATABASE = "trebol_test"
TEST_POS_DATABASE = "trebol_test_pos"
DEMO_DATE = date(2026, 6, 30)

QUIET = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "GX_ANALYTICS_ENABLED": "False",
    "TQDM_DISABLE": "1",
}
# Airflow reads AIRFLOW_HOME when first imported: keep the tests' Airflow inside the project.
os.environ.setdefault("AIRFLOW_HOME", str(PROJECT_DIR / ".trebol" / "test-airflow"))
os.environ.update(QUIET)


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
    parts = warehouse.dsn_parts(admin_dsn)
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return warehouse.build_dsn(warehouse.DsnParts(parts.host, parts.port, parts.user,
                                                  parts.password, name))


def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drop the database ``dsn`` names, from the server of ``admin_dsn``."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(warehouse.dsn_parts(dsn).dbname)))


@pytest.fixture(scope="session")
def test_env() -> Iterator[dict[str, str]]:
    """Environment of the test session: a private TREBOL_HOME and a small demo."""
    external = os.environ.get("TREBOL_WAREHOUSE_DSN", "").strip()
    base = {
        **QUIET,
        "TREBOL_HOME": str(TEST_HOME),
        "TREBOL_DEMO_DATE": DEMO_DATE.isoformat(),
        "TREBOL_DEMO_CUSTOMERS": "400",
        "TREBOL_DEMO_DAYS": "90",
        "TREBOL_DEMO_SEED": "7",
        "TREBOL_TIMEZONE": "Europe/Madrid",
        "TREBOL_CLV_MIN_REPEAT_CUSTOMERS": "20",  # a 400-person, 90-day demo has few repeat buyers
    }
    if not external:
        settings = load_settings({**os.environ, **base, "TREBOL_WAREHOUSE_DSN": ""})
        warehouse.stop_embedded(settings) if settings.embedded_data_dir.exists() else None
    shutil.rmtree(TEST_HOME, ignore_errors=True)
    TEST_HOME.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in base.items():
            patch.setenv(name, value)
        if external:
            patch.setenv("TREBOL_WAREHOUSE_DSN", fresh_database(external, TEST_DATABASE))
            patch.setenv("TREBOL_POS_DSN", fresh_database(external, TEST_POS_DATABASE))
        yield {**base, **{name: os.environ[name] for name in ("TREBOL_WAREHOUSE_DSN", "TREBOL_POS_DSN")
                          if name in os.environ}}
        if not external:
            warehouse.stop_embedded(load_settings())


@pytest.fixture(scope="session")
def test_warehouse(test_env: dict[str, str]) -> SessionWarehouse:
    """The session's real PostgreSQL, with the layer schemas in place."""
    settings = load_settings()
    dsn = warehouse.resolve_dsn(settings)
    with psycopg.connect(dsn, autocommit=True) as conn:
        warehouse.bootstrap(conn)
    return SessionWarehouse(dsn, warehouse.resolve_pos_dsn(settings, dsn), settings, test_env)


@pytest.fixture(scope="session")
def demo_sources(test_warehouse: SessionWarehouse) -> SimulationResult:
    """The session's simulated sources (seeded): files in TREBOL_SOURCES_DIR, POS database."""
    settings = test_warehouse.settings
    spec = SimulationSpec(settings.demo_customers, settings.demo_days, settings.demo_date,
                          settings.demo_seed, settings.timezone)
    return simulate(spec, settings.sources_dir, test_warehouse.pos_dsn)


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


def run_dbt(dsn: str, as_of_at: datetime, *args: str, work_dir: Path,
            should_fail: bool = False) -> str:
    """``dbt <args>`` on the project against ``dsn`` as of ``as_of_at`` (its own target folder
    under ``work_dir``, so the project's is untouched); its output. Fails the test with dbt's
    output when dbt fails, or, ``should_fail``, when it succeeds."""
    env = {**os.environ, **QUIET, **warehouse.dbt_env(warehouse.dsn_parts(dsn)),
           "TREBOL_AS_OF_AT": as_of_at.isoformat()}
    project = PROJECT_DIR / "dbt_project"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(project),
         "--profiles-dir", str(project), "--target-path", str(work_dir / "target"),
         "--log-path", str(work_dir / "logs")],
        env=env, capture_output=True, text=True, check=False)
    assert (done.returncode != 0) == should_fail, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def local_midnight(day: date, timezone: str = "Europe/Madrid") -> datetime:
    """The first moment of ``day`` in ``timezone``: the data interval end of the run for ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone))


@dataclass(frozen=True)
class DemoMarts:
    """A database of its own holding the session's demo sources, loaded and built by dbt as of
    DEMO_DATE (outside the e2e DAG runs), and the work folder its dbt runs use."""

    dsn: str
    work_dir: Path


@pytest.fixture(scope="session")
def demo_marts(test_warehouse: SessionWarehouse, demo_sources: SimulationResult,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoMarts]:
    """Built once per session for the mart tests that read the demo data (CLV, loyalty); a test
    that rebuilds some marts as of another date must leave the others alone."""
    work = tmp_path_factory.mktemp("demo-marts")
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_marts")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            warehouse.bootstrap(conn)
            load_sources_until(conn, test_warehouse.pos_dsn, test_warehouse.settings.sources_dir,
                               DEMO_DATE)
        run_dbt(dsn, local_midnight(DEMO_DATE), "build", work_dir=work)
        yield DemoMarts(dsn, work)
    finally:
        drop_database(test_warehouse.dsn, dsn)
