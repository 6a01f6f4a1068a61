"""The one rule set that decides each row's fate, in SQL over the staged text (``_incoming``).

Every path a batch takes applies these rules, so whether a row is loaded or quarantined depends
on that row alone. A row the reader could not read keeps the reader's reason. A value is
trimmed; an empty value is null; a key column is always required, and a text key holds at most
``KEY_BYTES`` bytes (what a PostgreSQL index entry can hold; shared by the text columns of a
composite key). A text or json value is at most its column's ``max_length`` characters, and JSON
nests at most ``MAX_JSON_DEPTH`` levels (both checked first: such a value is never parsed).
Integers and decimal numbers are digits, sign, point and exponent read by PostgreSQL (no NaN,
infinities, hex or underscores; ``-0`` is 0); dates and timestamps start with an ISO date (year
first: ``06/30/2026`` or ``30/06/2026`` are never read in a locale's order) and must be read by
PostgreSQL (so ``2026-02-30`` is rejected; a timestamp without an offset is in the business
timezone); booleans are the words of ``TRUE_WORDS`` and ``FALSE_WORDS``; JSON must parse.
Then the declared bounds, the allowed ``values``, ``not_after_interval_end``, the business's
opening day (no date or timestamp before it) and the source's ``rules``; within a batch,
extra copies of one version of a key are duplicates (and a snapshot applies a key's newest
version only). A rule that raises on some rows (a cast in ``valid_when``) is evaluated row by
row, those rows getting its reason and the error; a rule that does not run at all is a
configuration error.

Every rejected row whose key columns pass their own checks records its key (``_record_key``,
e.g. ``{"contact_id": "C123"}``), so that a quarantined row can still be traced to its record.

Inputs: ``_incoming`` and the source declaration. Outputs: ``checked_rows``, the SQL of every
row's typed values, reason (null when it is usable) and record key; ``check`` builds
``_checked`` from it.
"""

from __future__ import annotations

from dataclasses import replace

import psycopg
from psycopg import sql

from trebol.extract import scratch
from trebol.extract.readers import DATA_ERRORS, Staged
from trebol.extract.sources import Column, Source, SourceConfigError
from trebol.interval import Interval
from trebol.warehouse.address import error_line
from trebol.warehouse.ddl import PG_TYPES, identifiers

TRUE_WORDS = ("true", "t", "1", "yes", "y")
FALSE_WORDS = ("false", "f", "0", "no", "n")
# Numbers: digits, sign, point and exponent only (never NaN, infinities, hex or underscores),
# read by PostgreSQL. A regular expression over the characters that must not appear is the
# cheapest exact test PostgreSQL has (a pattern of the whole form costs twice as much).
FOREIGN_CHARACTERS = {"integer": "[^0-9+-]", "numeric": "[^0-9eE.+-]"}
# Dates and timestamps: start with an ISO date (LIKE, cheap: the year first, so never 06/30/2026
# or 30/06/2026, nor now, epoch or infinity) and are read by PostgreSQL (an offset, a zone name or
# none: the business timezone); 2026-02-30 does not exist and is rejected.
# (a time, when there is one, as hh:mm after T or a space: never PostgreSQL's words like allballs)
ISO_DATE_FORMS = {"date": ("____-__-__",),
                  "timestamptz": ("____-__-__", "____-__-__T__:__%", "____-__-__ __:__%",
                                  "____-__-__Z", "____-__-__+%", "____-__-__-%")}
CHECKED_BY_CAST = ("integer", "numeric", "date", "timestamptz", "json")
# a value quoted in a reason is cut to this many characters (a reason names, it does not copy)
SHOWN_CHARACTERS = 100
# the most bytes of a key's text columns together: a btree entry holds 2,704 (PostgreSQL 12+)
KEY_BYTES = 2_000
# JSON nested deeper than this is refused before it is parsed: PostgreSQL's parser runs out of
# stack (and raises, even in pg_input_is_valid) some 12,000 levels down with a 2 MB
# max_stack_depth, Python's reader some 1,000 down
MAX_JSON_DEPTH = 500
TYPE_WORDS = {"integer": "a whole number", "numeric": "a number", "date": "an ISO date",
              "timestamptz": "an ISO timestamp", "boolean": "a boolean", "json": "JSON"}
# How "PostgreSQL reads it" is decided: its input function where the server has one to ask
# (pg_input_is_valid, PostgreSQL 16+), the probe function raw._is_valid (warehouse.ddl) before;
# on the fast path, first by the cast itself (a value that does not cast makes it check the rows
# again with the server's test).
INPUT_FUNCTION, PROBE_FUNCTION, CAST_RAISES = "input_function", "probe_function", "cast_raises"
# Before PostgreSQL 16 the probe is a PL/pgSQL function (an exception block per call): the usual
# values are first matched by exact patterns (a value they match always casts), and only the
# others are probed, so the verdict is the same and the common case stays cheap.
_ISO_DATE = (r"(?!0000)[0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
             r"|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))"
             r"|(?!0000)([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)-02-29")
SURELY_CASTS = {
    "integer": r"^[+-]?[0-9]{1,18}$",
    "numeric": r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{1,3})?$",
    "date": rf"^({_ISO_DATE})$",
    "timestamptz": rf"^({_ISO_DATE})([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{{1,6}})?)?)?"
                   r"(Z|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)?$",
}


def castability(conn: psycopg.Connection) -> str:
    """How this server tells whether text casts to a type without raising."""
    return INPUT_FUNCTION if conn.info.server_version >= 160000 else PROBE_FUNCTION


def _text(column: Column) -> sql.Identifier:
    """A column's trimmed text, null when empty (the first layer of ``checked_rows``)."""
    return sql.Identifier(column.name)


def _ok(column: Column) -> sql.Identifier:
    return sql.Identifier(f"{column.name}__ok")


def _typed(column: Column) -> sql.Identifier:
    return sql.Identifier(f"{column.name}__typed")


def _shown(value: sql.Composable) -> sql.Composable:
    """The text of a value as a reason quotes it: cut to ``SHOWN_CHARACTERS``."""
    return sql.SQL("case when length({v}) > {n} then left({v}, {n}) || '…' else {v} end").format(
        v=value, n=sql.Literal(SHOWN_CHARACTERS))


def json_depth(value: sql.Composable) -> sql.Composable:
    """How deep a JSON text's arrays and objects nest (brackets in strings aside); 0 when it has
    no more than ``MAX_JSON_DEPTH`` opening brackets (the usual case, not counted)."""
    return sql.SQL(
        "case when length({v}) - length(replace(replace({v}, '[', ''), '{{', '')) <= {d} then 0 else "
        "(select max(depth) from (select sum(case when b in ('[', '{{') then 1 else -1 end) "
        "over (order by n) as depth from regexp_split_to_table(regexp_replace(regexp_replace("
        "{v}, {strings}, '', 'g'), '[^][{{}}]', '', 'g'), '') with ordinality as brackets (b, n)) "
        "as depths) end").format(v=value, d=sql.Literal(MAX_JSON_DEPTH),
                                 strings=sql.Literal(r'"(?:[^"\\]|\\.)*"'))


def is_valid(column: Column, casts: str) -> sql.Composable:
    """True when the (non-empty, trimmed) text is a value of the column's type (see the module);
    false, without reading it, when it is longer than the column's ``max_length`` or JSON nested
    deeper than ``MAX_JSON_DEPTH``."""
    value, unread = _text(column), []
    if column.max_length is not None:
        unread.append(sql.SQL("length({}) > {}").format(value, sql.Literal(column.max_length)))
    if column.type == "json":
        unread.append(sql.SQL("{} > {}").format(json_depth(value), sql.Literal(MAX_JSON_DEPTH)))
    if not unread:
        return _reads(column, casts)
    return sql.SQL("case when {} then false else {} end").format(
        sql.SQL(" or ").join(unread), _reads(column, casts))


def _reads(column: Column, casts: str) -> sql.Composable:
    """True when the text is a value of the column's type."""
    value = _text(column)
    if column.type == "boolean":
        return sql.SQL("lower({}) = any({})").format(value, sql.Literal(list(TRUE_WORDS + FALSE_WORDS)))
    if column.type not in CHECKED_BY_CAST:
        return sql.SQL("true")
    pg_type = sql.Literal(PG_TYPES[column.type])
    probe = sql.SQL("raw._is_valid({}, {})").format(value, pg_type)
    if column.type in SURELY_CASTS:
        probe = sql.SQL("case when {} ~ {} then true else {} end").format(
            value, sql.Literal(SURELY_CASTS[column.type]), probe)
    reads = {INPUT_FUNCTION: sql.SQL("pg_input_is_valid({}, {})").format(value, pg_type),
             PROBE_FUNCTION: probe, CAST_RAISES: sql.SQL("true")}[casts]
    # case: the input is only read once the form is right
    if column.type in ISO_DATE_FORMS:
        forms = sql.SQL(" or ").join(sql.SQL("{} like {}").format(value, sql.Literal(form))
                                     for form in ISO_DATE_FORMS[column.type])
        return sql.SQL("case when {} then {} else false end").format(forms, reads)
    if column.type in FOREIGN_CHARACTERS:
        return sql.SQL("case when {} !~ {} then {} else false end").format(
            value, sql.Literal(FOREIGN_CHARACTERS[column.type]), reads)
    return reads


def typed_value(column: Column) -> sql.Composable:
    """The typed value of a column's valid text."""
    value = _text(column)
    if column.type == "boolean":
        return sql.SQL("(lower({}) = any({}))").format(value, sql.Literal(list(TRUE_WORDS)))
    if column.type == "text":
        return value
    return sql.SQL("cast({} as {})").format(value, sql.SQL(PG_TYPES[column.type]))


def _checked_columns(source: Source) -> list[tuple[Column, int | None]]:
    """The declared columns as the checks see them, each with the bytes it may hold as a key
    (None: not a text key): a key column is required."""
    text_keys = [c for c in source.columns if c.name in source.primary_key and c.type == "text"]
    return [(replace(c, required=True) if c.name in source.primary_key else c,
             KEY_BYTES // len(text_keys) if c in text_keys else None) for c in source.columns]


def column_reason(column: Column, interval: Interval, key_bytes: int | None = None) -> sql.Composable:
    """The first reason a column's value is unusable, or null (over the layers of ``checked_rows``)."""
    name, value, typed = sql.Literal(column.name), _text(column), _typed(column)
    shown = _shown(value)
    checks = [sql.SQL("when {} is null then {}").format(
        value, sql.Literal(f"{column.name}: missing value") if column.required else sql.NULL)]
    if column.max_length is not None:
        checks.append(sql.SQL(
            "when length({v}) > {n} then format('%s: %s characters, more than the maximum %s', {name}, "
            "to_char(length({v}), 'FM999,999,999,990'), {shown_n})").format(
            v=value, n=sql.Literal(column.max_length), name=name,
            shown_n=sql.Literal(f"{column.max_length:,}")))
    if column.type == "json":
        checks.append(sql.SQL("when {} > {} then format('%s: JSON nested deeper than %s levels', {}, {})"
                              ).format(json_depth(value), sql.Literal(MAX_JSON_DEPTH), name,
                                       sql.Literal(MAX_JSON_DEPTH)))
    if key_bytes is not None:
        checks.append(sql.SQL(
            "when octet_length({v}) > {n} then format('%s: %s bytes, more than a key may hold (%s)', "
            "{name}, to_char(octet_length({v}), 'FM999,999,999,990'), {shown_n})").format(
            v=value, n=sql.Literal(key_bytes), name=name, shown_n=sql.Literal(f"{key_bytes:,}")))
    if column.type in TYPE_WORDS:
        checks.append(sql.SQL("when not {} then format('%s: %L is not {}', {}, {})").format(
            _ok(column), sql.SQL(TYPE_WORDS[column.type]), name, shown))
    for bound, word, op in ((column.minimum, "below the plausible minimum", "<"),
                            (column.maximum, "above the plausible maximum", ">")):
        if bound is not None:
            checks.append(sql.SQL("when {} {} {} then format('%s: %s is {} %s', {}, {}, {})").format(
                typed, sql.SQL(op), sql.Literal(bound), sql.SQL(word), name, shown,
                sql.Literal(str(bound))))
    if column.values is not None:
        checks.append(sql.SQL("when not ({} = any({})) then format('%s: %L is not one of %s', {}, {}, {})"
                              ).format(typed, sql.Literal(list(column.values)), name, shown,
                                       sql.Literal(", ".join(column.values))))
    if column.not_before is not None:
        checks.append(sql.SQL("when {} < {}::date then format('%s: %s is before the business opened "
                              "(%s)', {}, {}, {})").format(
            typed, sql.Literal(column.not_before), name, value,
            sql.Literal(column.not_before.isoformat())))
    if column.not_after_interval_end:
        checks.append(sql.SQL("when {} >= {} then format('%s: %s is after the data interval end %s', "
                              "{}, {}, {})").format(typed, sql.Literal(interval.end), name, value,
                                                    sql.Literal(interval.end.isoformat())))
    return sql.SQL("case {} end").format(sql.SQL(" ").join(checks))


def record_key(source: Source, interval: Interval) -> sql.Composable:
    """A row's key as JSON (``{"contact_id": "C123"}``) when every key column holds a value that
    passes its own checks; null otherwise."""
    keys = [(c, key_bytes) for c, key_bytes in _checked_columns(source) if c.name in source.primary_key]
    clean = sql.SQL(" and ").join(sql.SQL("{} is not null and ({}) is null").format(
        _typed(c), column_reason(c, interval, key_bytes)) for c, key_bytes in keys)
    pairs = sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(c.name), _typed(c)) for c, _ in keys)
    return sql.SQL("case when {} then jsonb_build_object({}) end").format(clean, pairs)


def checked_rows(source: Source, interval: Interval, casts: str,
                 payload: sql.Composable | None = None) -> sql.Composable:
    """``select _line, _payload, <typed columns>, _reason, _record_key from _incoming``: each
    value trimmed, checked and cast once (the ``offset 0`` layers keep PostgreSQL from repeating
    them); the reader's reason, when it gave one, comes first."""
    columns = _checked_columns(source)
    trimmed = sql.SQL(", ").join(sql.SQL("nullif(btrim({}), '') as {}").format(
        sql.Identifier(c.name), _text(c)) for c, _ in columns)
    valid = sql.SQL(", ").join(sql.SQL("coalesce({}, true) as {}").format(is_valid(c, casts), _ok(c))
                               for c, _ in columns)
    typed = sql.SQL(", ").join(sql.SQL("case when {} then {} end as {}").format(
        _ok(c), typed_value(c), _typed(c)) for c, _ in columns)
    reasons = sql.SQL("coalesce(_read_reason, {})").format(sql.SQL(", ").join(
        column_reason(c, interval, key_bytes) for c, key_bytes in columns))
    return sql.SQL(
        "select _line, _payload, {out}, {reasons} as _reason, {key} as _record_key from ("
        "select *, {typed} from ("
        "select *, {valid} from ("
        "select _line, {payload} as _payload, _reason as _read_reason, {trimmed} from _incoming "
        "offset 0) as trimmed offset 0) as valid offset 0) as typed").format(
        payload=payload or sql.SQL("_payload"),
        out=sql.SQL(", ").join(sql.SQL("{} as {}").format(_typed(c), sql.Identifier(c.name))
                               for c, _ in columns),
        reasons=reasons, key=record_key(source, interval), typed=typed, valid=valid, trimmed=trimmed)


# checked_rows as rendered for a connection's encoding, by source, interval, castability and
# staged fields (see rendered_checked_rows)
_RENDERED: dict[tuple[Source, Interval, str, tuple[str, ...] | None, str], sql.SQL] = {}
_RENDERED_KEPT = 64


def rendered_checked_rows(conn: psycopg.Connection, source: Source, interval: Interval, casts: str,
                          fields: tuple[str, ...] | None = None) -> sql.SQL:
    """``checked_rows`` as one piece of SQL text, composed and rendered once for a source,
    interval, castability and staged ``fields`` (a query source's payload: the fields joined by
    commas; None: the staged payload). A first load runs the same rule set for each of a source's
    1,095 daily files, and composing and rendering it again took 4.9 ms a file, a quarter of a
    small file's load (profiled: 300 files of crm_cases at 200,000 people)."""
    key = (source, interval, casts, fields, conn.info.encoding)
    if key not in _RENDERED:
        payload = None if fields is None else sql.SQL("coalesce(_payload, concat_ws(',', {}))").format(
            sql.SQL(", ").join(sql.SQL("coalesce({}, '')").format(sql.Identifier(f)) for f in fields))
        if len(_RENDERED) >= _RENDERED_KEPT:
            _RENDERED.clear()
        _RENDERED[key] = sql.SQL(checked_rows(source, interval, casts, payload).as_string(conn))
    return _RENDERED[key]


def check(conn: psycopg.Connection, source: Source, interval: Interval, staged: Staged,
          timezone: str) -> None:
    """Build ``_checked``: every staged row with its reason (or null), its typed values and its
    original text (a query source's rows: the fields joined by commas)."""
    conn.execute(sql.SQL("set local timezone = {}").format(sql.Literal(timezone)))
    scratch.filled_table(conn, "_checked", rendered_checked_rows(
        conn, source, interval, castability(conn), tuple(staged.fields)))


def apply_rules(conn: psycopg.Connection, source: Source, table: str = "_checked") -> None:
    """Give rows of ``table`` (checked rows) that break a source rule that rule's reason (rows
    already rejected keep theirs).

    A rule is one update; when it raises on the data (a cast in ``valid_when`` that some value
    does not take), it is evaluated row by row and the rows it raises on get its reason with the
    error. A rule that does not run (a column it names does not exist) is a configuration error."""
    for index, rule in enumerate(source.rules):
        try:
            with conn.transaction():
                conn.execute(sql.SQL("update {} set _reason = {} where _reason is null and "
                                     "not coalesce(({}), false)").format(
                    sql.Identifier(table), sql.Literal(rule.reason), sql.SQL(rule.valid_when)))
        except DATA_ERRORS:
            _apply_rule_row_by_row(conn, table, rule.reason, rule.valid_when)
        except psycopg.ProgrammingError as error:
            raise SourceConfigError(f"sources.yml: sources.{source.name}.rules[{index}].valid_when: "
                                    f"does not run ({error_line(error)})") from None


def _apply_rule_row_by_row(conn: psycopg.Connection, table: str, reason: str, valid_when: str) -> None:
    """A rule, evaluated row by row: a row it raises on gets its reason and the error."""
    conn.execute(sql.SQL("""
        create function pg_temp.trebol_rule_reason(trebol_row anyelement) returns text
        language plpgsql as $trebol_rule$
        begin
            if coalesce((select ({valid_when}) from (select (trebol_row).*) as row_values), false) then
                return null;
            end if;
            return {reason};
        exception when data_exception or program_limit_exceeded then
            return {reason} || ' (' || sqlerrm || ')';
        end $trebol_rule$""").format(valid_when=sql.SQL(valid_when), reason=sql.Literal(reason)))
    conn.execute(sql.SQL("update {} as c set _reason = pg_temp.trebol_rule_reason(c) "
                         "where _reason is null").format(sql.Identifier(table)))
    conn.execute("drop function pg_temp.trebol_rule_reason(anyelement)")


def rank_duplicates(conn: psycopg.Connection, source: Source, table: str = "_checked",
                    per: str | None = None, line: str = "_line") -> None:
    """Within the batch, per key: more copies of the same version are quarantined as duplicates
    (the first line is kept). A source that keeps versions loads each version; for a snapshot,
    only the newest version is applied and older ones are loaded but superseded
    (``_superseded``). ``table``: the checked rows (unique ``_line``); ``per``: a column whose
    values are batches of their own (the fast path's files); ``line``: the column of the line
    number a reason names."""
    version = sql.Identifier(source.version_column) if source.version_column else None
    partition = [*([per] if per else []), *source.primary_key,
                 *([source.version_column or ""] if source.keeps_versions else [])]
    order = [sql.SQL("{} desc nulls last").format(version)] if version else []
    order.append(sql.SQL("_line"))
    key_text = sql.SQL(", ").join(
        sql.SQL("{} || '=' || coalesce({}::text, '')").format(sql.Literal(k), sql.Identifier(k))
        for k in source.primary_key)
    same_version = (sql.SQL("d.v is not distinct from d.top") if version else sql.SQL("true"))
    conn.execute(sql.SQL("alter table {} add column if not exists _superseded boolean not null "
                         "default false").format(sql.Identifier(table)))
    conn.execute(sql.SQL("""
        update {table} c set
            _reason = case when {same} then
                format('duplicate key (%s): superseded by line %s', d.k, d.w) end,
            _superseded = not ({same})
        from (select _line, concat_ws(', ', {key_text}) as k, {v} as v,
                     first_value({v}) over w as top,
                     first_value({line}) over w as w, row_number() over w as n
              from {table} where _reason is null
              window w as (partition by {key} order by {order})) d
        where c._line = d._line and d.n > 1""").format(
        table=sql.Identifier(table), same=same_version, key_text=key_text,
        v=version or sql.SQL("null::text"), line=sql.Identifier(line),
        key=identifiers(partition), order=sql.SQL(", ").join(order)))
