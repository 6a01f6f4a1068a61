"""Applying a checked batch to its raw table: a merge by primary key or, for a source with a
``version_column``, by primary key and version (raw keeps every version, each dated by when a
run begins to load it, whatever the order batches arrive in), or, for a snapshot source, a diff
into the history (``_valid_from`` / ``_valid_to``).

A snapshot that would close more than the source's ``max_closed_share`` of the current records
(a truncated or empty export) is held: nothing of it is applied and every row is quarantined with
the reason, until an operator confirms it or a corrected file replaces it. A snapshot day's effect
can be undone exactly (``rollback_snapshots``): a re-delivered file replaces its day.

Inputs: ``_checked`` (from ``checks.check``). Outputs: rows of ``raw.<target>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg import sql

from trebol.extract.sources import Source
from trebol.interval import local_midnight
from trebol.warehouse.ddl import AVAILABLE_FROM, identifiers, raw_table


def available_from(source: Source, day: date | None, timezone: str) -> sql.Composable:
    """When a run begins to load the batch's versions (``_available_from``), the same whatever
    run loads them: a file's, the start of the day it is dated (the loader loads it in every run
    whose interval ends after that); a database row's, its cursor value (extracted by every run
    whose interval ends after it). A run as of T sees the versions available before T."""
    if source.kind == "postgres":
        return sql.SQL("cast({} as timestamptz)").format(sql.Identifier(source.cursor or ""))
    if day is None:
        raise ValueError(f"{source.name}: a file batch without a day")
    return sql.Literal(local_midnight(day, timezone))


def merge(conn: psycopg.Connection, source: Source, batch_id: str,
          available: sql.Composable | None = None) -> None:
    """Upsert the good rows by the raw table's key (``Source.raw_key``: with the version for a
    source that keeps versions, so each version is a row of its own, dated ``available``). The
    same key (and version) delivered again: with the same content, only the lowest batch id
    (the first batch that delivered it) and the earliest availability are kept; with other
    content, the higher batch id wins. So the result does not depend on the order in which
    batches were loaded."""
    target = raw_table(source)
    stored = source.stored_column_names
    values = [c for c in stored if c not in source.raw_key]

    def cols(prefix: sql.Composable, names: list[str]) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL("{}.{}").format(prefix, sql.Identifier(n)) for n in names) \
            or sql.SQL("null")

    new, old = sql.SQL("excluded"), target
    same = sql.SQL("({}) is not distinct from ({})").format(cols(new, values), cols(old, values))
    columns, selected = [*stored, "_batch_id"], [*map(sql.Identifier, stored), sql.Literal(batch_id)]
    updates = [sql.SQL("{0} = excluded.{0}").format(sql.Identifier(n)) for n in stored]
    updates.append(sql.SQL("_batch_id = case when {same} then least({t}._batch_id, "
                           "excluded._batch_id) else excluded._batch_id end").format(same=same, t=target))
    earlier = sql.SQL("false")
    if source.keeps_versions:
        if available is None:
            raise ValueError(f"{source.name}: keeps versions: a batch needs its availability")
        column = sql.Identifier(AVAILABLE_FROM)
        columns.append(AVAILABLE_FROM)
        selected.append(available)
        updates.append(sql.SQL("{c} = case when {same} then least({t}.{c}, excluded.{c}) "
                               "else excluded.{c} end").format(c=column, same=same, t=target))
        earlier = sql.SQL("excluded.{c} < {t}.{c}").format(c=column, t=target)
    conn.execute(sql.SQL(
        "insert into {t} ({c}) select {s} from _checked where _reason is null and not _superseded "
        "on conflict ({k}) do update set {u} where case when {same} "
        "then excluded._batch_id < {t}._batch_id or {earlier} "
        "else excluded._batch_id > {t}._batch_id end").format(
        t=target, c=identifiers(columns), s=sql.SQL(", ").join(selected),
        k=identifiers(source.raw_key), u=sql.SQL(", ").join(updates), same=same, earlier=earlier))


@dataclass(frozen=True)
class SnapshotDiff:
    """What diffing one snapshot into the history did, or why it was held."""

    current: int  # open records before the snapshot
    gone: int  # of those, records whose key the snapshot lacks (not even in a quarantined row)
    opened: int = 0
    closed: int = 0
    unreadable: int = 0  # records carried over as unreadable (their row quarantined)
    held_reason: str | None = None

    @property
    def note(self) -> str:
        if self.held_reason:
            return self.held_reason
        return (f"snapshot diff: {self.opened} new or changed, {self.closed} changed or gone, "
                f"{self.unreadable} unreadable (row quarantined)")


def stage_unreadable_keys(conn: psycopg.Connection, source: Source) -> None:
    """``_unreadable_keys``: the keys of the snapshot's quarantined rows whose key could still be
    read (``_record_key``: a row that failed a check, or a line the reader rejected whose key
    fields were clean) that no usable row of the snapshot has."""
    keys = identifiers(source.primary_key)
    conn.execute("drop table if exists _unreadable_keys")
    conn.execute(sql.SQL("create temp table _unreadable_keys as select distinct {k} from _checked n "
                         "where _reason is not null and _record_key is not null and not exists "
                         "(select 1 from _checked u where u._reason is null and {same})").format(
        k=keys, same=sql.SQL(" and ").join(sql.SQL("u.{0} = n.{0}").format(sql.Identifier(k))
                                           for k in source.primary_key)))


def apply_snapshot(conn: psycopg.Connection, source: Source, batch_id: str, day: date,
                   confirmed: bool = False) -> SnapshotDiff:
    """Diff the snapshot of ``day`` into the history (``_checked`` and ``_unreadable_keys``).

    A record whose row is usable: a new or changed version opens, the old one closes. A record
    whose row was quarantined but whose key is readable is not gone: its last version is carried
    over as a new version flagged ``_unreadable`` (so what depends on it, like marketing consent,
    can fail safe) until a usable row arrives. A record the snapshot lacks is closed. Unless the
    snapshot would close more than the source's ``max_closed_share`` of the current records and
    nobody ``confirmed`` it: then it is held (nothing applied, every row quarantined)."""
    target = raw_table(source)
    stored = source.stored_column_names
    values = [c for c in stored if c not in source.primary_key]

    def same_key(alias: str) -> sql.Composable:
        return sql.SQL(" and ").join(sql.SQL("{0}.{1} = t.{1}").format(sql.Identifier(alias),
                                                                       sql.Identifier(k))
                                     for k in source.primary_key)

    in_snapshot = sql.SQL("n._reason is null and not n._superseded and {}").format(same_key("n"))
    unreadable = sql.SQL("exists (select 1 from _unreadable_keys u where {})").format(same_key("u"))
    current, gone = conn.execute(sql.SQL(
        "select count(*), count(*) filter (where not exists (select 1 from _checked n where "
        "{in_snapshot}) and not {unreadable}) from {t} t where t._valid_to is null").format(
        t=target, in_snapshot=in_snapshot, unreadable=unreadable)).fetchone()
    if current and gone / current > source.max_closed_share and not confirmed:
        reason = (f"snapshot held: it would close {gone:,} of the {current:,} current records "
                  f"({gone / current:.1%}, more than max_closed_share {source.max_closed_share:.0%}); "
                  f"confirm it with `trebol snapshot confirm {source.name} {day.isoformat()}` or "
                  "deliver a corrected file")
        conn.execute("update _checked set _reason = %s where _reason is null", (reason,))
        return SnapshotDiff(current, gone, held_reason=reason)
    differs = sql.SQL("({}) is distinct from ({})").format(
        sql.SQL(", ").join(sql.SQL("n.{}").format(sql.Identifier(v)) for v in values) or sql.SQL("null"),
        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(v)) for v in values) or sql.SQL("null"))
    closed = conn.execute(sql.SQL(
        "update {t} t set _valid_to = {d} where t._valid_to is null and not {unreadable} and "
        "(t._unreadable or not exists (select 1 from _checked n where {in_snapshot} and not {differs}))"
        ).format(t=target, d=sql.Literal(day), unreadable=unreadable, in_snapshot=in_snapshot,
                 differs=differs)).rowcount
    carried = conn.execute(sql.SQL(
        "with carried as (update {t} t set _valid_to = {d} where t._valid_to is null "
        "and not t._unreadable and {unreadable} returning t.*) "
        "insert into {t} ({c}, _batch_id, _valid_from, _unreadable) "
        "select {c}, {b}, {d}, true from carried").format(
        t=target, d=sql.Literal(day), unreadable=unreadable, c=identifiers(stored),
        b=sql.Literal(batch_id))).rowcount
    opened = conn.execute(sql.SQL(
        "insert into {t} ({c}, _batch_id, _valid_from) select {c}, {b}, {d} from _checked n "
        "where n._reason is null and not n._superseded and not exists "
        "(select 1 from {t} t where t._valid_to is null and {same})").format(
        t=target, c=identifiers(stored), b=sql.Literal(batch_id), d=sql.Literal(day),
        same=same_key("n"))).rowcount
    return SnapshotDiff(current, gone, opened, closed, carried)


def rollback_snapshots(conn: psycopg.Connection, source: Source, since: date) -> None:
    """Undo the snapshots of ``since`` and later days: the versions they opened are deleted and
    the versions they closed are open again, which is the history as the day before left it."""
    target = raw_table(source)
    conn.execute(sql.SQL("delete from {} where _valid_from >= %s").format(target), (since,))
    conn.execute(sql.SQL("update {} set _valid_to = null where _valid_to >= %s").format(target),
                 (since,))
