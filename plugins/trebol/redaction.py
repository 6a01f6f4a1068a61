"""Secrets hidden from everything Trébol shows: messages, logs, reports, printed output.

:func:`redact` is the one place that knows where a secret sits in an address or a connection:

- the password of a URL's userinfo: ``postgresql://user:SECRET@host/db``;
- a secret parameter of a URL's query: ``postgresql://user@host/db?password=SECRET`` (any case,
  also percent-encoded names);
- a secret keyword of a libpq keyword/value DSN: ``host=h password=SECRET dbname=d`` (values may
  be quoted: ``password='a b'``);
- a secret key of a JSON object or a Python mapping, e.g. an Airflow connection and its extras
  (``{"password": ..., "extra": {"api_token": ...}}``, also an ``extra`` held as a JSON string).

A key is secret when its name contains one of :data:`SECRET_KEY_WORDS`. Each secret becomes
``***``; users, hosts, ports and databases stay readable. A secret found in a text is also hidden
wherever else it occurs in that text (e.g. in a driver's error quoting the value it could not
parse), so a message built around an address is redacted as a whole. No I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, overload
from urllib.parse import unquote

MASK = "***"

SECRET_KEY_WORDS = ("password", "passwd", "passphrase", "secret", "token", "api_key", "apikey",
                    "private_key")

# Shorter secrets are hidden where they stand but not searched for elsewhere in the text: a
# one-letter password would otherwise mask that letter in every word of the message.
MIN_SWEPT_LENGTH = 4

# scheme://user:PASSWORD@ — the password runs to the last @ before the path, query or fragment
_USERINFO = re.compile(r"(?:\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)(?P<secret>[^\s/?#]*)@")
# name=VALUE in a URL query or a libpq DSN; a value is quoted ('...' or "...", with \-escapes;
# unterminated: to the end) or runs to the next space, & or #
_KEY_VALUE = re.compile(
    r"(?<![\w.%-])(?P<key>[A-Za-z_][\w.%-]*)(?P<eq>\s*=\s*)"
    r"(?P<secret>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&#]*)")
# "name": "VALUE" (JSON) or 'name': 'VALUE' (a Python mapping's repr)
_QUOTED_PAIR = re.compile(
    r"(?P<kq>[\"'])(?P<key>[^\"'\\]+)(?P=kq)(?P<eq>\s*:\s*)"
    r"(?P<vq>[\"'])(?P<secret>(?:(?!(?P=vq))[^\\]|\\.)*)(?P=vq)")


def is_secret_key(key: str) -> bool:
    """Whether a parameter, keyword or mapping key names a secret (password, token, …)."""
    name = unquote(key).lower().replace("-", "_")
    return any(word in name for word in SECRET_KEY_WORDS)


@overload
def redact(value: str) -> str: ...


@overload
def redact(value: Mapping[str, Any]) -> dict[str, Any]: ...


def redact(value: str | Mapping[str, Any]) -> str | dict[str, Any]:
    """``value`` (a URL, a DSN, a message holding them, a JSON object, or a mapping such as an
    Airflow connection or its extras) with every secret replaced by ``***``."""
    if isinstance(value, Mapping):
        return _redact_mapping(value)
    as_mapping = _json_object(value)
    if as_mapping is not None:
        return json.dumps(_redact_mapping(as_mapping))
    return _redact_text(value)


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or None when it holds something else."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _redact_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: MASK if is_secret_key(str(key)) and item not in (None, "") else _redact_item(item)
            for key, item in mapping.items()}


def _redact_item(item: Any) -> Any:
    if isinstance(item, str | Mapping):
        return redact(item)
    if isinstance(item, list | tuple):
        return [_redact_item(element) for element in item]
    return item


def _redact_text(text: str) -> str:
    """Hide the secrets of every address in a free text, then every other occurrence of them."""
    found: set[str] = set()

    def hide(match: re.Match[str]) -> str:
        secret = match["secret"]
        if "key" in match.groupdict() and not is_secret_key(match["key"]):
            return match[0]
        if not secret:
            return match[0]
        found.update({secret, unquote(secret), secret.strip("'\"")})
        start, end = match.span("secret")
        offset = match.start()
        return match[0][:start - offset] + MASK + match[0][end - offset:]

    for pattern in (_USERINFO, _QUOTED_PAIR, _KEY_VALUE):
        text = pattern.sub(hide, text)
    for secret in sorted(found, key=len, reverse=True):
        if len(secret) >= MIN_SWEPT_LENGTH:
            text = text.replace(secret, MASK)
    return text
