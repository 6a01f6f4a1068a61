"""The small interface every destination type implements (one module per type).

The sync engine (``trebol.activation.sync``) diffs an audience against the last synced state,
plans the changes as numbered batches (``activation.sync_records``), and hands each batch to the
destination's :meth:`Destination.send`. The destination returns one :class:`RecordOutcome` per
change: a change that failed for that record alone (a rejected address, a per-member error in a
2xx response) is ``ok=False`` with the vendor's error and is retried by the next run; a failure
of the whole call that retries could not cure raises :class:`TransientDestinationError` (the
batch stays pending and the next run resends it with the same idempotency key); a wrong
credential, endpoint or request raises :class:`DestinationRejected` (deterministic: not retried).

Inputs: the destination's settings from destinations.yml and its Airflow connection. Outputs:
outcomes per record; what the destination now holds is the destination's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Operation = Literal["add", "update", "remove"]
# why a member leaves an audience: it no longer selects them, they withdrew consent (a
# destination that keeps subscription status, such as Mailchimp, unsubscribes them too), or they
# asked to be forgotten (an erasure request: the destination deletes whatever it holds about
# them, e.g. Mailchimp's permanent delete, and sends or writes no field of theirs)
RemovalReason = Literal["left_audience", "consent_withdrawn", "erased"]
ERASED: RemovalReason = "erased"


class DestinationError(Exception):
    """A destination call failed as a whole; the message is one line, secrets redacted."""


class TransientDestinationError(DestinationError):
    """What time may cure (429, 5xx, timeouts, connection resets) outlasted the retries."""


class DestinationRejected(DestinationError):
    """The destination refused the call itself (401/403/404/4xx validation): not retried."""


@dataclass(frozen=True)
class Connection:
    """An Airflow connection's parts a destination uses (host: base URL or folder; password:
    API key, token or signing secret; extra: the JSON extra as a dict)."""

    conn_id: str
    host: str
    login: str = ""
    password: str = field(default="", repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One record's change: ``fields`` are the destination fields (the sync's mapping applied
    to the audience row); for an update, ``previous`` holds the fields last synced (an address
    may have changed); for a removal, ``fields`` are the fields last synced."""

    customer_key: str
    operation: Operation
    fields: Mapping[str, Any]
    previous: Mapping[str, Any] | None = None
    reason: RemovalReason | None = None


@dataclass(frozen=True)
class Batch:
    """Changes sent together. ``idempotency_key`` is the same when a batch is resent after a
    crash or a failed run (sync run id and batch number)."""

    sync_name: str
    audience: str
    sync_run_id: int
    batch_no: int
    idempotency_key: str
    changes: Sequence[Change]


@dataclass(frozen=True)
class RecordOutcome:
    """What became of one change: ``ok`` or the destination's error for that record."""

    customer_key: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class SyncContext:
    """The sync a destination serves in one run: its name, audience, date and run."""

    sync_name: str
    audience: str
    as_of_date: str
    sync_run_id: int
    options: Mapping[str, Any]  # the destination's keys in destinations.yml beyond type/connection
    # the delivery's name: the as-of date, or <date>.<n> for the n-th delivery of a date; the
    # changes the run planned; the sync's destination fields in mapping order (for files)
    delivery: str = ""
    changes: int = 0
    fields: Sequence[str] = ()


class Destination(Protocol):
    """One destination type. ``batch_size`` is the most changes one :meth:`send` takes (the
    vendor's per-call limit); ``open`` runs before the first batch (look up or create a list,
    segment or folder), ``close`` after the last with the full snapshot of what the
    destination should now hold (a file destination writes it; API destinations ignore it)."""

    batch_size: int

    def open(self, context: SyncContext) -> None: ...

    def send(self, batch: Batch) -> list[RecordOutcome]: ...

    def close(self, context: SyncContext, snapshot: Iterator[Mapping[str, Any]]) -> None: ...
