"""A fake Mailchimp Marketing API v3 for the Mailchimp destination's tests (campaign-apis.md §1).

A real HTTP server (stdlib ``ThreadingHTTPServer``) on 127.0.0.1 in a background thread::

    with FakeMailchimp(api_key="k-us21") as fake:
        fake.add_list("list1", merge_fields={"FNAME": "text", "POINTS": "number"})
        fake.base_url                      # http://127.0.0.1:PORT/3.0
        fake.fail_next(2, status=503, retry_after=1)
        ...
        fake.member("list1", "ann@example.com")["status"]
        fake.segment_emails("list1", "vip")
        fake.count("POST /lists/{list_id}")

What it reproduces: Basic auth (any user, the API key as password; missing or wrong → 401);
``GET /ping``; members keyed by the MD5 of the trimmed, lower-cased address with the five
statuses; batch subscribe ``POST /lists/{id}`` (≤500 members, 200 with per-member ``errors``,
``update_existing``/``ERROR_CONTACT_EXISTS``, merge fields checked against the list's, the
compliance rule: ``subscribed`` is refused for unsubscribed or cleaned members, ``pending`` for
cleaned ones); member list/get/patch; static segments (tags): list, create, batch add/remove
(≤500 per array; addresses not on the list are reported in ``errors`` and never created) and
their members; paging (``count`` default 10, at most 1000; ``offset``; ``total_items``) and
``fields``/``exclude_fields``; problem+json errors (``type, title, status, detail, instance``)
with ``X-Request-Id``; the concurrency cap (the request over ``max_connections`` in flight gets
429, no Retry-After); the GDPR erase ``POST /lists/{id}/members/{hash}/actions/delete-permanent``
(204, no body; the contact and its tags gone, its data kept nowhere; 404 when not a member) and
its tombstone: the list keeps only the address's hash, and a later batch subscribe of that
address fails for that member ("permanently deleted and cannot be re-imported").

Faults from Python: :meth:`FakeMailchimp.fail_next` (5xx or 429, optional Retry-After),
:meth:`FakeMailchimp.throttle_next` (a 429 storm), :meth:`FakeMailchimp.lose_next_response`
(the request is applied, then the connection is closed with no response), ``latency``.
Everything is guarded by one lock: the fake is safe under concurrent clients.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
MAX_BATCH_MEMBERS = 500
MAX_SEGMENT_EMAILS = 500
DEFAULT_COUNT = 10
MAX_COUNT = 1000
ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MERGE_TYPES = ("text", "number", "date", "birthday", "phone", "url", "zip", "dropdown", "radio")


def subscriber_hash(email: str) -> str:
    """A member's id: MD5 hex of the trimmed, lower-cased address."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


class ApiError(Exception):
    """A problem+json error response."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def _not_found() -> ApiError:
    return ApiError(404, "Resource Not Found", "The requested resource could not be found.")


def _invalid(detail: str, **extra: Any) -> ApiError:
    return ApiError(400, "Invalid Resource", detail, **extra)


def _compliance_message(email: str) -> str:
    return (f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review "
            "and cannot be subscribed.")


def _refused(current: str, requested: str) -> bool:
    """The compliance rule: an opted-out or bounced address cannot be (re)subscribed by API."""
    return ((requested == "subscribed" and current in ("unsubscribed", "cleaned"))
            or (requested == "pending" and current == "cleaned"))


@dataclass
class MergeField:
    tag: str
    type: str = "text"
    required: bool = False


@dataclass
class Member:
    email_address: str
    status: str
    merge_fields: dict[str, Any]
    contact_id: str
    unique_email_id: str
    web_id: int
    last_changed: datetime
    timestamp_signup: str = ""
    timestamp_opt: str = ""
    segment_ids: set[int] = field(default_factory=set)

    @property
    def id(self) -> str:
        return subscriber_hash(self.email_address)


@dataclass
class Segment:
    id: int
    name: str
    type: str  # static (a tag) or saved
    created_at: datetime
    updated_at: datetime
    members: dict[str, None] = field(default_factory=dict)  # contact ids, in order of adding


@dataclass
class MailchimpList:
    id: str
    name: str
    merge_fields: dict[str, MergeField]
    members: dict[str, Member] = field(default_factory=dict)  # by subscriber hash
    segments: dict[int, Segment] = field(default_factory=dict)
    # hashes of the addresses deleted for good: they can never be imported again
    erased: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class LoggedRequest:
    """One request the fake received. ``status`` is None when its response was lost; ``fault``
    says what the fake did instead of answering normally (injected, throttled, lost)."""

    method: str
    path: str
    endpoint: str  # "POST /lists/{list_id}" (the path template, without /3.0)
    query: Mapping[str, str]
    body: Any
    status: int | None
    fault: str | None = None


@dataclass
class _Fault:
    kind: str  # "fail" or "lose"
    remaining: int
    endpoint: str | None
    status: int = 503
    retry_after: str | None = None


_ID = r"(?P<list_id>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (endpoint.split(" ", 1)[0],
     re.compile("^" + endpoint.split(" ", 1)[1]
                .replace("{list_id}", _ID).replace("{subscriber_hash}", r"(?P<member>[^/]+)")
                .replace("{segment_id}", r"(?P<segment_id>[^/]+)") + "$"),
     endpoint)
    for endpoint in (
        "GET /ping",
        "GET /lists/{list_id}",
        "POST /lists/{list_id}",
        "GET /lists/{list_id}/members",
        "GET /lists/{list_id}/members/{subscriber_hash}",
        "PATCH /lists/{list_id}/members/{subscriber_hash}",
        "GET /lists/{list_id}/segments",
        "POST /lists/{list_id}/segments",
        "GET /lists/{list_id}/segments/{segment_id}",
        "POST /lists/{list_id}/segments/{segment_id}",
        "GET /lists/{list_id}/segments/{segment_id}/members",
        "POST /lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
    )
]


def _stamp(moment: datetime | str) -> str:
    return moment if isinstance(moment, str) else moment.isoformat(timespec="seconds")


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _select(document: Any, paths: list[list[str]]) -> Any:
    """Keep only the dotted ``fields`` paths (lists are traversed)."""
    if isinstance(document, list):
        return [_select(item, paths) for item in document]
    if not isinstance(document, dict):
        return document
    kept: dict[str, Any] = {}
    for head in dict.fromkeys(path[0] for path in paths):
        if head not in document:
            continue
        tails = [path[1:] for path in paths if path[0] == head]
        kept[head] = (document[head] if any(not tail for tail in tails)
                      else _select(document[head], tails))
    return kept


def _exclude(document: Any, paths: list[list[str]]) -> Any:
    """Drop the dotted ``exclude_fields`` paths (lists are traversed)."""
    if isinstance(document, list):
        return [_exclude(item, paths) for item in document]
    if not isinstance(document, dict):
        return document
    result = dict(document)
    for path in paths:
        if path[0] in result:
            if len(path) == 1:
                del result[path[0]]
            else:
                result[path[0]] = _exclude(result[path[0]], [path[1:]])
    return result


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeMailchimp


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _any(self) -> None:
        self.server.fake._handle(self)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any


class FakeMailchimp:
    """The fake server and its state. Use as a context manager (or ``start``/``stop``)."""

    def __init__(self, api_key: str = "fake0123456789abcdef0123456789ab-us21", *,
                 max_connections: int = 10, latency: float = 0.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.api_key = api_key
        self.max_connections = max_connections
        self.latency = latency
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lists: dict[str, MailchimpList] = {}
        self.requests: list[LoggedRequest] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._in_flight = 0
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle -------------------------------------------------------------------------

    def start(self) -> FakeMailchimp:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="fake-mailchimp")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeMailchimp:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server, "the fake is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/3.0"

    # ---- state from Python --------------------------------------------------------------------

    def add_list(self, list_id: str, name: str | None = None, *,
                 merge_fields: Mapping[str, str] | None = None,
                 required: Iterable[str] = ()) -> None:
        """An audience with its merge fields (tag → type; default FNAME and LNAME, text)."""
        fields = dict(merge_fields) if merge_fields is not None else {"FNAME": "text", "LNAME": "text"}
        required = set(required)
        for kind in fields.values():
            assert kind in MERGE_TYPES, f"unknown merge field type {kind}"
        with self._lock:
            self.lists[list_id] = MailchimpList(
                list_id, name or list_id,
                {tag: MergeField(tag, kind, tag in required) for tag, kind in fields.items()})

    def add_member(self, list_id: str, email: str, status: str = "subscribed",
                   merge_fields: Mapping[str, Any] | None = None,
                   last_changed: datetime | None = None) -> None:
        """Put a contact on a list directly (no compliance rule: it is how the tool got there)."""
        assert status in STATUSES
        with self._lock:
            lst = self.lists[list_id]
            member = self._new_member(lst, email.strip(), status, dict(merge_fields or {}))
            if last_changed is not None:
                member.last_changed = last_changed.replace(microsecond=0)

    def add_segment(self, list_id: str, name: str, emails: Iterable[str] = (), *,
                    type: str = "static") -> int:
        """A segment (a tag when static) holding those list members; its id."""
        with self._lock:
            lst = self.lists[list_id]
            segment = self._new_segment(lst, name, type)
            for email in emails:
                self._segment_add(segment, lst.members[subscriber_hash(email)])
            return segment.id

    def member(self, list_id: str, email: str) -> dict[str, Any] | None:
        """The member as GET returns it, or None."""
        with self._lock:
            lst = self.lists[list_id]
            found = lst.members.get(subscriber_hash(email))
            return self._member_json(lst, found) if found else None

    def was_erased(self, list_id: str, email: str) -> bool:
        """Whether the address was deleted for good (delete-permanent)."""
        with self._lock:
            return subscriber_hash(email) in self.lists[list_id].erased

    def members(self, list_id: str, status: str | None = None) -> list[dict[str, Any]]:
        """All members (optionally of one status), as GET returns them."""
        with self._lock:
            lst = self.lists[list_id]
            return [self._member_json(lst, m) for m in lst.members.values()
                    if status is None or m.status == status]

    def segments(self, list_id: str) -> list[dict[str, Any]]:
        """All segments of a list, as GET returns them."""
        with self._lock:
            lst = self.lists[list_id]
            return [self._segment_json(lst, s) for s in lst.segments.values()]

    def segment_emails(self, list_id: str, name: str) -> set[str]:
        """The addresses in the (only) tag of that name; KeyError when there is none."""
        with self._lock:
            lst = self.lists[list_id]
            matches = [s for s in lst.segments.values() if s.name == name and s.type == "static"]
            if len(matches) != 1:
                raise KeyError(f"{len(matches)} segments named {name!r} on list {list_id}")
            by_contact = {m.contact_id: m.email_address for m in lst.members.values()}
            return {by_contact[contact] for contact in matches[0].members}

    def count(self, endpoint: str | None = None, *, status: int | None = None,
              fault: str | None = None) -> int:
        """How many requests matched (endpoint template, response status, fault kind)."""
        with self._lock:
            return sum(1 for r in self.requests
                       if (endpoint is None or r.endpoint == endpoint)
                       and (status is None or r.status == status)
                       and (fault is None or r.fault == fault))

    def counts(self) -> Counter[str]:
        """Requests per endpoint template."""
        with self._lock:
            return Counter(r.endpoint for r in self.requests)

    def calls(self, endpoint: str) -> list[LoggedRequest]:
        """The logged requests to one endpoint template, in order."""
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---- faults -------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, retry_after: float | str | None = None,
                  *, endpoint: str | None = None) -> None:
        """The next ``n`` requests (to ``endpoint`` if given) get ``status`` without being
        applied; ``retry_after`` (seconds or an HTTP date) is sent as ``Retry-After``."""
        with self._lock:
            after = None if retry_after is None else (
                str(int(retry_after)) if isinstance(retry_after, int | float) else retry_after)
            self._faults.append(_Fault("fail", n, endpoint, status, after))

    def throttle_next(self, n: int, *, endpoint: str | None = None) -> None:
        """A 429 storm: the next ``n`` requests are refused as over the connection limit."""
        self.fail_next(n, status=429, endpoint=endpoint)

    def lose_next_response(self, n: int = 1, *, endpoint: str | None = None) -> None:
        """The next ``n`` requests are applied, then the connection is closed unanswered."""
        with self._lock:
            self._faults.append(_Fault("lose", n, endpoint))

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.endpoint in (None, endpoint):
                    fault.remaining -= 1
                    return fault
            return None

    # ---- HTTP ---------------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        method = handler.command
        split = urlsplit(handler.path)
        path = unquote(split.path).rstrip("/")
        query = {key: values[-1] for key, values in
                 parse_qs(split.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        relative = path[len("/3.0"):] if path.startswith("/3.0") else None
        endpoint, route = self._route(method, relative)
        with self._lock:
            self._in_flight += 1
            over = self._in_flight > self.max_connections
        fault_kind = None
        try:
            if over:
                fault_kind = "throttled"
                status, payload, headers = self._problem(ApiError(
                    429, "Too Many Requests",
                    f"You have exceeded the limit of {self.max_connections} simultaneous connections."))
            else:
                fault = self._take_fault(endpoint)
                if self.latency:
                    time.sleep(self.latency)
                if fault and fault.kind == "fail":
                    fault_kind = "injected"
                    status, payload, headers = self._problem(ApiError(
                        fault.status, HTTPStatus(fault.status).phrase,
                        "An injected failure of the fake Mailchimp."))
                    if fault.retry_after is not None:
                        headers["Retry-After"] = fault.retry_after
                else:
                    status, payload, headers = self._dispatch(handler, method, relative, route,
                                                              query, body)
                    if fault and fault.kind == "lose":
                        self._log(method, path, endpoint, query, body, None, "lost")
                        handler.close_connection = True
                        return
            self._log(method, path, endpoint, query, body, status, fault_kind)
            self._send(handler, status, payload, headers)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _route(self, method: str, path: str | None) -> tuple[str, tuple[str, dict[str, str]] | None]:
        """The endpoint template and (handler endpoint, path params), or None when unknown."""
        if path is None:
            return f"{method} <unknown>", None
        allowed = False
        for route_method, pattern, endpoint in _ROUTES:
            match = pattern.match(path)
            if match:
                if route_method == method:
                    return endpoint, (endpoint, match.groupdict())
                allowed = True
        return f"{method} <unknown>", (("<405>", {}) if allowed else None)

    def _dispatch(self, handler: _Handler, method: str, path: str | None,
                  route: tuple[str, dict[str, str]] | None, query: dict[str, str],
                  body: Any) -> tuple[int, bytes, dict[str, str]]:
        try:
            self._authenticate(handler.headers.get("Authorization"))
            if route is None:
                raise _not_found()
            endpoint, params = route
            if endpoint == "<405>":
                raise ApiError(405, "Method Not Allowed",
                               f"The requested method and resource are not compatible: {method} {path}")
            if method in ("POST", "PATCH") and not isinstance(body, dict) \
                    and not endpoint.endswith("/actions/delete-permanent"):
                raise ApiError(400, "JSON Parse Exception",
                               "We encountered an unspecified JSON parsing error.")
            with self._lock:
                document = self._call(endpoint, params, query, body)
            if document is None:  # an action: 204 No Content
                return 204, b"", {}
            fields = [f.split(".") for f in query.get("fields", "").split(",") if f]
            excluded = [f.split(".") for f in query.get("exclude_fields", "").split(",") if f]
            if fields:
                document = _select(document, fields)
            if excluded:
                document = _exclude(document, excluded)
            return 200, json.dumps(document).encode(), {"Content-Type": "application/json"}
        except ApiError as error:
            return self._problem(error)

    def _authenticate(self, header: str | None) -> None:
        if not header:
            raise ApiError(401, "API Key Missing", "Your request did not include an API key.")
        scheme, _, value = header.partition(" ")
        key = None
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                key = None
        elif scheme.lower() == "apikey":
            key = value.strip()
        if key != self.api_key:
            raise ApiError(401, "API Key Invalid", "Your API key may be invalid, or you've "
                           "attempted to access the wrong datacenter.")

    @staticmethod
    def _problem(error: ApiError) -> tuple[int, bytes, dict[str, str]]:
        document = {"type": ERROR_TYPE, "title": error.title, "status": error.status,
                    "detail": error.detail, "instance": str(uuid.uuid4()), **error.extra}
        return (error.status, json.dumps(document).encode(),
                {"Content-Type": "application/problem+json"})

    @staticmethod
    def _send(handler: _Handler, status: int, payload: bytes, headers: dict[str, str]) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("X-Request-Id", str(uuid.uuid4()))
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _log(self, method: str, path: str, endpoint: str, query: dict[str, str], body: Any,
             status: int | None, fault: str | None) -> None:
        with self._lock:
            self.requests.append(LoggedRequest(method, path, endpoint, query, body, status, fault))

    # ---- the API ------------------------------------------------------------------------------

    def _call(self, endpoint: str, params: dict[str, str], query: dict[str, str],
              body: Any) -> dict[str, Any] | None:
        if endpoint == "GET /ping":
            return {"health_status": "Everything's Chimpy!"}
        lst = self.lists.get(params["list_id"])
        if lst is None:
            raise _not_found()
        if "member" in params:
            member = lst.members.get(subscriber_hash(params["member"]) if "@" in params["member"]
                                     else params["member"].lower())
            if member is None:
                raise _not_found()
            if endpoint.endswith("/actions/delete-permanent"):
                self._delete_permanently(lst, member)
                return None
            if endpoint.startswith("PATCH"):
                self._patch_member(lst, member, body)
            return self._member_json(lst, member)
        segment = None
        if "segment_id" in params:
            segment_id = params["segment_id"]
            segment = lst.segments.get(int(segment_id)) if segment_id.isdigit() else None
            if segment is None:
                raise _not_found()
        handlers: dict[str, Callable[[], dict[str, Any]]] = {
            "GET /lists/{list_id}": lambda: self._list_json(lst),
            "POST /lists/{list_id}": lambda: self._batch_subscribe(lst, query, body),
            "GET /lists/{list_id}/members": lambda: self._list_members(lst, query),
            "GET /lists/{list_id}/segments": lambda: self._list_segments(lst, query),
            "POST /lists/{list_id}/segments": lambda: self._create_segment(lst, body),
            "GET /lists/{list_id}/segments/{segment_id}": lambda: self._segment_json(lst, segment),
            "POST /lists/{list_id}/segments/{segment_id}":
                lambda: self._segment_batch(lst, segment, body),
            "GET /lists/{list_id}/segments/{segment_id}/members":
                lambda: self._segment_members(lst, segment, query),
        }
        return handlers[endpoint]()

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    @staticmethod
    def _page(query: dict[str, str]) -> tuple[int, int]:
        try:
            count = int(query.get("count", DEFAULT_COUNT))
            offset = int(query.get("offset", 0))
        except ValueError:
            raise _invalid("count and offset must be integers.") from None
        if not 1 <= count <= MAX_COUNT or offset < 0:
            raise _invalid(f"count must be between 1 and {MAX_COUNT}, offset at least 0.")
        return count, offset

    def _list_json(self, lst: MailchimpList) -> dict[str, Any]:
        statuses = Counter(m.status for m in lst.members.values())
        return {"id": lst.id, "name": lst.name,
                "stats": {"member_count": statuses["subscribed"],
                          "unsubscribe_count": statuses["unsubscribed"],
                          "cleaned_count": statuses["cleaned"]}, "_links": []}

    def _member_json(self, lst: MailchimpList, member: Member) -> dict[str, Any]:
        tags = [{"id": sid, "name": lst.segments[sid].name} for sid in sorted(member.segment_ids)
                if lst.segments[sid].type == "static"]
        return {
            "id": member.id, "email_address": member.email_address,
            "unique_email_id": member.unique_email_id, "contact_id": member.contact_id,
            "web_id": member.web_id, "email_type": "html", "status": member.status,
            "merge_fields": copy.deepcopy(member.merge_fields), "interests": {},
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0}, "ip_signup": "",
            "timestamp_signup": member.timestamp_signup, "ip_opt": "",
            "timestamp_opt": member.timestamp_opt, "member_rating": 2,
            "last_changed": _stamp(member.last_changed), "language": "", "vip": False,
            "email_client": "", "source": "API - Generic", "tags_count": len(tags), "tags": tags,
            "list_id": lst.id, "_links": [],
        }

    def _segment_json(self, lst: MailchimpList, segment: Segment | None) -> dict[str, Any]:
        assert segment is not None
        return {"id": segment.id, "name": segment.name, "member_count": len(segment.members),
                "type": segment.type, "created_at": _stamp(segment.created_at),
                "updated_at": _stamp(segment.updated_at), "options": {}, "list_id": lst.id,
                "_links": []}

    # members

    def _new_member(self, lst: MailchimpList, email: str, status: str,
                    merge_fields: dict[str, Any]) -> Member:
        now = self._now()
        member = Member(
            email_address=email, status=status,
            merge_fields={**{tag: "" for tag in lst.merge_fields}, **merge_fields},
            contact_id=uuid.uuid4().hex, unique_email_id=uuid.uuid4().hex[:10],
            web_id=next(self._ids), last_changed=now,
            timestamp_signup=_stamp(now) if status == "pending" else "",
            timestamp_opt=_stamp(now) if status == "subscribed" else "")
        lst.members[member.id] = member
        return member

    def _set_status(self, member: Member, status: str) -> bool:
        if member.status == status:
            return False
        member.status = status
        if status == "subscribed":
            member.timestamp_opt = _stamp(self._now())
        return True

    @staticmethod
    def _merge_values(lst: MailchimpList, given: Any, *, new: bool,
                      skip_validation: bool = False) -> tuple[dict[str, Any], tuple[str, str] | None]:
        """The merge values to store, or the (field, message) of the first problem."""
        if given is None:
            given = {}
        if not isinstance(given, dict):
            return {}, ("merge_fields", "merge_fields must be an object")
        values: dict[str, Any] = {}
        for tag, value in given.items():
            spec = lst.merge_fields.get(tag)
            if spec is None:
                return {}, (tag, f"Merge field {tag} does not exist on this audience")
            if value is None:
                value = ""
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                return {}, (tag, f"Merge field {tag} must be a string or a number")
            if spec.type == "number" and value != "":
                try:
                    value = float(value) if not isinstance(value, int) else value
                except ValueError:
                    return {}, (tag, "Please enter a number")
                value = int(value) if isinstance(value, float) and value.is_integer() else value
            elif spec.type != "number":
                value = str(value)
            values[tag] = value
        if not skip_validation:
            for spec in lst.merge_fields.values():
                missing = (spec.tag not in values) if new else False
                if spec.required and (missing or values.get(spec.tag) == ""):
                    return {}, (spec.tag, "Please enter a value")
        return values, None

    def _batch_subscribe(self, lst: MailchimpList, query: dict[str, str],
                         body: dict[str, Any]) -> dict[str, Any]:
        members = body.get("members")
        if not isinstance(members, list):
            raise _invalid("members: Schema describes array, a different type was found.")
        if len(members) > MAX_BATCH_MEMBERS:
            raise _invalid(f"members: Schema describes array, maximum {MAX_BATCH_MEMBERS} items "
                           f"allowed, {len(members)} found.")
        for index, item in enumerate(members):
            if not isinstance(item, dict) or not isinstance(item.get("email_address"), str):
                raise _invalid(f"members[{index}].email_address: a string is required.")
            if item.get("status") not in STATUSES:
                raise _invalid(f"members[{index}].status: Data presented is not one of the "
                               f"accepted values: {', '.join(STATUSES)}.")
        update_existing = bool(body.get("update_existing", False))
        skip_merge = _bool(query.get("skip_merge_validation"))
        skip_duplicates = _bool(query.get("skip_duplicate_check"))
        new, updated, errors, seen = [], [], [], set()

        def fail(email: str, error: str, code: str = "ERROR_GENERIC", where: str = "",
                 message: str = "") -> None:
            errors.append({"email_address": email, "error": error, "error_code": code,
                           "field": where, "field_message": message})

        for item in members:
            email, status = item["email_address"].strip(), item["status"]
            key = subscriber_hash(email)
            if not EMAIL.match(email):
                fail(email, f"{email} looks fake or invalid, please enter a real email address.",
                     where="email_address", message="Invalid email address")
                continue
            if key in seen:
                if not skip_duplicates:
                    fail(email, f"{email} appears more than once in this request.")
                continue
            seen.add(key)
            if key in lst.erased:
                fail(email, f"{email} was permanently deleted and cannot be re-imported. The "
                     "contact must re-subscribe to get back on the list.")
                continue
            existing = lst.members.get(key)
            if existing is not None and not update_existing:
                fail(email, f"{email} is already a list member, do you want to update? please "
                     "provide update_existing:true in the request body", "ERROR_CONTACT_EXISTS")
                continue
            values, problem = self._merge_values(lst, item.get("merge_fields"),
                                                 new=existing is None, skip_validation=skip_merge)
            if problem:
                fail(email, "Your merge fields were invalid.", where=problem[0], message=problem[1])
                continue
            if existing is None:
                new.append(self._member_json(lst, self._new_member(lst, email, status, values)))
                continue
            if _refused(existing.status, status):
                fail(email, _compliance_message(email), where="status",
                     message="Member In Compliance State")
                continue
            changed = self._set_status(existing, status)
            if any(existing.merge_fields.get(tag) != value for tag, value in values.items()):
                existing.merge_fields.update(values)
                changed = True
            if changed:
                existing.last_changed = self._now()
            updated.append(self._member_json(lst, existing))
        return {"new_members": new, "updated_members": updated, "errors": errors,
                "total_created": len(new), "total_updated": len(updated),
                "error_count": len(errors), "_links": []}

    def _list_members(self, lst: MailchimpList, query: dict[str, str]) -> dict[str, Any]:
        count, offset = self._page(query)
        status = query.get("status")
        if status is not None and status not in STATUSES:
            raise _invalid(f"status: Data presented is not one of the accepted values: "
                           f"{', '.join(STATUSES)}.")
        since = None
        if query.get("since_last_changed"):
            try:
                since = datetime.fromisoformat(query["since_last_changed"])
            except ValueError:
                raise _invalid("since_last_changed: an ISO 8601 time is required.") from None
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
        matching = [m for m in lst.members.values()
                    if (status is None or m.status == status)
                    and (since is None or m.last_changed >= since)]
        return {"members": [self._member_json(lst, m) for m in matching[offset:offset + count]],
                "list_id": lst.id, "total_items": len(matching), "_links": []}

    def _patch_member(self, lst: MailchimpList, member: Member, body: dict[str, Any]) -> None:
        status = body.get("status")
        if status is not None and status not in STATUSES:
            raise _invalid(f"status: Data presented is not one of the accepted values: "
                           f"{', '.join(STATUSES)}.")
        if status is not None and _refused(member.status, status):
            raise ApiError(400, "Member In Compliance State",
                           _compliance_message(member.email_address))
        values, problem = self._merge_values(lst, body.get("merge_fields"), new=False)
        if problem:
            raise _invalid("Your merge fields were invalid.",
                           errors=[{"field": problem[0], "message": problem[1]}])
        email = body.get("email_address")
        if email is not None:
            email = str(email).strip()
            if not EMAIL.match(email):
                raise _invalid(f"{email} looks fake or invalid, please enter a real email address.")
            if subscriber_hash(email) != member.id and subscriber_hash(email) in lst.members:
                raise ApiError(400, "Member Exists", f"{email} is already a list member. Use "
                               "PUT to insert or update list members.")
        changed = False
        if status is not None:
            changed = self._set_status(member, status)
        if any(member.merge_fields.get(tag) != value for tag, value in values.items()):
            member.merge_fields.update(values)
            changed = True
        if email is not None and email != member.email_address:
            del lst.members[member.id]
            member.email_address = email
            lst.members[member.id] = member
            changed = True
        if changed:
            member.last_changed = self._now()

    def _delete_permanently(self, lst: MailchimpList, member: Member) -> None:
        """The GDPR erase: the contact, its tags and data gone; only the hash stays, to refuse
        the address later."""
        for segment in lst.segments.values():
            segment.members.pop(member.contact_id, None)
        del lst.members[member.id]
        lst.erased.add(member.id)

    # segments

    def _new_segment(self, lst: MailchimpList, name: str, kind: str) -> Segment:
        now = self._now()
        segment = Segment(next(self._ids), name, kind, now, now)
        lst.segments[segment.id] = segment
        return segment

    @staticmethod
    def _segment_add(segment: Segment, member: Member) -> bool:
        if member.contact_id in segment.members:
            return False
        segment.members[member.contact_id] = None
        member.segment_ids.add(segment.id)
        return True

    def _list_segments(self, lst: MailchimpList, query: dict[str, str]) -> dict[str, Any]:
        count, offset = self._page(query)
        kind = query.get("type")
        if kind is not None and kind not in ("saved", "static", "fuzzy"):
            raise _invalid("type: Data presented is not one of the accepted values: saved, "
                           "static, fuzzy.")
        matching = [s for s in lst.segments.values() if kind is None or s.type == kind]
        return {"segments": [self._segment_json(lst, s) for s in matching[offset:offset + count]],
                "list_id": lst.id, "total_items": len(matching), "_links": []}

    def _create_segment(self, lst: MailchimpList, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("name: a non-empty string is required.")
        emails, options = body.get("static_segment"), body.get("options")
        if (emails is None) == (options is None):
            raise _invalid("Provide either static_segment (a tag) or options (a saved segment).")
        if emails is not None:
            if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
                raise _invalid("static_segment: an array of email addresses is required.")
            if any(s.name == name and s.type == "static" for s in lst.segments.values()):
                raise _invalid(f"Sorry, a tag named {name} already exists on this audience.")
        segment = self._new_segment(lst, name, "static" if emails is not None else "saved")
        for email in emails or ():
            member = lst.members.get(subscriber_hash(email))
            if member is not None:  # others are ignored
                self._segment_add(segment, member)
        return self._segment_json(lst, segment)

    def _segment_batch(self, lst: MailchimpList, segment: Segment | None,
                       body: dict[str, Any]) -> dict[str, Any]:
        assert segment is not None
        if segment.type != "static":
            raise _invalid("Members can only be added to or removed from static segments.")
        to_add, to_remove = body.get("members_to_add", []), body.get("members_to_remove", [])
        for name, emails in (("members_to_add", to_add), ("members_to_remove", to_remove)):
            if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
                raise _invalid(f"{name}: an array of email addresses is required.")
        if len(to_add) > MAX_SEGMENT_EMAILS or len(to_remove) > MAX_SEGMENT_EMAILS:
            raise _invalid(f"Maximum allowed member items exceeded, please provide at most "
                           f"{MAX_SEGMENT_EMAILS} items in members_to_add field or "
                           "members_to_remove field")
        added, removed, unknown = [], [], []
        for email in to_add:
            member = lst.members.get(subscriber_hash(email))
            if member is None:
                unknown.append(email)
            elif self._segment_add(segment, member):
                added.append(self._member_json(lst, member))
        for email in to_remove:
            member = lst.members.get(subscriber_hash(email))
            if member is None:
                unknown.append(email)
            elif member.contact_id in segment.members:
                del segment.members[member.contact_id]
                member.segment_ids.discard(segment.id)
                removed.append(self._member_json(lst, member))
        if added or removed:
            segment.updated_at = self._now()
        errors = ([{"email_addresses": unknown, "error": "Email addresses are not members of "
                    "this audience."}] if unknown else [])
        return {"members_added": added, "members_removed": removed, "errors": errors,
                "total_added": len(added), "total_removed": len(removed),
                "error_count": len(unknown), "_links": []}

    def _segment_members(self, lst: MailchimpList, segment: Segment | None,
                         query: dict[str, str]) -> dict[str, Any]:
        assert segment is not None
        count, offset = self._page(query)
        hidden = {status for status, flag in (("cleaned", "include_cleaned"),
                                              ("transactional", "include_transactional"),
                                              ("unsubscribed", "include_unsubscribed"))
                  if not _bool(query.get(flag))}
        by_contact = {m.contact_id: m for m in lst.members.values()}
        matching = [by_contact[c] for c in segment.members if by_contact[c].status not in hidden]
        return {"members": [self._member_json(lst, m) for m in matching[offset:offset + count]],
                "total_items": len(matching), "_links": []}
