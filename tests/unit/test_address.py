"""Warehouse addresses: a DSN's parts read as libpq reads them, so that the Airflow connection
and dbt's profile reach the same database with the same credentials."""

from __future__ import annotations

import json

from psycopg.conninfo import conninfo_to_dict

from trebol.warehouse.address import DsnParts, airflow_connection_json, dbt_env, dsn_parts


def test_a_password_given_as_a_query_parameter_reaches_airflow_and_dbt() -> None:
    dsn = "postgresql://alice@db.example:6543/trebol?password=s%20cret&sslmode=require"
    assert dsn_parts(dsn) == DsnParts("db.example", 6543, "alice", "s cret", "trebol")
    assert json.loads(airflow_connection_json(dsn))["password"] == "s cret"
    assert dbt_env(dsn_parts(dsn))["TREBOL_DBT_PASSWORD"] == "s cret"


def test_query_parameters_win_over_the_url_as_in_libpq() -> None:
    dsn = "postgresql://alice:one@db.example:5432/first?password=two&user=bob&port=6000&dbname=second"
    libpq = conninfo_to_dict(dsn)
    parts = dsn_parts(dsn)
    assert (parts.user, parts.password, str(parts.port), parts.dbname) == (
        libpq["user"], libpq["password"], libpq["port"], libpq["dbname"])


def test_a_unix_socket_folder_and_the_defaults() -> None:
    assert dsn_parts("postgresql://postgres@/trebol?host=/srv/run&port=5433") == DsnParts(
        "/srv/run", 5433, "postgres", "", "trebol")
    assert dsn_parts("postgresql:///trebol") == DsnParts("localhost", 5432, "postgres", "", "trebol")
