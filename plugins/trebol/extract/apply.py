"""Applying a checked batch to its raw table: a merge by primary key or, for a source with a
``version_column``, by primary key and version (raw keeps every version, each dated by when a
run begins to load it, whatever the order batches arrive in). A snapshot source's diff into its
history is ``snapshots``'.

Inputs: ``_checked`` (from ``checks.check``). Outputs: rows of ``raw.<target>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import psycopg
from psycopg import sql

from trebol.extract.sources import Source
from trebol.interval import local_midnight
from trebol.warehouse.ddl import (
    AVAILABLE_FROM,
    identifiers,
    raw_key_constraint,
    raw_key_definition,
    raw_table,
)


@contextmanager
def bulk_load(conn: psycopg.Connection, source: Source) -> Iterator[bool]:
    """Around an insert into the raw table: whether the table is empty. An empty one (a first
    load) is truncated first, so that with ``wal_level = minimal`` (the embedded warehouse) its
    new files skip the WAL, and its key is dropped and built again after the insert, as
    PostgreSQL's bulk-loading advice goes."""
    target = raw_table(source)
    empty = conn.execute(sql.SQL("select not exists (select from {})").format(target)).fetchone()[0]
    if empty:
        conn.execute(sql.SQL("truncate {}").format(target))
        conn.execute(sql.SQL("alter table {} drop constraint {}").format(
            target, sql.Identifier(raw_key_constraint(source))))
    yield empty
    if empty:
        conn.execute("set local maintenance_work_mem = '512MB'")  # sort the keys in memory
        conn.execute(sql.SQL("alter table {} add {}").format(target, raw_key_definition(source)))


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
    insert = sql.SQL("insert into {t} ({c}) select {s} from _checked "
                     "where _reason is null and not _superseded").format(
        t=target, c=identifiers(columns), s=sql.SQL(", ").join(selected))
    with bulk_load(conn, source) as empty:
        if empty:  # no key to meet: the batch's duplicates were ranked (checks.rank_duplicates)
            conn.execute(insert)
            return
        conn.execute(sql.SQL(
            "{insert} on conflict ({k}) do update set {u} where case when {same} "
            "then excluded._batch_id < {t}._batch_id or {earlier} "
            "else excluded._batch_id > {t}._batch_id end").format(
            insert=insert, t=target, k=identifiers(source.raw_key), u=sql.SQL(", ").join(updates),
            same=same, earlier=earlier))
