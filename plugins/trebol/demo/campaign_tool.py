"""The campaign tool's side of the demo: it sends each audience Trébol delivers and exports what
happened, as a real tool's event export would (the source ``campaign_events`` of sources.yml).

Input: the file destination's deliveries (``<destination>/<sync>/<delivery>/`` with its
``manifest.json``, ``snapshot.csv`` and ``_SUCCESS``, ``trebol.activation.destinations.file``):
every member of a delivery's snapshot (the held-out members are never delivered) is sent the
campaign ``<sync>/<as-of date>`` on that date at ten in the morning, local time; a later
delivery of the same sync and date (a re-run that found changes) replaces the earlier one.

Output: ``campaigns/events/<day>.csv`` under the sources folder, the events of that local day:
``send``, then ``hard_bounce`` (never delivered), ``soft_bounce`` or ``delivery``; of the
delivered, ``open`` (within three days), ``click`` (of the opened) and ``unsubscribe``. Each
member's draws come from a stream of its own (seed, campaign, customer key), so one member's
events do not depend on who else was sent; the rates may differ per member (``engagement``: a
factor on the open and click rates, e.g. by segment). Only days before ``until`` are written
(the tool's today); writing again gives the same files.
"""

from __future__ import annotations

import csv
import json
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

EVENTS_FOLDER = Path("campaigns") / "events"
COLUMNS = ("event_id", "campaign_id", "customer_key", "email", "event_type", "occurred_at")
SEND_TIME = time(10, 0)


@dataclass(frozen=True)
class Delivery:
    """One campaign: a sync's delivery of an as-of date and the members it holds."""

    campaign_id: str
    sync: str
    audience: str
    sent_on: date
    members: tuple[tuple[str, str], ...]  # (customer_key, email)


@dataclass(frozen=True)
class Rates:
    """The chance of each outcome for one member of a campaign."""

    hard_bounce: float = 0.01  # of the sends
    soft_bounce: float = 0.02  # of the sends not hard-bounced
    open: float = 0.3  # of the delivered, times the member's engagement (at most 1)
    click: float = 0.2  # of the opened, times the member's engagement (at most 1)
    unsubscribe: float = 0.005  # of the delivered


@dataclass(frozen=True)
class Event:
    event_id: str
    campaign_id: str
    customer_key: str
    email: str
    event_type: str
    occurred_at: datetime


def file_deliveries(drop_dir: Path) -> list[Delivery]:
    """The campaigns of the file deliveries under ``drop_dir`` (completed ones: ``_SUCCESS``),
    one per sync and as-of date (its latest delivery), ordered by date and sync."""
    latest: dict[tuple[str, str], tuple[str, Path, dict]] = {}
    for marker in sorted(drop_dir.glob("*/*/*/_SUCCESS")):
        manifest = json.loads((marker.parent / "manifest.json").read_text(encoding="utf-8"))
        key = (manifest["sync"], manifest["as_of_date"])
        order = manifest["delivery"]
        if key not in latest or _delivery_order(order) > _delivery_order(latest[key][0]):
            latest[key] = (order, marker.parent, manifest)
    campaigns = []
    by_date = sorted(latest.items(), key=lambda item: (item[0][1], item[0][0]))
    for (sync, as_of), (_, folder, manifest) in by_date:
        [snapshot] = [entry["name"] for entry in manifest["files"] if entry["name"].startswith("snapshot.")]
        members = tuple((row["customer_key"], row.get("email") or "") for row in _rows(folder / snapshot))
        campaigns.append(Delivery(f"{sync}/{as_of}", sync, manifest["audience"],
                                  date.fromisoformat(as_of), members))
    return campaigns


def _delivery_order(delivery: str) -> tuple[str, int]:
    """``2026-06-30`` before ``2026-06-30.2`` before ``2026-06-30.10``."""
    day, _, number = delivery.partition(".")
    return day, int(number or 1)


def _rows(path: Path) -> Iterable[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix == ".jsonl":
            yield from (json.loads(line) for line in handle if line.strip())
        else:
            yield from csv.DictReader(handle)


def member_stream(seed: int, campaign_id: str, customer_key: str) -> np.random.Generator:
    """The draws of one member of one campaign, whoever else is in it."""
    return np.random.default_rng([seed, zlib.crc32(campaign_id.encode()), zlib.crc32(customer_key.encode())])


def campaign_events(delivery: Delivery, rates: Rates, seed: int, timezone: str,
                    engagement: Mapping[str, float] | None = None) -> list[Event]:
    """What happens to each member of one campaign (see the module's docstring)."""
    sent_at = datetime.combine(delivery.sent_on, SEND_TIME, ZoneInfo(timezone))
    events = []
    for customer_key, email in delivery.members:
        draws = member_stream(seed, delivery.campaign_id, customer_key).random(8)
        factor = (engagement or {}).get(customer_key, 1.0)

        def event(kind: str, at: datetime, key: str = customer_key, mail: str = email) -> Event:
            return Event(f"{delivery.campaign_id}:{key}:{kind}", delivery.campaign_id, key, mail,
                         kind, at)

        events.append(event("send", sent_at))
        if draws[0] < rates.hard_bounce:
            events.append(event("hard_bounce", sent_at + timedelta(minutes=1)))
            continue
        if draws[1] < rates.soft_bounce:
            events.append(event("soft_bounce", sent_at + timedelta(minutes=1)))
            continue
        events.append(event("delivery", sent_at + timedelta(minutes=1)))
        opened_at = sent_at + timedelta(hours=float(draws[3]) * 72)
        opened = draws[2] < min(rates.open * factor, 1.0)
        if opened:
            events.append(event("open", opened_at))
            if draws[4] < min(rates.click * factor, 1.0):
                events.append(event("click", opened_at + timedelta(minutes=float(draws[5]) * 30)))
        if draws[6] < rates.unsubscribe:
            base = opened_at if opened else sent_at + timedelta(hours=float(draws[7]) * 72)
            events.append(event("unsubscribe", base + timedelta(minutes=5)))
    return events


WRITTEN_LIST = ".written-by-the-demo"  # in EVENTS_FOLDER: the files the demo's tool wrote


def forget_written_events(sources_dir: Path) -> None:
    """Delete the event files the demo's tool wrote (its list, then the list itself), never
    another file of the folder: the simulator does so before it generates new people."""
    folder = sources_dir / EVENTS_FOLDER
    listed = folder / WRITTEN_LIST
    if listed.is_file():
        for name in listed.read_text(encoding="utf-8").split():
            (folder / Path(name).name).unlink(missing_ok=True)
        listed.unlink()


def write_events(sources_dir: Path, events: Iterable[Event], until: date, timezone: str) -> list[Path]:
    """Write the events of each local day before ``until`` as ``campaigns/events/<day>.csv``
    (the whole day, sorted by time and id), adding their names to the folder's list of the
    demo's files; the files written."""
    zone = ZoneInfo(timezone)
    by_day: dict[date, list[Event]] = defaultdict(list)
    for event in events:
        day = event.occurred_at.astimezone(zone).date()
        if day < until:
            by_day[day].append(event)
    folder = sources_dir / EVENTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for day, day_events in sorted(by_day.items()):
        path = folder / f"{day.isoformat()}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            for event in sorted(day_events, key=lambda e: (e.occurred_at, e.event_id)):
                writer.writerow((event.event_id, event.campaign_id, event.customer_key, event.email,
                                 event.event_type, event.occurred_at.astimezone(zone).isoformat()))
        written.append(path)
    listed = folder / WRITTEN_LIST
    names = set(listed.read_text(encoding="utf-8").split()) if listed.is_file() else set()
    listed.write_text("".join(f"{name}\n" for name in sorted(names | {p.name for p in written})),
                      encoding="utf-8")
    return written


def export(sources_dir: Path, campaigns: Iterable[tuple[Delivery, Rates]], seed: int, timezone: str,
           until: date, engagement: Mapping[str, float] | None = None) -> list[Path]:
    """The tool's event export of every campaign it has sent, each with its rates, for the days
    before ``until``: always the whole export again (a day's file holds every campaign's events
    of that day), so exporting twice writes the same files."""
    events = [event for delivery, rates in campaigns
              for event in campaign_events(delivery, rates, seed, timezone, engagement)]
    return write_events(sources_dir, events, until, timezone)
