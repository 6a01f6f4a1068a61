"""How the simulated customers answer a campaign: the known-lift scenario.

The demo's world after a push: within a campaign's window every member of the audience (sent or
held out alike) buys online with the audience's base chance, and a member who was sent the
campaign with that chance raised by the scenario's known lift; one audience can have a lift and
another none. A treated member's purchase redeems the audience's offer (its discount on every
line), a held-out member pays full price: a campaign can sell more and still lose margin.

Who was in each arm comes from the warehouse's record of the push (``activation.audience_members``
of the campaign's date: the sent members and the held-out ones, whom no campaign tool knows); the
campaign tool's view (who it sent, ``campaign_tool``) is the same list without the held-out.

Output: ``ecom/orders/<day>-campaign-responses.jsonl`` under the sources folder, one paid order
per buying member, under the member's own email and an account of its own (the shop's account id
``campaign-<customer key>``), on a day of the window: the shop's export of those days, loaded as
the source ``ecom_orders``. Each member's draws come from a stream of its own (seed, campaign,
customer key), so one member's purchase does not depend on who else was in the audience; writing
again gives the same files.
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from trebol.demo import campaign_tool
from trebol.demo.reference import make_catalogue

ORDERS_FOLDER = Path("ecom") / "orders"
FILE_SUFFIX = "-campaign-responses.jsonl"


@dataclass(frozen=True)
class Response:
    """One audience's answer to a campaign: the chance a member buys within the window (held
    out) and what being sent adds to it (the known lift)."""

    base_rate: float
    lift: float = 0.0
    discount_percent: float = 0.0  # the offer a treated member redeems on every line

    def __post_init__(self) -> None:
        if not 0 <= self.base_rate <= 1 or not 0 <= self.base_rate + self.lift <= 1:
            raise ValueError(f"base rate {self.base_rate} and lift {self.lift}: not chances")


@dataclass(frozen=True)
class Member:
    """One member of a campaign's audience, in one arm."""

    campaign_id: str
    audience: str
    sent_on: date
    customer_key: str
    email: str
    is_holdout: bool


def campaign_members(conn: psycopg.Connection, sent_on: date, audiences: Iterable[str]) -> list[Member]:
    """The staged members of ``audiences`` on ``sent_on`` in both arms (the campaign is named
    ``<audience>/<date>``), ordered by audience and customer key."""
    rows = conn.execute(
        """select audience, customer_key, email, is_holdout from activation.audience_members
        where as_of_date = %s and audience = any(%s) order by audience, customer_key""",
        (sent_on, list(audiences))).fetchall()
    return [Member(f"{audience}/{sent_on.isoformat()}", audience, sent_on, key, email, holdout)
            for audience, key, email, holdout in rows]


def purchases(members: Iterable[Member], responses: Mapping[str, Response], seed: int,
              window_days: int, timezone: str) -> list[dict]:
    """The orders the members place within the window that starts on their campaign's date (an
    order per buying member, one to three lines of the shop's catalogue, at a time of the
    window's days drawn uniformly)."""
    catalogue = make_catalogue()
    zone = ZoneInfo(timezone)
    orders = []
    for member in members:
        response = responses[member.audience]
        draws = campaign_tool.member_stream(seed, f"response:{member.campaign_id}", member.customer_key)
        chance = response.base_rate + (0.0 if member.is_holdout else response.lift)
        if draws.random() >= chance:
            continue
        start = datetime.combine(member.sent_on, datetime.min.time(), zone)
        ordered_at = (start + timedelta(seconds=float(draws.random()) * window_days * 86400)).replace(
            microsecond=0)
        discount = 0.0 if member.is_holdout else response.discount_percent
        lines = []
        for number, product in enumerate(draws.choice(catalogue.size, int(draws.integers(1, 4)),
                                                      replace=False).tolist(), start=1):
            quantity = int(draws.integers(1, 3))
            unit_price = int(catalogue.price[product]) / 100
            lines.append({"line_number": number, "sku": catalogue.product_id[product],
                          "quantity": quantity, "unit_price": unit_price,
                          "discount": round(unit_price * quantity * discount / 100, 2)})
        order_number = zlib.crc32(f"{member.campaign_id}:{member.customer_key}".encode())
        orders.append({"order_id": f"CR-{order_number:08x}",
                       "version": 1, "status": "paid", "account_id": f"campaign-{member.customer_key}",
                       "email": member.email, "ordered_at": ordered_at.isoformat(),
                       "updated_at": ordered_at.isoformat(), "lines": lines})
    return orders


def write_purchases(sources_dir: Path, orders: Iterable[dict], until: date, timezone: str) -> list[Path]:
    """Write the orders of each local day before ``until`` as
    ``ecom/orders/<day>-campaign-responses.jsonl`` (sorted by time and id); the files written."""
    zone = ZoneInfo(timezone)
    by_day: dict[date, list[dict]] = defaultdict(list)
    for order in orders:
        day = datetime.fromisoformat(order["ordered_at"]).astimezone(zone).date()
        if day < until:
            by_day[day].append(order)
    folder = sources_dir / ORDERS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for day, day_orders in sorted(by_day.items()):
        path = folder / f"{day.isoformat()}{FILE_SUFFIX}"
        path.write_text("".join(json.dumps(order, ensure_ascii=False) + "\n" for order in
                                sorted(day_orders, key=lambda o: (o["ordered_at"], o["order_id"]))),
                        encoding="utf-8")
        written.append(path)
    return written


# The demo world's known answers: the chance a member sent the campaign buys once more within
# the window (on top of what they buy anyway), per audience.
DEMO_LIFTS = {"aud_winback_high_value": 0.15, "aud_onboarding_new": 0.10,
              "aud_upsell_high_potential": 0.10, "aud_points_expiring": 0.05}
# how much more (or less) than average each RFM segment opens and clicks
SEGMENT_ENGAGEMENT = {"Champions": 1.6, "Loyal": 1.3, "Potential loyalist": 1.1, "New": 1.2,
                      "Need attention": 0.9, "About to sleep": 0.8, "At risk": 0.7,
                      "Can't lose": 0.7, "Hibernating": 0.5, "Lost": 0.4}


def answer_campaigns(conn: psycopg.Connection, sources_dir: Path, drop_dir: Path, sent_on: date,
                     until: date, seed: int, timezone: str) -> dict[str, int]:
    """After the push of ``sent_on``, up to ``until`` (the demo's next run): the world buys
    (``DEMO_LIFTS``, the offer's discount redeemed, on top of its usual purchases) and the
    campaign tool exports what became of the file deliveries' sends, with open and click rates
    by the member's RFM segment on the send date. Files written (orders, event days)."""
    offers = dict(conn.execute(
        "select 'aud_' || audience, discount_percent from reference.audience_offers").fetchall())
    responses = {audience: Response(0.0, DEMO_LIFTS.get(audience, 0.0), float(discount))
                 for audience, discount in offers.items()}
    members = campaign_members(conn, sent_on, responses)
    orders = write_purchases(sources_dir, purchases(members, responses, seed, (until - sent_on).days,
                                                    timezone), until, timezone)
    engagement = {key: SEGMENT_ENGAGEMENT.get(segment, 1.0) for key, segment in conn.execute(
        "select customer_key, rfm_segment from marts.segment_history where as_of_date = %s",
        (sent_on,)).fetchall()}
    deliveries = [delivery for delivery in campaign_tool.file_deliveries(drop_dir)
                  if delivery.sent_on < until]
    events = campaign_tool.export(sources_dir, [(delivery, campaign_tool.Rates()) for delivery in deliveries],
                                  seed, timezone, until, engagement)
    return {"order_files": len(orders), "event_files": len(events)}
