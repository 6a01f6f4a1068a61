"""Meta Custom Audiences destination: an audience's members as hashed emails and phones in a
customer-list Custom Audience (campaign-apis.md §5.2).

Configuration: the Airflow connection's ``host`` is the Graph API base URL with its version
(``https://graph.facebook.com/v19.0``), ``password`` the access token (a system user's token
with ``ads_management``), ``extra`` ``{"audience_id": "<custom audience id>"}`` (the audience is
created once, by hand or by Meta's tools, with ``customer_file_source``). Options in
destinations.yml: ``batch_size`` (rows per call, default and most 10,000) and the retry keys of
:class:`~trebol.activation.http.RetryPolicy`. The sync's ``fields`` map the destination fields
``EMAIL`` and ``PHONE`` (at least one of them: :data:`REQUIRED_ANY`) to audience columns.

Calls: adds are ``POST /{audience_id}/users``, removals ``DELETE /{audience_id}/users``, both
form-encoded with ``payload={"schema": ["EMAIL", "PHONE"], "data": [[<sha256>, <sha256>], …]}``
and ``access_token`` (in the body, never in a URL; never in a message). Each row is a customer's
SHA-256 of the normalised email (trimmed, lower case) and phone (digits only with the country
code, no ``+``: ``+34600123456`` → ``34600123456``); a missing one is ``""``. A customer with
neither is a failed record. An update whose hashed row changed removes the old row and adds the
new one; an update that changes neither identifier sends nothing (the record is ok). Removals
come first, then adds, at most ``batch_size`` rows per call. Membership is a set, so resending a
batch after a crash converges (idempotent without a key).

The answer: ``num_received``, ``num_invalid_entries``, ``invalid_entry_samples`` (a map; each
key and value is read as a possibly invalid entry). A record whose hash is among the samples
fails. When Meta counts more invalid (or fewer received) rows than the samples name, the rows it
did not name cannot be told apart: every other record of that call is then reported failed, so
the next run sends them again (a resend is harmless; silently taking an unmatched row for
synced is not). Graph errors ``{"error": {message, type, code, error_subcode, fbtrace_id}}``:
throttling (codes 4, 17, 32, 613, 80003, 80004 …) and transient ones (``is_transient``, codes 1
and 2) are retried with backoff by the transport; others (190 bad token, 100 bad parameter, 200
permissions …) raise :class:`~trebol.activation.destinations.base.DestinationRejected`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from trebol.activation.destinations.base import (
    Batch,
    Change,
    Connection,
    DestinationError,
    RecordOutcome,
    SyncContext,
)
from trebol.activation.hashing import normalise_email, normalise_phone_meta, sha256_hex
from trebol.activation.http import HttpTransport, RetryPolicy
from trebol.redaction import MASK, MIN_SWEPT_LENGTH, redact
from trebol.settings import ConfigError

SCHEMA = ("EMAIL", "PHONE")
MAX_ROWS = 10_000
DEFAULT_TIMEOUT_SECONDS = 60.0

RETRY_OPTIONS = frozenset(field.name for field in dataclasses.fields(RetryPolicy))
OPTIONS: frozenset[str] = frozenset({"batch_size"}) | RETRY_OPTIONS
REQUIRED_FIELDS: frozenset[str] = frozenset()
MAX_BATCH_SIZE = MAX_ROWS  # what destinations.yml's batch_size may be (checked at load)
REQUIRED_ANY: frozenset[str] = frozenset(SCHEMA)  # a sync maps at least one of these
FIELDS: frozenset[str] = frozenset(SCHEMA)  # the destination fields this destination reads

# Graph error codes that say "later": rate limits (application, user, page, custom, business
# use case: ads management and custom audience) and temporary service problems
THROTTLING_CODES = frozenset({4, 17, 32, 341, 613, 80003, 80004})
TRANSIENT_CODES = frozenset({1, 2})

Row = tuple[str, ...]
_NO_IDENTIFIER = "no EMAIL or PHONE to match on"


def hashed_row(fields: Mapping[str, Any] | None) -> Row:
    """A customer's row in :data:`SCHEMA` order: SHA-256 of the normalised email and phone,
    ``""`` for a missing one."""
    fields = fields or {}
    email = normalise_email(str(fields.get("EMAIL") or ""))
    phone = normalise_phone_meta(str(fields.get("PHONE") or ""))
    return (sha256_hex(email) if email else "", sha256_hex(phone) if phone else "")


def graph_error(response: httpx.Response) -> Mapping[str, Any] | None:
    """The ``error`` object of a Graph API answer, if it has one."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def is_retryable(response: httpx.Response) -> bool:
    """Whether a Graph error says to try again later (throttled or transient)."""
    error = graph_error(response)
    if error is None:
        return False
    return error.get("code") in THROTTLING_CODES | TRANSIENT_CODES or error.get("is_transient") is True


class MetaCustomAudience:
    """Adds and removes an audience's members in one Meta Custom Audience."""

    def __init__(self, name: str, connection: Connection, options: Mapping[str, Any], *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self.batch_size = int(options.get("batch_size", MAX_ROWS))  # checked by the config loader
        self.policy = RetryPolicy.from_options(options, timeout_seconds=DEFAULT_TIMEOUT_SECONDS)
        parts = urlsplit(connection.host.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"connection {connection.conn_id}: host must be the Graph API base URL "
                              f"(https://graph.facebook.com/v19.0), not {redact(connection.host)!r}")
        if not connection.password:
            raise ConfigError(f"connection {connection.conn_id}: password (the access token) is empty")
        audience_id = (connection.extra or {}).get("audience_id")
        if isinstance(audience_id, int) and not isinstance(audience_id, bool):
            audience_id = str(audience_id)
        if not isinstance(audience_id, str) or not audience_id.strip().isdigit():
            raise ConfigError(f"connection {connection.conn_id}: extra.audience_id must be the custom "
                              f"audience's numeric id")
        self.audience_id = audience_id.strip()
        self._base_url = connection.host.strip()
        self._token = connection.password
        self._sleep = sleep
        self._transport: HttpTransport | None = None

    def _client(self) -> HttpTransport:
        if self._transport is None:
            self._transport = HttpTransport(self.name, self._base_url, self.policy, sleep=self._sleep,
                                            retryable=is_retryable)
        return self._transport

    def open(self, context: SyncContext) -> None:
        self._client()

    def send(self, batch: Batch) -> list[RecordOutcome]:
        """Remove the rows that left, add the rows that joined; one outcome per change."""
        errors: dict[str, str] = {}
        removes: list[tuple[str, Row]] = []
        adds: list[tuple[str, Row]] = []
        for change in batch.changes:
            self._plan(change, removes, adds, errors)
        for method, rows in (("DELETE", removes), ("POST", adds)):
            for start in range(0, len(rows), self.batch_size):
                for key, error in self._call(method, rows[start:start + self.batch_size]).items():
                    errors.setdefault(key, error)
        return [RecordOutcome(change.customer_key, change.customer_key not in errors,
                              errors.get(change.customer_key)) for change in batch.changes]

    @staticmethod
    def _plan(change: Change, removes: list[tuple[str, Row]], adds: list[tuple[str, Row]],
              errors: dict[str, str]) -> None:
        row = hashed_row(change.fields)
        if change.operation == "remove":
            if any(row):  # a row without identifiers was never sent
                removes.append((change.customer_key, row))
            return
        old = hashed_row(change.previous) if change.operation == "update" and change.previous else None
        if old == row:
            return  # nothing Meta matches on changed
        if old and any(old):
            removes.append((change.customer_key, old))
        if any(row):
            adds.append((change.customer_key, row))
        else:
            errors[change.customer_key] = _NO_IDENTIFIER

    def _call(self, method: str, rows: Sequence[tuple[str, Row]]) -> dict[str, str]:
        """One Graph call for ``rows``; the records it reports invalid → error."""
        if not rows:
            return {}
        payload = json.dumps({"schema": list(SCHEMA), "data": [list(row) for _, row in rows]},
                             separators=(",", ":"))
        try:
            response = self._client().request(method, f"/{self.audience_id}/users",
                                              data={"payload": payload, "access_token": self._token})
        except DestinationError as error:  # the token is never in a URL; hide it if echoed
            message = str(error)
            if len(self._token) >= MIN_SWEPT_LENGTH:
                message = message.replace(self._token, MASK)
            raise type(error)(message) from None
        return self._invalid(rows, response)

    @staticmethod
    def _invalid(rows: Sequence[tuple[str, Row]], response: httpx.Response) -> dict[str, str]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return dict.fromkeys((key for key, _ in rows), "Meta's answer was not a JSON object")
        samples = body.get("invalid_entry_samples") or {}
        named = ({str(item) for pair in samples.items() for item in pair} if isinstance(samples, dict)
                 else {str(item) for item in samples} if isinstance(samples, list) else set())
        invalid = {key: "Meta counted this row invalid" for key, row in rows
                   if any(value and value in named for value in row)}
        count, received = body.get("num_invalid_entries"), body.get("num_received")
        unexplained = (isinstance(count, int) and count > len(invalid)) or (
            isinstance(received, int) and received < len(rows))
        if unexplained:
            note = (f"Meta reported {count} invalid of {received} received rows (of {len(rows)} sent) "
                    f"without naming them all; sent again next run")
            for key, _ in rows:
                invalid.setdefault(key, note)
        return invalid

    def close(self, context: SyncContext, snapshot: Iterator[Mapping[str, Any]]) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def build(name: str, connection: Connection, options: Mapping[str, Any]) -> MetaCustomAudience:
    """The Meta Custom Audiences destination ``name`` of destinations.yml."""
    return MetaCustomAudience(name, connection, options)

