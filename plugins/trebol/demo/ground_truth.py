"""The ground truth the pipeline never reads but its tests do: who everyone really is
(``people.csv``), which source record belongs to whom (``identities.csv``), and every injected fault
(``faults.csv``, written by the fault log).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from trebol.demo.behaviour import Sales
from trebol.demo.clock import Clock
from trebol.demo.crm import Crm
from trebol.demo.ecom import Ecom
from trebol.demo.loyalty import Loyalty
from trebol.demo.people import CHANNELS, People
from trebol.demo.pos import PosData, money

PEOPLE_COLUMNS = (
    "person_id", "first_name", "last_name", "email", "phone", "postal_code", "shares_email_with",
    "channel_preference", "marketing_consent", "unsubscribed_at", "is_loyalty_member", "enrolled_on", "tier",
    "has_crm_contact", "purchase_rate", "dropout_probability", "is_one_off", "mean_spend",
    "is_heavy_returner", "is_discount_hunter", "alive_at_end", "first_purchase_at", "last_purchase_at",
    "purchases", "repeat_purchases", "store_purchases", "online_purchases", "spend_amount", "discount_amount",
    "returned_amount", "service_cases", "compensation_amount")
IDENTITY_COLUMNS = ("source", "source_id", "person_id")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _write(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_people(path: Path, people: People, sales: Sales, pos: PosData, loyalty: Loyalty, crm: Crm,
                 clock: Clock) -> None:
    """One row per person: identity, latent behaviour and what they actually did."""
    n = people.n
    lines_total = sales.totals()
    kept = sales.cancel_ts < 0  # cancelled orders bring nothing in
    count = np.bincount(sales.person, minlength=n)
    online = np.bincount(sales.person, weights=sales.online, minlength=n).astype(np.int64)
    spend = np.bincount(sales.person, weights=np.where(kept, lines_total, 0), minlength=n).astype(np.int64)
    per_sale_discount = np.bincount(sales.line_sale, weights=sales.discount, minlength=sales.size)
    discount = np.bincount(sales.person, weights=np.where(kept, per_sale_discount, 0), minlength=n)
    discount = discount.astype(np.int64)
    refunded = np.zeros(sales.size, dtype=np.int64)
    for i, cents in pos.return_total.items():
        refunded[i] = cents
    web_back = sales.online & (sales.return_ts >= 0)
    refunded[web_back] = lines_total[web_back]
    returned = np.bincount(sales.person, weights=refunded, minlength=n).astype(np.int64)
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.zeros(n, dtype=np.int64)
    np.minimum.at(first, sales.person, sales.ts)  # everyone buys at least once
    np.maximum.at(last, sales.person, sales.ts)
    stamps = clock.stamps(np.concatenate((first, last)))
    unsub = {p: clock.stamp(t) for p, t in crm.unsubscribed_ts.items()}
    rows = []
    for i in range(n):
        member = i in loyalty.card_of_person
        enrolled = clock.day_names[int(clock.local_day(np.array([loyalty.enrol_ts[i]]))[0])] if member else ""
        rows.append([
            people.person_id[i], people.first_name[i], people.last_name[i], people.email[i], people.phone[i],
            people.postal_code[i],
            people.person_id[people.shares_email_with[i]] if people.shares_email_with[i] >= 0 else "",
            CHANNELS[people.channel[i]], _flag(crm.consent_at_end.get(i, False)), unsub.get(i, ""),
            _flag(member), enrolled, loyalty.final_tier.get(i, ""), _flag(i in crm.primary),
            f"{people.purchase_rate[i]:.6f}", f"{people.dropout_probability[i]:.6f}",
            _flag(people.one_off[i]),
            f"{people.mean_spend[i]:.2f}", _flag(people.heavy_returner[i]), _flag(people.discount_hunter[i]),
            _flag(sales.alive[i]), stamps[i], stamps[n + i], str(count[i]), str(max(count[i] - 1, 0)),
            str(count[i] - online[i]), str(online[i]), *money([spend[i], discount[i], returned[i]]),
            str(crm.case_count.get(i, 0)), money([crm.compensation.get(i, 0)])[0],
        ])
    _write(path, PEOPLE_COLUMNS, rows)


def write_identities(path: Path, people: People, loyalty: Loyalty, ecom: Ecom, crm: Crm) -> None:
    """Every loyalty card, ecom account and CRM contact, once, with the person behind it."""
    rows = [["loyalty", card, people.person_id[p]] for p, card in
            sorted(loyalty.card_of_person.items(), key=lambda item: item[1])]
    rows += [["ecom", a, people.person_id[p]]
             for a, p in zip(ecom.account_id, ecom.account_person, strict=True)]
    rows += [["crm", c, people.person_id[p]] for c, p in zip(crm.contact_id, crm.contact_person, strict=True)]
    _write(path, IDENTITY_COLUMNS, rows)
