"""The warehouse as Airflow tasks reach it: through the Airflow connection ``trebol_warehouse``
(or another connection id, e.g. a source database), so that credentials live in Airflow's
connections or the environment (``AIRFLOW_CONN_<ID>``), never in XCom, templates or logs.

Inputs: an Airflow connection id. Outputs: DSN parts, a DSN, or an open psycopg connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from trebol.warehouse.address import AIRFLOW_CONN_ID, DsnParts, build_dsn


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
