"""Extract declared sources for one data interval and load them into ``raw`` with COPY.

How a batch (one file, one snapshot or one query over the interval) travels:

1. read: CSV rows are split by Python's csv module, JSONL lines parsed; lines that cannot be
   read (wrong field count, bytes that are not UTF-8, invalid JSON) are rejected here;
2. stage: every other row is COPY-ed as text into a temporary table;
3. check: one SQL pass gives each row the first reason it is unusable (missing value, not a
   number, out of the plausible range, after the interval end, …) and ranks duplicate keys;
4. apply: good rows are merged into the raw table by primary key (newest version wins, whatever
   the load order) or, for snapshots, diffed into a history with ``_valid_from``/``_valid_to``;
   rejected rows go to ``raw._quarantine`` with the reason, the location and the original text;
5. audit: one ``raw._load_audit`` row per batch: rows read = rows loaded + rows quarantined.

Everything a source does in a run happens in one transaction, so a crash (even kill -9 in the
middle of a COPY) leaves ``raw`` as it was, and a re-run, a backfill or days loaded out of order
leave it as one clean run would.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from trebol.extract.sources import Column, Source
from trebol.interval import Interval
from trebol.warehouse.address import error_line
from trebol.warehouse.ddl import PG_TYPES, ensure_raw_tables, raw_table

DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
TRUE_WORDS = ("true", "t", "1", "yes", "y")
FALSE_WORDS = ("false", "f", "0", "no", "n")
PATTERNS = {
    "integer": r"^[+-]?[0-9]{1,18}$",
    "numeric": r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{1,3})?$",
    "date": r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
    "timestamptz": r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
                   r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,6})?)?)?"
                   r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$",
}
PREFIXES = {"integer": r"^[+-]?[0-9]", "numeric": r"^[+-]?[.0-9]", "date": r"^[0-9]{4}-",
            "timestamptz": r"^[0-9]{4}-"}
TYPE_WORDS = {"integer": "a whole number", "numeric": "a number", "date": "an ISO date",
              "timestamptz": "an ISO timestamp", "boolean": "a boolean"}

log = logging.getLogger(__name__)
SourceConnector = Callable[[str], AbstractContextManager[psycopg.Connection]]


@dataclass(frozen=True)
class Rejected:
    """A row rejected while reading, before it reaches the database."""

    line: int
    reason: str
    payload: str


@dataclass
class Staged:
    """What reading a batch into the ``_incoming`` table gave."""

    rows_read: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checksum: str = ""
    fields: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BatchResult:
    """What one batch contributed (the figures of its audit row)."""

    source: str
    batch_id: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    notes: str = ""


class SourceUnavailable(RuntimeError):
    """A source cannot be reached; the task fails so that Airflow retries it."""


def _target(source: Source) -> sql.Composed:
    return raw_table(source)


def _ids(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, names))


# -- planning -----------------------------------------------------------------------------------

def file_day(path: Path) -> date | None:
    """The business day a file holds, from the YYYY-MM-DD in its name."""
    match = DAY_IN_NAME.search(path.name)
    return date.fromisoformat(match.group(1)) if match else None


def exports_for_day(sources: Iterable[Source], sources_dir: Path, day: date) -> list[Path]:
    """The export files of ``files`` and ``snapshot`` sources dated ``day`` under ``sources_dir``."""
    return sorted(path for source in sources if source.kind in ("files", "snapshot")
                  for path in sources_dir.glob(source.path or "") if file_day(path) == day)


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _batch_id(path: Path, sources_dir: Path) -> str:
    return path.relative_to(sources_dir).as_posix()


def plan_files(conn: psycopg.Connection, source: Source, sources_dir: Path, interval: Interval,
               tz: ZoneInfo) -> tuple[list[Path], list[str]]:
    """Files this run loads for a ``files`` or ``snapshot`` source, oldest first, and notes.

    ``files``: every file dated before the interval end whose content is not in the audit yet
    (new, late or re-delivered with other content); loading a file again with the same content
    would change nothing, so it is skipped. ``snapshot``: every snapshot dated before the
    interval end that is newer than the newest one applied.
    """
    dated = sorted((day, path) for path in sources_dir.glob(source.path or "")
                   if (day := file_day(path)) is not None and _day_start(day, tz) < interval.end)
    loaded = {row[0]: (row[1], row[2]) for row in conn.execute(
        "select batch_id, checksum, file_day from raw._load_audit where source = %s",
        (source.name,)).fetchall()}
    notes: list[str] = []
    if source.kind == "snapshot":
        newest = max((day for _, day in loaded.values() if day is not None), default=None)
        chosen = []
        for day, path in dated:
            batch = _batch_id(path, sources_dir)
            if newest is not None and day <= newest:
                if batch not in loaded:
                    notes.append(f"{batch}: snapshot older than the applied one of {newest}; "
                                 "not applied")
                continue
            chosen.append(path)
        return chosen, notes
    chosen = [path for _, path in dated
              if _batch_id(path, sources_dir) not in loaded
              or loaded[_batch_id(path, sources_dir)][0] != _sha256(path)]
    return chosen, notes


# -- reading and staging --------------------------------------------------------------------------

def _create_incoming(conn: psycopg.Connection, fields: list[str]) -> None:
    columns = [sql.SQL("_line integer not null"), sql.SQL("_payload text")]
    columns += [sql.SQL("{} text").format(sql.Identifier(name)) for name in fields]
    conn.execute("drop table if exists _incoming")
    conn.execute(sql.SQL("create temp table _incoming ({})").format(sql.SQL(", ").join(columns)))


def _copy_in(conn: psycopg.Connection, fields: list[str]) -> Any:
    statement = sql.SQL("copy _incoming (_line, _payload, {}) from stdin").format(_ids(fields))
    return conn.cursor().copy(statement)


def stage_csv(conn: psycopg.Connection, source: Source, path: Path) -> Staged:
    """Read a CSV export into ``_incoming``; malformed lines are rejected, not staged.

    One physical line is one record: a line with an unbalanced quote is rejected on its own
    instead of swallowing the lines after it (so exports must not break fields across lines)."""
    staged = Staged(checksum=_sha256(path), fields=list(source.column_names))
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        header = [name.strip() for name in next(csv.reader([handle.readline()]), [])]
        declared = {column.source_name for column in source.columns}
        extra = [name for name in header if name not in declared]
        absent = [c for c in source.columns if c.source_name not in header]
        if extra:
            staged.notes.append(f"extra column(s) {', '.join(extra)} ignored")
        if absent:
            staged.notes.append(f"column(s) {', '.join(c.source_name for c in absent)} missing")
        for note in staged.notes:
            log.warning("%s %s: %s", source.name, path.name, note)
        missing_required = [c.source_name for c in absent if c.required]
        positions = [header.index(c.source_name) if c.source_name in header else None
                     for c in source.columns]
        width = len(header)
        current = [1]

        def balanced_lines() -> Iterator[str]:
            for number, text in enumerate(handle, start=2):
                if not text.strip():
                    continue
                staged.rows_read += 1
                if text.count('"') % 2:
                    staged.rejected.append(Rejected(number, "malformed CSV line (unbalanced quote)",
                                                    _printable(text.rstrip("\r\n"))))
                    continue
                current[0] = number
                yield text

        _create_incoming(conn, staged.fields)
        with _copy_in(conn, staged.fields) as copy:
            for fields in csv.reader(balanced_lines()):
                line = current[0]
                payload = ",".join(fields)
                if max(payload, default="a") >= "\udc80" and _has_surrogates(payload):
                    staged.rejected.append(Rejected(line, "not valid UTF-8 (Latin-1 bytes?)",
                                                    _printable(payload)))
                elif missing_required:
                    staged.rejected.append(Rejected(
                        line, f"column(s) {', '.join(missing_required)} missing from the header",
                        payload))
                elif len(fields) != width:
                    staged.rejected.append(Rejected(
                        line, f"expected {width} fields as in the header, got {len(fields)}", payload))
                else:
                    copy.write_row((line, payload, *(fields[p] if p is not None else None
                                                     for p in positions)))
    return staged


def _printable(text: str) -> str:
    """Text with undecodable bytes shown as Latin-1 (the usual culprit), safe to store."""
    if not _has_surrogates(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def stage_jsonl(conn: psycopg.Connection, source: Source, path: Path) -> Staged:
    """Read a JSON Lines export into ``_incoming``; lines that are not JSON objects are rejected."""
    staged = Staged(checksum=_sha256(path), fields=list(source.column_names))
    _create_incoming(conn, staged.fields)
    with path.open(encoding="utf-8", errors="surrogateescape") as handle, \
            _copy_in(conn, staged.fields) as copy:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            staged.rows_read += 1
            payload = text.rstrip("\n")
            if _has_surrogates(payload):
                staged.rejected.append(Rejected(line, "not valid UTF-8 (Latin-1 bytes?)",
                                                _printable(payload)))
                continue
            try:
                record = json.loads(payload)
            except json.JSONDecodeError as error:
                staged.rejected.append(Rejected(line, f"not valid JSON ({error.msg} at column "
                                                      f"{error.colno})", payload))
                continue
            if not isinstance(record, dict):
                staged.rejected.append(Rejected(line, "not a JSON object", payload))
                continue
            copy.write_row((line, payload,
                            *(_json_text(record.get(c.source_name)) for c in source.columns)))
    return staged


def extraction_start(conn: psycopg.Connection, source: Source, interval: Interval,
                     lookback_days: int) -> datetime | None:
    """Lower bound of the cursor for a PostgreSQL source: the interval start less the lookback,
    moved back to the end of the latest interval loaded when runs were skipped; None (from the
    beginning) when the source was never loaded."""
    loaded_until = conn.execute("select max(interval_end) from raw._load_audit where source = %s",
                                (source.name,)).fetchone()[0]
    if loaded_until is None:
        return None
    return min(interval.start - timedelta(days=lookback_days), loaded_until)


def stage_postgres(conn: psycopg.Connection, source: Source, interval: Interval,
                   start: datetime | None, connect: SourceConnector) -> Staged:
    """Stream the rows of a PostgreSQL source whose cursor is in [start, interval end) into
    ``_incoming`` (COPY to COPY)."""
    staged = Staged(fields=list(source.column_names))
    _create_incoming(conn, staged.fields)
    relation = (sql.SQL("({}) as q").format(sql.SQL(source.query)) if source.query
                else sql.SQL(".").join(map(sql.Identifier, (source.table or "").split("."))))
    selected = sql.SQL(", ").join(
        sql.SQL("{}::text").format(sql.Identifier(c.source_name)) for c in source.columns)
    query = sql.SQL(
        "copy (select row_number() over (order by {key}), null, {cols} from {rel} "
        "where {cur} >= {start} and {cur} < {end} order by {key}) to stdout").format(
        key=_ids(source.column(k).source_name for k in source.primary_key), cols=selected,
        rel=relation, cur=sql.Identifier(source.column(source.cursor or "").source_name),
        start=sql.Literal(start or datetime(1, 1, 1, tzinfo=interval.end.tzinfo)),
        end=sql.Literal(interval.end))
    digest = hashlib.sha256()
    try:
        with connect(source.connection or "") as source_conn, source_conn.cursor() as cursor, \
                cursor.copy(query) as out, _copy_in(conn, staged.fields) as into:
            for chunk in out:
                digest.update(chunk)
                staged.rows_read += bytes(chunk).count(b"\n")
                into.write(chunk)
    except psycopg.OperationalError as error:
        raise SourceUnavailable(f"source {source.name}: cannot reach connection "
                                f"{source.connection!r}: {error_line(error)}") from None
    staged.checksum = digest.hexdigest()
    return staged


# -- checking -------------------------------------------------------------------------------------

def _value(column: Column) -> sql.Composable:
    return sql.SQL("btrim({})").format(sql.Identifier(column.name))


def _is_valid(column: Column, safe_casts: bool, has_input_check: bool) -> sql.Composable:
    value = _value(column)
    if column.type == "boolean":
        return sql.SQL("lower({}) = any({})").format(value, sql.Literal(list(TRUE_WORDS + FALSE_WORDS)))
    if column.type in ("text", "json"):
        return sql.SQL("true")
    if has_input_check:  # PostgreSQL 16+: exact and faster than a full pattern; the prefix
        # pattern keeps out the special words PostgreSQL accepts (now, yesterday, NaN, infinity)
        return sql.SQL("({} ~ {} and pg_input_is_valid({}, {}))").format(
            value, sql.Literal(PREFIXES[column.type]), value, sql.Literal(PG_TYPES[column.type]))
    test = sql.SQL("{} ~ {}").format(value, sql.Literal(PATTERNS[column.type]))
    if safe_casts:
        test = sql.SQL("({} and raw._is_valid({}, {}))").format(test, value, sql.Literal(column.type))
    return test


def _cast(column: Column) -> sql.Composable:
    value = sql.SQL("nullif({}, '')").format(_value(column))
    if column.type == "boolean":
        return sql.SQL("(lower({}) = any({}))").format(value, sql.Literal(list(TRUE_WORDS)))
    if column.type == "text":
        return value
    return sql.SQL("cast({} as {})").format(value, sql.SQL(PG_TYPES[column.type]))


def _reason(column: Column, interval: Interval, safe_casts: bool,
            has_input_check: bool) -> sql.Composable:
    name, value = sql.Literal(column.name), _value(column)
    checks = [sql.SQL("when nullif({}, '') is null then {}").format(
        value, sql.Literal(f"{column.name}: missing value") if column.required else sql.NULL)]
    if column.type in TYPE_WORDS:
        checks.append(sql.SQL("when not {} then format('%s: %L is not {}', {}, {})").format(
            _is_valid(column, safe_casts, has_input_check), sql.SQL(TYPE_WORDS[column.type]), name,
            value))
    for bound, word, op in ((column.minimum, "below the plausible minimum", "<"),
                            (column.maximum, "above the plausible maximum", ">")):
        if bound is not None:
            checks.append(sql.SQL("when {} {} {} then format('%s: %s is {} %s', {}, {}, {})").format(
                _cast(column), sql.SQL(op), sql.Literal(bound), sql.SQL(word), name, value,
                sql.Literal(str(bound))))
    if column.not_after_interval_end:
        checks.append(sql.SQL("when {} >= {} then format('%s: %s is after the data interval end %s', "
                              "{}, {}, {})").format(_cast(column), sql.Literal(interval.end), name, value,
                                                    sql.Literal(interval.end.isoformat())))
    return sql.SQL("case {} end").format(sql.SQL(" ").join(checks))


def _check(conn: psycopg.Connection, source: Source, interval: Interval, staged: Staged,
           timezone: str, safe_casts: bool) -> None:
    """Build ``_checked``: every staged row with its reason (or null) and typed values."""
    has_input_check = conn.info.server_version >= 160000
    reasons = sql.SQL("coalesce({})").format(sql.SQL(", ").join(
        _reason(c, interval, safe_casts, has_input_check) for c in source.columns))
    payload = sql.SQL("coalesce(_payload, concat_ws(',', {}))").format(sql.SQL(", ").join(
        sql.SQL("coalesce({}, '')").format(sql.Identifier(f)) for f in staged.fields))
    typed = sql.SQL(", ").join(
        sql.SQL("case when _reason is null then {} end as {}").format(_cast(c), sql.Identifier(c.name))
        for c in source.columns)
    conn.execute(sql.SQL("set local timezone = {}").format(sql.Literal(timezone)))
    conn.execute("drop table if exists _checked")
    conn.execute(sql.SQL(
        "create temp table _checked as select _line, _full_payload as _payload, _reason, {typed} "
        "from (select {fields}, _line, {payload} as _full_payload, {reasons} as _reason "
        "from _incoming offset 0) r").format(typed=typed, reasons=reasons, payload=payload,
                                    fields=_ids(staged.fields)))


def _apply_rules(conn: psycopg.Connection, source: Source) -> None:
    """Give rows that break a source rule that rule's reason (rows already rejected keep theirs)."""
    for rule in source.rules:
        conn.execute(sql.SQL("update _checked set _reason = {} where _reason is null and "
                             "not coalesce(({}), false)").format(sql.Literal(rule.reason),
                                                                 sql.SQL(rule.valid_when)))


def _rank_duplicates(conn: psycopg.Connection, source: Source) -> None:
    """Within the batch, per key: the newest version is applied; older versions are loaded but
    superseded (``_superseded``); more copies of the same version are quarantined as duplicates."""
    version = sql.Identifier(source.version_column) if source.version_column else None
    order = [sql.SQL("{} desc nulls last").format(version)] if version else []
    order.append(sql.SQL("_line"))
    key_text = sql.SQL(", ").join(
        sql.SQL("{} || '=' || coalesce({}::text, '')").format(sql.Literal(k), sql.Identifier(k))
        for k in source.primary_key)
    same_version = (sql.SQL("d.v is not distinct from d.top") if version else sql.SQL("true"))
    conn.execute("alter table _checked add column _superseded boolean not null default false")
    conn.execute(sql.SQL("""
        update _checked c set
            _reason = case when {same} then
                format('duplicate key (%s): superseded by line %s', d.k, d.w) end,
            _superseded = not ({same})
        from (select _line, concat_ws(', ', {key_text}) as k, {v} as v,
                     first_value({v}) over w as top,
                     first_value(_line) over w as w, row_number() over w as n
              from _checked where _reason is null
              window w as (partition by {key} order by {order})) d
        where c._line = d._line and d.n > 1""").format(
        same=same_version, key_text=key_text, v=version or sql.SQL("null::text"),
        key=_ids(source.primary_key), order=sql.SQL(", ").join(order)))


# -- applying -------------------------------------------------------------------------------------

def _merge(conn: psycopg.Connection, source: Source, batch_id: str) -> None:
    """Upsert the good rows by key. A newer version replaces the row; the same version with the
    same content only keeps the lowest batch id (the first batch that delivered it), so the
    result does not depend on the order in which batches were loaded."""
    target = _target(source)
    stored = source.stored_column_names
    values = [c for c in stored if c not in source.primary_key]

    def cols(prefix: sql.Composable, names: list[str]) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL("{}.{}").format(prefix, sql.Identifier(n)) for n in names) \
            or sql.SQL("null")

    new, old = sql.SQL("excluded"), target
    same_content = sql.SQL("({}) is not distinct from ({})").format(cols(new, values), cols(old, values))
    if source.version_column:
        version = sql.Identifier(source.version_column)
        newer = sql.SQL("excluded.{v} > {t}.{v}").format(v=version, t=target)
        same_version = sql.SQL("excluded.{v} = {t}.{v}").format(v=version, t=target)
    else:
        newer, same_version = sql.SQL("false"), sql.SQL("true")
    conn.execute(sql.SQL(
        "insert into {t} ({c}) select {s}, {b} from _checked where _reason is null "
        "and not _superseded on conflict ({k}) do update set {u}, _batch_id = case when {same} "
        "then least({t}._batch_id, excluded._batch_id) else excluded._batch_id end "
        "where {newer} or ({same_version} and case when {same} "
        "then excluded._batch_id < {t}._batch_id else excluded._batch_id > {t}._batch_id end)").format(
        t=target, c=_ids([*stored, "_batch_id"]), s=_ids(stored),
        b=sql.Literal(batch_id), k=_ids(source.primary_key),
        u=sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(n))
                             for n in stored),
        same=same_content, newer=newer, same_version=same_version))


def _apply_snapshot(conn: psycopg.Connection, source: Source, batch_id: str, day: date) -> str:
    """Diff the snapshot of ``day`` into the history; returns a note with the counts."""
    target = _target(source)
    values = [c for c in source.stored_column_names if c not in source.primary_key]
    same_key = sql.SQL(" and ").join(sql.SQL("n.{0} = t.{0}").format(sql.Identifier(k))
                                     for k in source.primary_key)
    differs = sql.SQL("({}) is distinct from ({})").format(
        sql.SQL(", ").join(sql.SQL("n.{}").format(sql.Identifier(v)) for v in values) or sql.SQL("null"),
        sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(v)) for v in values) or sql.SQL("null"))
    closed = conn.execute(sql.SQL(
        "update {t} t set _valid_to = {d} where t._valid_to is null and not exists "
        "(select 1 from _checked n where n._reason is null and not n._superseded and {same} "
        "and not {differs})").format(
        t=target, d=sql.Literal(day), same=same_key, differs=differs)).rowcount
    opened = conn.execute(sql.SQL(
        "insert into {t} ({c}, _batch_id, _valid_from) select {c}, {b}, {d} from _checked n "
        "where n._reason is null and not n._superseded and not exists "
        "(select 1 from {t} t where t._valid_to is null and {same})").format(
        t=target, c=_ids(source.stored_column_names), b=sql.Literal(batch_id), d=sql.Literal(day),
        same=same_key)).rowcount
    return f"snapshot diff: {opened} new or changed, {closed} changed or gone"


def _write_quarantine_rows(conn: psycopg.Connection, source: Source, batch_id: str,
                           rejected: list[Rejected]) -> None:
    """Replace the batch's quarantine rows with ``rejected``."""
    conn.execute("delete from raw._quarantine where source = %s and batch_id = %s",
                 (source.name, batch_id))
    with conn.cursor().copy(
            "copy raw._quarantine (source, batch_id, line_number, reason, payload) from stdin") as copy:
        for item in rejected:
            copy.write_row((source.name, batch_id, item.line, item.reason, item.payload))


def _write_quarantine(conn: psycopg.Connection, source: Source, batch_id: str,
                      rejected: list[Rejected]) -> int:
    _write_quarantine_rows(conn, source, batch_id, rejected)
    moved = conn.execute(
        "insert into raw._quarantine (source, batch_id, line_number, reason, payload) "
        "select %s, %s, _line, _reason, _payload from _checked where _reason is not null",
        (source.name, batch_id)).rowcount
    return len(rejected) + moved


def _audit(conn: psycopg.Connection, source: Source, batch_id: str, location: str,
           day: date | None, staged: Staged, interval: Interval, quarantined: int,
           started_at: datetime) -> BatchResult:
    loaded = staged.rows_read - quarantined
    notes = "; ".join(staged.notes)
    conn.execute("""
        insert into raw._load_audit (source, batch_id, location, file_day, checksum, interval_start,
            interval_end, rows_read, rows_loaded, rows_quarantined, notes, started_at, finished_at)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp())
        on conflict (source, batch_id) do update set
            location = excluded.location, file_day = excluded.file_day,
            checksum = excluded.checksum, interval_start = excluded.interval_start,
            interval_end = excluded.interval_end, rows_read = excluded.rows_read,
            rows_loaded = excluded.rows_loaded, rows_quarantined = excluded.rows_quarantined,
            notes = excluded.notes, started_at = excluded.started_at,
            finished_at = excluded.finished_at""",
        (source.name, batch_id, location, day, staged.checksum, interval.start, interval.end,
         staged.rows_read, loaded, quarantined, notes or None, started_at))
    for note in staged.notes:
        log.info("%s %s: %s", source.name, batch_id, note)
    return BatchResult(source.name, batch_id, staged.rows_read, loaded, quarantined, notes)


def ensure_safe_casts(conn: psycopg.Connection) -> None:
    """``raw._is_valid(text, type)``: true when the text casts to the type (used only where the
    server has no ``pg_input_is_valid`` and a fast check let an impossible value through)."""
    conn.execute("""
        create or replace function raw._is_valid(value text, type_name text) returns boolean
        language plpgsql immutable as $$
        begin
            execute format('select cast(%L as %s)', value,
                           case type_name when 'integer' then 'bigint' else type_name end);
            return true;
        exception when others then
            return false;
        end $$""")


class _NotClean(Exception):
    """The direct path met a row it cannot take as it is; the checked path takes the file."""


DIRECT_TYPES = ("text", "integer", "numeric", "date", "timestamptz")
SPECIAL_MOMENTS = ("now", "today", "yesterday", "tomorrow", "epoch")


def _direct_condition(columns: list[Column], interval: Interval,
                      special_moments: dict[str, list[Any]]) -> sql.Composable:
    """True for a row the checked path would load unchanged (no reason, no trimming).

    Only cheap comparisons (this runs for every row of a bulk load): no leading or trailing
    space (what ``btrim`` would remove) is two LIKEs; the special inputs PostgreSQL accepts for
    dates and timestamps (now, today, epoch, …) are compared as the values they took in this
    transaction; the infinities (and NaN, which sorts above Infinity) are only excluded where a
    bound does not already exclude them."""
    conditions = []
    for column in columns:
        name = sql.Identifier(column.name)
        checks: list[sql.Composable] = []
        if column.type == "text":
            checks.append(sql.SQL("{0} <> '' and {0} not like ' %' and {0} not like '% '").format(name))
        if column.type == "numeric":
            if column.minimum is None:
                checks.append(sql.SQL("{} > '-Infinity'").format(name))
            if column.maximum is None:
                checks.append(sql.SQL("{} < 'Infinity'").format(name))
        if column.type in ("date", "timestamptz"):
            kind = sql.SQL(PG_TYPES[column.type])
            checks.append(sql.SQL("{} > '-infinity'::{}").format(name, kind))
            if not column.not_after_interval_end:
                checks.append(sql.SQL("{} < 'infinity'::{}").format(name, kind))
            checks += [sql.SQL("{} <> {}").format(name, sql.Literal(moment))
                       for moment in special_moments[column.type]
                       if not (column.not_after_interval_end and column.type == "timestamptz"
                               and moment >= interval.end)]  # those fail the check below anyway
        if column.minimum is not None:
            checks.append(sql.SQL("{} >= {}").format(name, sql.Literal(column.minimum)))
        if column.maximum is not None:
            checks.append(sql.SQL("{} <= {}").format(name, sql.Literal(column.maximum)))
        if column.not_after_interval_end:
            checks.append(sql.SQL("{} < {}").format(name, sql.Literal(interval.end)))
        test = sql.SQL(" and ").join(checks) if checks else sql.SQL("true")
        if column.required:
            conditions.append(sql.SQL("({} is not null and {})").format(name, test))
        else:
            conditions.append(sql.SQL("({} is null or ({}))").format(name, test))
    return sql.SQL(" and ").join(conditions)


def _special_moments(conn: psycopg.Connection) -> dict[str, list[Any]]:
    words = ", ".join(f"'{word}'::{{0}}" for word in SPECIAL_MOMENTS)
    return {kind: list(conn.execute(f"select {words.format(kind)}").fetchone())  # type: ignore[arg-type]
            for kind in ("date", "timestamptz")}


def load_direct(conn: psycopg.Connection, source: Source, path: Path, batch_id: str,
                interval: Interval, timezone: str) -> Staged | None:
    """The fast path for a clean CSV file of new keys: one COPY straight into the raw table.

    COPY's own WHERE keeps out every row the checked path would reject or change; if the rows
    copied are fewer than the lines read, a value does not parse, or a key is already there (or
    twice in the file), everything is rolled back and None returned, and the checked path loads
    the file instead. An empty table (a first bulk load) is truncated first, so that with
    wal_level minimal its new files skip the WAL, and its primary key is built after the COPY,
    as PostgreSQL's bulk-loading advice goes. Either path leaves the same rows."""
    if (source.kind != "files" or source.format != "csv" or source.rules
            or source.stored_column_names != source.column_names):
        return None
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = [name.strip() for name in next(csv.reader([handle.readline()]), [])]
    by_source_name = {column.source_name: column for column in source.columns}
    if (len(set(header)) != len(header) or not all(name in by_source_name for name in header)
            or any(c.required and c.source_name not in header for c in source.columns)
            or any(by_source_name[name].type not in DIRECT_TYPES for name in header)):
        return None
    columns = [by_source_name[name] for name in header]
    target = _target(source)
    digest, lines, last = hashlib.sha256(), 0, b"\n"
    try:
        with conn.transaction():
            conn.execute(sql.SQL("set local timezone = {}").format(sql.Literal(timezone)))
            # the batch id as the column's default while the COPY runs (rolled back with it)
            conn.execute(sql.SQL("alter table {} alter column _batch_id set default {}").format(
                target, sql.Literal(batch_id)))
            empty = conn.execute(sql.SQL("select not exists (select from {})").format(target)
                                 ).fetchone()[0]
            if empty:
                # a table truncated in this transaction gets new files: with wal_level minimal
                # (the embedded warehouse) the COPY and the key build skip the WAL
                conn.execute(sql.SQL("truncate {}").format(target))
                conn.execute(sql.SQL("alter table {} drop constraint {}").format(
                    target, sql.Identifier(f"{source.target}_pkey")))
            statement = sql.SQL("copy {} ({}) from stdin with (format csv, header true) "
                                "where {}").format(target, _ids(c.name for c in columns),
                                                   _direct_condition(columns, interval,
                                                                     _special_moments(conn)))
            with conn.cursor() as cursor:
                with cursor.copy(statement) as copy, path.open("rb") as raw:
                    for block in iter(lambda: raw.read(1 << 20), b""):
                        digest.update(block)
                        lines += block.count(b"\n")
                        last = block[-1:]
                        copy.write(block)
                copied = cursor.rowcount
            rows = lines - 1 + (last != b"\n")
            if copied != rows:
                raise _NotClean(f"{rows - copied} row(s) need checking")
            conn.execute(sql.SQL("alter table {} alter column _batch_id drop default").format(target))
            if empty:
                conn.execute("set local maintenance_work_mem = '512MB'")  # sort the keys in memory
                conn.execute(sql.SQL("alter table {} add constraint {} primary key ({})").format(
                    target, sql.Identifier(f"{source.target}_pkey"), _ids(source.primary_key)))
    except (_NotClean, psycopg.errors.DataError, psycopg.errors.IntegrityError) as reason:
        log.info("%s %s: checked path (%s)", source.name, batch_id, error_line(reason))
        return None
    absent = [c.source_name for c in source.columns if c.source_name not in header]
    notes = [f"column(s) {', '.join(absent)} missing"] if absent else []
    for note in notes:
        log.warning("%s %s: %s", source.name, path.name, note)
    return Staged(rows_read=rows, checksum=digest.hexdigest(), fields=list(source.column_names),
                  notes=notes)


def _load_batch(conn: psycopg.Connection, source: Source, batch_id: str, location: str,
                day: date | None, interval: Interval, timezone: str,
                stage: Callable[[], Staged]) -> BatchResult:
    started_at = conn.execute("select clock_timestamp()").fetchone()[0]
    staged = stage()
    def check_and_apply(safe_casts: bool) -> None:
        _check(conn, source, interval, staged, timezone, safe_casts)
        _apply_rules(conn, source)
        _rank_duplicates(conn, source)
        if source.kind == "snapshot":
            staged.notes.append(_apply_snapshot(conn, source, batch_id, day or interval.end.date()))
        else:
            _merge(conn, source, batch_id)

    try:
        with conn.transaction():
            check_and_apply(safe_casts=False)
    except psycopg.errors.DataException:
        # a value passed the fast pattern check but does not cast (e.g. 2026-02-30): check again
        # value by value with the slow, exact function
        ensure_safe_casts(conn)
        check_and_apply(safe_casts=True)
    quarantined = _write_quarantine(conn, source, batch_id, staged.rejected)
    return _audit(conn, source, batch_id, location, day, staged, interval, quarantined, started_at)


def extract_and_load(conn: psycopg.Connection, source: Source, sources_dir: Path, interval: Interval,
                     lookback_days: int, timezone: str,
                     connect: SourceConnector | None = None) -> list[BatchResult]:
    """Load every batch this interval needs for ``source``, all in one transaction."""
    tz = ZoneInfo(timezone)
    ensure_raw_tables(conn, [source])
    results: list[BatchResult] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"trebol.extract.load.{source.name}",))
        if source.kind == "postgres":
            if connect is None:
                raise SourceUnavailable(f"source {source.name}: no connector for {source.connection!r}")
            start = extraction_start(conn, source, interval, lookback_days)
            # the batch is the cursor range read: a re-run with the same range replaces its own
            # audit and quarantine rows, and never those of a wider earlier range
            batch_id = f"{start.isoformat() if start else '-infinity'}/{interval.end.isoformat()}"
            location = f"{source.connection}:{source.table or 'query'} where {source.cursor} in [{batch_id})"
            results.append(_load_batch(
                conn, source, batch_id, location, None, interval, timezone,
                lambda: stage_postgres(conn, source, interval, start, connect)))
            return results
        files, notes = plan_files(conn, source, sources_dir, interval, tz)
        for note in notes:
            log.warning("%s: %s", source.name, note)
        stage_file = stage_jsonl if source.format == "jsonl" else stage_csv
        for path in files:
            batch_id = _batch_id(path, sources_dir)
            direct = load_direct(conn, source, path, batch_id, interval, timezone)
            if direct is not None:
                started_at = conn.execute("select clock_timestamp()").fetchone()[0]
                _write_quarantine_rows(conn, source, batch_id, [])
                results.append(_audit(conn, source, batch_id, batch_id, file_day(path), direct,
                                      interval, 0, started_at))
                continue
            results.append(_load_batch(
                conn, source, batch_id, batch_id, file_day(path), interval, timezone,
                lambda path=path: stage_file(conn, source, path)))
    return results


def iter_results(results: Iterable[BatchResult]) -> Iterator[str]:
    """One readable line per batch, for task logs."""
    for r in results:
        yield (f"{r.source} {r.batch_id}: read {r.rows_read}, loaded {r.rows_loaded}, "
               f"quarantined {r.rows_quarantined}" + (f" ({r.notes})" if r.notes else ""))

