"""A fake Meta Graph API (Custom Audiences users edge) for the Meta destination's tests
(campaign-apis.md §5.2, §8).

A real HTTP server (stdlib ``ThreadingHTTPServer``) on 127.0.0.1 in a background thread::

    with FakeMeta(token="EAAB-test", audiences=["23850000000000001"]) as fake:
        fake.base_url                          # http://127.0.0.1:PORT/v19.0
        fake.throttle_next(2, code=17)         # HTTP 400, Graph error code 17
        fake.fail_next(1, status=500)          # HTTP 500, Graph transient error code 2
        fake.mark_invalid({"<sha256>"})        # Meta-side invalid entries
        ...
        fake.members("23850000000000001")      # {("<email sha256>", "<phone sha256>"), ...}
        fake.requests                          # [GraphRequest(method, audience_id, rows, status, code)]

What it reproduces: ``POST`` (add) and ``DELETE`` (remove) ``/{version}/{audience_id}/users``,
form-encoded ``payload={"schema": [...], "data": [[...], ...]}`` and ``access_token`` (also
read from the query or an ``Authorization: Bearer|OAuth`` header); a missing token is Graph
code 104, a wrong one code 190 (``OAuthException``), both HTTP 400 as the Graph docs say; an
unknown audience or path code 100; more than 10,000 rows code 100; rows whose length differs
from the schema code 100. Membership is a set of row tuples (an add inserts the row, a removal
deletes that row). Entries must be 64-character lower-case hex (or empty): a row with another
value, with no value, or with a value given to :meth:`FakeMeta.mark_invalid` is counted in
``num_invalid_entries`` and not applied; up to ``sample_limit`` of those values are named in
``invalid_entry_samples`` as ``{value: schema key}``. Answers are ``{"audience_id",
"session_id", "num_received", "num_invalid_entries", "invalid_entry_samples"}``. Every error body
is Graph's ``{"error": {message, type, code, error_subcode, fbtrace_id}}``. The token is never
stored in the request log.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_ROWS = 10_000
MULTI_KEYS = frozenset({"EXTERN_ID", "EMAIL", "PHONE", "GEN", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI",
                        "CT", "ST", "ZIP", "MADID", "COUNTRY"})
HASH = re.compile(r"^[0-9a-f]{64}$")
THROTTLE_MESSAGES = {
    4: ("(#4) Application request limit reached", None),
    17: ("(#17) User request limit reached", 2446079),
    613: ("(#613) Calls to this api have exceeded the rate limit.", 1487742),
    80003: ("(#80003) There have been too many calls for this custom audience.", None),
}


@dataclass(frozen=True)
class GraphRequest:
    """One request the fake answered: method, audience, the data rows sent (none for a refused
    request), HTTP status and Graph error code (None for a success)."""

    method: str
    audience_id: str | None
    rows: tuple[tuple[str, ...], ...] = field(repr=False)
    status: int
    code: int | None


class GraphError(Exception):
    """A Graph error answer."""

    def __init__(self, status: int, code: int, message: str, subcode: int | None = None,
                 error_type: str = "OAuthException", transient: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.subcode = status, code, subcode
        self.error_type, self.transient = error_type, transient

    def body(self, trace_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"message": str(self), "type": self.error_type, "code": self.code,
                                 "fbtrace_id": trace_id}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.transient:
            error["is_transient"] = True
        return {"error": error}


class FakeMeta:
    """The users edge of Custom Audiences, with faults and state for the tests."""

    def __init__(self, token: str = "EAAB-fake-token", audiences: Iterable[str] = ("23850000000000001",),
                 *, version: str = "v19.0", sample_limit: int = 10) -> None:
        self.token = token
        self.version = version
        self.sample_limit = sample_limit
        self._members: dict[str, set[tuple[str, ...]]] = {str(audience): set() for audience in audiences}
        self._requests: list[GraphRequest] = []
        self._faults: list[GraphError] = []
        self._invalid: set[str] = set()
        self._sessions = itertools.count(6_000_000_000_000_001)
        self._traces = itertools.count(1)
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{self.version}"

    def start(self) -> FakeMeta:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="fake-meta", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeMeta:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- faults and state --------------------------------------------------------------------

    def throttle_next(self, n: int = 1, code: int = 17) -> None:
        """Answer the next ``n`` authorised requests with a throttling error (HTTP 400)."""
        message, subcode = THROTTLE_MESSAGES.get(code, (f"(#{code}) Rate limit reached", None))
        with self._lock:
            self._faults.extend(GraphError(400, code, message, subcode) for _ in range(n))

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` requests with ``status`` and Graph's transient error (code 2)."""
        error = GraphError(status, 2, "An unexpected error has occurred. Please retry your request later.",
                           transient=True)
        with self._lock:
            self._faults.extend([error] * n)

    def mark_invalid(self, values: Iterable[str]) -> None:
        """Count rows holding any of these (well-formed) hashes as invalid entries."""
        with self._lock:
            self._invalid.update(values)

    def members(self, audience_id: str) -> set[tuple[str, ...]]:
        with self._lock:
            return set(self._members[audience_id])

    @property
    def requests(self) -> list[GraphRequest]:
        with self._lock:
            return list(self._requests)

    # -- the request ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, Any]]:
        """The answer (status, JSON body) to one request."""
        audience_id: str | None = None
        rows: tuple[tuple[str, ...], ...] = ()
        try:
            audience_id = self._audience(path)
            form = {**parse_qs(urlsplit(path).query), **parse_qs(body.decode("utf-8", "replace"))}
            self._authorise(form, headers)
            with self._lock:
                fault = self._faults.pop(0) if self._faults else None
            if fault is not None:
                raise fault
            if audience_id not in self._members:
                raise GraphError(400, 100, f"Unsupported {method.lower()} request. Object with ID "
                                 f"'{audience_id}' does not exist", subcode=33,
                                 error_type="GraphMethodException")
            schema, data = _payload(form)
            rows = tuple(tuple(row) for row in data)
            answer = self._apply(method, audience_id, schema, rows)
        except GraphError as error:
            with self._lock:
                self._requests.append(GraphRequest(method, audience_id, rows, error.status, error.code))
                trace = f"Afake{next(self._traces):08d}"
            return error.status, error.body(trace)
        with self._lock:
            self._requests.append(GraphRequest(method, audience_id, rows, 200, None))
        return 200, answer

    def _audience(self, path: str) -> str:
        parts = urlsplit(path).path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != self.version or parts[2] != "users" or not parts[1].isdigit():
            raise GraphError(400, 100, f"Unknown path components: {urlsplit(path).path}")
        return parts[1]

    def _authorise(self, form: dict[str, list[str]], headers: dict[str, str]) -> None:
        token = (form.get("access_token") or [""])[0]
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if not token and scheme.lower() in ("bearer", "oauth"):
            token = credential.strip()
        if not token:
            raise GraphError(400, 104, "An access token is required to request this resource.")
        if token != self.token:
            raise GraphError(400, 190, "Invalid OAuth access token - Cannot parse access token")

    def _apply(self, method: str, audience_id: str, schema: list[str],
               rows: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
        samples: dict[str, str] = {}
        invalid = 0
        with self._lock:
            members = self._members[audience_id]
            for row in rows:
                bad = [(value, key) for key, value in zip(schema, row, strict=True)
                       if value and (not HASH.match(value) or value in self._invalid)]
                if bad or not any(row):
                    invalid += 1
                    for value, key in bad:
                        if len(samples) < self.sample_limit:
                            samples[value] = key
                    continue
                if method == "POST":
                    members.add(row)
                else:
                    members.discard(row)
            session = next(self._sessions)
        return {"audience_id": audience_id, "session_id": str(session), "num_received": len(rows),
                "num_invalid_entries": invalid, "invalid_entry_samples": samples}


def _payload(form: dict[str, list[str]]) -> tuple[list[str], list[list[str]]]:
    """The schema and data rows of a ``payload`` form field; GraphError (code 100) otherwise."""
    raw = (form.get("payload") or [""])[0]
    try:
        payload = json.loads(raw)
    except ValueError:
        raise GraphError(400, 100, "(#100) param payload must be a JSON object") from None
    schema, data = (payload.get("schema"), payload.get("data")) if isinstance(payload, dict) else (None, None)
    if not isinstance(schema, list) or not schema or not all(key in MULTI_KEYS for key in schema):
        raise GraphError(400, 100, "(#100) payload.schema must be a list of multi-key identifiers")
    if not isinstance(data, list):
        raise GraphError(400, 100, "(#100) payload.data must be a list")
    if len(data) > MAX_ROWS:
        raise GraphError(400, 100, f"(#100) payload.data has {len(data)} rows; "
                                   f"at most {MAX_ROWS} per request")
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(schema) or not all(isinstance(v, str) for v in row):
            raise GraphError(400, 100, f"(#100) payload.data[{index}] must hold {len(schema)} strings")
    return schema, data


class _Handler(BaseHTTPRequestHandler):
    fake: FakeMeta
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_GET(self) -> None:
        self._serve("GET")

    def _serve(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        if method == "GET":
            status, answer = 400, GraphError(400, 100, "Unsupported get request.").body("Afake")
        else:
            status, answer = self.fake.handle(method, self.path, headers, body)
        data = json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet; the token is never in a URL
        pass
