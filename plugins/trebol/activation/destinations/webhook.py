"""Webhook destination: each batch of audience changes POSTed as one signed JSON document.

Configuration: the Airflow connection's ``host`` is the receiver's URL (``https://…/path``), its
``password`` the signing secret shared with the receiver, its ``extra`` may hold
``{"headers": {"Name": "value"}}`` sent with every request (e.g. a gateway's API key). Options
in destinations.yml: ``batch_size`` (records per request, default 500, at most 10,000) and the
retry keys of :class:`~trebol.activation.http.RetryPolicy` (``max_attempts``,
``backoff_seconds``, ``max_backoff_seconds``, ``timeout_seconds`` (default 30),
``max_concurrency``, ``requests_per_second``).

The request (one per batch)::

    POST <host>
    Content-Type: application/json
    Idempotency-Key: <batch idempotency key>     same on every resend of the batch
    Trebol-Timestamp: <unix seconds>             when this attempt was signed
    Trebol-Signature: v1=<hex>                   HMAC-SHA256(secret, "<timestamp>.<raw body>")

    {"audience": "...", "batch": 3, "idempotency_key": "...",
     "records": [{"customer_key": "...", "fields": {...}, "operation": "add|update|remove",
                  "reason": null|"left_audience"|"consent_withdrawn"|"erased"}],
     "sync": "..."}

The body is compact JSON with sorted keys, UTF-8, built from the batch alone, so a resend
(retry, crash, next run) carries the same bytes; ``fields`` are the sync's destination fields
(for a removal, the fields last synced). A removal with reason ``erased`` is the delete event
of an erasure request: its ``fields`` are empty (nothing of the person is sent again), and the
receiver deletes everything it holds about that ``customer_key``, its logs included. The
signature covers the exact bytes sent and is made afresh on every attempt. A receiver verifies
it (:func:`verify_signature`, Stripe style): it recomputes the HMAC with each secret it accepts
(several during a rotation; the header may carry several comma-separated ``v1=`` values) and
compares in constant time, and rejects a timestamp more than 300 s from its clock.

The response: any 2xx means every record was applied, unless its JSON body has
``"errors": [{"customer_key": "...", "error": "..."}]`` (optional partial failure): those
records failed (retried by the next run), the others are applied. Idempotency, as the IETF
``Idempotency-Key`` draft says: a receiver answers a resent key with the stored response,
**409** while the first request with that key is still being processed (retried here with
backoff like a 429/503; ``Retry-After`` honoured), **422** when the key comes with a different
body (not retried: :class:`~trebol.activation.destinations.base.DestinationRejected`). 429 and
5xx and timeouts are retried; other 4xx are rejected. ``trebol.demo.webhook_receiver`` is a
receiver that follows this contract.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from trebol.activation.destinations.base import (
    ERASED,
    Batch,
    Connection,
    DestinationError,
    DestinationRejected,
    RecordOutcome,
    SyncContext,
)
from trebol.activation.http import HttpTransport, RetryPolicy
from trebol.redaction import redact
from trebol.settings import ConfigError

TIMESTAMP_HEADER = "Trebol-Timestamp"
SIGNATURE_HEADER = "Trebol-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_SCHEME = "v1"
TOLERANCE_SECONDS = 300
DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 10_000
DEFAULT_TIMEOUT_SECONDS = 30.0
RETRY_OPTIONS = frozenset(field.name for field in dataclasses.fields(RetryPolicy))

OPTIONS: frozenset[str] = frozenset({"batch_size"}) | RETRY_OPTIONS
REQUIRED_FIELDS: frozenset[str] = frozenset()

_OWN_HEADERS = frozenset(name.lower() for name in (
    TIMESTAMP_HEADER, SIGNATURE_HEADER, IDEMPOTENCY_HEADER, "Content-Type"))
_MAX_ERROR_CHARS = 300


class InvalidSignature(ValueError):
    """A webhook request's signature is missing, malformed, stale or made with another secret."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<body>`` keyed with ``secret``."""
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                    hashlib.sha256).hexdigest()


def verify_signature(secrets: Iterable[str], timestamp: str | None, signature: str | None,
                     body: bytes, *, now: float | None = None,
                     tolerance_seconds: float = TOLERANCE_SECONDS) -> None:
    """Check a request's ``Trebol-Timestamp`` and ``Trebol-Signature`` headers against the raw
    body; raise :class:`InvalidSignature` (one line, no secret) unless one of ``secrets``
    signed it within ``tolerance_seconds`` of ``now``. Comparisons run in constant time."""
    if not timestamp:
        raise InvalidSignature(f"missing {TIMESTAMP_HEADER} header")
    if not signature:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
    timestamp = timestamp.strip()
    if not timestamp.isdigit() or not timestamp.isascii():
        raise InvalidSignature(f"{TIMESTAMP_HEADER} is not unix seconds")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > tolerance_seconds:
        raise InvalidSignature(
            f"{TIMESTAMP_HEADER} is {abs(age):.0f} s from now, outside the {tolerance_seconds:.0f} s window")
    prefix = f"{SIGNATURE_SCHEME}="
    offered = [part.strip()[len(prefix):].encode("utf-8", "replace")
               for part in signature.split(",") if part.strip().startswith(prefix)]
    if not offered:
        raise InvalidSignature(f"{SIGNATURE_HEADER} has no {prefix} value")
    expected = [sign(secret, timestamp, body).encode("ascii") for secret in secrets if secret]
    matched = False
    for candidate in offered:  # every pair compared: the time taken tells nothing
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the body with any accepted secret")


def encode_body(batch: Batch) -> bytes:
    """The request body of a batch: compact, sorted-key UTF-8 JSON built from the batch only."""
    document = {
        "sync": batch.sync_name,
        "audience": batch.audience,
        "batch": batch.batch_no,
        "idempotency_key": batch.idempotency_key,
        "records": [{"customer_key": change.customer_key, "operation": change.operation,
                     "reason": change.reason,
                     "fields": {} if change.reason == ERASED else dict(change.fields)}
                    for change in batch.changes],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


class HmacSigner(httpx.Auth):
    """Signs each attempt of a request with a fresh timestamp (a retry after a long
    ``Retry-After`` stays inside the receiver's freshness window)."""

    requires_request_body = True

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        self._secret, self._clock = secret, clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(int(self._clock()))
        request.headers[TIMESTAMP_HEADER] = timestamp
        signature = sign(self._secret, timestamp, request.content)
        request.headers[SIGNATURE_HEADER] = f"{SIGNATURE_SCHEME}={signature}"
        yield request


def record_errors(response: httpx.Response) -> dict[str, str]:
    """The optional per-record failures of a 2xx response: ``customer_key`` → error."""
    try:
        body = response.json()
    except ValueError:
        return {}
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return {}
    failed: dict[str, str] = {}
    for item in errors:
        if isinstance(item, dict) and isinstance(item.get("customer_key"), str):
            message = " ".join(str(item.get("error") or "rejected by the receiver").split())
            failed[item["customer_key"]] = redact(message[:_MAX_ERROR_CHARS])
    return failed


class WebhookDestination:
    """Posts each batch to one receiver URL, signed; see the module docstring for the contract."""

    def __init__(self, name: str, connection: Connection, options: Mapping[str, Any], *,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.batch_size = int(options.get("batch_size", DEFAULT_BATCH_SIZE))  # checked at load
        self.policy = RetryPolicy.from_options(options, timeout_seconds=DEFAULT_TIMEOUT_SECONDS)
        self._base_url, self._path = _split_url(connection)
        if not connection.password:
            raise ConfigError(
                f"connection {connection.conn_id}: password (the webhook signing secret) is empty")
        self._conn_id = connection.conn_id
        self._headers = _extra_headers(connection)
        self._signer = HmacSigner(connection.password, clock)
        self._sleep = sleep
        self._transport: HttpTransport | None = None

    def _client(self) -> HttpTransport:
        if self._transport is None:
            self._transport = HttpTransport(
                self.name, self._base_url, self.policy, auth=self._signer, headers=self._headers,
                sleep=self._sleep, retryable=lambda response: response.status_code == 409)
        return self._transport

    def open(self, context: SyncContext) -> None:
        self._client()

    def send(self, batch: Batch) -> list[RecordOutcome]:
        """POST the batch; one outcome per change (2xx ``errors[]`` → those records failed)."""
        if not batch.changes:
            return []
        try:
            body = encode_body(batch)
        except (TypeError, ValueError) as error:
            raise DestinationRejected(
                f"{self.name}: batch {batch.batch_no}: fields are not JSON scalars: {error}") from None
        headers = {IDEMPOTENCY_HEADER: batch.idempotency_key, "Content-Type": "application/json"}
        try:
            response = self._client().request("POST", self._path, content=body, headers=headers)
        except DestinationError as error:
            # a webhook URL's path may itself be a secret (Slack-style): name the connection
            message = str(error).replace(f" {self._path}:", f" (connection {self._conn_id}):", 1)
            raise type(error)(message) from None
        failed = record_errors(response)
        return [RecordOutcome(change.customer_key, change.customer_key not in failed,
                              failed.get(change.customer_key)) for change in batch.changes]

    def close(self, context: SyncContext, snapshot: Iterator[Mapping[str, Any]]) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def build(name: str, connection: Connection, options: Mapping[str, Any]) -> WebhookDestination:
    """The webhook destination ``name`` of destinations.yml."""
    return WebhookDestination(name, connection, options)


def _split_url(connection: Connection) -> tuple[str, str]:
    """``(scheme://host:port, /path?query)`` of the connection's URL."""
    parts = urlsplit(connection.host.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"connection {connection.conn_id}: host must be the receiver's http(s) URL, "
                          f"not {redact(connection.host)!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{parts.netloc}", path


def _extra_headers(connection: Connection) -> dict[str, str]:
    headers = connection.extra.get("headers", {}) if connection.extra else {}
    if not isinstance(headers, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in headers.items()):
        raise ConfigError(f"connection {connection.conn_id}: extra.headers must map header names to strings")
    clashing = sorted(key for key in headers if key.lower() in _OWN_HEADERS)
    if clashing:
        raise ConfigError(f"connection {connection.conn_id}: extra.headers may not set {', '.join(clashing)}")
    return dict(headers)
