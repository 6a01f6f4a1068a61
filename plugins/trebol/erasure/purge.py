"""The person deleted from the warehouse, in one transaction: all of it or nothing.

- ``raw.<source>``: every row whose identifier columns (sources.yml ``identifies``), normalised
  as staging does, hold one of the person's identifiers (the same rule the loader's suppression
  applies, compared in plain values here), and every other version of the same record (raw
  keeps each version of a record, and a snapshot's history: one that lacks the identifier, such
  as a ticket before its card was added, is still theirs). A ticket's lines carry no
  identifier: once their ticket is gone they name no one, and dbt drops a line without its
  ticket;
- ``raw._quarantine``: the lines whose key (``record_key``) is one of the person's records, or
  whose original text holds one of their identifiers (an email in any case, a phone with any
  separators, an id of a kind the source holds); the batch's audit moves them from
  ``rows_quarantined`` to ``rows_suppressed``, so both "read = loaded + quarantined +
  suppressed" and "the quarantine holds every quarantined row" stay true;
- every table dbt built (staging to marts, ``marts_partitions`` (segment history), the key
  register, the audiences, the dev target's copies) and Trébol's own (``activation``,
  ``marts.customer_clv``): the rows whose text holds a token that can only be the person's (a
  customer key, an email, an E.164 phone, a record id such as ``loyalty:99000001``), or whose
  id columns (``loyalty_card_number``, ``account_id``, ``contact_id``, a ``source`` /
  ``source_id`` pair) name one of their records. Deleted in place: the next build cannot bring
  them back, since raw no longer holds them and the loader suppresses them;
- the audit texts that may quote an identifier (``marts.data_quality_results.observed_value``,
  ``activation.sync_runs.error``): the identifiers replaced by ``[erased]``, the row kept.

A table the eraser may not change that holds the person's rows stops the purge with one line
naming it (``PurgeRefused``): nothing is deleted. Views need nothing (they read the tables).
Source systems (the POS database, the export files) are never touched: their owners erase there.

Inputs: a connection as ``trebol_eraser``, a :class:`Subject`, the declared sources. Outputs:
rows deleted (or redacted) per table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import psycopg
from psycopg import sql

from trebol.erasure.identifiers import (
    CRM_CONTACT,
    EMAIL,
    LOYALTY_CARD,
    PHONE,
    SHOP_ACCOUNT,
    PhoneRule,
    normalised_sql,
)
from trebol.erasure.subject import Subject
from trebol.extract.sources import Source
from trebol.settings import ConfigError
from trebol.warehouse.catalog import relation_exists
from trebol.warehouse.ddl import (
    AUDIENCES_SCHEMA,
    DBT_SCHEMAS,
    ERASER,
    RAW_SCHEMA,
    identifiers,
    raw_table,
)

ERASED = "[erased]"
# the schemas whose every table is searched (dbt's, their dev copies, the activation's)
SEARCHED_SCHEMAS = (*DBT_SCHEMAS, AUDIENCES_SCHEMA, "activation")
# audit texts kept with the identifiers they quote replaced: (schema, table, column)
REDACTED = (("marts", "data_quality_results", "observed_value"), ("activation", "sync_runs", "error"))
# columns that hold a record's id (their kind), and (source, id) column pairs
ID_COLUMNS = {"loyalty_card_number": LOYALTY_CARD, "card_number": LOYALTY_CARD,
              "account_id": SHOP_ACCOUNT, "contact_id": CRM_CONTACT}
SOURCE_ID_PAIRS = (("source", "source_id"), ("customer_source", "customer_source_id"),
                   ("key_source", "key_source_id"))
PHONE_SEPARATORS = r"[ ./()-]{0,3}"


def _alternation(values: Iterable[str]) -> str:
    return "|".join(re.escape(value) for value in sorted(set(values)))


def token_pattern(values: Iterable[str]) -> str | None:
    """A PostgreSQL regular expression matching any of ``values`` as a whole token (not inside a
    longer word, number or address); None for no value."""
    alternation = _alternation(values)
    if not alternation:
        return None
    return rf"(?<![A-Za-z0-9_.@+-])(?:{alternation})(?![A-Za-z0-9_@-])(?!\.[A-Za-z0-9])"


def phone_pattern(phones: Iterable[str], rule: PhoneRule) -> str | None:
    """A regular expression matching the E.164 ``phones`` as people type them: with or without
    the country code (``+``, ``00`` or nothing before it), with spaces, dots, dashes, slashes or
    parentheses between the digits."""
    forms = []
    for phone in phones:
        digits = phone.lstrip("+")
        spaced = PHONE_SEPARATORS.join(digits)
        forms.append(rf"(\+|00)?{PHONE_SEPARATORS}{spaced}")
        national = digits[len(rule.country_code):]
        if digits.startswith(rule.country_code) and len(national) == rule.national_digits:
            forms.append(PHONE_SEPARATORS.join(national))
    if not forms:
        return None
    return rf"(?<![0-9+])(?:{'|'.join(forms)})(?![0-9])"


def _patterns(subject: Subject) -> tuple[str | None, str | None]:
    """(case-insensitive pattern of the emails, pattern of the other unambiguous tokens: keys,
    E.164 phones, record ids)."""
    return (token_pattern(subject.values(EMAIL)),
            token_pattern([*subject.customer_keys, *subject.values(PHONE), *subject.record_ids]))


def _ids(subject: Subject) -> dict[str, list[str]]:
    return {kind: subject.values(kind) for kind in (LOYALTY_CARD, SHOP_ACCOUNT, CRM_CONTACT)}


def purge_raw_sources(conn: psycopg.Connection, subject: Subject, sources: Iterable[Source],
                      rule: PhoneRule) -> dict[str, int]:
    """Delete the person's rows from each source's raw table, every version of each of their
    records; rows per table."""
    deleted: dict[str, int] = {}
    for source in sources:
        tests = [sql.SQL("{} = any({})").format(
            normalised_sql(column.identifies or "", sql.Identifier(column.name), rule),
            sql.Literal(subject.values(column.identifies or "")))
            for column in source.identifier_columns
            if column.stored and subject.values(column.identifies or "")]
        if not tests or not relation_exists(conn, f"{RAW_SCHEMA}.{source.target}"):
            continue
        key = identifiers(source.primary_key)
        count = conn.execute(sql.SQL("delete from {t} where ({k}) in (select {k} from {t} where {w})"
                                     ).format(t=raw_table(source), k=key,
                                              w=sql.SQL(" or ").join(tests))).rowcount
        if count:
            deleted[f"{RAW_SCHEMA}.{source.target}"] = count
    return deleted


def purge_quarantine(conn: psycopg.Connection, subject: Subject, sources: Iterable[Source],
                     rule: PhoneRule) -> int:
    """Delete the person's quarantined lines; their batches' audit counts them as suppressed."""
    emails, _ = _patterns(subject)
    phones = phone_pattern(subject.values(PHONE), rule)
    ids = _ids(subject)
    deleted = 0
    for source in sources:
        tests: list[sql.Composable] = []
        kinds = {column.identifies for column in source.identifier_columns}
        for column in source.identifier_columns:
            if column.name in source.primary_key and ids.get(column.identifies or ""):
                tests.append(sql.SQL("record_key ->> {} = any({})").format(
                    sql.Literal(column.name), sql.Literal(ids[column.identifies or ""])))
        if emails and EMAIL in kinds:
            tests.append(sql.SQL("payload ~* {}").format(sql.Literal(emails)))
        if phones and PHONE in kinds:
            tests.append(sql.SQL("payload ~ {}").format(sql.Literal(phones)))
        pattern = token_pattern(value for kind in kinds & set(ids) for value in ids[kind or ""])
        if pattern:
            tests.append(sql.SQL("payload ~ {}").format(sql.Literal(pattern)))
        if not tests:
            continue
        rows = conn.execute(sql.SQL(
            "with gone as (delete from raw._quarantine where source = {} and ({}) "
            "returning batch_id), per_batch as (select batch_id, count(*) as n from gone "
            "group by batch_id) "
            "update raw._load_audit as audit set rows_quarantined = rows_quarantined - n, "
            "rows_suppressed = rows_suppressed + n from per_batch "
            "where audit.source = {} and audit.batch_id = per_batch.batch_id "
            "returning n").format(sql.Literal(source.name), sql.SQL(" or ").join(tests),
                                  sql.Literal(source.name))).fetchall()
        deleted += sum(row[0] for row in rows)
    return deleted


class PurgeRefused(ConfigError):
    """A table holds the person's rows but the eraser may not change it (a table made without
    the privileges erasure needs): nothing is deleted; the message names the table."""


def _tables(conn: psycopg.Connection) -> list[tuple[str, str, list[str], bool, bool]]:
    """Every ordinary table (and partition) of the searched schemas: its columns, and whether
    this role may delete from it and update it."""
    dev = [f"dev_{schema}" for schema in (*DBT_SCHEMAS, AUDIENCES_SCHEMA)]
    rows = conn.execute("""
        select n.nspname, c.relname, array_agg(a.attname::text order by a.attnum),
               has_table_privilege(c.oid, 'delete'), has_table_privilege(c.oid, 'update')
        from pg_class as c
        inner join pg_namespace as n on n.oid = c.relnamespace
        inner join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where c.relkind = 'r' and n.nspname = any(%s)
        group by n.nspname, c.relname, c.oid order by n.nspname, c.relname""",
        ([*SEARCHED_SCHEMAS, *dev],)).fetchall()
    return [(schema, table, list(columns), deletes, updates)
            for schema, table, columns, deletes, updates in rows]


def _matches(columns: list[str], subject: Subject) -> list[sql.Composable]:
    """Conditions on a row (alias ``t``) that name the person."""
    emails, others = _patterns(subject)
    tests: list[sql.Composable] = []
    if others:
        tests.append(sql.SQL("t::text ~ {}").format(sql.Literal(others)))
    if emails:
        tests.append(sql.SQL("t::text ~* {}").format(sql.Literal(emails)))
    ids = _ids(subject)
    for column, kind in ID_COLUMNS.items():
        if column in columns and ids[kind]:
            tests.append(sql.SQL("t.{} = any({})").format(sql.Identifier(column),
                                                        sql.Literal(ids[kind])))
    records = sorted(subject.records)
    for source_column, id_column in SOURCE_ID_PAIRS:
        if source_column in columns and id_column in columns and records:
            tests.append(sql.SQL("(t.{}, t.{}) in (select * from unnest({}::text[], {}::text[]))").format(
                sql.Identifier(source_column), sql.Identifier(id_column),
                sql.Literal([source for source, _ in records]),
                sql.Literal([source_id for _, source_id in records])))
    return tests


def purge_tables(conn: psycopg.Connection, subject: Subject) -> dict[str, int]:
    """Delete the person's rows from every table of the searched schemas, and redact the audit
    texts that quote them; rows per table."""
    changed: dict[str, int] = {}
    emails, others = _patterns(subject)
    ids = [value for values in _ids(subject).values() for value in values]
    id_tokens = token_pattern(ids)
    for schema, table, columns, deletes, updates in _tables(conn):
        relation = sql.Identifier(schema, table)
        redacted = [column for s, t, column in REDACTED if (s, t) == (schema, table)]
        if not (updates if redacted else deletes):
            _refuse_if_named(conn, schema, table, columns, subject)
            continue
        if redacted:
            column = sql.Identifier(redacted[0])
            expression: sql.Composable = column
            for pattern, flags in ((emails, "gi"), (others, "g"), (id_tokens, "g")):
                if pattern:
                    expression = sql.SQL("regexp_replace({}, {}, {}, {})").format(
                        expression, sql.Literal(pattern), sql.Literal(ERASED), sql.Literal(flags))
            count = conn.execute(sql.SQL("update {} set {} = {} where {} is distinct from {}").format(
                relation, column, expression, column, expression)).rowcount
        else:
            tests = _matches(columns, subject)
            if not tests:
                continue
            count = conn.execute(sql.SQL("delete from {} as t where {}").format(
                relation, sql.SQL(" or ").join(tests))).rowcount
        if count:
            changed[f"{schema}.{table}"] = count
    return changed


def _refuse_if_named(conn: psycopg.Connection, schema: str, table: str, columns: list[str],
                     subject: Subject) -> None:
    """A table the eraser may not change: refuse when a row of it names the person."""
    tests = _matches(columns, subject)
    if tests and conn.execute(sql.SQL("select exists (select from {} as t where {})").format(
            sql.Identifier(schema, table), sql.SQL(" or ").join(tests))).fetchone()[0]:
        raise PurgeRefused(f"{schema}.{table} holds rows of the person but {ERASER} may not change it: "
                           "grant it the privileges in a migration (warehouse/ddl.py), then run "
                           "the request again; nothing was deleted")


def purge(conn: psycopg.Connection, subject: Subject, sources: Iterable[Source],
          rule: PhoneRule) -> Mapping[str, int]:
    """Everything above in one transaction, loads of the sources held off meanwhile; rows deleted
    (or redacted) per table, ``raw._quarantine`` included."""
    sources = list(sources)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('trebol.erasure'))")
        for source in sources:  # a load in flight finishes first; the next one reads the list
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"trebol.load.{source.name}",))
        changed = purge_raw_sources(conn, subject, sources, rule)
        quarantined = purge_quarantine(conn, subject, sources, rule)
        if quarantined:
            changed["raw._quarantine"] = quarantined
        changed.update(purge_tables(conn, subject))
    return changed
