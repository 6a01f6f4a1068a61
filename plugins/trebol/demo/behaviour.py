"""What the people do: purchase occasions over time, the baskets they buy, returns, cancellations,
deliveries and after-the-fact corrections, all drawn vectorised with numpy.

A person's first purchase falls uniformly over the history; later ones follow a Poisson process at
their rate until they drop out (after each purchase with their dropout probability) or the history
ends. Each occasion is in a store or online, per the person's channel habits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trebol.demo.clock import Clock
from trebol.demo.people import People
from trebol.demo.reference import STORES, Catalogue

HOUR = 3600
DAY = 86400
RETURN_PROBABILITY = 0.035
HEAVY_RETURN_PROBABILITY = 0.7
CANCEL_PROBABILITY = 0.04
CARD_PRESENTED = 0.85


@dataclass
class Sales:
    """Purchase occasions (sorted by time) and their basket lines; amounts in cents."""

    person: np.ndarray
    ts: np.ndarray
    online: np.ndarray
    store: np.ndarray  # index into STORES, -1 online
    line_start: np.ndarray  # lines of occasion i: line_start[i]:line_start[i + 1]
    line_sale: np.ndarray
    line_number: np.ndarray
    product: np.ndarray
    qty: np.ndarray
    price: np.ndarray
    discount: np.ndarray
    alive: np.ndarray  # per person: still active at the end of the history
    # store returns: the occasion is returned at return_ts (-1: not returned); which lines
    return_ts: np.ndarray
    line_returned: np.ndarray
    return_store: np.ndarray
    # corrections of store tickets: updated at correction_ts (-1: never corrected)
    correction_ts: np.ndarray
    # online orders: cancelled / shipped / returned instants (-1: did not happen before the end)
    cancel_ts: np.ndarray
    ship_ts: np.ndarray
    card: np.ndarray  # store occasions where the loyalty card was presented

    @property
    def size(self) -> int:
        return len(self.ts)

    def net(self) -> np.ndarray:
        """Net amount of each line (cents): quantity x unit price - discount."""
        return self.qty * self.price - self.discount

    def totals(self) -> np.ndarray:
        """Net amount of each occasion (cents)."""
        return np.bincount(self.line_sale, weights=self.net(), minlength=self.size).astype(np.int64)


def _occasions(people: People, clock: Clock, rng: np.random.Generator):
    n, days = people.n, clock.days
    t0 = rng.integers(0, days, n) + rng.random(n)  # first purchase, in (fractional) history days
    purchases_until_dropout = rng.geometric(people.dropout_probability)
    window = days - t0
    further_possible = rng.poisson(people.purchase_rate * window)
    further = np.minimum(purchases_until_dropout - 1, further_possible)
    owner = np.repeat(np.arange(n), further_possible)
    when = t0[owner] + rng.random(owner.size) * window[owner]
    order = np.lexsort((when, owner))
    owner, when = owner[order], when[order]
    first_of_owner = np.concatenate(([0], np.cumsum(further_possible)[:-1]))
    keep = (np.arange(owner.size) - first_of_owner[owner]) < further[owner]
    person = np.concatenate((np.arange(n), owner[keep]))
    day = np.minimum(np.floor(np.concatenate((t0, when[keep]))).astype(np.int64), days - 1)
    alive = purchases_until_dropout > 1 + further_possible
    return person, day, alive


def make_sales(people: People, catalogue: Catalogue, clock: Clock, rng: np.random.Generator,
               correction_rate: float) -> Sales:
    """All purchase occasions of all people, with baskets, returns, orders' fates and corrections."""
    person, day, alive = _occasions(people, clock, rng)
    size = person.size
    online = rng.random(size) < people.online_share[person]
    seconds = np.where(online, 7 * HOUR + rng.random(size) * 16 * HOUR,
                       9.5 * HOUR + rng.random(size) * 12 * HOUR)
    ts = clock.at(day, seconds)
    store = np.where(rng.random(size) < 0.85, people.home_store[person], rng.integers(0, len(STORES), size))
    store = np.where(online, -1, store)
    order = np.lexsort((person, ts))
    person, day, ts, online, store = person[order], day[order], ts[order], online[order], store[order]

    # baskets: a target spend per occasion (Gamma-Gamma), split over lines priced near it
    spend = rng.gamma(6.0, people.mean_spend[person] / 6.0)
    n_lines = 1 + np.minimum(rng.poisson(np.maximum(spend / 30.0 - 0.5, 0.05)), 11)
    line_start = np.concatenate(([0], np.cumsum(n_lines))).astype(np.int64)
    line_sale = np.repeat(np.arange(size), n_lines)
    k = line_sale.size
    line_number = np.arange(k) - line_start[line_sale] + 1
    qty = rng.choice(np.array([1, 2, 3]), k, p=[0.78, 0.16, 0.06])
    target = spend[line_sale] / n_lines[line_sale] * rng.lognormal(0.0, 0.35, k) / qty * 100
    by_price = np.argsort(catalogue.price, kind="stable")
    pos = np.searchsorted(catalogue.price[by_price], target) + rng.integers(-5, 6, k)
    product = by_price[np.clip(pos, 0, catalogue.size - 1)]
    price = catalogue.price[product]
    hunter = people.discount_hunter[person[line_sale]]
    discounted = rng.random(k) < np.where(hunter, 0.8, 0.1)
    pct = np.where(hunter, rng.uniform(0.15, 0.5, k), rng.choice(np.array([0.1, 0.15, 0.2, 0.3]), k))
    discount = np.where(discounted, np.round(qty * price * pct), 0).astype(np.int64)

    # returns: heavy returners bring most things back; store returns within a month
    heavy = people.heavy_returner[person]
    returned = rng.random(size) < np.where(heavy, HEAVY_RETURN_PROBABILITY, RETURN_PROBABILITY)
    return_day = day + np.where(heavy, rng.integers(1, 15, size), rng.integers(1, 31, size))
    return_ts = clock.at(return_day, 9.5 * HOUR + rng.random(size) * 12 * HOUR)
    return_ts = np.where(returned & ~online & (return_ts < clock.end_ts), return_ts, -1)
    line_returned = (rng.random(k) < np.where(heavy[line_sale], 0.85, 0.6)) & (return_ts[line_sale] >= 0)
    some = np.bincount(line_sale, weights=line_returned, minlength=size) > 0
    line_returned[line_start[:-1][(return_ts >= 0) & ~some]] = True
    return_store = np.where(rng.random(size) < 0.8, store, people.home_store[person])

    # corrections of store tickets, 1-3 days later (the OLTP row keeps only the corrected state)
    corrected = (rng.random(size) < correction_rate) & ~online & (return_ts < 0)
    correction_ts = clock.at(day + rng.integers(1, 4, size), 9 * HOUR + rng.random(size) * 11 * HOUR)
    correction_ts = np.where(corrected & (correction_ts < clock.end_ts), correction_ts, -1)
    fix = line_start[:-1] + (rng.random(size) * n_lines).astype(np.int64)
    for i in np.flatnonzero(correction_ts >= 0).tolist():
        line = fix[i]
        if qty[line] > 1:
            qty[line] -= 1  # scanned twice
        elif discount[line] == 0:
            discount[line] = round(price[line] * qty[line] * 0.1)  # a promised discount forgotten
        else:
            discount[line] = 0  # a discount given by mistake

    # online orders: shipped 1-3 days later unless cancelled first; returned some days after shipping
    cancelled = online & (rng.random(size) < CANCEL_PROBABILITY)
    cancel_ts = np.minimum(ts + (0.5 * HOUR + rng.random(size) * 20 * HOUR).astype(np.int64),
                           clock.at(day + 1, 7 * HOUR))
    cancel_ts = np.where(cancelled & (cancel_ts < clock.end_ts), cancel_ts, -1)
    ship_day = day + rng.integers(1, 4, size)
    ship_ts = clock.at(ship_day, 8 * HOUR + rng.random(size) * 10 * HOUR)
    ship_ts = np.where(online & ~cancelled & (ship_ts < clock.end_ts), ship_ts, -1)
    web_return = clock.at(ship_day + rng.integers(3, 21, size), 9 * HOUR + rng.random(size) * 11 * HOUR)
    return_ts = np.where(online & returned & (ship_ts >= 0) & (web_return < clock.end_ts), web_return,
                         return_ts)
    line_returned |= online[line_sale] & (return_ts[line_sale] >= 0)

    return Sales(person=person, ts=ts, online=online, store=store, line_start=line_start,
                 line_sale=line_sale, line_number=line_number, product=product, qty=qty, price=price,
                 discount=discount, alive=alive, return_ts=return_ts, line_returned=line_returned,
                 return_store=return_store, correction_ts=correction_ts, cancel_ts=cancel_ts,
                 ship_ts=ship_ts, card=np.zeros(size, dtype=bool))


def present_cards(sales: Sales, enrol_ts: np.ndarray, rng: np.random.Generator) -> None:
    """Members show their card on ~85% of store tickets after enrolling; others have none."""
    enrolled = enrol_ts[sales.person]
    sales.card = ((~sales.online) & (enrolled >= 0) & (sales.ts >= enrolled)
                  & (rng.random(sales.size) < CARD_PRESENTED))
