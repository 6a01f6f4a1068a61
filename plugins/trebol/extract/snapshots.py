"""Diffing a snapshot source's daily full export into its history (``_valid_from`` /
``_valid_to``), and undoing days of it.

A snapshot that would close more than the source's ``max_closed_share`` of the current records
(a truncated or empty export) is held: nothing of it is applied and every row is quarantined with
the reason, until an operator confirms it or a corrected file replaces it. A snapshot day's effect
can be undone exactly (``rollback_snapshots``): a re-delivered file replaces its day.

What a snapshot costs depends on its size, not on the history's length: the open records are
read through the history's partial index on them (``ddl.open_records_index``), and the diff is
one join of the snapshot with them that PostgreSQL can only run as a hash or merge join (a full
join), whatever its statistics say of tables made in the same transaction (none: a temporary
table is never analyzed by autovacuum, and the history of a first load not before it commits).
Only the records that change are then written, each found by its key (the history's primary key).

Inputs: ``_checked`` (from ``checks.check``). Outputs: rows of ``raw.<target>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg import sql

from trebol.extract import scratch
from trebol.extract.sources import Source
from trebol.warehouse.ddl import identifiers, raw_table

# what the diff does with an open record or a snapshot row (``_diff._action``)
OPEN, REPLACE, CLOSE, CARRY = "open", "replace", "close", "carry"


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


def _keys_equal(left: str, right: str, keys: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(" and ").join(sql.SQL("{0}.{2} = {1}.{2}").format(
        sql.Identifier(left), sql.Identifier(right), sql.Identifier(k)) for k in keys)


def stage_unreadable_keys(conn: psycopg.Connection, source: Source) -> None:
    """``_unreadable_keys``: the keys of the snapshot's quarantined rows whose key could still be
    read (``_record_key``: a row that failed a check, or a line the reader rejected whose key
    fields were clean) that no usable row of the snapshot has (a set difference: its cost is
    the snapshot's size, never the product of the quarantined and the usable rows)."""
    keys = identifiers(source.primary_key)
    scratch.filled_table(conn, "_unreadable_keys", sql.SQL(
        "select {k} from _checked where _reason is not null and _record_key is not null "
        "except select {k} from _checked where _reason is null").format(k=keys))


def diff_query(source: Source) -> sql.Composed:
    """The query of ``_diff``'s rows: one row for each open record or usable snapshot row
    the snapshot changes, with its key, the version it closes (``_old_from``), the values of
    the version it opens and what to do (``_action``):

    - ``open``: a key with no open record: its row opens a version;
    - ``replace``: a changed record (or one open as unreadable that has a usable row again): the
      open version closes, the row opens one;
    - ``close``: a record the snapshot lacks (not even in a quarantined row): it closes;
    - ``carry``: a record whose row was quarantined, its key readable (``_unreadable_keys``):
      its last readable version closes and is carried over as a new version flagged unreadable
      (a version already flagged stays open).

    One full join of the snapshot's keys (its usable rows and its unreadable keys) with the open
    records: a hash or merge join, never a nested loop.
    """
    keys, stored = source.primary_key, source.stored_column_names
    values = [c for c in stored if c not in keys]

    def row(alias: str) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(v))
                                  for v in values) or sql.SQL("null")

    n_key, t_key = (sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(keys[0]))
                    for alias in ("n", "t"))
    action = sql.SQL(
        "case when {t_key} is null then case when n._quarantined then null else {open} end "
        "when {n_key} is null then {close} "
        "when n._quarantined then case when t._unreadable then null else {carry} end "
        "when t._unreadable or ({n_row}) is distinct from ({t_row}) then {replace} end").format(
        t_key=t_key, n_key=n_key, n_row=row("n"), t_row=row("t"), open=sql.Literal(OPEN),
        carry=sql.Literal(CARRY), close=sql.Literal(CLOSE), replace=sql.Literal(REPLACE))
    selected = [sql.SQL("coalesce(n.{0}, t.{0}) as {0}").format(sql.Identifier(k)) for k in keys]
    # a carried version keeps the open one's values; an opened one, the snapshot row's
    selected += [sql.SQL("case when n._quarantined is not false then t.{0} else n.{0} end as {0}"
                         ).format(sql.Identifier(v)) for v in values]
    snapshot = sql.SQL(
        "select {stored}, false as _quarantined from _checked where _reason is null and not _superseded "
        "union all select {keys}, {nulls} true from _unreadable_keys").format(
        stored=identifiers(stored), keys=identifiers(keys),
        nulls=sql.SQL("").join(sql.SQL("null, ") for _ in values))
    return sql.SQL(
        "select * from (select {selected}, t._valid_from as _old_from, "
        "{action} as _action from ({snapshot}) as n "
        "full join (select * from {target} where _valid_to is null) as t on {n_t}"
        ") as d where _action is not null").format(
        selected=sql.SQL(", ").join(selected), action=action, snapshot=snapshot,
        target=raw_table(source), n_t=_keys_equal("n", "t", keys))


def close_statement(source: Source, day: date) -> sql.Composed:
    """Close, as of ``day``, the open versions ``_diff`` replaces, closes or carries over (each
    found by the history's primary key)."""
    return sql.SQL(
        "update {t} as t set _valid_to = {d} from _diff as x "
        "where x._action <> {open} and {same} and t._valid_from = x._old_from").format(
        t=raw_table(source), d=sql.Literal(day), open=sql.Literal(OPEN),
        same=_keys_equal("x", "t", source.primary_key))


def insert_statement(source: Source, batch_id: str, day: date) -> sql.Composed:
    """Open, from ``day``, the versions ``_diff`` opens, replaces with or carries over
    (flagged unreadable)."""
    stored = identifiers(source.stored_column_names)
    return sql.SQL(
        "insert into {t} ({c}, _batch_id, _valid_from, _unreadable) "
        "select {c}, {b}, {d}, _action = {carry} from _diff where _action <> {close}").format(
        t=raw_table(source), c=stored, b=sql.Literal(batch_id), d=sql.Literal(day),
        carry=sql.Literal(CARRY), close=sql.Literal(CLOSE))


def apply_snapshot(conn: psycopg.Connection, source: Source, batch_id: str, day: date,
                   confirmed: bool = False) -> SnapshotDiff:
    """Diff the snapshot of ``day`` into the history (``_checked`` and ``_unreadable_keys``).

    A record whose row is usable: a new or changed version opens, the old one closes. A record
    whose row was quarantined but whose key is readable is not gone: its last version is carried
    over as a new version flagged ``_unreadable`` (so what depends on it, like marketing consent,
    can fail safe) until a usable row arrives. A record the snapshot lacks is closed. Unless the
    snapshot would close more than the source's ``max_closed_share`` of the current records and
    nobody ``confirmed`` it: then it is held (nothing applied, every row quarantined)."""
    current = conn.execute(sql.SQL("select count(*) from {} where _valid_to is null").format(
        raw_table(source))).fetchone()[0]
    scratch.filled_table(conn, "_diff", diff_query(source))
    counts = dict(conn.execute("select _action, count(*) from _diff group by _action").fetchall())
    gone = counts.get(CLOSE, 0)
    if current and gone / current > source.max_closed_share and not confirmed:
        reason = (f"snapshot held: it would close {gone:,} of the {current:,} current records "
                  f"({gone / current:.1%}, more than max_closed_share {source.max_closed_share:.0%}); "
                  f"confirm it with `trebol snapshot confirm {source.name} {day.isoformat()}` or "
                  "deliver a corrected file")
        conn.execute("update _checked set _reason = %s where _reason is null", (reason,))
        return SnapshotDiff(current, gone, held_reason=reason)
    conn.execute("analyze _diff")
    conn.execute(close_statement(source, day))
    conn.execute(insert_statement(source, batch_id, day))
    return SnapshotDiff(current, gone, counts.get(OPEN, 0) + counts.get(REPLACE, 0),
                        gone + counts.get(REPLACE, 0), counts.get(CARRY, 0))


def rollback_snapshots(conn: psycopg.Connection, source: Source, since: date) -> None:
    """Undo the snapshots of ``since`` and later days: the versions they opened are deleted and
    the versions they closed are open again, which is the history as the day before left it."""
    target = raw_table(source)
    conn.execute(sql.SQL("delete from {} where _valid_from >= %s").format(target), (since,))
    conn.execute(sql.SQL("update {} set _valid_to = null where _valid_to >= %s").format(target),
                 (since,))
