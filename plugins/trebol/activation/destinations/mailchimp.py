"""Mailchimp: a sync's members as a tag (a static segment) on one Mailchimp audience (list).

Connection (Airflow): host = the API base URL (``https://us21.api.mailchimp.com/3.0``; empty: made
from the data center the key ends with), password = the API key (HTTP Basic auth), extra
``{"list_id": "..."}``. Options in destinations.yml: ``segment_name`` (the tag; ``{audience}``
and ``{sync}`` are replaced; default ``{audience}``), ``batch_size`` (at most Mailchimp's 500,
the default) and the :class:`~trebol.activation.http.RetryPolicy` keys (``max_concurrency`` at
most 10, Mailchimp's connections per key). Fields: ``email_address`` and merge field tags
(``FNAME``, ``OFFER``, …) that the audience must define.

- ``open``: the tag is looked up by paging ``GET /lists/{id}/segments?type=static`` (1,000 a
  page) and created (``POST /lists/{id}/segments`` with ``static_segment: []``) when missing; a
  create whose response was lost (or that another run won) is found again, not duplicated.
- ``send``: adds and updates go to batch subscribe (``POST /lists/{id}``, ≤500 members,
  ``update_existing: true``, ``status: subscribed``, merge fields). Mailchimp refuses to
  subscribe an address that unsubscribed or bounced ("compliance state"): that is the record's
  error, never a resubscription (batch subscribe has no ``status_if_new``; the refusal is the
  API's). The members that upserted join the tag and removed addresses (and the previous
  address of an update that changed it) leave it (``POST /lists/{id}/segments/{seg}``, ≤500
  each way). A removal for withdrawn consent also unsubscribes the address when it is on the
  list and still mailable (``GET`` then ``PATCH /lists/{id}/members/{hash}``: update-only, so
  no contact is ever created to be unsubscribed). A removal of an erased person (an erasure
  request) deletes the contact for good (``POST /lists/{id}/members/{hash}/actions/
  delete-permanent``: its data gone, and Mailchimp refuses to import the address again; a 404,
  not on the list, is already true). Every call is a set, an upsert or a delete: resending a
  batch leaves Mailchimp as one send did.
- ``close``: releases the HTTP connections.

Per-member errors in a 200 response are ``RecordOutcome(ok=False)``; whole-call failures are the
transport's :class:`TransientDestinationError` / :class:`DestinationRejected`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import zip_longest
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from trebol.activation.destinations.base import (
    ERASED,
    Batch,
    Connection,
    DestinationRejected,
    RecordOutcome,
    SyncContext,
    TransientDestinationError,
)
from trebol.activation.http import HttpTransport, RetryPolicy, error_detail
from trebol.settings import ConfigError

log = logging.getLogger(__name__)

RETRY_OPTIONS = frozenset(f.name for f in dataclasses.fields(RetryPolicy))
OPTIONS = frozenset({"segment_name", "batch_size"}) | RETRY_OPTIONS
REQUIRED_FIELDS = frozenset({"email_address"})
MAX_MEMBERS = 500  # per batch subscribe call and per segment add/remove array
MAX_CONCURRENCY = 10  # Mailchimp's simultaneous connections per API key
MAX_BATCH_SIZE = MAX_MEMBERS  # what destinations.yml's batch_size may be (checked at load)
PAGE_SIZE = 1000  # Mailchimp's largest page
DEFAULT_SEGMENT_NAME = "{audience}"
NOT_MAILABLE = frozenset({"unsubscribed", "cleaned"})
_HOST_DC = re.compile(r"^https?://([a-z0-9]+)\.api\.mailchimp\.com(?:[:/]|$)", re.IGNORECASE)

T = TypeVar("T")


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 hex digest of the trimmed, lower-cased address."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


def api_base_url(connection: Connection, where: str) -> str:
    """The API base URL of a Mailchimp connection (its host, or the key's data center)."""
    key_dc = connection.password.rsplit("-", 1)[1] if "-" in connection.password else ""
    host = connection.host.strip().rstrip("/")
    if not host:
        if not re.fullmatch(r"[a-z]+[0-9]+", key_dc):
            raise ConfigError(f"{where}: connection {connection.conn_id} has no host and its API "
                              "key names no data center (it should end in -us21 or the like)")
        return f"https://{key_dc}.api.mailchimp.com/3.0"
    if "://" not in host:
        host = f"https://{host}"
    if not re.search(r"://[^/]+/.", host):
        host = f"{host}/3.0"
    match = _HOST_DC.match(host)
    if match and key_dc and match.group(1).lower() != key_dc.lower():
        raise ConfigError(f"{where}: connection {connection.conn_id}: the API key is for data "
                          f"center {key_dc} but the host is {match.group(1)}'s")
    return host


def list_id_of(connection: Connection, where: str) -> str:
    """The audience (list) id of a Mailchimp connection's extra."""
    list_id = connection.extra.get("list_id")
    if not isinstance(list_id, str) or not list_id.strip():
        raise ConfigError(f"{where}: connection {connection.conn_id} has no list_id in its extra "
                          '(e.g. {"list_id": "a1b2c3d4e5"})')
    if not connection.password:
        raise ConfigError(f"{where}: connection {connection.conn_id} has no API key (password)")
    return list_id.strip()


def member_error(error: Mapping[str, Any]) -> str:
    """A batch subscribe ``errors[]`` entry as one line: code, error, field and its message."""
    text = str(error.get("error") or "rejected")
    code, where, message = error.get("error_code"), error.get("field"), error.get("field_message")
    if where and message:
        text = f"{text} ({where}: {message})"
    if code:
        text = f"{code}: {text}"
    return " ".join(text.split())[:500]


def merge_value(value: Any) -> str | int | float:
    """A field value as a merge field value (None clears; booleans as true/false)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return value
    return str(value)


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def _email(fields: Mapping[str, Any] | None) -> str | None:
    value = (fields or {}).get("email_address")
    return value.strip() if isinstance(value, str) and value.strip() else None


class MailchimpDestination:
    """One Mailchimp audience; each sync it serves is a tag on it (see the module docstring)."""

    def __init__(self, name: str, connection: Connection, options: Mapping[str, Any], *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        where = f"destinations.yml: destination {name}"
        self.name = name
        self.list_id = list_id_of(connection, where)
        self.base_url = api_base_url(connection, where)
        self.api_key = connection.password
        # options were checked when destinations.yml was loaded (trebol.activation.config)
        self.batch_size = int(options.get("batch_size", MAX_MEMBERS))
        self.policy = RetryPolicy.from_options(options)
        self.segment_template = str(options.get("segment_name", DEFAULT_SEGMENT_NAME))
        self.sleep = sleep
        self._transport: HttpTransport | None = None
        self._segments: dict[str, int] = {}  # sync name → tag id

    # ---- plumbing -----------------------------------------------------------------------------

    @property
    def http(self) -> HttpTransport:
        """The transport, opened on first use (``close`` releases it)."""
        if self._transport is None:
            self._transport = HttpTransport(f"Mailchimp destination {self.name}", self.base_url,
                                            self.policy, auth=("trebol", self.api_key),
                                            sleep=self.sleep)
        return self._transport

    def _path(self, *parts: str | int) -> str:
        return "/lists/" + "/".join(quote(str(part), safe="") for part in (self.list_id, *parts))

    def _json(self, response: httpx.Response, method: str, path: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TransientDestinationError(
                f"Mailchimp destination {self.name}: {method} {path}: {response.status_code} "
                "response is not a JSON object")
        return body

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._json(self.http.request(method, path, **kwargs), method, path)

    # ---- the tag ------------------------------------------------------------------------------

    def segment_name(self, sync_name: str, audience: str) -> str:
        return self.segment_template.format(audience=audience, sync=sync_name).strip()

    def find_segment(self, name: str) -> int | None:
        """The id of the tag of that name, paging through the audience's static segments."""
        path, offset = self._path("segments"), 0
        while True:
            page = self._call("GET", path, params={
                "type": "static", "count": PAGE_SIZE, "offset": offset,
                "fields": "segments.id,segments.name,total_items"})
            segments = page.get("segments") or []
            for segment in segments:
                if segment.get("name") == name:
                    return int(segment["id"])
            offset += len(segments)
            if not segments or offset >= int(page.get("total_items") or 0):
                return None

    def _segment_id(self, sync_name: str, audience: str) -> int:
        if sync_name in self._segments:
            return self._segments[sync_name]
        name = self.segment_name(sync_name, audience)
        found = self.find_segment(name)
        if found is None:
            try:
                created = self._call("POST", self._path("segments"),
                                     json={"name": name, "static_segment": []})
                found = int(created["id"])
            except (DestinationRejected, TransientDestinationError, KeyError, ValueError):
                # a retry after a lost response (or a concurrent run) finds the tag existing
                found = self.find_segment(name)
                if found is None:
                    raise
            log.info("Mailchimp destination %s: created tag %r (id %s)", self.name, name, found)
        self._segments[sync_name] = found
        return found

    # ---- the protocol -------------------------------------------------------------------------

    def open(self, context: SyncContext) -> None:
        """Find or create the sync's tag."""
        self._segment_id(context.sync_name, context.audience)

    def send(self, batch: Batch) -> list[RecordOutcome]:
        """Upsert, tag, untag and unsubscribe as the batch says; one outcome per change."""
        segment_id = self._segment_id(batch.sync_name, batch.audience)
        changes = list(batch.changes)
        failed: dict[int, str] = {}

        withdrawn: dict[str, str] = {}  # hash → address whose consent was withdrawn
        erased: dict[str, str] = {}  # hash → address of a person who asked to be forgotten
        for change in changes:
            address = _email(change.fields)
            if change.operation == "remove" and change.reason == "consent_withdrawn" and address:
                withdrawn[subscriber_hash(address)] = address
            elif change.operation == "remove" and change.reason == ERASED and address:
                erased[subscriber_hash(address)] = address

        upserts: dict[str, tuple[int, str, dict[str, Any]]] = {}  # hash → (index, address, merge)
        for index, change in enumerate(changes):
            if change.operation == "remove":
                continue
            address = _email(change.fields)
            key = subscriber_hash(address) if address else ""
            if address is None:
                failed[index] = "email_address is empty"
            elif key in withdrawn:
                failed[index] = "this address withdrew consent in the same batch; not subscribed"
            elif key in erased:
                failed[index] = "this address is erased in the same batch; not subscribed"
            elif key in upserts:
                failed[index] = (f"customer {changes[upserts[key][0]].customer_key} has the same "
                                 "email_address in this batch")
            else:
                upserts[key] = (index, address, {tag: merge_value(value) for tag, value
                                                 in change.fields.items() if tag != "email_address"})

        self._subscribe(upserts, failed)
        tag = {key: address for key, (index, address, _) in upserts.items() if index not in failed}
        untag: dict[str, str] = {}
        for change in changes:
            address, previous = _email(change.fields), _email(change.previous)
            if change.operation == "remove" and address and change.reason != ERASED:
                untag[subscriber_hash(address)] = address
            elif change.operation == "update" and previous and (
                    address is None or subscriber_hash(previous) != subscriber_hash(address)):
                untag[subscriber_hash(previous)] = previous
        for key in tag:
            untag.pop(key, None)  # another change of this batch puts that address in the tag
        self._retag(segment_id, tag, untag, upserts, failed)
        errors = {**self._unsubscribe(withdrawn), **self._delete_permanently(erased)}
        for index, change in enumerate(changes):
            address = _email(change.fields)
            if change.operation == "remove" and address and subscriber_hash(address) in errors:
                failed[index] = errors[subscriber_hash(address)]

        log.info("Mailchimp destination %s: sync %s batch %s: %d upserted, %d removed, "
                 "%d unsubscribed, %d deleted for good, %d failed", self.name, batch.sync_name,
                 batch.batch_no, len(tag), sum(c.operation == "remove" for c in changes),
                 len(withdrawn), len(erased), len(failed))
        return [RecordOutcome(change.customer_key, index not in failed, failed.get(index))
                for index, change in enumerate(changes)]

    def close(self, context: SyncContext, snapshot: Iterator[Mapping[str, Any]]) -> None:
        """Nothing to write (the tag is the state); release the connections."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # ---- the steps ----------------------------------------------------------------------------

    def _subscribe(self, upserts: Mapping[str, tuple[int, str, dict[str, Any]]],
                   failed: dict[int, str]) -> None:
        """Batch subscribe with update_existing; per-member errors into ``failed``."""
        path = self._path()
        for chunk in _chunks(list(upserts.items()), MAX_MEMBERS):
            body = {"members": [{"email_address": address, "status": "subscribed",
                                 "merge_fields": merge} for _, (_, address, merge) in chunk],
                    "update_existing": True}
            result = self._call("POST", path, json=body)
            pending = {key: index for key, (index, _, _) in chunk}
            for error in result.get("errors") or []:
                key = subscriber_hash(str(error.get("email_address") or ""))
                if key in pending:
                    failed[pending.pop(key)] = member_error(error)
            for member in [*(result.get("new_members") or []), *(result.get("updated_members") or [])]:
                pending.pop(str(member.get("id") or subscriber_hash(member.get("email_address", ""))), None)
            for index in pending.values():
                failed[index] = "Mailchimp's batch subscribe response did not report this member"

    def _retag(self, segment_id: int, tag: Mapping[str, str], untag: Mapping[str, str],
               upserts: Mapping[str, tuple[int, str, dict[str, Any]]],
               failed: dict[int, str]) -> None:
        """Add to and remove from the tag, 500 each way per call. An address Mailchimp says is
        not on the list fails the upsert that needed it; for a removal it is already true."""
        path = self._path("segments", segment_id)
        for adds, removes in zip_longest(_chunks(list(tag.values()), MAX_MEMBERS),
                                         _chunks(list(untag.values()), MAX_MEMBERS), fillvalue=()):
            result = self._call("POST", path, json={"members_to_add": list(adds),
                                                    "members_to_remove": list(removes)})
            for error in result.get("errors") or []:
                for address in error.get("email_addresses") or []:
                    key = subscriber_hash(str(address))
                    if key in tag and key in upserts:
                        failed[upserts[key][0]] = ("not added to the tag: "
                                                   + " ".join(str(error.get("error")).split()))

    def _delete_permanently(self, erased: Mapping[str, str]) -> dict[str, str]:
        """Delete the contacts of erased people for good; errors by hash (a 404: not on the list,
        nothing to delete)."""
        def one(key: str) -> str | None:
            response = self.http.request(
                "POST", self._path("members", key, "actions", "delete-permanent"),
                accept={400, 404})
            if response.status_code == 400:
                return f"not deleted: {error_detail(response)}"
            return None

        return self._each(erased, one, "mailchimp-delete")

    def _each(self, addresses: Mapping[str, str], one: Callable[[str], str | None],
              name: str) -> dict[str, str]:
        """``one`` for each hash, at most ``max_concurrency`` at once; the errors by hash."""
        if not addresses:
            return {}
        with ThreadPoolExecutor(max_workers=min(self.policy.max_concurrency, len(addresses)),
                                thread_name_prefix=name) as pool:
            results = dict(zip(addresses, pool.map(one, addresses), strict=True))
        return {key: error for key, error in results.items() if error}

    def _unsubscribe(self, withdrawn: Mapping[str, str]) -> dict[str, str]:
        """Unsubscribe the addresses on the list that are still mailable; errors by hash."""
        def one(key: str) -> str | None:
            path = self._path("members", key)
            response = self.http.request("GET", path, params={"fields": "status"}, accept={404})
            if response.status_code == 404:
                return None  # not on the list: nothing to unsubscribe, and none is created
            if self._json(response, "GET", path).get("status") in NOT_MAILABLE:
                return None
            response = self.http.request("PATCH", path, json={"status": "unsubscribed"},
                                         accept={400, 404})
            if response.status_code == 400:
                return f"not unsubscribed: {error_detail(response)}"
            return None

        return self._each(withdrawn, one, "mailchimp-unsubscribe")


def check_option(key: str, value: Any) -> str | None:
    """A problem with a destinations.yml option of this type, or None (the loader asks)."""
    if key != "segment_name":
        return None
    try:
        sample = str(value).format(audience="a", sync="s")
    except (KeyError, IndexError, ValueError):
        sample = ""
    if not isinstance(value, str) or not sample.strip():
        return (f"{value!r}: a tag name; {{audience}} and {{sync}} are the only placeholders")
    return None


def build(name: str, connection: Connection, options: Mapping[str, Any]) -> MailchimpDestination:
    """The Mailchimp destination named ``name`` (options: :data:`OPTIONS`)."""
    return MailchimpDestination(name, connection, options)
