"""Warehouse addresses: PostgreSQL URLs split and rebuilt, and turned into the forms Airflow
connections and dbt's profile read (to show one, see :func:`trebol.redaction.redact`). No I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

AIRFLOW_CONN_ID = "trebol_warehouse"
POS_CONN_ID = "trebol_pos"
# The roles the nightly tasks connect as, each through an Airflow connection of its own
# (``trebol_warehouse_<role>``) as a login role that acts as the group role ``trebol_<role>``,
# which holds the privileges (warehouse/ddl.py creates both; the admin connection
# ``trebol_warehouse`` is for the migrations only).
TASK_ROLES = ("loader", "transformer", "activation", "checker")
# The role erasure requests run as (the trebol_erasure DAG and `trebol erase`; migration 13): a
# member of the four task roles, with a login and an Airflow connection of its own like theirs.
ERASER_ROLE = "eraser"
# Every role with a login role and an Airflow connection ``trebol_warehouse_<role>``.
LOGIN_ROLES = (*TASK_ROLES, ERASER_ROLE)


def group_role(role: str) -> str:
    """The NOLOGIN role holding a task role's privileges, e.g. ``trebol_loader``."""
    return f"trebol_{role}"


def login_role(role: str) -> str:
    """The login role of a task role, e.g. ``trebol_loader_login``."""
    return f"trebol_{role}_login"


def role_conn_id(role: str) -> str:
    """The Airflow connection of a task role, e.g. ``trebol_warehouse_loader``."""
    return f"{AIRFLOW_CONN_ID}_{role}"


@dataclass(frozen=True)
class DsnParts:
    """The pieces of a PostgreSQL URL, as dbt profiles and Airflow connections want them."""

    host: str
    port: int
    user: str
    password: str
    dbname: str


def dsn_parts(dsn: str) -> DsnParts:
    """Split a postgresql:// URL; as in libpq, a query parameter (``?host=/dir`` for a
    unix-socket folder, ``?password=…``, ``?user=…``, ``?port=…``, ``?dbname=…``) wins over the
    same part in the URL."""
    parts = urlsplit(dsn)
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    return DsnParts(
        host=query.get("host", parts.hostname or "localhost"),
        port=int(query.get("port", parts.port or 5432)),
        user=query.get("user", unquote(parts.username or "postgres")),
        password=query.get("password", unquote(parts.password or "")),
        dbname=query.get("dbname", unquote(parts.path.lstrip("/"))),
    )


def error_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (psycopg's run over several lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def build_dsn(parts: DsnParts) -> str:
    """Inverse of :func:`dsn_parts`."""
    auth = quote(parts.user, safe="")
    if parts.password:
        auth += ":" + quote(parts.password, safe="")
    if parts.host.startswith("/"):
        return f"postgresql://{auth}@/{parts.dbname}?host={parts.host}&port={parts.port}"
    return f"postgresql://{auth}@{parts.host}:{parts.port}/{parts.dbname}"


def airflow_connection_json(dsn: str) -> str:
    """The Airflow connection (``AIRFLOW_CONN_TREBOL_WAREHOUSE``) for a DSN, as JSON."""
    parts = dsn_parts(dsn)
    return json.dumps({
        "conn_type": "postgres",
        "host": parts.host,
        "port": parts.port,
        "login": parts.user,
        "password": parts.password,
        "schema": parts.dbname,
    })


def dbt_env(parts: DsnParts) -> dict[str, str]:
    """Environment read by ``dbt_project/profiles.yml`` for a warehouse."""
    return {
        "TREBOL_DBT_HOST": parts.host,
        "TREBOL_DBT_PORT": str(parts.port),
        "TREBOL_DBT_USER": parts.user,
        "TREBOL_DBT_PASSWORD": parts.password,
        "TREBOL_DBT_DBNAME": parts.dbname,
    }
