"""Extract declared sources for one data interval and load them into ``raw`` with COPY.

Contracts kept here:

- *nothing lost*: for every file, rows read = rows loaded + rows quarantined, written to
  ``raw._load_audit``; each rejected row lands in ``raw._quarantine`` with the reason, the file,
  the line number and the original text;
- *idempotent*: one transaction per source and run; rows are upserted by primary key and the
  newest version wins whatever the load order, so re-runs, backfills and out-of-order runs leave
  the same ``raw`` tables as one clean run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from trebol.sources import Column, Source

RAW_SCHEMA = "raw"
DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
PG_TYPES = {"text": "text", "numeric": "numeric", "timestamptz": "timestamptz", "boolean": "boolean"}
TRUE_WORDS = {"true", "t", "1", "yes", "y"}
FALSE_WORDS = {"false", "f", "0", "no", "n"}


@dataclass(frozen=True)
class Interval:
    """A run's data interval, as Airflow gives it (timezone-aware, end exclusive)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Rejected:
    """One quarantined row."""

    line: int
    reason: str
    payload: str


@dataclass(frozen=True)
class ParsedFile:
    """A file read and checked row by row."""

    rows: list[tuple[Any, ...]]
    rejected: list[Rejected]
    rows_read: int
    sha256: str


@dataclass(frozen=True)
class BatchResult:
    """What one file contributed (the figures of its audit row)."""

    source: str
    batch_id: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    skipped: str | None = None


class RowError(ValueError):
    """A value that fails its column's checks; the message says which and why."""


def file_day(path: Path) -> date | None:
    """The business day a file holds, from the YYYY-MM-DD in its name."""
    match = DAY_IN_NAME.search(path.name)
    return date.fromisoformat(match.group(1)) if match else None


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _convert(column: Column, raw: str, tz: ZoneInfo, interval: Interval) -> Any:
    text = raw.strip()
    if text == "":
        if column.required:
            raise RowError(f"{column.name}: missing value")
        return None
    if column.type == "text":
        return text
    if column.type == "boolean":
        lowered = text.lower()
        if lowered in TRUE_WORDS | FALSE_WORDS:
            return lowered in TRUE_WORDS
        raise RowError(f"{column.name}: {text!r} is not a boolean")
    if column.type == "numeric":
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise RowError(f"{column.name}: {text!r} is not a number") from None
        if not number.is_finite():
            raise RowError(f"{column.name}: {text!r} is not a finite number")
        if column.minimum is not None and number < column.minimum:
            raise RowError(f"{column.name}: {text} is below the plausible minimum {column.minimum}")
        if column.maximum is not None and number > column.maximum:
            raise RowError(f"{column.name}: {text} is above the plausible maximum {column.maximum}")
        return number
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(f"{column.name}: {text!r} is not an ISO timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    if column.not_after_interval_end and moment >= interval.end:
        raise RowError(f"{column.name}: {text} is after the data interval end {interval.end.isoformat()}")
    return moment


def parse_file(path: Path, source: Source, interval: Interval, tz: ZoneInfo) -> ParsedFile:
    """Read one CSV export; keep good rows (newest version per key) and reject the rest."""
    data = path.read_bytes()
    text = data.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip() for name in next(reader, [])]
    positions = {name: index for index, name in enumerate(header)}
    missing = [c.name for c in source.columns if c.name not in positions and c.required]
    key_index = [source.column_names.index(k) for k in source.primary_key]
    version_index = (source.column_names.index(source.version_column)
                     if source.version_column else None)
    kept: dict[tuple[Any, ...], tuple[int, tuple[Any, ...], str]] = {}
    rejected: list[Rejected] = []
    rows_read = 0
    for fields in reader:
        if not fields:
            continue
        rows_read += 1
        line = reader.line_num
        payload = ",".join(fields)
        try:
            if any("\udc80" <= ch <= "\udcff" for ch in payload):
                payload = payload.encode("utf-8", "surrogateescape").decode("latin-1")
                raise RowError("not valid UTF-8 (Latin-1 bytes?)")
            if missing:
                raise RowError(f"column(s) {', '.join(missing)} missing from the header")
            if len(fields) != len(header):
                raise RowError(f"expected {len(header)} fields as in the header, got {len(fields)}")
            row = tuple(
                _convert(c, fields[positions[c.name]] if c.name in positions else "", tz, interval)
                for c in source.columns
            )
        except RowError as error:
            rejected.append(Rejected(line, str(error), payload))
            continue
        key = tuple(row[i] for i in key_index)
        earlier = kept.get(key)
        if earlier is not None:
            # a strictly newer version replaces the kept row; an exact or older copy is rejected
            newer_wins = version_index is not None and row[version_index] > earlier[1][version_index]
            loser_line, loser_payload = (earlier[0], earlier[2]) if newer_wins else (line, payload)
            winner_line = line if newer_wins else earlier[0]
            rejected.append(Rejected(loser_line, f"duplicate key {key!r}: superseded by line "
                                                 f"{winner_line}", loser_payload))
            if not newer_wins:
                continue
        kept[key] = (line, row, payload)
    rows = [entry[1] for entry in kept.values()]
    return ParsedFile(rows, sorted(rejected, key=lambda r: r.line), rows_read,
                      hashlib.sha256(data).hexdigest())


def _table(source: Source) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(RAW_SCHEMA), sql.Identifier(source.table))


def ensure_tables(conn: psycopg.Connection, sources: Iterable[Source]) -> None:
    """Create the raw tables, the load audit and the quarantine; idempotent."""
    with conn.transaction():
        conn.execute("create schema if not exists raw")
        conn.execute("""
            create table if not exists raw._load_audit (
                source text not null,
                batch_id text not null,
                file_day date,
                file_sha256 text not null,
                interval_start timestamptz not null,
                interval_end timestamptz not null,
                rows_read integer not null,
                rows_loaded integer not null,
                rows_quarantined integer not null,
                loaded_at timestamptz not null default now(),
                primary key (source, batch_id),
                check (rows_read = rows_loaded + rows_quarantined)
            )""")
        conn.execute("""
            create table if not exists raw._quarantine (
                source text not null,
                batch_id text not null,
                line_number integer not null,
                reason text not null,
                payload text not null,
                primary key (source, batch_id, line_number)
            )""")
        for source in sources:
            columns = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(PG_TYPES[c.type]))
                       for c in source.columns]
            columns.append(sql.SQL("_batch_id text not null"))
            conn.execute(sql.SQL("create table if not exists {} ({}, primary key ({}))").format(
                _table(source), sql.SQL(", ").join(columns),
                sql.SQL(", ").join(map(sql.Identifier, source.primary_key))))


def plan_files(conn: psycopg.Connection, source: Source, sources_dir: Path, interval: Interval,
               lookback_days: int, tz: ZoneInfo) -> list[Path]:
    """Files this run loads for ``source``, oldest first.

    ``files``: every file dated inside the interval widened by the lookback, plus any earlier
    file whose content is not in the audit yet (late or missed deliveries). ``snapshot``: the
    newest file dated before the interval end.
    """
    dated = sorted((day, path) for path in sources_dir.glob(source.path)
                   if (day := file_day(path)) is not None and _day_start(day, tz) < interval.end)
    if source.kind == "snapshot":
        return [dated[-1][1]] if dated else []
    window_start = interval.start - timedelta(days=lookback_days)
    loaded = dict(conn.execute(
        "select batch_id, file_sha256 from raw._load_audit where source = %s",
        (source.name,)).fetchall())
    chosen = []
    for day, path in dated:
        batch_id = _batch_id(path, sources_dir)
        in_window = _day_start(day, tz) >= window_start
        if in_window or batch_id not in loaded or loaded[batch_id] != _sha256(path):
            chosen.append(path)
    return chosen


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _batch_id(path: Path, sources_dir: Path) -> str:
    return path.relative_to(sources_dir).as_posix()


def _copy_rows(conn: psycopg.Connection, source: Source, rows: list[tuple[Any, ...]],
               batch_id: str) -> None:
    conn.execute(sql.SQL("create temp table _incoming (like {}) on commit drop").format(
        _table(source)))
    names = [*source.column_names, "_batch_id"]
    copy_sql = sql.SQL("copy _incoming ({}) from stdin").format(
        sql.SQL(", ").join(map(sql.Identifier, names)))
    with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row((*row, batch_id))


def _merge_rows(conn: psycopg.Connection, source: Source) -> None:
    names = [*source.column_names, "_batch_id"]
    columns = sql.SQL(", ").join(map(sql.Identifier, names))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(n)) for n in names)
    version = sql.Identifier(source.version_column) if source.version_column else None
    newer = (sql.SQL("where (excluded.{v}, excluded._batch_id) > ({t}.{v}, {t}._batch_id)").format(
        v=version, t=_table(source)) if version else sql.SQL(""))
    conn.execute(sql.SQL(
        "insert into {t} ({c}) select {c} from _incoming "
        "on conflict ({k}) do update set {u} {w}").format(
        t=_table(source), c=columns, k=sql.SQL(", ").join(map(sql.Identifier, source.primary_key)),
        u=updates, w=newer))


def _replace_snapshot(conn: psycopg.Connection, source: Source, day: date | None) -> str | None:
    newest = conn.execute("select max(file_day) from raw._load_audit where source = %s",
                          (source.name,)).fetchone()[0]
    if newest is not None and day is not None and day < newest:
        return f"snapshot of {day} is older than the loaded one of {newest}"
    names = sql.SQL(", ").join(map(sql.Identifier, [*source.column_names, "_batch_id"]))
    conn.execute(sql.SQL("delete from {}").format(_table(source)))
    conn.execute(sql.SQL("insert into {t} ({c}) select {c} from _incoming").format(
        t=_table(source), c=names))
    return None


def load_file(conn: psycopg.Connection, source: Source, path: Path, sources_dir: Path,
              interval: Interval, tz: ZoneInfo) -> BatchResult:
    """Load one file inside the caller's transaction; write its audit and quarantine rows."""
    batch_id = _batch_id(path, sources_dir)
    parsed = parse_file(path, source, interval, tz)
    _copy_rows(conn, source, parsed.rows, batch_id)
    skipped = None
    if source.kind == "snapshot":
        skipped = _replace_snapshot(conn, source, file_day(path))
    else:
        _merge_rows(conn, source)
    conn.execute("drop table _incoming")
    if skipped:
        return BatchResult(source.name, batch_id, parsed.rows_read, 0, 0, skipped)
    conn.execute("delete from raw._quarantine where source = %s and batch_id = %s",
                 (source.name, batch_id))
    with conn.cursor() as cursor, cursor.copy(
            "copy raw._quarantine (source, batch_id, line_number, reason, payload) from stdin") as copy:
        for item in parsed.rejected:
            copy.write_row((source.name, batch_id, item.line, item.reason, item.payload))
    result = BatchResult(source.name, batch_id, parsed.rows_read, len(parsed.rows), len(parsed.rejected))
    conn.execute("""
        insert into raw._load_audit (source, batch_id, file_day, file_sha256, interval_start,
            interval_end, rows_read, rows_loaded, rows_quarantined)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (source, batch_id) do update set
            file_day = excluded.file_day, file_sha256 = excluded.file_sha256,
            interval_start = excluded.interval_start, interval_end = excluded.interval_end,
            rows_read = excluded.rows_read, rows_loaded = excluded.rows_loaded,
            rows_quarantined = excluded.rows_quarantined, loaded_at = now()""",
        (source.name, batch_id, file_day(path), parsed.sha256, interval.start, interval.end,
         result.rows_read, result.rows_loaded, result.rows_quarantined))
    return result


def extract_and_load(conn: psycopg.Connection, source: Source, sources_dir: Path,
                     interval: Interval, lookback_days: int, timezone: str) -> list[BatchResult]:
    """Load every file this interval needs for ``source``, all in one transaction."""
    tz = ZoneInfo(timezone)
    ensure_tables(conn, [source])
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"trebol.load.{source.name}",))
        files = plan_files(conn, source, sources_dir, interval, lookback_days, tz)
        return [load_file(conn, source, path, sources_dir, interval, tz) for path in files]
