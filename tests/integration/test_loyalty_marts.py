"""The loyalty and merchandising marts with real dbt on a real PostgreSQL, against figures computed
here, in Python, from what they are built of: member balances and last-12-month points and the
monthly liability from the raw points ledger, category affinity and the next best category from
the transactions.

Loads the session's demo sources into a database of its own, builds the marts as of the demo
date, then rebuilds the loyalty marts as of an earlier date over the same raw data: entries
booked after that moment must not count.
"""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import permutations
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml

from ..helpers import DEMO_DATE, PROJECT_DIR, DemoMarts, local_midnight, run_dbt

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Europe/Madrid")
EARLIER_DATE = DEMO_DATE - timedelta(days=17)  # mid-month: the as-of month is cut short
VARS = yaml.safe_load((PROJECT_DIR / "dbt_project" / "dbt_project.yml").read_text())["vars"]
Rows = list[dict]


@dataclass(frozen=True)
class LoyaltyMarts:
    """What the marts held as of each date, and the raw data they were built from."""

    ledger: Rows
    member_cards: dict[str, date]  # card -> enrolled_on
    crosswalk: dict[str, str]  # card -> customer key
    members: dict[date, Rows]
    liability: dict[date, Rows]
    transactions: Rows
    affinity: Rows
    next_best: Rows


def _rows(conn: psycopg.Connection, query: str) -> Rows:
    cursor = conn.execute(query)
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def marts(demo_marts: DemoMarts) -> Iterator[LoyaltyMarts]:
    dsn, work = demo_marts.dsn, demo_marts.work_dir
    with psycopg.connect(dsn, autocommit=True) as conn:
        members = {DEMO_DATE: _rows(conn, "select * from marts.loyalty_members")}
        liability = {DEMO_DATE: _rows(conn, "select * from marts.loyalty_liability")}
        transactions = _rows(conn, """select transaction_id, customer_key, category, is_return,
            transacted_at from marts.fct_transactions""")
        affinity = _rows(conn, "select * from marts.product_affinity")
        next_best = _rows(conn, "select * from marts.customer_next_best_category")
        # only the loyalty marts are rebuilt as of the earlier date (no other test reads them),
        # then again as of DEMO_DATE, so the shared database is left as it was
        run_dbt(dsn, local_midnight(EARLIER_DATE), "run", "--select", "loyalty_members",
                "loyalty_liability", work_dir=work)
        members[EARLIER_DATE] = _rows(conn, "select * from marts.loyalty_members")
        liability[EARLIER_DATE] = _rows(conn, "select * from marts.loyalty_liability")
        run_dbt(dsn, local_midnight(DEMO_DATE), "run", "--select", "loyalty_members",
                "loyalty_liability", work_dir=work)
        yield LoyaltyMarts(
            ledger=_rows(conn, "select card_number, entry_type, points, occurred_at "
                               "from raw.loyalty_points"),
            member_cards=dict(conn.execute(
                "select card_number, enrolled_on from raw.loyalty_members").fetchall()),
            crosswalk=dict(conn.execute("""select source_id, customer_key
                from marts.customer_source_keys where source = 'loyalty'""").fetchall()),
            members=members, liability=liability, transactions=transactions,
            affinity=affinity, next_best=next_best)


def _months_back(day: date, months: int) -> date:
    """The same calendar day ``months`` earlier, or that month's last day (as PostgreSQL does)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _expected_members(data: LoyaltyMarts, as_of_date: date) -> dict[str, dict]:
    as_of = local_midnight(as_of_date)
    window_start = local_midnight(_months_back(as_of_date, VARS["loyalty_trailing_months"]))
    expected = {card: {"points_balance": 0, "points_earned_last_12_months": 0,
                       "points_redeemed_last_12_months": 0, "points_expired_last_12_months": 0,
                       "points_adjusted_last_12_months": 0, "last_activity_at": None}
                for card, enrolled_on in data.member_cards.items() if enrolled_on < as_of_date}
    for entry in data.ledger:
        member = expected.get(entry["card_number"])
        if member is None or entry["occurred_at"] >= as_of:
            continue
        member["points_balance"] += entry["points"]
        if entry["occurred_at"] >= window_start:
            sign = -1 if entry["entry_type"] in ("redeem", "expire") else 1
            column = {"earn": "earned", "redeem": "redeemed", "expire": "expired",
                      "adjust": "adjusted"}[entry["entry_type"]]
            member[f"points_{column}_last_12_months"] += sign * entry["points"]
        if entry["entry_type"] in ("earn", "redeem"):
            member["last_activity_at"] = max(filter(None, (member["last_activity_at"],
                                                           entry["occurred_at"])))
    return expected


@pytest.mark.parametrize("as_of_date", [DEMO_DATE, EARLIER_DATE])
def test_member_balances_and_last_12_months_match_the_ledger(marts: LoyaltyMarts,
                                                               as_of_date: date) -> None:
    expected = _expected_members(marts, as_of_date)
    rows = {row["loyalty_card_number"]: row for row in marts.members[as_of_date]}
    assert len(rows) > 50 and set(rows) == set(expected)
    assert sum(1 for member in expected.values() if member["points_balance"] > 0) > 20
    for card, member in expected.items():
        row = rows[card]
        assert {column: row[column] for column in member} == member, card
        assert row["customer_key"] == marts.crosswalk[card]
        assert row["points_balance_value"] == (
            Decimal(member["points_balance"]) * Decimal(str(VARS["loyalty_point_value"]))
        ).quantize(Decimal("0.01"))
        earned, redeemed = member["points_earned_last_12_months"], member["points_redeemed_last_12_months"]
        if earned == 0:
            assert row["redemption_rate_last_12_months"] is None, card
        else:
            assert abs(float(row["redemption_rate_last_12_months"]) - redeemed / earned) < 0.00005, card
    # the later run sees entries the earlier one must not
    assert marts.members[EARLIER_DATE] != marts.members[DEMO_DATE]


def _expected_liability(data: LoyaltyMarts, as_of_date: date) -> list[dict]:
    as_of = local_midnight(as_of_date)
    monthly: dict[date, Counter] = defaultdict(Counter)
    for entry in data.ledger:
        if entry["occurred_at"] < as_of:
            local = entry["occurred_at"].astimezone(TZ)
            month = monthly[date(local.year, local.month, 1)]
            month[entry["entry_type"]] += entry["points"]
    month, outstanding, expected = min(monthly), 0, []
    while month <= as_of_date.replace(day=1):
        moved = monthly[month]
        outstanding += sum(moved.values())
        following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        expected.append({"month_start_on": month, "points_issued": moved["earn"],
                         "points_redeemed": -moved["redeem"], "points_expired": -moved["expire"],
                         "points_adjusted": moved["adjust"], "outstanding_points": outstanding,
                         "month_end_at": min(local_midnight(following), as_of)})
        month = following
    return expected


@pytest.mark.parametrize("as_of_date", [DEMO_DATE, EARLIER_DATE])
def test_liability_by_month_matches_the_ledger_and_the_member_balances(marts: LoyaltyMarts,
                                                                         as_of_date: date) -> None:
    expected = _expected_liability(marts, as_of_date)
    rows = sorted(marts.liability[as_of_date], key=lambda row: row["month_start_on"])
    assert len(rows) >= 3
    assert [{column: row[column] for column in expected[0]} for row in rows] == expected
    assert [row["is_complete_month"] for row in rows] == [True] * (len(rows) - 1) + [False]
    # what is outstanding at the as-of moment is what the members hold, plus the points of cards
    # with no member record (enrolled later or missing from the export)
    as_of = local_midnight(as_of_date)
    members = {row["loyalty_card_number"] for row in marts.members[as_of_date]}
    orphan_points = sum(entry["points"] for entry in marts.ledger
                        if entry["occurred_at"] < as_of and entry["card_number"] not in members)
    held = sum(row["points_balance"] for row in marts.members[as_of_date])
    assert held > 0
    assert rows[-1]["outstanding_points"] == held + orphan_points
    redeemed = sum(row["points_redeemed"] for row in rows[-VARS["loyalty_trailing_months"]:])
    expired = sum(row["points_expired"] for row in rows[-VARS["loyalty_trailing_months"]:])
    assert (rows[-1]["points_redeemed_last_12_months"], rows[-1]["points_expired_last_12_months"]) \
        == (redeemed, expired)
    if redeemed + expired:
        assert float(rows[-1]["breakage_rate_last_12_months"]) == pytest.approx(
            expired / (redeemed + expired), abs=0.00005)
    else:
        assert rows[-1]["breakage_rate_last_12_months"] is None


def _baskets(transactions: Rows, by: str) -> dict[str, set[str]]:
    as_of = local_midnight(DEMO_DATE)
    baskets: dict[str, set[str]] = defaultdict(set)
    for line in transactions:
        if line[by] is not None and not line["is_return"] and line["category"] is not None \
                and line["transacted_at"] < as_of:
            baskets[line[by]].add(line["category"])
    return baskets


def test_affinity_support_confidence_and_lift_match_the_baskets(marts: LoyaltyMarts) -> None:
    baskets = _baskets(marts.transactions, "transaction_id")
    total = len(baskets)
    single = Counter(category for categories in baskets.values() for category in categories)
    pairs = Counter(pair for categories in baskets.values() for pair in permutations(categories, 2))
    minimum = VARS["affinity_min_transactions_together"]
    expected = {(a, b): both for (a, b), both in pairs.items() if both >= minimum}
    rows = {(row["antecedent_category"], row["consequent_category"]): row for row in marts.affinity}
    assert len(rows) > 10 and set(rows) == set(expected)
    assert any(both < minimum for both in pairs.values()), "the minimum should leave some pairs out"
    for (a, b), both in expected.items():
        row = rows[(a, b)]
        assert (row["transactions_total"], row["transactions_with_antecedent"],
                row["transactions_with_consequent"], row["transactions_with_both"]) \
            == (total, single[a], single[b], both)
        assert float(row["support"]) == pytest.approx(both / total, abs=1e-6)
        assert float(row["confidence"]) == pytest.approx(both / single[a], abs=1e-6)
        assert float(row["lift"]) == pytest.approx(both * total / (single[a] * single[b]), abs=1e-6)


def test_next_best_category_is_the_best_scored_category_not_yet_bought(marts: LoyaltyMarts) -> None:
    bought = _baskets(marts.transactions, "customer_key")
    pairs = defaultdict(list)
    for row in marts.affinity:
        score = (row["lift"] * row["confidence"]).quantize(Decimal("0.000001"), ROUND_HALF_UP)
        pairs[row["antecedent_category"]].append((score, row["transactions_with_both"],
                                                   row["consequent_category"]))
    expected: dict[str, tuple[tuple[Decimal, int], set[str]]] = {}
    for customer, categories in bought.items():
        candidates = [candidate for category in categories for candidate in pairs[category]
                      if candidate[2] not in categories]
        if candidates:
            best = max(candidate[:2] for candidate in candidates)
            # equal scores and baskets: alphabetical order decides, in the warehouse's collation
            expected[customer] = best, {c[2] for c in candidates if c[:2] == best}
    rows = {row["customer_key"]: row for row in marts.next_best}
    assert len(rows) > 50 and set(rows) == set(expected)
    for customer, row in rows.items():
        best, categories = expected[customer]
        assert row["next_best_category"] not in bought[customer]
        assert row["because_of_category"] in bought[customer]
        assert (row["affinity_score"], row["transactions_with_both"]) == best, customer
        assert row["next_best_category"] in categories, customer
        assert row["categories_bought"] == len(bought[customer])
