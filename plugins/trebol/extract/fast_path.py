"""The shortcut for a clean CSV file of new keys: PostgreSQL reads the file (no Python per row)
and one insert applies the rule set of ``checks`` to every row.

The file is COPY-ed as text into ``_incoming`` (line numbers given in arrival order), then
``insert into raw.<target> select <typed values> from _incoming where <no reason>`` (whether a
date exists is left to the cast, which raises). It is taken only when every row is usable and
every key is new: if COPY cannot read the file as one record per line, or the insert takes fewer
rows than were read, or a key (with its version, for a source that keeps versions) is already
loaded (or twice in the file), or PostgreSQL refuses a value (a NUL, JSON too deep to parse),
everything is rolled back and the file takes the general path (readers, checks, apply), which
gives each row the same fate by the same rules and keeps the original text of the rows it
quarantines. An empty table (a first bulk load) is truncated first, so that with ``wal_level =
minimal`` its new files skip the WAL, and its key is built after the insert, as PostgreSQL's
bulk-loading advice goes.

Inputs: a CSV export, its source declaration. Outputs: rows of ``raw.<target>`` and a
``Staged``, or None (nothing changed).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import psycopg
from psycopg import sql

from trebol.erasure.suppression import Suppression, remove_suppressed
from trebol.extract.checks import CAST_RAISES, rendered_checked_rows
from trebol.extract.readers import DATA_ERRORS, Staged, create_incoming, csv_header
from trebol.extract.sources import Source
from trebol.interval import Interval
from trebol.warehouse.address import error_line
from trebol.warehouse.ddl import (
    AVAILABLE_FROM,
    identifiers,
    raw_key_constraint,
    raw_key_definition,
    raw_table,
)

log = logging.getLogger(__name__)


class _NotClean(Exception):
    """A row needs the general path; the file takes it."""


def load_clean_csv(conn: psycopg.Connection, source: Source, path: Path, batch_id: str,
                   interval: Interval, timezone: str, suppression: Suppression | None = None,
                   available: sql.Composable | None = None) -> Staged | None:
    """Load a clean CSV file of new keys in one COPY and one insert; None (rolled back) when any
    row needs the general path. The rows of erased people (``suppression``) are taken out
    before the insert and counted. ``available``: the versions' ``_available_from``, for a
    source that keeps versions (``apply.available_from``)."""
    if (source.kind != "files" or source.format != "csv" or source.rules
            or source.stored_column_names != source.column_names or len(source.columns) < 2):
        return None
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = csv_header(handle.readline())
    by_source_name = {column.source_name: column for column in source.columns}
    if (len(set(header)) != len(header) or not all(name in by_source_name for name in header)
            or any(c.required and c.source_name not in header for c in source.columns)):
        return None
    copied_columns = [by_source_name[name].name for name in header]
    target = raw_table(source)
    inserted, extra = [*source.column_names, "_batch_id"], [sql.Literal(batch_id)]
    if source.keeps_versions:
        if available is None:
            raise ValueError(f"{source.name}: keeps versions: a batch needs its availability")
        inserted.append(AVAILABLE_FROM)
        extra.append(available)
    digest, lines, last = hashlib.sha256(), 0, b"\n"
    try:
        with conn.transaction():
            conn.execute(sql.SQL("set local timezone = {}").format(sql.Literal(timezone)))
            create_incoming(conn, list(source.column_names))
            statement = sql.SQL("copy _incoming ({}) from stdin with (format csv, header true)").format(
                identifiers(copied_columns))
            with conn.cursor() as cursor:
                with cursor.copy(statement) as copy, path.open("rb") as raw:
                    for block in iter(lambda: raw.read(1 << 20), b""):
                        digest.update(block)
                        lines += block.count(b"\n")
                        last = block[-1:]
                        copy.write(block)
                staged_rows = cursor.rowcount
            rows = lines - 1 + (last != b"\n")
            if staged_rows != rows:
                raise _NotClean(f"{rows} lines, {staged_rows} records")
            suppressed = remove_suppressed(conn, source, suppression) if suppression else 0
            empty = conn.execute(sql.SQL("select not exists (select from {})").format(target)
                                 ).fetchone()[0]
            if empty:
                # a table truncated in this transaction gets new files: with wal_level minimal
                # (the embedded warehouse) the insert and the key build skip the WAL
                conn.execute(sql.SQL("truncate {}").format(target))
                conn.execute(sql.SQL("alter table {} drop constraint {}").format(
                    target, sql.Identifier(raw_key_constraint(source))))
            loaded = conn.execute(sql.SQL(
                "insert into {t} ({i}) select {c}, {e} from ({rows}) as checked "
                "where _reason is null").format(
                t=target, i=identifiers(inserted), c=identifiers(source.column_names),
                e=sql.SQL(", ").join(extra),
                rows=rendered_checked_rows(conn, source, interval, CAST_RAISES))).rowcount
            if loaded != rows - suppressed:
                raise _NotClean(f"{rows - suppressed - loaded} row(s) with a reason")
            if empty:
                conn.execute("set local maintenance_work_mem = '512MB'")  # sort the keys in memory
                conn.execute(sql.SQL("alter table {} add {}").format(
                    target, raw_key_definition(source)))
    except (_NotClean, *DATA_ERRORS) as reason:
        # COPY could not read the file as CSV records (field count, encoding, a NUL), a value of
        # an ISO form does not exist (2026-02-30), JSON too deep for the parser's stack: the
        # general path gives the row its reason
        log.info("%s %s: general path (%s)", source.name, batch_id, error_line(reason))
        return None
    absent = [c.source_name for c in source.columns if c.source_name not in header]
    notes = [f"column(s) {', '.join(absent)} missing"] if absent else []
    for note in notes:
        log.warning("%s %s: %s", source.name, path.name, note)
    return Staged(rows_read=rows, checksum=digest.hexdigest(), fields=list(source.column_names),
                  notes=notes, suppressed=suppressed)
