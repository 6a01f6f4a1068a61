"""Diff syncs: send a staged audience's adds, changes and removals to one destination.

A sync run for an as-of date:

1. takes the sync's advisory lock (one run of a sync at a time) and requires its audience staged
   for the date (``activation.staged_audiences``: a refused or missing audience stops the sync
   with that line, never a diff against nothing, which would remove everyone);
2. **resumes** the sync's unfinished run of the same date (killed, or failed on a transient
   error, after planning) at its first pending batch, with the same idempotency keys, then plans
   again if the staged audience still differs (it may have been staged again meanwhile); an
   unfinished run of another date, or one that planned nothing, is abandoned. A date older
   than the last one the sync delivered is skipped (a backfill never sends an old audience over
   a newer one);
3. **plans** (one SQL statement): the staged members not held out, their fields mapped to the
   destination's (``fields`` of destinations.yml), against ``activation.sync_state`` (what the
   sync last delivered): new keys are adds, keys whose mapped fields changed (jsonb equality)
   are updates, keys no longer staged are removals (``consent_withdrawn`` when the customer is
   in ``marts.customer_segments`` without consent, else ``left_audience``); ``full_resync``
   re-sends every member. Changes are numbered in batches of the destination's size, by key,
   into ``activation.sync_records`` as ``pending``;
4. **sends** each batch and records, in one transaction per batch, each record's outcome and the
   new state of the records that succeeded; a record that failed keeps its old state, so the
   next run plans it again (retried);
5. **closes** the destination with the sync's full state (the file destination writes its
   snapshot) and finishes the run with its counts (``succeeded``, or ``partial`` with failed
   records); sync runs older than the audit retention are deleted.

A transient destination error leaves the run ``failed`` with its pending batches and raises (the
task's retry resumes it); a refusal raises at once (deterministic).

An erasure request reaches each sync through :func:`erase_customers`: the person's customer
keys the sync ever sent (its state, or a record of its audit) are removed with reason
``erased`` (the destination deletes them for good and sends no field of theirs), their state
goes, and the destination is closed with what the sync now holds (the file destination's next
snapshot, written at once, lacks them). It is a sync run of its own (``run_id``
``erasure__<request>``, counts only: no per-record audit row names the person).

Inputs: a warehouse connection (role trebol_activation), the config, a sync name, the date, a
destination. Outputs: ``activation.sync_runs``, ``sync_records``, ``sync_state``; what the
destination holds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql

from trebol.activation.config import ActivationConfig, ConfigError, SyncSpec
from trebol.activation.destinations.base import (
    ERASED,
    Batch,
    Change,
    Destination,
    DestinationError,
    SyncContext,
)
from trebol.redaction import redact

log = logging.getLogger(__name__)
EXAMPLES = 3


class SyncRefused(ConfigError):
    """The sync cannot run for this date (audience refused or not staged): one line."""


class SyncBusy(Exception):
    """Another run of the same sync holds its lock (transient: a retry may find it free)."""


@dataclass
class SyncReport:
    """What one sync run did (or, dry, would do)."""

    sync: str
    audience: str
    destination: str
    as_of_date: str
    status: str
    sync_run_id: int | None = None
    members: int = 0
    held_out: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    failed: int = 0
    delivery: str | None = None
    error: str | None = None
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mapped_fields(spec: SyncSpec) -> sql.Composed:
    """jsonb of the destination fields from a staged member's ``fields``."""
    pairs = [sql.SQL("{}, fields -> {}").format(sql.Literal(target), sql.Literal(column))
             for target, column in spec.fields.items()]
    return sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(pairs))


def diff_query(spec: SyncSpec, as_of_date: date, full_resync: bool) -> sql.Composed:
    """The sync's changes for the date: customer_key, operation, reason, fields, previous."""
    changed = sql.SQL("true" if full_resync else "current_members.fields <> state.fields")
    return sql.SQL("""
        with current_members as (
            select customer_key, {mapped} as fields
            from activation.audience_members
            where as_of_date = {day} and audience = {audience} and not is_holdout
        ),
        state as (
            select customer_key, fields from activation.sync_state
            where sync_name = {sync}
        ),
        changes as (
            select
                coalesce(current_members.customer_key, state.customer_key) as customer_key,
                case when state.customer_key is null then 'add'
                     when current_members.customer_key is null then 'remove'
                     else 'update' end as operation,
                coalesce(current_members.fields, state.fields) as fields,
                state.fields as previous
            from current_members
            full join state on current_members.customer_key = state.customer_key
            where state.customer_key is null or current_members.customer_key is null
               or {changed}
        )
        select
            changes.customer_key, changes.operation,
            case when changes.operation <> 'remove' then null
                 when segments.customer_key is not null and not segments.has_marketing_consent
                     then 'consent_withdrawn'
                 else 'left_audience' end as reason,
            changes.fields, changes.previous
        from changes
        left join marts.customer_segments as segments
            on segments.customer_key = changes.customer_key and segments.as_of_date = {day}
        """).format(mapped=_mapped_fields(spec), day=sql.Literal(as_of_date),
                    audience=sql.Literal(spec.audience), sync=sql.Literal(spec.name),
                    changed=changed)


@contextmanager
def _sync_lock(conn: psycopg.Connection, name: str) -> Iterator[None]:
    key = f"trebol.sync.{name}"
    if not conn.execute("select pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()[0]:
        raise SyncBusy(f"sync {name}: another run of it is in progress")
    try:
        yield
    finally:
        conn.execute("select pg_advisory_unlock(hashtext(%s))", (key,))


def _staged(conn: psycopg.Connection, spec: SyncSpec, as_of_date: date) -> tuple[int, int]:
    row = conn.execute("select status, members, held_out, error from activation.staged_audiences "
                       "where as_of_date = %s and audience = %s", (as_of_date, spec.audience)).fetchone()
    if row is None:
        raise SyncRefused(f"sync {spec.name}: {spec.audience} was not staged for {as_of_date} "
                          "(stage_audiences has not run for this date)")
    status, members, held_out, error = row
    if status != "staged":
        raise SyncRefused(f"sync {spec.name}: {error}")
    return members, held_out


def _counts(conn: psycopg.Connection, run_id: int) -> dict[str, int]:
    row = conn.execute("""select
            count(*) filter (where operation = 'add' and status = 'ok'),
            count(*) filter (where operation = 'update' and status = 'ok'),
            count(*) filter (where operation = 'remove' and status = 'ok'),
            count(*) filter (where status = 'failed')
        from activation.sync_records where sync_run_id = %s""", (run_id,)).fetchone()
    return dict(zip(("added", "changed", "removed", "failed"), row, strict=True))


def _abandon_unfinished(conn: psycopg.Connection, spec: SyncSpec, keep: int | None) -> None:
    with conn.transaction():
        stale = [row[0] for row in conn.execute(
            "select sync_run_id from activation.sync_runs where sync_name = %s "
            "and status in ('running', 'failed') and sync_run_id is distinct from %s",
            (spec.name, keep))]
        if stale:
            conn.execute("update activation.sync_records set status = 'failed', "
                         "error = 'not sent: its run was abandoned for a newer plan' "
                         "where sync_run_id = any(%s) and status = 'pending'", (stale,))
            conn.execute("update activation.sync_runs set status = 'abandoned', "
                         "finished_at = now() where sync_run_id = any(%s)", (stale,))


def _resumable(conn: psycopg.Connection, spec: SyncSpec, as_of_date: date) -> tuple[int, str] | None:
    row = conn.execute("""select sync_run_id, coalesce(delivery, '') from activation.sync_runs
        where sync_name = %s and as_of_date = %s and status in ('running', 'failed')
          and exists (select from activation.sync_records as records
                      where records.sync_run_id = sync_runs.sync_run_id)
        order by sync_run_id desc limit 1""", (spec.name, as_of_date)).fetchone()
    return (row[0], row[1]) if row else None


def _delivery_name(conn: psycopg.Connection, spec: SyncSpec, as_of_date: date, changes: int,
                   full_resync: bool) -> str:
    """The as-of date, ``<date>.<n>`` for a later delivery of the same date, or '' when there is
    nothing to deliver (no change, and the sync delivered before)."""
    delivered = conn.execute("select count(*) filter (where as_of_date = %s), count(*) "
                             "from activation.sync_runs where sync_name = %s and delivery <> '' "
                             "and status in ('succeeded', 'partial')",
                             (as_of_date, spec.name)).fetchone()
    if not (changes or full_resync or delivered[1] == 0):
        return ""
    return as_of_date.isoformat() + (f".{delivered[0] + 1}" if delivered[0] else "")


def _record_unsent(conn: psycopg.Connection, spec: SyncSpec, as_of_date: date, run_id: str,
                   status: str, error: str, staged: tuple[int, int] = (0, 0)) -> int:
    """A sync run that sent nothing (refused or skipped), for the audit and the summary."""
    return conn.execute("""insert into activation.sync_runs
        (sync_name, audience, destination, as_of_date, run_id, status, finished_at, members,
         held_out, error)
        values (%s, %s, %s, %s, %s, %s, now(), %s, %s, %s) returning sync_run_id""",
        (spec.name, spec.audience, spec.destination, as_of_date, run_id, status, *staged,
         error)).fetchone()[0]


def _plan(conn: psycopg.Connection, spec: SyncSpec, destination: str, as_of_date: date,
          run_id: str, full_resync: bool, batch_size: int, staged: tuple[int, int]) -> tuple[int, str]:
    with conn.transaction():
        sync_run_id = conn.execute("""insert into activation.sync_runs
            (sync_name, audience, destination, as_of_date, run_id, full_resync, status, members,
             held_out)
            values (%s, %s, %s, %s, %s, %s, 'running', %s, %s) returning sync_run_id""",
            (spec.name, spec.audience, destination, as_of_date, run_id, full_resync,
             *staged)).fetchone()[0]
        planned = conn.execute(sql.SQL("""
            insert into activation.sync_records
                (sync_run_id, sync_name, customer_key, operation, reason, batch_no, status,
                 fields, previous)
            select {run}, {sync}, customer_key, operation, reason,
                   ((row_number() over (order by customer_key)) - 1) / {size}, 'pending',
                   fields, previous
            from ({diff}) as planned""").format(
            run=sql.Literal(sync_run_id), sync=sql.Literal(spec.name),
            size=sql.Literal(batch_size), diff=diff_query(spec, as_of_date, full_resync))).rowcount
        delivery = _delivery_name(conn, spec, as_of_date, planned, full_resync)
        conn.execute("update activation.sync_runs set delivery = %s where sync_run_id = %s",
                     (delivery, sync_run_id))
    return sync_run_id, delivery


def _send_batch(conn: psycopg.Connection, destination: Destination, spec: SyncSpec,
                sync_run_id: int, batch_no: int) -> None:
    rows = conn.execute("""select customer_key, operation, reason, fields, previous
        from activation.sync_records
        where sync_run_id = %s and batch_no = %s and status = 'pending'
        order by customer_key""", (sync_run_id, batch_no)).fetchall()
    changes = [Change(key, operation, fields, previous, reason)
               for key, operation, reason, fields, previous in rows]
    batch = Batch(spec.name, spec.audience, sync_run_id, batch_no,
                  f"{spec.name}-{sync_run_id}-{batch_no}", changes)
    outcomes = {outcome.customer_key: outcome for outcome in destination.send(batch)}
    failed = [(change.customer_key,
               redact(outcomes[change.customer_key].error or "failed")
               if change.customer_key in outcomes
               else "the destination returned no outcome for this record")
              for change in changes
              if not (change.customer_key in outcomes and outcomes[change.customer_key].ok)]
    with conn.transaction():
        if failed:
            conn.execute("""update activation.sync_records as records
                set status = 'failed', error = outcome.error
                from unnest(%s::text[], %s::text[]) as outcome(customer_key, error)
                where records.sync_run_id = %s and records.customer_key = outcome.customer_key""",
                         ([key for key, _ in failed], [error for _, error in failed], sync_run_id))
        conn.execute("update activation.sync_records set status = 'ok' where sync_run_id = %s "
                     "and batch_no = %s and status = 'pending'", (sync_run_id, batch_no))
        conn.execute("""insert into activation.sync_state
                (sync_name, customer_key, fields, sync_run_id)
            select sync_name, customer_key, fields, sync_run_id
            from activation.sync_records
            where sync_run_id = %s and batch_no = %s and status = 'ok' and operation <> 'remove'
            on conflict (sync_name, customer_key) do update set fields = excluded.fields,
                sync_run_id = excluded.sync_run_id,
                synced_at = now()""", (sync_run_id, batch_no))
        conn.execute("""delete from activation.sync_state as state
            using activation.sync_records as records
            where records.sync_run_id = %s and records.batch_no = %s and records.status = 'ok'
              and records.operation = 'remove' and state.sync_name = records.sync_name
              and state.customer_key = records.customer_key""", (sync_run_id, batch_no))


class StateSnapshot:
    """What a sync holds after its run (``activation.sync_state``), by key, read in chunks."""

    def __init__(self, conn: psycopg.Connection, sync_name: str) -> None:
        self.conn, self.sync_name = conn, sync_name

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        with self.conn.transaction(), self.conn.cursor(name=f"snapshot_{self.sync_name}") as cursor:
            cursor.itersize = 20_000
            # the JSON as text, parsed here: cheaper than the driver's jsonb loader per row
            cursor.execute("select customer_key, fields::text from activation.sync_state "
                           "where sync_name = %s order by customer_key", (self.sync_name,))
            for customer_key, fields in cursor:
                yield {"customer_key": customer_key, "fields": json.loads(fields)}


def _finish(conn: psycopg.Connection, sync_run_id: int, error: str | None) -> dict[str, int]:
    counts = _counts(conn, sync_run_id)
    status = "failed" if error else "partial" if counts["failed"] else "succeeded"
    conn.execute("""update activation.sync_runs set status = %s, finished_at = now(), error = %s,
        added = %s, changed = %s, removed = %s, failed = %s where sync_run_id = %s""",
                 (status, error, counts["added"], counts["changed"], counts["removed"],
                  counts["failed"], sync_run_id))
    return counts


def _prune(conn: psycopg.Connection, spec: SyncSpec, as_of_date: date, retention_days: int) -> None:
    conn.execute("delete from activation.sync_runs where sync_name = %s and as_of_date < %s "
                 "and status not in ('running', 'failed')",
                 (spec.name, as_of_date - timedelta(days=retention_days)))


def _differs(conn: psycopg.Connection, spec: SyncSpec, as_of_date: date) -> bool:
    """Whether the staged audience differs from what the sync delivered."""
    return conn.execute(sql.SQL("select exists ({})").format(
        diff_query(spec, as_of_date, False))).fetchone()[0]


def _error_line(error: Exception) -> str:
    return redact(str(error).splitlines()[0] if str(error) else type(error).__name__)


def _execute(conn: psycopg.Connection, config: ActivationConfig, spec: SyncSpec,
             destination: Destination, as_of_date: date, sync_run_id: int,
             delivery: str) -> dict[str, int]:
    """Send a planned run's pending batches and close the destination; finish the run (failed,
    with the error, when the destination fails)."""
    planned = conn.execute("select count(*) from activation.sync_records where sync_run_id = %s",
                           (sync_run_id,)).fetchone()[0]
    context = SyncContext(spec.name, spec.audience, as_of_date.isoformat(), sync_run_id,
                          config.destinations[spec.destination].options, delivery, planned,
                          tuple(spec.fields))
    try:
        destination.open(context)
        batches = [row[0] for row in conn.execute(
            "select distinct batch_no from activation.sync_records where sync_run_id = %s "
            "and status = 'pending' order by 1", (sync_run_id,))]
        for batch_no in batches:
            _send_batch(conn, destination, spec, sync_run_id, batch_no)
        destination.close(context, iter(StateSnapshot(conn, spec.name)))
    except DestinationError as error:
        _finish(conn, sync_run_id, _error_line(error))
        raise
    return _finish(conn, sync_run_id, None)


def run_sync(conn: psycopg.Connection, config: ActivationConfig, name: str, as_of_date: date,
             run_id: str, destination: Destination, *, full_resync: bool = False) -> SyncReport:
    """One sync run for the date (see the module docstring); its report."""
    spec = config.sync(name)
    report = SyncReport(spec.name, spec.audience, spec.destination, as_of_date.isoformat(), "running")
    with _sync_lock(conn, spec.name):
        try:
            report.members, report.held_out = _staged(conn, spec, as_of_date)
        except SyncRefused as refused:
            _record_unsent(conn, spec, as_of_date, run_id, "failed", str(refused))
            raise
        last = conn.execute("select max(as_of_date) from activation.sync_runs where sync_name = %s "
                            "and status in ('succeeded', 'partial')", (spec.name,)).fetchone()[0]
        if last is not None and last > as_of_date and not full_resync:
            report.status = "skipped"
            report.error = f"{last} was delivered already: an older date is never sent over it"
            report.sync_run_id = _record_unsent(conn, spec, as_of_date, run_id, "skipped",
                                                report.error, (report.members, report.held_out))
            return report
        resumed = None if full_resync else _resumable(conn, spec, as_of_date)
        _abandon_unfinished(conn, spec, resumed[0] if resumed else None)
        totals = {"added": 0, "changed": 0, "removed": 0, "failed": 0}
        runs = []
        if resumed:  # finish what an interrupted run of this date planned and sent in part
            conn.execute("update activation.sync_runs set status = 'running', error = null, "
                         "run_id = %s where sync_run_id = %s", (run_id, resumed[0]))
            log.info("sync %s: resuming run %s", spec.name, resumed[0])
            runs.append(resumed)
        # then what still differs (the audience may have been staged again meanwhile)
        runs.append(None)
        for run in runs:
            if run is None and resumed and not _differs(conn, spec, as_of_date):
                break  # the resumed run delivered the staged audience: no second run
            sync_run_id, delivery = run or _plan(
                conn, spec, spec.destination, as_of_date, run_id, full_resync,
                destination.batch_size, (report.members, report.held_out))
            report.sync_run_id, report.delivery = sync_run_id, delivery or report.delivery or ""
            try:
                _execute(conn, config, spec, destination, as_of_date, sync_run_id, delivery)
            except DestinationError as error:
                report.status, report.error = "failed", _error_line(error)
                raise
            finally:
                for key, value in _counts(conn, sync_run_id).items():
                    totals[key] += value
                for key, value in totals.items():
                    setattr(report, key, value)
        report.status = "partial" if report.failed else "succeeded"
        _prune(conn, spec, as_of_date, config.retention_days)
    return report


def erase_customers(conn: psycopg.Connection, config: ActivationConfig, name: str,
                    destination: Destination, customer_keys: list[str],
                    request_id: str) -> SyncReport:
    """Remove erased customers from one sync's destination (see the module docstring); its
    report (``removed``, ``failed``). A destination error raises, the run recorded as failed."""
    spec = config.sync(name)
    report = SyncReport(spec.name, spec.audience, spec.destination, "", "succeeded")
    with _sync_lock(conn, spec.name):
        known = conn.execute("""
            select distinct on (customer_key) customer_key, fields from (
                select customer_key, fields, 0 as rank, sync_run_id from activation.sync_state
                where sync_name = %(sync)s and customer_key = any(%(keys)s)
                union all
                select customer_key, fields, 1, sync_run_id from activation.sync_records
                where sync_name = %(sync)s and customer_key = any(%(keys)s)
            ) as sent order by customer_key, rank, sync_run_id desc""",
            {"sync": spec.name, "keys": customer_keys}).fetchall()
        if not known:
            report.status = "skipped"
            return report
        as_of_date = conn.execute("select max(as_of_date) from activation.sync_runs "
                                  "where sync_name = %s", (spec.name,)).fetchone()[0]
        report.as_of_date = as_of_date.isoformat()
        sync_run_id = _record_unsent(conn, spec, as_of_date, f"erasure__{request_id}", "running",
                                     None)
        delivery = _delivery_name(conn, spec, as_of_date, len(known), False)
        conn.execute("update activation.sync_runs set delivery = %s, finished_at = null "
                     "where sync_run_id = %s", (delivery, sync_run_id))
        report.sync_run_id, report.delivery = sync_run_id, delivery
        context = SyncContext(spec.name, spec.audience, report.as_of_date, sync_run_id,
                              config.destinations[spec.destination].options, delivery, len(known),
                              tuple(spec.fields))
        outcomes: dict[str, Any] = {}
        try:
            destination.open(context)
            for batch_no, start in enumerate(range(0, len(known), destination.batch_size)):
                changes = [Change(key, "remove", fields, None, ERASED)
                           for key, fields in known[start:start + destination.batch_size]]
                batch = Batch(spec.name, spec.audience, sync_run_id, batch_no,
                              f"{spec.name}-{sync_run_id}-erase-{batch_no}", changes)
                outcomes.update({outcome.customer_key: outcome for outcome in destination.send(batch)})
            removed = [key for key, _ in known if key in outcomes and outcomes[key].ok]
            conn.execute("delete from activation.sync_state where sync_name = %s "
                         "and customer_key = any(%s)", (spec.name, removed))
            destination.close(context, iter(StateSnapshot(conn, spec.name)))
        except DestinationError as error:
            report.status, report.error = "failed", _error_line(error)
            conn.execute("update activation.sync_runs set status = 'failed', finished_at = now(), "
                         "error = %s where sync_run_id = %s", (report.error, sync_run_id))
            raise
        report.removed, report.failed = len(removed), len(known) - len(removed)
        errors = [redact(outcomes[key].error or "failed") if key in outcomes
                  else "the destination returned no outcome for this record"
                  for key, _ in known if key not in removed]
        report.status = "partial" if errors else "succeeded"
        report.error = errors[0] if errors else None
        conn.execute("""update activation.sync_runs set status = %s, finished_at = now(),
            removed = %s, failed = %s, error = %s where sync_run_id = %s""",
                     (report.status, report.removed, report.failed, report.error, sync_run_id))
    return report


def preview(conn: psycopg.Connection, config: ActivationConfig, name: str, as_of_date: date,
            *, full_resync: bool = False, examples: int = EXAMPLES) -> SyncReport:
    """What a sync run for the date would send, with a few examples per operation; writes
    nothing and calls no destination (``trebol sync --dry-run``)."""
    spec = config.sync(name)
    report = SyncReport(spec.name, spec.audience, spec.destination, as_of_date.isoformat(), "dry run")
    report.members, report.held_out = _staged(conn, spec, as_of_date)
    rows = conn.execute(sql.SQL("""
        select operation, total, customer_key, reason, fields, previous from (
            select planned.*, count(*) over (partition by operation) as total,
                   row_number() over (partition by operation order by customer_key) as rank
            from ({}) as planned
        ) as ranked
        where rank <= {} order by operation, customer_key""").format(
        diff_query(spec, as_of_date, full_resync), sql.Literal(examples))).fetchall()
    counts = {"add": 0, "update": 0, "remove": 0}
    for operation, total, key, reason, fields, previous in rows:
        counts[operation] = total
        example: dict[str, Any] = {"customer_key": key}
        if operation == "update":
            example["changed"] = {name: [(previous or {}).get(name), value]
                                  for name, value in fields.items()
                                  if (previous or {}).get(name) != value}
        elif operation == "remove":
            example["reason"] = reason
        else:
            example["fields"] = fields
        report.examples.setdefault(operation, []).append(example)
    report.added, report.changed, report.removed = counts["add"], counts["update"], counts["remove"]
    return report

