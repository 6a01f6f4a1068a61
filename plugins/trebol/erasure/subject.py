"""Who an erasure request names: the person's customer keys, the source records that stand for
them, and every identifier they hold.

From the identity marts dbt built (README, "One view of each customer"):

- a customer key names itself (a key retired by a merge, the customer it was merged into); a
  loyalty card, its record's customer; an email or a phone, the customer of every record that
  holds it (``intermediate.int_identity__identifiers``). An email or phone that records of more
  than one customer hold (a household's address) names no one in particular: the request is
  refused, asking for the customer key or the card;
- the keys retired into the person's (``marts.customer_keys.merged_into_customer_key``) are
  theirs too (history tables keep rows under them);
- their records (``marts.customer_source_keys``): loyalty cards, shop accounts, CRM contacts;
- their identifiers: the records' ids, and the emails and phones those records hold, plus the
  identifier the request named. An email or phone that another customer's record also holds is
  kept out (erasing it would erase that other person's rows, and suppress them): counted as
  ``shared``.

Before the first dbt build (no identity marts), or for someone the marts do not know, the
subject is the identifier the request named alone: it is still suppressed and searched in raw.

Inputs: a connection that reads ``marts`` and ``intermediate``, a normalised identifier.
Outputs: a :class:`Subject`; nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from trebol.erasure.identifiers import (
    CUSTOMER_KEY,
    EMAIL,
    LOYALTY_CARD,
    PHONE,
    RECORD_KINDS,
    IdentifierRefused,
)
from trebol.warehouse.catalog import relation_exists

SOURCE_KEYS = "marts.customer_source_keys"
KEY_REGISTER = "marts.customer_keys"
IDENTIFIERS = "intermediate.int_identity__identifiers"


@dataclass(frozen=True)
class Subject:
    """The person a request names (see the module docstring)."""

    customer_keys: frozenset[str] = frozenset()
    records: frozenset[tuple[str, str]] = frozenset()  # (identity source, source id)
    identifiers: frozenset[tuple[str, str]] = field(default=frozenset(), repr=False)  # (kind, value)
    shared: int = 0

    def values(self, *kinds: str) -> list[str]:
        """The identifiers of these kinds, sorted."""
        return sorted({value for kind, value in self.identifiers if kind in kinds})

    @property
    def record_ids(self) -> list[str]:
        """The records as the identity graph names them (``loyalty:99000001``)."""
        return sorted(f"{source}:{source_id}" for source, source_id in self.records)


def _keys_named(conn: psycopg.Connection, kind: str, value: str) -> set[str]:
    """The current customer keys the identifier names."""
    if kind == CUSTOMER_KEY:
        keys = {value}
        if relation_exists(conn, KEY_REGISTER):  # a retired key: the customer it became, transitively
            for _ in range(100):
                row = conn.execute(f"select merged_into_customer_key from {KEY_REGISTER} "
                                   "where customer_key = %s", (value,)).fetchone()
                if not row or row[0] is None or row[0] in keys:
                    break
                value = row[0]
                keys.add(value)
        known = conn.execute(f"select distinct customer_key from {SOURCE_KEYS} "
                             "where customer_key = any(%s)", (sorted(keys),)).fetchall()
        return {row[0] for row in known} or keys
    if kind == LOYALTY_CARD:
        return {row[0] for row in conn.execute(
            f"select distinct customer_key from {SOURCE_KEYS} where source = 'loyalty' "
            "and source_id = %s", (value,))}
    return {row[0] for row in conn.execute(f"""
        select distinct keys.customer_key from {IDENTIFIERS} as identifiers
        inner join {SOURCE_KEYS} as keys
            on identifiers.record_id = keys.source || ':' || keys.source_id
        where identifiers.identifier_type = %s and identifiers.identifier_value = %s""",
        (kind, value))}


def _with_retired(conn: psycopg.Connection, keys: set[str]) -> set[str]:
    """``keys`` and every key retired into one of them (a merge), transitively."""
    if not relation_exists(conn, KEY_REGISTER):
        return keys
    found = set(keys)
    while True:
        more = {row[0] for row in conn.execute(
            f"select customer_key from {KEY_REGISTER} where merged_into_customer_key = any(%s)",
            (sorted(found),))} - found
        if not more:
            return found
        found |= more


def resolve(conn: psycopg.Connection, kind: str, value: str) -> Subject:
    """The person a normalised identifier names; :class:`IdentifierRefused` when an email or
    phone names several customers."""
    requested = {(kind, value)} if kind != CUSTOMER_KEY else set()
    if not (relation_exists(conn, SOURCE_KEYS) and relation_exists(conn, IDENTIFIERS)):
        return Subject(identifiers=frozenset(requested))
    named = _keys_named(conn, kind, value)
    if len(named) > 1 and kind in (EMAIL, PHONE):
        raise IdentifierRefused(f"the {kind} is held by the records of {len(named)} customers (a "
                                "shared one, e.g. a household's): name the person's customer key "
                                "or loyalty card instead")
    keys = _with_retired(conn, named)
    records = {(source, source_id) for source, source_id in conn.execute(
        f"select source, source_id from {SOURCE_KEYS} where customer_key = any(%s)", (sorted(keys),))}
    if relation_exists(conn, KEY_REGISTER):
        records |= {(source, source_id) for source, source_id in conn.execute(
            f"select key_source, key_source_id from {KEY_REGISTER} where customer_key = any(%s)",
            (sorted(keys),))}
    record_ids = sorted(f"{source}:{source_id}" for source, source_id in records)
    held = {(kind_, value_) for kind_, value_ in conn.execute(
        f"select distinct identifier_type, identifier_value from {IDENTIFIERS} "
        "where record_id = any(%s) and identifier_type in (%s, %s)", (record_ids, EMAIL, PHONE))}
    held |= requested
    # an email or phone another customer's record holds too is theirs as well: kept
    shared = {(kind_, value_) for kind_, value_ in conn.execute(f"""
        select distinct identifiers.identifier_type, identifiers.identifier_value
        from {IDENTIFIERS} as identifiers
        inner join {SOURCE_KEYS} as keys
            on identifiers.record_id = keys.source || ':' || keys.source_id
        where (identifiers.identifier_type, identifiers.identifier_value) in
              (select * from unnest(%s::text[], %s::text[]))
          and keys.customer_key <> all(%s)""",
        ([k for k, _ in held], [v for _, v in held], sorted(keys)))}
    identifiers = (held - shared) | {(RECORD_KINDS[source], source_id) for source, source_id in records
                                     if source in RECORD_KINDS}
    return Subject(frozenset(keys), frozenset(records), frozenset(identifiers), len(shared))
