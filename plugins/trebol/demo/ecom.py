"""The e-commerce shop: customer accounts and the daily JSONL export of order versions.

``ecom/orders/YYYY-MM-DD.jsonl`` holds one JSON object per line for every order version whose
``updated_at`` falls on that day: paid (version 1), then cancelled or shipped, then perhaps returned.
Account emails are typed by people: case and surrounding whitespace vary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trebol.demo.behaviour import Sales
from trebol.demo.clock import Clock
from trebol.demo.faults import FaultLog, in_future_year, plan_faults
from trebol.demo.files import write_day_file
from trebol.demo.people import People
from trebol.demo.pos import money
from trebol.demo.reference import EMAIL_DOMAINS, STORES, Catalogue

ECOM_FAULT_KINDS = ("duplicate", "absurd_amount", "negative_amount", "future_date", "missing_key",
                    "invalid_json")
SECOND_ACCOUNT_SHARE = 0.04
Version = tuple[int, int, int, str]  # (order position, version, status index, updated_at text)


@dataclass
class Ecom:
    """Accounts and orders: which occasion is which order, under which account."""

    account_id: list[str] = field(default_factory=list)
    account_person: list[int] = field(default_factory=list)
    account_email: list[str] = field(default_factory=list)
    order_id: dict[int, str] = field(default_factory=dict)  # occasion -> order id
    order_account: dict[int, int] = field(default_factory=dict)  # occasion -> account index


def noisy_email(email: str, rng: np.random.Generator) -> str:
    """The same address as someone might type it: other case, stray spaces."""
    r = rng.random()
    if r < 0.12:
        email = email.capitalize()
    elif r < 0.18:
        email = email.upper()
    elif r < 0.24:
        local, _, domain = email.partition("@")
        email = f"{local}@{domain.capitalize()}"
    r = rng.random()
    if r < 0.05:
        email = " " + email
    elif r < 0.1:
        email = email + " "
    return email


def make_accounts(people: People, sales: Sales, rng: np.random.Generator) -> Ecom:
    """An account per online buyer from their first order; a few open a second account later."""
    ecom = Ecom()
    online = np.flatnonzero(sales.online)
    buyers, counts = np.unique(sales.person[online], return_counts=True)
    second_from: dict[int, int] = {}
    for person, count in zip(buyers.tolist(), counts.tolist(), strict=True):
        if count >= 2 and rng.random() < SECOND_ACCOUNT_SHARE:
            second_from[person] = int(rng.integers(1, count))
    seen: dict[int, int] = {}
    current: dict[int, int] = {}
    width = max(7, len(str(online.size)))
    for number, occasion in enumerate(online.tolist()):
        person = int(sales.person[occasion])
        nth = seen.get(person, 0)
        seen[person] = nth + 1
        if nth == 0 or second_from.get(person) == nth:
            email = people.email[person]
            if nth and rng.random() < 0.5:  # the second account under another address
                local, _, domain = email.partition("@")
                others = [d for d in EMAIL_DOMAINS if d != domain]
                email = f"{local}@{others[int(rng.integers(0, len(others)))]}"
            current[person] = len(ecom.account_id)
            ecom.account_id.append(f"A{len(ecom.account_id) + 1:07d}")
            ecom.account_person.append(person)
            ecom.account_email.append(noisy_email(email, rng))
        ecom.order_id[occasion] = f"E{number + 1:0{width}d}"
        ecom.order_account[occasion] = current[person]
    return ecom


def _lines_json(sales: Sales, catalogue: Catalogue, occasion: int, price_cents: int | None = None,
                negative: bool = False) -> str:
    parts = []
    for j in range(int(sales.line_start[occasion]), int(sales.line_start[occasion + 1])):
        price = int(sales.price[j]) if price_cents is None or j != sales.line_start[occasion] else price_cents
        if negative and j == sales.line_start[occasion]:
            price = -price
        unit, discount = money([price, int(sales.discount[j])])
        sku = catalogue.product_id[sales.product[j]]
        parts.append(f'{{"line_number": {sales.line_number[j]}, "sku": "{sku}", "quantity": {sales.qty[j]}, '
                     f'"unit_price": {unit}, "discount": {discount}}}')
    return "[" + ", ".join(parts) + "]"


def _order_json(order_id: str | None, version: int, status: str, account: str, email: str, ordered: str,
                updated: str, postal: str, lines: str) -> str:
    head = "" if order_id is None else f'"order_id": "{order_id}", '
    return ("{" + head + f'"version": {version}, "status": "{status}", "account_id": "{account}", '
            f'"email": {json.dumps(email, ensure_ascii=False)}, "ordered_at": "{ordered}", '
            f'"updated_at": "{updated}", "shipping_postal_code": "{postal}", "lines": {lines}' + "}\n")


def write_orders(out_dir: Path, people: People, sales: Sales, ecom: Ecom, catalogue: Catalogue, clock: Clock,
                 rng: np.random.Generator, fault_rate: float, log: FaultLog) -> int:
    """Write ``ecom/orders/<day>.jsonl`` for every history day; returns the lines written."""
    occasions = np.array(sorted(ecom.order_id), dtype=np.int64)
    postal = []
    for occasion in occasions.tolist():
        if rng.random() < 0.05:  # a gift or an office address
            store = STORES[int(rng.integers(0, len(STORES)))]
            postal.append(f"{int(rng.integers(store.postal_low, store.postal_high + 1)):05d}")
        else:
            postal.append(people.postal_code[int(sales.person[occasion])])
    # versions: (occasion position, version, status, instant)
    pos = np.arange(occasions.size)
    paid = (pos, np.ones_like(pos), np.zeros_like(pos), sales.ts[occasions])
    cancelled = sales.cancel_ts[occasions] >= 0
    shipped = sales.ship_ts[occasions] >= 0
    back = sales.return_ts[occasions] >= 0
    second = (pos[cancelled | shipped], np.full(int((cancelled | shipped).sum()), 2),
              np.where(cancelled, 2, 1)[cancelled | shipped],
              np.where(cancelled, sales.cancel_ts[occasions], sales.ship_ts[occasions])[cancelled | shipped])
    third = (pos[back], np.full(int(back.sum()), 3), np.full(int(back.sum()), 3),
             sales.return_ts[occasions][back])
    which, version, status, when = (np.concatenate(parts) for parts in zip(paid, second, third, strict=True))
    order = np.lexsort((version, which, when))
    which, version, status, when = which[order], version[order], status[order], when[order]
    day = clock.local_day(when)
    updated_text = clock.stamps(when)
    ordered_text = clock.stamps(sales.ts[occasions])
    statuses = ("paid", "shipped", "cancelled", "returned")
    lines_json = {}
    rows: list[list[Version]] = [[] for _ in range(clock.days)]
    for w, v, s, d, u in zip(which.tolist(), version.tolist(), status.tolist(), day.tolist(), updated_text,
                             strict=True):
        rows[d].append((w, v, s, u))

    def render(row: Version, kind: str = "") -> str:
        w, v, s, u = row
        occasion = int(occasions[w])
        account = ecom.order_account[occasion]
        ordered = ordered_text[w]
        if kind == "future_date":
            ordered, u = in_future_year(ordered), in_future_year(u)
        if kind == "absurd_amount":
            lines = _lines_json(sales, catalogue, occasion, price_cents=9_999_999)
        elif kind == "negative_amount":
            lines = _lines_json(sales, catalogue, occasion, negative=True)
        else:
            if w not in lines_json:
                lines_json[w] = _lines_json(sales, catalogue, occasion)
            lines = lines_json[w]
        order_id = None if kind == "missing_key" else ecom.order_id[occasion]
        return _order_json(order_id, v, statuses[s], ecom.account_id[account], ecom.account_email[account],
                           ordered, u, postal[w], lines)

    plan = plan_faults(rng, [len(r) for r in rows], ECOM_FAULT_KINDS, fault_rate)
    written = 0
    for d in range(clock.days):
        location = f"ecom/orders/{clock.day_names[d]}.jsonl"
        day_rows = rows[d]

        def fault(row: int, kind: str, day_rows: list[Version] = day_rows) -> tuple[str, str]:
            key = ecom.order_id[int(occasions[day_rows[row][0]])]
            if kind == "missing_key":
                return render(day_rows[row], kind), ""
            text = render(day_rows[row], "" if kind in ("duplicate", "invalid_json") else kind)
            if kind == "invalid_json":
                text = text[: -int(rng.integers(3, 30))] + "\n"  # cut off mid-object
            return text, key

        lines = [render(r) for r in day_rows]
        written += write_day_file(out_dir / location, None, lines, plan[d], fault, log, "ecom", location)
    return written
