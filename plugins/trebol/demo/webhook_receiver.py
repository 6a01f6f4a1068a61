"""A webhook receiver for the demo and the tests: what a company's endpoint for Trébol's webhook
destination (``trebol.activation.destinations.webhook``) has to do, done small.

For each ``POST`` it verifies ``Trebol-Signature`` over the raw body (constant time, any of its
secrets, so a secret can be rotated; ``Trebol-Timestamp`` within 300 s) and answers 401 with a
JSON error otherwise; it dedupes by ``Idempotency-Key`` (the stored response replayed for the
same key and body, 409 while that key is still being processed, 422 for the key with another
body; keys kept 24 h); it applies the records to its state (per sync: customer_key → fields; a
removal deletes) and appends each accepted batch as one JSON line to ``<out>/<sync>.jsonl``. A
removal with reason ``erased`` (an erasure request's delete event) forgets the customer
everywhere: its state, every record of it in the batches kept in memory and in every
``<out>/*.jsonl`` (rewritten), and the delete event itself is not logged.
``GET /health`` answers 200. It never logs or returns a secret.

From Python (tests, the demo)::

    with WebhookReceiver(["whsec_demo"], out_dir=tmp) as receiver:   # listens on 127.0.0.1:<free port>
        connection = Connection("webhook_demo", host=receiver.url, password="whsec_demo")
        ...
        receiver.state("vip_webhook")      # {"C1": {"email": ...}, ...}
        receiver.batches("vip_webhook")    # accepted batch documents, in order
        receiver.replays, receiver.conflicts, receiver.in_flight_refusals, receiver.unauthorized

Faults for the tests: :meth:`WebhookReceiver.fail_next` (answer 503/429/… with an optional
``Retry-After`` before doing anything), :meth:`~WebhookReceiver.lose_next_response` (apply the
batch, then drop the connection without answering), :meth:`~WebhookReceiver.hang_next` (take the
request, then sleep before applying and answering, longer than the client waits),
:meth:`~WebhookReceiver.reject_records` (answer 200 with those records in ``errors[]``).

From a shell (the demo): ``python -m trebol.demo.webhook_receiver --port 8765 --secret-env
DEMO_WEBHOOK_SECRET [--secret-env DEMO_WEBHOOK_OLD_SECRET] --out DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from trebol.activation.destinations.base import ERASED
from trebol.activation.destinations.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE_SECONDS,
    InvalidSignature,
    verify_signature,
)

log = logging.getLogger(__name__)

OPERATIONS = frozenset({"add", "update", "remove"})
KEY_TTL_SECONDS = 24 * 3600
MAX_BODY_BYTES = 64 * 1024 * 1024
_SYNC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # it names a file under --out


@dataclass(frozen=True)
class Delivery:
    """One request the receiver answered (or dropped): key, status (0 = dropped), outcome
    (``applied``, ``replayed``, ``conflict``, ``in_flight``, ``unauthorized``, ``bad_request``,
    ``injected``, ``lost``, ``error``) and the request's headers (lower-case names; kept in
    memory for the tests, never logged)."""

    idempotency_key: str | None
    status: int
    outcome: str
    headers: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    drop: bool = False


@dataclass
class _Key:
    fingerprint: str
    created: float
    reply: _Reply | None = None  # None while the first request with the key is in flight


def _json_reply(status: int, document: dict[str, Any], **headers: str) -> _Reply:
    return _Reply(status, json.dumps(document, sort_keys=True).encode("utf-8"), dict(headers))


class WebhookReceiver:
    """A threaded HTTP receiver of signed audience batches, with state the tests can read."""

    def __init__(self, secrets: Sequence[str], out_dir: Path | str | None = None, *,
                 host: str = "127.0.0.1", port: int = 0,
                 tolerance_seconds: float = TOLERANCE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._secrets = _checked_secrets(secrets)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.tolerance_seconds = tolerance_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._state: dict[str, dict[str, dict[str, Any]]] = {}
        self._batches: list[dict[str, Any]] = []
        self._deliveries: list[Delivery] = []
        self._keys: dict[str, _Key] = {}
        self._failures: list[tuple[int, float | None]] = []
        self._lose = 0
        self._hangs: list[float] = []
        self._rejected: dict[str, str] = {}
        handler = type("Handler", (_Handler,), {"receiver": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/trebol"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> WebhookReceiver:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="webhook-receiver", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (a hanging request is woken) and free the port."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- configuration and faults ------------------------------------------------------------

    def set_secrets(self, secrets: Sequence[str]) -> None:
        """Accept these signing secrets from now on (a rotation keeps the old one a while)."""
        checked = _checked_secrets(secrets)
        with self._lock:
            self._secrets = checked

    def fail_next(self, n: int = 1, status: int = 503, retry_after: float | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``Retry-After``), doing nothing."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * n)

    def lose_next_response(self, n: int = 1) -> None:
        """Apply the next ``n`` new batches, then drop the connection without an answer."""
        with self._lock:
            self._lose += n

    def hang_next(self, n: int = 1, seconds: float = 5.0) -> None:
        """Hold the next ``n`` new batches ``seconds`` (key in flight) before applying them."""
        with self._lock:
            self._hangs.extend([seconds] * n)

    def reject_records(self, customer_keys: Iterable[str], error: str = "rejected by the receiver") -> None:
        """Answer these customers' records with ``errors[]`` entries (not applied) until cleared
        with an empty list."""
        keys = list(customer_keys)
        with self._lock:
            self._rejected = dict.fromkeys(keys, error) if keys else {}

    # -- what the tests read -----------------------------------------------------------------

    def state(self, sync: str) -> dict[str, dict[str, Any]]:
        """What the receiver holds for a sync: customer_key → fields."""
        with self._lock:
            return {key: dict(fields) for key, fields in self._state.get(sync, {}).items()}

    def batches(self, sync: str | None = None) -> list[dict[str, Any]]:
        """The accepted batch documents (of one sync, or all), in the order they were applied."""
        with self._lock:
            return [dict(batch) for batch in self._batches if sync is None or batch["sync"] == sync]

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def count(self, outcome: str) -> int:
        """How many requests ended with ``outcome`` (see :class:`Delivery`)."""
        with self._lock:
            return sum(1 for delivery in self._deliveries if delivery.outcome == outcome)

    @property
    def replays(self) -> int:
        """Duplicates answered with the stored response (not applied again)."""
        return self.count("replayed")

    @property
    def conflicts(self) -> int:
        """Keys reused with another body (422)."""
        return self.count("conflict")

    @property
    def in_flight_refusals(self) -> int:
        """Duplicates refused while the first was still being processed (409)."""
        return self.count("in_flight")

    @property
    def unauthorized(self) -> int:
        """Requests refused for their signature (401)."""
        return self.count("unauthorized")

    # -- the request ---------------------------------------------------------------------------

    def _note(self, headers: dict[str, str], reply: _Reply, outcome: str) -> _Reply:
        key = headers.get(IDEMPOTENCY_HEADER.lower())
        with self._lock:
            self._deliveries.append(Delivery(key, 0 if reply.drop else reply.status, outcome, dict(headers)))
        log.debug("webhook receiver: %s %s %s", key, reply.status, outcome)
        return reply

    def handle(self, headers: dict[str, str], body: bytes) -> _Reply:
        """The answer to one POST (headers with lower-case names, raw body)."""
        key = headers.get(IDEMPOTENCY_HEADER.lower())
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            secrets = list(self._secrets)
        if failure is not None:
            status, retry_after = failure
            extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            reply = _json_reply(status, {"error": "injected failure"}, **extra)
            return self._note(headers, reply, "injected")
        try:
            verify_signature(secrets, headers.get(TIMESTAMP_HEADER.lower()),
                             headers.get(SIGNATURE_HEADER.lower()), body, now=self.clock(),
                             tolerance_seconds=self.tolerance_seconds)
        except InvalidSignature as error:
            return self._note(headers, _json_reply(401, {"error": str(error)}), "unauthorized")
        if not key:
            return self._note(headers, _json_reply(400, {"error": f"missing {IDEMPOTENCY_HEADER} header"}),
                              "bad_request")
        try:
            document = _parse_batch(body)
        except ValueError as error:
            return self._note(headers, _json_reply(400, {"error": str(error)}), "bad_request")
        fingerprint = hashlib.sha256(json.dumps(document, sort_keys=True).encode("utf-8")).hexdigest()
        with self._lock:
            self._prune()
            known = self._keys.get(key)
            if known is None:
                entry = self._keys[key] = _Key(fingerprint, self.clock())
                hang = self._hangs.pop(0) if self._hangs else 0.0
                lose = self._lose > 0
                self._lose -= int(lose)
        if known is not None:
            if known.fingerprint != fingerprint:
                return self._note(headers, _json_reply(
                    422, {"error": f"{IDEMPOTENCY_HEADER} was already used with another body"}), "conflict")
            if known.reply is None:
                return self._note(headers, _json_reply(
                    409, {"error": f"a request with this {IDEMPOTENCY_HEADER} is still being processed"},
                    **{"Retry-After": "1"}), "in_flight")
            stored = known.reply
            return self._note(headers, _Reply(stored.status, stored.body,
                                          {**stored.headers, "Idempotent-Replayed": "true"}), "replayed")
        if hang:
            self._stopping.wait(hang)
        try:
            reply = self._apply(document)
        except Exception as error:  # the key is freed: a retry may succeed
            with self._lock:
                self._keys.pop(key, None)
            log.warning("webhook receiver: could not apply batch %s: %s", key, type(error).__name__)
            return self._note(headers, _json_reply(500, {"error": "could not apply the batch"}), "error")
        with self._lock:
            entry.reply = reply
        if lose:
            return self._note(headers, _Reply(reply.status, b"", {}, drop=True), "lost")
        return self._note(headers, reply, "applied")

    def _apply(self, document: dict[str, Any]) -> _Reply:
        sync = document["sync"]
        with self._lock:
            keys = [record["customer_key"] for record in document["records"]]
            errors = [{"customer_key": key, "error": self._rejected[key]}
                      for key in keys if key in self._rejected]
            refused = {error["customer_key"] for error in errors}
            if self.out_dir is not None:  # first: the one step that can fail, before any change
                line = {**document, "errors": errors,
                        "received_at": datetime.now(UTC).isoformat(timespec="seconds")}
                line["records"] = [record for record in document["records"]
                                   if record.get("reason") != ERASED]
                if line["records"]:
                    self._append(self.out_dir / f"{sync}.jsonl", line)
            members = self._state.setdefault(sync, {})
            for record in document["records"]:
                if record["customer_key"] in refused:
                    continue
                if record["operation"] == "remove":
                    members.pop(record["customer_key"], None)
                else:
                    members[record["customer_key"]] = dict(record["fields"])
            erased = {record["customer_key"] for record in document["records"]
                      if record.get("reason") == ERASED and record["customer_key"] not in refused}
            self._batches.append(document)
            if erased:
                self._forget(erased)
        applied = len(document["records"]) - len(errors)
        return _json_reply(200, {"received": len(document["records"]), "applied": applied, "errors": errors})

    def _forget(self, customer_keys: set[str]) -> None:
        """Every trace of these customers gone: state, batches in memory, the logs on disk (under
        the receiver's lock)."""
        for members in self._state.values():
            for key in customer_keys:
                members.pop(key, None)
        for batch in self._batches:
            batch["records"] = [record for record in batch["records"]
                                if record["customer_key"] not in customer_keys]
        for path in sorted(self.out_dir.glob("*.jsonl")) if self.out_dir is not None else []:
            kept = []
            for text in path.read_text(encoding="utf-8").splitlines():
                line = json.loads(text)
                line["records"] = [record for record in line.get("records", [])
                                   if record.get("customer_key") not in customer_keys]
                line["errors"] = [error for error in line.get("errors", [])
                                  if error.get("customer_key") not in customer_keys]
                if line["records"]:
                    kept.append(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
            temporary = path.with_suffix(".jsonl.tmp")
            temporary.write_text("".join(kept), encoding="utf-8")
            os.replace(temporary, path)

    @staticmethod
    def _append(path: Path, line: dict[str, Any]) -> None:
        """One line, one write, flushed to disk (under the receiver's lock)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n"
        with path.open("a", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def _prune(self) -> None:
        """Forget answered keys older than a day (a resend after that is a new request)."""
        horizon = self.clock() - KEY_TTL_SECONDS
        for key in [key for key, entry in self._keys.items() if entry.reply and entry.created < horizon]:
            del self._keys[key]


def _checked_secrets(secrets: Sequence[str]) -> tuple[str, ...]:
    if isinstance(secrets, str) or not secrets or not all(isinstance(s, str) and s for s in secrets):
        raise ValueError("webhook receiver: give one or more non-empty signing secrets (a list)")
    return tuple(secrets)


def _parse_batch(body: bytes) -> dict[str, Any]:
    """The batch document, checked enough to apply it; ValueError names what is wrong."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("body is not JSON") from None
    if not isinstance(document, dict):
        raise ValueError("body is not a JSON object")
    sync, records = document.get("sync"), document.get("records")
    if not isinstance(sync, str) or not _SYNC_NAME.match(sync):
        raise ValueError("sync must be a name of letters, digits, '_', '.', '-'")
    if not isinstance(records, list):
        raise ValueError("records must be a list")
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("customer_key"), str) \
                or not record["customer_key"]:
            raise ValueError(f"records[{index}].customer_key must be a non-empty string")
        if record.get("operation") not in OPERATIONS:
            raise ValueError(f"records[{index}].operation must be add, update or remove")
        if not isinstance(record.get("fields"), dict):
            raise ValueError(f"records[{index}].fields must be an object")
    return document


class _Handler(BaseHTTPRequestHandler):
    receiver: WebhookReceiver
    protocol_version = "HTTP/1.1"
    server_version = "trebol-webhook-receiver"

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/health":
            self._send(_json_reply(200, {"ok": True}))
        else:
            self._send(_json_reply(404, {"error": "not found"}))

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send(_json_reply(413 if length > 0 else 400, {"error": "bad Content-Length"}))
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.receiver.handle(headers, body)
        if reply.drop:
            self.close_connection = True  # the batch is applied; the client never hears it
            return
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # request lines only, never headers
        log.debug("webhook receiver: " + format, *args)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m trebol.demo.webhook_receiver",
                                     description="Receive Trébol's signed webhook batches.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret-env", action="append", required=True, metavar="VAR",
                        help="environment variable holding a signing secret (repeat to rotate)")
    parser.add_argument("--out", type=Path, required=True, help="folder for <sync>.jsonl")
    args = parser.parse_args(argv)
    missing = [name for name in args.secret_env if not os.environ.get(name)]
    if missing:
        parser.error(f"environment variable {', '.join(missing)} is not set or empty")
    receiver = WebhookReceiver([os.environ[name] for name in args.secret_env], args.out,
                               host=args.host, port=args.port)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    receiver.start()
    print(f"webhook receiver listening on {receiver.url} (batches to {args.out})", flush=True)
    done.wait()
    receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
