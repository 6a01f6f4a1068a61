"""The loyalty club: members (enrolment, contact details, tier) and the points ledger.

``loyalty/members/YYYY-MM-DD.csv`` lists the members enrolled or changed that day (full record);
``loyalty/points/YYYY-MM-DD.csv`` the ledger entries of that day. Points are signed: earn > 0 (one
per whole euro of a carded store ticket or a member's shipped online order), redeem < 0, expire < 0
(the whole balance after 12 months without earning or redeeming), adjust either way (returns take
their points back; rare manual goodwill). Tiers are re-evaluated on the first of each month from
the points of the past 12 months.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trebol.demo.behaviour import HOUR, Sales
from trebol.demo.clock import Clock
from trebol.demo.ecom import Ecom
from trebol.demo.faults import FaultLog
from trebol.demo.files import CsvTable, csv_line, write_csv_family
from trebol.demo.people import People
from trebol.demo.pos import PosData
from trebol.demo.reference import (
    PHONE_STYLES,
    PLACEHOLDER_EMAIL,
    PLACEHOLDER_PHONES,
    ascii_fold,
    format_phone,
)

MEMBERS = CsvTable(
    "loyalty", "loyalty/members",
    ("card_number", "first_name", "last_name", "email", "phone", "postal_code", "enrolled_on", "tier",
     "updated_at"),
    ("duplicate", "future_date", "missing_key", "malformed_line", "latin1_bytes"),
    key=0, dates=(6, 8), name=2)
POINTS = CsvTable(
    "loyalty", "loyalty/points",
    ("entry_id", "card_number", "entry_type", "points", "reference_id", "occurred_at"),
    ("duplicate", "absurd_amount", "negative_amount", "future_date", "missing_key", "malformed_line"),
    key=0, dates=(5,), amount=3, absurd="999999", on_negative=((2, "earn"),))
EXTRA_COLUMN = "source_channel"
MISSING_COLUMN = "reference_id"
TIERS = ("bronze", "silver", "gold")
SILVER_POINTS, GOLD_POINTS = 150, 500
REDEEM_POINTS = 500
YEAR = 365 * 86400
Row = tuple[int, int, list[str]]  # (instant, tie-break, fields)


@dataclass
class Loyalty:
    """Members and what they did: enrolment instants, cards, final tiers."""

    enrol_ts: np.ndarray  # per person, -1 for non-members
    card_of_person: dict[int, str] = field(default_factory=dict)
    final_tier: dict[int, str] = field(default_factory=dict)


def enrol(people: People, sales: Sales, clock: Clock, rng: np.random.Generator) -> Loyalty:
    """Members enrol at their first purchase (most) or on a later day; cards numbered by enrolment."""
    n = people.n
    persons, first = np.unique(sales.person, return_index=True)
    first_ts = np.zeros(n, dtype=np.int64)
    first_ts[persons] = sales.ts[first]
    first_day = clock.local_day(first_ts)
    later_day = first_day + 1 + (rng.random(n) * np.maximum(clock.days - 1 - first_day, 0)).astype(np.int64)
    later = clock.at(later_day, 10 * HOUR + rng.random(n) * 10 * HOUR)
    at_first = (rng.random(n) < 0.65) | (first_day >= clock.days - 1)
    enrol_ts = np.where(at_first, first_ts - 60 - (rng.random(n) * 600).astype(np.int64), later)
    loyalty = Loyalty(np.where(people.member, enrol_ts, -1))
    members = np.flatnonzero(people.member)
    members = members[np.lexsort((members, loyalty.enrol_ts[members]))]
    for number, person in enumerate(members.tolist(), 1):
        loyalty.card_of_person[person] = f"99{number:08d}"
    return loyalty


def _member_fields(people: People, person: int, card: str, rng: np.random.Generator) -> list[str]:
    first, last = people.first_name[person], people.last_name[person]
    if rng.random() < 0.1:
        last = last.split(" ")[0]
    if rng.random() < 0.05:
        first, last = ascii_fold(first), ascii_fold(last)
    if rng.random() < 0.03:
        first, last = (typo(first, rng), last) if rng.random() < 0.5 else (first, typo(last, rng))
    r = rng.random()
    email = "" if r < 0.05 else PLACEHOLDER_EMAIL if r < 0.08 else people.email[person]
    if email and email != PLACEHOLDER_EMAIL and rng.random() < 0.08:
        email = email.capitalize()
    r = rng.random()
    phone = (PLACEHOLDER_PHONES[0] if r < 0.03 else PLACEHOLDER_PHONES[1] if r < 0.05 else "" if r < 0.09
             else format_phone(people.phone[person], int(rng.integers(0, PHONE_STYLES))))
    postal = "" if rng.random() < 0.03 else people.postal_code[person]
    return [card, first, last, email, phone, postal]


def typo(word: str, rng: np.random.Generator) -> str:
    """One letter missing or two neighbours swapped (never the first letter)."""
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))
    if rng.random() < 0.5:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def _events(sales: Sales, pos: PosData, ecom: Ecom, loyalty: Loyalty, totals: np.ndarray,
            rng: np.random.Generator, clock: Clock) -> dict[int, list[tuple[int, int, str, int, str]]]:
    """Per member: (instant, order, type, points, reference) of earns, return adjusts and goodwill."""
    events: dict[int, list[tuple[int, int, str, int, str]]] = {}
    enrol_ts = loyalty.enrol_ts
    for i in np.flatnonzero(sales.card).tolist():
        person = int(sales.person[i])
        points = int(totals[i]) // 100
        if points > 0:
            events.setdefault(person, []).append((int(sales.ts[i]), 0, "earn", points, pos.sale_ticket[i]))
        if i in pos.return_ticket:
            back = pos.return_total[i] // 100
            if back > 0:
                events.setdefault(person, []).append((int(sales.return_ts[i]), 0, "adjust", -back,
                                                      pos.return_ticket[i]))
    for i, order_id in ecom.order_id.items():
        person = int(sales.person[i])
        if enrol_ts[person] < 0 or sales.ts[i] < enrol_ts[person] or sales.ship_ts[i] < 0:
            continue
        points = int(totals[i]) // 100
        if points <= 0:
            continue
        events.setdefault(person, []).append((int(sales.ship_ts[i]), 0, "earn", points, order_id))
        if sales.return_ts[i] >= 0:
            events.setdefault(person, []).append((int(sales.return_ts[i]), 0, "adjust", -points, order_id))
    for person in loyalty.card_of_person:
        if rng.random() < 0.02:  # goodwill from the service desk
            start = clock.local_day(np.array([enrol_ts[person]]))[0] + 1
            if start < clock.days:
                day = int(rng.integers(start, clock.days))
                when = int(clock.at(np.array([day]), np.array([12 * HOUR]))[0])
                points = int(rng.choice([20, 50, 100]))
                events.setdefault(person, []).append((when, 1, "adjust", points, ""))
    return events


def _ledger(card: str, enrolled: int, events: list[tuple[int, int, str, int, str]], clock: Clock,
            rng: np.random.Generator) -> tuple[list[tuple[int, list[str]]], list[int], list[int]]:
    """One member's ledger entries, plus the (instant, points) that count towards their tier."""
    entries: list[tuple[int, list[str]]] = []
    tiered_ts: list[int] = []
    tiered_pts: list[int] = []
    balance, last_active = 0, enrolled

    def expire_until(moment: int) -> int:
        if balance > 0 and last_active + YEAR <= moment:
            day = int(clock.local_day(np.array([last_active + YEAR]))[0])
            if day < clock.days:
                when = int(clock.at(np.array([day]), np.array([3 * HOUR]))[0])
                entries.append((when, [card, "expire", str(-balance), ""]))
                return 0
        return balance

    for when, _, kind, points, reference in events:
        balance = expire_until(when)
        entries.append((when, [card, kind, str(points), reference]))
        balance += points
        if kind == "earn" or reference:  # earns and their reversals count for the tier
            tiered_ts.append(when)
            tiered_pts.append(points)
        if kind == "earn":
            last_active = when
            if balance >= REDEEM_POINTS and when + 1 < clock.end_ts and rng.random() < 0.3:
                entries.append((when + 1, [card, "redeem", str(-REDEEM_POINTS), reference]))
                balance -= REDEEM_POINTS
    expire_until(clock.end_ts)
    return entries, tiered_ts, tiered_pts


def build_loyalty(people: People, sales: Sales, pos: PosData, ecom: Ecom, loyalty: Loyalty, clock: Clock,
                  rng: np.random.Generator) -> tuple[list[Row], list[Row]]:
    """Member rows and ledger rows as (instant, tie-break, fields), ledger without entry ids yet."""
    totals = sales.totals()
    events = _events(sales, pos, ecom, loyalty, totals, rng, clock)
    first_of_month = [d for d in range(1, clock.days) if clock.day_names[d].endswith("-01")]
    evaluations = clock.at(np.array(first_of_month, dtype=np.int64), np.full(len(first_of_month), 2 * HOUR))
    ledger: list[Row] = []
    members: list[Row] = []
    for person, card in loyalty.card_of_person.items():
        enrolled = int(loyalty.enrol_ts[person])
        if enrolled >= clock.end_ts:
            continue
        entries, tiered_ts, tiered_pts = _ledger(card, enrolled, sorted(events.get(person, [])), clock, rng)
        ledger.extend((when, person, fields) for when, fields in entries)

        # member rows: enrolment, monthly tier changes, a missing email filled in later
        fields = _member_fields(people, person, card, rng)
        enrolled_on = clock.day_names[int(clock.local_day(np.array([enrolled]))[0])]
        changes: list[tuple[int, str, str]] = [(enrolled, "tier", "bronze")]
        cum = np.concatenate(([0], np.cumsum(tiered_pts)))
        stamps = np.array(tiered_ts, dtype=np.int64)
        tier = "bronze"
        for moment in evaluations[evaluations > enrolled].tolist():
            recent = (cum[np.searchsorted(stamps, moment, "right")]
                      - cum[np.searchsorted(stamps, moment - YEAR, "right")])
            new = "gold" if recent >= GOLD_POINTS else "silver" if recent >= SILVER_POINTS else "bronze"
            if new != tier:
                changes.append((moment, "tier", new))
                tier = new
        loyalty.final_tier[person] = tier
        if fields[3] in ("", PLACEHOLDER_EMAIL) and rng.random() < 0.3:
            start = int(clock.local_day(np.array([enrolled]))[0]) + 1
            if start < clock.days:
                day = int(rng.integers(start, clock.days))
                changes.append((int(clock.at(np.array([day]), np.array([11 * HOUR]))[0]), "email",
                                people.email[person]))
        changes.sort(key=lambda c: c[0])
        state = {"tier": "bronze", "email": fields[3]}
        for moment, what, value in changes:
            state[what] = value
            row = [*fields[:3], state["email"], *fields[4:6], enrolled_on, state["tier"], str(moment)]
            members.append((moment, person, row))
    return members, ledger


def write_loyalty(out_dir: Path, members: list[Row], ledger: list[Row],
                  clock: Clock, rng: np.random.Generator, fault_rate: float, log: FaultLog) -> dict[str, int]:
    """Write the members and points day files (instants become local stamps here)."""
    members.sort(key=lambda m: (m[0], m[1]))
    member_when = np.array([m[0] for m in members], dtype=np.int64)
    member_days = clock.local_day(member_when).tolist()
    member_rows: list[list[list[str]]] = [[] for _ in range(clock.days)]
    for (_, _, row), day, stamp in zip(members, member_days, clock.stamps(member_when), strict=True):
        row[-1] = stamp
        member_rows[day].append(row)

    ledger.sort(key=lambda e: (e[0], e[1]))
    when = np.array([e[0] for e in ledger], dtype=np.int64)
    width = max(9, len(str(len(ledger))))
    point_rows: list[list[list[str]]] = [[] for _ in range(clock.days)]
    for number, ((_, _, fields), day, stamp) in enumerate(
            zip(ledger, clock.local_day(when).tolist(), clock.stamps(when), strict=True), 1):
        point_rows[day].append([f"L{number:0{width}d}", *fields, stamp])

    counts = {"loyalty_members": write_csv_family(out_dir, MEMBERS, clock.day_names, member_rows, rng,
                                                  fault_rate, log)}
    drift: dict[int, str] = {}
    busy = [d for d in range(clock.days) if point_rows[d]]
    if fault_rate > 0 and len(busy) >= 2:
        extra, missing = rng.choice(np.array(busy), 2, replace=False).tolist()
        drift = {extra: "extra_column", missing: "missing_column"}
    written = write_csv_family(out_dir, POINTS, clock.day_names, point_rows, rng, fault_rate, log,
                               skip_days=frozenset(drift))
    for day, kind in drift.items():
        location = f"{POINTS.folder}/{clock.day_names[day]}.csv"
        columns = list(POINTS.columns)
        rows = [list(r) for r in point_rows[day]]
        if kind == "extra_column":
            columns.append(EXTRA_COLUMN)
            for r in rows:
                r.append("store" if r[4].startswith("T") else "web" if r[4].startswith("E") else "")
        else:
            drop = columns.index(MISSING_COLUMN)
            del columns[drop]
            for r in rows:
                del r[drop]
        path = out_dir / location
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((csv_line(columns) + "".join(csv_line(r) for r in rows)).encode("utf-8"))
        log.add("loyalty", location, None, "", kind)
        written += len(rows)
    counts["loyalty_points"] = written
    return counts
