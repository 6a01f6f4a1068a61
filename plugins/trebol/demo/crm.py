"""The CRM: contacts (daily FULL snapshot of every contact known at the end of the day) and service
cases (daily incremental export of the cases opened or changed that day).

A person enters the CRM at their first purchase; a few get a second, duplicate contact later. The
CRM is older than the other systems: it often drops accents and second surnames. Consent is given or
refused when the contact is created; some consenting people unsubscribe later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trebol.demo.behaviour import HOUR, Sales
from trebol.demo.clock import Clock
from trebol.demo.faults import FaultLog, plan_faults
from trebol.demo.files import CsvTable, csv_line, write_csv_family, write_day_file
from trebol.demo.loyalty import typo
from trebol.demo.people import People
from trebol.demo.pos import money
from trebol.demo.reference import (
    PHONE_STYLES,
    PLACEHOLDER_EMAIL,
    PLACEHOLDER_PHONES,
    ascii_fold,
    format_phone,
)

CONTACTS = CsvTable(
    "crm", "crm/contacts",
    ("contact_id", "first_name", "last_name", "email", "phone", "postal_code", "marketing_consent",
     "consent_updated_at", "unsubscribed_at", "updated_at"),
    ("duplicate", "future_date", "missing_key", "malformed_line", "latin1_bytes"),
    key=0, dates=(7, 8, 9), name=2)
CASES = CsvTable(
    "crm", "crm/cases",
    ("case_id", "contact_id", "opened_at", "channel", "reason", "status", "resolved_at",
     "compensation_amount", "updated_at"),
    ("duplicate", "absurd_amount", "negative_amount", "future_date", "missing_key", "malformed_line"),
    key=0, dates=(2, 6, 8), amount=7)
DUPLICATE_CONTACT_SHARE = 0.03
UNSUBSCRIBE_SHARE = 0.05
STORE_CASE = (("store", "phone", "email"), (0.5, 0.35, 0.15),
              ("product_quality", "staff", "billing"), (0.45, 0.25, 0.3))
ONLINE_CASE = (("email", "chat", "phone"), (0.35, 0.3, 0.35),
               ("late_delivery", "damaged_item", "billing", "product_quality"), (0.35, 0.25, 0.15, 0.25))
COMPENSATION = {"late_delivery": (5, 15), "damaged_item": (10, 40), "billing": (5, 30),
                "product_quality": (5, 25), "staff": (5, 20)}


@dataclass
class Crm:
    """Contacts in id order, with their state changes; per person the primary contact and its fate."""

    contact_id: list[str] = field(default_factory=list)
    contact_person: list[int] = field(default_factory=list)
    created_ts: list[int] = field(default_factory=list)
    # per contact: [(instant, fields), ...] in time order; instants as text filled in when written
    states: list[list[tuple[int, list[str]]]] = field(default_factory=list)
    primary: dict[int, int] = field(default_factory=dict)  # person -> contact index
    duplicate: dict[int, int] = field(default_factory=dict)  # person -> second contact index
    unsubscribed_ts: dict[int, int] = field(default_factory=dict)  # person -> instant
    consent_at_end: dict[int, bool] = field(default_factory=dict)  # person -> primary contact's consent
    case_count: dict[int, int] = field(default_factory=dict)
    compensation: dict[int, int] = field(default_factory=dict)  # person -> cents


def _contact_fields(people: People, person: int, rng: np.random.Generator) -> list[str]:
    first, last = people.first_name[person], people.last_name[person]
    if rng.random() < 0.25:
        last = last.split(" ")[0]
    if rng.random() < 0.4:
        first, last = ascii_fold(first), ascii_fold(last)
    if rng.random() < 0.03:
        first, last = (typo(first, rng), last) if rng.random() < 0.5 else (first, typo(last, rng))
    r = rng.random()
    email = "" if r < 0.06 else PLACEHOLDER_EMAIL if r < 0.09 else people.email[person]
    if email and email != PLACEHOLDER_EMAIL and rng.random() < 0.1:
        email = email.upper() if rng.random() < 0.3 else email.capitalize()
    r = rng.random()
    phone = (PLACEHOLDER_PHONES[0] if r < 0.03 else PLACEHOLDER_PHONES[1] if r < 0.05 else "" if r < 0.1
             else format_phone(people.phone[person], int(rng.integers(0, PHONE_STYLES))))
    postal = "" if rng.random() < 0.02 else people.postal_code[person]
    return [first, last, email, phone, postal]


def build_contacts(people: People, sales: Sales, clock: Clock, rng: np.random.Generator) -> Crm:
    """Contacts from each CRM person's first purchase on, their duplicates, consent and later edits."""
    n = people.n
    persons, first = np.unique(sales.person, return_index=True)
    first_ts = np.zeros(n, dtype=np.int64)
    first_ts[persons] = sales.ts[first]
    created = np.minimum(first_ts + 30 + (rng.random(n) * 870).astype(np.int64), clock.end_ts - 1)
    created_day = clock.local_day(created)
    room = np.maximum(clock.days - 1 - created_day, 0)
    dup_day = created_day + 1 + (rng.random(n) * room).astype(np.int64)
    dup_ts = clock.at(dup_day, 9 * HOUR + rng.random(n) * 11 * HOUR)
    has_dup = people.crm & (rng.random(n) < DUPLICATE_CONTACT_SHARE) & (dup_day < clock.days)
    unsub_day = created_day + 1 + (rng.random(n) * room).astype(np.int64)
    unsub_ts = clock.at(unsub_day, 10 * HOUR + rng.random(n) * 12 * HOUR)
    unsubscribes = (people.crm & people.consent & (rng.random(n) < UNSUBSCRIBE_SHARE)
                    & (unsub_day < clock.days))

    crm_people = np.flatnonzero(people.crm)
    dups = np.flatnonzero(has_dup)
    when = np.concatenate((created[crm_people], dup_ts[dups]))
    who = np.concatenate((crm_people, dups))
    is_dup = np.concatenate((np.zeros(crm_people.size, bool), np.ones(dups.size, bool)))
    order = np.lexsort((is_dup, who, when))
    crm = Crm()
    for number, o in enumerate(order.tolist()):
        person, moment, duplicate = int(who[o]), int(when[o]), bool(is_dup[o])
        crm.contact_id.append(f"C{number + 1:07d}")
        crm.contact_person.append(person)
        crm.created_ts.append(moment)
        (crm.duplicate if duplicate else crm.primary)[person] = number
        fields = _contact_fields(people, person, rng)
        consent = bool(people.consent[person]) if not duplicate else bool(rng.random() < 0.5)
        states = [(moment, [*fields, "true" if consent else "false", str(moment), "", str(moment)])]
        edits: list[tuple[int, str]] = []
        if not duplicate and unsubscribes[person]:
            edits.append((int(unsub_ts[person]), "unsubscribe"))
            crm.unsubscribed_ts[person] = int(unsub_ts[person])
        incomplete = fields[2] in ("", PLACEHOLDER_EMAIL) or fields[3] in ("", *PLACEHOLDER_PHONES)
        if incomplete and rng.random() < 0.4:
            day = int(clock.local_day(np.array([moment]))[0]) + 1 + int(rng.integers(0, 120))
            if day < clock.days:
                edits.append((int(clock.at(np.array([day]), np.array([10 * HOUR]))[0]), "details"))
        for at, what in sorted(edits):
            row = list(states[-1][1])
            if what == "unsubscribe":
                row[5:9] = ["false", str(at), str(at), str(at)]
            else:
                row[2] = people.email[person] if row[2] in ("", PLACEHOLDER_EMAIL) else row[2]
                row[3] = (format_phone(people.phone[person], int(rng.integers(0, PHONE_STYLES)))
                          if row[3] in ("", *PLACEHOLDER_PHONES) else row[3])
                row[8] = str(at)
            states.append((at, row))
        crm.states.append(states)
        if not duplicate:
            crm.consent_at_end[person] = states[-1][1][5] == "true"
    return crm


def write_contacts(out_dir: Path, crm: Crm, clock: Clock, rng: np.random.Generator, fault_rate: float,
                   log: FaultLog, retention_days: int | None = None) -> int:
    """One full snapshot per day of every contact created by its end, in contact id order; with
    ``retention_days``, only the newest days' snapshots are written (a drop folder that keeps a
    window: the older ones were deleted), each the very file the full folder has for its day."""
    instants = sorted({int(t) for states in crm.states for at, row in states for t in (at, *_times(row))})
    text = dict(zip(instants, clock.stamps(np.array(instants, dtype=np.int64)), strict=True))
    changes: list[list[tuple[int, list[str]]]] = [[] for _ in range(clock.days)]
    all_at = np.array([at for states in crm.states for at, _ in states], dtype=np.int64)
    days = iter(clock.local_day(all_at).tolist())
    for index, states in enumerate(crm.states):
        for _, row in states:
            stamped = [crm.contact_id[index], *row[:6], *(text[int(t)] if t else "" for t in row[6:9])]
            changes[next(days)].append((index, stamped))
    created_day = clock.local_day(np.array(crm.created_ts, dtype=np.int64))
    existing = np.searchsorted(created_day, np.arange(clock.days), side="right").tolist()
    plan = plan_faults(rng, existing, CONTACTS.kinds, fault_rate)
    fields: list[list[str]] = [[] for _ in crm.contact_id]
    lines: list[str] = ["" for _ in crm.contact_id]
    written = 0
    first_kept = 0 if retention_days is None else max(clock.days - retention_days, 0)
    for day in range(clock.days):
        for index, row in changes[day]:
            fields[index] = row
            lines[index] = csv_line(row)
        if day < first_kept:  # not kept: its faults still draw what they would have drawn
            for row, kind in plan[day]:
                CONTACTS.fault(fields[row], kind, rng)
            continue
        location = f"{CONTACTS.folder}/{clock.day_names[day]}.csv"
        written += write_day_file(out_dir / location, CONTACTS.header, lines[: existing[day]], plan[day],
                                  lambda row, kind: CONTACTS.fault(fields[row], kind, rng), log, "crm",
                                  location)
    return written


def _times(row: list[str]) -> list[int]:
    return [int(t) for t in row[6:9] if t]


def write_cases(out_dir: Path, people: People, sales: Sales, crm: Crm, clock: Clock, rng: np.random.Generator,
                fault_rate: float, log: FaultLog) -> int:
    """Service cases after some purchases: a row when opened, another when resolved."""
    size = sales.size
    heavy = people.heavy_returner[sales.person]
    in_crm = people.crm[sales.person]
    open_day = clock.local_day(sales.ts) + rng.integers(1, 11, size)
    open_ts = clock.at(open_day, 9 * HOUR + rng.random(size) * 11 * HOUR)
    resolve_ts = clock.at(open_day + rng.integers(1, 15, size), 9 * HOUR + rng.random(size) * 11 * HOUR)
    has_case = in_crm & (rng.random(size) < np.where(heavy, 0.12, 0.025)) & (open_ts < clock.end_ts)
    rows: list[tuple[int, int, list[str]]] = []
    cases = np.flatnonzero(has_case)
    cases = cases[np.lexsort((cases, open_ts[cases]))]
    for number, i in enumerate(cases.tolist(), 1):
        person = int(sales.person[i])
        contact = crm.primary[person]
        second = crm.duplicate.get(person)
        if second is not None and crm.created_ts[second] <= open_ts[i] and rng.random() < 0.5:
            contact = second
        channels, channel_p, reasons, reason_p = ONLINE_CASE if sales.online[i] else STORE_CASE
        channel = channels[int(rng.choice(len(channels), p=channel_p))]
        reason = reasons[int(rng.choice(len(reasons), p=reason_p))]
        low, high = COMPENSATION[reason]
        cents = int(rng.integers(low, high + 1)) * 100 if rng.random() < 0.35 else 0
        case_id = f"K{number:08d}"
        opened = int(open_ts[i])
        rows.append((opened, number, [case_id, crm.contact_id[contact], str(opened), channel, reason, "open",
                                      "", "0.00", str(opened)]))
        crm.case_count[person] = crm.case_count.get(person, 0) + 1
        if resolve_ts[i] < clock.end_ts:
            done = int(resolve_ts[i])
            rows.append((done, number, [case_id, crm.contact_id[contact], str(opened), channel, reason,
                                        "resolved", str(done), money([cents])[0], str(done)]))
            crm.compensation[person] = crm.compensation.get(person, 0) + cents
    rows.sort(key=lambda r: (r[0], r[1]))
    instants = sorted({int(r[2][c]) for r in rows for c in (2, 6, 8) if r[2][c]})
    text = dict(zip(instants, clock.stamps(np.array(instants, dtype=np.int64)), strict=True))
    by_day: list[list[list[str]]] = [[] for _ in range(clock.days)]
    days = clock.local_day(np.array([r[0] for r in rows], dtype=np.int64)).tolist()
    for (_, _, row), day in zip(rows, days, strict=True):
        for c in (2, 6, 8):
            row[c] = text[int(row[c])] if row[c] else ""
        by_day[day].append(row)
    return write_csv_family(out_dir, CASES, clock.day_names, by_day, rng, fault_rate, log)
