"""The loader's scratch tables (``_incoming``, ``_checked``, ``_unreadable_keys``, ``_diff``):
temporary tables refilled batch after batch, never made afresh for each.

A source's load is one transaction over every batch of its interval; a first load reads every
daily file of the history. A table made and dropped inside a transaction keeps its locks until
the transaction ends, so making the scratch tables again for each of 1,095 daily files ran out
of the server's lock table ("out of shared memory", ``max_locks_per_transaction``: 64 per
connection by default) in the first load of three years of e-commerce orders. A scratch table is
made once for its shape (tagged with it, as its comment) and emptied for the next batch, which
takes no new lock.

Inputs: the connection, the table's name and its shape (columns or query). Outputs: the
temporary table, empty or filled with the query's rows.
"""

from __future__ import annotations

import hashlib

import psycopg
from psycopg import sql


def _shape(conn: psycopg.Connection, definition: sql.Composable) -> str:
    return hashlib.md5(definition.as_string(conn).encode(), usedforsecurity=False).hexdigest()


def _reusable(conn: psycopg.Connection, name: str, shape: str) -> bool:
    """Whether this session holds the temporary table ``name`` made for ``shape``; if it does
    not, whatever holds the name is dropped."""
    tag = conn.execute("select obj_description(to_regclass(%s), 'pg_class')",
                       (f"pg_temp.{name}",)).fetchone()[0]
    if tag == shape:
        return True
    conn.execute(sql.SQL("drop table if exists pg_temp.{}").format(sql.Identifier(name)))
    return False


def _tag(conn: psycopg.Connection, name: str, shape: str) -> None:
    conn.execute(sql.SQL("comment on table pg_temp.{} is {}").format(
        sql.Identifier(name), sql.Literal(shape)))


def empty_table(conn: psycopg.Connection, name: str, columns: sql.Composable) -> None:
    """The temporary table ``name`` with ``columns`` (their definitions), empty. Its identity
    columns go on counting: restarting one (``truncate … restart identity``) gives its sequence
    new storage, and each restart in a transaction cost more than the one before (measured:
    1.2 ms a round over the first 1,000, 3.1 ms over the third; a plain truncate 0.7 ms
    throughout), which a first load of 1,095 daily files pays."""
    shape = _shape(conn, columns)
    if _reusable(conn, name, shape):
        conn.execute(sql.SQL("truncate pg_temp.{}").format(sql.Identifier(name)))
        return
    conn.execute(sql.SQL("create temp table {} ({})").format(sql.Identifier(name), columns))
    _tag(conn, name, shape)


def filled_table(conn: psycopg.Connection, name: str, query: sql.Composable) -> None:
    """The temporary table ``name`` holding exactly the rows of ``query``. A column a caller
    added to the table after its first fill keeps its default in the later ones."""
    shape = _shape(conn, query)
    table = sql.Identifier(name)
    if _reusable(conn, name, shape):
        conn.execute(sql.SQL("truncate pg_temp.{}").format(table))
        conn.execute(sql.SQL("insert into pg_temp.{} {}").format(table, query))
        return
    conn.execute(sql.SQL("create temp table {} as {}").format(table, query))
    _tag(conn, name, shape)
