"""Normalised, SHA-256-hashed customer identifiers for the ad platforms' customer lists.

Ad platforms (Meta Custom Audiences, Google Customer Match) match people on the SHA-256 hex
digest of a *normalised* email or phone, and each normalises differently (campaign-apis.md §5.2,
§5.3): an email is trimmed and lower-cased for both; a phone is digits only without ``+`` for
Meta (``+34 600 12 34 56`` → ``34600123456``) but E.164 with ``+`` for Google
(``+34600123456``). So there is one normaliser per platform, and :func:`sha256_hex` hashes what
the caller chose. Phones are expected in international form (the warehouse keeps E.164); a
leading international prefix ``00`` is read as ``+``. No I/O.
"""

from __future__ import annotations

import hashlib
import re

_NOT_DIGIT = re.compile(r"\D")


def normalise_email(value: str) -> str:
    """An email as the ad platforms hash it: surrounding spaces removed, lower case."""
    return value.strip().lower()


def normalise_phone_meta(value: str) -> str:
    """A phone as Meta hashes it: digits only, no ``+``, no leading zeros, country code first
    (``+1 (800) 555-0100`` → ``18005550100``); ``""`` when no digit is left."""
    return _NOT_DIGIT.sub("", value).lstrip("0")


def normalise_phone_google(value: str) -> str:
    """A phone as Google hashes it: E.164 with ``+`` (``+1 800-555-0100`` →
    ``+18005550100``); ``""`` when no digit is left."""
    digits = normalise_phone_meta(value)
    return f"+{digits}" if digits else ""


def sha256_hex(value: str) -> str:
    """The lower-case hex SHA-256 digest of ``value``'s UTF-8 bytes."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
