"""An erasure request's steps, each recorded in ``audit.erasure_requests``.

1. :func:`open_request`: the request recorded (``running``: its id, the Airflow run, who asked,
   when, the identifier's *type*), then checked: the salt is set, the identifier is one staging
   would read and not a placeholder; else ``refused`` with the reason (one line, never the
   identifier);
2. :func:`suppress`: the person resolved (``trebol.erasure.subject``; an email or phone shared
   by several customers refuses the request) and the salted hash of each of their identifiers
   added to the suppression list: from now on no load brings them back;
3. :func:`remove_from_destinations`: each sync of destinations.yml removes the person's keys
   with reason ``erased`` (``trebol.activation.sync.erase_customers``); a record a destination
   refused fails the step (deterministic), a destination that is down raises for a retry;
4. :func:`purge_warehouse`: the person deleted in every layer in one transaction
   (``trebol.erasure.purge``); rows per table recorded;
5. :func:`close_request`: ``completed`` when the three steps are done, else ``failed`` naming the
   steps missing (a refused request stays refused).

Every step resolves the person again from the warehouse (deterministic until the purge, which
comes last), so each can be retried alone, and running a whole request again is harmless: what
is gone stays gone. The audit keeps counts and table and sync names, never an identifier, and
the steps return the same (XCom).

Inputs: a connection as ``trebol_eraser``, an :class:`ErasureRequest`, the settings, the
sources, the activation config. Outputs: the audit row, the suppression list, and what the other
modules say.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from trebol.activation import sync
from trebol.activation.config import ActivationConfig, DestinationSpec
from trebol.activation.destinations.base import Destination, DestinationRejected
from trebol.erasure import purge
from trebol.erasure.identifiers import (
    IdentifierRefused,
    phone_rule,
    requested_identifier,
    require_salt,
    salt_fingerprint,
    salted_hash,
)
from trebol.erasure.subject import Subject, resolve
from trebol.extract.sources import Source
from trebol.settings import ConfigError, Settings, SettingsError
from trebol.warehouse.address import error_line
from trebol.warehouse.ddl import AUDIT_SCHEMA, SUPPRESSION_LIST

REQUESTS = f"{AUDIT_SCHEMA}.erasure_requests"
# the namespace of the request ids made from an Airflow run id (one request per DAG run)
RUN_NAMESPACE = uuid.UUID("5f0b6a52-0d0e-4a53-9c39-2f1f1a7c9e10")
MAX_REQUESTED_BY = 200


class ErasureIncomplete(DestinationRejected):
    """A destination refused to remove the person (per record): the request cannot complete
    until that is fixed; not retried."""


@dataclass(frozen=True)
class ErasureRequest:
    """One request: its id, the run that carries it, the identifier (type and value, the value
    never shown) and who asked."""

    request_id: str
    run_id: str
    identifier_type: str
    identifier: str = field(repr=False)
    requested_by: str


def request_id_for(run_id: str) -> str:
    """The request id of a DAG run (every task of the run finds the same)."""
    return str(uuid.uuid5(RUN_NAMESPACE, run_id))


def _update(conn: psycopg.Connection, request: ErasureRequest, **values: Any) -> None:
    columns = ", ".join(f"{name} = %({name})s" for name in values)
    conn.execute(f"update {REQUESTS} set {columns} where request_id = %(request_id)s",
                 {**{name: Jsonb(value) if isinstance(value, dict) else value
                     for name, value in values.items()}, "request_id": request.request_id})


def _refuse(conn: psycopg.Connection, request: ErasureRequest, error: Exception) -> None:
    _update(conn, request, status="refused", error=error_line(error))


def _identifier(conn: psycopg.Connection, request: ErasureRequest, settings: Settings) -> str:
    """The normalised identifier (the request refused, and the error raised, when it is not)."""
    try:
        require_salt(settings)
        return requested_identifier(request.identifier_type, request.identifier, settings)
    except (IdentifierRefused, SettingsError) as error:
        _refuse(conn, request, error)
        raise


def _subject(conn: psycopg.Connection, request: ErasureRequest, settings: Settings) -> Subject:
    value = _identifier(conn, request, settings)
    try:
        return resolve(conn, request.identifier_type, value)
    except IdentifierRefused as error:
        _refuse(conn, request, error)
        raise


def open_request(conn: psycopg.Connection, request: ErasureRequest, settings: Settings) -> dict[str, Any]:
    """Record the request and check it (see the module docstring)."""
    requested_by = " ".join(request.requested_by.split())
    if not requested_by or len(requested_by) > MAX_REQUESTED_BY:
        raise IdentifierRefused(f"requested_by: who asked (a name or a ticket), 1 to "
                                f"{MAX_REQUESTED_BY} characters")
    conn.execute(f"""insert into {REQUESTS} (request_id, run_id, requested_by, identifier_type,
            status) values (%s, %s, %s, %s, 'running')
        on conflict (request_id) do update set status = 'running', error = null,
            finished_at = null""",
                 (request.request_id, request.run_id, requested_by, request.identifier_type))
    _identifier(conn, request, settings)
    return {"request_id": request.request_id}


def suppress(conn: psycopg.Connection, request: ErasureRequest, settings: Settings) -> dict[str, int]:
    """Add the person's identifiers to the suppression list; the counts."""
    subject = _subject(conn, request, settings)
    salt = require_salt(settings)
    fingerprint = salt_fingerprint(salt)
    rows = [(salted_hash(salt, kind, value), kind, fingerprint, request.request_id)
            for kind, value in sorted(subject.identifiers)]
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(f"insert into {SUPPRESSION_LIST} (identifier_hash, identifier_kind, "
                           "salt_fingerprint, request_id) values (%s, %s, %s, %s) "
                           "on conflict (identifier_hash) do nothing", rows)
        counts = {"customers": len(subject.customer_keys), "source_records": len(subject.records),
                  "identifiers_suppressed": len(rows), "shared_identifiers_kept": subject.shared}
        _update(conn, request, **counts, suppressed_at=_now(conn))
    return counts


def remove_from_destinations(conn: psycopg.Connection, request: ErasureRequest, settings: Settings,
                             config: ActivationConfig,
                             build: Callable[[DestinationSpec], Destination]) -> dict[str, Any]:
    """Remove the person from every sync's destination; per sync: removed, failed."""
    subject = _subject(conn, request, settings)
    results: dict[str, Any] = {}
    refused: list[str] = []
    for spec in config.syncs:
        report = sync.erase_customers(conn, config, spec.name, build(config.destinations[spec.destination]),
                                      sorted(subject.customer_keys), request.request_id)
        if report.status != "skipped":
            results[spec.name] = {"destination": spec.destination, "removed": report.removed,
                                  "failed": report.failed}
        if report.failed:
            refused.append(f"{spec.name}: {report.error}")
    _update(conn, request, destinations=results,
            **({} if refused else {"destinations_at": _now(conn)}))
    if refused:
        raise ErasureIncomplete(f"{len(refused)} sync(s) could not remove the person: "
                                f"{'; '.join(refused)}")
    return results


def purge_warehouse(conn: psycopg.Connection, request: ErasureRequest, settings: Settings,
                    sources: Iterable[Source]) -> dict[str, int]:
    """Delete the person in every layer (one transaction); rows per table."""
    subject = _subject(conn, request, settings)
    changed = dict(purge.purge(conn, subject, sources, phone_rule(settings.dbt_project_dir)))
    _update(conn, request, tables=changed, purged_at=_now(conn))
    return changed


STEPS = ("suppressed_at", "destinations_at", "purged_at")
# the steps in order: the DAG's tasks and `trebol erase` (run_request) alike
STEP_NAMES = ("open_request", "suppress", "remove_from_destinations", "purge_warehouse",
              "close_request")


def close_request(conn: psycopg.Connection, request: ErasureRequest) -> dict[str, Any]:
    """Finish the request: completed, or failed naming the steps not done; the audit row
    (counts only)."""
    row = conn.execute(f"select status, error, {', '.join(STEPS)} from {REQUESTS} "
                       "where request_id = %s", (request.request_id,)).fetchone()
    if row is None:
        raise ConfigError(f"erasure request {request.request_id} was never opened")
    status, error = row[0], row[1]
    missing = [step.removesuffix("_at") for step, done in zip(STEPS, row[2:], strict=True) if done is None]
    if status != "refused":
        status = "failed" if missing else "completed"
        error = f"not done: {', '.join(missing)}" if missing else None
    _update(conn, request, status=status, error=error, finished_at=_now(conn))
    return audit_row(conn, request.request_id)


def audit_row(conn: psycopg.Connection, request_id: str) -> dict[str, Any]:
    """The request's audit row, as a dict (no personal data is in it)."""
    with conn.cursor() as cursor:
        cursor.execute(f"select * from {REQUESTS} where request_id = %s", (request_id,))
        names = [column.name for column in cursor.description or []]
        row = cursor.fetchone()
    return {name: (value.isoformat() if hasattr(value, "isoformat") else
                   str(value) if isinstance(value, uuid.UUID) else value)
            for name, value in zip(names, row or (), strict=False)}


def _now(conn: psycopg.Connection) -> Any:
    return conn.execute("select now()").fetchone()[0]


def run_request(connect: Callable[[], Any], request: ErasureRequest, settings: Settings,
                sources: Iterable[Source], config: ActivationConfig,
                build: Callable[[DestinationSpec], Destination]) -> dict[str, Any]:
    """Every step in the DAG's order in one process (``trebol erase``); the audit row. A step's
    error is raised after the request is closed."""
    with connect() as conn:
        failure: Exception | None = None
        try:
            open_request(conn, request, settings)
            suppress(conn, request, settings)
            remove_from_destinations(conn, request, settings, config, build)
            purge_warehouse(conn, request, settings, sources)
        except Exception as error:  # closed as failed (or left refused), then raised as it is
            failure = error
        exists = conn.execute(f"select exists (select from {REQUESTS} where request_id = %s)",
                              (request.request_id,)).fetchone()[0]
        row = close_request(conn, request) if exists else {}
        if failure is not None:
            raise failure
        return row
