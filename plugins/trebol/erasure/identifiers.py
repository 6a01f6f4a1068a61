"""The identifiers an erasure request names, normalised as staging normalises them, and their
salted hashes.

Kinds a source column may hold (``identifies:`` in sources.yml): ``email`` (trimmed, lower
case: macro ``normalize_email``), ``phone`` (E.164: macro ``normalize_phone``, with the dbt
project's vars ``phone_default_country_code`` and ``phone_national_digits``), and the ids of the
records that stand for a person in the identity graph: ``loyalty_card``, ``shop_account``,
``crm_contact`` (trimmed). A placeholder (seeds ``placeholder_emails``, ``placeholder_phones``)
identifies no one and is never hashed. A request names one ``email``, ``phone``,
``loyalty_card`` or ``customer_key``.

The suppression list keeps, for each identifier of an erased person, ``sha256(salt ":" kind ":"
value)`` in hex: without the salt (``TREBOL_ERASURE_SALT``, a secret never in the repository)
nobody can tell whose identifiers the list holds, even by hashing candidate addresses. The same
hash is computed in SQL over a batch's columns by the loader (:func:`hash_sql`), so one rule
decides in Python and in PostgreSQL. The salt's fingerprint is kept with each hash, so that a
changed salt is noticed instead of silently letting erased people back in.

No I/O but reading the dbt project's vars and seeds.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from psycopg import sql

from trebol.settings import ConfigError, Settings, SettingsError

EMAIL, PHONE, LOYALTY_CARD, SHOP_ACCOUNT, CRM_CONTACT = (
    "email", "phone", "loyalty_card", "shop_account", "crm_contact")
CUSTOMER_KEY = "customer_key"
# what a source column may identify (sources.yml ``identifies``)
IDENTIFIER_KINDS = (EMAIL, PHONE, LOYALTY_CARD, SHOP_ACCOUNT, CRM_CONTACT)
# what a request may name
REQUEST_KINDS = (EMAIL, PHONE, LOYALTY_CARD, CUSTOMER_KEY)
# the identity graph's record sources (int_identity__records.source) and the kind of their ids
RECORD_KINDS = {"loyalty": LOYALTY_CARD, "ecom": SHOP_ACCOUNT, "crm": CRM_CONTACT}
CUSTOMER_KEY_FORM = re.compile(r"^C[0-9a-f]{16}$")
EMAIL_FORM = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_LENGTH = 320  # the longest identifier a request may name (an email's limit)
SALT_FINGERPRINT_LENGTH = 16


class IdentifierRefused(ConfigError):
    """The request's identifier cannot name a person; the message says why, never the value."""


@dataclass(frozen=True)
class PhoneRule:
    """How staging reads a phone without a country code (dbt vars)."""

    country_code: str = "34"
    national_digits: int = 9


DEFAULT_PHONE_RULE = PhoneRule()  # dbt_project.yml's defaults; phone_rule() reads the project


@functools.cache
def phone_rule(dbt_project_dir: Path) -> PhoneRule:
    """The dbt project's ``phone_default_country_code`` and ``phone_national_digits``."""
    document = yaml.safe_load((dbt_project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
    variables = document.get("vars") or {}
    return PhoneRule(str(variables.get("phone_default_country_code", "34")),
                     int(variables.get("phone_national_digits", 9)))


@functools.cache
def placeholders(dbt_project_dir: Path) -> dict[str, frozenset[str]]:
    """The placeholder emails and phones of the dbt project's seeds (normalised there)."""
    found: dict[str, frozenset[str]] = {}
    for kind in (EMAIL, PHONE):
        path = dbt_project_dir / "seeds" / "internal" / f"placeholder_{kind}s.csv"
        with path.open(encoding="utf-8", newline="") as handle:
            found[kind] = frozenset(row[kind] for row in csv.DictReader(handle))
    return found


def normalise_phone(value: str, rule: PhoneRule) -> str | None:
    """A phone in E.164 as macro ``normalize_phone`` makes it, or None."""
    digits = re.sub(r"[^0-9]", "", value)
    national = rf"[0-9]{{{rule.national_digits}}}"
    if value.lstrip(" ").startswith("+") and re.fullmatch(r"[1-9][0-9]{7,14}", digits):
        return f"+{digits}"
    if re.fullmatch(r"00[1-9][0-9]{7,14}", digits):
        return f"+{digits[2:]}"
    if re.fullmatch(national, digits):
        return f"+{rule.country_code}{digits}"
    if re.fullmatch(rf"{rule.country_code}{national}", digits):
        return f"+{digits}"
    return None


def normalise(kind: str, value: str, rule: PhoneRule) -> str | None:
    """``value`` as staging stores an identifier of ``kind`` (None: it cannot be one)."""
    if kind == EMAIL:
        return value.strip(" ").lower() or None
    if kind == PHONE:
        return normalise_phone(value, rule)
    return value.strip(" ") or None


def requested_identifier(kind: str, value: str, settings: Settings) -> str:
    """The normalised identifier a request names; :class:`IdentifierRefused` (one line, without
    the value) when it cannot name a person."""
    if kind not in REQUEST_KINDS:
        raise IdentifierRefused(f"identifier type {kind!r} is not one of {', '.join(REQUEST_KINDS)}")
    if not value.strip() or len(value) > MAX_LENGTH or any(ord(char) < 32 for char in value):
        raise IdentifierRefused(f"the {kind} is empty, longer than {MAX_LENGTH} characters or "
                                "holds control characters")
    if kind == CUSTOMER_KEY:
        if not CUSTOMER_KEY_FORM.fullmatch(value.strip(" ")):
            raise IdentifierRefused("a customer key is C and 16 lower-case hex digits")
        return value.strip(" ")
    normalised = normalise(kind, value, phone_rule(settings.dbt_project_dir))
    if normalised is None or (kind == EMAIL and not EMAIL_FORM.fullmatch(normalised)):
        raise IdentifierRefused(f"the {kind} given is not one staging would read "
                                f"({'an address with an @' if kind == EMAIL else 'a phone number'})")
    if normalised in placeholders(settings.dbt_project_dir).get(kind, frozenset()):
        raise IdentifierRefused(f"the {kind} given is a placeholder (seed placeholder_{kind}s): it "
                                "identifies no one")
    return normalised


def require_salt(settings: Settings) -> str:
    """The erasure salt; one line naming the setting when it is not set."""
    if not settings.erasure_salt:
        raise SettingsError("TREBOL_ERASURE_SALT: not set; erasure requests and the suppression "
                            "list need this secret salt (README, Erasure requests): set it to a "
                            "random secret of 16 characters or more, the same for good")
    return settings.erasure_salt


def salted_hash(salt: str, kind: str, value: str) -> str:
    """The suppression list's key of a normalised identifier."""
    return hashlib.sha256(f"{salt}:{kind}:{value}".encode()).hexdigest()


def salt_fingerprint(salt: str) -> str:
    """A short digest that tells salts apart without revealing them."""
    return hashlib.sha256(f"trebol-erasure-salt-fingerprint:{salt}".encode()).hexdigest()[
        :SALT_FINGERPRINT_LENGTH]


def normalised_sql(kind: str, value: sql.Composable, rule: PhoneRule) -> sql.Composable:
    """SQL of ``value`` (text) normalised as :func:`normalise` does (null: not an identifier)."""
    if kind == EMAIL:
        return sql.SQL("nullif(lower(trim({})), '')").format(value)
    if kind != PHONE:
        return sql.SQL("nullif(btrim({}), '')").format(value)
    digits = sql.SQL("regexp_replace({}, '[^0-9]', '', 'g')").format(value)
    national = f"[0-9]{{{rule.national_digits}}}"
    return sql.SQL(
        "case when left(ltrim({v}), 1) = '+' and {d} ~ '^[1-9][0-9]{{7,14}}$' then '+' || {d} "
        "when {d} ~ '^00[1-9][0-9]{{7,14}}$' then '+' || substr({d}, 3) "
        "when {d} ~ {national} then {country} || {d} "
        "when {d} ~ {with_country} then '+' || {d} end").format(
        v=value, d=digits, national=sql.Literal(f"^{national}$"),
        country=sql.Literal(f"+{rule.country_code}"),
        with_country=sql.Literal(f"^{rule.country_code}{national}$"))


SALT_PARAMETER = sql.Placeholder("salt")


def hash_sql(kind: str, value: sql.Composable, rule: PhoneRule,
             salt: sql.Composable = SALT_PARAMETER) -> sql.Composable:
    """SQL of :func:`salted_hash` over a text column (null when it holds no identifier); the salt
    is a query parameter (named ``salt`` by default), never part of the statement."""
    return sql.SQL("encode(sha256(convert_to({salt} || {prefix} || {value}, 'UTF8')), 'hex')").format(
        salt=salt, prefix=sql.Literal(f":{kind}:"), value=normalised_sql(kind, value, rule))
