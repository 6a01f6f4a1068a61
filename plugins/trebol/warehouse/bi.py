"""BI tools' logins: their roles, the URL a BI tool connects with, and new logins for people.

A BI login is a PostgreSQL login role in ``bi_reader`` (the marts without direct identifiers,
the reference seeds) or ``bi_pii_reader`` (also the contact details), the roles migration 12
makes (``warehouse/ddl.py``). Its password is generated here, set as a SCRAM verifier computed
by libpq on this side (the server, its statement log and ``pg_stat_activity`` never see the
password itself) and shown once, to the person who asked: never logged. The embedded warehouse
keeps one login of its own, ``trebol_bi_login`` (``trebol warehouse url --role bi``), whose
password lives in ``TREBOL_HOME/secrets`` (readable by this user only, like the warehouse's
files beside it).

Inputs: the admin's connection (autocommit) and the settings. Outputs: login roles, URLs.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import psycopg
from psycopg import sql

from trebol.settings import Settings
from trebol.warehouse.address import DsnParts, build_dsn, dsn_parts, login_role
from trebol.warehouse.ddl import BI_PII_ROLE, BI_ROLE, bootstrap
from trebol.warehouse.embedded import TCP_HOST

# the --role of `trebol warehouse users add` and the PostgreSQL role its logins are in
BI_LOGIN_ROLES = {"bi": BI_ROLE, "bi_pii": BI_PII_ROLE}
# the embedded warehouse's own BI login (`trebol warehouse url --role bi`)
DEFAULT_BI_LOGIN = login_role("bi")
# a new login's name: a plain lower-case PostgreSQL identifier, not one of PostgreSQL's or Trébol's
LOGIN_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
RESERVED_PREFIXES = ("pg_", "trebol_")


class BiLoginError(ValueError):
    """A login cannot be made as asked; the message is one line saying why and what to do."""


def new_password() -> str:
    """A random password of 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def check_login_name(name: str) -> str:
    """``name`` if it can name a new BI login, else a one-line BiLoginError."""
    if not LOGIN_NAME.fullmatch(name):
        raise BiLoginError(f"{name!r} is not a login name: use lower-case letters, digits and _ "
                           "(at most 63, not starting with a digit), e.g. ana_lopez")
    if name.startswith(RESERVED_PREFIXES) or name in BI_LOGIN_ROLES.values():
        raise BiLoginError(f"{name!r} is reserved (pg_…, trebol_… and the BI roles are PostgreSQL's "
                           "and Trébol's own): choose another name")
    return name


def _password_clause(conn: psycopg.Connection, name: str, password: str) -> sql.Composable:
    """``password '<SCRAM verifier>'``: libpq hashes the password here, as psql's \\password does."""
    verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256")
    return sql.SQL("password {}").format(sql.Literal(verifier.decode()))


def add_login(conn: psycopg.Connection, name: str, role: str) -> str:
    """Create login ``name`` in the BI role of ``role`` (``bi`` or ``bi_pii``) with a new
    password, and return the password. The warehouse's pending migrations are applied first
    (they make the BI roles); a name already taken is a BiLoginError."""
    check_login_name(name)
    bootstrap(conn)
    if conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone():
        raise BiLoginError(f"a role named {name!r} exists already: choose another name (or, to "
                           f"replace it, `drop role {name}` first)")
    password = new_password()
    conn.execute(sql.SQL("create role {} login {} in role {}").format(
        sql.Identifier(name), _password_clause(conn, name, password),
        sql.Identifier(BI_LOGIN_ROLES[role])))
    return password


def tcp_url(settings: Settings, admin_dsn: str, user: str, password: str) -> str:
    """The URL a BI tool connects with as ``user``: on the embedded warehouse its TCP address
    (127.0.0.1, TREBOL_WAREHOUSE_PORT); on an external one the host and port of
    TREBOL_WAREHOUSE_DSN. Holds the password: for the person who asked, never for a log."""
    parts = dsn_parts(admin_dsn)
    if settings.uses_embedded_warehouse:
        return build_dsn(DsnParts(TCP_HOST, settings.warehouse_port, user, password, parts.dbname))
    return build_dsn(DsnParts(parts.host, parts.port, user, password, parts.dbname))


def _secret_file(settings: Settings) -> Path:
    return settings.home / "secrets" / f"{DEFAULT_BI_LOGIN}.password"


def _stored_password(settings: Settings) -> str:
    """The embedded BI login's password, generated into a file only this user may read the
    first time."""
    path = _secret_file(settings)
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    password = new_password()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password + "\n")
    return password


def default_bi_login(conn: psycopg.Connection, settings: Settings) -> str:
    """Make sure the embedded warehouse's BI login exists in bi_reader with the password kept
    in TREBOL_HOME/secrets (set again each time: idempotent); its password."""
    bootstrap(conn)
    password = _stored_password(settings)
    exists = conn.execute("select 1 from pg_roles where rolname = %s",
                          (DEFAULT_BI_LOGIN,)).fetchone()
    verb = "alter" if exists else "create"
    conn.execute(sql.SQL(f"{verb} role {{}} login {{}}").format(
        sql.Identifier(DEFAULT_BI_LOGIN), _password_clause(conn, DEFAULT_BI_LOGIN, password)))
    conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(BI_ROLE),
                                                  sql.Identifier(DEFAULT_BI_LOGIN)))
    return password
