"""The warehouse as Airflow tasks reach it: each task through the Airflow connection of its
role (``ROLE_OF_TASK``: ``trebol_warehouse_loader``, ``_transformer``, ``_activation``,
``_checker``; the admin's ``trebol_warehouse`` for the migrations only), or another connection
id (a source database), so that credentials live in Airflow's connections or the environment
(``AIRFLOW_CONN_<ID>``), never in XCom, templates or logs.

Inputs: an Airflow connection id or a task id. Outputs: DSN parts, a DSN, or an open psycopg
connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg

from trebol.warehouse.address import AIRFLOW_CONN_ID, ERASER_ROLE, DsnParts, build_dsn, role_conn_id

# The warehouse role each task of the nightly DAG connects as (what each may do: the README,
# "Least privilege", and warehouse/ddl.py); None: the admin connection, for the migrations.
ROLE_OF_TASK: dict[str, str | None] = {
    "prepare_warehouse": None,
    "extract_load": "loader",
    "dbt_build": "transformer",
    "dbt_build_value": "transformer",
    "fit_clv": "transformer",  # its outputs are a dbt source: the same trust as dbt's models
    "check_raw_batches": "checker",
    "check_marts": "checker",
    "stage_audiences": "activation",
    "push_audiences": "activation",
    "summarize": "checker",  # reads every layer and the checks' results, writes nothing
    "find_newest_date": "transformer",  # reads the history of segments (marts)
    "rebuild_current_marts": "transformer",
}
# Every task of the erasure DAG (trebol_erasure) connects as the eraser (warehouse/ddl.py,
# migration 13), through this connection.
ERASER_CONN_ID = role_conn_id(ERASER_ROLE)
# The tasks that never reach the warehouse: they read configuration (the lists) or a campaign
# tool through its own Airflow connection (pull_consent_feedback, into the sources folder).
TASKS_WITHOUT_WAREHOUSE = frozenset({"list_sources", "list_syncs", "pull_consent_feedback",
                                     "fail_run"})


def task_conn_id(task_id: str) -> str:
    """The Airflow connection a task of the nightly DAG reaches the warehouse with."""
    role = ROLE_OF_TASK[task_id]
    return AIRFLOW_CONN_ID if role is None else role_conn_id(role)


def warehouse_parts(conn_id: str = AIRFLOW_CONN_ID) -> DsnParts:
    """The warehouse's address from the Airflow connection."""
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    return DsnParts(host=connection.host or "localhost", port=int(connection.port or 5432),
                    user=connection.login or "postgres", password=connection.password or "",
                    dbname=connection.schema or "postgres")


def warehouse_dsn(conn_id: str = AIRFLOW_CONN_ID) -> str:
    """The warehouse DSN built from the Airflow connection."""
    return build_dsn(warehouse_parts(conn_id))


@contextmanager
def warehouse_connection(conn_id: str = AIRFLOW_CONN_ID) -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection for an Airflow connection (the warehouse unless
    ``conn_id`` names another, e.g. a source database), from the provider's PostgresHook;
    callers open transactions explicitly with ``conn.transaction()``."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def task_connection(task_id: str) -> AbstractContextManager[psycopg.Connection]:
    """:func:`warehouse_connection` as the role of a task of the nightly DAG."""
    return warehouse_connection(task_conn_id(task_id))
