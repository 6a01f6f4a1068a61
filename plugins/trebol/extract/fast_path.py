"""The shortcut for a run's files: the rule set of ``checks`` checks every row of every file a
run loads at once, and one insert takes them.

Each CSV file is COPY-ed as text into ``_incoming`` by PostgreSQL (no Python per row; line
numbers given in arrival order); each JSON Lines file is read by the general path's reader
(``readers.copy_jsonl_rows``: the same reasons for the lines it cannot read), its lines
numbered on from the files before. So a file's rows are one range of line numbers. The checked
rows of all the files are kept in ``_clean`` with the number of the file they came from, and
the source's rules applied to them as to a batch, and a key's extra copies in a file ranked as
duplicates, as in a batch. A file takes the shortcut when it is read as one record per line
(by COPY, for a CSV file) and none of its usable rows has a key (with its version, for a
source that keeps versions) already loaded or also in another file of the run: one ``insert
into raw.<target> select <typed values>`` takes the usable rows of every such file, and its
rows with a reason are quarantined with their line and that line's text (a CSV line read back
from the file), as the general path would. Any other file is left to the general path
(readers, checks, apply), which merges by key; the merge gives the same rows whatever the order
batches are applied in, so the files left to it may come after the others.

The checks, the rules, the verdict and the insert are statements of the run, not of each file:
a first load of three years of daily exports (1,094 files) paid about a dozen statements for
each file when each took the shortcut on its own, and a file with one bad row took the general
path whole (measured at 200,000 people, first loads: crm_cases 10.0-15.8 s before, 2.3-3.2 s
after; loyalty_members 12.2-16.5 s, 5.5-6.4 s; loyalty_points 16.0-21.7 s, 11.6-12.7 s, where
300 of the 1,094 files still take the general path: lines COPY cannot read; docs/benchmarks.md).

A value of an ISO form that does not exist (2026-02-30) makes the cast raise: the checks are
then run again with the server's test of each value (``checks.castability``), which gives such
a row its reason. An empty table (a first load) takes the insert with its key built after
(``apply.bulk_load``).

Inputs: CSV and JSON Lines exports, their source declaration. Outputs: rows of
``raw.<target>`` and a ``Staged`` for each file loaded; the other files are not touched.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from trebol.erasure.suppression import Suppression, remove_suppressed
from trebol.extract import readers, scratch
from trebol.extract.apply import bulk_load
from trebol.extract.audit import clear_quarantine
from trebol.extract.checks import (
    CAST_RAISES,
    apply_rules,
    castability,
    rank_duplicates,
    rendered_checked_rows,
)
from trebol.extract.readers import DATA_ERRORS, Staged, create_incoming, csv_header, csv_payloads
from trebol.extract.sources import Source
from trebol.interval import Interval
from trebol.warehouse.address import error_line
from trebol.warehouse.ddl import (
    AVAILABLE_FROM,
    identifiers,
    raw_table,
)

log = logging.getLogger(__name__)


class _NotClean(Exception):
    """A file needs the general path (COPY did not read it as one record per line)."""


@dataclass(frozen=True)
class Export:
    """A file a run loads: its batch id and, for a source that keeps versions, its versions'
    ``_available_from`` (``apply.available_from``)."""

    path: Path
    batch_id: str
    available: sql.Composable | None = None


@dataclass
class _Copied:
    export: Export
    staged: Staged
    first_line: int  # the _line of its first row (of its first line, in JSON Lines)
    quarantined: int = 0


@dataclass(frozen=True)
class Loaded:
    """A file the shortcut loaded: what was read, and how many of its rows were quarantined."""

    staged: Staged
    quarantined: int


def takes_shortcut(source: Source) -> bool:
    """Whether the source's files can take the shortcut at all (every declared column stored; a
    CSV file's of two columns at least: COPY would read a blank line of one as a row of nulls,
    which the reader skips)."""
    return (source.kind == "files" and source.stored_column_names == source.column_names
            and (source.format == "jsonl" or len(source.columns) >= 2))


def load_files(conn: psycopg.Connection, source: Source, exports: Sequence[Export],
               interval: Interval, timezone: str,
               suppression: Suppression | None = None) -> dict[str, Loaded]:
    """Load the files among ``exports`` that the shortcut can take (see the module), by batch id.
    The rows of erased people (``suppression``) are taken out before the checks and counted."""
    if not takes_shortcut(source) or not exports:
        return {}
    try:
        with conn.transaction():
            return _load(conn, source, exports, interval, timezone, suppression)
    except DATA_ERRORS as error:
        # a value the checks passed that PostgreSQL still refuses: the general path gives each
        # row its reason
        log.info("%s: general path for every file (%s)", source.name, error_line(error))
        return {}


def _load(conn: psycopg.Connection, source: Source, exports: Sequence[Export],
          interval: Interval, timezone: str, suppression: Suppression | None) -> dict[str, Loaded]:
    """The shortcut, inside its savepoint."""
    conn.execute(sql.SQL("set local timezone = {}").format(sql.Literal(timezone)))
    create_incoming(conn, list(source.column_names))
    copied = (_read_jsonl_files if source.format == "jsonl" else _copy_files)(conn, source, exports)
    if not copied:
        return {}
    starts = [file.first_line for file in copied]
    if suppression is not None and remove_suppressed(conn, source, suppression):
        # each file's erased rows: the rows it read less those left of it
        left = dict(conn.execute(sql.SQL(
            "select width_bucket(_line, {}::integer[]), count(*) from _incoming group by 1").format(
            sql.Literal(starts))).fetchall())
        for number, file in enumerate(copied, start=1):
            file.staged.suppressed = file.staged.rows_read - left.get(number, 0)
    _fill_clean(conn, source, interval, starts, 1 if source.format == "jsonl" else 2)
    apply_rules(conn, source, "_clean")
    rank_duplicates(conn, source, "_clean", per="_file", line="_file_line")
    general = _key_conflicts(conn, source)
    for number in sorted(general):
        log.info("%s %s: general path (%s)", source.name, copied[number - 1].export.batch_id,
                 general[number])
    taken = [(number, file) for number, file in enumerate(copied, start=1) if number not in general]
    if taken:
        _insert(conn, source, [(number, file.export) for number, file in taken])
        _quarantine(conn, source, dict(taken))
    return {file.export.batch_id: Loaded(file.staged, file.quarantined) for _, file in taken}


def _copy_files(conn: psycopg.Connection, source: Source,
                exports: Sequence[Export]) -> list[_Copied]:
    """COPY each file whose header fits and that reads as one record per line into
    ``_incoming``; each in a savepoint, so that a file COPY cannot read leaves nothing."""
    line_sequence = "pg_get_serial_sequence('pg_temp._incoming', '_line')"
    next_line = conn.execute(f"select nextval({line_sequence})").fetchone()[0] + 1
    copied: list[_Copied] = []
    for export in exports:
        columns, notes = _copied_columns(source, export.path)
        if columns is None:
            continue
        try:
            with conn.transaction():
                rows, checksum = _copy(conn, export.path, columns)
        except (_NotClean, *DATA_ERRORS) as reason:
            # COPY could not read the file as CSV records (field count, encoding, a NUL): the
            # general path gives each line its reason
            log.info("%s %s: general path (%s)", source.name, export.batch_id, error_line(reason))
            next_line = conn.execute(f"select currval({line_sequence})").fetchone()[0] + 1
            continue
        for note in notes:
            log.warning("%s %s: %s", source.name, export.path.name, note)
        copied.append(_Copied(export, Staged(rows_read=rows, checksum=checksum,
                                             fields=list(source.column_names), notes=notes),
                              next_line))
        next_line += rows
    return copied


def _read_jsonl_files(conn: psycopg.Connection, source: Source,
                      exports: Sequence[Export]) -> list[_Copied]:
    """Read each JSON Lines file into ``_incoming`` with the general path's reader, its lines
    numbered on from the files before; each in a savepoint, so that a file whose rows
    PostgreSQL refuses leaves nothing (the general path then gives the file its reasons)."""
    fields = list(source.column_names)
    copied: list[_Copied] = []
    next_line = 1
    for export in exports:
        try:
            with conn.transaction(), readers.copy_in(conn, fields) as copy:
                rows, lines = readers.copy_jsonl_rows(copy, source, export.path, first=next_line)
        except DATA_ERRORS as reason:
            log.info("%s %s: general path (%s)", source.name, export.batch_id, error_line(reason))
            continue
        copied.append(_Copied(export, Staged(rows_read=rows, checksum=readers.sha256(export.path),
                                             fields=fields), next_line))
        next_line += lines
    return copied


def _copied_columns(source: Source, path: Path) -> tuple[list[str] | None, list[str]]:
    """The declared columns a file's header holds, in its order (None: the header needs the
    general path: a column named twice or unknown, a required one missing), and the notes."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = csv_header(handle.readline())
    by_source_name = {column.source_name: column for column in source.columns}
    # (one column: COPY would read a blank line as a row of nulls, which the reader skips)
    if (len(header) < 2 or len(set(header)) != len(header)
            or not all(name in by_source_name for name in header)
            or any(c.required and c.source_name not in header for c in source.columns)):
        return None, []
    absent = [c.source_name for c in source.columns if c.source_name not in header]
    return ([by_source_name[name].name for name in header],
            [f"column(s) {', '.join(absent)} missing"] if absent else [])


def _copy(conn: psycopg.Connection, path: Path, columns: list[str]) -> tuple[int, str]:
    """COPY a CSV file into ``_incoming``: its rows and its checksum; ``_NotClean`` when its
    lines are not one record each (a quoted line break), or when a line may be longer than the
    reader's limit (``readers.MAX_LINE_CHARACTERS``, counted here in bytes), which the general
    path's reader rejects unread."""
    digest, lines, last, limit = hashlib.sha256(), 0, b"\n", readers.MAX_LINE_CHARACTERS
    run = longest = 0  # the bytes since the last line end; the longest line so far
    statement = sql.SQL("copy _incoming ({}) from stdin with (format csv, header true)").format(
        identifiers(columns))
    with conn.cursor() as cursor:
        with cursor.copy(statement) as copy, path.open("rb") as raw:
            for block in iter(lambda: raw.read(1 << 20), b""):
                digest.update(block)
                lines += block.count(b"\n")
                last = block[-1:]
                first_end, last_end = block.find(b"\n"), block.rfind(b"\n")
                if first_end < 0:
                    run += len(block)
                else:
                    longest = max(longest, run + first_end)
                    if last_end - first_end > limit:
                        longest = max(longest, *map(len, block[first_end + 1:last_end].split(b"\n")))
                    run = len(block) - last_end - 1
                copy.write(block)
        staged_rows = cursor.rowcount
    if max(longest, run) > limit:
        raise _NotClean(f"a line of more than {limit:,} bytes")
    rows = lines - 1 + (last != b"\n")
    if staged_rows != rows:
        raise _NotClean(f"{rows} lines, {staged_rows} records")
    return rows, digest.hexdigest()


def _fill_clean(conn: psycopg.Connection, source: Source, interval: Interval,
                starts: list[int], first_row_line: int) -> None:
    """``_clean``: every staged row checked (``checks.checked_rows``), with the number of its
    file (1 for the first) and its line in that file (``_file_line``; a file's first row is
    its line ``first_row_line``: 2 after a CSV header, 1 in JSON Lines).
    The casts raise on a value of an ISO form that does not exist; the rows are then checked
    again with the server's test of each value."""
    for casts in (CAST_RAISES, castability(conn)):
        query = sql.SQL(
            "select width_bucket(_line, {starts}::integer[]) as _file, "
            "_line - ({starts}::integer[])[width_bucket(_line, {starts}::integer[])] + {first} "
            "as _file_line, checked.* from ({rows}) as checked").format(
            starts=sql.Literal(starts), first=sql.Literal(first_row_line),
            rows=rendered_checked_rows(conn, source, interval, casts))
        try:
            with conn.transaction():
                scratch.filled_table(conn, "_clean", query)
            return
        except DATA_ERRORS as error:
            if casts != CAST_RAISES:
                raise
            log.info("%s: values that do not cast (%s); checked one by one", source.name,
                     error_line(error))


def _same_key(source: Source, left: str, right: str) -> sql.Composable:
    """SQL: rows ``left`` and ``right`` have the same raw key (an empty version is one version,
    as the key constraint has it: ``nulls not distinct``)."""
    return sql.SQL(" and ").join(
        sql.SQL("{0}.{2} is not distinct from {1}.{2}" if name == source.version_column
                else "{0}.{2} = {1}.{2}").format(sql.Identifier(left), sql.Identifier(right),
                                                 sql.Identifier(name))
        for name in source.raw_key)


def _key_conflicts(conn: psycopg.Connection, source: Source) -> dict[int, str]:
    """The files of ``_clean`` that need the general path, with why: among their usable rows, a
    key (with its version) also in another file of the run or already loaded (the general path
    merges them by key)."""
    key = identifiers(source.raw_key)
    rows = conn.execute(sql.SQL("""
        select _file, min(why) from (
            select c._file, 'a key also in another file of the run' as why
              from _clean as c join (select {key} from _clean where _reason is null
                                     group by {key} having count(*) > 1) as d on {elsewhere}
             where c._reason is null
            union all
            select _file, 'a key loaded before'
              from _clean as c where _reason is null and exists (select from {target} as t where {loaded})
        ) as reasons group by _file""").format(
        key=key, elsewhere=_same_key(source, "c", "d"), target=raw_table(source),
        loaded=_same_key(source, "t", "c"))).fetchall()
    return dict(rows)


def _quarantine(conn: psycopg.Connection, source: Source, files: dict[int, _Copied]) -> None:
    """Quarantine the rows of ``files`` (by number) that have a reason, each with its line in its
    file (a CSV header is line 1) and that line's text, as the general path would; the
    quarantine rows of an earlier load of these files are removed."""
    clear_quarantine(conn, source, *(file.export.batch_id for file in files.values()))
    rejected: dict[int, list[tuple[int, str, str | None, str | None]]] = {}
    for number, line, reason, key, payload in conn.execute(
            "select _file, _file_line, _reason, _record_key::text, _payload from _clean "
            "where _reason is not null and _file = any(%s) order by _file, _line", (list(files),)):
        rejected.setdefault(number, []).append((line, reason, key, payload))
    if not rejected:
        return
    statement = ("copy raw._quarantine (source, batch_id, line_number, reason, payload, record_key) "
                 "from stdin")
    with conn.cursor().copy(statement) as copy:
        for number, rows in rejected.items():
            file = files[number]
            file.quarantined = len(rows)
            # a CSV file's rows have no text (COPY read them): their lines are read back
            unread = {line for line, _, _, payload in rows if payload is None}
            payloads = csv_payloads(file.export.path, unread) if unread else {}
            for line, reason, key, payload in rows:
                copy.write_row((source.name, file.export.batch_id, line, reason,
                                payloads[line] if payload is None else payload, key))


def _insert(conn: psycopg.Connection, source: Source, files: list[tuple[int, Export]]) -> None:
    """Insert the usable rows of ``files`` (their numbers in ``_clean``) into the raw table."""
    target = raw_table(source)
    inserted, extra = [*source.column_names, "_batch_id"], [sql.SQL("f.batch_id")]
    if source.keeps_versions:
        inserted.append(AVAILABLE_FROM)
        extra.append(sql.SQL("f.available"))
    with bulk_load(conn, source):
        conn.execute(sql.SQL(
            "insert into {t} ({i}) select {c}, {e} from _clean as c "
            "join (values {files}) as f (number, batch_id, available) on f.number = c._file "
            "where c._reason is null").format(
            t=target, i=identifiers(inserted), e=sql.SQL(", ").join(extra),
            c=sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(n)) for n in source.column_names),
            files=sql.SQL(", ").join(sql.SQL("({}, {}, {}::timestamptz)").format(
                sql.Literal(number), sql.Literal(export.batch_id), export.available or sql.NULL)
                for number, export in files)))
