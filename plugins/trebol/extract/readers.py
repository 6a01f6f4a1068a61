"""Readers: one batch of a source (a CSV or JSON Lines export, or a PostgreSQL query over the
interval) staged as text in the temporary table ``_incoming``, one row per record with its line
number, its original text and, for a line that cannot be read, the reason.

What cannot be read is decided here, before any check, and only that: a line with the wrong
field count or an unbalanced quote; a declared field holding bytes that are not UTF-8 or a NUL
(PostgreSQL text holds neither); a line that is not a JSON object, or nested too deeply for
Python to read; a declared JSON value PostgreSQL cannot hold (NaN, Infinity, a number out of
range, the escape ``\\u0000``, an unpaired surrogate); a line longer than
``MAX_LINE_CHARACTERS``. Fields that are not declared are ignored. Such a line is staged with
its reason and, when its key fields can still be read, with those alone (``checks`` then
records the key, ``_record_key``); its original text is kept, with what text cannot hold shown:
a NUL as ``␀``, a byte that is not UTF-8 as its Latin-1 character. Whether a value is usable
(its type, length, nesting, bounds) is the checks' to say.

A CSV header that cannot be trusted refuses the whole file (every line staged with that reason, a
note in the audit): a column named twice, or a single field holding another delimiter (``;``,
tab, ``|``). A header without a required column gives every line that reason; extra columns are
ignored and missing optional ones are null, both noted. A UTF-8 byte order mark is skipped.

Inputs: a source declaration, a file or a source connection. Outputs: ``_incoming`` and a
``Staged`` (rows read, notes, the file-level refusal, the batch's checksum).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql

from trebol.extract import scratch
from trebol.extract.sources import Column, Source
from trebol.interval import Interval
from trebol.redaction import redact
from trebol.warehouse.address import error_line
from trebol.warehouse.ddl import identifiers

log = logging.getLogger(__name__)
SourceConnector = Callable[[str], AbstractContextManager[psycopg.Connection]]

# The longest line a reader holds (characters); a longer one is rejected, read in blocks and
# dropped but for its first PREVIEW_CHARACTERS (its payload). Python's csv module gets the same
# limit for a field (its own, 131,072, would raise): a column's max_length is the checks' rule.
MAX_LINE_CHARACTERS = 64 * 1024 * 1024
PREVIEW_CHARACTERS = 1_000
csv.field_size_limit(MAX_LINE_CHARACTERS)
NUL_SHOWN = "\u2400"  # ␀: how a payload shows a NUL, which PostgreSQL text cannot hold
LATIN1_BYTES = "Latin-1 bytes?"
TOO_DEEP = "JSON nested too deeply to read"
# a CSV header that is one field holding one of these was written with another delimiter
OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}
_BAD_BYTES = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, as surrogateescape reads them
_SURROGATE = re.compile("[\ud800-\udfff]")
_RISKY_ESCAPE = re.compile(r"\\u(0000|[dD][89abcdefABCDEF])")  # \u0000 or a surrogate half
# PostgreSQL errors the data itself causes (a value it refuses, a key it cannot index, JSON too
# deep for its stack): deterministic, never worth a retry; connection and lock errors are not here.
DATA_ERRORS: tuple[type[psycopg.Error], ...] = (
    psycopg.errors.DataError, psycopg.errors.IntegrityError, psycopg.errors.ProgramLimitExceeded,
    psycopg.errors.StatementTooComplex)


@dataclass
class Staged:
    """What reading a batch into the ``_incoming`` table gave."""

    rows_read: int = 0
    notes: list[str] = field(default_factory=list)
    checksum: str = ""
    fields: list[str] = field(default_factory=list)
    # why every line of the file was rejected (its header: refused, or a required column
    # missing), each staged with this reason; None: the lines were read
    refused: str | None = None
    # rows of erased people taken out before the checks (trebol.erasure.suppression)
    suppressed: int = 0


class SourceUnavailable(RuntimeError):
    """A source cannot be reached; the task fails so that Airflow retries it."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def create_incoming(conn: psycopg.Connection, fields: list[str]) -> None:
    """The temporary table ``_incoming``, empty: the line number, the original text, the
    reader's reason (null: read) and every declared field as text. The line number is the
    reader's, or, for a COPY of whole files (the fast path), the table's, in the order rows
    arrive, counting on from the batches before (from 2 for the first, after its header): the
    fast path knows where each file's lines begin. One shape for both paths, so each path
    empties the same table (``scratch``) rather than make another."""
    line = "_line integer generated by default as identity (start with 2)"
    columns = [sql.SQL(line), sql.SQL("_payload text"), sql.SQL("_reason text")]
    columns += [sql.SQL("{} text").format(sql.Identifier(name)) for name in fields]
    scratch.empty_table(conn, "_incoming", sql.SQL(", ").join(columns))


def copy_in(conn: psycopg.Connection, fields: list[str]) -> Any:
    """A COPY into ``_incoming`` of rows (line, payload, reason, *fields)."""
    statement = sql.SQL("copy _incoming (_line, _payload, _reason, {}) from stdin").format(
        identifiers(fields))
    return conn.cursor().copy(statement)


def csv_header(line: str) -> list[str]:
    """The field names of a CSV header line, trimmed."""
    return [name.strip() for name in next(csv.reader([line]), [])]


def printable(text: str) -> str:
    """Text PostgreSQL can hold: a byte that is not UTF-8 as its Latin-1 character (the usual
    culprit), a NUL as ␀."""
    if _BAD_BYTES.search(text):
        text = text.encode("utf-8", "surrogateescape").decode("latin-1")
    return text.replace("\x00", NUL_SHOWN)


def _physical_lines(handle: TextIO, first: int) -> Iterator[tuple[int, str, int]]:
    """Each line of ``handle`` numbered from ``first``: (number, text, 0), or, for a line longer
    than ``MAX_LINE_CHARACTERS``, (number, its first ``PREVIEW_CHARACTERS``, its length)."""
    number = first
    while text := handle.readline(MAX_LINE_CHARACTERS + 1):
        if len(text) <= MAX_LINE_CHARACTERS or text.endswith(("\n", "\r")):
            yield number, text, 0
        else:
            yield number, text[:PREVIEW_CHARACTERS], _rest_of_line(handle, len(text))
        number += 1


def _rest_of_line(handle: TextIO, length: int) -> int:
    """Read past the rest of an over-long line, in blocks; its length without the line end."""
    text = "x"
    while text and not text.endswith(("\n", "\r")):
        text = handle.readline(1 << 20)
        length += len(text)
    return length - (len(text) - len(text.rstrip("\r\n")))


def _too_long(length: int) -> str:
    return f"line of {length:,} characters, longer than the reader's limit of {MAX_LINE_CHARACTERS:,}"


def _rejected(line: int, payload: str, reason: str, values: Sequence[str | None]) -> tuple:
    """The ``_incoming`` row of a line that cannot be read: printable, with its reason and the
    values still known (the key fields, or none)."""
    return (line, printable(payload), printable(reason), *values)


@dataclass(frozen=True)
class CsvHeader:
    """What a CSV header says: where each declared column is, and what is wrong with it."""

    width: int
    positions: tuple[int | None, ...]  # per declared column: its field, or None when missing
    keys: tuple[tuple[int, int], ...] | None  # (column index, field) of each key, when each is there once
    notes: tuple[str, ...]
    refused: str | None  # the file-level reason: the header cannot be trusted
    reason: str | None  # every line's reason: refused, or a required column missing


def _duplicates(names: list[str]) -> str | None:
    """'email (fields 2, 4)' for each name the header holds more than once (empty names aside)."""
    fields: dict[str, list[int]] = {}
    for position, name in enumerate(names, start=1):
        if name:
            fields.setdefault(name, []).append(position)
    repeated = [f"{name} (fields {', '.join(map(str, at))})" for name, at in fields.items() if len(at) > 1]
    return ", ".join(repeated) or None


def _header_refusal(source: Source, text: str, names: list[str]) -> str | None:
    """Why a header cannot be trusted at all (None: it can)."""
    if "\x00" in text:
        return "header holds NUL bytes (a UTF-16 file?)"
    if repeated := _duplicates(names):
        return f"duplicate column(s) in the header: {repeated}"
    expected = [column.source_name for column in source.columns]
    if len(names) == 1 and len(expected) > 1 and names[0] not in expected:
        delimiter = next((d for d in OTHER_DELIMITERS if d in names[0]), None)
        if delimiter is not None:
            return (f"header has 1 field; expected the {len(expected)} fields {', '.join(expected)} "
                    f"separated by ',' (wrong delimiter {OTHER_DELIMITERS[delimiter]}?)")
    return None


def read_csv_header(source: Source, text: str) -> CsvHeader:
    """The header of a CSV export against the source's declared columns."""
    names = csv_header(text.rstrip("\r\n"))
    positions = tuple(names.index(c.source_name) if c.source_name in names else None
                      for c in source.columns)
    keys = tuple((index, names.index(c.source_name)) for index, c in enumerate(source.columns)
                 if c.name in source.primary_key and names.count(c.source_name) == 1)
    readable_keys = keys if len(keys) == len(source.primary_key) else None
    if refused := _header_refusal(source, text, names):
        return CsvHeader(len(names), positions, readable_keys, (f"file refused: {refused}",),
                         refused, refused)
    declared = {column.source_name for column in source.columns}
    extra = [name for name in names if name not in declared]
    absent = [c.source_name for c in source.columns if c.source_name not in names]
    required = [c.source_name for c in source.columns if c.required and c.source_name not in names]
    notes = [printable(f"extra column(s) {', '.join(extra)} ignored")] if extra else []
    notes += [f"column(s) {', '.join(absent)} missing"] if absent else []
    reason = f"column(s) {', '.join(required)} missing from the header" if required else None
    return CsvHeader(len(names), positions, readable_keys, tuple(notes), None, reason)


def _csv_fields(payload: str) -> tuple[list[str] | None, str | None]:
    """The fields of one CSV line, or why it is not one CSV record."""
    if payload.count('"') % 2:
        return None, "malformed CSV line (unbalanced quote)"
    try:
        return next(csv.reader((payload,)), []), None
    except csv.Error as error:
        return None, f"malformed CSV line ({error})"


def _csv_key_values(header: CsvHeader, fields: list[str] | None) -> list[str | None]:
    """The declared values of a rejected line: its key fields alone, when the line has the
    header's width and each key field is readable text; otherwise none."""
    values: list[str | None] = [None] * len(header.positions)
    if fields is None or header.keys is None or len(fields) != header.width:
        return values
    for index, position in header.keys:
        if _BAD_BYTES.search(fields[position]) or "\x00" in fields[position]:
            return [None] * len(header.positions)
        values[index] = fields[position]
    return values


def _csv_field_problem(columns: Sequence[Column], values: Sequence[str | None]) -> str | None:
    """Why a declared field of a CSV line cannot be staged (None: every one can)."""
    for column, value in zip(columns, values, strict=True):
        if value is None:
            continue
        if _BAD_BYTES.search(value):
            return f"not valid UTF-8 in field {column.source_name} ({LATIN1_BYTES})"
        if "\x00" in value:
            return f"NUL byte in field {column.source_name}"
    return None


def _csv_row(source: Source, header: CsvHeader, line: int, text: str) -> tuple:
    """The ``_incoming`` row of one CSV line: its declared fields, or its reason."""
    payload = text.rstrip("\r\n")
    fields, malformed = _csv_fields(payload)
    nothing = [None] * len(header.positions)
    if header.reason or fields is None:
        return _rejected(line, payload, header.reason or malformed or "", _csv_key_values(header, fields))
    if len(fields) != header.width:
        reason = f"not valid UTF-8 ({LATIN1_BYTES})" if _BAD_BYTES.search(payload) \
            else f"expected {header.width} fields as in the header, got {len(fields)}"
        return _rejected(line, payload, reason, nothing)
    values = [fields[p] if p is not None else None for p in header.positions]
    if "\x00" in payload or _BAD_BYTES.search(payload):
        if problem := _csv_field_problem(source.columns, values):
            return _rejected(line, payload, problem, _csv_key_values(header, fields))
        payload = printable(payload)  # a field that is not declared may hold what text cannot
    return (line, payload, None, *values)


def csv_payloads(path: Path, lines: set[int]) -> dict[int, str]:
    """The original text of some lines of a CSV export (numbered from 1, the header), as
    ``stage_csv`` keeps it for the quarantine."""
    found: dict[int, str] = {}
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        for line, text, _ in _physical_lines(handle, first=1):
            if line in lines:
                found[line] = printable(text.rstrip("\r\n"))
                if len(found) == len(lines):
                    break
    return found


def stage_csv(conn: psycopg.Connection, source: Source, path: Path) -> Staged:
    """Read a CSV export into ``_incoming``; a line that cannot be read is staged with its reason.

    One physical line is one record: a line with an unbalanced quote is rejected on its own
    instead of swallowing the lines after it (so exports must not break fields across lines)."""
    staged = Staged(checksum=sha256(path), fields=list(source.column_names))
    create_incoming(conn, staged.fields)
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle, \
            copy_in(conn, staged.fields) as copy:
        lines = _physical_lines(handle, first=1)
        _, first, first_length = next(lines, (1, "", 0))
        header = read_csv_header(source, "" if first_length else first)
        if first_length:
            refused = f"header: {_too_long(first_length)}"
            header = CsvHeader(0, header.positions, None, (f"file refused: {refused}",), refused, refused)
        staged.notes, staged.refused = list(header.notes), header.reason
        for note in staged.notes:
            log.warning("%s %s: %s", source.name, printable(path.name), note)
        for line, text, length in lines:
            if not text.strip():
                continue
            staged.rows_read += 1
            if length:
                copy.write_row(_rejected(line, text + "…", header.reason or _too_long(length),
                                         [None] * len(header.positions)))
            else:
                copy.write_row(_csv_row(source, header, line, text))
    return staged


@dataclass(frozen=True)
class _Unreadable:
    """A JSON number PostgreSQL cannot hold, kept by the parser so that its field can be named."""

    text: str
    why: str


class _JsonParser:
    """``json.loads`` that keeps NaN, Infinity and numbers out of range as ``_Unreadable``
    markers (Python would read them as floats PostgreSQL refuses) and says whether it met one.

    Its two decoders (strict or not) are built once: ``json.loads`` with hooks builds a decoder
    per call, which cost a third of the reading of an order line (measured on the orders of the
    200,000-person bench: 17.5 µs a line, 12.1 µs with the decoder built once).
    """

    def __init__(self) -> None:
        self.marked = False
        self._decoders = {strict: json.JSONDecoder(strict=strict, parse_constant=self._constant,
                                                   parse_float=self._number)
                          for strict in (True, False)}

    def loads(self, payload: str, *, strict: bool) -> Any:
        self.marked = False
        if payload.startswith("\ufeff"):  # json.loads refuses a BOM with its own message
            return json.loads(payload, strict=strict, parse_constant=self._constant,
                              parse_float=self._number)
        return self._decoders[strict].decode(payload)

    def _constant(self, name: str) -> _Unreadable:
        self.marked = True
        return _Unreadable(name, f"JSON has no {name.lstrip('-')}")

    def _number(self, text: str) -> float | _Unreadable:
        value = float(text)
        if math.isfinite(value):
            return value
        self.marked = True
        return _Unreadable(f"number {text[:40]}", "out of range")


# the JSON text of a declared field's list or object, as json.dumps(ensure_ascii=False,
# sort_keys=True) writes it (one encoder, not one per value)
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return _JSON_ENCODER.encode(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_string_problem(path: str, text: str, *, nul_byte: bool, bad_bytes: bool) -> str | None:
    """Why a JSON string (a value or a key) cannot be staged (None: it can)."""
    if "\x00" in text:
        return f"NUL byte in field {path}" if nul_byte else f"NUL character (\\u0000) in field {path}"
    if surrogate := _SURROGATE.search(text):
        if bad_bytes and _BAD_BYTES.match(surrogate.group()):
            return f"not valid UTF-8 in field {path} ({LATIN1_BYTES})"
        return f"unpaired surrogate (\\u{ord(surrogate.group()):04x}) in field {path}"
    return None


def _json_value_problem(name: str, value: Any, *, nul_byte: bool, bad_bytes: bool) -> str | None:
    """Why a declared field's JSON value cannot be staged (None: it can), the first problem in
    document order; walked without recursion."""
    pending: list[tuple[str, Any]] = [(name, value)]
    while pending:
        path, item = pending.pop()
        problem = None
        if isinstance(item, _Unreadable):
            return f"{item.text} in field {path} ({item.why})"
        if isinstance(item, str):
            problem = _json_string_problem(path, item, nul_byte=nul_byte, bad_bytes=bad_bytes)
        elif isinstance(item, dict):
            problem = next(filter(None, (_json_string_problem(f"{path} (a key)", key, nul_byte=nul_byte,
                                                              bad_bytes=bad_bytes) for key in item)), None)
            pending.extend((f"{path}.{key}", child) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            pending.extend((f"{path}[{i}]", item[i]) for i in range(len(item) - 1, -1, -1))
        if problem:
            return problem
    return None


def _json_reason(payload: str, error: ValueError, *, nul_byte: bool, bad_bytes: bool) -> str:
    """Why a line is not JSON."""
    if bad_bytes:
        return f"not valid UTF-8 ({LATIN1_BYTES})"
    if nul_byte:
        return f"NUL byte at column {payload.index(chr(0)) + 1}"
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON ({error.msg} at column {error.colno})"
    return f"not valid JSON ({str(error).split(':')[0]})"  # e.g. an integer of over 4,300 digits


def _json_row(source: Source, parser: _JsonParser, line: int, text: str) -> tuple:
    """The ``_incoming`` row of one JSON line: its declared fields, or its reason."""
    payload = text.rstrip("\n")
    try:
        return _json_record_row(source, parser, line, payload)
    except RecursionError:  # Python reads (and writes) JSON about 1,000 levels deep at most
        return _rejected(line, payload, TOO_DEEP, [None] * len(source.columns))


def _json_record_row(source: Source, parser: _JsonParser, line: int, payload: str) -> tuple:
    nothing = [None] * len(source.columns)
    nul_byte, bad_bytes = "\x00" in payload, bool(_BAD_BYTES.search(payload))
    try:
        record = parser.loads(payload, strict=not nul_byte)
    except ValueError as error:
        return _rejected(line, payload, _json_reason(payload, error, nul_byte=nul_byte,
                                                     bad_bytes=bad_bytes), nothing)
    if not isinstance(record, dict):
        return _rejected(line, payload, f"not valid UTF-8 ({LATIN1_BYTES})" if bad_bytes
                         else "not a JSON object", nothing)
    values = [record.get(c.source_name) for c in source.columns]
    if parser.marked or nul_byte or bad_bytes or _RISKY_ESCAPE.search(payload):
        problems = [_json_value_problem(c.source_name, value, nul_byte=nul_byte, bad_bytes=bad_bytes)
                    for c, value in zip(source.columns, values, strict=True)]
        problem = next(filter(None, problems), None)
        if problem is None and nul_byte:
            problem = f"NUL byte at column {payload.index(chr(0)) + 1}"
        if problem:
            return _rejected(line, payload, problem, _json_key_values(source, values, problems))
        payload = printable(payload)  # a field that is not declared may hold what text cannot
    return (line, payload, None, *(_json_text(value) for value in values))


def _json_key_values(source: Source, values: list[Any], problems: list[str | None]) -> list[str | None]:
    """The declared values of a rejected JSON line: its key fields alone, when each is readable."""
    keys = [c.name in source.primary_key for c in source.columns]
    if any(problem for is_key, problem in zip(keys, problems, strict=True) if is_key):
        return [None] * len(values)
    return [_json_text(value) if is_key else None for is_key, value in zip(keys, values, strict=True)]


def stage_jsonl(conn: psycopg.Connection, source: Source, path: Path) -> Staged:
    """Read a JSON Lines export into ``_incoming``; a line that cannot be read is staged with its
    reason (see the module)."""
    staged = Staged(checksum=sha256(path), fields=list(source.column_names))
    create_incoming(conn, staged.fields)
    with copy_in(conn, staged.fields) as copy:
        staged.rows_read, _ = copy_jsonl_rows(copy, source, path)
    return staged


def copy_jsonl_rows(copy: Any, source: Source, path: Path, first: int = 1) -> tuple[int, int]:
    """Write the ``_incoming`` rows of a JSON Lines export to ``copy`` (of ``copy_in``), its lines
    numbered from ``first`` (the fast path numbers a run's files on): the records read (a blank
    line is none) and the lines the file has."""
    parser, rows, lines = _JsonParser(), 0, 0
    nothing = [None] * len(source.columns)
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as handle:
        for line, text, length in _physical_lines(handle, first=first):
            lines += 1
            if not text.strip():
                continue
            rows += 1
            if length:
                copy.write_row(_rejected(line, text + "…", _too_long(length), nothing))
            else:
                copy.write_row(_json_row(source, parser, line, text))
    return rows, lines


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
    create_incoming(conn, staged.fields)
    relation = (sql.SQL("({}) as q").format(sql.SQL(source.query)) if source.query
                else sql.SQL(".").join(map(sql.Identifier, (source.table or "").split("."))))
    selected = sql.SQL(", ").join(
        sql.SQL("{}::text").format(sql.Identifier(c.source_name)) for c in source.columns)
    query = sql.SQL(
        "copy (select row_number() over (order by {key}), null, null, {cols} from {rel} "
        "where {cur} >= {start} and {cur} < {end} order by {key}) to stdout").format(
        key=identifiers(source.column(k).source_name for k in source.primary_key), cols=selected,
        rel=relation, cur=sql.Identifier(source.column(source.cursor or "").source_name),
        start=sql.Literal(start or datetime(1, 1, 1, tzinfo=interval.end.tzinfo)),
        end=sql.Literal(interval.end))
    digest = hashlib.sha256()
    try:
        with connect(source.connection or "") as source_conn, source_conn.cursor() as cursor, \
                cursor.copy(query) as out, copy_in(conn, staged.fields) as into:
            for chunk in out:
                digest.update(chunk)
                staged.rows_read += bytes(chunk).count(b"\n")
                into.write(chunk)
    except psycopg.OperationalError as error:
        raise SourceUnavailable(redact(f"source {source.name}: cannot reach connection "
                                       f"{source.connection!r}: {error_line(error)}")) from None
    staged.checksum = digest.hexdigest()
    return staged
