"""The suppression list (``raw._suppression_list``): the salted hashes of every identifier of
every erased person, applied by the loader to each batch so that a later extract never brings
them back.

Before a batch is checked, its staged rows (``_incoming``) whose identifier columns (sources.yml
``identifies``) hash to an entry of the list are deleted: they are neither loaded nor
quarantined (their text is not kept anywhere), and the batch's audit counts them as
``rows_suppressed`` (rows read = loaded + quarantined + suppressed). An empty list costs one
count per batch; a source without identifier columns, nothing.

The salt is needed only once the list holds an entry: then a run without it, or with another
salt than the list's (each entry keeps the salt's fingerprint), stops with one line rather than
load an erased person again. An unreadable line (the reader's reason) is matched by the fields
it could still read (its key); a line whose identifiers cannot be read at all is quarantined as
any other, and an erasure request finds it there by its text.

Inputs: a batch in ``_incoming``, the source declaration, the salt. Outputs: fewer rows in
``_incoming``, and their count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from trebol.erasure.identifiers import (
    DEFAULT_PHONE_RULE,
    PhoneRule,
    hash_sql,
    phone_rule,
    salt_fingerprint,
)
from trebol.extract.sources import Source
from trebol.settings import Settings, SettingsError
from trebol.warehouse.ddl import SUPPRESSION_LIST


@dataclass(frozen=True)
class Suppression:
    """What the loader needs to apply the list: the salt (None when unset) and how staging
    reads phones."""

    salt: str | None = field(repr=False)
    rule: PhoneRule = DEFAULT_PHONE_RULE

    @classmethod
    def from_settings(cls, settings: Settings) -> Suppression:
        return cls(settings.erasure_salt, phone_rule(settings.dbt_project_dir))


def row_hashes(source: Source, rule: PhoneRule, alias: str | None = None) -> list[sql.Composable]:
    """SQL of the salted hash of each identifier column of a row (parameter ``salt``)."""
    def column(name: str) -> sql.Composable:
        return sql.Identifier(alias, name) if alias else sql.Identifier(name)

    return [hash_sql(c.identifies or "", column(c.name), rule) for c in source.identifier_columns]


def checked_salt(conn: psycopg.Connection, suppression: Suppression) -> str | None:
    """The salt, checked against the list's; None when the list is empty (nothing to apply)."""
    entries, fingerprints = conn.execute(
        f"select count(*), coalesce(array_agg(distinct salt_fingerprint), '{{}}') "
        f"from {SUPPRESSION_LIST}").fetchone()
    if not entries:
        return None
    if suppression.salt is None:
        raise SettingsError(f"TREBOL_ERASURE_SALT: not set, but the suppression list holds "
                            f"{entries:,} identifier(s) of erased people: without the salt the "
                            "loader cannot keep them out; set it (the salt the erasures used)")
    if set(fingerprints) != {salt_fingerprint(suppression.salt)}:
        raise SettingsError("TREBOL_ERASURE_SALT: not the salt the suppression list was made with "
                            "(fingerprints differ): erased people would be loaded again; set the "
                            "original salt")
    return suppression.salt


def remove_suppressed(conn: psycopg.Connection, source: Source, suppression: Suppression,
                      table: str = "_incoming") -> int:
    """Delete from the staged batch the rows of erased people; how many."""
    hashes = row_hashes(source, suppression.rule)
    if not hashes:
        return 0
    salt = checked_salt(conn, suppression)
    if salt is None:
        return 0
    return conn.execute(sql.SQL(
        "delete from {table} where exists (select from {suppressed} as s "
        "where s.identifier_hash in ({hashes}))").format(
        table=sql.Identifier(table), suppressed=sql.SQL(SUPPRESSION_LIST),
        hashes=sql.SQL(", ").join(hashes)), {"salt": salt}).rowcount
